//! The stop-and-quarantine component for Microsoft Defender for Endpoint.
//!
//! `validate`, `request`, `response`, `machine_action`, `timestamp`, `retry`, `call`,
//! `operations`, `paging`, `fanout` and `waiting` decide everything and are plain Rust, tested
//! natively; `wasi` is the thin layer over wasi-http and the host's imports, and this file binds
//! the WIT exports to them.

mod call;
#[cfg(test)]
mod example;
mod fanout;
mod machine_action;
mod operations;
mod paging;
#[cfg(test)]
mod properties;
mod request;
mod response;
mod retry;
#[cfg(test)]
mod script;
mod timestamp;
mod validate;
mod waiting;
mod wasi;

/// Bindings generated from `wit/`.
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "defender",
        additional_derives: [PartialEq, Eq],
    });
}

use bindings::defender::endpoint::types::{ActionError, MachineAction};
use bindings::exports::defender::endpoint::actions::{
    FanOut, Guest, MachineOutcome, Prepared, QuarantineRequest, Wait,
};
use retry::RetryPolicy;
use validate::{ActionId, Comment, MachineId, Sha1};

struct Component;

impl Guest for Component {
    fn stop_and_quarantine(
        machine_id: String,
        sha1: String,
        comment: String,
    ) -> Result<MachineAction, ActionError> {
        let machine = MachineId::parse(&machine_id)?;
        let sha1 = Sha1::parse(&sha1)?;
        let comment = Comment::parse(&comment)?;
        operations::create(
            &mut wasi::Wasi,
            &machine,
            &sha1,
            &comment,
            &RetryPolicy::default(),
        )
        .map(|q| q.action)
    }

    fn quarantine(request: QuarantineRequest) -> Result<FanOut, ActionError> {
        fanout::quarantine(&mut wasi::Wasi, request)
    }

    fn await_actions(
        mut outcomes: Vec<MachineOutcome>,
        wait: Wait,
        comment: String,
    ) -> Vec<MachineOutcome> {
        let host = &mut wasi::Wasi;
        let started = call::Host::now_ms(host);
        let comment = Comment::parse(&comment).ok();
        waiting::wait_for_final(host, &mut outcomes, started, &wait, comment.as_ref());
        outcomes
    }

    fn prepare(request: QuarantineRequest) -> Result<Prepared, ActionError> {
        fanout::prepare(&request)
    }

    fn get_action(action_id: String) -> Result<MachineAction, ActionError> {
        let id = ActionId::parse(&action_id)?;
        operations::get_action(&mut wasi::Wasi, &id, &RetryPolicy::default())
    }

    fn cancel_action(action_id: String, comment: String) -> Result<MachineAction, ActionError> {
        let id = ActionId::parse(&action_id)?;
        let comment = Comment::parse(&comment)?;
        operations::cancel_action(&mut wasi::Wasi, &id, &comment, &RetryPolicy::default())
    }
}

bindings::export!(Component with_types_in bindings);
