//! What the host counts and logs, through the `metrics` and `tracing` facades: an embedder
//! that installs a recorder or a subscriber (the `serve` command does both) sees them; one that
//! does not pays next to nothing. Labels are tenant names, API names and outcome kinds, never
//! a token, a seal or a URL's credentials.

use crate::rate_limit::Api;
use std::time::Duration;

/// The metrics' names, for an embedder's dashboards.
pub mod names {
    /// Counter: permits asked for, by `tenant`, `api` and `result` (`granted`, `denied`).
    pub const PERMITS: &str = "defender_permits_total";
    /// Counter: the API's 429 answers, by `tenant` and `api`.
    pub const THROTTLED: &str = "defender_api_throttled_total";
    /// Histogram: seconds from sending a request to its answer's head, by `tenant`, `api` and
    /// `status` (the HTTP status, or `none` when no answer came).
    pub const API_CALL_SECONDS: &str = "defender_api_call_seconds";
    /// Counter: token fetches from the tenant's identity provider, by `result` (`ok`, `error`).
    pub const TOKEN_FETCHES: &str = "defender_token_fetches_total";
    /// Counter: decisions a Redis budget made alone because Redis did not answer, by `budget`.
    pub const BUDGET_FALLBACKS: &str = "defender_budget_fallbacks_total";
    /// Counter: invocations of the component, by `tenant`, `export` and `outcome` (`returned`,
    /// `trapped`, or the limit that stopped it: `limit-cpu`, `limit-wall-clock`, ...).
    pub const INVOCATIONS: &str = "defender_invocations_total";
    /// Histogram: seconds an invocation took, waits included, by `tenant` and `export`.
    pub const INVOCATION_SECONDS: &str = "defender_invocation_seconds";
}

/// A permit for `api` was asked for by `tenant`.
pub(crate) fn permit(tenant: &str, api: Api, granted: bool) {
    let result = if granted { "granted" } else { "denied" };
    metrics::counter!(names::PERMITS, "tenant" => tenant.to_owned(), "api" => api.name(), "result" => result)
        .increment(1);
}

/// `api` answered `tenant` with `status` (`None`: no answer) after `elapsed`.
pub(crate) fn api_call(tenant: &str, api: Api, status: Option<u16>, elapsed: Duration) {
    let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
    tracing::debug!(tenant, %api, %status, elapsed_ms = elapsed.as_millis() as u64, "API call");
    if status == "429" {
        metrics::counter!(names::THROTTLED, "tenant" => tenant.to_owned(), "api" => api.name())
            .increment(1);
    }
    metrics::histogram!(names::API_CALL_SECONDS, "tenant" => tenant.to_owned(), "api" => api.name(), "status" => status)
        .record(elapsed.as_secs_f64());
}

/// A token was fetched (`ok`) or its fetch failed.
pub(crate) fn token_fetch(ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!(names::TOKEN_FETCHES, "result" => result).increment(1);
}

/// An invocation of `export` for `tenant` ended as `outcome` after `elapsed`.
pub(crate) fn invocation(
    tenant: &str,
    export: &'static str,
    outcome: &'static str,
    elapsed: Duration,
) {
    tracing::info!(
        tenant,
        export,
        outcome,
        elapsed_ms = elapsed.as_millis() as u64,
        "invocation"
    );
    metrics::counter!(names::INVOCATIONS, "tenant" => tenant.to_owned(), "export" => export, "outcome" => outcome)
        .increment(1);
    metrics::histogram!(names::INVOCATION_SECONDS, "tenant" => tenant.to_owned(), "export" => export)
        .record(elapsed.as_secs_f64());
}
