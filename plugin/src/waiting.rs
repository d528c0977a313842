//! Waiting for actions to be final: poll rounds that back off from 2 to 30 seconds, each asking
//! about every action this run created with one listing (`GET /api/machineactions`, this action
//! type created since the oldest of them, page by page until all are seen), and about an
//! adopted action or a single one with a `GET`; then cancelling the ones still not final when
//! asked to. A look that fails is never dropped: it is reported as progress, and kept in the
//! outcome (`poll-error`, `cancel-error`) until a later look succeeds.

use crate::bindings::defender::endpoint::progress::Update;
use crate::bindings::defender::endpoint::types::{ActionError, ApiError, MachineAction};
use crate::bindings::exports::defender::endpoint::actions::{MachineOutcome, Wait};
use crate::call::Host;
use crate::machine_action;
use crate::machine_action::Listed;
use crate::operations::{self, created_ms, is_final};
use crate::paging;
use crate::request::{self, ACTIONS_PER_PAGE};
use crate::response;
use crate::retry::RetryPolicy;
use crate::validate::{ActionId, Comment};
use std::collections::{HashMap, HashSet};

/// The first wait between polls, the factor it grows by (in tenths), and its cap.
const FIRST_POLL_MS: u64 = 2_000;
const POLL_GROWTH_TENTHS: u64 = 15;
const MAX_POLL_MS: u64 = 30_000;
/// The most actions a round polls one by one (adopted ones, and ones its listing missed).
const MAX_GETS_PER_ROUND: usize = 20;
/// The most characters of a failed look's message kept in an outcome: a fan-out of thousands
/// whose every poll fails must still fit what the host takes back.
const MAX_LOOK_MESSAGE_CHARS: usize = 512;
/// The cancellation's reason when the request's comment cannot be used.
const TIMED_OUT: &str = "Wait timed out; cancelled";

/// Polls every action that is not final until it is, or until `wait`'s timeout counted from
/// `started`; then cancels the rest when asked to, naming `comment` in the reason. An outcome
/// keeps the last status seen.
pub fn wait_for_final(
    host: &mut impl Host,
    outcomes: &mut [MachineOutcome],
    started: u64,
    wait: &Wait,
    comment: Option<&Comment>,
) {
    let deadline = started.saturating_add(wait.timeout_ms);
    let mut interval = FIRST_POLL_MS;
    let mut round: usize = 0;
    loop {
        let pending = pending(outcomes);
        if pending.is_empty() || host.now_ms().saturating_add(interval) > deadline {
            break;
        }
        host.sleep_ms(interval);
        interval = (interval * POLL_GROWTH_TENTHS / 10).min(MAX_POLL_MS);
        poll_round(host, outcomes, &pending, deadline, round);
        round = round.wrapping_add(1);
    }
    if !wait.cancel_on_timeout {
        return;
    }
    let reason = comment
        .and_then(|c| Comment::parse(&format!("{TIMED_OUT}: {}", c.as_str())).ok())
        .or_else(|| Comment::parse(TIMED_OUT).ok());
    let Some(reason) = reason else {
        return;
    };
    for (index, id) in pending(outcomes) {
        let policy = RetryPolicy::default();
        match operations::cancel_action(host, &id, &reason, &policy) {
            Ok(action) => update(host, outcomes.get_mut(index), action),
            Err(error) => {
                // It may have become final since the last poll (the API refuses to cancel a
                // final action): one look tells, and then there is nothing to report.
                match operations::get_action(host, &id, &policy) {
                    Ok(action) if is_final(&action.status) => {
                        update(host, outcomes.get_mut(index), action);
                    }
                    Ok(action) => {
                        update(host, outcomes.get_mut(index), action);
                        failed(host, outcomes.get_mut(index), Look::Cancel, error);
                    }
                    Err(_) => failed(host, outcomes.get_mut(index), Look::Cancel, error),
                }
            }
        }
    }
}

/// One round: one listing of this type's actions created since the oldest of this run's
/// (actions it created, with a creation time), matched by ID and read only until all are seen;
/// a `GET` for the others (adopted actions, which may be much older, and a single action), and
/// for those the listing did not show (it failed, stopped early, or lags): at most [`MAX_GETS_PER_ROUND`] a
/// round, taken in turn from round to round, so none is left out for good and a re-run that
/// adopts a thousand actions does not spend a thousand calls a round. An action the round did
/// not see keeps its status until the next.
fn poll_round(
    host: &mut impl Host,
    outcomes: &mut [MachineOutcome],
    pending: &[(usize, ActionId)],
    deadline: u64,
    round: usize,
) {
    let policy = within(host, deadline);
    let created_here = |index: usize| {
        let q = outcomes.get(index)?.outcome.as_ref().ok()?;
        created_ms(&q.action).filter(|_| !q.adopted)
    };
    let (listed, mut one_by_one): (Vec<_>, Vec<_>) = pending
        .iter()
        .cloned()
        .partition(|(index, _)| created_here(*index).is_some());
    let since = listed
        .iter()
        .filter_map(|(index, _)| created_here(*index))
        .min();
    match (since, listed.len()) {
        (Some(since), 2..) => {
            one_by_one.extend(list_round(host, outcomes, &listed, since, &policy))
        }
        _ => one_by_one.extend(listed),
    }
    let start = round
        .saturating_mul(MAX_GETS_PER_ROUND)
        .checked_rem(one_by_one.len())
        .unwrap_or(0);
    one_by_one.rotate_left(start);
    for (index, id) in one_by_one.into_iter().take(MAX_GETS_PER_ROUND) {
        match operations::get_action(host, &id, &policy) {
            Ok(action) => update(host, outcomes.get_mut(index), action),
            Err(error) => failed(host, outcomes.get_mut(index), Look::Poll, error),
        }
    }
}

/// One listing for `listed`, each action found recorded; the ones it did not show, to be asked
/// for by `GET` (a listing may lag the actions' creation, or stop early). A listing that failed,
/// on its first page or a later one, is recorded as the poll error of each action it did not
/// show, until a `GET` sees it.
fn list_round(
    host: &mut impl Host,
    outcomes: &mut [MachineOutcome],
    listed: &[(usize, ActionId)],
    since: u64,
    policy: &RetryPolicy,
) -> Vec<(usize, ActionId)> {
    let wanted: HashSet<&str> = listed.iter().map(|(_, id)| id.as_str()).collect();
    let first = request::actions_since(since, ACTIONS_PER_PAGE);
    // Reading stops once every action waited on was seen.
    let enough = listed.len().saturating_sub(1);
    let keep = |item: &Listed| {
        machine_action::text(&item.members, "id")
            .is_some_and(|id| wanted.contains(id.to_ascii_lowercase().as_str()))
    };
    let listing = match paging::read(host, &first, ACTIONS_PER_PAGE, enough, keep, policy) {
        Ok(listing) => listing,
        Err(error) => {
            for (index, _) in listed {
                failed(host, outcomes.get_mut(*index), Look::Poll, error.clone());
            }
            return listed.to_vec();
        }
    };
    let failure = match listing.stopped {
        Some(paging::Stopped::Failed(error)) => Some(error),
        Some(paging::Stopped::Enough) | None => None,
    };
    let mut found: HashMap<String, MachineAction> = listing
        .items
        .into_iter()
        .filter_map(|item| machine_action::from_members(&item.members, item.raw).ok())
        .map(|action| (action.id.to_ascii_lowercase(), action))
        .collect();
    let mut missed = Vec::new();
    for (index, id) in listed {
        match found.remove(id.as_str()) {
            Some(action) => update(host, outcomes.get_mut(*index), action),
            None => {
                if let Some(error) = &failure {
                    failed(host, outcomes.get_mut(*index), Look::Poll, error.clone());
                }
                missed.push((*index, id.clone()));
            }
        }
    }
    missed
}

/// The outcomes whose action is not final, with the action's ID.
fn pending(outcomes: &[MachineOutcome]) -> Vec<(usize, ActionId)> {
    outcomes
        .iter()
        .enumerate()
        .filter_map(|(index, o)| {
            let q = o.outcome.as_ref().ok()?;
            if is_final(&q.action.status) {
                return None;
            }
            Some((index, ActionId::parse(&q.action.id).ok()?))
        })
        .collect()
}

/// A retry policy that ends with the wait.
fn within(host: &mut impl Host, deadline: u64) -> RetryPolicy {
    let left = deadline.saturating_sub(host.now_ms()).max(1);
    let policy = RetryPolicy::default();
    RetryPolicy {
        deadline_ms: policy.deadline_ms.min(left),
        ..policy
    }
}

/// Records a newer view of an outcome's action, and tells the host: the last look succeeded.
fn update(host: &mut impl Host, outcome: Option<&mut MachineOutcome>, action: MachineAction) {
    let Some(outcome) = outcome else {
        return;
    };
    report(host, &outcome.machine_id, &action);
    if let Ok(q) = outcome.outcome.as_mut() {
        q.action = action;
        q.poll_error = None;
    }
}

/// Which look at an action failed.
#[derive(Clone, Copy)]
enum Look {
    /// A `GET`, or the listing the action was looked for in.
    Poll,
    /// The cancellation at the wait's timeout.
    Cancel,
}

/// Records why a look at an outcome's action failed, and tells the host.
fn failed(
    host: &mut impl Host,
    outcome: Option<&mut MachineOutcome>,
    look: Look,
    error: ActionError,
) {
    let Some(outcome) = outcome else {
        return;
    };
    let Ok(q) = outcome.outcome.as_mut() else {
        return;
    };
    let error = shortened(error);
    host.progress(&Update {
        machine_id: outcome.machine_id.clone(),
        action_id: q.action.id.clone(),
        status: q.action.status.clone(),
        is_final: is_final(&q.action.status),
        error: Some(error.clone()),
    });
    match look {
        Look::Poll => q.poll_error = Some(error),
        Look::Cancel => q.cancel_error = Some(error),
    }
}

/// The error with its message cut to [`MAX_LOOK_MESSAGE_CHARS`].
fn shortened(error: ActionError) -> ActionError {
    let cut = |text: &str| response::shortened(text, MAX_LOOK_MESSAGE_CHARS);
    let cut_api = |mut api: ApiError| {
        api.message = api.message.as_deref().map(cut);
        api
    };
    match error {
        ActionError::Unauthorized(api) => ActionError::Unauthorized(cut_api(api)),
        ActionError::NotFound(api) => ActionError::NotFound(cut_api(api)),
        ActionError::AlreadyPending(api) => ActionError::AlreadyPending(cut_api(api)),
        ActionError::Upstream(api) => ActionError::Upstream(cut_api(api)),
        ActionError::Forbidden(mut forbidden) => {
            forbidden.api = cut_api(forbidden.api);
            ActionError::Forbidden(forbidden)
        }
        ActionError::RateLimited(mut limited) => {
            limited.api = limited.api.map(cut_api);
            ActionError::RateLimited(limited)
        }
        ActionError::Transport(message) => ActionError::Transport(cut(&message)),
        ActionError::Credentials(message) => ActionError::Credentials(cut(&message)),
        ActionError::InvalidInput(mut invalid) => {
            invalid.message = cut(&invalid.message);
            ActionError::InvalidInput(invalid)
        }
    }
}

/// Tells the host an action's status.
pub fn report(host: &mut impl Host, machine: &str, action: &MachineAction) {
    host.progress(&Update {
        machine_id: machine.to_owned(),
        action_id: action.id.clone(),
        status: action.status.clone(),
        is_final: is_final(&action.status),
        error: None,
    });
}

#[cfg(test)]
mod tests;
