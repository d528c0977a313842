//! One API call from start to end: credential, permit, send, interpret, retry.
//!
//! Everything here is plain Rust over the [`Host`] trait, so the whole policy runs natively
//! in unit tests; `wasi.rs` implements [`Host`] on wasi-http and the host's imports.

use crate::bindings::defender::endpoint::credentials::Grant;
use crate::bindings::defender::endpoint::progress::Update;
use crate::bindings::defender::endpoint::rate_limit::Permit;
use crate::bindings::defender::endpoint::types::{ActionError, RateLimitedError};
use crate::request::{Api, ApiBase, ApiRequest};
use crate::response::{RawResponse, Verdict, interpret};
use crate::retry::RetryPolicy;

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// What happened, in words.
    pub message: String,
    /// Whether the request may have reached the API (the connection broke after sending); if
    /// so, a POST may have created its action.
    pub maybe_sent: bool,
}

/// Why a call did not produce an answer to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A final error.
    Action(ActionError),
    /// No answer, and the request may have reached the API.
    MaybeSent(String),
}

impl From<Failure> for ActionError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Action(error) => error,
            Failure::MaybeSent(message) => {
                ActionError::Transport(format!("{message}; the request may have reached the API"))
            }
        }
    }
}

impl From<ActionError> for Failure {
    fn from(error: ActionError) -> Self {
        Failure::Action(error)
    }
}

/// What a call needs from outside the component.
pub trait Host {
    /// The host's credentials capability.
    fn credential(&mut self, refresh: bool) -> Result<Grant, String>;
    /// The host's rate-limit capability: a permit for one request to `api`.
    fn acquire_permit(&mut self, api: Api) -> Permit;
    /// Tells the host `api` throttled the tenant.
    fn throttled(&mut self, api: Api, retry_after_ms: u64);
    /// Sends one request and reads its answer (body bounded), or says why there is none.
    fn send(
        &mut self,
        base: &ApiBase,
        authorization: &str,
        request: &ApiRequest,
    ) -> Result<RawResponse, SendError>;
    /// A monotonic clock, in milliseconds.
    fn now_ms(&mut self) -> u64;
    /// The wall clock, in milliseconds since the Unix epoch, to compare with the API's times.
    fn wall_clock_ms(&mut self) -> u64;
    /// Tells the host an action's status.
    fn progress(&mut self, update: &Update);
    /// Waits.
    fn sleep_ms(&mut self, ms: u64);
    /// Randomness for jitter; it need not be secure.
    fn random(&mut self) -> u64;
}

/// Performs `request` until it succeeds (200 or 201: the answer is returned), fails for good,
/// or the policy's deadline runs out.
pub fn perform(
    host: &mut impl Host,
    request: &ApiRequest,
    policy: &RetryPolicy,
) -> Result<RawResponse, Failure> {
    let deadline = host.now_ms().saturating_add(policy.deadline_ms);
    let (mut base, mut grant) = credential(host, false)?;
    let mut refreshed = false;
    let mut server_errors = 0;
    loop {
        wait_for_permit(host, request.api, deadline)?;
        let response = match host.send(&base, &grant.authorization, request) {
            Ok(response) => response,
            Err(SendError {
                message,
                maybe_sent: true,
            }) => return Err(Failure::MaybeSent(message)),
            Err(error) => return Err(ActionError::Transport(error.message).into()),
        };
        let wall_clock_ms = host.wall_clock_ms();
        match interpret(&response, wall_clock_ms) {
            Verdict::Success => return Ok(response),
            Verdict::Fail(error) => return Err(error.into()),
            Verdict::Unauthorized(api) => {
                if refreshed {
                    return Err(ActionError::Unauthorized(api).into());
                }
                refreshed = true;
                (base, grant) = credential(host, true)?;
            }
            Verdict::Throttled {
                retry_after_ms,
                api,
            } => {
                host.throttled(request.api, retry_after_ms);
                if !fits(host, deadline, retry_after_ms) {
                    return Err(ActionError::RateLimited(RateLimitedError {
                        retry_after_ms,
                        api: Some(api),
                    })
                    .into());
                }
                host.sleep_ms(retry_after_ms);
            }
            Verdict::ServerError(api) => {
                server_errors += 1;
                let wait = policy.backoff_ms(server_errors, host.random());
                if server_errors > policy.max_server_retries || !fits(host, deadline, wait) {
                    return Err(ActionError::Upstream(api).into());
                }
                host.sleep_ms(wait);
            }
        }
    }
}

/// The API base URL the host grants, as requests are sent to it.
pub fn api_base(host: &mut impl Host) -> Result<ApiBase, ActionError> {
    credential(host, false).map(|(base, _)| base)
}

fn credential(host: &mut impl Host, refresh: bool) -> Result<(ApiBase, Grant), ActionError> {
    let grant = host.credential(refresh).map_err(ActionError::Credentials)?;
    let base = ApiBase::parse(&grant.api_base_url).map_err(ActionError::Credentials)?;
    Ok((base, grant))
}

/// Waits for a permit for `api` while the deadline allows it.
fn wait_for_permit(host: &mut impl Host, api: Api, deadline: u64) -> Result<(), ActionError> {
    loop {
        match host.acquire_permit(api) {
            Permit::Granted => return Ok(()),
            Permit::Denied(wait) => {
                if !fits(host, deadline, wait) {
                    return Err(ActionError::RateLimited(RateLimitedError {
                        retry_after_ms: wait,
                        api: None,
                    }));
                }
                host.sleep_ms(wait.max(1));
            }
        }
    }
}

fn fits(host: &mut impl Host, deadline: u64, wait_ms: u64) -> bool {
    host.now_ms().saturating_add(wait_ms) <= deadline
}

#[cfg(test)]
mod tests;
