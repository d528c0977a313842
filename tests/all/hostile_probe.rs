//! The attacker as the guest: the probe component (`guests/probe`, which does exactly what its
//! steps say) runs for a hostile tenant with tight limits, while a well-behaved tenant makes
//! five actions with the real component on another simulator at the same time.

use defender_host::limits::Limits;
use defender_host::{ActionError, LimitExceeded, MachineAction, Outcome, RuntimeError};
use defender_simulator::Simulator;
use integration_tests::{COMMENT, SHA1, TOKEN, component, probe, simulator, tenant};
use std::time::Duration;

/// The hostile tenant's limits, tight so each case ends quickly.
pub fn hostile_limits() -> Limits {
    Limits {
        cpu: Duration::from_millis(300),
        memory_bytes: 8 * 1024 * 1024,
        max_requests: 50,
        wall_clock: Duration::from_secs(3),
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
/// simulator) for a hostile tenant with `limits`, beside a good tenant whose five actions must
/// all complete, each with its own token.
pub async fn beside_a_good_tenant(
    url: impl FnOnce(&Simulator, &Simulator) -> String,
    steps: &str,
    limits: Limits,
) -> Run {
    let good = simulator().await;
    let hostile = simulator().await;
    let mut hostile_tenant = tenant(&hostile);
    hostile_tenant.limits = Some(limits);
    let url = url(&hostile, &good);
    let good_tenant = tenant(&good);
    let good_calls = async {
        let mut actions = Vec::new();
        for i in 0..5 {
            let machine = format!("{i:040x}");
            let outcome = component()
                .stop_and_quarantine(&good_tenant, &machine, SHA1, COMMENT)
                .await
                .expect("the good tenant's call completes");
            actions.push(outcome.result.expect("the good tenant's action"));
        }
        actions
    };
    let hostile_call = probe().stop_and_quarantine(&hostile_tenant, &url, steps, "");
    let (actions, result) = tokio::join!(good_calls, hostile_call);
    assert_eq!(actions.len(), 5);
    assert!(
        good.requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {TOKEN}")))
    );
    Run {
        result,
        good,
        hostile,
    }
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
