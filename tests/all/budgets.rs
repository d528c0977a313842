//! A budget per API, as Microsoft's pages give each endpoint its own limit: the API's 429 on one
//! endpoint pauses only that endpoint's budget, in the host, for every invocation.

use defender_host::credentials::{Secret, StaticToken};
use defender_host::rate_limit::{Api, Budget};
use defender_host::{ActionError, MachineAction, Tenant};
use defender_simulator::{RateLimit, Simulator};
use integration_tests::{COMMENT, FLEET, SHA1, TOKEN, component, simulator, tenant_with};
use std::sync::Arc;
use std::time::Duration;

/// A simulator allowing `per_minute` calls a minute on each API, and a tenant whose own budget
/// is far larger: only the API's 429s can pause it.
async fn strict_api(per_minute: u32) -> (Simulator, Tenant) {
    let simulator = simulator().await;
    simulator.set_rate_limit(Some(RateLimit {
        per_minute,
        per_hour: 1500,
    }));
    let tenant = tenant_with(
        &simulator,
        Arc::new(StaticToken::new(Secret::new(TOKEN))),
        Budget::new(10_000, 10_000),
    );
    (simulator, tenant)
}

/// The tenant's first action, on the fleet's first device.
async fn first_action(tenant: &Tenant) -> MachineAction {
    component()
        .stop_and_quarantine(tenant, FLEET[0], SHA1, COMMENT)
        .await
        .unwrap()
        .result
        .expect("the first action")
}

fn throttled(simulator: &Simulator, api: &str) -> u64 {
    simulator
        .api_calls()
        .iter()
        .find(|c| c.api == api)
        .map_or(0, |c| c.throttled)
}

async fn until_throttled(simulator: &Simulator, api: &str) {
    for _ in 0..500 {
        if throttled(simulator, api) > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the simulator never throttled {api}");
}

#[tokio::test]
async fn a_429_on_creating_leaves_polling_running() {
    let (simulator, tenant) = strict_api(1).await;
    let created = first_action(&tenant).await;
    // The second POST of the minute gets the API's 429; the component waits it out.
    let second = tokio::spawn({
        let tenant = tenant.clone();
        async move {
            component()
                .stop_and_quarantine(&tenant, FLEET[1], SHA1, COMMENT)
                .await
        }
    });
    until_throttled(&simulator, "create-action").await;
    assert!(tenant.budgets.available_in(Api::CreateAction).await > Duration::from_secs(50));
    // Following the first action is not held up by creating's pause.
    let polled = tokio::time::timeout(
        Duration::from_secs(10),
        component().get_action(&tenant, &created.id),
    )
    .await
    .expect("polling is not paused")
    .unwrap()
    .result
    .expect("the action");
    assert_eq!(polled.id, created.id);
    assert_eq!(throttled(&simulator, "get-action"), 0);
    second.abort();
}

#[tokio::test]
async fn a_429_on_polling_leaves_creating_running() {
    let (simulator, tenant) = strict_api(2).await;
    let created = first_action(&tenant).await;
    let poll = || component().get_action(&tenant, &created.id);
    poll().await.unwrap().result.expect("a first poll");
    poll().await.unwrap().result.expect("a second poll");
    let third = tokio::spawn({
        let (tenant, id) = (tenant.clone(), created.id.clone());
        async move { component().get_action(&tenant, &id).await }
    });
    until_throttled(&simulator, "get-action").await;
    assert!(tenant.budgets.available_in(Api::GetAction).await > Duration::from_secs(50));
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        component().stop_and_quarantine(&tenant, FLEET[1], SHA1, COMMENT),
    )
    .await
    .expect("creating is not paused")
    .unwrap()
    .result;
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(throttled(&simulator, "create-action"), 0);
    third.abort();
}

#[tokio::test]
async fn the_hosts_own_budget_of_one_api_leaves_the_others() {
    let simulator = simulator().await;
    let tenant = tenant_with(
        &simulator,
        Arc::new(StaticToken::new(Secret::new(TOKEN))),
        Budget::new(100, 1),
    );
    let created = first_action(&tenant).await;
    let refused = component()
        .stop_and_quarantine(&tenant, FLEET[1], SHA1, COMMENT)
        .await
        .unwrap()
        .result;
    let Err(ActionError::RateLimited(limited)) = refused else {
        panic!("{refused:?}");
    };
    assert!(limited.api.is_none(), "the host's budget, not the API");
    let polled = component().get_action(&tenant, &created.id).await.unwrap();
    assert!(polled.result.is_ok(), "{:?}", polled.result);
    let posts = simulator
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1);
}
