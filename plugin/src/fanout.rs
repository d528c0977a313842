//! One file, many devices: validate everything, act on each device in turn, then optionally
//! wait for the actions to finish and cancel the ones that did not.

use crate::bindings::defender::endpoint::progress::Update;
use crate::bindings::defender::endpoint::types::{ActionError, InvalidInput, MachineAction};
use crate::bindings::exports::defender::endpoint::actions::{
    File, MachineOutcome, Prepared, QuarantineRequest, Quarantined, Targets, Wait,
};
use crate::call::Host;
use crate::operations::{self, is_final};
use crate::retry::RetryPolicy;
use crate::validate::{self, ActionId, Comment, MAX_MACHINES, MachineId, Sha1};

/// The first wait between polls, the factor it grows by (in tenths), and its cap.
const FIRST_POLL_MS: u64 = 2_000;
const POLL_GROWTH_TENTHS: u64 = 15;
const MAX_POLL_MS: u64 = 30_000;

/// A request's inputs, checked.
struct Checked {
    sha1: Sha1,
    comment: Comment,
    /// `None` for `everywhere`.
    machines: Option<Vec<MachineId>>,
}

fn check(request: &QuarantineRequest) -> Result<Checked, ActionError> {
    let sha1 = match &request.file {
        File::Sha1(text) => Sha1::parse(text)?,
        File::Content(bytes) => Sha1::of_content(bytes),
    };
    let comment = Comment::parse(&request.comment)?;
    let machines = match &request.targets {
        Targets::Machines(ids) => Some(validate::machine_ids(ids)?),
        Targets::Everywhere => None,
    };
    Ok(Checked {
        sha1,
        comment,
        machines,
    })
}

/// Checks and normalises a request without sending anything.
pub fn prepare(request: &QuarantineRequest) -> Result<Prepared, ActionError> {
    let checked = check(request)?;
    Ok(Prepared {
        machine_ids: checked
            .machines
            .unwrap_or_default()
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect(),
        sha1: checked.sha1.as_str().to_owned(),
        max_machines: u32::try_from(MAX_MACHINES).unwrap_or(u32::MAX),
    })
}

/// Carries out a quarantine request: one outcome per device, in input order.
pub fn quarantine(
    host: &mut impl Host,
    request: QuarantineRequest,
) -> Result<Vec<MachineOutcome>, ActionError> {
    let started = host.now_ms();
    let policy = RetryPolicy::default();
    let Checked {
        sha1,
        comment,
        machines,
    } = check(&request)?;
    let targets = match machines {
        Some(machines) => machines.into_iter().map(Ok).collect(),
        None => everywhere(host, &sha1, &policy)?,
    };

    let mut outcomes = Vec::with_capacity(targets.len());
    for target in targets {
        let outcome = match target {
            Ok(machine) => {
                let created = operations::create(host, &machine, &sha1, &comment, &policy);
                if let Ok(q) = &created {
                    report(host, machine.as_str(), &q.action);
                }
                MachineOutcome {
                    machine_id: machine.as_str().to_owned(),
                    outcome: created.map(|q| Quarantined {
                        action: q.action,
                        adopted: q.adopted,
                    }),
                }
            }
            Err((machine_id, error)) => MachineOutcome {
                machine_id,
                outcome: Err(error),
            },
        };
        outcomes.push(outcome);
    }
    if let Some(wait) = request.wait {
        wait_for_final(host, &mut outcomes, started, &wait, &comment);
    }
    Ok(outcomes)
}

/// A device the API listed, or why it cannot be acted on (with the ID as listed).
type Target = Result<MachineId, (String, ActionError)>;

/// The devices that have seen the file. An empty list is an answer; devices past the API's
/// limit, or with an ID that is not one, get an error outcome of their own.
fn everywhere(
    host: &mut impl Host,
    sha1: &Sha1,
    policy: &RetryPolicy,
) -> Result<Vec<Target>, ActionError> {
    let listed = operations::machines_with_file(host, sha1, policy)?;
    let mut seen = std::collections::HashSet::new();
    let mut targets = Vec::new();
    for raw in listed {
        let target = match MachineId::parse(&raw) {
            Ok(id) if !seen.insert(id.as_str().to_owned()) => continue,
            Ok(_) if seen.len() > MAX_MACHINES => Err((
                raw.to_ascii_lowercase(),
                invalid(
                    "machine-ids",
                    format!("past the API's limit of {MAX_MACHINES} devices per file"),
                ),
            )),
            Ok(id) => Ok(id),
            Err(_) => Err((
                raw,
                invalid(
                    "machine-id",
                    "the API listed a device ID that is not 40 hex characters".into(),
                ),
            )),
        };
        targets.push(target);
    }
    Ok(targets)
}

/// Polls every action that is not final until it is, or until the timeout; then cancels the
/// rest when asked to. An outcome keeps the last status seen.
fn wait_for_final(
    host: &mut impl Host,
    outcomes: &mut [MachineOutcome],
    started: u64,
    wait: &Wait,
    comment: &Comment,
) {
    let deadline = started.saturating_add(wait.timeout_ms);
    let mut interval = FIRST_POLL_MS;
    loop {
        let pending = pending(outcomes);
        let now = host.now_ms();
        if pending.is_empty() || now.saturating_add(interval) > deadline {
            break;
        }
        host.sleep_ms(interval);
        interval = (interval * POLL_GROWTH_TENTHS / 10).min(MAX_POLL_MS);
        for (index, id) in pending {
            let policy = within(host, deadline);
            if let Ok(action) = operations::get_action(host, &id, &policy) {
                update(host, &mut outcomes[index], action);
            }
        }
    }
    if !wait.cancel_on_timeout {
        return;
    }
    let reason = Comment::parse(&format!("Wait timed out; cancelled: {}", comment.as_str()))
        .unwrap_or_else(|_| comment.clone());
    for (index, id) in pending(outcomes) {
        let policy = RetryPolicy::default();
        if let Ok(action) = operations::cancel_action(host, &id, &reason, &policy) {
            update(host, &mut outcomes[index], action);
        }
    }
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

/// Records a newer view of an outcome's action, and tells the host.
fn update(host: &mut impl Host, outcome: &mut MachineOutcome, action: MachineAction) {
    report(host, &outcome.machine_id, &action);
    if let Ok(q) = outcome.outcome.as_mut() {
        q.action = action;
    }
}

fn report(host: &mut impl Host, machine: &str, action: &MachineAction) {
    host.progress(&Update {
        machine_id: machine.to_owned(),
        action_id: action.id.clone(),
        status: action.status.clone(),
        is_final: is_final(&action.status),
    });
}

fn invalid(field: &str, message: String) -> ActionError {
    ActionError::InvalidInput(InvalidInput {
        field: field.into(),
        message,
    })
}
