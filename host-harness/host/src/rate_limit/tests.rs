//! The budget's rules, run against each backend on real time with scaled windows (a "minute"
//! of 400 ms, an "hour" of 2 s): what holds in one process must hold in Redis. Redis's own
//! cases follow: hosts sharing one budget, Redis killed and restarted, answers it never gives.

use super::local::{ApiBudgets, MonotonicClock};
use super::{Api, Budget, PermitSource, Spans};
use std::sync::Arc;
use std::time::Duration;

const SPANS: Spans = Spans {
    minute: Duration::from_millis(400),
    hour: Duration::from_millis(2000),
};

/// A budget on one backend; the Redis server, if any, lives as long as it.
struct Backend {
    name: &'static str,
    source: Arc<dyn PermitSource>,
    #[cfg(feature = "redis")]
    _server: Option<local_redis::RedisServer>,
}

/// `budget` (and `overrides`) on each backend.
fn backends(budget: Budget, overrides: &[(Api, Budget)]) -> Vec<Backend> {
    let clock = Arc::new(MonotonicClock::default());
    let local = ApiBudgets::on_clock(budget, overrides, clock, SPANS);
    #[cfg_attr(not(feature = "redis"), expect(unused_mut))]
    let mut all = vec![Backend {
        name: "local",
        source: Arc::new(local),
        #[cfg(feature = "redis")]
        _server: None,
    }];
    #[cfg(feature = "redis")]
    {
        let server = local_redis::RedisServer::start();
        let redis = redis_budgets(&server, "rules", budget, overrides);
        all.push(Backend {
            name: "redis",
            source: Arc::new(redis),
            _server: Some(server),
        });
    }
    all
}

#[cfg(feature = "redis")]
fn redis_budgets(
    server: &local_redis::RedisServer,
    key: &str,
    budget: Budget,
    overrides: &[(Api, Budget)],
) -> super::RedisBudgets {
    let mut settings = super::RedisSettings::new(server.url(), key);
    // A loaded machine may take a while to answer; these tests are not about the timeout.
    settings.timeout = Duration::from_secs(2);
    super::RedisBudgets::over(settings, budget, overrides, SPANS).unwrap()
}

/// Grants asked for until one is denied: how many, and the wait of the denial.
async fn drain(source: &dyn PermitSource, api: Api) -> (u32, Duration) {
    let mut granted = 0;
    loop {
        match source.try_acquire(api).await {
            Ok(()) => granted += 1,
            Err(wait) => return (granted, wait),
        }
        assert!(granted < 10_000, "no budget denies");
    }
}

#[tokio::test]
async fn the_minute_window_slides() {
    for backend in backends(Budget::new(3, 100), &[]) {
        let source = &*backend.source;
        let (granted, wait) = drain(source, Api::CreateAction).await;
        assert_eq!(granted, 3, "{}", backend.name);
        assert!(
            wait > Duration::ZERO && wait <= SPANS.minute,
            "{}: {wait:?}",
            backend.name
        );
        assert!(!source.available_in(Api::CreateAction).await.is_zero());
        // All three were granted within moments: a window later, all are free.
        tokio::time::sleep(wait.max(SPANS.minute) + Duration::from_millis(150)).await;
        assert_eq!(source.available_in(Api::CreateAction).await, Duration::ZERO);
        let (again, _) = drain(source, Api::CreateAction).await;
        assert_eq!(again, 3, "{}: the window freed all three", backend.name);
    }
}

#[tokio::test]
async fn the_hour_window_holds_across_minutes() {
    for backend in backends(Budget::new(2, 5), &[]) {
        let source = &*backend.source;
        let mut granted = 0;
        let mut last_wait = Duration::ZERO;
        // Three "minutes": the minute would allow six; the hour allows five.
        for _ in 0..3 {
            let (got, wait) = drain(source, Api::GetAction).await;
            granted += got;
            last_wait = wait;
            tokio::time::sleep(SPANS.minute).await;
        }
        assert_eq!(granted, 5, "{}", backend.name);
        let (none, wait) = drain(source, Api::GetAction).await;
        assert_eq!(none, 0, "{}", backend.name);
        assert!(
            wait <= SPANS.hour && last_wait <= SPANS.hour,
            "{}",
            backend.name
        );
    }
}

#[tokio::test]
async fn each_api_has_a_budget_of_its_own() {
    let small = Budget::new(1, 10);
    for backend in backends(Budget::new(5, 50), &[(Api::ListActions, small)]) {
        let source = &*backend.source;
        assert_eq!(
            drain(source, Api::CreateAction).await.0,
            5,
            "{}",
            backend.name
        );
        // Creating spent nothing of polling's budget.
        assert_eq!(drain(source, Api::GetAction).await.0, 5, "{}", backend.name);
        assert_eq!(
            drain(source, Api::ListActions).await.0,
            1,
            "{}",
            backend.name
        );
        assert_eq!(source.budget(Api::ListActions), small);
        // A pause of one API leaves the others.
        source
            .pause(Api::CancelAction, Duration::from_secs(30))
            .await;
        let (none, wait) = drain(source, Api::CancelAction).await;
        assert_eq!(none, 0, "{}", backend.name);
        assert!(wait > Duration::from_secs(29), "{}: {wait:?}", backend.name);
        assert_eq!(
            drain(source, Api::FileMachines).await.0,
            5,
            "{}",
            backend.name
        );
    }
}

#[tokio::test]
async fn a_pause_blocks_until_it_ends_and_never_shortens() {
    for backend in backends(Budget::new(100, 1500), &[]) {
        let source = &*backend.source;
        source
            .pause(Api::CreateAction, Duration::from_millis(300))
            .await;
        source
            .pause(Api::CreateAction, Duration::from_millis(10))
            .await;
        let wait = source.try_acquire(Api::CreateAction).await.unwrap_err();
        assert!(
            wait > Duration::from_millis(200),
            "{}: {wait:?}",
            backend.name
        );
        tokio::time::sleep(wait + Duration::from_millis(20)).await;
        source.try_acquire(Api::CreateAction).await.unwrap();
    }
}

#[tokio::test]
async fn a_zero_budget_waits_a_whole_window() {
    for backend in backends(Budget::new(0, 10), &[(Api::GetAction, Budget::new(10, 0))]) {
        let source = &*backend.source;
        let minute = source.try_acquire(Api::CreateAction).await.unwrap_err();
        assert_eq!(minute, SPANS.minute, "{}", backend.name);
        let hour = source.try_acquire(Api::GetAction).await.unwrap_err();
        assert_eq!(hour, SPANS.hour, "{}", backend.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_interleaving_of_callers_exceeds_the_budget() {
    for backend in backends(Budget::new(100, 1500), &[]) {
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let source = backend.source.clone();
            callers.spawn(async move {
                let mut granted = 0u32;
                for _ in 0..50 {
                    granted += u32::from(source.try_acquire(Api::CreateAction).await.is_ok());
                }
                granted
            });
        }
        let granted: u32 = callers.join_all().await.into_iter().sum();
        assert_eq!(granted, 100, "{}", backend.name);
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use crate::rate_limit::RedisSettings;
    use local_redis::RedisServer;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hosts_with_one_key_share_one_budget_and_other_keys_are_apart() {
        let server = RedisServer::start();
        let budget = Budget::new(30, 100);
        let hosts: Vec<Arc<dyn PermitSource>> = (0..3)
            .map(|_| Arc::new(redis_budgets(&server, "shared", budget, &[])) as _)
            .collect();
        let mut callers = tokio::task::JoinSet::new();
        for host in &hosts {
            let host = host.clone();
            callers.spawn(async move { drain(&*host, Api::CreateAction).await.0 });
        }
        let granted: u32 = callers.join_all().await.into_iter().sum();
        assert_eq!(granted, 30, "three hosts, one budget");
        let other = redis_budgets(&server, "another application", budget, &[]);
        assert_eq!(drain(&other, Api::CreateAction).await.0, 30);
        // A 429 seen by one host pauses the others.
        hosts[0].pause(Api::GetAction, Duration::from_secs(5)).await;
        let wait = hosts[2].try_acquire(Api::GetAction).await.unwrap_err();
        assert!(wait > Duration::from_secs(4), "{wait:?}");
    }

    #[tokio::test]
    async fn without_redis_each_host_spends_its_share_counted_then_redis_again() {
        // A Redis that keeps its data across a kill, as one with an append-only file does;
        // windows long enough for the whole story.
        let mut server = RedisServer::try_start(true).expect("redis-server starts");
        let spans = Spans {
            minute: Duration::from_secs(5),
            hour: Duration::from_secs(20),
        };
        let mut settings = RedisSettings::new(server.url(), "outage");
        settings.fleet_size = 3;
        settings.timeout = Duration::from_secs(2);
        settings.recheck = Duration::from_millis(300);
        let host =
            super::super::RedisBudgets::over(settings, Budget::new(9, 100), &[], spans).unwrap();
        for _ in 0..2 {
            host.try_acquire(Api::CreateAction).await.unwrap();
        }
        assert_eq!(host.fallbacks(), 0);
        server.kill();
        // A third of the budget is this host's, and it spent two of them through Redis: one
        // more, decided here; each decision counted.
        let (alone, wait) = drain(&host, Api::CreateAction).await;
        assert_eq!((alone, host.fallbacks()), (1, 2), "a grant and a denial");
        assert!(wait <= spans.minute);
        assert!(!host.redis_in_use());
        server.resume();
        tokio::time::sleep(Duration::from_millis(350)).await;
        // Redis again, and for a minute this host's share too: it spent its three.
        let (none, _) = drain(&host, Api::CreateAction).await;
        assert_eq!((none, host.fallbacks()), (0, 2), "no decision made alone");
        assert!(host.redis_in_use());
        // Redis holds its two and the one granted alone: another host gets the six left.
        let mut settings = RedisSettings::new(server.url(), "outage");
        settings.timeout = Duration::from_secs(2);
        let other =
            super::super::RedisBudgets::over(settings, Budget::new(9, 100), &[], spans).unwrap();
        assert_eq!(drain(&other, Api::CreateAction).await.0, 6);
    }

    #[tokio::test]
    async fn redis_never_reached_still_grants_the_share() {
        let server = RedisServer::start();
        let port = server.port();
        drop(server);
        let mut settings = RedisSettings::new(format!("redis://127.0.0.1:{port}/0"), "gone");
        settings.fleet_size = 2;
        let host =
            super::super::RedisBudgets::over(settings, Budget::new(10, 100), &[], SPANS).unwrap();
        assert_eq!(drain(&host, Api::CreateAction).await.0, 5);
        assert!(host.fallbacks() >= 5);
    }

    #[tokio::test]
    async fn an_answer_the_script_never_gives_is_a_fallback_not_a_panic() {
        let server = RedisServer::start();
        // The grants' key made a string: the script fails with WRONGTYPE.
        let settings = RedisSettings::new(server.url(), "broken");
        let host =
            super::super::RedisBudgets::over(settings, Budget::new(4, 100), &[], SPANS).unwrap();
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        std::io::Write::write_all(&mut raw, b"SET {broken}:create-action not-a-set\r\n").unwrap();
        let mut ok = [0u8; 5];
        std::io::Read::read_exact(&mut raw, &mut ok).unwrap();
        assert_eq!(&ok, b"+OK\r\n");
        assert_eq!(drain(&host, Api::CreateAction).await.0, 4);
        assert!(host.fallbacks() >= 4);
        // A wait longer than any the script gives (a pause-until far in the future).
        let settings = RedisSettings::new(server.url(), "far");
        let host =
            super::super::RedisBudgets::over(settings, Budget::new(4, 100), &[], SPANS).unwrap();
        std::io::Write::write_all(&mut raw, b"SET {far}:get-action:paused 99999999999999\r\n")
            .unwrap();
        std::io::Read::read_exact(&mut raw, &mut ok).unwrap();
        assert_eq!(drain(&host, Api::GetAction).await.0, 4);
        assert!(host.fallbacks() >= 4);
    }

    #[test]
    fn a_url_that_is_not_redis_is_refused_without_repeating_it() {
        let settings = RedisSettings::new("http://user:hunter2@example", "x");
        let error = super::super::RedisBudgets::new(settings, Budget::default(), &[])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("redis-url"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
