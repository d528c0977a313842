//! What the sandbox gives a component, and what one tenant's invocation leaves for the next:
//! nothing. The probe (`guests/probe`) looks for both.

use defender_host::{ActionError, Runtime};
use integration_tests::{PROBE, simulator, tenant};

/// The probe's report: `steps` answer with a `transport` error naming what they found.
async fn report(
    runtime: &Runtime,
    tenant: &defender_host::Tenant,
    url: &str,
    steps: &str,
) -> String {
    let outcome = runtime
        .stop_and_quarantine(tenant, url, steps, "")
        .await
        .expect("the probe completes");
    match outcome.result {
        Err(ActionError::Transport(found)) => found,
        other => panic!("{steps}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_instance_shows_the_next_tenant_nothing_of_the_last() {
    // One slot, so the second invocation gets the memory the first one used.
    let runtime = Runtime::builder()
        .max_in_flight(1)
        .build(PROBE)
        .expect("the probe loads");
    let first = simulator().await;
    let second = simulator().await;
    let url = "http://127.0.0.1:9/";
    assert_eq!(
        report(&runtime, &tenant(&first), url, "mark").await,
        "marked"
    );
    assert_eq!(
        report(&runtime, &tenant(&second), url, "peek").await,
        "static marked: false, non-zero heap bytes: 0"
    );
    // `peek` does see a mark that is there: within one invocation, the static is marked.
    assert_eq!(
        report(&runtime, &tenant(&second), url, "mark,peek").await,
        "static marked: true, non-zero heap bytes: 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_has_no_environment_arguments_directories_or_sockets() {
    // The test process has an environment (PATH at least) and arguments: none reach the guest.
    assert!(std::env::vars_os().next().is_some());
    let simulator = simulator().await;
    let runtime = Runtime::builder().build(PROBE).expect("the probe loads");
    let url = format!("{}/", simulator.base_url());
    let found = report(&runtime, &tenant(&simulator), &url, "ambient").await;
    assert!(
        found.starts_with("environment 0, arguments 0, directories 0, tcp refused"),
        "{found}"
    );
    assert_eq!(
        simulator.connections(),
        0,
        "no socket reached the simulator"
    );
}
