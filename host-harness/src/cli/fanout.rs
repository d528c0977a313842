//! The command line's fan-out: one invocation per device, run concurrently through the runtime.

use crate::{
    ActionError, File, MachineOutcome, Outcome, Prepared, ProgressSink, QuarantineRequest, Runtime,
    RuntimeError, Targets, Tenant,
};
use std::sync::Arc;
use tokio::task::JoinSet;

/// Carries a request out. Several devices get one invocation each, run concurrently (the
/// runtime bounds how many at once), once the component has checked the whole request; their
/// outcomes come back in input order. A device whose invocation the host had to stop gets an
/// error outcome of its own, so no device goes unreported.
pub async fn fan_out(
    runtime: Arc<Runtime>,
    tenant: Tenant,
    request: QuarantineRequest,
    progress: ProgressSink,
) -> Result<Outcome<Vec<MachineOutcome>>, RuntimeError> {
    let several = matches!(&request.targets, Targets::Machines(ids) if ids.len() > 1);
    if !several {
        return runtime.quarantine(&tenant, request, Some(progress)).await;
    }
    let prepared = runtime.prepare(&tenant, request.clone()).await?;
    let Ok(Prepared { machine_ids, sha1 }) = prepared.result else {
        return Ok(Outcome {
            result: prepared.result.map(|_| Vec::new()),
            denials: prepared.denials,
            requests_sent: 0,
            connection_errors: prepared.connection_errors,
        });
    };
    let mut calls = JoinSet::new();
    for (index, machine_id) in machine_ids.iter().enumerate() {
        let one = QuarantineRequest {
            targets: Targets::Machines(vec![machine_id.clone()]),
            file: File::Sha1(sha1.clone()),
            comment: request.comment.clone(),
            wait: request.wait,
        };
        let (runtime, tenant, progress) = (runtime.clone(), tenant.clone(), progress.clone());
        calls.spawn(async move {
            (
                index,
                runtime.quarantine(&tenant, one, Some(progress)).await,
            )
        });
    }
    let mut outcomes: Vec<Option<MachineOutcome>> = vec![None; machine_ids.len()];
    let (mut denials, mut connection_errors, mut requests_sent) = (Vec::new(), Vec::new(), 0);
    while let Some(joined) = calls.join_next().await {
        let Ok((index, result)) = joined else {
            continue;
        };
        let outcome = match result {
            Ok(mut outcome) => {
                denials.append(&mut outcome.denials);
                connection_errors.append(&mut outcome.connection_errors);
                requests_sent += outcome.requests_sent;
                match outcome.result {
                    Ok(mut one) => one.pop().map(|o| o.outcome),
                    Err(error) => Some(Err(error)),
                }
            }
            Err(stopped) => Some(Err(ActionError::Transport(format!(
                "the host stopped this device's call: {stopped}"
            )))),
        };
        outcomes[index] = outcome.map(|outcome| MachineOutcome {
            machine_id: machine_ids[index].clone(),
            outcome,
        });
    }
    let result = outcomes
        .into_iter()
        .zip(&machine_ids)
        .map(|(outcome, machine_id)| {
            outcome.unwrap_or_else(|| MachineOutcome {
                machine_id: machine_id.clone(),
                outcome: Err(ActionError::Transport(
                    "the host lost this device's call".into(),
                )),
            })
        })
        .collect();
    Ok(Outcome {
        result: Ok(result),
        denials,
        requests_sent,
        connection_errors,
    })
}
