//! Whatever the API answers, through the real component in the real host: the call ends with an
//! outcome (or a limit the host enforces), never a trap, never the token in what it reports, and
//! every request the simulator saw is one the host counted.
//!
//! The answers are generated: any status outside the ones the component retries on a timer,
//! any content type, any body (arbitrary text, the API's error object and MachineAction with
//! members of any type), and 429s whose `Retry-After` is any number of digits or any date.
//! Statuses the component waits on (5xx backoff, a 429 with no usable header) are left to the
//! example-based tests: each would spend seconds of sleep per case.

use defender_host::{MachineAction, Outcome, RuntimeError};
use defender_simulator::Reply;
use integration_tests::{COMMENT, MACHINE, SHA1, TOKEN, component, simulator, tenant};
use proptest::prelude::*;
use serde_json::json;
use std::time::{Duration, SystemTime};

/// Text from the API: anything, or JSON in the shapes the component parses, members of any type.
fn body() -> impl Strategy<Value = String> {
    let text = prop_oneof![
        Just(json!(null)),
        ".{0,20}".prop_map(|s| json!(s)),
        any::<i64>().prop_map(|n| json!(n))
    ];
    prop_oneof![
        ".{0,200}",
        (text.clone(), text.clone(), text.clone()).prop_map(|(code, message, target)| {
            json!({"error": {"code": code, "message": message, "target": target}}).to_string()
        }),
        (text.clone(), text.clone(), text.clone(), text).prop_map(
            |(id, status, machine, comment)| json!({
                "id": id, "type": "StopAndQuarantineFile", "status": status,
                "machineId": machine, "requestorComment": comment,
                "relatedFileInfo": {"fileIdentifier": SHA1, "fileIdentifierType": "Sha1"},
            })
            .to_string()
        ),
    ]
}

/// A `Retry-After` the component acts on without sleeping: `0`, a date in the past (both mean
/// "now"), or a delay past the component's 90-second deadline, as digits or as a date.
fn retry_after() -> impl Strategy<Value = String> {
    let date = |offset: i64| {
        let now = SystemTime::now();
        let at = if offset < 0 {
            now - Duration::from_secs(offset.unsigned_abs())
        } else {
            now + Duration::from_secs(offset.unsigned_abs())
        };
        httpdate::fmt_http_date(at)
    };
    prop_oneof![
        Just("0".to_owned()),
        "[1-9][0-9]{2,40}",
        (-1_000_000_000_i64..-1).prop_map(date),
        (3_600_i64..100_000_000).prop_map(date),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    let status = (200_u16..600).prop_filter("not retried on a timer", |s| {
        !matches!(s, 429 | 500 | 502 | 503 | 504)
    });
    prop_oneof![
        (status, "[ -~]{0,40}", body()).prop_map(|(status, content_type, body)| Reply::Raw {
            status,
            content_type,
            body,
        }),
        retry_after().prop_map(|retry_after| Reply::Throttle { retry_after }),
    ]
}

fn call(replies: Vec<Reply>) -> (Result<Outcome<MachineAction>, RuntimeError>, usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(async {
        let simulator = simulator().await;
        simulator.script(replies);
        let result = component()
            .stop_and_quarantine(&tenant(&simulator), MACHINE, SHA1, COMMENT)
            .await;
        (result, simulator.requests().len())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_answers_end_in_an_outcome(replies in prop::collection::vec(reply(), 1..5)) {
        let scripted = replies.len();
        let (result, seen) = call(replies);
        match result {
            Ok(outcome) => {
                prop_assert_eq!(usize::try_from(outcome.requests_sent).ok(), Some(seen));
                prop_assert!(seen <= scripted + 1, "{} requests for {} answers", seen, scripted);
                prop_assert!(outcome.denials.is_empty(), "{:?}", outcome.denials);
                let reported = format!("{outcome:?}");
                prop_assert!(!reported.contains(TOKEN), "the token in {}", reported);
            }
            Err(RuntimeError::Limit(_)) => {}
            Err(other) => prop_assert!(false, "the call failed: {other}"),
        }
    }
}
