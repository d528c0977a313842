//! The host's outbound policy against a hostile component (the probe, which sends exactly the
//! request it is told to), beside a good tenant. The first test shows the probe gets through
//! when it follows the rules, so each refusal below is the policy's doing.

use crate::hostile_probe::{api, api_of, beside_a_good_tenant, denied, hostile_limits};
use defender_host::ActionError;
use defender_host::limits::Limits;
use defender_host::rate_limit::Api;
use defender_simulator::{Reply, Simulator};
use integration_tests::{TOKEN, probe, simulator, tenant};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_follows_the_rules_goes_out_with_the_real_token() {
    let run = beside_a_good_tenant(api, "credential,permit", hostile_limits()).await;
    let outcome = run.result.expect("the probe completes");
    let Err(ActionError::Upstream(answer)) = &outcome.result else {
        panic!("{:?}", outcome.result);
    };
    assert_eq!(answer.status, 201);
    assert!(outcome.denials.is_empty());
    let requests = run.hostile.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_outside_the_allowlist_is_refused() {
    let elsewhere = simulator().await;
    let url = api_of(&elsewhere);
    let run = beside_a_good_tenant(|_, _| url, "credential,permit", hostile_limits()).await;
    let denials = denied(run.result);
    assert!(denials[0].contains("outside the allowlist"), "{denials:?}");
    assert!(elsewhere.requests().is_empty());
    assert!(run.hostile.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_scheme_to_the_same_host_and_port_is_refused() {
    let https =
        |hostile: &Simulator, _: &Simulator| api_of(hostile).replacen("http://", "https://", 1);
    let run = beside_a_good_tenant(https, "credential,permit", hostile_limits()).await;
    assert!(denied(run.result)[0].contains("outside the allowlist"));
    assert!(run.hostile.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_address_is_refused_before_any_connection() {
    let private = |_: &Simulator, _: &Simulator| "http://10.0.0.1/api/machines".to_owned();
    let run = beside_a_good_tenant(private, "credential,permit", hostile_limits()).await;
    assert!(denied(run.result)[0].contains("http://10.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_host_is_refused() {
    let sign_in = |_: &Simulator, _: &Simulator| {
        "https://login.microsoftonline.com/common/oauth2/v2.0/token".to_owned()
    };
    let run = beside_a_good_tenant(sign_in, "credential,permit", hostile_limits()).await;
    assert!(denied(run.result)[0].contains("login.microsoftonline.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_api_is_refused_with_this_tenants_credential() {
    let run = beside_a_good_tenant(
        |_, good| api_of(good),
        "credential,permit",
        hostile_limits(),
    )
    .await;
    denied(run.result);
    // The good tenant's simulator saw its five requests and nothing from the hostile tenant.
    assert_eq!(run.good.requests().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_permit_is_refused() {
    let run = beside_a_good_tenant(api, "credential", hostile_limits()).await;
    assert!(denied(run.result)[0].contains("permit"));
    assert!(run.hostile.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_permit_covers_one_request_only() {
    let simulator = simulator().await;
    let tenant = tenant(&simulator);
    let url = api_of(&simulator);
    // Each invocation has its own store: a permit granted to one is not usable by the next.
    let first = probe()
        .stop_and_quarantine(&tenant, &url, "credential,permit", "")
        .await;
    assert!(first.expect("the probe completes").denials.is_empty());
    let second = probe()
        .stop_and_quarantine(&tenant, &url, "credential", "")
        .await;
    assert!(denied(second)[0].contains("permit"));
    assert_eq!(simulator.requests().len(), 1);
    // Within one invocation, one permit pays for the first of two sends, not the second.
    let twice = probe()
        .stop_and_quarantine(&tenant, &url, "credential,permit,twice", "")
        .await;
    let reasons = denied(twice);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("permit"), "{reasons:?}");
    assert_eq!(
        simulator.requests().len(),
        2,
        "only the first send went out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_of_the_components_own_is_refused() {
    let run = beside_a_good_tenant(api, "credential,own-auth,permit", hostile_limits()).await;
    assert!(denied(run.result)[0].contains("sealed credential"));
    assert!(run.hostile.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_granted_credential_is_refused() {
    let run = beside_a_good_tenant(api, "permit", hostile_limits()).await;
    assert!(denied(run.result)[0].contains("credential"));
    assert!(run.hostile.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_component_can_only_read_a_worthless_seal() {
    let run = beside_a_good_tenant(api, "credential,reveal", hostile_limits()).await;
    let Err(ActionError::Transport(revealed)) = run.result.expect("the probe completes").result
    else {
        panic!("expected the revealed value");
    };
    assert!(revealed.starts_with("Bearer sealed."), "{revealed}");
    assert!(!revealed.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_pause_its_tenant_without_a_429() {
    let run = beside_a_good_tenant(api, "throttle,credential,permit", hostile_limits()).await;
    let outcome = run.result.expect("the probe completes");
    assert!(
        matches!(&outcome.result, Err(ActionError::Upstream(answer)) if answer.status == 201),
        "the permit after the throttle was granted: {:?}",
        outcome.result
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_429_a_guests_throttle_counts_once_never_re_armed() {
    let simulator = simulator().await;
    simulator.script([Reply::throttle(1)]);
    let mut throttled = tenant(&simulator);
    throttled.limits = Some(Limits {
        max_retry_after: Duration::from_secs(120),
        ..hostile_limits()
    });
    let url = api_of(&simulator);
    let first = probe()
        .stop_and_quarantine(&throttled, &url, "credential,permit,throttle-after", "")
        .await
        .expect("the probe completes");
    assert!(
        matches!(&first.result, Err(ActionError::Upstream(answer)) if answer.status == 429),
        "{:?}",
        first.result
    );
    // The 429 asked for a second and the guest's first `throttled` for one more; its second,
    // for ever, is not honoured: the pause is about a second, not the two-minute clamp.
    let paused = throttled
        .budgets
        .try_acquire(Api::CreateAction)
        .await
        .expect_err("paused");
    assert!(paused <= Duration::from_secs(1), "paused for {paused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_reads_only_the_retry_after_the_host_applied() {
    // `+5` and garbage are not delay-seconds (RFC 9110 §10.2.3), so the host cannot read them;
    // a lenient parser in a guest would read `+100000000` as three years.
    for (sent, handed) in [
        ("+100000000", "60"),
        ("soon", "60"),
        ("100000000", "120"),
        ("7", "7"),
    ] {
        let simulator = simulator().await;
        simulator.script([Reply::Throttle {
            retry_after: sent.into(),
        }]);
        let mut throttled = tenant(&simulator);
        throttled.limits = Some(Limits {
            max_retry_after: Duration::from_secs(120),
            ..hostile_limits()
        });
        let outcome = probe()
            .stop_and_quarantine(&throttled, &api_of(&simulator), "credential,permit", "")
            .await
            .expect("the probe completes");
        let Err(ActionError::Upstream(answer)) = &outcome.result else {
            panic!("{sent}: {:?}", outcome.result);
        };
        assert_eq!(answer.status, 429);
        assert_eq!(answer.message.as_deref(), Some(handed), "{sent}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_defender_calls_on_the_tenants_own_api_are_refused() {
    let device = "0".repeat(40);
    for (path, steps) in [
        (
            format!("/api/machines/{device}/offboard"),
            "credential,permit",
        ),
        (
            format!("/api/machines/{device}/isolate"),
            "credential,permit",
        ),
        ("/api/alerts".to_owned(), "credential,permit,get"),
        (
            format!("/api/machines/{device}/StopAndQuarantineFile"),
            "credential,permit,get",
        ),
    ] {
        let url = move |hostile: &Simulator, _: &Simulator| format!("{}{path}", hostile.base_url());
        let run = beside_a_good_tenant(url, steps, hostile_limits()).await;
        let denials = denied(run.result);
        assert!(
            denials[0].contains("is not a request the component needs"),
            "{denials:?}"
        );
        assert!(run.hostile.requests().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permit_for_one_api_cannot_pay_for_another() {
    let run = beside_a_good_tenant(api, "credential,permit-get", hostile_limits()).await;
    let denials = denied(run.result);
    assert!(
        denials[0].contains("not covered by a rate-limit permit for create-action"),
        "{denials:?}"
    );
    assert!(run.hostile.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permit_kept_for_later_pays_for_nothing() {
    let run = beside_a_good_tenant(api, "credential,permit,late", hostile_limits()).await;
    let denials = denied(run.result);
    assert!(
        denials[0].contains("granted in the last 1 s"),
        "{denials:?}"
    );
    assert!(run.hostile.requests().is_empty());
}
