//! The attacker as the guest: the probe component (`guests/probe`, which does exactly what its
//! steps say) runs for a hostile tenant with tight limits, on a task of its own, while a
//! well-behaved tenant makes five actions with the real component on another simulator. The
//! tests run on a multi-thread runtime, as an embedder's would.

use defender_host::limits::Limits;
use defender_host::{ActionError, LimitExceeded, MachineAction, Outcome, RuntimeError};
use defender_simulator::Simulator;
use integration_tests::{COMMENT, SHA1, TOKEN, component, probe, simulator, tenant};
use std::time::Duration;

/// The hostile tenant's CPU budget: far enough from the wall clock (five times as long) that a
/// thread descheduled on a busy machine cannot make a call that stops on one stop on the other.
pub const HOSTILE_CPU: Duration = Duration::from_secs(1);

/// The hostile tenant's limits, tight so each case ends quickly.
pub fn hostile_limits() -> Limits {
    Limits {
        cpu: HOSTILE_CPU,
        memory_bytes: 8 * 1024 * 1024,
        max_requests: 50,
        wall_clock: Duration::from_secs(5),
        ..Limits::default()
    }
}

/// What a hostile run left: the probe's result, the good tenant's simulator, the hostile
/// tenant's own simulator.
pub struct Run {
    pub result: Result<Outcome<MachineAction>, RuntimeError>,
    pub good: Simulator,
    pub hostile: Simulator,
}

/// Runs the probe with `steps` against the URL `url` picks (given the hostile and the good
/// simulator) for a hostile tenant with `limits`, on a task of its own, beside a good tenant
/// whose five actions must all be created, each with its own token.
pub async fn beside_a_good_tenant(
    url: impl FnOnce(&Simulator, &Simulator) -> String,
    steps: &str,
    limits: Limits,
) -> Run {
    let good = simulator().await;
    let hostile = simulator().await;
    let url = url(&hostile, &good);
    let hostile_call = spawn_hostile(&hostile, url, steps, limits);
    five_good_actions(&good).await;
    let result = hostile_call.await.expect("the hostile call's task ends");
    Run {
        result,
        good,
        hostile,
    }
}

/// The probe's `steps` against `url` for a tenant of `hostile` with `limits`, on a task of its
/// own.
fn spawn_hostile(
    hostile: &Simulator,
    url: String,
    steps: &str,
    limits: Limits,
) -> tokio::task::JoinHandle<Result<Outcome<MachineAction>, RuntimeError>> {
    let mut hostile_tenant = tenant(hostile);
    hostile_tenant.limits = Some(limits);
    let steps = steps.to_owned();
    tokio::spawn(async move {
        probe()
            .stop_and_quarantine(&hostile_tenant, &url, &steps, "")
            .await
    })
}

/// Five actions of a good tenant on `good`, one a device: each must be created, with its own
/// token, once.
pub async fn five_good_actions(good: &Simulator) {
    let good_tenant = tenant(good);
    let mut ids = Vec::new();
    for i in 0..5 {
        let machine = format!("{i:040x}");
        let outcome = component()
            .stop_and_quarantine(&good_tenant, &machine, SHA1, COMMENT)
            .await
            .expect("the good tenant's call completes");
        let action = outcome.result.expect("the good tenant's action");
        assert_eq!(action.machine_id.as_deref(), Some(machine.as_str()));
        ids.push(action.id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "five distinct actions");
    assert_eq!(good.action_count(), 5);
    let posts = good.requests();
    assert_eq!(posts.len(), 5, "one POST a device, no retry");
    assert!(
        posts
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {TOKEN}")))
    );
}

/// Runs the probe's `steps` for a hostile tenant with limits far past the test's length, and
/// checks that a good tenant's five actions are all done while it still runs; then ends it.
pub async fn a_good_tenant_is_served_while(steps: &str) {
    // Both components compiled first, so the good calls' time is theirs alone.
    let _ = (component(), probe());
    let good = simulator().await;
    let hostile = simulator().await;
    let limits = Limits {
        cpu: Duration::from_secs(600),
        wall_clock: Duration::from_secs(600),
        ..hostile_limits()
    };
    let hostile_call = spawn_hostile(&hostile, api_of(&hostile), steps, limits);
    five_good_actions(&good).await;
    assert!(
        !hostile_call.is_finished(),
        "the good tenant's five actions were done while the hostile call still ran"
    );
    hostile_call.abort();
}

/// The hostile tenant's own API, for a device nobody has.
pub fn api(hostile: &Simulator, _good: &Simulator) -> String {
    api_of(hostile)
}

/// The action URL of `simulator`'s API.
pub fn api_of(simulator: &Simulator) -> String {
    format!(
        "{}/api/machines/{}/StopAndQuarantineFile",
        simulator.base_url(),
        "0".repeat(40)
    )
}

/// The limit that stopped the call; its message names it.
pub fn limit(result: Result<Outcome<MachineAction>, RuntimeError>) -> LimitExceeded {
    match result {
        Err(error @ RuntimeError::Limit(limit)) => {
            assert!(error.to_string().contains("limit"), "{error}");
            limit
        }
        other => panic!("expected a limit, got {other:?}"),
    }
}

/// The host's reasons for refusing, after checking the probe got `HTTP-request-denied`.
pub fn denied(result: Result<Outcome<MachineAction>, RuntimeError>) -> Vec<String> {
    let outcome = result.expect("the probe completes");
    match &outcome.result {
        Err(ActionError::Transport(code)) => assert_eq!(code, "ErrorCode::HttpRequestDenied"),
        other => panic!("expected a denial, got {other:?}"),
    }
    assert!(!outcome.denials.is_empty());
    outcome.denials
}
