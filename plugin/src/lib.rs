//! The stop-and-quarantine component for Microsoft Defender for Endpoint.
//!
//! `validate`, `request`, `response`, `machine_action`, `retry` and `call` decide everything and
//! are plain Rust, tested natively; `wasi` is the thin layer over wasi-http and the host's
//! imports, and this file binds the WIT exports to them.

mod call;
mod machine_action;
mod request;
mod response;
mod retry;
mod validate;
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
use bindings::exports::defender::endpoint::actions::Guest;

struct Component;

impl Guest for Component {
    fn stop_and_quarantine(
        machine_id: String,
        sha1: String,
        comment: String,
    ) -> Result<MachineAction, ActionError> {
        let machine = validate::MachineId::parse(&machine_id)?;
        let sha1 = validate::Sha1::parse(&sha1)?;
        let comment = validate::Comment::parse(&comment)?;
        let request = request::stop_and_quarantine(&machine, &sha1, &comment);
        call::perform(&mut wasi::Wasi, &request, &retry::RetryPolicy::default())
    }
}

bindings::export!(Component with_types_in bindings);
