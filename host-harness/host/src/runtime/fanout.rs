//! One file on many devices: the component checks the whole request first (`prepare`), then
//! each device gets an invocation of its own that creates its action, run concurrently (the
//! runtime's in-flight limit bounds how many at once), and one more invocation waits for all of
//! them (`await-actions`: one listing a poll round, however many actions). The outcomes come
//! back in input order. A device whose invocation the host had to stop gets an error outcome of
//! its own, so none goes unreported; a wait the host had to stop keeps the last status seen.
//! `everywhere` is one invocation (only the component lists the devices), its wall clock sized
//! from the request's device cap; so is a single device.

use super::invocation::gated;
use super::sizing::Sizing;
use super::{Outcome, ProgressSink, Runtime, RuntimeError};
use crate::ActionError;
use crate::bindings::exports::defender::endpoint::actions::{
    FanOut, File, MachineOutcome, Prepared, QuarantineRequest, Targets, Wait,
};
use crate::rate_limit::Api;
use crate::tenants::Tenant;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The most device calls of a fan-out spawned and not yet finished: each holds a copy of the
/// request, and only the runtime's slots run at once anyway.
const SPAWNED_AT_ONCE: usize = 256;
/// The most devices the host sizes one call for: the largest cap a request may ask for (the
/// API's page size). The component's own `max-machines` may lower it, never raise it.
const MAX_DEVICES_PER_CALL: u32 = 10_000;

impl Runtime {
    /// Runs `quarantine`: one file on many devices, optionally waiting for the actions to
    /// finish. Invalid input is refused before anything is sent; then several devices are
    /// carried out concurrently, one invocation each, and waited for in one more. `progress`
    /// hears every status the component sees.
    pub async fn quarantine(
        &self,
        tenant: &Tenant,
        request: QuarantineRequest,
        progress: Option<ProgressSink>,
    ) -> Result<Outcome<FanOut>, RuntimeError> {
        let started = Instant::now();
        // One gate for the whole call, however many invocations it takes.
        let progress = progress.map(gated);
        if matches!(&request.targets, Targets::Machines(ids) if ids.len() <= 1) {
            // One device: the component checks it in the one invocation that carries it out.
            return self.in_one_invocation(tenant, request, 1, progress).await;
        }
        let prepared = self.prepare(tenant, request.clone()).await?;
        let Prepared {
            machine_ids,
            sha1,
            max_machines,
        } = match prepared.result {
            Ok(prepared) => prepared,
            Err(error) => {
                return Ok(Outcome {
                    result: Err(error),
                    denials: prepared.denials,
                    requests_sent: prepared.requests_sent,
                    connection_errors: prepared.connection_errors,
                    wait_stopped: None,
                });
            }
        };
        if let Err(why) = only_devices_asked_for(&request.targets, &machine_ids) {
            return Err(RuntimeError::Contract(why));
        }
        let mut request = QuarantineRequest {
            file: File::Sha1(sha1),
            ..request
        };
        if machine_ids.len() <= 1 {
            let devices = sized_for(&request.targets, max_machines);
            return self
                .in_one_invocation(tenant, request, devices, progress)
                .await;
        }
        let wait = request.wait.take();
        let created = self
            .create_each(tenant, &request, machine_ids, progress.clone())
            .await;
        let Some(wait) = wait else {
            return Ok(created.map(|outcomes| FanOut {
                outcomes,
                unlisted: None,
            }));
        };
        let left = Duration::from_millis(wait.timeout_ms).saturating_sub(started.elapsed());
        let wait = Wait {
            timeout_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
            ..wait
        };
        let waited = self
            .await_actions(tenant, created, wait, request.comment, progress)
            .await;
        Ok(waited.map(|outcomes| FanOut {
            outcomes,
            unlisted: None,
        }))
    }

    /// One invocation per device, without waiting: the outcomes in the devices' order, and
    /// what the host saw of all of them.
    async fn create_each(
        &self,
        tenant: &Tenant,
        request: &QuarantineRequest,
        machine_ids: Vec<String>,
        progress: Option<ProgressSink>,
    ) -> Outcome<Vec<MachineOutcome>> {
        let mut calls = JoinSet::new();
        let mut gathered = Outcome {
            result: Ok(()),
            denials: Vec::new(),
            requests_sent: 0,
            connection_errors: Vec::new(),
            wait_stopped: None,
        };
        let mut outcomes: Vec<Option<Result<_, ActionError>>> = vec![None; machine_ids.len()];
        let mut gather = |joined, gathered: &mut Outcome<()>| {
            let Ok((index, result)) = joined else {
                return;
            };
            let asked: Option<&String> = machine_ids.get(index);
            let outcome = match result {
                Ok(outcome) => match gathered.absorb(outcome) {
                    Ok(FanOut { outcomes: one, .. }) => match one.as_slice() {
                        [only] if Some(&only.machine_id) == asked => Some(only.outcome.clone()),
                        _ => Some(Err(ActionError::Transport(
                            "the component answered for another device than this one".into(),
                        ))),
                    },
                    Err(error) => Some(Err(error)),
                },
                Err(stopped) => Some(Err(ActionError::Transport(format!(
                    "the host stopped this device's call: {stopped}"
                )))),
            };
            if let Some(slot) = outcomes.get_mut(index) {
                *slot = outcome;
            }
        };
        for (index, machine_id) in machine_ids.iter().enumerate() {
            // Each waiting call holds a copy of the request: a bounded number at once.
            while calls.len() >= SPAWNED_AT_ONCE {
                if let Some(joined) = calls.join_next().await {
                    gather(joined, &mut gathered);
                }
            }
            let one = QuarantineRequest {
                targets: Targets::Machines(vec![machine_id.clone()]),
                ..request.clone()
            };
            let (runtime, tenant, progress) = (self.clone(), tenant.clone(), progress.clone());
            calls.spawn(async move {
                let outcome = runtime.in_one_invocation(&tenant, one, 1, progress).await;
                (index, outcome)
            });
        }
        while let Some(joined) = calls.join_next().await {
            gather(joined, &mut gathered);
        }
        let result = outcomes
            .into_iter()
            .zip(machine_ids)
            .map(|(outcome, machine_id)| MachineOutcome {
                machine_id,
                outcome: outcome.unwrap_or_else(|| {
                    Err(ActionError::Transport(
                        "the host lost this device's call".into(),
                    ))
                }),
            })
            .collect();
        gathered.map(|()| result)
    }

    /// The component's `await-actions` over `created`'s outcomes, in one invocation. If the host
    /// has to stop it, or it answers for other devices than it was given, the outcomes come
    /// back as they were, with the reason.
    async fn await_actions(
        &self,
        tenant: &Tenant,
        created: Outcome<Vec<MachineOutcome>>,
        wait: Wait,
        comment: String,
        progress: Option<ProgressSink>,
    ) -> Outcome<Vec<MachineOutcome>> {
        let (mut gathered, result) = created.split();
        let outcomes = match result {
            Ok(outcomes) => outcomes,
            Err(error) => {
                return Outcome {
                    result: Err(error),
                    ..gathered.map(|()| Vec::new())
                };
            }
        };
        let sizing = Sizing {
            first: Some(Api::ListActions),
            wait: Duration::from_millis(wait.timeout_ms),
            devices: u32::try_from(outcomes.len()).unwrap_or(u32::MAX),
            comment_bytes: comment.len(),
            checks_only: false,
        };
        let sent = outcomes.clone();
        let waited = self
            .run(
                tenant,
                "await-actions",
                sizing,
                progress,
                move |guest, store| {
                    Box::pin(async move {
                        guest
                            .defender_endpoint_actions()
                            .call_await_actions(store, &sent, wait, &comment)
                            .await
                            .map(Ok)
                    })
                },
            )
            .await;
        let answer = match waited {
            Ok(outcome) => gathered.absorb(outcome),
            Err(stopped) => {
                gathered.wait_stopped = Some(stopped.to_string());
                return gathered.map(|()| outcomes);
            }
        };
        match answer {
            Ok(waited) if kept_to_its_actions(&waited, &outcomes) => {
                // An error stays the one the device's own call reported.
                let merged = waited
                    .into_iter()
                    .zip(outcomes)
                    .map(|(w, given)| if given.outcome.is_err() { given } else { w })
                    .collect();
                gathered.map(|()| merged)
            }
            _ => {
                gathered.wait_stopped = Some(
                    "the component's await-actions answered for other devices or actions than it \
                     was given"
                        .into(),
                );
                gathered.map(|()| outcomes)
            }
        }
    }

    /// The component's own `quarantine` in one invocation, whose limits grow with the devices
    /// it may act on and the wait.
    async fn in_one_invocation(
        &self,
        tenant: &Tenant,
        request: QuarantineRequest,
        devices: u32,
        progress: Option<ProgressSink>,
    ) -> Result<Outcome<FanOut>, RuntimeError> {
        let sizing = Sizing {
            first: Some(match request.targets {
                Targets::Everywhere => Api::FileMachines,
                Targets::Machines(_) => Api::CreateAction,
            }),
            wait: request
                .wait
                .as_ref()
                .map_or(Duration::ZERO, |w| Duration::from_millis(w.timeout_ms)),
            devices,
            comment_bytes: request.comment.len(),
            checks_only: false,
        };
        self.run(
            tenant,
            "quarantine",
            sizing,
            progress,
            move |guest, store| {
                Box::pin(async move {
                    guest
                        .defender_endpoint_actions()
                        .call_quarantine(store, &request)
                        .await
                })
            },
        )
        .await
    }
}

/// How many devices one invocation's wall clock is sized for: one named device, or for
/// `everywhere` the component's cap, never more than the host's.
fn sized_for(targets: &Targets, max_machines: u32) -> u32 {
    match targets {
        Targets::Everywhere => max_machines.min(MAX_DEVICES_PER_CALL),
        Targets::Machines(_) => 1,
    }
}

/// `prepare` may only normalise the devices it was given (white space trimmed, lower case,
/// duplicates dropped, input order kept), and names none for `everywhere`: the host starts one
/// invocation for each device it returns, so a device left out would get no outcome and one
/// named twice would be sent twice.
fn only_devices_asked_for(targets: &Targets, prepared: &[String]) -> Result<(), String> {
    let asked: &[String] = match targets {
        Targets::Machines(ids) => ids,
        Targets::Everywhere => &[],
    };
    let mut seen = std::collections::HashSet::new();
    let expected: Vec<String> = asked
        .iter()
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| seen.insert(a.clone()))
        .collect();
    if prepared.len() != expected.len() {
        return Err(format!(
            "prepare returned {} devices for {} asked for",
            prepared.len(),
            expected.len()
        ));
    }
    match prepared.iter().zip(&expected).find(|(p, e)| p != e) {
        Some((id, _)) => Err(format!(
            "prepare returned a device that was not asked for there: {}",
            crate::escape::escape(&id.chars().take(64).collect::<String>())
        )),
        None => Ok(()),
    }
}

/// Whether `waited` answers for the same devices as `given`, in the same order, with the same
/// actions (a status may change, the action may not), and an error where there was one.
fn kept_to_its_actions(waited: &[MachineOutcome], given: &[MachineOutcome]) -> bool {
    waited.len() == given.len()
        && waited.iter().zip(given).all(|(w, g)| {
            w.machine_id == g.machine_id
                && match (&w.outcome, &g.outcome) {
                    (Ok(w), Ok(g)) => w.action.id == g.action.id && w.adopted == g.adopted,
                    (Err(_), Err(_)) => true,
                    _ => false,
                }
        })
}

impl<T> Outcome<T> {
    /// The same outcome with its answer mapped, what the host saw kept.
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        Outcome {
            result: self.result.map(f),
            denials: self.denials,
            requests_sent: self.requests_sent,
            connection_errors: self.connection_errors,
            wait_stopped: self.wait_stopped,
        }
    }

    /// What the host saw, and the answer apart.
    fn split(self) -> (Outcome<()>, Result<T, ActionError>) {
        let Outcome {
            result,
            denials,
            requests_sent,
            connection_errors,
            wait_stopped,
        } = self;
        let seen = Outcome {
            result: Ok(()),
            denials,
            requests_sent,
            connection_errors,
            wait_stopped,
        };
        (seen, result)
    }
}

impl Outcome<()> {
    /// Adds what the host saw of `other` to this, and gives `other`'s answer.
    fn absorb<T>(&mut self, other: Outcome<T>) -> Result<T, ActionError> {
        let (mut seen, result) = other.split();
        self.denials.append(&mut seen.denials);
        self.connection_errors.append(&mut seen.connection_errors);
        self.requests_sent = self.requests_sent.saturating_add(seen.requests_sent);
        if seen.wait_stopped.is_some() {
            self.wait_stopped = seen.wait_stopped;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn a_guest_cannot_size_its_own_wall_clock_past_the_hosts_cap() {
        assert_eq!(
            sized_for(&Targets::Everywhere, u32::MAX),
            MAX_DEVICES_PER_CALL
        );
        assert_eq!(sized_for(&Targets::Everywhere, 10), 10);
        assert_eq!(sized_for(&Targets::Machines(ids(&["a"])), u32::MAX), 1);
    }

    #[test]
    fn prepare_may_normalise_the_devices_asked_for_and_nothing_more() {
        let a = "A".repeat(40);
        let asked = Targets::Machines(vec![format!(" {a} "), "b".repeat(40)]);
        let lower = "a".repeat(40);
        assert!(only_devices_asked_for(&asked, &[lower.clone(), "b".repeat(40)]).is_ok());
        let foreign = only_devices_asked_for(&asked, &[lower.clone(), "c".repeat(40)]).unwrap_err();
        assert!(foreign.contains(&"c".repeat(40)), "{foreign}");
        // Left out, named twice, or out of order: each would lose or double a device.
        for wrong in [
            vec![lower.clone()],
            vec![lower.clone(), lower.clone()],
            vec!["b".repeat(40), lower.clone()],
            vec![lower; 3],
        ] {
            assert!(only_devices_asked_for(&asked, &wrong).is_err(), "{wrong:?}");
        }
        let twice = Targets::Machines(vec!["b".repeat(40), "B".repeat(40)]);
        assert!(only_devices_asked_for(&twice, &["b".repeat(40)]).is_ok());
        assert!(only_devices_asked_for(&Targets::Everywhere, &ids(&["x"])).is_err());
        assert!(only_devices_asked_for(&Targets::Everywhere, &[]).is_ok());
    }

    #[test]
    fn a_foreign_device_is_named_escaped_and_short() {
        let asked = Targets::Machines(ids(&["a"]));
        let why = only_devices_asked_for(&asked, &[format!("\u{1b}[2J{}", "x".repeat(5000))])
            .unwrap_err();
        assert!(!why.contains('\u{1b}'), "{why}");
        assert!(why.len() < 200, "{}", why.len());
    }
}
