use super::*;
use crate::bindings::defender::endpoint::rate_limit::Permit;
use crate::bindings::defender::endpoint::types::ActionStatus;
use crate::bindings::exports::defender::endpoint::actions::Wait;
use crate::example::SHA1;
use crate::request::Api;
use crate::response::RawResponse;
use crate::script::{Script, answer};

type Answer = Result<RawResponse, crate::call::SendError>;

const CREATED: &str = "2026-11-27T00:00:00.5Z";

fn device(n: usize) -> String {
    format!("{n:040x}")
}

fn id(n: usize) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}

fn action_json(n: usize, status: &str) -> String {
    format!(
        r#"{{"id":"{}","status":"{status}","machineId":"{}","creationDateTimeUtc":"{CREATED}"}}"#,
        id(n),
        device(n)
    )
}

fn created(n: usize, status: &str) -> Answer {
    answer(201, &action_json(n, status))
}

fn error(status: u16, code: &str, target: &str) -> Answer {
    answer(
        status,
        &format!(r#"{{"error":{{"code":"{code}","message":"m","target":"{target}"}}}}"#),
    )
}

fn devices_page(ids: &[String], next: Option<&str>) -> Answer {
    let items: Vec<String> = ids.iter().map(|d| format!(r#"{{"id":"{d}"}}"#)).collect();
    let next = next.map_or(String::new(), |n| format!(r#","@odata.nextLink":"{n}""#));
    answer(200, &format!(r#"{{"value":[{}]{next}}}"#, items.join(",")))
}

fn request(targets: Targets) -> QuarantineRequest {
    QuarantineRequest {
        targets,
        file: File::Sha1(SHA1.to_uppercase()),
        comment: "incident 42".into(),
        wait: None,
        max_machines: None,
    }
}

fn machines(ids: &[String]) -> Targets {
    Targets::Machines(ids.to_vec())
}

fn statuses(fan_out: &FanOut) -> Vec<Result<ActionStatus, String>> {
    fan_out
        .outcomes
        .iter()
        .map(|o| match &o.outcome {
            Ok(q) => Ok(q.action.status.clone()),
            Err(e) => Err(format!("{e:?}")),
        })
        .collect()
}

fn progress(script: &Script) -> Vec<(String, ActionStatus, bool)> {
    script
        .progress
        .iter()
        .map(|u| (u.machine_id.clone(), u.status.clone(), u.error.is_some()))
        .collect()
}

/// Nothing was asked of the host: no request, credential or permit.
fn untouched(script: &Script) -> bool {
    script.sent.is_empty() && script.refreshes.is_empty() && script.permit_apis.is_empty()
}

#[test]
fn duplicates_are_sent_once_in_input_order_and_each_creation_is_reported() {
    let ids = [device(1), device(0).to_uppercase(), device(1), device(0)];
    let mut script = Script {
        answers: [created(1, "Pending"), created(0, "InProgress")].into(),
        ..Default::default()
    };
    let fan_out = quarantine(&mut script, request(machines(&ids))).unwrap();
    let machine_ids: Vec<&str> = fan_out
        .outcomes
        .iter()
        .map(|o| o.machine_id.as_str())
        .collect();
    assert_eq!(machine_ids, [device(1), device(0)]);
    assert_eq!(script.permit_apis, [Api::CreateAction; 2]);
    assert!(script.sent[0].contains(&format!(
        "/api/machines/{}/StopAndQuarantineFile",
        device(1)
    )));
    assert_eq!(
        progress(&script),
        [
            (device(1), ActionStatus::Pending, false),
            (device(0), ActionStatus::InProgress, false)
        ]
    );
    assert_eq!(fan_out.unlisted, None);
}

#[test]
fn one_devices_failure_never_stops_the_others() {
    let ids = [device(0), device(1), device(2)];
    let mut script = Script {
        answers: [
            created(0, "Pending"),
            error(404, "ResourceNotFound", "corr-1"),
            created(2, "Pending"),
        ]
        .into(),
        ..Default::default()
    };
    let fan_out = quarantine(&mut script, request(machines(&ids))).unwrap();
    assert!(fan_out.outcomes[0].outcome.is_ok());
    let Err(ActionError::NotFound(api)) = &fan_out.outcomes[1].outcome else {
        panic!("{:?}", fan_out.outcomes[1]);
    };
    assert_eq!(api.target.as_deref(), Some("corr-1"));
    assert!(fan_out.outcomes[2].outcome.is_ok());
    assert_eq!(script.progress.len(), 2, "one report per action created");
}

#[test]
fn bad_input_takes_nothing_from_the_host() {
    let too_many: Vec<String> = (0..3).map(device).collect();
    let cases = [
        (
            QuarantineRequest {
                max_machines: Some(2),
                ..request(machines(&too_many))
            },
            "machine-ids",
        ),
        (
            request(machines(&[device(0), "not-a-device".into()])),
            "machine-ids[1]",
        ),
        (
            QuarantineRequest {
                file: File::Sha1("d41d8cd98f00b204e9800998ecf8427e".into()),
                ..request(Targets::Everywhere)
            },
            "sha1",
        ),
        (
            QuarantineRequest {
                comment: " \t".into(),
                ..request(Targets::Everywhere)
            },
            "comment",
        ),
        (
            QuarantineRequest {
                max_machines: Some(0),
                ..request(Targets::Everywhere)
            },
            "max-machines",
        ),
    ];
    for (bad, field) in cases {
        let mut script = Script::default();
        let Err(ActionError::InvalidInput(invalid)) = quarantine(&mut script, bad) else {
            panic!("{field} was not refused");
        };
        assert_eq!(invalid.field, field);
        assert!(untouched(&script), "{field}: {:?}", script.sent);
    }
}

#[test]
fn everywhere_skips_duplicates_names_bad_ids_and_caps_the_devices() {
    let long_bad = "x".repeat(100);
    let listed = [
        device(0),
        device(0).to_uppercase(),
        long_bad.clone(),
        device(1),
        device(2),
    ];
    let mut script = Script {
        answers: [
            devices_page(&listed, None),
            created(0, "Pending"),
            created(1, "Pending"),
        ]
        .into(),
        ..Default::default()
    };
    let fan_out = quarantine(
        &mut script,
        QuarantineRequest {
            max_machines: Some(2),
            ..request(Targets::Everywhere)
        },
    )
    .unwrap();
    assert_eq!(
        script.permit_apis,
        [Api::FileMachines, Api::CreateAction, Api::CreateAction]
    );
    assert!(script.sent[0].contains(&format!("/api/files/{SHA1}/machines ")));
    let ids: Vec<&str> = fan_out
        .outcomes
        .iter()
        .map(|o| o.machine_id.as_str())
        .collect();
    assert_eq!(ids, [device(0), "x".repeat(64), device(1), device(2)]);
    let field = |n: usize| match &fan_out.outcomes[n].outcome {
        Err(ActionError::InvalidInput(i)) => i.field.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(field(1), "machine-id");
    assert_eq!(field(3), "max-machines");
    assert!(fan_out.outcomes[0].outcome.is_ok() && fan_out.outcomes[2].outcome.is_ok());
    assert_eq!(fan_out.unlisted, None, "the listing was read to its end");
}

#[test]
fn everywhere_whose_first_page_fails_is_the_calls_error_and_creates_nothing() {
    let mut script = Script {
        answers: [error(403, "Forbidden", "corr-f")].into(),
        ..Default::default()
    };
    let Err(ActionError::Forbidden(forbidden)) =
        quarantine(&mut script, request(Targets::Everywhere))
    else {
        panic!("expected the listing's 403");
    };
    assert_eq!(forbidden.api.target.as_deref(), Some("corr-f"));
    assert_eq!(script.permit_apis, [Api::FileMachines]);
}

#[test]
fn everywhere_whose_later_page_fails_acts_on_the_devices_listed_and_says_why() {
    let next = format!("https://api.security.microsoft.com/api/files/{SHA1}/machines?$skip=1");
    let mut script = Script {
        answers: [
            devices_page(&[device(0)], Some(&next)),
            error(400, "ODataError", "corr-o"),
            created(0, "Pending"),
        ]
        .into(),
        ..Default::default()
    };
    let fan_out = quarantine(&mut script, request(Targets::Everywhere)).unwrap();
    assert_eq!(statuses(&fan_out), [Ok(ActionStatus::Pending)]);
    let Some(ActionError::Upstream(api)) = &fan_out.unlisted else {
        panic!("{:?}", fan_out.unlisted);
    };
    assert_eq!(api.target.as_deref(), Some("corr-o"));
}

#[test]
fn an_empty_listing_is_an_answer_with_no_outcomes() {
    let mut script = Script {
        answers: [devices_page(&[], None)].into(),
        ..Default::default()
    };
    let fan_out = quarantine(&mut script, request(Targets::Everywhere)).unwrap();
    assert!(fan_out.outcomes.is_empty());
    assert_eq!(fan_out.unlisted, None);
    assert_eq!(script.sent.len(), 1);
}

#[test]
fn waiting_backs_off_and_cancels_only_what_is_not_final_at_the_timeout() {
    let ids = [device(0), device(1), device(2)];
    let listing = |statuses: [&str; 2]| {
        let items: Vec<String> = [0, 1]
            .iter()
            .zip(statuses)
            .map(|(n, s)| action_json(*n, s))
            .collect();
        answer(200, &format!(r#"{{"value":[{}]}}"#, items.join(",")))
    };
    let mut script = Script {
        answers: [
            created(0, "Pending"),
            created(1, "Pending"),
            // Final already when created: never polled nor cancelled.
            created(2, "Failed"),
            listing(["InProgress", "Pending"]),
            listing(["Succeeded", "Pending"]),
            // One action left: polled by its ID.
            answer(200, &action_json(1, "Pending")),
            answer(200, &action_json(1, "Cancelled")),
        ]
        .into(),
        ..Default::default()
    };
    let wait = Wait {
        timeout_ms: 12_000,
        cancel_on_timeout: true,
    };
    let fan_out = quarantine(
        &mut script,
        QuarantineRequest {
            wait: Some(wait),
            ..request(machines(&ids))
        },
    )
    .unwrap();
    assert!(script.answers.is_empty());
    // 2 s, then 3 s, then 4.5 s; the next (6.75 s) would pass the 12 s timeout.
    assert_eq!(script.sleeps, [2_000, 3_000, 4_500]);
    assert_eq!(
        statuses(&fan_out),
        [
            Ok(ActionStatus::Succeeded),
            Ok(ActionStatus::Cancelled),
            Ok(ActionStatus::Failed)
        ]
    );
    assert_eq!(
        script.permit_apis[3..],
        [
            Api::ListActions,
            Api::ListActions,
            Api::GetAction,
            Api::CancelAction
        ]
    );
    let cancels: Vec<&String> = script
        .sent
        .iter()
        .filter(|s| s.contains("/cancel "))
        .collect();
    assert_eq!(cancels.len(), 1);
    assert!(cancels[0].contains(&id(1)));
    assert_eq!(
        progress(&script),
        [
            (device(0), ActionStatus::Pending, false),
            (device(1), ActionStatus::Pending, false),
            (device(2), ActionStatus::Failed, false),
            (device(0), ActionStatus::InProgress, false),
            (device(1), ActionStatus::Pending, false),
            (device(0), ActionStatus::Succeeded, false),
            (device(1), ActionStatus::Pending, false),
            (device(1), ActionStatus::Pending, false),
            (device(1), ActionStatus::Cancelled, false),
        ]
    );
}

#[test]
fn a_throttled_creation_waits_for_its_permit_within_the_deadline() {
    let mut script = Script {
        answers: [created(0, "Pending")].into(),
        permits: [Permit::Denied(5_000)].into(),
        ..Default::default()
    };
    let fan_out = quarantine(&mut script, request(machines(&[device(0)]))).unwrap();
    assert_eq!(statuses(&fan_out), [Ok(ActionStatus::Pending)]);
    assert_eq!(script.sleeps, [5_000]);
}

#[test]
fn prepare_normalises_without_touching_the_host() {
    let ids = [device(2).to_uppercase(), device(1), device(2)];
    let mut with_content = request(machines(&ids));
    with_content.file = File::Content(b"abc".to_vec());
    with_content.max_machines = Some(5);
    let prepared = prepare(&with_content).unwrap();
    assert_eq!(prepared.machine_ids, [device(2), device(1)]);
    assert_eq!(prepared.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(prepared.max_machines, 5);
    let everywhere = prepare(&request(Targets::Everywhere)).unwrap();
    assert!(everywhere.machine_ids.is_empty());
    assert_eq!(
        (everywhere.sha1.as_str(), everywhere.max_machines),
        (SHA1, 1000)
    );
    let Err(ActionError::InvalidInput(invalid)) = prepare(&request(machines(&["x".into()]))) else {
        panic!("a bad device ID is refused");
    };
    assert_eq!(invalid.field, "machine-ids[0]");
}

#[test]
fn everywhere_past_the_cap_with_pages_left_says_so_in_unlisted() {
    let next = format!("https://api.security.microsoft.com/api/files/{SHA1}/machines?$skip=3");
    let mut script = Script {
        answers: [
            devices_page(&[device(0), device(1), device(2)], Some(&next)),
            created(0, "Pending"),
            created(1, "Pending"),
        ]
        .into(),
        ..Default::default()
    };
    let fan_out = quarantine(
        &mut script,
        QuarantineRequest {
            max_machines: Some(2),
            ..request(Targets::Everywhere)
        },
    )
    .unwrap();
    assert!(script.answers.is_empty(), "the next page is not read");
    let Some(ActionError::InvalidInput(invalid)) = &fan_out.unlisted else {
        panic!("{:?}", fan_out.unlisted);
    };
    assert_eq!(invalid.field, "max-machines");
    assert_eq!(
        fan_out.outcomes.len(),
        3,
        "the third listed gets an error of its own"
    );
}
