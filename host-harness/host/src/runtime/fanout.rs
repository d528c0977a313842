//! One file on many devices: the component checks the whole request first (`prepare`), then
//! each device gets an invocation of its own, run concurrently (the runtime's in-flight limit
//! bounds how many at once), and the outcomes come back in input order. A device whose
//! invocation the host had to stop gets an error outcome of its own, so none goes unreported.
//! `everywhere` is one invocation (only the component lists the devices), its wall clock sized
//! from the component's own device cap; so is a single device.

use super::{Outcome, ProgressSink, Runtime, RuntimeError};
use crate::ActionError;
use crate::bindings::exports::defender::endpoint::actions::{
    File, MachineOutcome, Prepared, QuarantineRequest, Targets,
};
use crate::tenants::Tenant;
use std::time::Duration;
use tokio::task::JoinSet;

/// Extra wall-clock time a call gets per device it may act on (on top of the per-call limit
/// and any wait), so a long fan-out is not cut off while it is still reporting outcomes.
const WALL_CLOCK_PER_MACHINE: Duration = Duration::from_secs(2);

impl Runtime {
    /// Runs `quarantine`: one file on many devices, optionally waiting for the actions to
    /// finish. Invalid input is refused before anything is sent; then several devices are
    /// carried out concurrently, one invocation each. `progress` hears every status the
    /// component sees.
    pub async fn quarantine(
        &self,
        tenant: &Tenant,
        request: QuarantineRequest,
        progress: Option<ProgressSink>,
    ) -> Result<Outcome<Vec<MachineOutcome>>, RuntimeError> {
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
                });
            }
        };
        let request = QuarantineRequest {
            file: File::Sha1(sha1),
            ..request
        };
        if machine_ids.len() <= 1 {
            let devices = match request.targets {
                Targets::Everywhere => max_machines,
                Targets::Machines(_) => 1,
            };
            return self
                .in_one_invocation(tenant, request, devices, progress)
                .await;
        }
        let mut calls = JoinSet::new();
        for (index, machine_id) in machine_ids.iter().enumerate() {
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
        let mut gathered = Outcome {
            result: Ok(()),
            denials: Vec::new(),
            requests_sent: 0,
            connection_errors: Vec::new(),
        };
        let mut outcomes: Vec<Option<Result<_, ActionError>>> = vec![None; machine_ids.len()];
        while let Some(joined) = calls.join_next().await {
            let Ok((index, result)) = joined else {
                continue;
            };
            let outcome = match result {
                Ok(mut outcome) => {
                    gathered.denials.append(&mut outcome.denials);
                    gathered
                        .connection_errors
                        .append(&mut outcome.connection_errors);
                    gathered.requests_sent =
                        gathered.requests_sent.saturating_add(outcome.requests_sent);
                    match outcome.result {
                        Ok(mut one) => one.pop().map(|o| o.outcome),
                        Err(error) => Some(Err(error)),
                    }
                }
                Err(stopped) => Some(Err(ActionError::Transport(format!(
                    "the host stopped this device's call: {stopped}"
                )))),
            };
            if let Some(slot) = outcomes.get_mut(index) {
                *slot = outcome;
            }
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
        Ok(gathered.map(|()| result))
    }

    /// The component's own `quarantine` in one invocation, whose wall clock grows with the
    /// devices it may act on and the wait.
    async fn in_one_invocation(
        &self,
        tenant: &Tenant,
        request: QuarantineRequest,
        devices: u32,
        progress: Option<ProgressSink>,
    ) -> Result<Outcome<Vec<MachineOutcome>>, RuntimeError> {
        let wait = request
            .wait
            .as_ref()
            .map_or(Duration::ZERO, |w| Duration::from_millis(w.timeout_ms));
        let extra = wait.saturating_add(WALL_CLOCK_PER_MACHINE.saturating_mul(devices));
        self.run(tenant, extra, progress, move |guest, store| {
            Box::pin(async move {
                guest
                    .defender_endpoint_actions()
                    .call_quarantine(store, &request)
                    .await
            })
        })
        .await
    }
}

impl<T> Outcome<T> {
    /// The same outcome with its answer mapped, what the host saw kept.
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        Outcome {
            result: self.result.map(f),
            denials: self.denials,
            requests_sent: self.requests_sent,
            connection_errors: self.connection_errors,
        }
    }
}
