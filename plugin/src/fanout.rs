//! One file, many devices: validate everything, list the devices for `everywhere` (page by
//! page, up to the request's cap), act on each device in turn, then optionally wait for the
//! actions to finish and cancel the ones that did not (`waiting`).

use crate::bindings::defender::endpoint::types::{ActionError, InvalidInput};
use crate::bindings::exports::defender::endpoint::actions::{
    FanOut, File, MachineOutcome, Prepared, QuarantineRequest, Quarantined, Targets,
};
use crate::call::Host;
use crate::machine_action;
use crate::operations;
use crate::paging::{self, Stopped};
use crate::request::{self, MACHINES_PER_PAGE};
use crate::retry::RetryPolicy;
use crate::validate::{self, Comment, LARGEST_MAX_MACHINES, MachineId, Sha1};
use crate::waiting::{self, report};

/// A request's inputs, checked.
struct Checked {
    sha1: Sha1,
    comment: Comment,
    /// `None` for `everywhere`.
    machines: Option<Vec<MachineId>>,
    /// The most devices the request may reach.
    max: usize,
}

fn check(request: &QuarantineRequest) -> Result<Checked, ActionError> {
    let max = validate::max_machines(request.max_machines)?;
    let sha1 = match &request.file {
        File::Sha1(text) => Sha1::parse(text)?,
        File::Content(bytes) => Sha1::of_content(bytes),
    };
    let comment = Comment::parse(&request.comment)?;
    let machines = match &request.targets {
        Targets::Machines(ids) => Some(validate::machine_ids(ids, max)?),
        Targets::Everywhere => None,
    };
    Ok(Checked {
        sha1,
        comment,
        machines,
        max,
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
        max_machines: u32::try_from(checked.max).unwrap_or(u32::MAX),
    })
}

/// Carries out a quarantine request: one outcome per device, in input order.
pub fn quarantine(host: &mut impl Host, request: QuarantineRequest) -> Result<FanOut, ActionError> {
    let started = host.now_ms();
    let policy = RetryPolicy::default();
    let Checked {
        sha1,
        comment,
        machines,
        max,
    } = check(&request)?;
    let (targets, unlisted) = match machines {
        Some(machines) => (machines.into_iter().map(Ok).collect(), None),
        None => everywhere(host, &sha1, max, &policy)?,
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
                        poll_error: None,
                        cancel_error: None,
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
        waiting::wait_for_final(host, &mut outcomes, started, &wait, Some(&comment));
    }
    Ok(FanOut { outcomes, unlisted })
}

/// A device the API listed, or why it cannot be acted on (with the ID as listed).
type Target = Result<MachineId, (String, ActionError)>;

/// The devices that have seen the file, read page by page, and why the listing stopped early
/// if it did. An empty list is an answer; devices past the request's cap, or with an ID that is
/// not one, get an error outcome of their own.
fn everywhere(
    host: &mut impl Host,
    sha1: &Sha1,
    max: usize,
    policy: &RetryPolicy,
) -> Result<(Vec<Target>, Option<ActionError>), ActionError> {
    let first = request::machines_with_file(sha1);
    let listing = paging::read(host, &first, MACHINES_PER_PAGE, max, |_| true, policy)?;
    let past_cap = || {
        invalid(
            "max-machines",
            format!(
                "past this request's cap of {max} devices (max-machines: 1000 by default, the \
                 Defender portal's limit, not the API's; at most {LARGEST_MAX_MACHINES})"
            ),
        )
    };
    let unlisted = match listing.stopped {
        None => None,
        Some(Stopped::Enough) => Some(past_cap()),
        Some(Stopped::Failed(error)) => Some(error),
    };
    let mut seen = std::collections::HashSet::new();
    let mut targets = Vec::new();
    for item in listing.items {
        let raw = machine_action::text(&item.members, "id").unwrap_or_default();
        let target = match MachineId::parse(&raw) {
            Ok(id) if !seen.insert(id.as_str().to_owned()) => continue,
            Ok(_) if seen.len() > max => Err((raw.to_ascii_lowercase(), past_cap())),
            Ok(id) => Ok(id),
            // Named by at most 64 characters of what was listed: it is the API's text.
            Err(_) => Err((
                raw.chars().take(64).collect(),
                invalid(
                    "machine-id",
                    "the API listed a device ID that is not 40 hex characters".into(),
                ),
            )),
        };
        targets.push(target);
    }
    Ok((targets, unlisted))
}

fn invalid(field: &str, message: String) -> ActionError {
    ActionError::InvalidInput(InvalidInput {
        field: field.into(),
        message,
    })
}

#[cfg(test)]
mod tests;
