use super::*;
use crate::bindings::defender::endpoint::types::{ActionStatus, MachineAction};
use crate::request::Method;
use crate::script::{Script, answer, throttle};

const CREATED: &str = r#"{"id":"a1","status":"Pending"}"#;

fn run(script: &mut Script) -> Result<MachineAction, ActionError> {
    let request = ApiRequest {
        api: Api::CreateAction,
        method: Method::Post,
        path: "/api/x".into(),
        body: b"{}".to_vec(),
    };
    let answer = perform(script, &request, &RetryPolicy::default())?;
    crate::response::machine_action(&answer, crate::response::Effect::Create)
}

#[test]
fn success_sends_once_with_the_granted_credential() {
    let mut script = Script {
        answers: [answer(201, CREATED)].into(),
        ..Default::default()
    };
    let action = run(&mut script).unwrap();
    assert_eq!(action.status, ActionStatus::Pending);
    assert_eq!(
        script.sent,
        ["Post api.security.microsoft.com/api/x Bearer sealed-1"]
    );
    assert_eq!(script.refreshes, [false]);
}

#[test]
fn waits_for_a_denied_permit_then_sends() {
    let mut script = Script {
        answers: [answer(201, CREATED)].into(),
        permits: [Permit::Denied(1500), Permit::Denied(0), Permit::Granted].into(),
        ..Default::default()
    };
    run(&mut script).unwrap();
    assert_eq!(script.sleeps, [1500, 1]);
    assert_eq!(script.sent.len(), 1);
}

#[test]
fn a_permit_beyond_the_deadline_is_rate_limited_without_sending() {
    let mut script = Script {
        permits: [Permit::Denied(3_600_000)].into(),
        ..Default::default()
    };
    let Err(ActionError::RateLimited(limited)) = run(&mut script) else {
        panic!("expected rate limited");
    };
    assert_eq!(limited.retry_after_ms, 3_600_000);
    assert_eq!(limited.api, None);
    assert!(script.sent.is_empty());
}

#[test]
fn throttling_waits_retry_after_and_tells_the_host() {
    let mut script = Script {
        answers: [throttle("2"), answer(201, CREATED)].into(),
        ..Default::default()
    };
    run(&mut script).unwrap();
    assert_eq!(script.throttled, [2000]);
    assert_eq!(script.throttled_apis, [Api::CreateAction]);
    assert!(
        script
            .permit_apis
            .iter()
            .all(|api| *api == Api::CreateAction)
    );
    assert_eq!(script.sleeps, [2000]);
    assert_eq!(script.sent.len(), 2);
}

#[test]
fn throttling_past_the_deadline_reports_the_api_answer() {
    let mut script = Script {
        answers: [
            throttle("30"),
            throttle("30"),
            throttle("30"),
            throttle("30"),
        ]
        .into(),
        ..Default::default()
    };
    let Err(ActionError::RateLimited(limited)) = run(&mut script) else {
        panic!("expected rate limited");
    };
    assert_eq!(limited.retry_after_ms, 30_000);
    assert_eq!(
        limited.api.unwrap().code.as_deref(),
        Some("TooManyRequests")
    );
    assert_eq!(script.sent.len(), 4);
    assert!(script.now <= 90_000);
}

#[test]
fn server_errors_are_retried_with_backoff_then_given_up() {
    let mut script = Script {
        answers: [answer(503, ""), answer(500, ""), answer(201, CREATED)].into(),
        ..Default::default()
    };
    run(&mut script).unwrap();
    assert_eq!(script.sleeps, [250, 500]);

    let mut script = Script {
        answers: (0..4).map(|_| answer(502, "")).collect(),
        ..Default::default()
    };
    let Err(ActionError::Upstream(api)) = run(&mut script) else {
        panic!("expected upstream");
    };
    assert_eq!(api.status, 502);
    assert_eq!(script.sent.len(), 4);
}

#[test]
fn unauthorized_refreshes_once() {
    let unauthorized = r#"{"error":{"code":"Unauthorized","message":"expired","target":"c"}}"#;
    let mut script = Script {
        answers: [answer(401, unauthorized), answer(201, CREATED)].into(),
        ..Default::default()
    };
    run(&mut script).unwrap();
    assert_eq!(script.refreshes, [false, true]);
    assert!(script.sent[1].ends_with("Bearer sealed-2"));

    let mut script = Script {
        answers: [answer(401, unauthorized), answer(401, unauthorized)].into(),
        ..Default::default()
    };
    let Err(ActionError::Unauthorized(api)) = run(&mut script) else {
        panic!("expected unauthorized");
    };
    assert_eq!(api.target.as_deref(), Some("c"));
    assert_eq!(script.sent.len(), 2);
}

#[test]
fn final_errors_and_transport_failures_are_not_retried() {
    let mut script = Script {
        answers: [answer(404, "")].into(),
        ..Default::default()
    };
    assert!(matches!(run(&mut script), Err(ActionError::NotFound(_))));
    let refused = SendError {
        message: "connection refused".into(),
        maybe_sent: false,
    };
    let mut script = Script {
        answers: [Err(refused)].into(),
        ..Default::default()
    };
    assert_eq!(
        run(&mut script),
        Err(ActionError::Transport("connection refused".into()))
    );
    assert_eq!(script.sent.len(), 1);
}

#[test]
fn a_broken_exchange_is_reported_as_maybe_sent() {
    let dropped = SendError {
        message: "connection terminated".into(),
        maybe_sent: true,
    };
    let mut script = Script {
        answers: [Err(dropped)].into(),
        ..Default::default()
    };
    let request = ApiRequest {
        api: Api::CreateAction,
        method: Method::Post,
        path: "/api/x".into(),
        body: b"{}".to_vec(),
    };
    assert_eq!(
        perform(&mut script, &request, &RetryPolicy::default()),
        Err(Failure::MaybeSent("connection terminated".into()))
    );
}
