//! Each per-call limit stops a misbehaving component with an error that names it, while waits
//! in the host do not count as CPU.

use host_harness::limits::Limits;
use host_harness::{LimitExceeded, Runtime, RuntimeError};
use integration_tests::{MACHINE, PROBE, simulator, tenant};
use std::time::Duration;

fn probe_with(limits: Limits) -> Runtime {
    Runtime::new(PROBE, limits).expect("the probe loads")
}

async fn stopped_by(runtime: &Runtime, steps: &str) -> LimitExceeded {
    let simulator = simulator().await;
    match runtime
        .stop_and_quarantine(&tenant(&simulator), "http://127.0.0.1:9/", steps, "")
        .await
    {
        Err(error @ RuntimeError::Limit(limit)) => {
            assert!(error.to_string().contains("limit"), "{error}");
            limit
        }
        other => panic!("{steps}: expected a limit, got {other:?}"),
    }
}

#[tokio::test]
async fn an_endless_loop_hits_the_cpu_limit() {
    let cpu = Duration::from_millis(200);
    let runtime = probe_with(Limits {
        cpu,
        ..Limits::default()
    });
    assert_eq!(stopped_by(&runtime, "spin").await, LimitExceeded::Cpu(cpu));
}

#[tokio::test]
async fn endless_allocation_hits_the_memory_limit() {
    let runtime = probe_with(Limits {
        memory_bytes: 8 * 1024 * 1024,
        ..Limits::default()
    });
    assert_eq!(
        stopped_by(&runtime, "grow").await,
        LimitExceeded::Memory(8 * 1024 * 1024)
    );
}

#[tokio::test]
async fn a_long_wait_hits_the_wall_clock_limit_not_the_cpu_limit() {
    let wall_clock = Duration::from_millis(400);
    let runtime = probe_with(Limits {
        cpu: Duration::from_millis(100),
        wall_clock,
        ..Limits::default()
    });
    assert_eq!(
        stopped_by(&runtime, "sleep").await,
        LimitExceeded::WallClock(wall_clock)
    );
}

#[tokio::test]
async fn time_waiting_in_the_host_is_not_charged_as_cpu() {
    let runtime = probe_with(Limits {
        cpu: Duration::from_millis(100),
        ..Limits::default()
    });
    let simulator = simulator().await;
    let url = format!(
        "{}/api/machines/{MACHINE}/StopAndQuarantineFile",
        simulator.base_url()
    );
    let outcome = runtime
        .stop_and_quarantine(&tenant(&simulator), &url, "nap,credential,permit", "")
        .await
        .expect("a 0.3 s wait in the host is within a 0.1 s CPU budget");
    // The probe reports the status it got: the simulator's 201.
    assert!(
        matches!(&outcome.result, Err(host_harness::ActionError::Upstream(api)) if api.status == 201),
        "{:?}",
        outcome.result
    );
}

#[tokio::test]
async fn a_response_larger_than_the_limit_ends_the_call() {
    let simulator = simulator().await;
    simulator.script([host_harness::simulator::Reply::Oversized {
        status: 201,
        bytes: 64 * 1024,
    }]);
    let mut tenant = tenant(&simulator);
    tenant.limits = Some(Limits {
        max_response_bytes: 4096,
        ..Limits::default()
    });
    let result = integration_tests::component()
        .stop_and_quarantine(&tenant, MACHINE, integration_tests::SHA1, "c")
        .await;
    assert!(
        matches!(
            result,
            Err(RuntimeError::Limit(LimitExceeded::ResponseBytes(4096)))
        ),
        "{result:?}"
    );
}
