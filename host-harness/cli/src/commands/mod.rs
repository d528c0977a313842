//! One module per command.

pub mod action;
pub mod bench;
pub mod component;
pub mod demo;
pub mod quarantine;
pub mod simulate;
