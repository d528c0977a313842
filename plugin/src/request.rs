//! The exact HTTP requests the component sends, built from validated input.

pub use crate::bindings::defender::endpoint::rate_limit::Api;
use crate::timestamp;
use crate::validate::{ActionId, Comment, MachineId, Sha1};
use serde::Serialize;

/// Devices asked for per page of `files/{sha1}/machines` when its answer is too large to read
/// whole: a Machine is about 1 KB, so a page stays well inside the 1 MiB the component reads.
pub const MACHINES_PER_PAGE: usize = 200;
/// Actions asked for per page of `machineactions`: an action is under 1 KB with a short comment;
/// a page that is too large anyway is asked for again in halves.
pub const ACTIONS_PER_PAGE: usize = 500;

/// The HTTP methods the actions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
}

/// Whether the API is reached over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http`: only loopback simulators, which the host allows explicitly.
    Http,
    /// `https`: every real cloud.
    Https,
}

/// The tenant's API base URL, split the way wasi-http wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiBase {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host and optional port.
    pub authority: String,
    /// A path prefix without a trailing slash; empty for the real clouds.
    pub prefix: String,
}

impl ApiBase {
    /// Parses the base URL the host granted, e.g. `https://api.security.microsoft.com`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err("the host granted an API base URL that is not http(s)".into());
        };
        let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let bad = |c: char| c.is_whitespace() || "@?#".contains(c);
        if authority.is_empty() || authority.contains(bad) || prefix.contains(bad) {
            return Err("the host granted a malformed API base URL".into());
        }
        Ok(Self {
            scheme,
            authority: authority.to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
        })
    }

    /// The base URL again, e.g. `https://api.security.microsoft.com`: what every link the
    /// component follows must start with.
    pub fn url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}{}", self.authority, self.prefix)
    }
}

/// One request, ready for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    /// Which of the API's endpoints it is: the budget its permit comes from.
    pub api: Api,
    /// `GET` or `POST`: the only two the component sends.
    pub method: Method,
    /// Path (with any query) below the API base, starting with `/api/`.
    pub path: String,
    /// The JSON body; empty for `GET`.
    pub body: Vec<u8>,
}

/// The type of this component's actions, as the API spells it.
pub const ACTION_TYPE: &str = "StopAndQuarantineFile";

/// The body of `StopAndQuarantineFile`. Member names are case-sensitive on the API's side.
#[derive(Serialize)]
struct StopAndQuarantineBody<'a> {
    #[serde(rename = "Comment")]
    comment: &'a str,
    #[serde(rename = "Sha1")]
    sha1: &'a str,
}

/// `POST /api/machines/{id}/StopAndQuarantineFile` with `{"Comment": ..., "Sha1": ...}`.
pub fn stop_and_quarantine(machine: &MachineId, sha1: &Sha1, comment: &Comment) -> ApiRequest {
    let body = StopAndQuarantineBody {
        comment: comment.as_str(),
        sha1: sha1.as_str(),
    };
    ApiRequest {
        api: Api::CreateAction,
        method: Method::Post,
        path: format!("/api/machines/{}/StopAndQuarantineFile", machine.as_str()),
        // Serialising two strings into a Vec cannot fail.
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// The body `POST /api/machineactions/{id}/cancel` takes: `{"Comment": ...}`.
#[derive(Serialize)]
struct CancelBody<'a> {
    #[serde(rename = "Comment")]
    comment: &'a str,
}

/// `GET /api/machineactions/{id}`.
pub fn get_action(id: &ActionId) -> ApiRequest {
    get(
        Api::GetAction,
        format!("/api/machineactions/{}", id.as_str()),
    )
}

/// `POST /api/machineactions/{id}/cancel` with `{"Comment": ...}`.
pub fn cancel_action(id: &ActionId, comment: &Comment) -> ApiRequest {
    let body = CancelBody {
        comment: comment.as_str(),
    };
    ApiRequest {
        api: Api::CancelAction,
        method: Method::Post,
        path: format!("/api/machineactions/{}/cancel", id.as_str()),
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// `GET /api/machineactions?$filter=machineId eq '{id}' and type eq 'StopAndQuarantineFile' and
/// creationDateTimeUtc ge {since}&$top={per_page}`: this device's actions of this type created
/// since `since_ms` (floored to the second), to find a pending or just-created one. Bounding
/// the time keeps a device's long history out of the answer.
pub fn device_actions_since(machine: &MachineId, since_ms: u64, per_page: usize) -> ApiRequest {
    let filter = format!(
        "machineId eq '{}' and type eq '{ACTION_TYPE}' and creationDateTimeUtc ge {}",
        machine.as_str(),
        timestamp::format_secs(since_ms)
    );
    get(
        Api::ListActions,
        format!(
            "/api/machineactions?$filter={}&$top={per_page}",
            percent_encode(&filter)
        ),
    )
}

/// `GET /api/machineactions?$filter=type eq 'StopAndQuarantineFile' and creationDateTimeUtc ge
/// {since}&$top={per_page}`: every action of this type created since `since_ms` (floored to the
/// second), the first page of at most `per_page`. One such listing tells the status of every
/// action a wait is about.
pub fn actions_since(since_ms: u64, per_page: usize) -> ApiRequest {
    let filter = format!(
        "type eq '{ACTION_TYPE}' and creationDateTimeUtc ge {}",
        timestamp::format_secs(since_ms)
    );
    get(
        Api::ListActions,
        format!(
            "/api/machineactions?$filter={}&$top={per_page}",
            percent_encode(&filter)
        ),
    )
}

/// `GET /api/files/{sha1}/machines`: the devices that have seen the file, as the API's page
/// shows it (it documents no query options; the API's `nextLink` is followed, and `$top` is
/// tried only when an answer is too large to read).
pub fn machines_with_file(sha1: &Sha1) -> ApiRequest {
    get(
        Api::FileMachines,
        format!("/api/files/{}/machines", sha1.as_str()),
    )
}

impl ApiRequest {
    /// The same listing from item `skip` on, `per_page` at a time (`$top` and `$skip` replaced).
    pub fn page(&self, skip: usize, per_page: usize) -> ApiRequest {
        let (path, query) = self.path.split_once('?').unwrap_or((&self.path, ""));
        let mut kept: Vec<&str> = query
            .split('&')
            .filter(|option| {
                !option.is_empty() && !option.starts_with("$top=") && !option.starts_with("$skip=")
            })
            .collect();
        let top = format!("$top={per_page}");
        let from = format!("$skip={skip}");
        kept.push(&top);
        if skip > 0 {
            kept.push(&from);
        }
        ApiRequest {
            path: format!("{path}?{}", kept.join("&")),
            ..self.clone()
        }
    }

    /// The page size this listing asks for (`$top`), if it names one.
    pub fn per_page(&self) -> Option<usize> {
        let (_, query) = self.path.split_once('?')?;
        query
            .split('&')
            .find_map(|option| option.strip_prefix("$top="))
            .and_then(|top| top.parse().ok())
    }
}

fn get(api: Api, path: String) -> ApiRequest {
    ApiRequest {
        api,
        method: Method::Get,
        path,
        body: Vec::new(),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::example::{MACHINE, SHA1};

    #[test]
    fn builds_the_documented_request() {
        let request = stop_and_quarantine(
            &MachineId::parse(&MACHINE.to_ascii_uppercase()).unwrap(),
            &Sha1::parse(SHA1).unwrap(),
            &Comment::parse("quarantine \"it\"\n").unwrap(),
        );
        assert_eq!(request.method, Method::Post);
        assert_eq!(
            request.path,
            format!("/api/machines/{MACHINE}/StopAndQuarantineFile")
        );
        assert_eq!(
            String::from_utf8(request.body).unwrap(),
            format!(r#"{{"Comment":"quarantine \"it\"\n","Sha1":"{SHA1}"}}"#)
        );
    }

    #[test]
    fn builds_the_follow_up_requests() {
        let id = ActionId::parse("141408d1-384c-4c19-8b57-ba39e378011a").unwrap();
        let machine = MachineId::parse(MACHINE).unwrap();
        let get = get_action(&id);
        assert_eq!((get.method, get.body.len()), (Method::Get, 0));
        assert_eq!(
            get.path,
            "/api/machineactions/141408d1-384c-4c19-8b57-ba39e378011a"
        );
        let cancel = cancel_action(&id, &Comment::parse("oops").unwrap());
        assert_eq!(cancel.method, Method::Post);
        assert_eq!(cancel.path, format!("{}/cancel", get.path));
        assert_eq!(cancel.body, br#"{"Comment":"oops"}"#);
        let device = device_actions_since(&machine, 1_795_737_601_500, 500);
        assert_eq!(
            device.path,
            format!(
                "/api/machineactions?$filter=machineId%20eq%20%27{MACHINE}%27%20and%20type%20eq%20%27StopAndQuarantineFile%27%20and%20creationDateTimeUtc%20ge%202026-11-27T00%3A00%3A01Z&$top=500"
            )
        );
        assert_eq!(device.per_page(), Some(500));
        let sha1 = Sha1::parse(SHA1).unwrap();
        let machines = machines_with_file(&sha1);
        assert_eq!(machines.path, format!("/api/files/{SHA1}/machines"));
        assert_eq!(machines.per_page(), None);
        assert_eq!(machines.api, Api::FileMachines);
        assert_eq!(
            machines.page(400, 100).path,
            format!("/api/files/{SHA1}/machines?$top=100&$skip=400")
        );
        assert_eq!(machines.page(400, 100).per_page(), Some(100));
    }

    #[test]
    fn lists_this_types_actions_since_a_time() {
        // 2026-11-27T00:00:00.999Z, floored to the second.
        let listing = actions_since(1_795_737_600_999, 500);
        assert_eq!(listing.api, Api::ListActions);
        assert_eq!(
            listing.path,
            "/api/machineactions?$filter=type%20eq%20%27StopAndQuarantineFile%27%20and%20\
             creationDateTimeUtc%20ge%202026-11-27T00%3A00%3A00Z&$top=500"
        );
        let next = listing.page(500, 250);
        assert!(
            next.path.ends_with("%3A00Z&$top=250&$skip=500"),
            "{}",
            next.path
        );
    }

    #[test]
    fn parses_base_urls() {
        let base = ApiBase::parse("https://api.security.microsoft.com").unwrap();
        assert_eq!(base.scheme, Scheme::Https);
        assert_eq!(base.authority, "api.security.microsoft.com");
        assert_eq!(base.prefix, "");
        let base = ApiBase::parse("http://127.0.0.1:8080/prefix/").unwrap();
        assert_eq!(base.scheme, Scheme::Http);
        assert_eq!(base.authority, "127.0.0.1:8080");
        assert_eq!(base.prefix, "/prefix");
    }

    #[test]
    fn refuses_odd_base_urls() {
        for bad in [
            "ftp://x",
            "https://",
            "https://user@host",
            "https://host?q",
            "https://ho st",
            "api.security.microsoft.com",
        ] {
            assert!(ApiBase::parse(bad).is_err(), "{bad}");
        }
    }
}
