//! Every error row of the API's table on the routes the component calls after the POST: the
//! action's `GET`, its cancellation, the listing behind an adoption, and the devices that saw a
//! file (all but a 200 too large to read, which `listings.rs` covers); and the wait's own
//! polls, its `GET` and its listing, failing for good. The simulator answers one route by
//! script (`script_route`) and every other like the API, after checking each request as the
//! API does.

use defender_host::{ActionError, ActionStatus, MachineOutcome, ProgressUpdate, Targets, Wait};
use defender_simulator::{Progression, Reply, Simulator};
use integration_tests::{
    COMMENT, FLEET, MACHINE, SHA1, component, quarantine_request as request, simulator, tenant,
};
use std::sync::{Arc, Mutex};

/// An action's `GET`, its cancellation, and the two listings, as patterns.
const GET_ACTION: (&str, &str) = ("GET", "/api/machineactions/*");
const CANCEL: (&str, &str) = ("POST", "/api/machineactions/*/cancel");
const LIST_ACTIONS: (&str, &str) = ("GET", "/api/machineactions");
const FILE_MACHINES: (&str, &str) = ("GET", "/api/files/*/machines");

/// How a route's answer ends a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// The call succeeds after `sends` requests to the route.
    Succeeds { sends: usize },
    /// The call fails with this kind and HTTP status, after `sends` requests to the route.
    Fails {
        kind: &'static str,
        status: Option<u16>,
        sends: usize,
    },
}

/// A row of the API's error table (or of what its front doors send), as replies for the route
/// (the rest of its requests answered by the API), and how a call must end. `not_found_sends`
/// is how often a 404 is asked again on this route (a new action's `GET` is retried).
fn rows(not_found_sends: usize) -> Vec<(&'static str, Vec<Reply>, Ends)> {
    let fails = |kind, status, sends| Ends::Fails {
        kind,
        status,
        sends,
    };
    vec![
        (
            "400 BadRequest",
            vec![Reply::error(400, "BadRequest")],
            fails("upstream", Some(400), 1),
        ),
        (
            "400 ODataError",
            vec![Reply::error(400, "ODataError")],
            fails("upstream", Some(400), 1),
        ),
        (
            "401 once, then a fresh token",
            vec![Reply::error(401, "Unauthorized")],
            Ends::Succeeds { sends: 2 },
        ),
        (
            "401 twice",
            vec![
                Reply::error(401, "Unauthorized"),
                Reply::error(401, "Unauthorized"),
            ],
            fails("unauthorized", Some(401), 2),
        ),
        (
            "403 Forbidden",
            vec![Reply::error(403, "Forbidden")],
            fails("forbidden", Some(403), 1),
        ),
        (
            "403 DisabledFeature",
            vec![Reply::error(403, "DisabledFeature")],
            fails("forbidden", Some(403), 1),
        ),
        (
            "404 NotFound",
            vec![Reply::error(404, "NotFound"); not_found_sends],
            fails("not-found", Some(404), not_found_sends),
        ),
        (
            "429, then the API",
            vec![Reply::throttle(1)],
            Ends::Succeeds { sends: 2 },
        ),
        (
            "500, then the API",
            vec![Reply::error(500, "InternalServerError")],
            Ends::Succeeds { sends: 2 },
        ),
        (
            "a gateway's HTML 502, then the API",
            vec![Reply::Raw {
                status: 502,
                content_type: "text/html".into(),
                body: "<html><body>Bad gateway</body></html>".into(),
            }],
            Ends::Succeeds { sends: 2 },
        ),
        (
            "503 four times",
            vec![Reply::error(503, "ServiceUnavailable"); 4],
            fails("upstream", Some(503), 4),
        ),
        (
            "200 that is not JSON",
            vec![Reply::Raw {
                status: 200,
                content_type: "application/json".into(),
                body: "{\"value\": [".into(),
            }],
            fails("upstream", Some(200), 1),
        ),
        (
            "200 larger than the component reads",
            vec![Reply::Oversized {
                status: 200,
                bytes: 2 * 1024 * 1024,
            }],
            // A listing of ours is asked for again with a smaller page; anything else fails.
            fails("upstream", Some(200), 1),
        ),
        (
            "a dropped connection",
            vec![Reply::Drop],
            fails("transport", None, 1),
        ),
    ]
}

fn kind_and_status(error: &ActionError) -> (&'static str, Option<u16>) {
    (error.kind(), error.api().map(|api| api.status))
}

/// Requests the simulator received on `route` (method, and path without its query).
fn sends(simulator: &Simulator, (method, pattern): (&str, &str)) -> usize {
    let wanted: Vec<&str> = pattern.split('/').collect();
    simulator
        .requests()
        .iter()
        .filter(|r| r.method == method)
        .filter(|r| {
            let path = r.path.split('?').next().unwrap_or_default();
            let got: Vec<&str> = path.split('/').collect();
            got.len() == wanted.len() && got.iter().zip(&wanted).all(|(g, w)| *w == "*" || g == w)
        })
        .count()
}

/// Checks a call's `result` against how the row says it ends; `what` names the case.
fn check<T: std::fmt::Debug>(
    what: &str,
    result: &Result<T, &ActionError>,
    ends: Ends,
    sent: usize,
) {
    match (ends, result) {
        (Ends::Succeeds { sends }, Ok(_)) => assert_eq!(sent, sends, "{what}: sends"),
        (
            Ends::Fails {
                kind,
                status,
                sends,
            },
            Err(error),
        ) => {
            assert_eq!(kind_and_status(error), (kind, status), "{what}: {error:?}");
            if let Some(api) = error.api().filter(|api| api.status != 200) {
                assert!(api.target.is_some(), "{what}: the correlation ID: {api:?}");
            }
            assert_eq!(sent, sends, "{what}: sends");
        }
        (ends, result) => panic!("{what}: expected {ends:?}, got {result:?}"),
    }
}

/// A simulator with one action, created as the API would, and its ID.
async fn with_an_action() -> (Simulator, String) {
    let simulator = simulator().await;
    simulator.set_progression(Progression::StayPending);
    let created = component()
        .stop_and_quarantine(&tenant(&simulator), MACHINE, SHA1, COMMENT)
        .await
        .unwrap()
        .result
        .expect("the action");
    (simulator, created.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn getting_an_action_under_each_error_row() {
    // A 404 is asked again three times: a new action can be briefly invisible.
    for (row, replies, ends) in rows(4) {
        let (simulator, id) = with_an_action().await;
        simulator
            .script_route(GET_ACTION.0, GET_ACTION.1, replies)
            .unwrap();
        let outcome = component()
            .get_action(&tenant(&simulator), &id)
            .await
            .expect("the call completes");
        let result = outcome.result.as_ref().map(|a| a.id.clone());
        check(row, &result, ends, sends(&simulator, GET_ACTION));
        if let Ok(got) = result {
            assert_eq!(got, id, "{row}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_action_under_each_error_row() {
    for (row, replies, ends) in rows(1) {
        let (simulator, id) = with_an_action().await;
        simulator.script_route(CANCEL.0, CANCEL.1, replies).unwrap();
        let outcome = component()
            .cancel_action(&tenant(&simulator), &id, "contained")
            .await
            .expect("the call completes");
        let result = outcome.result.as_ref().map(|a| a.status.clone());
        check(row, &result, ends, sends(&simulator, CANCEL));
        if let Ok(status) = result {
            assert_eq!(status, ActionStatus::Cancelled, "{row}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_a_pending_action_under_each_error_row_of_its_lookup() {
    for (row, replies, ends) in rows(1) {
        let (simulator, id) = with_an_action().await;
        // The device has a pending action: the API refuses a second, and the component looks
        // for the pending one in the device's listing.
        simulator
            .script_route(LIST_ACTIONS.0, LIST_ACTIONS.1, replies)
            .unwrap();
        let outcome = component()
            .stop_and_quarantine(&tenant(&simulator), MACHINE, SHA1, COMMENT)
            .await
            .expect("the call completes");
        let result = outcome.result.as_ref().map(|a| a.id.clone());
        // An oversized page of ours is asked for again in halves, which the API answers.
        let ends = match row {
            "200 larger than the component reads" => Ends::Succeeds { sends: 2 },
            _ => ends,
        };
        check(row, &result, ends, sends(&simulator, LIST_ACTIONS));
        match &outcome.result {
            Ok(adopted) => assert_eq!(adopted.id, id, "{row}"),
            Err(error) => {
                let said = match error {
                    ActionError::Transport(message) => Some(message.clone()),
                    other => other.api().and_then(|api| api.message.clone()),
                };
                assert!(
                    said.is_some_and(|m| m.contains("ActiveRequestAlreadyExists")),
                    "{row}: the failed lookup says what came before: {error:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everywhere_under_each_error_row_of_the_devices_listing() {
    for (row, replies, ends) in rows(1) {
        let simulator = simulator().await;
        simulator.file_seen_on(SHA1, &[FLEET[0], FLEET[1]]);
        simulator
            .script_route(FILE_MACHINES.0, FILE_MACHINES.1, replies)
            .unwrap();
        let outcome = component()
            .quarantine(
                &tenant(&simulator),
                request(Targets::Everywhere, None),
                None,
            )
            .await
            .expect("the call completes");
        // An answer too large to read is asked for again with a page size, which the API takes
        // only because our simulator's own links use it: see `listings.rs`.
        if row == "200 larger than the component reads" {
            continue;
        }
        let result = outcome.result.as_ref().map(|f| f.outcomes.len());
        check(row, &result, ends, sends(&simulator, FILE_MACHINES));
        match &outcome.result {
            Ok(fan_out) => {
                assert_eq!(fan_out.outcomes.len(), 2, "{row}");
                assert!(fan_out.outcomes.iter().all(|o| o.outcome.is_ok()), "{row}");
            }
            Err(_) => assert_eq!(simulator.action_count(), 0, "{row}: nothing was created"),
        }
    }
}

/// Progress updates as the host's sink heard them.
fn recorder() -> (defender_host::ProgressSink, Arc<Mutex<Vec<ProgressUpdate>>>) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    let progress: defender_host::ProgressSink =
        Arc::new(move |update: &ProgressUpdate| sink.lock().unwrap().push(update.clone()));
    (progress, heard)
}

fn wait(timeout_ms: u64) -> Option<Wait> {
    Some(Wait {
        timeout_ms,
        cancel_on_timeout: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_that_keeps_failing_is_in_the_progress_and_the_outcome() {
    let simulator = simulator().await;
    simulator.set_progression(Progression::StayPending);
    simulator
        .script_route(
            GET_ACTION.0,
            GET_ACTION.1,
            vec![Reply::error(403, "Forbidden"); 10],
        )
        .unwrap();
    let (progress, heard) = recorder();
    let outcome = component()
        .quarantine(
            &tenant(&simulator),
            request(Targets::Machines(vec![MACHINE.into()]), wait(6_000)),
            Some(progress),
        )
        .await
        .expect("the call completes");
    let outcomes = outcome.result.expect("a fan-out").outcomes;
    let MachineOutcome { outcome: Ok(q), .. } = &outcomes[0] else {
        panic!("{outcomes:?}");
    };
    assert_eq!(
        q.action.status,
        ActionStatus::Pending,
        "the last status seen"
    );
    let Some(ActionError::Forbidden(forbidden)) = &q.poll_error else {
        panic!("{q:?}");
    };
    assert!(forbidden.api.target.is_some());
    let heard = heard.lock().unwrap();
    let failed: Vec<_> = heard.iter().filter(|u| u.error.is_some()).collect();
    assert!(!failed.is_empty(), "{heard:?}");
    assert!(
        failed
            .iter()
            .all(|u| u.action_id == q.action.id && !u.is_final)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_listing_is_in_the_progress_and_made_up_for_by_gets() {
    let simulator = simulator().await;
    simulator
        .script_route(
            LIST_ACTIONS.0,
            LIST_ACTIONS.1,
            [Reply::error(403, "Forbidden")],
        )
        .unwrap();
    let (progress, heard) = recorder();
    let machines = vec![FLEET[0].to_owned(), FLEET[1].to_owned()];
    let outcome = component()
        .quarantine(
            &tenant(&simulator),
            request(Targets::Machines(machines), wait(120_000)),
            Some(progress),
        )
        .await
        .expect("the call completes");
    let outcomes = outcome.result.expect("a fan-out").outcomes;
    assert_eq!(outcomes.len(), 2);
    for o in &outcomes {
        let q = o.outcome.as_ref().expect("an action");
        assert_eq!(q.action.status, ActionStatus::Succeeded);
        assert_eq!(q.poll_error, None, "a later look succeeded");
    }
    let heard = heard.lock().unwrap();
    let failed = heard
        .iter()
        .filter(|u| matches!(&u.error, Some(ActionError::Forbidden(_))))
        .count();
    assert_eq!(
        failed, 2,
        "the listing's 403, once for each action: {heard:?}"
    );
}
