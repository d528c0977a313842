//! Whatever the API answers, the component's parsing returns a value or an error: never a
//! panic. Arbitrary bytes, and JSON of the right shape with members of any type, go through the
//! MachineAction and listing parsers, the error table and `Retry-After`.

use crate::machine_action;
use crate::response::{self, RawResponse};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A MachineAction's members with values of any type.
fn action_like() -> impl Strategy<Value = Value> {
    let keys = [
        "id",
        "type",
        "status",
        "machineId",
        "computerDnsName",
        "requestor",
        "requestorComment",
        "creationDateTimeUtc",
        "lastUpdateDateTimeUtc",
        "lastUpdateTimeUtc",
        "relatedFileInfo",
        "cancellationRequestor",
    ];
    prop::collection::vec(any_json(), keys.len()).prop_map(move |values| {
        Value::Object(
            keys.iter()
                .zip(values)
                .map(|(k, v)| ((*k).to_owned(), v))
                .collect(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = machine_action::parse(&body);
        let _ = machine_action::parse_listing(&body);
    }

    #[test]
    fn action_shaped_json_of_any_types_never_panics(action in action_like()) {
        let single = action.to_string();
        let _ = machine_action::parse(single.as_bytes());
        let listing = json!({"value": [action.clone(), action], "@odata.nextLink": 5});
        let _ = machine_action::parse_listing(listing.to_string().as_bytes());
    }

    #[test]
    fn any_answer_gets_a_verdict(
        status in any::<u16>(),
        body in prop::collection::vec(any::<u8>(), 0..1024),
        retry_after in proptest::option::of(".{0,30}"),
        truncated in any::<bool>(),
    ) {
        let answer = RawResponse { status, retry_after, body, truncated };
        let _ = response::interpret(&answer, 0);
        let _ = response::machine_action(&answer, response::Effect::Create);
        let _ = response::listing(&answer);
        let _ = response::api_error(&answer);
    }

    #[test]
    fn any_retry_after_is_a_number_of_milliseconds(value in ".{0,40}") {
        let _ = response::retry_after_ms(Some(&value), 0);
    }
}
