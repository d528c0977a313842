//! Whatever the API answers, through the real component in the real host: the call ends with an
//! outcome (or a limit the host enforces by name), never a trap, never the token in what it
//! reports, and every request the API saw is one the host counted.
//!
//! The answers are generated, from the simulator (any status outside the ones the component
//! retries on a timer, any content type, any body: arbitrary text, the API's error object and
//! MachineAction with members of any type, or up to 6 MiB of filler so memory stays bounded;
//! 429s whose `Retry-After` is any number of digits or any date) and from a raw server
//! (arbitrary bytes where an HTTP response belongs, and responses carrying listings of devices
//! and actions with IDs of any shape). Statuses the component waits on (5xx backoff, a 429 with
//! no usable header) are left to the example-based tests: each would spend seconds of sleep per
//! case.

use defender_host::credentials::{Secret, StaticToken};
use defender_host::outbound::ApiOrigin;
use defender_host::{
    File, MachineAction, Outcome, QuarantineRequest, RuntimeError, Targets, Tenant,
};
use defender_simulator::Reply;
use integration_tests::raw_api::RawApi;
use integration_tests::{COMMENT, MACHINE, SHA1, TOKEN, component, simulator, tenant};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A JSON string, number or null: what a member of any type looks like.
fn member() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        ".{0,20}".prop_map(Value::String),
        "[0-9a-f]{40}".prop_map(Value::String),
        any::<i64>().prop_map(|n| json!(n)),
    ]
}

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
        // Memory stays bounded: past the host's 4 MiB response limit, the call is stopped by
        // name; below it, past the component's own cap, the body is refused.
        (
            prop_oneof![Just(200_u16), Just(201), Just(400)],
            0_usize..6 * 1024 * 1024
        )
            .prop_map(|(status, bytes)| Reply::Oversized { status, bytes }),
    ]
}

/// What a raw server may send where a response belongs: bytes, or a response whose body is a
/// listing (of devices or of actions), an action, an error or text.
fn raw_answer() -> impl Strategy<Value = Vec<u8>> {
    let status = (200_u16..600).prop_filter("not retried on a timer", |s| {
        !matches!(s, 429 | 500 | 502 | 503 | 504)
    });
    let listing = prop::collection::vec(
        (member(), member(), member()).prop_map(|(id, status, machine)| {
            json!({"id": id, "status": status, "machineId": machine,
                   "relatedFileInfo": {"fileIdentifier": SHA1}})
        }),
        0..6,
    )
    .prop_map(|value| json!({ "value": value }).to_string());
    let body = prop_oneof![listing, body()];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        (
            prop_oneof![3 => Just(200_u16), 2 => Just(201), 1 => status],
            body
        )
            .prop_map(|(status, body)| {
                format!(
                    "HTTP/1.1 {status} Any\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }),
    ]
}

/// An outcome whose report holds no token, or a limit the host enforced; anything else fails.
fn ended_well<T: Debug>(result: &Result<Outcome<T>, RuntimeError>) -> Result<(), TestCaseError> {
    match result {
        Ok(outcome) => {
            prop_assert!(outcome.denials.is_empty(), "{:?}", outcome.denials);
            let reported = format!("{outcome:?}");
            prop_assert!(!reported.contains(TOKEN), "the token in {}", reported);
        }
        Err(RuntimeError::Limit(_)) => {}
        Err(other) => prop_assert!(false, "the call failed: {}", other),
    }
    Ok(())
}

fn block_on<T>(work: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
        .block_on(work)
}

fn call(replies: Vec<Reply>) -> (Result<Outcome<MachineAction>, RuntimeError>, usize) {
    block_on(async {
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
        ended_well(&result)?;
        if let Ok(outcome) = result {
            prop_assert_eq!(usize::try_from(outcome.requests_sent).ok(), Some(seen));
            prop_assert!(seen <= scripted + 1, "{} requests for {} answers", seen, scripted);
        }
    }

    /// Every device the API lists is acted on only if its ID is one: a POST goes only to a
    /// 40-hex path segment, whatever the listing held. A read whose answer is garbage never
    /// claims an action may have been created.
    #[test]
    fn any_bytes_from_the_api_end_in_an_outcome(
        answers in prop::collection::vec(raw_answer(), 1..8),
        everywhere in any::<bool>(),
    ) {
        let (ended, requests) = block_on(async {
            let api = RawApi::start(answers).await;
            let tenant = Tenant::new(
                ApiOrigin::parse(&api.url()).expect("a loopback URL"),
                Arc::new(StaticToken::new(Secret::new(TOKEN))),
            );
            let ended = if everywhere {
                let request = QuarantineRequest {
                    targets: Targets::Everywhere,
                    file: File::Sha1(SHA1.into()),
                    comment: COMMENT.into(),
                    wait: None,
                    max_machines: None,
                };
                ended_well(&component().quarantine(&tenant, request, None).await)
            } else {
                let id = "7f8c3b2a-1d4e-4f6a-9b0c-5e2d1a3f4b6c";
                let result = component().get_action(&tenant, id).await;
                let claim = format!("{result:?}");
                ended_well(&result).and_then(|()| {
                    prop_assert!(!claim.contains("may have been created"), "a read claims {}", claim);
                    Ok(())
                })
            };
            (ended, api.requests())
        });
        ended?;
        for line in &requests {
            if let Some(path) = line.strip_prefix("POST /api/machines/") {
                let machine = path.split('/').next().unwrap_or_default();
                prop_assert!(
                    machine.len() == 40 && machine.bytes().all(|b| b.is_ascii_hexdigit()),
                    "a POST for {:?}", machine
                );
            }
        }
    }
}
