//! The two listing endpoints, paged ([`crate::paging`]) and scriptable ([`PageReply`]):
//! `GET /api/machineactions` ("List MachineActions", learn.microsoft.com/defender-endpoint/api/
//! get-machineactions-collection), newest first, each listed action moved along one poll as a
//! GET moves it, so a client that waits by listing sees progress; and
//! `GET /api/files/{sha1}/machines` ("Get file related machines", learn.microsoft.com/
//! defender-endpoint/api/get-file-related-machines), in the order `file_seen_on` declared them;
//! for a file never seen, "If the file doesn't exist, an empty set is returned" with 200; that
//! page documents no query options, so `$top` is refused there (`$skip` is taken only because
//! the simulator's own next links use it).
//! Each body is `{"@odata.context", "value"}`, then `@odata.nextLink` when items remain.

use super::Shared;
use super::answers::{self, Answer, PageReply};
use super::filter::Filter;
use super::paging::{self, QueryError};
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::{Map, Value, json};

/// The entity sets the two endpoints list.
const ACTIONS_CONTEXT: &str = "https://api.security.microsoft.com/api/$metadata#MachineActions";
const MACHINES_CONTEXT: &str = "https://api.security.microsoft.com/api/$metadata#Machines";

/// A page's body, or why the query was refused.
type Listing = Result<Map<String, Value>, QueryError>;

/// `GET /api/machineactions`, at `path` with the raw `query`.
pub async fn actions(shared: &Shared, path: &str, query: &str) -> Answer {
    respond(shared, || actions_page(shared, path, query)).await
}

/// `GET /api/files/{sha1}/machines`, at `path` with the raw `query`.
pub async fn machines(shared: &Shared, sha1: &str, path: &str, query: &str) -> Answer {
    respond(shared, || machines_page(shared, sha1, path, query)).await
}

/// The next scripted page answer, or the API's own.
async fn respond(shared: &Shared, page: impl FnOnce() -> Listing) -> Answer {
    let scripted = shared.api().page_script.pop_front();
    match scripted.unwrap_or(PageReply::Api) {
        PageReply::Api => Ok(written(page())),
        PageReply::NextLink(url) => Ok(written(page().map(|mut body| {
            body.insert("@odata.nextLink".into(), json!(url));
            body
        }))),
        PageReply::Answer(reply) => answers::render(reply, || written(page())).await,
    }
}

fn written(listing: Listing) -> Response<Full<Bytes>> {
    match listing {
        Ok(body) => answers::json_response(200, &Value::Object(body).to_string()),
        Err(refused) => answers::api_error(400, "ODataError", &refused.to_string()),
    }
}

fn actions_page(shared: &Shared, path: &str, query: &str) -> Listing {
    let options = paging::parse(query, true)?;
    let filter = match &options.filter {
        Some(text) => Filter::parse(text)?,
        None => Filter::default(),
    };
    let mut api = shared.api();
    let found = api.matching(&filter);
    let page = paging::page(found.len(), &options, api.page_size);
    let listed = found.get(page.start..page.end).unwrap_or_default();
    let value = api.show_listed(listed);
    Ok(body(shared, ACTIONS_CONTEXT, value, path, &options, page))
}

fn machines_page(shared: &Shared, sha1: &str, path: &str, query: &str) -> Listing {
    let options = paging::parse(query, false)?;
    // The page documents no query options: only the `$skip` of this simulator's own next links
    // is taken, so a client that asks for a page size here is refused, as the API may.
    if options.top.is_some() {
        return Err(QueryError::Unsupported("$top".into()));
    }
    let api = shared.api();
    let machines = api
        .files
        .get(&sha1.to_ascii_lowercase())
        .map_or(&[][..], Vec::as_slice);
    let page = paging::page(machines.len(), &options, api.page_size);
    let listed = machines.get(page.start..page.end).unwrap_or_default();
    let value = listed.iter().map(|id| machine(id)).collect();
    Ok(body(shared, MACHINES_CONTEXT, value, path, &options, page))
}

/// A device as the machines endpoint lists it (the members a client needs).
fn machine(id: &str) -> Value {
    let short: String = id.chars().take(8).collect();
    json!({"id": id, "computerDnsName": format!("desktop-{short}.contoso.local")})
}

fn body(
    shared: &Shared,
    context: &str,
    value: Vec<Value>,
    path: &str,
    options: &paging::Options,
    page: paging::Page,
) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(context));
    body.insert("value".into(), Value::Array(value));
    if let Some(next) = page.next {
        let link = paging::next_link(&shared.base_url, path, options, next);
        body.insert("@odata.nextLink".into(), json!(link));
    }
    body
}
