//! Several hosts as one fleet, through a `redis-server` the test starts: one budget per API
//! shared by two hosts (no 429 from an API that enforces it), Redis killed and restarted under
//! a running service, and jobs and idempotency keys any `serve` process answers for.

use defender_host::rate_limit::{Api, Budget, PermitSource, RedisBudgets, RedisSettings};
use defender_simulator::RateLimit;
use defender_simulator::example::{MACHINE, SHA1};
use host_harness::serve::config::{JobsBackend, ServeConfig};
use host_harness::serve::jobs::redis::RedisJobs;
use host_harness::serve::jobs::{HostNotes, Job, JobStatus, JobStore};
use integration_tests::serve::{Served, call, key};
use integration_tests::{posts, quarantine_request, simulator, tenant};
use local_redis::RedisServer;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// A tenant on `simulator` spending `budgets`.
fn spending(
    simulator: &defender_simulator::Simulator,
    budgets: Arc<RedisBudgets>,
) -> defender_host::Tenant {
    tenant(simulator).with_name("contoso").with_budgets(budgets)
}

/// `n` device IDs.
fn devices(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{i:040x}")).collect()
}

/// A host's budgets in `redis` under `key`: `per_hour` calls an hour to each API (a device
/// past it would wait longer than the component's 90-second deadline, so the host refuses it
/// at once), `fleet_size` hosts.
fn shared(redis: &RedisServer, key: &str, per_hour: u32, fleet_size: u32) -> Arc<RedisBudgets> {
    let mut settings = RedisSettings::new(redis.url(), key);
    settings.fleet_size = fleet_size;
    // A loaded machine may take a while to answer; these tests are not about the timeout.
    settings.timeout = Duration::from_secs(2);
    Arc::new(RedisBudgets::new(settings, Budget::new(100, per_hour), &[]).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_one_budget_and_the_api_never_says_429() {
    let redis = RedisServer::start();
    let simulator = simulator().await;
    // The API's own limit, as strict as the hosts' shared one.
    simulator.set_rate_limit(Some(RateLimit {
        per_minute: 100,
        per_hour: 4,
    }));
    let hosts = [
        shared(&redis, "fleet-a", 4, 2),
        shared(&redis, "fleet-a", 4, 2),
    ];
    let mut created = 0;
    let mut limited = 0;
    for (host, ids) in hosts.iter().zip([devices(3), devices(6).split_off(3)]) {
        let tenant = spending(&simulator, host.clone());
        let request = quarantine_request(defender_host::Targets::Machines(ids), None);
        let outcome = integration_tests::component()
            .quarantine(&tenant, request, None)
            .await
            .unwrap();
        for device in outcome.result.unwrap().outcomes {
            match device.outcome {
                Ok(_) => created += 1,
                Err(defender_host::ActionError::RateLimited(r)) => {
                    assert!(r.api.is_none(), "the host refused it, not the API: {r:?}");
                    limited += 1;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
    }
    assert_eq!((created, limited), (4, 2), "one budget of 4 for both hosts");
    let create = simulator
        .api_calls()
        .into_iter()
        .find(|c| c.api == "create-action")
        .unwrap();
    assert_eq!((create.answered, create.throttled), (4, 0));
    assert_eq!(posts(&simulator), 4);
    assert!(hosts.iter().all(|h| h.fallbacks() == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_keeps_serving_while_redis_is_away_then_shares_again() {
    // A Redis that keeps its data across the kill, as one with an append-only file does.
    let mut redis = RedisServer::try_start(true).expect("redis-server starts");
    let simulator = simulator().await;
    let budgets = shared(&redis, "fleet-b", 10, 2);
    let tenants = vec![("contoso".to_owned(), spending(&simulator, budgets.clone()))];
    let config = ServeConfig {
        keys: vec![key("tines", "s", &["contoso"], true)],
        ..ServeConfig::default()
    };
    let served = Served::start(config, tenants).await;
    let quarantine = |machines: Vec<String>| {
        let url = format!("{}/v1/tenants/contoso/quarantine?wait=true", served.url);
        let body = json!({"machineIds": machines, "sha1": SHA1, "comment": "c"}).to_string();
        async move {
            call(
                "POST",
                &url,
                &[
                    ("authorization", "Bearer s"),
                    ("content-type", "application/json"),
                ],
                &body,
            )
            .await
        }
    };
    let created = |job: &serde_json::Value| {
        job["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["action"].is_object())
            .count()
    };
    let first = quarantine(devices(2)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(created(&first.json()), 2);
    redis.kill();
    // Its share is 5 of 10, and it spent 2 through Redis: 3 more, decided here.
    let alone = quarantine(devices(6).split_off(2)).await;
    assert_eq!(alone.status, 200, "{}", alone.body);
    assert_eq!(created(&alone.json()), 3, "{}", alone.body);
    let limited = alone.json()["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["error"]["kind"] == "rate-limited")
        .count();
    assert_eq!(limited, 1, "{}", alone.body);
    assert!(
        budgets.fallbacks() >= 4,
        "each decision counted: {}",
        budgets.fallbacks()
    );
    let metrics = call(
        "GET",
        &format!("{}/metrics", served.url),
        &[("authorization", "Bearer s")],
        "",
    )
    .await;
    assert!(
        metrics
            .body
            .contains("defender_budget_fallbacks_total{budget=\"fleet-b\"}"),
        "{}",
        metrics.body
    );
    redis.resume();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Redis again. This host spent its share (two through Redis, three alone): for a minute
    // after the outage it keeps to it, and tells Redis the three. Another host gets the rest.
    let before = budgets.fallbacks();
    let again = quarantine(devices(20).split_off(10)).await;
    assert_eq!(created(&again.json()), 0, "{}", again.body);
    assert_eq!(
        budgets.fallbacks(),
        before,
        "no decision made alone once Redis answered"
    );
    assert!(budgets.redis_in_use());
    let other = shared(&redis, "fleet-b", 10, 2);
    let mut granted = 0;
    while other.try_acquire(Api::CreateAction).await.is_ok() {
        granted += 1;
    }
    assert_eq!(granted, 5, "10 in all, 5 spent by the first host");
    assert_eq!(posts(&simulator), 5);
}

/// Two services with their jobs in one Redis.
async fn two_services(
    redis: &RedisServer,
    grace: Duration,
) -> (defender_simulator::Simulator, Served, Served) {
    let simulator = simulator().await;
    let config = ServeConfig {
        jobs: JobsBackend::Redis(redis.url()),
        shutdown_grace: grace,
        keys: vec![key("tines", "s", &["contoso"], false)],
        ..ServeConfig::default()
    };
    let start = |config: ServeConfig| {
        Served::start(
            config,
            vec![(
                "contoso".to_owned(),
                tenant(&simulator).with_name("contoso"),
            )],
        )
    };
    let a = start(config.clone()).await;
    let b = start(config).await;
    (simulator, a, b)
}

const AUTH: (&str, &str) = ("authorization", "Bearer s");
const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_process_answers_for_a_job_and_honours_its_idempotency_key() {
    let redis = RedisServer::start();
    let (simulator, a, b) = two_services(&redis, Duration::from_secs(30)).await;
    let body = json!({"machineIds": [MACHINE], "sha1": SHA1, "comment": "c"}).to_string();
    let headers = [AUTH, JSON, ("idempotency-key", "retry-me")];
    let first = call(
        "POST",
        &format!("{}/v1/tenants/contoso/quarantine", a.url),
        &headers,
        &body,
    )
    .await;
    assert_eq!(first.status, 202, "{}", first.body);
    let id = first.json()["id"].as_str().unwrap().to_owned();
    // The engine's retry lands on the other process.
    let retry = call(
        "POST",
        &format!("{}/v1/tenants/contoso/quarantine", b.url),
        &headers,
        &body,
    )
    .await;
    assert_eq!(retry.json()["id"], id.as_str(), "{}", retry.body);
    let other = json!({"machineIds": [MACHINE], "sha1": SHA1, "comment": "another"}).to_string();
    let conflict = call(
        "POST",
        &format!("{}/v1/tenants/contoso/quarantine", b.url),
        &headers,
        &other,
    )
    .await;
    assert_eq!(conflict.status, 409, "{}", conflict.body);
    let mut job = serde_json::Value::Null;
    for _ in 0..100 {
        job = call("GET", &format!("{}/v1/jobs/{id}", b.url), &[AUTH], "")
            .await
            .json();
        if job["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["outcomes"][0]["machineId"], MACHINE);
    assert_eq!(posts(&simulator), 1, "the retry sent no second POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_process_died_is_lost_and_a_stopped_ones_is_interrupted() {
    let redis = RedisServer::start();
    let (simulator, a, b) = two_services(&redis, Duration::ZERO).await;
    // A job left running by a process that no longer beats.
    let store = RedisJobs::new(
        &redis.url(),
        Duration::from_secs(600),
        "a-dead-process".into(),
    )
    .unwrap();
    let dead = Job {
        id: "0123456789abcdef0123456789abcdef".into(),
        tenant: "contoso".into(),
        requested_by: "tines".into(),
        status: JobStatus::Running,
        created_at_ms: 1,
        finished_at_ms: None,
        sha1: SHA1.into(),
        owner: "a-dead-process".into(),
        outcomes: None,
        error: None,
        unlisted: None,
        progress: Vec::new(),
        notes: HostNotes::default(),
    };
    store.create(&dead, None).await.unwrap();
    let lost = call(
        "GET",
        &format!("{}/v1/jobs/{}", b.url, dead.id),
        &[AUTH],
        "",
    )
    .await;
    assert_eq!(lost.json()["status"], "lost", "{}", lost.body);
    // A job still waiting when its process stops, with no grace: recorded as interrupted,
    // with what it saw, and read through the other process.
    simulator.set_progression(defender_simulator::Progression::StayPending);
    let body = json!({"machineIds": [MACHINE], "sha1": SHA1, "comment": "c", "wait": {"timeoutSeconds": 600}}).to_string();
    let started = call(
        "POST",
        &format!("{}/v1/tenants/contoso/quarantine", a.url),
        &[AUTH, JSON],
        &body,
    )
    .await;
    let id = started.json()["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.stop().await;
    let job = call("GET", &format!("{}/v1/jobs/{id}", b.url), &[AUTH], "")
        .await
        .json();
    assert_eq!(job["status"], "interrupted", "{job}");
    assert_eq!(job["progress"][0]["machineId"], MACHINE);
    assert_eq!(job["progress"][0]["status"], "Pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_job_store_away_a_process_keeps_taking_jobs() {
    let mut redis = RedisServer::start();
    let (simulator, a, _b) = two_services(&redis, Duration::from_secs(30)).await;
    redis.kill();
    let body = json!({"machineIds": [MACHINE], "sha1": SHA1, "comment": "c"}).to_string();
    let url = format!("{}/v1/tenants/contoso/quarantine?wait=true", a.url);
    let answer = call("POST", &url, &[AUTH, JSON], &body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let id = answer.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(answer.json()["status"], "succeeded");
    // Kept by this process, which answers for it.
    let job = call("GET", &format!("{}/v1/jobs/{id}", a.url), &[AUTH], "").await;
    assert_eq!(
        (job.status, job.json()["id"].as_str()),
        (200, Some(id.as_str()))
    );
    assert_eq!(
        call("GET", &format!("{}/readyz", a.url), &[], "")
            .await
            .status,
        200
    );
    assert_eq!(posts(&simulator), 1);
    redis.resume();
}
