//! The API operations as the component uses them: create with adoption and without duplicates,
//! get with patience for new actions, cancel, and the listings.

use crate::bindings::defender::endpoint::types::{
    ActionError, ActionStatus, ApiError, MachineAction,
};
use crate::call::{Failure, Host, perform};
use crate::machine_action;
use crate::paging::{self, Stopped};
use crate::request::{self, ACTIONS_PER_PAGE, ApiRequest};
use crate::response::{self, Effect};
use crate::retry::RetryPolicy;
use crate::timestamp;
use crate::validate::{ActionId, Comment, MachineId, Sha1};

/// How far the API's clock and ours may disagree when telling new actions from old ones.
const CLOCK_SKEW_MS: u64 = 120_000;
/// How far back an action can still be pending: the API times actions out after three days
/// ("TimeOut"); a day more covers clocks and late updates.
const PENDING_AT_MOST_MS: u64 = 4 * 24 * 3600 * 1000;
/// How many times a POST whose fate is unknown, and that is not found, is sent.
const MAX_SENDS: u32 = 3;
/// How long to wait before looking again for an action that a dropped POST may have created.
const LOOKUP_SETTLE_MS: u64 = 2_000;
/// How many times a 404 for an action is retried, and the first wait (doubling).
const NOT_FOUND_RETRIES: u32 = 3;
const NOT_FOUND_FIRST_WAIT_MS: u64 = 1_000;

/// An action for one device, and whether it was found rather than created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The action created, or the pending one adopted.
    pub action: MachineAction,
    /// Found already pending for the same device and file, not created by this call.
    pub adopted: bool,
}

/// When the API says it created the action, in milliseconds since the Unix epoch.
pub fn created_ms(action: &MachineAction) -> Option<u64> {
    action
        .creation_date_time_utc
        .as_deref()
        .and_then(timestamp::parse_ms)
}

/// Whether a status is final.
pub fn is_final(status: &ActionStatus) -> bool {
    matches!(
        status,
        ActionStatus::Succeeded
            | ActionStatus::Failed
            | ActionStatus::TimeOut
            | ActionStatus::Cancelled
    )
}

/// Creates the action on one device. An action already pending for the device and file is
/// returned as adopted; when the POST's fate is unknown the action is looked up before the
/// POST is sent again.
pub fn create(
    host: &mut impl Host,
    machine: &MachineId,
    sha1: &Sha1,
    comment: &Comment,
    policy: &RetryPolicy,
) -> Result<Quarantined, ActionError> {
    let post = request::stop_and_quarantine(machine, sha1, comment);
    let mut sends = 0;
    loop {
        sends += 1;
        let sent_at = host.wall_clock_ms();
        let message = match perform(host, &post, policy) {
            Ok(answer) => {
                let action = response::machine_action(&answer, Effect::Create)?;
                // A duplicate can come back as 201 with the older pending action.
                let adopted = created_ms(&action).is_some_and(|t| t + CLOCK_SKEW_MS < sent_at);
                return Ok(Quarantined { action, adopted });
            }
            Err(Failure::Action(ActionError::AlreadyPending(api))) => {
                let pending = |a: &MachineAction| !is_final(&a.status);
                let since = sent_at.saturating_sub(PENDING_AT_MOST_MS);
                return match find(host, machine, sha1, since, policy, pending) {
                    Ok(Some(action)) => Ok(Quarantined {
                        action,
                        adopted: true,
                    }),
                    Ok(None) => Err(ActionError::AlreadyPending(api)),
                    Err(error) => Err(lookup_failed(error, &api)),
                };
            }
            Err(Failure::Action(error)) => return Err(error),
            Err(Failure::MaybeSent(message)) => message,
        };
        let from = sent_at.saturating_sub(CLOCK_SKEW_MS);
        let since = |a: &MachineAction| created_ms(a).is_some_and(|t| t >= from);
        let mut found = find(host, machine, sha1, from, policy, since);
        if matches!(found, Ok(None)) {
            host.sleep_ms(LOOKUP_SETTLE_MS);
            found = find(host, machine, sha1, from, policy, since);
        }
        match found {
            Ok(Some(action)) => {
                return Ok(Quarantined {
                    action,
                    adopted: false,
                });
            }
            Ok(None) if sends < MAX_SENDS => continue,
            Ok(None) => {
                return Err(ActionError::Transport(format!(
                    "{message}; sent {sends} times, and no action was found after any of them"
                )));
            }
            Err(error) => {
                return Err(ActionError::Transport(format!(
                    "{message}; the request may have reached the API, and looking for the \
                     action failed ({}), so it was not sent again",
                    brief(&error)
                )));
            }
        }
    }
}

/// Gets an action, retrying a 404 a few times: a new action can be briefly invisible.
pub fn get_action(
    host: &mut impl Host,
    id: &ActionId,
    policy: &RetryPolicy,
) -> Result<MachineAction, ActionError> {
    let get = request::get_action(id);
    let mut wait = NOT_FOUND_FIRST_WAIT_MS;
    for _ in 0..NOT_FOUND_RETRIES {
        match fetch_action(host, &get, Effect::Read, policy) {
            Err(ActionError::NotFound(_)) => {
                host.sleep_ms(wait);
                wait *= 2;
            }
            other => return other,
        }
    }
    fetch_action(host, &get, Effect::Read, policy)
}

/// Cancels an action that is not final yet.
pub fn cancel_action(
    host: &mut impl Host,
    id: &ActionId,
    comment: &Comment,
    policy: &RetryPolicy,
) -> Result<MachineAction, ActionError> {
    fetch_action(
        host,
        &request::cancel_action(id, comment),
        Effect::Cancel,
        policy,
    )
}

fn fetch_action(
    host: &mut impl Host,
    request: &ApiRequest,
    effect: Effect,
    policy: &RetryPolicy,
) -> Result<MachineAction, ActionError> {
    let answer = perform(host, request, policy)?;
    response::machine_action(&answer, effect)
}

/// The newest of this device's actions for this file created since `since_ms` that satisfies
/// `wanted`, read page by page (a page too large is asked for again in halves). A listing that
/// stopped early is enough when it found one; otherwise its failure is the answer.
fn find(
    host: &mut impl Host,
    machine: &MachineId,
    sha1: &Sha1,
    since_ms: u64,
    policy: &RetryPolicy,
    wanted: impl Fn(&MachineAction) -> bool,
) -> Result<Option<MachineAction>, ActionError> {
    let first = request::device_actions_since(machine, since_ms, ACTIONS_PER_PAGE);
    // Only candidates are kept: a long history read page by page never piles up in memory.
    let candidate = |item: &machine_action::Listed| {
        machine_action::from_members(&item.members, String::new())
            .is_ok_and(|a| is_candidate(&a, sha1, &wanted))
    };
    let listing = paging::read(
        host,
        &first,
        ACTIONS_PER_PAGE,
        usize::MAX,
        candidate,
        policy,
    )?;
    let found = listing
        .items
        .into_iter()
        .filter_map(|item| machine_action::from_members(&item.members, item.raw).ok())
        .filter(|a| is_candidate(a, sha1, &wanted))
        .max_by_key(|a| created_ms(a).unwrap_or(0));
    match (found, listing.stopped) {
        (Some(action), _) => Ok(Some(action)),
        (None, Some(Stopped::Failed(error))) => Err(error),
        (None, _) => Ok(None),
    }
}

/// Whether a listed action is about this file and is what the lookup wants.
fn is_candidate(
    action: &MachineAction,
    sha1: &Sha1,
    wanted: &impl Fn(&MachineAction) -> bool,
) -> bool {
    action
        .related_file_info
        .as_ref()
        .is_some_and(|f| f.file_identifier.eq_ignore_ascii_case(sha1.as_str()))
        && wanted(action)
}

/// The error of a failed look for the pending action the API said exists: the look's own, its
/// message saying what came before, so the outcome is not taken for "another action is pending"
/// when it may be this file's.
fn lookup_failed(error: ActionError, pending: &ApiError) -> ActionError {
    let context = match &pending.target {
        Some(target) => format!(
            "the API answered ActiveRequestAlreadyExists (correlation ID {target}), and looking \
             for the device's pending action failed"
        ),
        None => "the API answered ActiveRequestAlreadyExists, and looking for the device's \
                 pending action failed"
            .to_owned(),
    };
    let amend = |api: &mut ApiError| {
        let said = api.message.take().unwrap_or_default();
        api.message = Some(format!("{context}: {said}"));
    };
    match error {
        ActionError::Unauthorized(mut api) => {
            amend(&mut api);
            ActionError::Unauthorized(api)
        }
        ActionError::NotFound(mut api) => {
            amend(&mut api);
            ActionError::NotFound(api)
        }
        ActionError::AlreadyPending(mut api) | ActionError::Upstream(mut api) => {
            amend(&mut api);
            ActionError::Upstream(api)
        }
        ActionError::Forbidden(mut forbidden) => {
            amend(&mut forbidden.api);
            ActionError::Forbidden(forbidden)
        }
        // The API's 429, if it was the API that throttled; the host's own budget has no message.
        ActionError::RateLimited(mut limited) => {
            if let Some(api) = limited.api.as_mut() {
                amend(api);
            }
            ActionError::RateLimited(limited)
        }
        ActionError::Transport(message) => ActionError::Transport(format!("{context}: {message}")),
        ActionError::Credentials(message) => {
            ActionError::Credentials(format!("{context}: {message}"))
        }
        ActionError::InvalidInput(invalid) => ActionError::InvalidInput(invalid),
    }
}

/// A few words on an error, for another error's message.
fn brief(error: &ActionError) -> String {
    match error {
        ActionError::Unauthorized(api)
        | ActionError::NotFound(api)
        | ActionError::AlreadyPending(api)
        | ActionError::Upstream(api) => match &api.code {
            Some(code) => format!("HTTP {} {code}", api.status),
            None => format!("HTTP {}", api.status),
        },
        ActionError::Forbidden(f) => format!("HTTP {} forbidden", f.api.status),
        ActionError::RateLimited(r) => format!("rate limited for {} ms", r.retry_after_ms),
        ActionError::InvalidInput(i) => format!("invalid {}", i.field),
        ActionError::Transport(message) | ActionError::Credentials(message) => message.clone(),
    }
}

#[cfg(test)]
mod tests;
