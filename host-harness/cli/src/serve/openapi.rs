//! The service's OpenAPI 3.1 document, generated from the handlers and types themselves, and
//! the same document as Swagger 2.0 for the engines that import only that (Logic Apps and
//! Power Automate custom connectors). Both are committed under `openapi/`; a test fails when
//! they differ from what the code generates.

use super::jobs::{DeviceProgress, HostNotes, Job, JobStatus};
use super::problem::ProblemDetails;
use super::routes;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Defender for Endpoint stop-and-quarantine",
        description = "Stops a file's processes and quarantines it on Microsoft Defender for Endpoint devices, through a sandboxed WebAssembly component. Jobs run in the background; every error is RFC 9457 problem details.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        routes::quarantine,
        routes::get_job,
        routes::get_action,
        routes::cancel_action,
        routes::healthz,
        routes::readyz,
        routes::metrics,
    ),
    components(schemas(ProblemDetails, Job, JobStatus, DeviceProgress, HostNotes, routes::QuarantineBody, routes::WaitBody, routes::CancelBody)),
    modifiers(&ApiKeyScheme),
    tags(
        (name = "actions", description = "Quarantine files and follow the machine actions"),
        (name = "jobs", description = "What became of a quarantine request"),
        (name = "service", description = "Health, readiness and metrics"),
    )
)]
struct ApiDoc;

/// The API key scheme: `Authorization: Bearer <key>`.
struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An API key from the serve config, as a bearer token"))
            .build();
        components.add_security_scheme("apiKey", SecurityScheme::Http(scheme));
    }
}

/// The OpenAPI 3.1 document, pretty-printed, with a final newline.
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json().unwrap_or_default() + "\n"
}

/// The same document as Swagger 2.0, pretty-printed, with a final newline.
pub fn swagger2_json() -> String {
    let v3: Value = serde_json::from_str(&openapi_json()).unwrap_or_default();
    serde_json::to_string_pretty(&to_swagger2(&v3)).unwrap_or_default() + "\n"
}

/// Swagger 2.0 from the subset of OpenAPI 3.1 this service's document uses.
fn to_swagger2(v3: &Value) -> Value {
    let mut paths = Map::new();
    for (path, operations) in v3["paths"].as_object().into_iter().flatten() {
        let mut out = Map::new();
        for (method, op) in operations.as_object().into_iter().flatten() {
            out.insert(method.clone(), operation(op));
        }
        paths.insert(path.clone(), Value::Object(out));
    }
    let definitions: Map<String, Value> = v3["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, s)| (name.clone(), schema(s)))
        .collect();
    json!({
        "swagger": "2.0",
        "info": {
            "title": v3["info"]["title"],
            "description": v3["info"]["description"],
            "version": v3["info"]["version"],
            "license": {"name": v3["info"]["license"]["name"]},
        },
        "basePath": "/",
        "schemes": ["https", "http"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "apiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "Bearer <key>: an API key from the serve config"
            }
        },
        "tags": v3["tags"],
    })
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    for key in ["tags", "summary", "description", "operationId", "security"] {
        if !op[key].is_null() {
            out.insert(key.into(), op[key].clone());
        }
    }
    let mut parameters: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut param = json!({"name": p["name"], "in": p["in"], "required": p["required"].as_bool().unwrap_or(false)});
            if !p["description"].is_null() {
                param["description"] = p["description"].clone();
            }
            if let Value::Object(s) = schema(&p["schema"]) {
                for (k, v) in s {
                    param[k] = v;
                }
            }
            param
        })
        .collect();
    if let Some((_, media)) = op["requestBody"]["content"]
        .as_object()
        .and_then(|c| c.iter().next())
    {
        parameters.push(json!({"name": "body", "in": "body", "required": true, "schema": schema(&media["schema"])}));
    }
    if !parameters.is_empty() {
        out.insert("parameters".into(), Value::Array(parameters));
    }
    let mut produces = Vec::new();
    let mut responses = Map::new();
    for (code, response) in op["responses"].as_object().into_iter().flatten() {
        let mut r = json!({"description": response["description"]});
        if let Some((media, content)) = response["content"]
            .as_object()
            .and_then(|c| c.iter().next())
        {
            if !produces.contains(media) {
                produces.push(media.clone());
            }
            r["schema"] = schema(&content["schema"]);
        }
        if let Some(headers) = response["headers"].as_object() {
            let headers: Map<String, Value> = headers
                .iter()
                .map(|(name, h)| {
                    (
                        name.clone(),
                        json!({"type": "string", "description": h["description"]}),
                    )
                })
                .collect();
            r["headers"] = Value::Object(headers);
        }
        responses.insert(code.clone(), r);
    }
    out.insert("produces".into(), json!(produces));
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

/// A JSON Schema of OpenAPI 3.1 as a Swagger 2.0 schema: references to `definitions`, one
/// type (a `null` alternative becomes `x-nullable`), no keywords 2.0 lacks.
fn schema(s: &Value) -> Value {
    let Value::Object(map) = s else {
        return s.clone();
    };
    let alternatives = map
        .get("oneOf")
        .or_else(|| map.get("anyOf"))
        .and_then(Value::as_array);
    if let Some(alternatives) = alternatives {
        let others: Vec<&Value> = alternatives
            .iter()
            .filter(|a| a["type"] != "null")
            .collect();
        let mut one = match others.as_slice() {
            [only] => schema(only),
            _ => json!({"type": "object"}),
        };
        if others.len() < alternatives.len() {
            one["x-nullable"] = json!(true);
        }
        if let Some(description) = map.get("description") {
            one["description"] = description.clone();
        }
        return one;
    }
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "$ref" => {
                let target = value
                    .as_str()
                    .unwrap_or_default()
                    .replace("#/components/schemas/", "#/definitions/");
                out.insert(key.clone(), json!(target));
            }
            "type" => match value.as_array() {
                Some(types) => {
                    let one = types
                        .iter()
                        .find(|t| *t != "null")
                        .cloned()
                        .unwrap_or(json!("object"));
                    out.insert("type".into(), one);
                    if types.iter().any(|t| t == "null") {
                        out.insert("x-nullable".into(), json!(true));
                    }
                }
                None => {
                    out.insert(key.clone(), value.clone());
                }
            },
            "properties" => {
                let properties: Map<String, Value> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, p)| (name.clone(), schema(p)))
                    .collect();
                out.insert(key.clone(), Value::Object(properties));
            }
            "items" | "additionalProperties" => {
                out.insert(key.clone(), schema(value));
            }
            "description" | "format" | "enum" | "required" | "minimum" | "maximum" | "default"
            | "title" => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_operation() {
        let doc: Value = serde_json::from_str(&openapi_json()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for (path, method) in [
            ("/v1/tenants/{tenant}/quarantine", "post"),
            ("/v1/jobs/{id}", "get"),
            ("/v1/tenants/{tenant}/actions/{actionId}", "get"),
            ("/v1/tenants/{tenant}/actions/{actionId}/cancel", "post"),
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/metrics", "get"),
        ] {
            assert!(
                doc["paths"][path][method]["operationId"].is_string(),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn the_swagger_2_document_uses_nothing_2_0_lacks() {
        let text = swagger2_json();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["swagger"], "2.0");
        for absent in [
            "#/components/",
            "\"oneOf\"",
            "\"anyOf\"",
            "\"openapi\"",
            "requestBody",
            "\"content\"",
        ] {
            assert!(!text.contains(absent), "{absent}");
        }
        let body = &doc["paths"]["/v1/tenants/{tenant}/quarantine"]["post"]["parameters"];
        let body = body
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["in"] == "body")
            .unwrap();
        assert_eq!(body["schema"]["$ref"], "#/definitions/QuarantineBody");
        // Every schema's type is one type (a property may be called `type`).
        fn single(v: &Value) {
            match v {
                Value::Object(m) => {
                    for (key, value) in m {
                        match key.as_str() {
                            "type" => assert!(value.is_string(), "{value}"),
                            "properties" => value.as_object().unwrap().values().for_each(single),
                            _ => single(value),
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(single),
                _ => {}
            }
        }
        single(&doc);
    }
}
