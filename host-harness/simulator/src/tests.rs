//! The simulator on 127.0.0.1, talked to over plain HTTP/1.1: budgets, paging, filters,
//! settling and scripted pages.

mod client;
mod models;
mod scripts;

use super::*;
use client::{SHA1, calls, create, get, machine, next_of, run, send_as, start, token_for};
use serde_json::{Value, json};
use std::time::Duration;

#[test]
fn a_spent_api_answers_429_with_retry_after_and_the_others_still_answer() {
    run(async {
        let simulator = start().await;
        let names: Vec<_> = simulator.api_calls().iter().map(|c| c.api).collect();
        let expected = [
            "create-action",
            "get-action",
            "list-actions",
            "cancel-action",
        ];
        assert_eq!(names, [&expected[..], &["file-machines"]].concat());
        simulator.set_rate_limit(Some(RateLimit {
            per_minute: 2,
            per_hour: 1500,
        }));
        for _ in 0..2 {
            assert_eq!(get(&simulator, "/api/machineactions").await.status, 200);
        }
        let refused = get(&simulator, "/api/machineactions").await;
        assert_eq!(refused.status, 429);
        let seconds: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&seconds), "{seconds}");
        let error = &refused.body["error"];
        assert_eq!(error["code"], "TooManyRequests");
        let message = format!("Rate limit is exceeded. Try again in {seconds} seconds.");
        assert_eq!(error["message"], message.as_str());
        assert!(error["target"].as_str().is_some_and(|t| t.len() == 36));
        // Refused calls and unauthorized ones are not counted; other APIs have their own budget.
        assert_eq!(get(&simulator, "/api/machineactions").await.status, 429);
        let stranger = send_as(
            &simulator,
            "not-the-token",
            "GET",
            "/api/machineactions",
            "",
        );
        assert_eq!(stranger.await.status, 401);
        let path = format!("/api/files/{SHA1}/machines");
        assert_eq!(get(&simulator, &path).await.status, 200);
        create(&simulator, &machine(1)).await;
        assert_eq!(calls(&simulator, "list-actions"), (2, 2));
        assert_eq!(calls(&simulator, "file-machines"), (1, 0));
        assert_eq!(calls(&simulator, "create-action"), (1, 0));
        simulator.set_rate_limit(None);
        assert_eq!(get(&simulator, "/api/machineactions").await.status, 200);
    });
}

#[test]
fn each_application_has_its_own_budget() {
    run(async {
        let simulator = start().await;
        let secret = ClientProof::Secret("s3cret".into());
        simulator.register_client("t1", "app-1", secret);
        simulator.set_rate_limit(Some(RateLimit {
            per_minute: 1,
            per_hour: 10,
        }));
        let app_token = token_for(&simulator, "t1", "app-1", "s3cret").await;
        assert_eq!(get(&simulator, "/api/machineactions").await.status, 200);
        assert_eq!(get(&simulator, "/api/machineactions").await.status, 429);
        let app = send_as(&simulator, &app_token, "GET", "/api/machineactions", "").await;
        assert_eq!(app.status, 200);
        let app = send_as(&simulator, &app_token, "GET", "/api/machineactions", "").await;
        assert_eq!(app.status, 429);
    });
}

#[test]
fn listings_page_across_three_pages_by_next_link() {
    run(async {
        let simulator = start().await;
        simulator.set_progression(Progression::StayPending);
        let mut created = Vec::new();
        for n in 1..=6 {
            let answered = create(&simulator, &machine(n)).await;
            created.push(answered.body["id"].as_str().unwrap().to_owned());
        }
        created.reverse();
        simulator.set_page_size(2);
        let first = "/api/machineactions?$filter=type%20eq%20%27StopAndQuarantineFile%27&$top=5";
        let mut path = first.to_owned();
        let (mut ids, mut links) = (Vec::new(), Vec::new());
        loop {
            let page = get(&simulator, &path).await;
            assert_eq!(page.status, 200, "{}", page.body);
            let context = "https://api.security.microsoft.com/api/$metadata#MachineActions";
            assert_eq!(page.body["@odata.context"], context);
            for action in page.body["value"].as_array().unwrap() {
                ids.push(action["id"].as_str().unwrap().to_owned());
            }
            let Some(next) = next_of(&simulator, &page) else {
                break;
            };
            links.push(next.clone());
            path = next;
        }
        assert_eq!(ids, created[..5]);
        let filter = "$filter=type%20eq%20%27StopAndQuarantineFile%27";
        assert_eq!(
            links,
            [
                format!("/api/machineactions?{filter}&$top=3&$skip=2"),
                format!("/api/machineactions?{filter}&$top=1&$skip=4"),
            ]
        );
        let skipped = get(&simulator, "/api/machineactions?$skip=5").await;
        assert_eq!(skipped.body["value"][0]["id"], created[5].as_str());
        assert_eq!(next_of(&simulator, &skipped), None);

        let fleet: Vec<String> = (1..=3).map(machine).collect();
        let fleet_refs: Vec<&str> = fleet.iter().map(String::as_str).collect();
        simulator.file_seen_on(SHA1, &fleet_refs);
        let page = get(&simulator, &format!("/api/files/{SHA1}/machines")).await;
        let context = "https://api.security.microsoft.com/api/$metadata#Machines";
        assert_eq!(page.body["@odata.context"], context);
        assert_eq!(page.body["value"][1]["id"], fleet[1].as_str());
        let next = next_of(&simulator, &page).unwrap();
        assert_eq!(next, format!("/api/files/{SHA1}/machines?$skip=2"));
        let last = get(&simulator, &next).await;
        assert_eq!(
            last.body["value"],
            json!([{"id": fleet[2], "computerDnsName": "desktop-03030303.contoso.local"}])
        );
        assert_eq!(next_of(&simulator, &last), None);
    });
}

#[test]
fn bad_query_options_are_odata_errors() {
    run(async {
        let simulator = start().await;
        for query in [
            "$top=0",
            "$top=10001",
            "$top=abc",
            "$skip=-1",
            "$skiptoken=abc",
            "$orderby=id",
            "$top=1&$top=2",
            "$filter=",
            "$filter=computerDnsName%20eq%20%27x%27",
            "$filter=machineId%20ne%20%27x%27",
            "$filter=machineId%20eq%20x",
            "$filter=machineId%20eq%20%27x%27%20or%20type%20eq%20%27y%27",
            "$filter=creationDateTimeUtc%20ge%20%272026-11-28T14:50:00Z%27",
        ] {
            let answered = get(&simulator, &format!("/api/machineactions?{query}")).await;
            assert_eq!(answered.status, 400, "{query}");
            assert_eq!(answered.body["error"]["code"], "ODataError", "{query}");
        }
        for query in ["$filter=id%20eq%20%27x%27", "$top=2"] {
            let path = format!("/api/files/{SHA1}/machines?{query}");
            let answered = get(&simulator, &path).await;
            assert_eq!(answered.status, 400, "{query}");
            assert_eq!(answered.body["error"]["code"], "ODataError", "{query}");
        }
    });
}

#[test]
fn creation_date_filters_compare_instants() {
    run(async {
        let simulator = start().await;
        let older = create(&simulator, &machine(1)).await.body;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let newer = create(&simulator, &machine(2)).await.body;
        let since = newer["creationDateTimeUtc"].as_str().unwrap();
        let listed = |operator: &str| {
            let path =
                format!("/api/machineactions?$filter=creationDateTimeUtc+{operator}+{since}");
            let simulator = &simulator;
            async move {
                let answered = get(simulator, &path).await;
                assert_eq!(answered.status, 200, "{}", answered.body);
                let value = answered.body["value"].as_array().unwrap().clone();
                value.iter().map(|a| a["id"].clone()).collect::<Vec<_>>()
            }
        };
        assert_eq!(listed("ge").await, [newer["id"].clone()]);
        assert_eq!(listed("lt").await, [older["id"].clone()]);
        assert_eq!(listed("gt").await, Vec::<Value>::new());
        let both = format!(
            "/api/machineactions?$filter=creationDateTimeUtc%20le%20{since}%20and%20machineId%20eq%20%27{}%27",
            machine(1)
        );
        let answered = get(&simulator, &both).await;
        assert_eq!(answered.body["value"][0]["id"], older["id"]);
    });
}

#[test]
fn settling_goes_by_time_however_often_polled() {
    run(async {
        let simulator = start().await;
        let after = Duration::from_millis(600);
        simulator.set_progression(Progression::Settle {
            after,
            final_status: "Succeeded".into(),
        });
        let polled = create(&simulator, &machine(1)).await.body;
        let unpolled = create(&simulator, &machine(2)).await.body;
        assert_eq!(polled["status"], "Pending");
        let id = polled["id"].as_str().unwrap();
        let early = get(&simulator, &format!("/api/machineactions/{id}")).await;
        assert_ne!(early.body["status"], "Succeeded");
        tokio::time::sleep(after / 2 + Duration::from_millis(20)).await;
        let midway = get(&simulator, &format!("/api/machineactions/{id}")).await;
        assert_eq!(midway.body["status"], "InProgress");
        assert_ne!(
            midway.body["lastUpdateDateTimeUtc"],
            polled["lastUpdateDateTimeUtc"]
        );
        tokio::time::sleep(after / 2).await;
        let listed = get(&simulator, "/api/machineactions").await;
        let statuses: Vec<_> = listed.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["id"].clone(), a["status"].clone()))
            .collect();
        assert_eq!(
            statuses,
            [
                (unpolled["id"].clone(), json!("Succeeded")),
                (polled["id"].clone(), json!("Succeeded")),
            ]
        );
        // Settled, the device takes another action.
        create(&simulator, &machine(2)).await;
    });
}

#[test]
fn listings_move_actions_along_and_show_hidden_ones() {
    run(async {
        let simulator = start().await;
        simulator.hide_new_actions(5);
        let id = create(&simulator, &machine(1)).await.body["id"].clone();
        let path = format!("/api/machineactions/{}", id.as_str().unwrap());
        assert_eq!(get(&simulator, &path).await.status, 404);
        let listed = get(&simulator, "/api/machineactions").await;
        assert_eq!(listed.body["value"][0]["id"], id);
        assert_eq!(listed.body["value"][0]["status"], "InProgress");
        let listed = get(&simulator, "/api/machineactions").await;
        assert_eq!(listed.body["value"][0]["status"], "Succeeded");
    });
}

#[test]
fn scripted_pages_answer_in_order() {
    run(async {
        let simulator = start().await;
        simulator.script_pages([
            PageReply::NextLink("http://example.invalid/next".into()),
            PageReply::Answer(Reply::throttle(7)),
            PageReply::Answer(Reply::error(503, "ServiceUnavailable")),
            PageReply::Answer(Reply::Create),
        ]);
        let page = get(&simulator, "/api/machineactions").await;
        assert_eq!(page.status, 200);
        assert_eq!(page.body["@odata.nextLink"], "http://example.invalid/next");
        assert_eq!(page.body["value"], json!([]));
        let throttled = get(&simulator, &format!("/api/files/{SHA1}/machines")).await;
        assert_eq!(throttled.status, 429);
        assert_eq!(throttled.header("retry-after"), Some("7"));
        let failed = get(&simulator, "/api/machineactions").await;
        assert_eq!(failed.status, 503);
        assert_eq!(failed.body["error"]["code"], "ServiceUnavailable");
        for _ in 0..2 {
            let normal = get(&simulator, "/api/machineactions").await;
            assert_eq!(normal.status, 200);
            assert!(normal.body.get("@odata.nextLink").is_none());
        }
        // A scripted 429 is not the budget's.
        assert_eq!(calls(&simulator, "file-machines"), (1, 0));
    });
}

#[test]
fn new_actions_carry_added_members() {
    run(async {
        let simulator = start().await;
        let before = create(&simulator, &machine(1)).await.body;
        assert!(before.get("newMember").is_none());
        simulator.add_action_member("newMember", json!({"nested": [1, 2]}));
        let created = create(&simulator, &machine(2)).await.body;
        assert_eq!(created["newMember"], json!({"nested": [1, 2]}));
        let id = created["id"].as_str().unwrap();
        let polled = get(&simulator, &format!("/api/machineactions/{id}")).await;
        assert_eq!(polled.body["newMember"], json!({"nested": [1, 2]}));
        let listed = get(&simulator, "/api/machineactions").await;
        assert_eq!(
            listed.body["value"][0]["newMember"],
            json!({"nested": [1, 2]})
        );
        assert!(listed.body["value"][1].get("newMember").is_none());
    });
}
