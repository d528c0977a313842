//! The requests the component may make with the tenant's token: exactly the shapes its job
//! needs, method and path together, so a compromised component cannot use the token for
//! anything else the app registration allows (isolate, offboard, live response, reading alerts),
//! even on the tenant's own API origin.

use crate::rate_limit::Api;
use http::{Method, Uri};

/// The API `method` and `uri` call, when the request is one the component needs, or why it is
/// not (the reason names the method and path, escaped: they come from the guest). A request's
/// API is also the budget whose permit must cover it.
pub fn of(method: &Method, uri: &Uri) -> Result<Api, String> {
    let path = uri.path();
    let query = uri.query();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let found = match (method, segments.as_slice(), query) {
        (&Method::POST, ["api", "machines", id, "StopAndQuarantineFile"], None)
            if is_lower_hex40(id) =>
        {
            Some(Api::CreateAction)
        }
        (&Method::GET, ["api", "machineactions", id], None) if is_guid(id) => Some(Api::GetAction),
        (&Method::POST, ["api", "machineactions", id, "cancel"], None) if is_guid(id) => {
            Some(Api::CancelAction)
        }
        (&Method::GET, ["api", "machineactions"], Some(query)) if is_action_listing(query) => {
            Some(Api::ListActions)
        }
        (&Method::GET, ["api", "files", sha1, "machines"], query)
            if is_lower_hex40(sha1) && query.is_none_or(is_machine_listing) =>
        {
            Some(Api::FileMachines)
        }
        _ => None,
    };
    found.ok_or_else(|| {
        let shown = uri.path_and_query().map_or(path, |p| p.as_str());
        crate::escape::escape(&format!(
            "{method} {} is not a request the component needs; only its own action's \
             requests may carry the tenant's token",
            truncated(shown)
        ))
    })
}

/// At most 200 characters of a guest-chosen path, for a message.
fn truncated(text: &str) -> String {
    let mut shown: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        shown.push('…');
    }
    shown
}

/// The component lower-cases device IDs and hashes before it sends them.
fn is_lower_hex40(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex in either case (the API's IDs, passed on).
fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A listing of this component's actions: exactly one of the component's two filters (however
/// the API's `nextLink` encodes it), and optionally `$top` and `$skip`, each at most once.
fn is_action_listing(query: &str) -> bool {
    let Some(options) = paging_options(query, &["$filter", "$top", "$skip"]) else {
        return false;
    };
    options
        .iter()
        .any(|(name, value)| name == "$filter" && is_components_filter(value))
}

/// `machineId eq '{40 hex}' and type eq 'StopAndQuarantineFile' and creationDateTimeUtc ge
/// {YYYY-MM-DDTHH:MM:SSZ}` (a device's recent actions, to find a pending one) or `type eq
/// 'StopAndQuarantineFile' and creationDateTimeUtc ge {YYYY-MM-DDTHH:MM:SSZ}` (a poll round),
/// decoded, and nothing else: no other term, operator, group or white space, so the filter
/// cannot widen to other actions.
fn is_components_filter(filter: &str) -> bool {
    const TYPE_SINCE: &str = "type eq 'StopAndQuarantineFile' and creationDateTimeUtc ge ";
    let since = match filter.strip_prefix("machineId eq '") {
        Some(rest) => match rest.split_once("' and ") {
            Some((device, since)) if is_lower_hex40(device) => since,
            _ => return false,
        },
        None => filter,
    };
    since.strip_prefix(TYPE_SINCE).is_some_and(is_utc_second)
}

/// `YYYY-MM-DDTHH:MM:SSZ`, digits where digits go.
fn is_utc_second(text: &str) -> bool {
    let shape = b"dddd-dd-ddTdd:dd:ddZ";
    text.len() == shape.len()
        && text.bytes().zip(shape).all(|(b, s)| match s {
            b'd' => b.is_ascii_digit(),
            other => b == *other,
        })
}

/// A page of a file's devices: `$top` and `$skip` at most once each, nothing else.
fn is_machine_listing(query: &str) -> bool {
    paging_options(query, &["$top", "$skip"]).is_some()
}

/// The query's options, decoded, when each is one of `allowed`, appears once, and `$top` and
/// `$skip` are numbers.
fn paging_options(query: &str, allowed: &[&str]) -> Option<Vec<(String, String)>> {
    let options: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let mut seen = Vec::new();
    for (name, value) in &options {
        let number =
            |v: &str| !v.is_empty() && v.len() <= 9 && v.bytes().all(|b| b.is_ascii_digit());
        let fits = allowed.contains(&name.as_str())
            && !seen.contains(name)
            && (name == "$filter" || number(value));
        if !fits {
            return None;
        }
        seen.push(name.clone());
    }
    Some(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: &str = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07";
    const ACTION: &str = "141408d1-384c-4c19-8b57-ba39e378011a";

    fn check(method: Method, path: &str) -> Result<Api, String> {
        let uri: Uri = format!("https://api.security.microsoft.com{path}")
            .parse()
            .expect("a URI");
        of(&method, &uri)
    }

    #[test]
    fn admits_each_request_the_component_makes() {
        let listing = format!(
            "/api/machineactions?$filter=machineId%20eq%20%27{DEVICE}%27%20and%20type%20eq%20%27StopAndQuarantineFile%27%20and%20creationDateTimeUtc%20ge%202026-11-23T00%3A00%3A00Z"
        );
        let cases = [
            (
                Method::POST,
                format!("/api/machines/{DEVICE}/StopAndQuarantineFile"),
                Api::CreateAction,
            ),
            (
                Method::GET,
                format!("/api/machineactions/{ACTION}"),
                Api::GetAction,
            ),
            (
                Method::GET,
                format!("/api/machineactions/{}", ACTION.to_uppercase()),
                Api::GetAction,
            ),
            (
                Method::POST,
                format!("/api/machineactions/{ACTION}/cancel"),
                Api::CancelAction,
            ),
            (Method::GET, listing.clone(), Api::ListActions),
            (
                Method::GET,
                format!("{listing}&$top=500&$skip=500"),
                Api::ListActions,
            ),
            (
                Method::GET,
                "/api/machineactions?$filter=type%20eq%20%27StopAndQuarantineFile%27%20and%20\
                 creationDateTimeUtc%20ge%202026-11-27T00%3A00%3A00Z&$top=500"
                    .to_owned(),
                Api::ListActions,
            ),
            (
                Method::GET,
                "/api/machineactions?$skip=10&$filter=type+eq+'StopAndQuarantineFile'+and+\
                 creationDateTimeUtc+ge+2026-11-27T00:00:00Z"
                    .to_owned(),
                Api::ListActions,
            ),
            (
                Method::GET,
                format!("/api/files/{DEVICE}/machines?$top=200&$skip=400"),
                Api::FileMachines,
            ),
            (
                Method::GET,
                format!("/api/files/{DEVICE}/machines"),
                Api::FileMachines,
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(
                check(method.clone(), &path),
                Ok(expected),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn refuses_every_other_defender_call_the_token_could_make() {
        for (method, path) in [
            (Method::POST, format!("/api/machines/{DEVICE}/isolate")),
            (Method::POST, format!("/api/machines/{DEVICE}/offboard")),
            (
                Method::POST,
                format!("/api/machines/{DEVICE}/runliveresponse"),
            ),
            (
                Method::POST,
                format!("/api/machines/{DEVICE}/collectInvestigationPackage"),
            ),
            (Method::GET, "/api/alerts".to_owned()),
            (Method::GET, "/api/machines".to_owned()),
            (Method::GET, format!("/api/machines/{DEVICE}")),
            (Method::GET, "/api/machineactions".to_owned()),
            (Method::DELETE, format!("/api/machineactions/{ACTION}")),
            (Method::POST, "/api/advancedqueries/run".to_owned()),
            (Method::POST, "/api/indicators".to_owned()),
        ] {
            assert!(check(method.clone(), &path).is_err(), "{method} {path}");
        }
    }

    #[test]
    fn refuses_near_misses_of_the_right_shapes() {
        let upper = DEVICE.to_uppercase();
        let listing_of = |filter: &str| format!("/api/machineactions?$filter={filter}");
        for (method, path) in [
            (
                Method::GET,
                format!("/api/machines/{DEVICE}/StopAndQuarantineFile"),
            ),
            (
                Method::POST,
                format!("/api/machines/{upper}/StopAndQuarantineFile"),
            ),
            (
                Method::POST,
                format!("/api/machines/{DEVICE}x/StopAndQuarantineFile"),
            ),
            (
                Method::POST,
                format!("/api/machines/{DEVICE}/StopAndQuarantineFile?x=1"),
            ),
            (
                Method::POST,
                format!("/api/machines/{DEVICE}/StopAndQuarantineFile/"),
            ),
            (
                Method::POST,
                format!("/api/machines/../machines/{DEVICE}/StopAndQuarantineFile"),
            ),
            (
                Method::POST,
                format!("/api//machines/{DEVICE}/StopAndQuarantineFile"),
            ),
            (
                Method::POST,
                format!("/API/machines/{DEVICE}/StopAndQuarantineFile"),
            ),
            (Method::POST, format!("/api/machineactions/{ACTION}")),
            (Method::GET, format!("/api/machineactions/{ACTION}/cancel")),
            (Method::GET, "/api/machineactions/not-a-guid".to_owned()),
            (Method::GET, format!("/api/machineactions/{}", &ACTION[1..])),
            (Method::GET, listing_of("status%20eq%20%27Pending%27")),
            (
                Method::GET,
                listing_of(&format!("machineId%20eq%20%27{DEVICE}%27")),
            ),
            (
                Method::GET,
                listing_of(
                    "type%20eq%20%27Isolate%27%20or%20type%20eq%20%27StopAndQuarantineFile%27",
                ),
            ),
            (
                Method::GET,
                format!(
                    "{}&$top=1&$top=2",
                    listing_of("type%20eq%20%27StopAndQuarantineFile%27")
                ),
            ),
            (
                Method::GET,
                format!(
                    "{}&$expand=x",
                    listing_of("type%20eq%20%27StopAndQuarantineFile%27")
                ),
            ),
            (
                Method::GET,
                format!(
                    "{}&$top=-1",
                    listing_of("type%20eq%20%27StopAndQuarantineFile%27")
                ),
            ),
            (Method::GET, "/api/machineactions?$top=10".to_owned()),
            (
                Method::GET,
                "/api/machineactions?$filter=type%20eq%20%27StopAndQuarantineFile%27%20and%20\
                 creationDateTimeUtc%20ge%202026-11-27T00%3A00%3A00Z%09or%09true"
                    .to_owned(),
            ),
            (
                Method::GET,
                "/api/machineactions?$filter=type%20eq%20%27StopAndQuarantineFile%27%20and%20\
                 id%20eq%20%27x%27%0Aor%0Atype%20eq%20%27Isolate%27"
                    .to_owned(),
            ),
            (
                Method::GET,
                "/api/machineactions?$filter=type%20eq%20%27StopAndQuarantineFile%27%20and%20\
                 creationDateTimeUtc%20ge%202026-11-27T00%3A00%3A00Z%20or%20true"
                    .to_owned(),
            ),
            (
                Method::GET,
                listing_of(&format!(
                    "machineId%20eq%20%27{DEVICE}%27%20and%20type%20eq%20%27StopAndQuarantineFile%27or%20true"
                )),
            ),
            (
                Method::GET,
                listing_of(&format!(
                    "machineId%20eq%20%27{DEVICE}%27%20and%20type%20eq%20%27StopAndQuarantineFile%27"
                )),
            ),
            (
                Method::GET,
                listing_of(&format!(
                    "machineId%20eq%20%27{upper}%27%20and%20type%20eq%20%27StopAndQuarantineFile%27%20and%20creationDateTimeUtc%20ge%202026-11-23T00%3A00%3A00Z"
                )),
            ),
            (
                Method::GET,
                listing_of(&format!(
                    "machineId%20eq%20%27{DEVICE}%27%20and%20machineId%20eq%20%27{DEVICE}%27%20and%20type%20eq%20%27StopAndQuarantineFile%27%20and%20creationDateTimeUtc%20ge%202026-11-23T00%3A00%3A00Z"
                )),
            ),
            (
                Method::GET,
                listing_of(&format!(
                    "machineId%20eq%20%27{DEVICE}%27%20and%20type%20eq%20%27StopAndQuarantineFile%27%20and%20creationDateTimeUtc%20ge%202026-11-23T00%3A00%3A00Z%20or%20true"
                )),
            ),
            (
                Method::GET,
                listing_of(
                    "type%20eq%20%27StopAndQuarantineFile%27%20and%20id%20eq%20%27x%27%20or%20type%20eq%20%27Isolate%27",
                ),
            ),
            (
                Method::GET,
                listing_of(
                    "not%20type%20eq%20%27Isolate%27%20and%20type%20eq%20%27StopAndQuarantineFile%27",
                ),
            ),
            (
                Method::GET,
                format!("/api/files/{DEVICE}/machines?$filter=x"),
            ),
            (
                Method::GET,
                format!("/api/files/{DEVICE}/machines?$top=1&$top=1"),
            ),
            (Method::GET, format!("/api/files/{DEVICE}")),
            (Method::POST, format!("/api/files/{DEVICE}/machines")),
        ] {
            assert!(check(method.clone(), &path).is_err(), "{method} {path}");
        }
    }

    #[test]
    fn the_reason_names_the_request_safely() {
        let error = check(Method::POST, "/api/machines/x/offboard%1B%5B2J").unwrap_err();
        assert!(
            error.starts_with("POST /api/machines/x/offboard"),
            "{error}"
        );
        assert!(!error.contains('\u{1b}'));
        let long = format!("/api/{}", "a".repeat(5000));
        assert!(check(Method::GET, &long).unwrap_err().len() < 400);
    }

    proptest::proptest! {
        #[test]
        fn any_path_is_judged_without_panic(path in "/[ -~]{0,300}", post in proptest::bool::ANY) {
            let method = if post { Method::POST } else { Method::GET };
            let uri = format!("https://api.security.microsoft.com{path}").parse::<Uri>();
            if let Ok(Err(reason)) = uri.map(|uri| of(&method, &uri)) {
                proptest::prop_assert!(reason.len() < 1000);
                proptest::prop_assert!(!reason.contains(char::is_control));
            }
        }
    }
}
