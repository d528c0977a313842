//! Each per-call limit stops a hostile component with an error that names it, while a good
//! tenant's actions go on beside it; waits in the host do not count as CPU.

use crate::hostile_probe::{
    HOSTILE_CPU, a_good_tenant_is_served_while, api, beside_a_good_tenant, hostile_limits, limit,
};
use defender_host::credentials::{Secret, StaticToken};
use defender_host::limits::Limits;
use defender_host::rate_limit::Budget;
use defender_host::{
    ActionError, COMPONENT, File, LimitExceeded, ProgressUpdate, QuarantineRequest, Runtime,
    RuntimeError, Targets, Wait,
};
use integration_tests::{
    COMMENT, FLEET, MACHINE, PROBE, SHA1, TOKEN, component, simulator, tenant, tenant_with,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_stopped_by_the_cpu_limit() {
    let run = beside_a_good_tenant(api, "spin", hostile_limits()).await;
    assert_eq!(limit(run.result), LimitExceeded::Cpu(HOSTILE_CPU));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_tenant_is_served_while_another_spins() {
    a_good_tenant_is_served_while("spin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_tenant_is_served_while_another_floods_the_host_with_calls() {
    a_good_tenant_is_served_while("fields-flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_tenant_is_served_while_another_sleeps() {
    a_good_tenant_is_served_while("sleep").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_memory_growth_is_stopped_by_the_memory_limit() {
    let run = beside_a_good_tenant(api, "grow", hostile_limits()).await;
    assert_eq!(limit(run.result), LimitExceeded::Memory(8 * 1024 * 1024));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_ever_is_stopped_by_the_wall_clock_not_the_cpu_limit() {
    // A sleep costs no CPU: a CPU budget well past the wall clock cannot be what stops it.
    stopped_at_the_wall_clock("sleep", Duration::from_secs(5)).await;
}

/// The probe's `step`, with `cpu` to spend, ends at a wall clock of 1.5 s, while the good
/// tenant's calls are all done.
async fn stopped_at_the_wall_clock(step: &str, cpu: Duration) {
    let limits = Limits {
        cpu,
        wall_clock: Duration::from_millis(1500),
        ..hostile_limits()
    };
    let run = beside_a_good_tenant(api, step, limits).await;
    assert_eq!(
        limit(run.result),
        LimitExceeded::WallClock(Duration::from_millis(1500))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_without_limits_of_its_own_gets_the_runtimes() {
    let cpu = Duration::from_millis(200);
    let runtime = Runtime::new(
        PROBE,
        Limits {
            cpu,
            ..Limits::default()
        },
    )
    .expect("the probe loads");
    let simulator = simulator().await;
    let tenant = tenant(&simulator);
    assert_eq!(tenant.limits, None);
    let result = runtime
        .stop_and_quarantine(&tenant, "http://127.0.0.1:9/", "spin", "")
        .await;
    assert_eq!(limit(result), LimitExceeded::Cpu(cpu));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_requests_are_stopped_by_the_request_limit() {
    let run = beside_a_good_tenant(api, "credential,flood", hostile_limits()).await;
    assert_eq!(limit(run.result), LimitExceeded::Requests(50));
    assert!(run.hostile.requests().is_empty(), "no request had a permit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_host_call_is_stopped_by_the_host_call_limit() {
    let run = beside_a_good_tenant(api, "big-call", hostile_limits()).await;
    assert_eq!(
        limit(run.result),
        LimitExceeded::HostcallBytes(Limits::default().hostcall_bytes)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoarding_resources_is_stopped_by_the_resource_limit() {
    let run = beside_a_good_tenant(api, "hoard", hostile_limits()).await;
    assert_eq!(
        limit(run.result),
        LimitExceeded::Resources(Limits::default().resources)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_waiting_in_the_host_is_not_charged_as_cpu() {
    // `doze` waits 3 s in the host; charged as CPU, it would pass the 0.5 s budget six times
    // over, far more than a descheduled thread could add.
    let limits = Limits {
        cpu: Duration::from_millis(500),
        wall_clock: Duration::from_secs(10),
        ..hostile_limits()
    };
    let run = beside_a_good_tenant(api, "doze,credential,permit", limits).await;
    let outcome = run
        .result
        .expect("a 3 s wait in the host is within a 0.5 s CPU budget");
    // The probe reports the status it got: the simulator's 201.
    assert!(
        matches!(&outcome.result, Err(ActionError::Upstream(api)) if api.status == 201),
        "{:?}",
        outcome.result
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_larger_than_the_limit_ends_the_call() {
    let simulator = simulator().await;
    simulator.script([defender_simulator::Reply::Oversized {
        status: 201,
        bytes: 64 * 1024,
    }]);
    let mut tenant = tenant(&simulator);
    tenant.limits = Some(Limits {
        max_response_bytes: 4096,
        ..Limits::default()
    });
    let result = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, "c")
        .await;
    assert!(
        matches!(
            result,
            Err(RuntimeError::Limit(LimitExceeded::ResponseBytes(4096)))
        ),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_in_wasm_is_stopped_at_the_wall_clock_even_with_cpu_to_spare() {
    stopped_at_the_wall_clock("spin", Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_of_synchronous_host_calls_is_charged_as_cpu() {
    // `fields-flood` spends nearly all its time in the host: counting only the guest's own
    // execution, it would run into the wall clock instead.
    for steps in ["random-flood", "progress-flood", "fields-flood"] {
        let run = beside_a_good_tenant(api, steps, hostile_limits()).await;
        assert_eq!(
            limit(run.result),
            LimitExceeded::Cpu(HOSTILE_CPU),
            "{steps}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_more_randomness_than_the_component_needs_ends_the_call() {
    let run = beside_a_good_tenant(api, "random-4k", hostile_limits()).await;
    let Err(RuntimeError::Trap(error)) = run.result else {
        panic!("expected a trap, got {:?}", run.result);
    };
    assert!(
        format!("{error:#}").contains("exceeds limit 1024"),
        "{error:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_cap_leaves_the_runtimes_other_slots_to_others() {
    let runtime = Runtime::builder()
        .max_in_flight(4)
        .build(PROBE)
        .expect("the probe loads");
    let hostile_simulator = simulator().await;
    let mut hostile = tenant(&hostile_simulator).with_max_concurrent_invocations(2);
    hostile.limits = Some(Limits {
        wall_clock: Duration::from_secs(3),
        ..Limits::default()
    });
    let sleepers: Vec<_> = (0..4)
        .map(|_| {
            let (runtime, hostile) = (runtime.clone(), hostile.clone());
            tokio::spawn(async move {
                runtime
                    .stop_and_quarantine(&hostile, "http://127.0.0.1:9/", "sleep", "")
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let good_simulator = simulator().await;
    let good = tenant(&good_simulator);
    let url = crate::hostile_probe::api_of(&good_simulator);
    let outcome = runtime
        .stop_and_quarantine(&good, &url, "credential,permit", "")
        .await
        .expect("the good tenant's call runs");
    assert!(outcome.denials.is_empty(), "{:?}", outcome.denials);
    assert!(
        sleepers.iter().all(|s| !s.is_finished()),
        "the good tenant got a slot while the hostile one was still sleeping"
    );
    for sleeper in sleepers {
        let _ = sleeper.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_waiting_for_its_budget_leaves_the_runtimes_slot_to_others() {
    let runtime = Runtime::builder()
        .max_in_flight(1)
        .build(COMPONENT)
        .expect("the component loads");
    let spent_simulator = simulator().await;
    let mut spent = tenant_with(
        &spent_simulator,
        Arc::new(StaticToken::new(Secret::new(TOKEN))),
        Budget {
            per_minute: 1,
            per_hour: 1500,
        },
    );
    spent.limits = Some(Limits {
        wall_clock: Duration::from_secs(150),
        ..Limits::default()
    });
    let first = runtime
        .stop_and_quarantine(&spent, MACHINE, SHA1, COMMENT)
        .await
        .expect("the first call runs");
    assert!(first.result.is_ok(), "{:?}", first.result);
    // The tenant's next permit is a minute away: the component would sleep for it.
    let waiting = {
        let (runtime, spent) = (runtime.clone(), spent.clone());
        tokio::spawn(async move {
            runtime
                .stop_and_quarantine(&spent, FLEET[1], SHA1, COMMENT)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let good_simulator = simulator().await;
    let outcome = runtime
        .stop_and_quarantine(&tenant(&good_simulator), MACHINE, SHA1, COMMENT)
        .await
        .expect("the good tenant's call runs");
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert!(
        !waiting.is_finished(),
        "the good tenant got the only slot only once the waiting tenant was done"
    );
    assert_eq!(spent_simulator.requests().len(), 1, "nothing sent early");
    waiting.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_nobody_reads_gives_its_turn_back_after_the_io_timeout() {
    let runtime = Runtime::builder()
        .max_requests_per_host(1)
        .build(PROBE)
        .expect("the probe loads");
    let simulator = simulator().await;
    let mut hoarder = tenant(&simulator);
    hoarder.limits = Some(Limits {
        io_timeout: Duration::from_millis(500),
        wall_clock: Duration::from_secs(20),
        ..Limits::default()
    });
    let url = crate::hostile_probe::api_of(&simulator);
    let holding = {
        let (runtime, hoarder, url) = (runtime.clone(), hoarder.clone(), url.clone());
        tokio::spawn(async move {
            runtime
                .stop_and_quarantine(&hoarder, &url, "credential,permit,hold", "")
                .await
        })
    };
    while simulator.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let other = tenant(&simulator);
    let another_device = url.replace(&"0".repeat(40), &"1".repeat(40));
    let outcome = runtime
        .stop_and_quarantine(&other, &another_device, "credential,permit", "")
        .await
        .expect("the other call runs");
    assert!(
        matches!(&outcome.result, Err(ActionError::Upstream(answer)) if answer.status == 201),
        "{:?}",
        outcome.result
    );
    assert!(
        !holding.is_finished(),
        "the hoarder still sits on its answer"
    );
    holding.abort();
}

fn probe_request(targets: Targets, step: &str) -> QuarantineRequest {
    QuarantineRequest {
        targets,
        file: File::Sha1(SHA1.into()),
        comment: step.into(),
        wait: None,
        max_machines: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_progress_reaches_the_sink_at_a_bounded_rate() {
    let simulator = simulator().await;
    let tenant = tenant(&simulator);
    for (step, most_per_second) in [("progress-burst", 1000), ("progress-long-ids", 0)] {
        let heard = Arc::new(AtomicUsize::new(0));
        let sink = {
            let heard = heard.clone();
            Arc::new(move |_: &ProgressUpdate| {
                heard.fetch_add(1, Ordering::SeqCst);
            })
        };
        let started = Instant::now();
        let outcome = integration_tests::probe()
            .quarantine(
                &tenant,
                probe_request(Targets::Machines(vec![MACHINE.into()]), step),
                Some(sink),
            )
            .await
            .expect("the probe completes");
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        // A bound, not a speed: however long the 5000 reports took, at most 1000 a second
        // (and none with oversized IDs) reach the sink.
        let seconds = usize::try_from(started.elapsed().as_secs()).unwrap_or(usize::MAX);
        let heard = heard.load(Ordering::SeqCst);
        assert!(
            heard <= most_per_second * (seconds + 1),
            "{step}: {heard} updates in {seconds} s"
        );
        if most_per_second > 0 {
            assert!(heard > 0, "{step}: the sink heard nothing");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_prepare_was_not_asked_for_are_never_acted_on() {
    let simulator = simulator().await;
    let asked = Targets::Machines(vec![MACHINE.into(), FLEET[1].into()]);
    let result = integration_tests::probe()
        .quarantine(
            &tenant(&simulator),
            probe_request(asked, "foreign-devices"),
            None,
        )
        .await;
    let Err(RuntimeError::Contract(why)) = result else {
        panic!("expected a broken contract: {result:?}");
    };
    assert!(why.contains(&"f".repeat(40)), "{why}");
    assert!(simulator.requests().is_empty(), "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_answers_for_other_devices_keeps_the_outcomes_it_was_given() {
    let simulator = simulator().await;
    let asked = Targets::Machines(vec![MACHINE.into(), FLEET[1].into()]);
    let request = QuarantineRequest {
        wait: Some(Wait {
            timeout_ms: 1_000,
            cancel_on_timeout: false,
        }),
        ..probe_request(asked, "other-devices")
    };
    let outcome = integration_tests::probe()
        .quarantine(&tenant(&simulator), request, None)
        .await
        .expect("the call completes");
    let why = outcome.wait_stopped.expect("the broken answer is reported");
    assert!(why.contains("other devices"), "{why}");
    let devices: Vec<String> = outcome
        .result
        .expect("the outcomes")
        .outcomes
        .into_iter()
        .map(|o| o.machine_id)
        .collect();
    assert_eq!(devices, [MACHINE, FLEET[1]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sitting_on_answers_holds_only_its_share_of_a_shared_hosts_turns() {
    let runtime = Runtime::builder()
        .max_requests_per_host(4)
        .build(PROBE)
        .expect("the probe loads");
    let simulator = simulator().await;
    // Two tenants of one API host. The hoarder sits on four answers, but holds at most two of
    // the host's four turns; its calls end at their wall clock, long before the I/O timeout
    // would take a turn back.
    let mut hoarder = tenant(&simulator).with_max_requests_in_flight(2);
    hoarder.limits = Some(Limits {
        io_timeout: Duration::from_secs(60),
        wall_clock: Duration::from_secs(5),
        ..Limits::default()
    });
    let url = crate::hostile_probe::api_of(&simulator);
    let holding: Vec<_> = (0..4)
        .map(|_| {
            let (runtime, hoarder, url) = (runtime.clone(), hoarder.clone(), url.clone());
            tokio::spawn(async move {
                runtime
                    .stop_and_quarantine(&hoarder, &url, "credential,permit,hold", "")
                    .await
            })
        })
        .collect();
    while simulator.requests().len() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let other = tenant(&simulator);
    let another_device = url.replace(&"0".repeat(40), &"1".repeat(40));
    let outcome = runtime
        .stop_and_quarantine(&other, &another_device, "credential,permit", "")
        .await
        .expect("the other call runs");
    assert!(
        matches!(&outcome.result, Err(ActionError::Upstream(answer)) if answer.status == 201),
        "{:?}",
        outcome.result
    );
    assert!(
        holding.iter().all(|h| !h.is_finished()),
        "the other tenant got a turn only once the hoarder's calls ended"
    );
    for hold in holding {
        hold.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_needing_more_table_elements_or_instances_than_allowed_is_stopped() {
    let simulator = simulator().await;
    for (limits, expected) in [
        (
            Limits {
                table_elements: 1,
                ..Limits::default()
            },
            LimitExceeded::TableElements(1),
        ),
        (
            Limits {
                instances: 1,
                ..Limits::default()
            },
            LimitExceeded::Instances(1),
        ),
    ] {
        let mut tenant = tenant(&simulator);
        tenant.limits = Some(limits);
        let result = component()
            .stop_and_quarantine(&tenant, MACHINE, SHA1, "c")
            .await;
        assert_eq!(limit(result), expected);
    }
    assert!(simulator.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_timeouts_cut_the_components_longer_ones_short() {
    let simulator = simulator().await;
    // The first POST is answered after 30 s; the component asks for 10 s to connect and 30 s
    // for the first byte, the tenant allows 1 s and 1 s: the host gives up after 2 s, the
    // component looks for the action (none), and sends again.
    simulator.script([defender_simulator::Reply::Delayed(
        Duration::from_secs(30),
        Box::new(defender_simulator::Reply::Create),
    )]);
    let mut tenant = tenant(&simulator);
    tenant.limits = Some(Limits {
        connect_timeout: Duration::from_secs(1),
        io_timeout: Duration::from_secs(1),
        ..Limits::default()
    });
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, "c")
        .await
        .expect("the call completes");
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    let posts = simulator
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 2, "the first POST was given up on, not waited for");
    assert!(
        outcome
            .connection_errors
            .iter()
            .any(|e| e.contains("did not answer within")),
        "{:?}",
        outcome.connection_errors
    );
}
