//! Reading a MachineAction from the API's JSON, tolerantly.
//!
//! In practice every member may be missing or null, members of the wrong type appear, unknown
//! members appear, and the last-update time has two spellings. Only `id` is required: without it
//! the action cannot be followed, so such a body is not a MachineAction.

use crate::bindings::defender::endpoint::types::{ActionStatus, MachineAction, RelatedFile};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Parses a MachineAction, or says why the body is not one. The action keeps the body's JSON.
pub fn parse(body: &[u8]) -> Result<MachineAction, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let Value::Object(members) = value else {
        return Err("the body is not a JSON object".into());
    };
    from_members(&members, String::from_utf8_lossy(body).trim().to_owned())
}

/// One object of a listing: its JSON exactly as sent, and its members.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// The object's JSON text, verbatim.
    pub raw: String,
    /// Its members.
    pub members: Map<String, Value>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The page's objects, in the API's order (members of `value` that are not objects are
    /// skipped).
    pub items: Vec<Listed>,
    /// How many members `value` had, objects or not.
    pub count: usize,
    /// `@odata.nextLink`: where the next page is, when the API paged the answer.
    pub next_link: Option<String>,
}

/// A listing's body as sent: `{"value": [...], "@odata.nextLink": "..."}`, other members
/// ignored, each item kept as its text.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

/// Reads a page of a listing, `{"value": [{...}, ...]}` with an optional `@odata.nextLink`.
pub fn parse_listing(body: &[u8]) -> Result<Page, String> {
    let wire: Wire<'_> = serde_json::from_slice(body).map_err(|e| match e.classify() {
        Category::Data => format!("the body is not a listing (`value` list, `nextLink`): {e}"),
        _ => format!("the body is not JSON ({e})"),
    })?;
    let count = wire.value.len();
    let items = wire
        .value
        .into_iter()
        .filter_map(|raw| match serde_json::from_slice(raw.get().as_bytes()) {
            Ok(Value::Object(members)) => Some(Listed {
                raw: raw.get().to_owned(),
                members,
            }),
            _ => None,
        })
        .collect();
    Ok(Page {
        items,
        count,
        next_link: wire.next_link,
    })
}

/// The largest action JSON kept as `raw`: an action with the longest comment is under 40 KiB;
/// a larger one keeps its typed members only, so one answer cannot outgrow what a call may
/// hand back.
pub const MAX_RAW_BYTES: usize = 64 * 1024;

/// Builds a MachineAction from an already parsed JSON object and its text.
pub fn from_members(members: &Map<String, Value>, raw: String) -> Result<MachineAction, String> {
    let raw = if raw.len() > MAX_RAW_BYTES {
        String::new()
    } else {
        raw
    };
    let id = text(members, "id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| "the body has no action `id`".to_string())?;
    Ok(MachineAction {
        id,
        action_type: text(members, "type"),
        status: status(text(members, "status")),
        machine_id: text(members, "machineId"),
        computer_dns_name: text(members, "computerDnsName"),
        requestor: text(members, "requestor"),
        requestor_comment: text(members, "requestorComment"),
        request_source: text(members, "requestSource"),
        creation_date_time_utc: text(members, "creationDateTimeUtc"),
        last_update_date_time_utc: text(members, "lastUpdateDateTimeUtc")
            .or_else(|| text(members, "lastUpdateTimeUtc")),
        cancellation_requestor: text(members, "cancellationRequestor"),
        cancellation_comment: text(members, "cancellationComment"),
        cancellation_date_time_utc: text(members, "cancellationDateTimeUtc"),
        related_file_info: related_file(members.get("relatedFileInfo")),
        raw,
    })
}

/// Maps the API's status spelling; an absent status is `other("")`.
pub fn status(value: Option<String>) -> ActionStatus {
    match value.as_deref() {
        Some("Pending") => ActionStatus::Pending,
        Some("InProgress") => ActionStatus::InProgress,
        Some("Succeeded") => ActionStatus::Succeeded,
        Some("Failed") => ActionStatus::Failed,
        Some("TimeOut") => ActionStatus::TimeOut,
        Some("Cancelled") => ActionStatus::Cancelled,
        _ => ActionStatus::Other(value.unwrap_or_default()),
    }
}

fn related_file(value: Option<&Value>) -> Option<RelatedFile> {
    let members = value?.as_object()?;
    Some(RelatedFile {
        file_identifier: text(members, "fileIdentifier")?,
        file_identifier_type: text(members, "fileIdentifierType"),
    })
}

/// A string member; null, missing and non-string values are all `None`.
pub fn text(members: &Map<String, Value>, key: &str) -> Option<String> {
    members.get(key)?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{"@odata.context": "https://api.securitycenter.windows.com/api/$metadata#MachineActions/$entity",
 "id": "141408d1-384c-4c19-8b57-ba39e378011a", "type": "StopAndQuarantineFile",
 "requestor": "Analyst@contoso.com ", "requestorComment": "Stop and quarantine file on machine due to alert 441688558380765161_2136280442",
 "status": "InProgress", "machineId": "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
 "creationDateTimeUtc": "2018-12-04T12:15:04.3825985Z", "lastUpdateTimeUtc": "2018-12-04T12:15:04.3825985Z",
 "relatedFileInfo": {"fileIdentifier": "87662bc3d60e4200ceaf7aae249d1c343f4b83c9", "fileIdentifierType": "Sha1"}}"#;

    #[test]
    fn parses_the_seed_example_with_the_old_time_spelling() {
        let action = parse(SEED.as_bytes()).unwrap();
        assert_eq!(action.id, "141408d1-384c-4c19-8b57-ba39e378011a");
        assert_eq!(action.status, ActionStatus::InProgress);
        assert_eq!(action.requestor.as_deref(), Some("Analyst@contoso.com "));
        assert_eq!(
            action.last_update_date_time_utc.as_deref(),
            Some("2018-12-04T12:15:04.3825985Z")
        );
        let file = action.related_file_info.unwrap();
        assert_eq!(file.file_identifier, crate::example::SHA1);
        assert_eq!(file.file_identifier_type.as_deref(), Some("Sha1"));
    }

    #[test]
    fn prefers_the_current_time_spelling() {
        let body = r#"{"id":"a","lastUpdateDateTimeUtc":"new","lastUpdateTimeUtc":"old"}"#;
        let action = parse(body.as_bytes()).unwrap();
        assert_eq!(action.last_update_date_time_utc.as_deref(), Some("new"));
    }

    #[test]
    fn tolerates_nulls_wrong_types_and_unknown_members() {
        let body = r#"{"id":"a","status":null,"machineId":7,"requestor":null,"scope":null,
            "errorHResult":0,"commands":[],"relatedFileInfo":null,"brandNew":{"x":1}}"#;
        let action = parse(body.as_bytes()).unwrap();
        assert_eq!(action.status, ActionStatus::Other(String::new()));
        assert_eq!(action.machine_id, None);
        assert_eq!(action.related_file_info, None);
    }

    #[test]
    fn keeps_the_json_as_sent() {
        let action = parse(SEED.as_bytes()).unwrap();
        assert_eq!(action.raw, SEED);
        let page = parse_listing(
            br#"{"@odata.context":"x","value":[ {"id":"a", "brandNew": [1, 2.50]},7,{"id":"b"}],
                "@odata.nextLink":"https://api.security.microsoft.com/api/machineactions?$skip=2"}"#,
        )
        .unwrap();
        let raws: Vec<&str> = page.items.iter().map(|i| i.raw.as_str()).collect();
        assert_eq!(
            raws,
            [r#"{"id":"a", "brandNew": [1, 2.50]}"#, r#"{"id":"b"}"#]
        );
        assert_eq!(
            page.next_link.as_deref(),
            Some("https://api.security.microsoft.com/api/machineactions?$skip=2")
        );
        let last = parse_listing(br#"{"value":[],"@odata.nextLink":null}"#).unwrap();
        assert_eq!(last.next_link, None);
    }

    #[test]
    fn an_action_too_large_keeps_its_typed_members_only() {
        let body = format!(r#"{{"id":"a","title":"{}"}}"#, "x".repeat(MAX_RAW_BYTES));
        let action = parse(body.as_bytes()).unwrap();
        assert_eq!((action.id.as_str(), action.raw.as_str()), ("a", ""));
    }

    #[test]
    fn refuses_pages_that_are_not_listings() {
        for (body, says) in [
            (&b"<html>"[..], "not JSON"),
            (b"{}", "not a listing"),
            (br#"{"value":{}}"#, "not a listing"),
            (br#"{"value":[],"@odata.nextLink":5}"#, "not a listing"),
            (br#"{"value":[],"value":[]}"#, "not a listing"),
            (b"\xff", "not JSON"),
            (b"{\"value\":[\"\xff\"]}", "not JSON"),
        ] {
            let why = parse_listing(body).unwrap_err();
            assert!(why.contains(says), "{why}");
        }
    }

    #[test]
    fn unknown_status_is_kept() {
        let action = parse(br#"{"id":"a","status":"Queued"}"#).unwrap();
        assert_eq!(action.status, ActionStatus::Other("Queued".into()));
    }

    #[test]
    fn every_documented_status_maps() {
        for (wire, expected) in [
            ("Pending", ActionStatus::Pending),
            ("InProgress", ActionStatus::InProgress),
            ("Succeeded", ActionStatus::Succeeded),
            ("Failed", ActionStatus::Failed),
            ("TimeOut", ActionStatus::TimeOut),
            ("Cancelled", ActionStatus::Cancelled),
        ] {
            assert_eq!(status(Some(wire.into())), expected);
        }
    }

    #[test]
    fn refuses_bodies_without_an_id() {
        assert!(parse(b"<html>").unwrap_err().contains("not JSON"));
        assert!(parse(b"[1]").unwrap_err().contains("not a JSON object"));
        assert!(
            parse(br#"{"id":""}"#)
                .unwrap_err()
                .contains("no action `id`")
        );
        assert!(
            parse(br#"{"id":5}"#)
                .unwrap_err()
                .contains("no action `id`")
        );
    }
}
