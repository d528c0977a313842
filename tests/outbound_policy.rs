//! The host's outbound policy, exercised by the probe component, which sends exactly the request
//! it is told to. The first test shows the probe gets through when it follows the rules, so each
//! refusal below is the policy's doing.

use host_harness::{ActionError, MachineAction, Outcome};
use integration_tests::{MACHINE, TOKEN, probe, simulator, tenant};

fn action_url(base: &str) -> String {
    format!("{base}/api/machines/{MACHINE}/StopAndQuarantineFile")
}

async fn send(tenant: &host_harness::Tenant, url: &str, steps: &str) -> Outcome<MachineAction> {
    probe()
        .stop_and_quarantine(tenant, url, steps, "")
        .await
        .expect("the probe runs")
}

fn transport(outcome: &Outcome<MachineAction>) -> &str {
    match &outcome.result {
        Err(ActionError::Transport(code)) => code,
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_request_that_follows_the_rules_goes_out_with_the_real_token() {
    let simulator = simulator().await;
    let outcome = send(
        &tenant(&simulator),
        &action_url(&simulator.base_url()),
        "credential,permit",
    )
    .await;
    let Err(ActionError::Upstream(api)) = &outcome.result else {
        panic!("{:?}", outcome.result);
    };
    assert_eq!(api.status, 201);
    assert!(outcome.denials.is_empty());
    let requests = simulator.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn a_host_outside_the_allowlist_is_denied() {
    let simulator = simulator().await;
    let elsewhere = integration_tests::simulator().await;
    let outcome = send(
        &tenant(&simulator),
        &action_url(&elsewhere.base_url()),
        "credential,permit",
    )
    .await;
    assert_eq!(transport(&outcome), "ErrorCode::HttpRequestDenied");
    assert!(
        outcome.denials[0].contains("outside the allowlist"),
        "{:?}",
        outcome.denials
    );
    assert!(elsewhere.requests().is_empty());
    assert!(simulator.requests().is_empty());
}

#[tokio::test]
async fn a_different_scheme_to_the_same_host_and_port_is_denied() {
    let simulator = simulator().await;
    let url = action_url(&simulator.base_url()).replacen("http://", "https://", 1);
    let outcome = send(&tenant(&simulator), &url, "credential,permit").await;
    assert_eq!(transport(&outcome), "ErrorCode::HttpRequestDenied");
    assert!(simulator.requests().is_empty());
}

#[tokio::test]
async fn a_call_without_a_permit_is_refused() {
    let simulator = simulator().await;
    let outcome = send(
        &tenant(&simulator),
        &action_url(&simulator.base_url()),
        "credential",
    )
    .await;
    assert_eq!(transport(&outcome), "ErrorCode::HttpRequestDenied");
    assert!(
        outcome.denials[0].contains("permit"),
        "{:?}",
        outcome.denials
    );
    assert!(simulator.requests().is_empty());
}

#[tokio::test]
async fn one_permit_covers_one_request_only() {
    let simulator = simulator().await;
    let tenant = tenant(&simulator);
    let url = action_url(&simulator.base_url());
    // Each invocation has its own store: a permit granted to one is not usable by the next.
    send(&tenant, &url, "credential,permit").await;
    let outcome = send(&tenant, &url, "credential").await;
    assert_eq!(transport(&outcome), "ErrorCode::HttpRequestDenied");
    assert_eq!(simulator.requests().len(), 1);
}

#[tokio::test]
async fn an_authorization_of_the_components_own_is_refused() {
    let simulator = simulator().await;
    let outcome = send(
        &tenant(&simulator),
        &action_url(&simulator.base_url()),
        "credential,own-auth,permit",
    )
    .await;
    assert_eq!(transport(&outcome), "ErrorCode::HttpRequestDenied");
    assert!(
        outcome.denials[0].contains("sealed credential"),
        "{:?}",
        outcome.denials
    );
    assert!(simulator.requests().is_empty());
}

#[tokio::test]
async fn a_request_without_a_granted_credential_is_refused() {
    let simulator = simulator().await;
    let outcome = send(
        &tenant(&simulator),
        &action_url(&simulator.base_url()),
        "permit",
    )
    .await;
    assert_eq!(transport(&outcome), "ErrorCode::HttpRequestDenied");
    assert!(simulator.requests().is_empty());
}
