//! The life of a quarantine through the real component: many devices, every device that has
//! seen the file, waiting, status, cancel, adoption of a pending action, and no duplicate action
//! when a connection drops after the POST.

use defender_host::{
    ActionError, ActionStatus, File, MachineOutcome, ProgressUpdate, QuarantineRequest, Targets,
    Wait,
};
use defender_simulator::{Progression, Reply, Simulator};
use integration_tests::{
    COMMENT, MACHINE, SHA1, assert_nothing_taken, component, guarded_tenant, posts,
    quarantine_request as request, simulator, tenant,
};
use std::sync::{Arc, Mutex};

const OTHER: &str = integration_tests::FLEET[1];
const THIRD: &str = integration_tests::FLEET[2];
const FOURTH: &str = "0123456789abcdef0123456789abcdef01234567";

fn machines(ids: &[&str]) -> Targets {
    Targets::Machines(ids.iter().map(|id| (*id).to_owned()).collect())
}

async fn quarantine(simulator: &Simulator, request: QuarantineRequest) -> Vec<MachineOutcome> {
    integration_tests::fan_out(simulator, request)
        .await
        .outcomes
}

fn status(outcome: &MachineOutcome) -> ActionStatus {
    outcome
        .outcome
        .as_ref()
        .expect("an action")
        .action
        .status
        .clone()
}

#[tokio::test]
async fn one_devices_failure_never_stops_the_others() {
    let simulator = simulator().await;
    simulator.reply_for_machine(OTHER, Reply::error(404, "ResourceNotFound"));
    simulator.reply_for_machine(THIRD, Reply::error(403, "Forbidden"));
    let outcomes = quarantine(
        &simulator,
        request(machines(&[MACHINE, OTHER, THIRD, FOURTH]), None),
    )
    .await;
    let ids: Vec<&str> = outcomes.iter().map(|o| o.machine_id.as_str()).collect();
    assert_eq!(ids, [MACHINE, OTHER, THIRD, FOURTH]);
    assert!(outcomes[0].outcome.is_ok());
    assert!(matches!(outcomes[1].outcome, Err(ActionError::NotFound(_))));
    assert!(matches!(
        outcomes[2].outcome,
        Err(ActionError::Forbidden(_))
    ));
    assert!(outcomes[3].outcome.is_ok());
    assert_eq!(posts(&simulator), 4);
}

#[tokio::test]
async fn duplicate_ids_are_sent_once() {
    let simulator = simulator().await;
    let upper = MACHINE.to_uppercase();
    let outcomes = quarantine(
        &simulator,
        request(machines(&[MACHINE, OTHER, &upper]), None),
    )
    .await;
    assert_eq!(outcomes.len(), 2);
    assert_eq!(posts(&simulator), 2);
}

#[tokio::test]
async fn more_than_1000_devices_are_refused_before_sending() {
    let simulator = simulator().await;
    let many: Vec<String> = (0..1001).map(|i| format!("{i:040x}")).collect();
    let (tenant, tokens) = guarded_tenant(&simulator);
    let outcome = component()
        .quarantine(&tenant, request(Targets::Machines(many), None), None)
        .await
        .unwrap();
    let Err(ActionError::InvalidInput(invalid)) = outcome.result else {
        panic!("expected invalid input");
    };
    assert_eq!(invalid.field, "machine-ids");
    assert!(simulator.requests().is_empty());
    assert_nothing_taken(&tenant, &tokens).await;
}

#[tokio::test]
async fn one_bad_id_among_many_refuses_all_before_sending() {
    let simulator = simulator().await;
    let (tenant, tokens) = guarded_tenant(&simulator);
    let outcome = component()
        .quarantine(&tenant, request(machines(&[MACHINE, "nope"]), None), None)
        .await
        .unwrap();
    let Err(ActionError::InvalidInput(invalid)) = outcome.result else {
        panic!("expected invalid input");
    };
    assert_eq!(invalid.field, "machine-ids[1]");
    assert!(simulator.requests().is_empty());
    assert_nothing_taken(&tenant, &tokens).await;
}

#[tokio::test]
async fn everywhere_with_no_device_is_an_empty_answer() {
    let simulator = simulator().await;
    simulator.file_seen_on(SHA1, &[]);
    let outcomes = quarantine(&simulator, request(Targets::Everywhere, None)).await;
    assert!(outcomes.is_empty());
    let requests = simulator.requests();
    assert_eq!(requests.len(), 1);
    // As the API's page shows it: no query options.
    assert_eq!(requests[0].path, format!("/api/files/{SHA1}/machines"));
}

#[tokio::test]
async fn everywhere_with_one_and_many_devices() {
    let simulator = simulator().await;
    simulator.file_seen_on(SHA1, &[OTHER]);
    let outcomes = quarantine(&simulator, request(Targets::Everywhere, None)).await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].machine_id, OTHER);

    let simulator = integration_tests::simulator().await;
    simulator.file_seen_on(SHA1, &[MACHINE, OTHER, THIRD, FOURTH]);
    let outcomes = quarantine(&simulator, request(Targets::Everywhere, None)).await;
    let ids: Vec<&str> = outcomes.iter().map(|o| o.machine_id.as_str()).collect();
    assert_eq!(ids, [MACHINE, OTHER, THIRD, FOURTH]);
    assert!(outcomes.iter().all(|o| o.outcome.is_ok()));
}

#[tokio::test]
async fn everywhere_for_a_file_the_api_has_never_seen_is_an_empty_answer() {
    // "If the file doesn't exist, an empty set is returned" (Get file related machines): 200.
    let simulator = simulator().await;
    let outcome = component()
        .quarantine(
            &tenant(&simulator),
            request(Targets::Everywhere, None),
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome.result.expect("an answer").outcomes.len(), 0);
    let listings: Vec<_> = simulator
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/api/files/{SHA1}/machines"))
        .collect();
    assert_eq!(listings.len(), 1);
    assert_eq!(posts(&simulator), 0);
}

fn wait(timeout_ms: u64, cancel_on_timeout: bool) -> Option<Wait> {
    Some(Wait {
        timeout_ms,
        cancel_on_timeout,
    })
}

#[tokio::test]
async fn waiting_follows_the_actions_to_success_and_reports_progress() {
    let simulator = simulator().await;
    let seen = Arc::new(Mutex::new(Vec::<ProgressUpdate>::new()));
    let sink = {
        let seen = seen.clone();
        Arc::new(move |u: &ProgressUpdate| seen.lock().unwrap().push(u.clone()))
    };
    let outcome = component()
        .quarantine(
            &tenant(&simulator),
            request(machines(&[MACHINE, OTHER]), wait(60_000, false)),
            Some(sink),
        )
        .await
        .unwrap();
    let outcomes = outcome.result.unwrap().outcomes;
    assert!(
        outcomes
            .iter()
            .all(|o| status(o) == ActionStatus::Succeeded)
    );
    let statuses: Vec<ActionStatus> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|u| u.machine_id == MACHINE)
        .map(|u| u.status.clone())
        .collect();
    assert_eq!(
        statuses,
        [
            ActionStatus::Pending,
            ActionStatus::InProgress,
            ActionStatus::Succeeded
        ]
    );
}

#[tokio::test]
async fn waiting_reports_a_failed_action_as_its_final_status() {
    let simulator = simulator().await;
    simulator.set_progression(Progression::Advance {
        to_in_progress: 1,
        to_final: 1,
        final_status: "Failed".into(),
    });
    let outcomes = quarantine(
        &simulator,
        request(machines(&[MACHINE]), wait(60_000, false)),
    )
    .await;
    assert_eq!(status(&outcomes[0]), ActionStatus::Failed);
}

/// Actions that start at once and never finish: a status seen by a poll (`InProgress`) differs
/// from the POST's (`Pending`), so a wait that never polled, or dropped what it saw, shows.
fn never_finishing() -> Progression {
    Progression::Advance {
        to_in_progress: 1,
        to_final: u32::MAX,
        final_status: "Succeeded".into(),
    }
}

#[tokio::test]
async fn at_the_deadline_the_last_status_is_kept_and_nothing_is_cancelled() {
    let simulator = simulator().await;
    simulator.set_progression(never_finishing());
    // Polls at 2 s and 5 s; the next (9.5 s) would pass the 6 s timeout.
    let outcomes = quarantine(
        &simulator,
        request(machines(&[MACHINE]), wait(6_000, false)),
    )
    .await;
    assert_eq!(outcomes.len(), 1);
    let action = &outcomes[0].outcome.as_ref().unwrap().action;
    assert_eq!(action.status, ActionStatus::InProgress, "the last poll's");
    assert_eq!(action.id.len(), 36);
    let polls = simulator
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&action.id))
        .count();
    assert!((1..=2).contains(&polls), "{polls} polls");
    assert!(
        !simulator
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/cancel"))
    );
}

#[tokio::test]
async fn at_the_deadline_pending_actions_can_be_cancelled() {
    let simulator = simulator().await;
    simulator.set_progression(never_finishing());
    let outcomes = quarantine(
        &simulator,
        request(machines(&[MACHINE, OTHER]), wait(6_000, true)),
    )
    .await;
    assert_eq!(outcomes.len(), 2);
    let listings = simulator
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/machineactions?"))
        .count();
    assert!(
        (1..=2).contains(&listings),
        "{listings} listings, one a poll round"
    );
    for outcome in &outcomes {
        let action = &outcome.outcome.as_ref().unwrap().action;
        assert_eq!(action.status, ActionStatus::Cancelled);
        assert!(
            action
                .cancellation_comment
                .as_deref()
                .unwrap()
                .contains(COMMENT)
        );
    }
    let cancels: Vec<_> = simulator
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/cancel"))
        .collect();
    assert_eq!(cancels.len(), 2);
    let body: serde_json::Value = serde_json::from_slice(&cancels[0].body).unwrap();
    assert!(
        body["Comment"]
            .as_str()
            .unwrap()
            .starts_with("Wait timed out")
    );
}

#[tokio::test]
async fn status_and_cancel_of_an_action() {
    let simulator = simulator().await;
    simulator.set_progression(Progression::StayPending);
    let tenant = tenant(&simulator);
    let created = quarantine(&simulator, request(machines(&[MACHINE]), None)).await;
    let id = created[0].outcome.as_ref().unwrap().action.id.clone();

    let got = component()
        .get_action(&tenant, &id)
        .await
        .unwrap()
        .result
        .unwrap();
    assert_eq!(
        (got.id.as_str(), got.status),
        (id.as_str(), ActionStatus::Pending)
    );

    let cancelled = component()
        .cancel_action(&tenant, &id, "false positive")
        .await
        .unwrap()
        .result
        .unwrap();
    assert_eq!(cancelled.status, ActionStatus::Cancelled);
    assert_eq!(
        cancelled.cancellation_comment.as_deref(),
        Some("false positive")
    );

    // Cancelling a final action is the API's error, reported as such.
    let again = component()
        .cancel_action(&tenant, &id, "again")
        .await
        .unwrap();
    let Err(ActionError::Upstream(api)) = again.result else {
        panic!("expected upstream");
    };
    assert_eq!((api.status, api.code.as_deref()), (400, Some("BadRequest")));
}

#[tokio::test]
async fn status_and_cancel_of_an_unknown_action_are_not_found() {
    let simulator = simulator().await;
    let tenant = tenant(&simulator);
    let unknown = "00000000-0000-4000-8000-000000000000";
    let got = component().get_action(&tenant, unknown).await.unwrap();
    assert!(matches!(got.result, Err(ActionError::NotFound(_))));
    // A 404 is retried before it is believed.
    assert_eq!(simulator.requests().len(), 4);
    let cancelled = component()
        .cancel_action(&tenant, unknown, "x")
        .await
        .unwrap();
    assert!(matches!(cancelled.result, Err(ActionError::NotFound(_))));
    let invalid = component()
        .get_action(&tenant, "../machines")
        .await
        .unwrap();
    assert!(matches!(invalid.result, Err(ActionError::InvalidInput(_))));
    assert_eq!(simulator.requests().len(), 5);
}

#[tokio::test]
async fn a_new_action_briefly_invisible_is_found() {
    let simulator = simulator().await;
    simulator.hide_new_actions(2);
    let created = quarantine(&simulator, request(machines(&[MACHINE]), None)).await;
    let id = created[0].outcome.as_ref().unwrap().action.id.clone();
    let got = component()
        .get_action(&tenant(&simulator), &id)
        .await
        .unwrap();
    assert_eq!(got.result.unwrap().id, id);
}

#[tokio::test]
async fn an_already_pending_action_is_adopted() {
    let simulator = simulator().await;
    simulator.set_progression(Progression::StayPending);
    let first = quarantine(&simulator, request(machines(&[MACHINE]), None)).await;
    let first = first[0].outcome.as_ref().unwrap();
    assert!(!first.adopted);
    let second = quarantine(&simulator, request(machines(&[MACHINE]), None)).await;
    let second = second[0].outcome.as_ref().unwrap();
    assert!(second.adopted);
    assert_eq!(second.action.id, first.action.id);
    assert_eq!(simulator.action_count(), 1);
}

#[tokio::test]
async fn a_dropped_connection_after_the_post_creates_no_second_action() {
    let simulator = simulator().await;
    simulator.script([Reply::CreateThenDrop]);
    let outcomes = quarantine(&simulator, request(machines(&[MACHINE]), None)).await;
    let found = outcomes[0].outcome.as_ref().expect("the action was found");
    assert!(!found.adopted);
    assert_eq!(simulator.action_count(), 1);
    assert_eq!(posts(&simulator), 1);
}

#[tokio::test]
async fn the_sha1_of_file_content_equals_sha1sums() {
    let simulator = simulator().await;
    let content: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let path = std::env::temp_dir().join(format!("lifecycle-sha1-{}", std::process::id()));
    std::fs::write(&path, &content).unwrap();
    let sha1sum = std::process::Command::new("sha1sum")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let expected = String::from_utf8(sha1sum.stdout).unwrap()[..40].to_owned();

    let mut from_content = request(machines(&[MACHINE]), None);
    from_content.file = File::Content(content);
    let outcomes = quarantine(&simulator, from_content).await;
    let action = &outcomes[0].outcome.as_ref().unwrap().action;
    assert_eq!(
        action.related_file_info.as_ref().unwrap().file_identifier,
        expected
    );
    let body: serde_json::Value = serde_json::from_slice(&simulator.requests()[0].body).unwrap();
    assert_eq!(body["Sha1"], expected);
}

#[tokio::test]
async fn prepare_checks_and_normalises_without_sending() {
    let simulator = simulator().await;
    let upper = MACHINE.to_uppercase();
    let mut with_content = request(machines(&[&upper, OTHER, MACHINE]), None);
    with_content.file = File::Content(b"abc".to_vec());
    let prepared = component()
        .prepare(&tenant(&simulator), with_content)
        .await
        .unwrap()
        .result
        .unwrap();
    assert_eq!(prepared.machine_ids, [MACHINE, OTHER]);
    assert_eq!(prepared.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");

    let everywhere = component()
        .prepare(&tenant(&simulator), request(Targets::Everywhere, None))
        .await
        .unwrap()
        .result
        .unwrap();
    assert!(everywhere.machine_ids.is_empty());
    assert_eq!(everywhere.sha1, SHA1);

    let (guarded, tokens) = guarded_tenant(&simulator);
    let invalid = component()
        .prepare(&guarded, request(machines(&[MACHINE, "x"]), None))
        .await
        .unwrap();
    assert!(matches!(invalid.result, Err(ActionError::InvalidInput(_))));
    assert!(simulator.requests().is_empty());
    // `prepare` calls no import at all, for good input or bad.
    assert_nothing_taken(&guarded, &tokens).await;
}
