//! The two listing endpoints, paged ([`crate::paging`]) and scriptable ([`PageReply`]):
//! `GET /api/machineactions` ("List MachineActions", learn.microsoft.com/defender-endpoint/api/
//! get-machineactions-collection), newest first, each listed action moved along one poll as a
//! GET moves it, so a client that waits by listing sees progress; and
//! `GET /api/files/{sha1}/machines` ("Get file related machines", learn.microsoft.com/
//! defender-endpoint/api/get-file-related-machines), in the order `file_seen_on` declared them;
//! for a file never seen, "If the file doesn't exist, an empty set is returned" with 200; that
//! page documents no query options, so `$top` is refused there (`$skip` is taken only because
//! the simulator's own next links use it).
//! Each body is `{"@odata.context", "value"}`, then `@odata.nextLink` when items remain. An
//! action created less than the listing lag ago is not listed yet ([`crate::Simulator::
//! set_listing_lag`], the simulator's own model). A query is checked before any scripted answer,
//! so a script never answers a query the API refuses.

use super::Shared;
use super::answers::{self, Answer, PageReply};
use super::filter::Filter;
use super::paging::{self, Options, QueryError};
use super::routes::route_reply;
use bytes::Bytes;
use http::Response;
use http::request::Parts;
use http_body_util::Full;
use serde_json::{Map, Value, json};

/// The entity sets the two endpoints list.
const ACTIONS_CONTEXT: &str = "https://api.security.microsoft.com/api/$metadata#MachineActions";
const MACHINES_CONTEXT: &str = "https://api.security.microsoft.com/api/$metadata#Machines";

/// `GET /api/machineactions`: its query options and `$filter` checked, then the route script,
/// the page script, or the page.
pub async fn actions(shared: &Shared, parts: &Parts) -> Answer {
    let query = parts.uri.query().unwrap_or_default();
    let (options, filter) = match actions_query(query) {
        Ok(parsed) => parsed,
        Err(refused) => return Ok(refused_query(&refused)),
    };
    let path = parts.uri.path();
    respond(shared, parts, || {
        actions_page(shared, path, &options, &filter)
    })
    .await
}

/// `GET /api/files/{sha1}/machines`: its query options checked, then the route script, the page
/// script, or the page.
pub async fn machines(shared: &Shared, parts: &Parts, sha1: &str) -> Answer {
    let query = parts.uri.query().unwrap_or_default();
    let options = match machines_query(query) {
        Ok(options) => options,
        Err(refused) => return Ok(refused_query(&refused)),
    };
    let path = parts.uri.path();
    respond(shared, parts, || {
        machines_page(shared, sha1, path, &options)
    })
    .await
}

/// The next scripted answer for a valid query (the route script's, then the page script's), or
/// the API's own page.
async fn respond(
    shared: &Shared,
    parts: &Parts,
    page: impl FnOnce() -> Map<String, Value>,
) -> Answer {
    let written =
        |body: Map<String, Value>| answers::json_response(200, &Value::Object(body).to_string());
    if let Some(reply) = route_reply(shared, parts) {
        return answers::render(reply, || written(page())).await;
    }
    let scripted = shared.api().page_script.pop_front();
    match scripted.unwrap_or(PageReply::Api) {
        PageReply::Api => Ok(written(page())),
        PageReply::NextLink(url) => {
            let mut body = page();
            body.insert("@odata.nextLink".into(), json!(url));
            Ok(written(body))
        }
        PageReply::Answer(reply) => answers::render(reply, || written(page())).await,
    }
}

/// "common errors" (learn.microsoft.com/defender-endpoint/api/common-errors): 400 `ODataError`,
/// "Invalid OData URI query (the specific error is specified)".
fn refused_query(refused: &QueryError) -> Response<Full<Bytes>> {
    answers::api_error(400, "ODataError", &refused.to_string())
}

/// The actions listing's options and filter.
fn actions_query(query: &str) -> Result<(Options, Filter), QueryError> {
    let options = paging::parse(query, true)?;
    let filter = match &options.filter {
        Some(text) => Filter::parse(text)?,
        None => Filter::default(),
    };
    Ok((options, filter))
}

/// The machines listing's options: the page documents none, so only the `$skip` of this
/// simulator's own next links is taken, and a client that asks for a page size here is refused,
/// as the API may.
fn machines_query(query: &str) -> Result<Options, QueryError> {
    let options = paging::parse(query, false)?;
    if options.top.is_some() {
        return Err(QueryError::Unsupported("$top".into()));
    }
    Ok(options)
}

fn actions_page(
    shared: &Shared,
    path: &str,
    options: &Options,
    filter: &Filter,
) -> Map<String, Value> {
    let mut api = shared.api();
    let found = api.matching(filter);
    let page = paging::page(found.len(), options, api.page_size);
    let listed = found.get(page.start..page.end).unwrap_or_default();
    let value = api.show_listed(listed);
    body(shared, ACTIONS_CONTEXT, value, path, options, page)
}

fn machines_page(shared: &Shared, sha1: &str, path: &str, options: &Options) -> Map<String, Value> {
    let api = shared.api();
    let machines = api
        .files
        .get(&sha1.to_ascii_lowercase())
        .map_or(&[][..], Vec::as_slice);
    let page = paging::page(machines.len(), options, api.page_size);
    let listed = machines.get(page.start..page.end).unwrap_or_default();
    let value = listed.iter().map(|id| machine(id)).collect();
    body(shared, MACHINES_CONTEXT, value, path, options, page)
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
    options: &Options,
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
