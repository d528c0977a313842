//! Azure's managed-identity token endpoints, for hosts that run on Azure:
//! - IMDS, `GET /metadata/identity/oauth2/token` ("How to use managed identities for Azure
//!   resources on an Azure VM to acquire an access token", learn.microsoft.com/entra/identity/
//!   managed-identities-azure-resources/how-to-use-vm-token): `Metadata: true` is required,
//!   (refused with `bad_request_102`), `api-version` (2018-02-01 or later) and `resource` too,
//!   `client_id` picks a user-assigned identity; the answer's numbers are strings;
//! - App Service and Functions, `GET /msi/token` ("Managed identities for App Service and Azure
//!   Functions", learn.microsoft.com/azure/app-service/overview-managed-identity): the
//!   `X-IDENTITY-HEADER` must be the platform's secret; `expires_on` (seconds since the epoch,
//!   as a string) says when the token expires.

use super::answers;
use super::directory::Directory;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::json;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The API versions each simulated endpoint takes: IMDS "2018-02-01 or greater" (those two are
/// the ones its page names); App Service "2019-08-01" (the older 2017-09-01 wants another
/// header, which the host never sends).
const IMDS_VERSIONS: [&str; 2] = ["2018-02-01", "2019-08-01"];
const APP_SERVICE_VERSIONS: [&str; 1] = ["2019-08-01"];

/// Which endpoint is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Imds,
    AppService,
}

/// Answers a token request to `endpoint` with the request's `query` and the header that
/// endpoint requires (`Metadata` or `X-IDENTITY-HEADER`).
pub fn token(
    directory: &mut Directory,
    endpoint: Endpoint,
    query: &str,
    header: Option<&str>,
) -> Response<Full<Bytes>> {
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let identities = directory.identities.clone();
    match endpoint {
        Endpoint::Imds if header != Some("true") => {
            return error(
                400,
                "bad_request_102",
                "Required metadata header not specified",
            );
        }
        Endpoint::AppService => match (&identities.app_service_header, header) {
            (Some(expected), Some(given)) if expected == given => {}
            (None, _) => return error(404, "not_found", "No App Service identity endpoint here"),
            _ => {
                return error(
                    401,
                    "unauthorized",
                    "The X-IDENTITY-HEADER is missing or does not match IDENTITY_HEADER",
                );
            }
        },
        Endpoint::Imds => {}
    }
    let versions: &[&str] = match endpoint {
        Endpoint::Imds => &IMDS_VERSIONS,
        Endpoint::AppService => &APP_SERVICE_VERSIONS,
    };
    if !param("api-version").is_some_and(|v| versions.contains(&v)) {
        return error(
            400,
            "invalid_request",
            "Required query variable 'api-version' is missing or not supported",
        );
    }
    let Some(resource) = param("resource") else {
        return error(
            400,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    let known = match param("client_id") {
        Some(id) => identities.user_assigned.iter().any(|known| known == id),
        None => identities.system_assigned,
    };
    if !known {
        return error(400, "invalid_request", "Identity not found");
    }
    let client_id = param("client_id").unwrap_or("00000000-0000-0000-0000-00000000517e");
    let token = directory.issue(client_id, resource);
    let lifetime = directory.lifetime().as_secs();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expires_on = now.saturating_add(lifetime).to_string();
    let body = match endpoint {
        Endpoint::Imds => json!({
            "access_token": token,
            "client_id": client_id,
            "expires_in": lifetime.to_string(),
            "expires_on": expires_on,
            "ext_expires_in": lifetime.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
        Endpoint::AppService => json!({
            "access_token": token,
            "expires_on": expires_on,
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }),
    };
    answers::json_response(200, &body.to_string())
}

fn error(status: u16, code: &str, description: &str) -> Response<Full<Bytes>> {
    let body = json!({"error": code, "error_description": description});
    answers::json_response(status, &body.to_string())
}
