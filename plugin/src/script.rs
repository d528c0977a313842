//! A scripted stand-in for the host and the network, for the native unit tests: it answers
//! requests from a queue and records what the code under test did.

use crate::bindings::defender::endpoint::credentials::Grant;
use crate::bindings::defender::endpoint::progress::Update;
use crate::bindings::defender::endpoint::rate_limit::Permit;
use crate::call::{Host, SendError};
use crate::request::{Api, ApiBase, ApiRequest};
use crate::response::RawResponse;
use std::collections::VecDeque;

/// Answers from `answers` in order (panicking on an unscripted request), grants permits from
/// `permits` (then always), and sleeps by advancing `now`.
#[derive(Default)]
pub struct Script {
    pub answers: VecDeque<Result<RawResponse, SendError>>,
    pub permits: VecDeque<Permit>,
    pub now: u64,
    pub sent: Vec<String>,
    pub sleeps: Vec<u64>,
    pub refreshes: Vec<bool>,
    pub throttled: Vec<u64>,
    pub throttled_apis: Vec<Api>,
    pub permit_apis: Vec<Api>,
    pub progress: Vec<Update>,
}

/// The wall clock's reading when the monotonic clock reads 0: 2026-11-27T00:00:00Z.
pub const WALL_CLOCK_START_MS: u64 = 1_795_737_600_000;

impl Host for Script {
    fn credential(&mut self, refresh: bool) -> Result<Grant, String> {
        self.refreshes.push(refresh);
        Ok(Grant {
            api_base_url: "https://api.security.microsoft.com".into(),
            authorization: format!("Bearer sealed-{}", self.refreshes.len()),
        })
    }
    fn acquire_permit(&mut self, api: Api) -> Permit {
        self.permit_apis.push(api);
        self.permits.pop_front().unwrap_or(Permit::Granted)
    }
    fn throttled(&mut self, api: Api, retry_after_ms: u64) {
        self.throttled.push(retry_after_ms);
        self.throttled_apis.push(api);
    }
    fn send(
        &mut self,
        base: &ApiBase,
        auth: &str,
        request: &ApiRequest,
    ) -> Result<RawResponse, SendError> {
        self.sent.push(format!(
            "{:?} {}{} {auth}",
            request.method, base.authority, request.path
        ));
        self.answers
            .pop_front()
            .expect("an unscripted request was sent")
    }
    fn now_ms(&mut self) -> u64 {
        self.now
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.sleeps.push(ms);
        self.now += ms;
    }
    fn wall_clock_ms(&mut self) -> u64 {
        WALL_CLOCK_START_MS + self.now
    }
    fn progress(&mut self, update: &Update) {
        self.progress.push(update.clone());
    }
    fn random(&mut self) -> u64 {
        0
    }
}

/// An answer with this status and body.
pub fn answer(status: u16, body: &str) -> Result<RawResponse, SendError> {
    Ok(RawResponse {
        status,
        retry_after: None,
        body: body.as_bytes().to_vec(),
        truncated: false,
    })
}

/// A 429 with `Retry-After: secs`.
pub fn throttle(secs: &str) -> Result<RawResponse, SendError> {
    Ok(RawResponse {
        retry_after: Some(secs.into()),
        ..answer(
            429,
            r#"{"error":{"code":"TooManyRequests","message":"slow","target":"t"}}"#,
        )?
    })
}
