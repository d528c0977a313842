//! `host-harness`: see the [`host_harness`] library, which holds the whole command line.

use host_harness::{Console, run};
use std::io::IsTerminal;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut console = Console {
        out: &mut out,
        err: &mut err,
        err_is_terminal: std::io::stderr().is_terminal(),
    };
    run(std::env::args_os(), &mut console).await
}
