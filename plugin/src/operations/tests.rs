use super::*;
use crate::bindings::defender::endpoint::rate_limit::Permit;
use crate::bindings::defender::endpoint::types::ApiError;
use crate::example::{MACHINE, SHA1};
use crate::script::{Script, answer};
const ID: &str = "141408d1-384c-4c19-8b57-ba39e378011a";

fn action(id: &str, status: &str, created: &str, sha1: &str) -> String {
    format!(
        r#"{{"id":"{id}","status":"{status}","machineId":"{MACHINE}","creationDateTimeUtc":"{created}",
            "relatedFileInfo":{{"fileIdentifier":"{sha1}","fileIdentifierType":"Sha1"}}}}"#
    )
}

fn listing(actions: &[String]) -> String {
    format!(r#"{{"value":[{}]}}"#, actions.join(","))
}

const NOW: &str = "2026-11-27T00:00:00Z";
const YESTERDAY: &str = "2026-11-26T00:00:00Z";

fn dropped() -> Result<crate::response::RawResponse, crate::call::SendError> {
    Err(crate::call::SendError {
        message: "the request failed: ConnectionTerminated".into(),
        maybe_sent: true,
    })
}

fn create_with(script: &mut Script) -> Result<Quarantined, ActionError> {
    create(
        script,
        &MachineId::parse(MACHINE).unwrap(),
        &Sha1::parse(SHA1).unwrap(),
        &Comment::parse("c").unwrap(),
        &RetryPolicy::default(),
    )
}

fn methods(script: &Script) -> Vec<&str> {
    script
        .sent
        .iter()
        .map(|s| s.split(' ').next().unwrap())
        .collect()
}

#[test]
fn a_new_action_is_created_not_adopted() {
    let mut script = Script {
        answers: [answer(201, &action("a", "Pending", NOW, SHA1))].into(),
        ..Default::default()
    };
    let q = create_with(&mut script).unwrap();
    assert!(!q.adopted);
    assert_eq!(methods(&script), ["Post"]);
}

#[test]
fn a_201_with_an_older_action_is_adopted() {
    let mut script = Script {
        answers: [answer(201, &action("old", "InProgress", YESTERDAY, SHA1))].into(),
        ..Default::default()
    };
    let q = create_with(&mut script).unwrap();
    assert!(q.adopted);
    assert_eq!(q.action.id, "old");
}

#[test]
fn already_pending_adopts_the_pending_action_for_this_file() {
    let pending = r#"{"error":{"code":"ActiveRequestAlreadyExists","message":"Action is already in progress","target":"t"}}"#;
    let other_file = action(
        "x",
        "Pending",
        NOW,
        "ffffffffffffffffffffffffffffffffffffffff",
    );
    let finished = action("y", "Succeeded", NOW, SHA1);
    let wanted = action("z", "Pending", YESTERDAY, &SHA1.to_uppercase());
    let mut script = Script {
        answers: [
            answer(400, pending),
            answer(200, &listing(&[other_file, finished, wanted])),
        ]
        .into(),
        ..Default::default()
    };
    let q = create_with(&mut script).unwrap();
    assert!(q.adopted);
    assert_eq!(q.action.id, "z");
    assert_eq!(methods(&script), ["Post", "Get"]);
    assert!(script.sent[1].contains("/api/machineactions?$filter=machineId%20eq%20"));
}

#[test]
fn already_pending_without_a_match_is_the_already_pending_error() {
    let pending = r#"{"error":{"code":"ActiveRequestAlreadyExists","message":"m","target":"t"}}"#;
    let mut script = Script {
        answers: [
            answer(400, pending),
            answer(200, &listing(&[action("y", "Failed", NOW, SHA1)])),
        ]
        .into(),
        ..Default::default()
    };
    let Err(ActionError::AlreadyPending(api)) = create_with(&mut script) else {
        panic!("expected already pending");
    };
    assert_eq!(api.target.as_deref(), Some("t"));
}

#[test]
fn the_lookup_reads_four_days_of_the_devices_actions_in_pages_it_can_read() {
    let pending = r#"{"error":{"code":"ActiveRequestAlreadyExists","message":"m","target":"t"}}"#;
    let too_large = Ok(crate::response::RawResponse {
        status: 200,
        retry_after: None,
        body: b"{".to_vec(),
        truncated: true,
    });
    let wanted = action("z", "InProgress", YESTERDAY, SHA1);
    let mut script = Script {
        answers: [
            answer(400, pending),
            too_large,
            answer(200, &listing(&[wanted])),
        ]
        .into(),
        ..Default::default()
    };
    let q = create_with(&mut script).unwrap();
    assert!(q.adopted);
    assert_eq!(q.action.id, "z");
    // The clock reads 2026-11-27T00:00:00Z: four days back, then half the page.
    assert!(
        script.sent[1].contains("creationDateTimeUtc%20ge%202026-11-23T00%3A00%3A00Z&$top=500 "),
        "{}",
        script.sent[1]
    );
    assert!(script.sent[2].contains("&$top=250 "), "{}", script.sent[2]);
}

#[test]
fn already_pending_whose_lookup_fails_is_the_lookups_error_saying_so() {
    let pending =
        r#"{"error":{"code":"ActiveRequestAlreadyExists","message":"m","target":"corr-p"}}"#;
    let forbidden =
        r#"{"error":{"code":"Forbidden","message":"no Machine.Read.All","target":"corr-l"}}"#;
    let mut script = Script {
        answers: [answer(400, pending), answer(403, forbidden)].into(),
        ..Default::default()
    };
    let Err(ActionError::Forbidden(error)) = create_with(&mut script) else {
        panic!("expected the lookup's 403, not already-pending");
    };
    assert_eq!(error.api.target.as_deref(), Some("corr-l"));
    assert_eq!(
        error.api.message.as_deref(),
        Some(
            "the API answered ActiveRequestAlreadyExists (correlation ID corr-p), and looking \
             for the device's pending action failed: no Machine.Read.All"
        )
    );
    assert_eq!(methods(&script), ["Post", "Get"]);
}

#[test]
fn already_pending_whose_lookup_is_throttled_is_rate_limited() {
    let pending =
        r#"{"error":{"code":"ActiveRequestAlreadyExists","message":"m","target":"corr-p"}}"#;
    let mut script = Script {
        answers: [answer(400, pending)].into(),
        // The lookup's permit is refused for longer than the call's deadline.
        permits: [Permit::Granted, Permit::Denied(10_000_000)].into(),
        ..Default::default()
    };
    let Err(ActionError::RateLimited(limited)) = create_with(&mut script) else {
        panic!("expected the lookup's rate limit");
    };
    assert_eq!(limited.retry_after_ms, 10_000_000);
    assert_eq!(limited.api, None, "the host's budget, not an API answer");
}

#[test]
fn a_dropped_post_that_created_the_action_is_not_sent_again() {
    let mut script = Script {
        answers: [
            dropped(),
            answer(200, &listing(&[action("made", "Pending", NOW, SHA1)])),
        ]
        .into(),
        ..Default::default()
    };
    let q = create_with(&mut script).unwrap();
    assert_eq!((q.action.id.as_str(), q.adopted), ("made", false));
    assert_eq!(methods(&script), ["Post", "Get"]);
}

#[test]
fn a_dropped_post_that_created_nothing_is_sent_again_after_looking_twice() {
    let mut script = Script {
        answers: [
            dropped(),
            answer(
                200,
                &listing(&[action("old", "Succeeded", YESTERDAY, SHA1)]),
            ),
            answer(200, &listing(&[])),
            answer(201, &action("new", "Pending", NOW, SHA1)),
        ]
        .into(),
        ..Default::default()
    };
    let q = create_with(&mut script).unwrap();
    assert_eq!(q.action.id, "new");
    assert_eq!(methods(&script), ["Post", "Get", "Get", "Post"]);
    assert_eq!(script.sleeps, [LOOKUP_SETTLE_MS]);
}

#[test]
fn a_dropped_post_whose_lookup_fails_is_not_sent_again() {
    let mut script = Script {
        answers: [dropped(), answer(403, "")].into(),
        ..Default::default()
    };
    let Err(ActionError::Transport(message)) = create_with(&mut script) else {
        panic!("expected transport");
    };
    assert!(message.contains("not sent again"), "{message}");
    assert!(message.contains("HTTP 403"), "{message}");
    assert_eq!(methods(&script), ["Post", "Get"]);
}

#[test]
fn sends_are_bounded_when_every_post_drops() {
    let mut answers = Vec::new();
    for _ in 0..MAX_SENDS {
        answers.extend([
            dropped(),
            answer(200, &listing(&[])),
            answer(200, &listing(&[])),
        ]);
    }
    let mut script = Script {
        answers: answers.into(),
        ..Default::default()
    };
    let Err(ActionError::Transport(message)) = create_with(&mut script) else {
        panic!("expected transport");
    };
    assert!(message.contains("sent 3 times"), "{message}");
}

#[test]
fn a_new_actions_404_is_retried_before_it_is_believed() {
    let id = ActionId::parse(ID).unwrap();
    let mut script = Script {
        answers: [
            answer(404, ""),
            answer(404, ""),
            answer(200, &action(ID, "InProgress", NOW, SHA1)),
        ]
        .into(),
        ..Default::default()
    };
    let got = get_action(&mut script, &id, &RetryPolicy::default()).unwrap();
    assert_eq!(got.status, ActionStatus::InProgress);
    assert_eq!(script.sleeps, [1000, 2000]);

    let mut script = Script {
        answers: (0..4).map(|_| answer(404, "")).collect(),
        ..Default::default()
    };
    assert!(matches!(
        get_action(&mut script, &id, &RetryPolicy::default()),
        Err(ActionError::NotFound(_))
    ));
    assert_eq!(script.sent.len(), 4);
}

#[test]
fn a_failed_lookup_keeps_its_kind_and_says_what_came_before() {
    use crate::bindings::defender::endpoint::types::{ForbiddenError, RateLimitedError};
    let api = |status: u16| ApiError {
        status,
        code: Some("Code".into()),
        message: Some("said".into()),
        target: Some("corr-l".into()),
    };
    let pending = ApiError {
        target: Some("corr-p".into()),
        ..api(400)
    };
    let context = "the API answered ActiveRequestAlreadyExists (correlation ID corr-p), and \
                   looking for the device's pending action failed";
    let cases = [
        (ActionError::Unauthorized(api(401)), "unauthorized"),
        (ActionError::NotFound(api(404)), "not-found"),
        (ActionError::Upstream(api(503)), "upstream"),
        (ActionError::AlreadyPending(api(400)), "upstream"),
        (
            ActionError::Forbidden(ForbiddenError {
                required_permissions: "p".into(),
                api: api(403),
            }),
            "forbidden",
        ),
        (
            ActionError::RateLimited(RateLimitedError {
                retry_after_ms: 5,
                api: Some(api(429)),
            }),
            "rate-limited",
        ),
    ];
    for (error, kind) in cases {
        let got = lookup_failed(error, &pending);
        let (got_kind, message, target) = match &got {
            ActionError::Unauthorized(a) => ("unauthorized", &a.message, &a.target),
            ActionError::NotFound(a) => ("not-found", &a.message, &a.target),
            ActionError::Upstream(a) => ("upstream", &a.message, &a.target),
            ActionError::Forbidden(f) => ("forbidden", &f.api.message, &f.api.target),
            ActionError::RateLimited(r) => {
                let a = r.api.as_ref().unwrap();
                ("rate-limited", &a.message, &a.target)
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(got_kind, kind);
        assert_eq!(
            message.as_deref(),
            Some(format!("{context}: said").as_str())
        );
        assert_eq!(
            target.as_deref(),
            Some("corr-l"),
            "the lookup's own correlation ID"
        );
    }
    let without_target = ApiError {
        target: None,
        ..pending.clone()
    };
    for (error, expected) in [
        (
            ActionError::Transport("reset".into()),
            ActionError::Transport(format!("{context}: reset")),
        ),
        (
            ActionError::Credentials("expired".into()),
            ActionError::Credentials(format!("{context}: expired")),
        ),
    ] {
        assert_eq!(lookup_failed(error, &pending), expected);
    }
    let ActionError::Transport(message) =
        lookup_failed(ActionError::Transport("x".into()), &without_target)
    else {
        panic!("transport");
    };
    assert!(message.starts_with("the API answered ActiveRequestAlreadyExists, and"));
}

#[test]
fn a_brief_names_each_kind_of_error() {
    use crate::bindings::defender::endpoint::types::{
        ForbiddenError, InvalidInput, RateLimitedError,
    };
    let api = ApiError {
        status: 503,
        code: Some("ServiceUnavailable".into()),
        message: None,
        target: None,
    };
    let cases = [
        (
            ActionError::Upstream(api.clone()),
            "HTTP 503 ServiceUnavailable",
        ),
        (
            ActionError::NotFound(ApiError {
                code: None,
                ..api.clone()
            }),
            "HTTP 503",
        ),
        (
            ActionError::Forbidden(ForbiddenError {
                required_permissions: "p".into(),
                api: ApiError {
                    status: 403,
                    ..api.clone()
                },
            }),
            "HTTP 403 forbidden",
        ),
        (
            ActionError::RateLimited(RateLimitedError {
                retry_after_ms: 7,
                api: None,
            }),
            "rate limited for 7 ms",
        ),
        (
            ActionError::InvalidInput(InvalidInput {
                field: "sha1".into(),
                message: "m".into(),
            }),
            "invalid sha1",
        ),
        (ActionError::Credentials("expired".into()), "expired"),
    ];
    for (error, expected) in cases {
        assert_eq!(brief(&error), expected);
    }
}

#[test]
fn a_lookup_whose_later_page_fails_with_nothing_found_is_that_failure() {
    let pending = r#"{"error":{"code":"ActiveRequestAlreadyExists","message":"m","target":"t"}}"#;
    let next = "https://api.security.microsoft.com/api/machineactions?$skip=1";
    let other_file = action(
        "x",
        "Pending",
        NOW,
        "ffffffffffffffffffffffffffffffffffffffff",
    );
    let page = format!(r#"{{"value":[{other_file}],"@odata.nextLink":"{next}"}}"#);
    let forbidden = r#"{"error":{"code":"Forbidden","message":"no","target":"corr-2"}}"#;
    let mut script = Script {
        answers: [
            answer(400, pending),
            answer(200, &page),
            answer(403, forbidden),
        ]
        .into(),
        ..Default::default()
    };
    let Err(ActionError::Forbidden(error)) = create_with(&mut script) else {
        panic!("expected the second page's 403");
    };
    assert_eq!(error.api.target.as_deref(), Some("corr-2"));
}
