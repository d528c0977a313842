//! One module per command.

pub mod bench;
pub mod component;
pub mod demo;
pub mod quarantine;
pub mod serve;
pub mod simulate;
pub mod status;
