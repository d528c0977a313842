//! Hostile components against the host, each while a well-behaved tenant runs beside it: every
//! misbehaviour is stopped or refused with the right error, and the good tenant's actions all
//! complete.

use host_harness::limits::Limits;
use host_harness::simulator::Simulator;
use host_harness::{ActionError, LimitExceeded, MachineAction, Outcome, Runtime, RuntimeError};
use integration_tests::{COMMENT, PROBE, SHA1, TOKEN, component, simulator, tenant};
use std::sync::OnceLock;
use std::time::Duration;

/// The hostile tenant's tight limits, so each case ends quickly.
fn hostile_limits() -> Limits {
    Limits {
        cpu: Duration::from_millis(300),
        memory_bytes: 8 * 1024 * 1024,
        max_requests: 50,
        wall_clock: Duration::from_secs(3),
        ..Limits::default()
    }
}

fn probe() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(PROBE, Limits::default()).expect("the probe loads"))
}

/// Runs the probe with `steps` against `url` for a hostile tenant (its own simulator), while a
/// good tenant makes five actions on another simulator. Returns the probe's result and the good
/// tenant's simulator.
async fn beside_a_good_tenant(
    url: impl FnOnce(&Simulator, &Simulator) -> String,
    steps: &str,
) -> (
    Result<Outcome<MachineAction>, RuntimeError>,
    Simulator,
    Simulator,
) {
    let good = simulator().await;
    let hostile = simulator().await;
    let mut hostile_tenant = tenant(&hostile);
    hostile_tenant.limits = Some(hostile_limits());
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
    let (actions, hostile_result) = tokio::join!(good_calls, hostile_call);
    assert_eq!(actions.len(), 5);
    assert!(
        good.requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {TOKEN}")))
    );
    (hostile_result, good, hostile)
}

fn api_of(simulator: &Simulator) -> String {
    format!(
        "{}/api/machines/{}/StopAndQuarantineFile",
        simulator.base_url(),
        "0".repeat(40)
    )
}

/// The hostile tenant's own API.
fn api(hostile: &Simulator, _good: &Simulator) -> String {
    api_of(hostile)
}

fn limit(result: Result<Outcome<MachineAction>, RuntimeError>) -> LimitExceeded {
    match result {
        Err(RuntimeError::Limit(limit)) => limit,
        other => panic!("expected a limit, got {other:?}"),
    }
}

fn denied(result: Result<Outcome<MachineAction>, RuntimeError>) -> Vec<String> {
    let outcome = result.expect("the probe completes");
    match &outcome.result {
        Err(ActionError::Transport(code)) => assert_eq!(code, "ErrorCode::HttpRequestDenied"),
        other => panic!("expected a denial, got {other:?}"),
    }
    outcome.denials
}

#[tokio::test]
async fn an_endless_loop_is_stopped_by_the_cpu_limit() {
    let (result, ..) = beside_a_good_tenant(api, "spin").await;
    assert_eq!(
        limit(result),
        LimitExceeded::Cpu(Duration::from_millis(300))
    );
}

#[tokio::test]
async fn endless_memory_growth_is_stopped_by_the_memory_limit() {
    let (result, ..) = beside_a_good_tenant(api, "grow").await;
    assert_eq!(limit(result), LimitExceeded::Memory(8 * 1024 * 1024));
}

#[tokio::test]
async fn endless_requests_are_stopped_by_the_request_limit() {
    let (result, _, hostile) = beside_a_good_tenant(api, "credential,flood").await;
    assert_eq!(limit(result), LimitExceeded::Requests(50));
    assert!(hostile.requests().is_empty(), "no request had a permit");
}

#[tokio::test]
async fn waiting_for_ever_is_stopped_by_the_wall_clock() {
    let (result, ..) = beside_a_good_tenant(api, "sleep").await;
    assert_eq!(
        limit(result),
        LimitExceeded::WallClock(Duration::from_secs(3))
    );
}

#[tokio::test]
async fn a_host_outside_the_allowlist_is_refused() {
    let elsewhere = |_: &Simulator, _: &Simulator| "http://127.0.0.1:1/api/machines".to_owned();
    let (result, _, hostile) = beside_a_good_tenant(elsewhere, "credential,permit").await;
    let denials = denied(result);
    assert!(denials[0].contains("outside the allowlist"), "{denials:?}");
    assert!(hostile.requests().is_empty());
}

#[tokio::test]
async fn a_private_address_is_refused_before_any_connection() {
    let (result, ..) = beside_a_good_tenant(
        |_, _| "http://10.0.0.1/api/machines".into(),
        "credential,permit",
    )
    .await;
    assert!(denied(result)[0].contains("http://10.0.0.1"));
}

#[tokio::test]
async fn the_sign_in_host_is_refused() {
    let url = |_: &Simulator, _: &Simulator| {
        "https://login.microsoftonline.com/common/oauth2/v2.0/token".to_owned()
    };
    let (result, ..) = beside_a_good_tenant(url, "credential,permit").await;
    assert!(denied(result)[0].contains("login.microsoftonline.com"));
}

#[tokio::test]
async fn an_api_call_without_a_permit_is_refused() {
    let (result, _, hostile) = beside_a_good_tenant(api, "credential").await;
    assert!(denied(result)[0].contains("permit"));
    assert!(hostile.requests().is_empty());
}

#[tokio::test]
async fn an_authorization_header_of_its_own_is_refused() {
    let (result, _, hostile) = beside_a_good_tenant(api, "credential,own-auth,permit").await;
    assert!(denied(result)[0].contains("sealed credential"));
    assert!(hostile.requests().is_empty());
}

#[tokio::test]
async fn the_component_can_only_read_a_worthless_seal() {
    let (result, ..) = beside_a_good_tenant(api, "credential,reveal").await;
    let Err(ActionError::Transport(revealed)) = result.unwrap().result else {
        panic!("expected the revealed value");
    };
    assert!(revealed.starts_with("Bearer sealed."), "{revealed}");
    assert!(!revealed.contains(TOKEN));
}

#[tokio::test]
async fn another_tenants_api_is_refused_with_this_tenants_credential() {
    let (result, good, _) = beside_a_good_tenant(|_, good| api_of(good), "credential,permit").await;
    denied(result);
    // The good tenant's simulator saw its five requests and nothing from the hostile tenant.
    assert_eq!(good.requests().len(), 5);
}

#[tokio::test]
async fn a_huge_host_call_is_stopped_by_the_host_call_limit() {
    let (result, ..) = beside_a_good_tenant(api, "big-call").await;
    assert_eq!(
        limit(result),
        LimitExceeded::HostcallBytes(Limits::default().hostcall_bytes)
    );
}

#[tokio::test]
async fn hoarding_resources_is_stopped_by_the_resource_limit() {
    let (result, ..) = beside_a_good_tenant(api, "hoard").await;
    assert_eq!(
        limit(result),
        LimitExceeded::Resources(Limits::default().resources)
    );
}
