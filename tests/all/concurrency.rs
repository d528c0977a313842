//! Many tenants at once through one runtime: 50 tenants × 20 actions with small budgets. Every
//! action ends with an outcome, no tenant's API sees more calls than its budget, and no token
//! reaches another tenant's API.

use defender_host::credentials::Secret;
use defender_host::credentials::StaticToken;
use defender_host::outbound::ApiOrigin;
use defender_host::rate_limit::Budget;
use defender_host::{ActionError, Tenant};
use defender_simulator::Simulator;
use integration_tests::{COMMENT, SHA1, component};
use std::sync::Arc;

const TENANTS: usize = 50;
const ACTIONS: usize = 20;
/// Fewer calls an hour than actions: the rest must end rate-limited, without being sent.
const BUDGET: Budget = Budget {
    per_minute: 100,
    per_hour: 12,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tenants_times_twenty_actions() {
    let mut simulators = Vec::new();
    let mut tenants = Vec::new();
    for t in 0..TENANTS {
        let token = format!("token-of-tenant-{t}");
        let simulator = Simulator::start(0, Some(&token)).await.unwrap();
        tenants.push(
            Tenant::new(
                ApiOrigin::parse(&simulator.base_url()).unwrap(),
                Arc::new(StaticToken::new(Secret::new(token))),
            )
            .with_budget(BUDGET),
        );
        simulators.push(simulator);
    }

    let mut calls = Vec::new();
    for (t, tenant) in tenants.iter().enumerate() {
        for a in 0..ACTIONS {
            let tenant = tenant.clone();
            let machine = format!("{t:020x}{a:020x}");
            calls.push(tokio::spawn(async move {
                component()
                    .stop_and_quarantine(&tenant, &machine, SHA1, COMMENT)
                    .await
            }));
        }
    }
    let mut created = vec![0usize; TENANTS];
    for (index, call) in calls.into_iter().enumerate() {
        let outcome = call
            .await
            .unwrap()
            .expect("every invocation ends with an outcome");
        match outcome.result {
            Ok(_) => created[index / ACTIONS] += 1,
            Err(ActionError::RateLimited(limited)) => assert!(limited.api.is_none()),
            Err(other) => panic!("unexpected outcome: {other:?}"),
        }
    }

    for (t, simulator) in simulators.iter().enumerate() {
        let requests = simulator.requests();
        assert_eq!(created[t], BUDGET.per_hour as usize, "tenant {t}");
        assert_eq!(requests.len(), created[t], "tenant {t} exceeded its budget");
        let own = format!("Bearer token-of-tenant-{t}");
        assert!(
            requests
                .iter()
                .all(|r| r.authorization.as_deref() == Some(own.as_str())),
            "a token crossed into tenant {t}"
        );
    }
}

/// Makes `calls` actions at once, one a device, each on a task of its own; all must succeed.
async fn all_succeed(runtime: &Arc<defender_host::Runtime>, tenant: &Tenant, calls: usize) {
    let calls: Vec<_> = (0..calls)
        .map(|i| {
            let (runtime, tenant) = (runtime.clone(), tenant.clone());
            tokio::spawn(async move {
                let machine = format!("{i:040x}");
                runtime
                    .stop_and_quarantine(&tenant, &machine, SHA1, COMMENT)
                    .await
            })
        })
        .collect();
    for call in calls {
        let outcome = call.await.unwrap().expect("the call runs");
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    }
}

/// A burst to one host waits for its turns instead of opening a connection per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_one_host_are_capped_and_share_connections() {
    use defender_simulator::Reply;
    use std::time::Duration;

    const CALLS: usize = 6;
    let runtime = Arc::new(
        defender_host::Runtime::builder()
            .max_requests_per_host(2)
            .build(defender_host::COMPONENT)
            .unwrap(),
    );
    let simulator = integration_tests::simulator().await;
    simulator.script(
        (0..CALLS).map(|_| Reply::Delayed(Duration::from_millis(200), Box::new(Reply::Create))),
    );
    let tenant = integration_tests::tenant(&simulator);
    all_succeed(&runtime, &tenant, CALLS).await;
    assert_eq!(simulator.requests().len(), CALLS);
    // Two at a time, over connections reused: the pool takes one back on a task of its own,
    // so a request can open one more while one is on its way back.
    let connections = simulator.connections();
    assert!(
        (2..CALLS).contains(&connections),
        "six concurrent requests to one host went over {connections} connections"
    );
}

/// Past `max_in_flight`, calls wait for a slot rather than fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_runtimes_slots_wait_their_turn() {
    use defender_simulator::Reply;
    use std::time::{Duration, Instant};

    // Three requests to one host may be in flight at once: only the one slot keeps them
    // apart.
    let runtime = Arc::new(
        defender_host::Runtime::builder()
            .max_in_flight(1)
            .max_requests_per_host(3)
            .build(defender_host::COMPONENT)
            .unwrap(),
    );
    let simulator = integration_tests::simulator().await;
    simulator
        .script((0..3).map(|_| Reply::Delayed(Duration::from_secs(1), Box::new(Reply::Create))));
    let tenant = integration_tests::tenant(&simulator);
    let started = Instant::now();
    all_succeed(&runtime, &tenant, 3).await;
    // One at a time: three answers that each take 1 s cannot all be in within 3 s (at once,
    // they would be in after about one).
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(simulator.requests().len(), 3);
}

/// Every device of a fan-out draws on the tenant's one budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_outs_devices_share_the_tenants_budget() {
    let simulator = integration_tests::simulator().await;
    // Two calls an hour: more than the component's 90-second deadline away for the others.
    let tenant = integration_tests::tenant_with(
        &simulator,
        Arc::new(StaticToken::new(Secret::new(integration_tests::TOKEN))),
        Budget::new(100, 2),
    );
    let machines: Vec<String> = (0..5).map(|i| format!("{i:040x}")).collect();
    let request =
        integration_tests::quarantine_request(defender_host::Targets::Machines(machines), None);
    let outcome = component()
        .quarantine(&tenant, request, None)
        .await
        .expect("the fan-out completes");
    let outcomes = outcome.result.expect("a fan-out").outcomes;
    assert_eq!(outcomes.len(), 5);
    let created = outcomes.iter().filter(|o| o.outcome.is_ok()).count();
    let limited = outcomes
        .iter()
        .filter(|o| matches!(&o.outcome, Err(ActionError::RateLimited(r)) if r.api.is_none()))
        .count();
    assert_eq!((created, limited), (2, 3));
    assert_eq!(simulator.requests().len(), 2);
}
