//! Listings through the real component and host: waiting on many actions by one listing a poll
//! round, `everywhere` over pages of devices, and the pages a listing must refuse to follow.

use defender_host::{ActionError, ActionStatus, FanOut, QuarantineRequest, Targets, Wait};
use defender_simulator::{PageReply, Reply, Simulator};
use integration_tests::{SHA1, component, fan_out, quarantine_request as request, simulator};

/// `count` device IDs of the simulated fleet.
fn devices(count: usize) -> Vec<String> {
    (0..count)
        .map(|n| format!("{:08x}{n:032x}", 0x00dd_ba11_u32))
        .collect()
}

/// The paths of the requests whose path starts with `prefix`.
fn paths(simulator: &Simulator, method: &str, prefix: &str) -> Vec<String> {
    simulator
        .requests()
        .into_iter()
        .filter(|r| r.method == method && r.path.starts_with(prefix))
        .map(|r| r.path)
        .collect()
}

fn listed_ids(fan_out: &FanOut) -> Vec<&str> {
    fan_out
        .outcomes
        .iter()
        .map(|o| o.machine_id.as_str())
        .collect()
}

#[tokio::test]
async fn waiting_on_fifty_actions_costs_one_listing_a_round() {
    let simulator = simulator().await;
    let fleet = devices(50);
    let wait = Wait {
        timeout_ms: 120_000,
        cancel_on_timeout: false,
    };
    let done = fan_out(&simulator, request(Targets::Machines(fleet), Some(wait))).await;
    assert_eq!(done.outcomes.len(), 50);
    for outcome in &done.outcomes {
        let q = outcome.outcome.as_ref().expect("an action");
        assert_eq!(
            q.action.status,
            ActionStatus::Succeeded,
            "{}",
            outcome.machine_id
        );
    }
    // The simulator moves an action along each time it is seen: two rounds see all fifty
    // final, each with one listing and no GET per action.
    let listings = paths(&simulator, "GET", "/api/machineactions?");
    assert_eq!(listings.len(), 2, "{listings:?}");
    assert!(
        listings
            .iter()
            .all(|p| p.contains("creationDateTimeUtc%20ge%20"))
    );
    assert!(paths(&simulator, "GET", "/api/machineactions/").is_empty());
    let calls = simulator.api_calls();
    let answered = |api: &str| {
        calls
            .iter()
            .find(|c| c.api == api)
            .map_or(0, |c| c.answered)
    };
    assert_eq!(
        (answered("create-action"), answered("list-actions")),
        (50, 2)
    );
}

#[tokio::test]
async fn everywhere_reads_every_page_of_devices() {
    let simulator = simulator().await;
    simulator.set_page_size(2);
    let fleet = devices(6);
    let named: Vec<&str> = fleet.iter().map(String::as_str).collect();
    simulator.file_seen_on(SHA1, &named);
    let done = fan_out(&simulator, request(Targets::Everywhere, None)).await;
    assert_eq!(listed_ids(&done), named);
    assert!(done.outcomes.iter().all(|o| o.outcome.is_ok()));
    assert!(done.unlisted.is_none());
    let pages = paths(&simulator, "GET", &format!("/api/files/{SHA1}/machines"));
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(
        pages[1].ends_with("$skip=2") && pages[2].ends_with("$skip=4"),
        "{pages:?}"
    );
    assert_eq!(paths(&simulator, "POST", "/api/machines/").len(), 6);
}

/// `everywhere` over four devices, two a page, with `pages` scripted: the first page's devices
/// are acted on, once each, and the listing's failure is reported.
async fn stops_after_the_first_page(pages: Vec<PageReply>) -> (Simulator, FanOut) {
    let simulator = simulator().await;
    simulator.set_page_size(2);
    let fleet = devices(4);
    let named: Vec<&str> = fleet.iter().map(String::as_str).collect();
    simulator.file_seen_on(SHA1, &named);
    simulator.script_pages(pages);
    let done = fan_out(&simulator, request(Targets::Everywhere, None)).await;
    assert_eq!(listed_ids(&done), &named[..2]);
    assert!(done.outcomes.iter().all(|o| o.outcome.is_ok()));
    assert_eq!(paths(&simulator, "POST", "/api/machines/").len(), 2);
    (simulator, done)
}

fn unlisted(done: &FanOut) -> String {
    match &done.unlisted {
        Some(ActionError::Upstream(api)) => api.message.clone().unwrap_or_default(),
        other => panic!("expected the listing's failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_not_followed() {
    let elsewhere = simulator().await;
    let foreign = format!("{}/api/files/{SHA1}/machines?$skip=2", elsewhere.base_url());
    let (simulator, done) = stops_after_the_first_page(vec![PageReply::NextLink(foreign)]).await;
    let why = unlisted(&done);
    assert!(why.contains("leads away from"), "{why}");
    assert!(elsewhere.requests().is_empty());
    assert_eq!(
        paths(&simulator, "GET", &format!("/api/files/{SHA1}/machines")).len(),
        1
    );
}

#[tokio::test]
async fn a_next_link_seen_before_ends_the_listing() {
    let simulator = simulator().await;
    simulator.set_page_size(2);
    let fleet = devices(4);
    let named: Vec<&str> = fleet.iter().map(String::as_str).collect();
    simulator.file_seen_on(SHA1, &named);
    // Both pages point at the same link: the second time, it is not followed.
    let link = format!("{}/api/files/{SHA1}/machines?$skip=2", simulator.base_url());
    simulator.script_pages([PageReply::NextLink(link.clone()), PageReply::NextLink(link)]);
    let done = fan_out(&simulator, request(Targets::Everywhere, None)).await;
    assert!(
        unlisted(&done).contains("was sent before"),
        "{}",
        unlisted(&done)
    );
    assert_eq!(listed_ids(&done), named);
    assert_eq!(paths(&simulator, "POST", "/api/machines/").len(), 4);
    let pages = paths(&simulator, "GET", &format!("/api/files/{SHA1}/machines"));
    assert_eq!(pages.len(), 2, "{pages:?}");
}

#[tokio::test]
async fn a_page_that_is_not_a_listing_stops_it() {
    let html = Reply::Raw {
        status: 200,
        content_type: "text/html".into(),
        body: "<html>gateway</html>".into(),
    };
    let (_, done) = stops_after_the_first_page(vec![PageReply::Api, PageReply::Answer(html)]).await;
    assert!(unlisted(&done).contains("not JSON"), "{}", unlisted(&done));
}

#[tokio::test]
async fn more_devices_than_the_cap_are_reported_not_acted_on() {
    let simulator = simulator().await;
    simulator.set_page_size(2);
    let fleet = devices(5);
    let named: Vec<&str> = fleet.iter().map(String::as_str).collect();
    simulator.file_seen_on(SHA1, &named);
    let capped = QuarantineRequest {
        max_machines: Some(2),
        ..request(Targets::Everywhere, None)
    };
    let done = fan_out(&simulator, capped).await;
    let Some(ActionError::InvalidInput(cap)) = &done.unlisted else {
        panic!("{:?}", done.unlisted);
    };
    assert_eq!(cap.field, "max-machines");
    assert!(cap.message.contains("not the API's"), "{}", cap.message);
    // Two pages read (four devices listed), two acted on, the others told why not.
    assert_eq!(listed_ids(&done), &named[..4]);
    assert!(done.outcomes[..2].iter().all(|o| o.outcome.is_ok()));
    assert!(done.outcomes[2..].iter().all(|o| o.outcome.is_err()));
    assert_eq!(paths(&simulator, "POST", "/api/machines/").len(), 2);
}

#[tokio::test]
async fn an_outbreak_of_a_thousand_devices_comes_back_whole() {
    let simulator = simulator().await;
    simulator.set_rate_limit(None);
    let fleet = devices(1000);
    let named: Vec<&str> = fleet.iter().map(String::as_str).collect();
    simulator.file_seen_on(SHA1, &named);
    let tenant = integration_tests::tenant_with(
        &simulator,
        std::sync::Arc::new(defender_host::credentials::StaticToken::new(
            defender_host::credentials::Secret::new(integration_tests::TOKEN),
        )),
        defender_host::rate_limit::Budget::new(100_000, 100_000),
    );
    let wait = Wait {
        timeout_ms: 120_000,
        cancel_on_timeout: false,
    };
    // Every outcome, with the API's JSON of each, is more than one call may hand back by
    // default: the call's limits grow with its devices.
    let outcome = component()
        .quarantine(&tenant, request(Targets::Everywhere, Some(wait)), None)
        .await
        .expect("the call completes");
    assert!(outcome.wait_stopped.is_none());
    let done = outcome.result.expect("the request is valid");
    assert!(done.unlisted.is_none());
    assert_eq!(listed_ids(&done), named);
    for outcome in &done.outcomes {
        let q = outcome.outcome.as_ref().expect("an action");
        assert_eq!(q.action.status, ActionStatus::Succeeded);
        assert!(q.action.raw.contains("\"requestSource\""));
    }
}

#[tokio::test]
async fn a_listing_too_large_to_read_is_asked_for_again_in_halves() {
    let simulator = simulator().await;
    // The first listing of the wait is 2 MiB, past the component's 1 MiB: it asks for the same
    // listing with half the page size, which the API answers.
    simulator.script_pages([PageReply::Answer(Reply::Oversized {
        status: 200,
        bytes: 2 * 1024 * 1024,
    })]);
    let wait = Wait {
        timeout_ms: 120_000,
        cancel_on_timeout: false,
    };
    let done = fan_out(
        &simulator,
        request(Targets::Machines(devices(2)), Some(wait)),
    )
    .await;
    for outcome in &done.outcomes {
        let q = outcome.outcome.as_ref().expect("an action");
        assert_eq!(q.action.status, ActionStatus::Succeeded);
        assert_eq!(q.poll_error, None);
    }
    let listings = paths(&simulator, "GET", "/api/machineactions?");
    assert!(listings.len() >= 2, "{listings:?}");
    assert!(listings[0].ends_with("&$top=500"), "{}", listings[0]);
    assert!(listings[1].ends_with("&$top=250"), "{}", listings[1]);
}

#[tokio::test]
async fn a_malformed_item_in_a_listing_leaves_the_well_formed_ones_usable() {
    use defender_simulator::example::MACHINE;
    let simulator = simulator().await;
    // An action pending on the device for this file, created earlier by someone else.
    let pending = r#"{"id":"7f1c2ad4-0c3e-4bde-9a4e-2f1d3c4b5a69","type":"StopAndQuarantineFile","status":"Pending","machineId":"MACHINE","creationDateTimeUtc":"2026-11-27T00:00:00Z","relatedFileInfo":{"fileIdentifier":"SHA1","fileIdentifierType":"Sha1"}}"#
        .replace("MACHINE", MACHINE)
        .replace("SHA1", SHA1);
    simulator.script([Reply::error(400, "ActiveRequestAlreadyExists")]);
    simulator.script_pages([PageReply::Answer(Reply::Raw {
        status: 200,
        content_type: "application/json".into(),
        body: format!(
            r#"{{"value":[null,7,{{"id":5}},{{"id":"x","status":7}},"text",{pending}]}}"#
        ),
    })]);
    let outcome = component()
        .stop_and_quarantine(&integration_tests::tenant(&simulator), MACHINE, SHA1, "c")
        .await
        .expect("the call completes");
    let action = outcome.result.expect("the pending action, adopted");
    assert_eq!(action.id, "7f1c2ad4-0c3e-4bde-9a4e-2f1d3c4b5a69");
    assert_eq!(action.status, ActionStatus::Pending);
    assert_eq!(action.raw, pending);
}
