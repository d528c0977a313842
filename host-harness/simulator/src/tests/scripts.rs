//! Route scripts, the new reply kinds, and the order in which a request is checked before any
//! scripted answer.

use super::client::{
    SHA1, TOKEN, calls, create, create_body, create_path, get, id_of, machine, run, send_as, start,
    try_send,
};
use crate::{PageReply, PatternError, Progression, Reply};
use serde_json::{Value, json};

fn unavailable(code: &str) -> Reply {
    Reply::error(503, code)
}

#[test]
fn bad_patterns_are_refused_and_queue_nothing() {
    run(async {
        let simulator = start().await;
        let refused = simulator.script_route("GET", "api/machineactions", [unavailable("A")]);
        let expected = PatternError::NotAbsolute("api/machineactions".into());
        assert_eq!(refused, Err(expected));
        let refused = simulator.script_route("GE T", "/api/machineactions", [unavailable("B")]);
        assert_eq!(refused, Err(PatternError::Method("GE T".into())));
        let refused = simulator.script_route("", "/api/machineactions", [unavailable("C")]);
        assert_eq!(refused, Err(PatternError::Method(String::new())));
        assert_eq!(get(&simulator, "/api/machineactions").await.status, 200);
    });
}

#[test]
fn a_star_is_one_segment_the_query_is_ignored_and_the_method_counts() {
    run(async {
        let simulator = start().await;
        let id = id_of(&create(&simulator, &machine(1)).await);
        simulator
            .script_route("GET", "/api/*", [unavailable("Listing")])
            .unwrap();
        simulator
            .script_route(
                "GET",
                "/api/machines/*/StopAndQuarantineFile",
                [unavailable("Get")],
            )
            .unwrap();
        // `/api/*` is not `/api/machineactions/{id}`, nor a create a GET pattern.
        let polled = get(&simulator, &format!("/api/machineactions/{id}")).await;
        assert_eq!(polled.status, 200);
        assert_eq!(polled.body["id"], id.as_str());
        create(&simulator, &machine(2)).await;
        let listed = get(&simulator, "/api/machineactions?$top=1").await;
        assert_eq!(listed.status, 503);
        assert_eq!(listed.body["error"]["code"], "Listing");
        // Used up: the API again.
        let listed = get(&simulator, "/api/machineactions?$top=1").await;
        assert_eq!(listed.status, 200);
        assert_eq!(listed.body["value"].as_array().map(Vec::len), Some(1));
    });
}

#[test]
fn the_earliest_route_with_replies_answers_then_the_api() {
    run(async {
        let simulator = start().await;
        let id = id_of(&create(&simulator, &machine(1)).await);
        let path = format!("/api/machineactions/{id}");
        let any = "/api/machineactions/*";
        simulator
            .script_route("GET", any, [unavailable("First")])
            .unwrap();
        simulator
            .script_route("GET", &path, [unavailable("Second"), unavailable("Third")])
            .unwrap();
        simulator
            .script_route("GET", any, [unavailable("Fourth")])
            .unwrap();
        for code in ["First", "Second", "Third", "Fourth"] {
            let answered = get(&simulator, &path).await;
            assert_eq!(answered.status, 503, "{code}");
            assert_eq!(answered.body["error"]["code"], code);
        }
        let answered = get(&simulator, &path).await;
        assert_eq!(answered.status, 200);
        assert_eq!(answered.body["id"], id.as_str());
    });
}

#[test]
fn drop_does_nothing_and_create_then_drop_cancels() {
    run(async {
        let simulator = start().await;
        simulator.set_progression(Progression::StayPending);
        simulator.script([Reply::Drop]);
        let (path, body) = (create_path(&machine(1)), create_body());
        let json = Some("application/json");
        let dropped = try_send(&simulator, TOKEN, "POST", &path, json, &body).await;
        assert!(dropped.is_none());
        assert_eq!(simulator.action_count(), 0);
        let id = id_of(&create(&simulator, &machine(1)).await);
        let cancel = format!("/api/machineactions/{id}/cancel");
        let replies = [Reply::Drop, Reply::CreateThenDrop];
        simulator
            .script_route("POST", "/api/machineactions/*/cancel", replies)
            .unwrap();
        let body = json!({"Comment": "stop"}).to_string();
        let cancel_once = || {
            try_send(
                &simulator,
                TOKEN,
                "POST",
                &cancel,
                Some("application/json"),
                &body,
            )
        };
        assert!(cancel_once().await.is_none());
        let polled = get(&simulator, &format!("/api/machineactions/{id}")).await;
        assert_eq!(polled.body["status"], "Pending");
        assert_eq!(polled.body["cancellationComment"], Value::Null);
        assert!(cancel_once().await.is_none());
        let polled = get(&simulator, &format!("/api/machineactions/{id}")).await;
        assert_eq!(polled.body["status"], "Cancelled");
        assert_eq!(polled.body["cancellationComment"], "stop");
        // Already final: the common-errors page's general 400, the simulator's choice.
        let again = cancel_once().await.unwrap();
        assert_eq!(again.status, 400);
        assert_eq!(again.body["error"]["code"], "BadRequest");
        assert_eq!(calls(&simulator, "cancel-action"), (3, 0));
    });
}

#[test]
fn with_headers_adds_and_replaces_and_skips_invalid_ones() {
    run(async {
        let simulator = start().await;
        let id = id_of(&create(&simulator, &machine(1)).await);
        let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        let inner = Reply::WithHeaders {
            headers: vec![pair("x-inner", "kept"), pair("x-ms-test", "inner")],
            reply: Box::new(Reply::Create),
        };
        let reply = Reply::WithHeaders {
            headers: vec![
                pair("X-Ms-Test", "one"),
                pair("Content-Type", "text/plain"),
                pair("bad name", "x"),
                pair("x-bad-value", "a\r\nb"),
                pair("x-ms-test", "two"),
            ],
            reply: Box::new(inner),
        };
        simulator
            .script_route("GET", "/api/machineactions/*", [reply])
            .unwrap();
        let polled = get(&simulator, &format!("/api/machineactions/{id}")).await;
        assert_eq!(polled.status, 200);
        assert_eq!(polled.body["id"], id.as_str());
        assert_eq!(polled.header("content-type"), Some("text/plain"));
        assert_eq!(polled.header("x-inner"), Some("kept"));
        let tests: Vec<_> = polled
            .headers
            .iter()
            .filter(|(n, _)| n == "x-ms-test")
            .collect();
        assert_eq!(tests, [&("x-ms-test".to_owned(), "two".to_owned())]);
        assert_eq!(polled.header("bad name"), None);
        assert_eq!(polled.header("x-bad-value"), None);
    });
}

#[test]
fn an_unauthorized_request_is_refused_and_leaves_the_script_queued() {
    run(async {
        let simulator = start().await;
        simulator.script([unavailable("Create")]);
        simulator
            .script_route("GET", "/api/machineactions", [unavailable("List")])
            .unwrap();
        let path = create_path(&machine(1));
        for (method, path, body) in [
            ("POST", path.as_str(), create_body()),
            ("GET", "/api/machineactions", String::new()),
        ] {
            let refused = send_as(&simulator, "not-the-token", method, path, &body).await;
            assert_eq!(refused.status, 401, "{method}");
            assert_eq!(refused.body["error"]["code"], "Unauthorized");
            let message = "Authorization has been denied for this request.";
            assert_eq!(refused.body["error"]["message"], message);
        }
        let scripted = send_as(&simulator, TOKEN, "POST", &path, &create_body()).await;
        assert_eq!(scripted.body["error"]["code"], "Create");
        let scripted = get(&simulator, "/api/machineactions").await;
        assert_eq!(scripted.body["error"]["code"], "List");
        assert_eq!(simulator.action_count(), 0);
        assert_eq!(calls(&simulator, "create-action"), (1, 0));
    });
}

#[test]
fn a_request_the_endpoint_refuses_leaves_the_script_queued() {
    run(async {
        let simulator = start().await;
        simulator.script([unavailable("Create")]);
        let (path, body) = (create_path(&machine(1)), create_body());
        let text = Some("text/plain");
        let wrong_type = try_send(&simulator, TOKEN, "POST", &path, text, &body).await;
        let wrong_type = wrong_type.unwrap();
        assert_eq!(wrong_type.status, 415);
        assert_eq!(wrong_type.body["error"]["code"], "UnsupportedMediaType");
        let bad_hash = json!({"Comment": "test", "Sha1": "abc"}).to_string();
        let refused = send_as(&simulator, TOKEN, "POST", &path, &bad_hash).await;
        assert_eq!(refused.status, 400);
        assert_eq!(refused.body["error"]["code"], "InvalidHashValue");
        let unknown = create_path("not-a-device");
        let refused = send_as(&simulator, TOKEN, "POST", &unknown, &create_body()).await;
        assert_eq!(refused.status, 404);
        let scripted = send_as(&simulator, TOKEN, "POST", &path, &create_body()).await;
        assert_eq!(scripted.body["error"]["code"], "Create");
        let id = id_of(&create(&simulator, &machine(1)).await);

        let cancel = format!("/api/machineactions/{id}/cancel");
        simulator
            .script_route(
                "POST",
                "/api/machineactions/*/cancel",
                [unavailable("Cancel")],
            )
            .unwrap();
        let refusals = [
            (
                Some("text/plain"),
                "{\"Comment\": \"x\"}",
                415,
                "UnsupportedMediaType",
            ),
            (
                Some("application/json"),
                "[\"Comment\"]",
                400,
                "InvalidRequestBody",
            ),
            (
                Some("application/json"),
                "{\"Comment\": 1}",
                400,
                "MissingRequiredParameter",
            ),
        ];
        for (content_type, body, status, code) in refusals {
            let refused = try_send(&simulator, TOKEN, "POST", &cancel, content_type, body);
            let refused = refused.await.unwrap();
            assert_eq!(
                (refused.status, &refused.body["error"]["code"]),
                (status, &json!(code))
            );
        }
        let body = json!({"Comment": "x"}).to_string();
        let scripted = send_as(&simulator, TOKEN, "POST", &cancel, &body).await;
        assert_eq!(scripted.body["error"]["code"], "Cancel");
    });
}

#[test]
fn a_refused_query_leaves_the_page_script_queued() {
    run(async {
        let simulator = start().await;
        simulator.script_pages([PageReply::Answer(unavailable("Page"))]);
        simulator
            .script_route("GET", "/api/files/*/machines", [unavailable("Route")])
            .unwrap();
        let bad_filter = "/api/machineactions?$filter=computerDnsName%20eq%20%27x%27";
        let refused = get(&simulator, bad_filter).await;
        assert_eq!(refused.status, 400);
        assert_eq!(refused.body["error"]["code"], "ODataError");
        let files = format!("/api/files/{SHA1}/machines");
        let refused = get(&simulator, &format!("{files}?$top=2")).await;
        assert_eq!(refused.status, 400);
        assert_eq!(refused.body["error"]["code"], "ODataError");
        // The route script comes before the page script.
        let scripted = get(&simulator, &files).await;
        assert_eq!(scripted.body["error"]["code"], "Route");
        let scripted = get(&simulator, "/api/machineactions").await;
        assert_eq!(scripted.body["error"]["code"], "Page");
        let listed = get(&simulator, "/api/machineactions").await;
        assert_eq!(listed.status, 200);
    });
}

#[test]
fn a_route_script_comes_before_a_device_reply() {
    run(async {
        let simulator = start().await;
        simulator.reply_for_machine(&machine(1), Reply::error(404, "Device"));
        simulator.script([unavailable("Route")]);
        let path = create_path(&machine(1));
        let first = send_as(&simulator, TOKEN, "POST", &path, &create_body()).await;
        assert_eq!(
            (first.status, &first.body["error"]["code"]),
            (503, &json!("Route"))
        );
        let second = send_as(&simulator, TOKEN, "POST", &path, &create_body()).await;
        assert_eq!(
            (second.status, &second.body["error"]["code"]),
            (404, &json!("Device"))
        );
        create(&simulator, &machine(2)).await;
    });
}
