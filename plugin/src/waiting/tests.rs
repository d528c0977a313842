use super::*;
use crate::bindings::defender::endpoint::types::ActionError;
use crate::bindings::defender::endpoint::types::ActionStatus;
use crate::bindings::defender::endpoint::types::ApiError;
use crate::bindings::exports::defender::endpoint::actions::Quarantined;
use crate::example::MACHINE;
use crate::request::Api;
use crate::response::RawResponse;
use crate::script::{Script, answer};

const CREATED: &str = "2026-11-27T00:00:01.5Z";

fn id(n: usize) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}

fn action_json(n: usize, status: &str) -> String {
    format!(
        r#"{{"id":"{}","status":"{status}","machineId":"{MACHINE}","creationDateTimeUtc":"{CREATED}","futureMember":[{n}]}}"#,
        id(n)
    )
}

fn outcomes(count: usize) -> Vec<MachineOutcome> {
    (0..count)
        .map(|n| MachineOutcome {
            machine_id: format!("{n:040x}"),
            outcome: Ok(Quarantined {
                action: machine_action::parse(action_json(n, "Pending").as_bytes()).unwrap(),
                adopted: false,
                poll_error: None,
                cancel_error: None,
            }),
        })
        .collect()
}

fn listing(count: usize, status: &str) -> Result<RawResponse, crate::call::SendError> {
    let items: Vec<String> = (0..count).map(|n| action_json(n, status)).collect();
    answer(200, &format!(r#"{{"value":[{}]}}"#, items.join(",")))
}

fn wait(timeout_ms: u64, cancel_on_timeout: bool) -> Wait {
    Wait {
        timeout_ms,
        cancel_on_timeout,
    }
}

fn status(outcome: &MachineOutcome) -> ActionStatus {
    outcome.outcome.as_ref().unwrap().action.status.clone()
}

#[test]
fn fifty_actions_cost_one_listing_a_round() {
    let mut outcomes = outcomes(50);
    let mut script = Script {
        answers: [listing(50, "InProgress"), listing(50, "Succeeded")].into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(600_000, false), None);
    assert_eq!(script.sent.len(), 2);
    assert_eq!(script.permit_apis, [Api::ListActions; 2]);
    assert!(script.sent.iter().all(|s| s.contains(
        "/api/machineactions?$filter=type%20eq%20%27StopAndQuarantineFile%27%20and%20\
         creationDateTimeUtc%20ge%202026-11-27T00%3A00%3A01Z&$top=500 "
    )));
    assert!(
        outcomes
            .iter()
            .all(|o| status(o) == ActionStatus::Succeeded)
    );
    // The listing's JSON replaces the created one, members the record does not model included.
    let raw = &outcomes[7].outcome.as_ref().unwrap().action.raw;
    assert!(raw.contains(r#""futureMember":[7]"#), "{raw}");
    assert_eq!(script.progress.len(), 100);
    assert_eq!(script.sleeps, [2_000, 3_000]);
}

#[test]
fn a_failed_listing_and_one_that_misses_an_action_are_made_up_for_by_gets() {
    let mut outcomes = outcomes(3);
    let mut script = Script {
        answers: [
            // Round 1: the listing fails for good, so each action gets a GET instead.
            answer(503, "{}"),
            answer(503, "{}"),
            answer(503, "{}"),
            answer(503, "{}"),
            answer(200, &action_json(0, "InProgress")),
            answer(
                404,
                r#"{"error":{"code":"NotFound","message":"m","target":"t"}}"#,
            ),
            answer(
                404,
                r#"{"error":{"code":"NotFound","message":"m","target":"t"}}"#,
            ),
            answer(
                404,
                r#"{"error":{"code":"NotFound","message":"m","target":"t"}}"#,
            ),
            answer(
                404,
                r#"{"error":{"code":"NotFound","message":"m","target":"t"}}"#,
            ),
            answer(200, &action_json(2, "Failed")),
            // Round 2: a listing that shows only the first (it may lag): the second by its ID.
            listing(1, "Succeeded"),
            answer(200, &action_json(1, "Succeeded")),
        ]
        .into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(600_000, false), None);
    assert!(script.answers.is_empty());
    assert_eq!(status(&outcomes[0]), ActionStatus::Succeeded);
    assert_eq!(status(&outcomes[1]), ActionStatus::Succeeded);
    assert_eq!(status(&outcomes[2]), ActionStatus::Failed);
}

#[test]
fn one_action_is_polled_by_its_id() {
    let mut outcomes = outcomes(1);
    let mut script = Script {
        answers: [answer(200, &action_json(0, "Succeeded"))].into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(600_000, false), None);
    assert_eq!(script.permit_apis, [Api::GetAction]);
    assert!(script.sent[0].contains(&format!("/api/machineactions/{} ", id(0))));
    assert_eq!(status(&outcomes[0]), ActionStatus::Succeeded);
}

#[test]
fn the_rest_is_cancelled_at_the_timeout_naming_the_comment() {
    let mut outcomes = outcomes(2);
    let cancelled = |n| answer(200, &action_json(n, "Cancelled"));
    let mut script = Script {
        answers: [listing(2, "Pending"), cancelled(0), cancelled(1)].into(),
        ..Default::default()
    };
    let comment = Comment::parse("incident 7").unwrap();
    wait_for_final(
        &mut script,
        &mut outcomes,
        0,
        &wait(4_000, true),
        Some(&comment),
    );
    assert_eq!(
        script.permit_apis,
        [Api::ListActions, Api::CancelAction, Api::CancelAction]
    );
    assert!(
        outcomes
            .iter()
            .all(|o| status(o) == ActionStatus::Cancelled)
    );
}

#[test]
fn one_by_one_polls_are_bounded_and_taken_in_turn() {
    let mut outcomes = outcomes(25);
    for outcome in &mut outcomes {
        if let Ok(q) = outcome.outcome.as_mut() {
            q.adopted = true;
        }
    }
    let pending = |n: usize| answer(200, &action_json(n, "Pending"));
    let done = |n: usize| answer(200, &action_json(n, "Succeeded"));
    let mut answers: Vec<_> = (0..20).map(done).collect();
    // Twenty a round: the five left wait for the next rounds.
    answers.extend((20..25).map(pending));
    answers.extend((20..25).map(done));
    let mut script = Script {
        answers: answers.into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(600_000, false), None);
    assert!(script.answers.is_empty());
    assert_eq!(script.sent.len(), 30);
    assert!(
        outcomes
            .iter()
            .all(|o| status(o) == ActionStatus::Succeeded)
    );
}

#[test]
fn errors_and_final_actions_are_left_alone() {
    let mut outcomes = outcomes(2);
    outcomes[0].outcome =
        Err(crate::bindings::defender::endpoint::types::ActionError::Transport("x".into()));
    if let Ok(q) = outcomes[1].outcome.as_mut() {
        q.action.status = ActionStatus::Failed;
    }
    let mut script = Script::default();
    wait_for_final(&mut script, &mut outcomes, 0, &wait(600_000, true), None);
    assert!(script.sent.is_empty());
}

#[test]
fn an_adopted_action_is_polled_by_its_id_and_the_rest_by_listing() {
    let mut outcomes = outcomes(3);
    if let Ok(q) = outcomes[2].outcome.as_mut() {
        // Adopted: created long before this run, so not worth listing a week of actions for.
        q.adopted = true;
        q.action.creation_date_time_utc = Some("2026-11-20T00:00:00Z".into());
    }
    let mut script = Script {
        answers: [
            listing(2, "Succeeded"),
            answer(200, &action_json(2, "Succeeded")),
        ]
        .into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(600_000, false), None);
    assert_eq!(script.permit_apis, [Api::ListActions, Api::GetAction]);
    assert!(
        script.sent[0].contains("ge%202026-11-27T00%3A00%3A01Z"),
        "{}",
        script.sent[0]
    );
    assert!(
        outcomes
            .iter()
            .all(|o| status(o) == ActionStatus::Succeeded)
    );
}

#[test]
fn a_listing_is_read_only_until_every_action_is_seen() {
    let mut outcomes = outcomes(2);
    let page = |from: usize| {
        let items: Vec<String> = (from..from + 2)
            .map(|n| action_json(n, "Succeeded"))
            .collect();
        let next = "https://api.security.microsoft.com/api/machineactions?$skip=9";
        answer(
            200,
            &format!(
                r#"{{"value":[{}],"@odata.nextLink":"{next}"}}"#,
                items.join(",")
            ),
        )
    };
    let mut script = Script {
        answers: [page(0)].into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(600_000, false), None);
    assert_eq!(script.sent.len(), 1, "the next page is not read");
    assert!(
        outcomes
            .iter()
            .all(|o| status(o) == ActionStatus::Succeeded)
    );
}

fn poll_error(outcome: &MachineOutcome) -> Option<ActionError> {
    outcome.outcome.as_ref().unwrap().poll_error.clone()
}

fn not_found() -> Result<RawResponse, crate::call::SendError> {
    answer(
        404,
        r#"{"error":{"code":"ResourceNotFound","message":"gone","target":"corr-9"}}"#,
    )
}

#[test]
fn a_poll_that_keeps_failing_is_reported_and_kept_in_the_outcome() {
    let mut outcomes = outcomes(1);
    // Every GET of the round is a 404 (retried three times, then believed), until the timeout.
    let mut script = Script {
        answers: [not_found(), not_found(), not_found(), not_found()].into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(3_000, false), None);
    assert!(script.answers.is_empty());
    let Some(ActionError::NotFound(api)) = poll_error(&outcomes[0]) else {
        panic!("{:?}", outcomes[0]);
    };
    assert_eq!(api.target.as_deref(), Some("corr-9"));
    assert_eq!(
        status(&outcomes[0]),
        ActionStatus::Pending,
        "the last status seen"
    );
    assert_eq!(script.progress.len(), 1);
    let update = &script.progress[0];
    assert_eq!(update.action_id, id(0));
    assert_eq!(update.status, ActionStatus::Pending);
    assert!(!update.is_final);
    assert!(matches!(update.error, Some(ActionError::NotFound(_))));
}

#[test]
fn a_poll_error_is_cleared_by_a_later_look_that_succeeds() {
    let mut outcomes = outcomes(1);
    let mut script = Script {
        answers: [
            not_found(),
            not_found(),
            not_found(),
            not_found(),
            answer(200, &action_json(0, "Succeeded")),
        ]
        .into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(600_000, false), None);
    assert_eq!(poll_error(&outcomes[0]), None);
    assert_eq!(status(&outcomes[0]), ActionStatus::Succeeded);
    let errors: Vec<bool> = script.progress.iter().map(|u| u.error.is_some()).collect();
    assert_eq!(errors, [true, false]);
    assert!(script.progress[1].is_final);
}

#[test]
fn a_failed_listing_is_each_actions_poll_error_until_a_get_sees_it() {
    let mut outcomes = outcomes(2);
    let unavailable = || {
        answer(
            503,
            r#"{"error":{"code":"ServiceUnavailable","message":"m","target":"t"}}"#,
        )
    };
    let mut script = Script {
        // The listing fails for good (a first try and three retries); the GET of the first
        // action succeeds, the second's answers 403.
        answers: [
            unavailable(),
            unavailable(),
            unavailable(),
            unavailable(),
            answer(200, &action_json(0, "Succeeded")),
            answer(
                403,
                r#"{"error":{"code":"Forbidden","message":"m","target":"t"}}"#,
            ),
        ]
        .into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(3_000, false), None);
    assert!(script.answers.is_empty());
    assert_eq!(poll_error(&outcomes[0]), None);
    assert!(matches!(
        poll_error(&outcomes[1]),
        Some(ActionError::Forbidden(_))
    ));
    // Two reports of the listing's failure, then the first action's status, then the 403.
    let reported: Vec<(String, bool)> = script
        .progress
        .iter()
        .map(|u| (u.action_id.clone(), u.error.is_some()))
        .collect();
    assert_eq!(
        reported,
        [(id(0), true), (id(1), true), (id(0), false), (id(1), true)]
    );
    assert!(matches!(
        script.progress[0].error,
        Some(ActionError::Upstream(_))
    ));
}

#[test]
fn a_cancellation_that_fails_is_reported_and_kept_in_the_outcome() {
    let mut outcomes = outcomes(2);
    let mut script = Script {
        answers: [
            listing(2, "Pending"),
            answer(200, &action_json(0, "Cancelled")),
            answer(
                400,
                r#"{"error":{"code":"BadRequest","message":"final","target":"corr-c"}}"#,
            ),
            // A look after the refusal: still pending, so the cancellation failed indeed.
            answer(200, &action_json(1, "Pending")),
        ]
        .into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(4_000, true), None);
    assert!(script.answers.is_empty());
    let second = outcomes[1].outcome.as_ref().unwrap();
    let Some(ActionError::Upstream(api)) = &second.cancel_error else {
        panic!("{second:?}");
    };
    assert_eq!(api.target.as_deref(), Some("corr-c"));
    assert_eq!(second.action.status, ActionStatus::Pending);
    assert_eq!(outcomes[0].outcome.as_ref().unwrap().cancel_error, None);
    assert_eq!(status(&outcomes[0]), ActionStatus::Cancelled);
    let last = script.progress.last().unwrap();
    assert_eq!(last.action_id, id(1));
    assert!(matches!(last.error, Some(ActionError::Upstream(_))));
}

#[test]
fn a_cancellation_refused_for_an_action_now_final_is_no_failure() {
    let mut outcomes = outcomes(1);
    let mut script = Script {
        answers: [
            answer(200, &action_json(0, "Pending")),
            answer(
                400,
                r#"{"error":{"code":"BadRequest","message":"final","target":"corr-c"}}"#,
            ),
            answer(200, &action_json(0, "Succeeded")),
        ]
        .into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(4_000, true), None);
    assert!(script.answers.is_empty());
    let q = outcomes[0].outcome.as_ref().unwrap();
    assert_eq!(q.action.status, ActionStatus::Succeeded);
    assert_eq!(q.cancel_error, None);
    assert!(script.progress.last().unwrap().is_final);
}

#[test]
fn a_listing_that_fails_after_its_first_page_is_each_missed_actions_poll_error() {
    let mut outcomes = outcomes(3);
    let next = "https://api.security.microsoft.com/api/machineactions?$skip=1";
    let unavailable = || {
        answer(
            503,
            r#"{"error":{"code":"ServiceUnavailable","message":"m","target":"t"}}"#,
        )
    };
    let mut script = Script {
        answers: [
            answer(
                200,
                &format!(
                    r#"{{"value":[{}],"@odata.nextLink":"{next}"}}"#,
                    action_json(0, "Succeeded")
                ),
            ),
            unavailable(),
            unavailable(),
            unavailable(),
            unavailable(),
            answer(200, &action_json(1, "Succeeded")),
            answer(200, &action_json(2, "InProgress")),
        ]
        .into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(3_000, false), None);
    assert!(script.answers.is_empty());
    let failed: Vec<String> = script
        .progress
        .iter()
        .filter(|u| u.error.is_some())
        .map(|u| u.action_id.clone())
        .collect();
    assert_eq!(failed, [id(1), id(2)], "the two the listing did not show");
    assert_eq!(status(&outcomes[2]), ActionStatus::InProgress);
    assert_eq!(poll_error(&outcomes[2]), None, "a GET saw it since");
}

#[test]
fn a_failed_looks_message_is_kept_short() {
    let mut outcomes = outcomes(1);
    let long = "é".repeat(4000);
    let forbidden =
        format!(r#"{{"error":{{"code":"Forbidden","message":"{long}","target":"t"}}}}"#);
    let mut script = Script {
        answers: [answer(403, &forbidden)].into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(3_000, false), None);
    let Some(ActionError::Forbidden(error)) = poll_error(&outcomes[0]) else {
        panic!("{:?}", outcomes[0]);
    };
    let kept = error.api.message.unwrap();
    assert_eq!(
        kept.chars().count(),
        MAX_LOOK_MESSAGE_CHARS + 1,
        "the cut and its …"
    );
    assert!(kept.ends_with('…'));
}

#[test]
fn a_cancellation_that_fails_with_no_look_after_it_is_kept() {
    let mut outcomes = outcomes(1);
    let refused = || {
        answer(
            403,
            r#"{"error":{"code":"Forbidden","message":"m","target":"t"}}"#,
        )
    };
    let mut script = Script {
        answers: [
            answer(200, &action_json(0, "Pending")),
            refused(),
            refused(),
        ]
        .into(),
        ..Default::default()
    };
    wait_for_final(&mut script, &mut outcomes, 0, &wait(4_000, true), None);
    assert!(script.answers.is_empty());
    let q = outcomes[0].outcome.as_ref().unwrap();
    assert_eq!(q.action.status, ActionStatus::Pending);
    assert!(matches!(q.cancel_error, Some(ActionError::Forbidden(_))));
}

#[test]
fn every_kind_of_failed_look_is_cut_short() {
    use crate::bindings::defender::endpoint::types::{
        ForbiddenError, InvalidInput, RateLimitedError,
    };
    let long = "x".repeat(MAX_LOOK_MESSAGE_CHARS + 10);
    let api = ApiError {
        status: 500,
        code: None,
        message: Some(long.clone()),
        target: None,
    };
    let cases = [
        ActionError::Unauthorized(api.clone()),
        ActionError::NotFound(api.clone()),
        ActionError::AlreadyPending(api.clone()),
        ActionError::Upstream(api.clone()),
        ActionError::Forbidden(ForbiddenError {
            required_permissions: "p".into(),
            api: api.clone(),
        }),
        ActionError::RateLimited(RateLimitedError {
            retry_after_ms: 1,
            api: Some(api.clone()),
        }),
        ActionError::Transport(long.clone()),
        ActionError::Credentials(long.clone()),
        ActionError::InvalidInput(InvalidInput {
            field: "f".into(),
            message: long.clone(),
        }),
    ];
    for error in cases {
        let kept = match shortened(error.clone()) {
            ActionError::Unauthorized(a)
            | ActionError::NotFound(a)
            | ActionError::AlreadyPending(a)
            | ActionError::Upstream(a) => a.message.unwrap(),
            ActionError::Forbidden(f) => f.api.message.unwrap(),
            ActionError::RateLimited(r) => r.api.unwrap().message.unwrap(),
            ActionError::Transport(m) | ActionError::Credentials(m) => m,
            ActionError::InvalidInput(i) => i.message,
        };
        assert_eq!(
            kept.chars().count(),
            MAX_LOOK_MESSAGE_CHARS + 1,
            "{error:?}"
        );
    }
}
