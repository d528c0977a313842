use super::*;
use crate::bindings::defender::endpoint::types::ActionStatus;
use crate::request::Method;
use std::collections::VecDeque;

/// A scripted stand-in for the host and the network, recording what the call did.
#[derive(Default)]
struct Script {
    answers: VecDeque<Result<RawResponse, String>>,
    permits: VecDeque<Permit>,
    now: u64,
    sent: Vec<String>,
    sleeps: Vec<u64>,
    refreshes: Vec<bool>,
    throttled: Vec<u64>,
}

impl Host for Script {
    fn credential(&mut self, refresh: bool) -> Result<Grant, String> {
        self.refreshes.push(refresh);
        Ok(Grant {
            api_base_url: "https://api.security.microsoft.com".into(),
            authorization: format!("Bearer sealed-{}", self.refreshes.len()),
        })
    }
    fn acquire_permit(&mut self) -> Permit {
        self.permits.pop_front().unwrap_or(Permit::Granted)
    }
    fn throttled(&mut self, retry_after_ms: u64) {
        self.throttled.push(retry_after_ms);
    }
    fn send(
        &mut self,
        base: &ApiBase,
        auth: &str,
        request: &ApiRequest,
    ) -> Result<RawResponse, String> {
        assert_eq!(request.method, Method::Post);
        self.sent
            .push(format!("{}{} {auth}", base.authority, request.path));
        self.answers
            .pop_front()
            .expect("an unscripted request was sent")
    }
    fn now_ms(&mut self) -> u64 {
        self.now
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.sleeps.push(ms);
        self.now += ms;
    }
    fn random(&mut self) -> u64 {
        0
    }
}

fn answer(status: u16, body: &str) -> Result<RawResponse, String> {
    Ok(RawResponse {
        status,
        retry_after: None,
        body: body.as_bytes().to_vec(),
        truncated: false,
    })
}

fn throttle(secs: &str) -> Result<RawResponse, String> {
    Ok(RawResponse {
        retry_after: Some(secs.into()),
        ..answer(
            429,
            r#"{"error":{"code":"TooManyRequests","message":"slow","target":"t"}}"#,
        )?
    })
}

const CREATED: &str = r#"{"id":"a1","status":"Pending"}"#;

fn run(script: &mut Script) -> Result<MachineAction, ActionError> {
    let request = ApiRequest {
        method: Method::Post,
        path: "/api/x".into(),
        body: b"{}".to_vec(),
    };
    perform(script, &request, &RetryPolicy::default())
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
        ["api.security.microsoft.com/api/x Bearer sealed-1"]
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
    let mut script = Script {
        answers: [Err("connection refused".into())].into(),
        ..Default::default()
    };
    assert_eq!(
        run(&mut script),
        Err(ActionError::Transport("connection refused".into()))
    );
    assert_eq!(script.sent.len(), 1);
}
