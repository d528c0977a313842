//! The simulator's own models where the pages are silent: a listing that lags creation, an API
//! clock off the host's, and `Retry-After` as an HTTP date.

use super::client::{TOKEN, calls, create, get, id_of, machine, run, send_as, start};
use crate::{Progression, RateLimit, RetryAfterFormat};
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime};

const HOUR: Duration = Duration::from_secs(3600);

/// The ID of every listed action.
fn listed_ids(page: &Value) -> Vec<String> {
    let value = page["value"].as_array().unwrap();
    value
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A time the API wrote.
fn written(action: &Value, member: &str) -> SystemTime {
    humantime::parse_rfc3339(action[member].as_str().unwrap()).unwrap()
}

/// Whether `at` lies between `from` and `to`, both moved `behind`, give or take the microsecond
/// the API's written times are truncated to.
fn shifted_within(at: SystemTime, from: SystemTime, to: SystemTime, behind: Duration) -> bool {
    at + Duration::from_micros(1) >= from - behind && at <= to - behind
}

#[test]
fn a_lagging_listing_hides_a_new_action_then_shows_it() {
    run(async {
        let simulator = start().await;
        let lag = Duration::from_secs(3);
        simulator.set_listing_lag(lag);
        let id = id_of(&create(&simulator, &machine(1)).await);
        let created = Instant::now();
        let listed = get(&simulator, "/api/machineactions").await;
        assert_eq!(listed.status, 200);
        assert_eq!(listed_ids(&listed.body), Vec::<String>::new());
        let polled = get(&simulator, &format!("/api/machineactions/{id}")).await;
        assert_eq!(polled.status, 200);
        tokio::time::sleep_until((created + lag + Duration::from_millis(100)).into()).await;
        let listed = get(&simulator, "/api/machineactions").await;
        assert_eq!(listed_ids(&listed.body), [id]);
    });
}

#[test]
fn the_clock_offset_shifts_written_times_and_filters() {
    run(async {
        let simulator = start().await;
        simulator.set_progression(Progression::StayPending);
        simulator.set_clock_offset(-3_600_000);
        let before = SystemTime::now();
        let action = create(&simulator, &machine(1)).await.body;
        let after = SystemTime::now();
        let created = written(&action, "creationDateTimeUtc");
        assert!(shifted_within(created, before, after, HOUR), "{action}");
        assert_eq!(
            action["lastUpdateDateTimeUtc"],
            action["creationDateTimeUtc"]
        );
        let id = action["id"].as_str().unwrap();

        let since = |at: SystemTime| {
            let literal = humantime::format_rfc3339_seconds(at);
            format!("/api/machineactions?$filter=creationDateTimeUtc+ge+{literal}")
        };
        let minute = Duration::from_secs(60);
        // By the host's clock the action is an hour old; by the API's, new.
        let by_host = get(&simulator, &since(before - minute)).await;
        assert_eq!(by_host.status, 200);
        assert_eq!(listed_ids(&by_host.body), Vec::<String>::new());
        let by_api = get(&simulator, &since(before - HOUR - minute)).await;
        assert_eq!(listed_ids(&by_api.body), [id]);

        let before = SystemTime::now();
        let body = json!({"Comment": "stop"}).to_string();
        let cancel = format!("/api/machineactions/{id}/cancel");
        let cancelled = send_as(&simulator, TOKEN, "POST", &cancel, &body)
            .await
            .body;
        let after = SystemTime::now();
        for member in ["cancellationDateTimeUtc", "lastUpdateDateTimeUtc"] {
            let at = written(&cancelled, member);
            assert!(
                shifted_within(at, before, after, HOUR),
                "{member}: {cancelled}"
            );
        }
    });
}

#[test]
fn settling_keeps_the_real_time_whatever_the_offset() {
    run(async {
        let simulator = start().await;
        let after = Duration::from_millis(1000);
        simulator.set_progression(Progression::Settle {
            after,
            final_status: "Succeeded".into(),
        });
        simulator.set_clock_offset(2 * 3_600_000);
        let before = SystemTime::now();
        let action = create(&simulator, &machine(1)).await;
        let created = Instant::now();
        let ahead = written(&action.body, "creationDateTimeUtc");
        assert!(ahead >= before + 2 * HOUR, "{}", action.body);
        let path = format!("/api/machineactions/{}", id_of(&action));
        assert_ne!(get(&simulator, &path).await.body["status"], "Succeeded");
        tokio::time::sleep_until((created + after + Duration::from_millis(100)).into()).await;
        assert_eq!(get(&simulator, &path).await.body["status"], "Succeeded");
    });
}

#[test]
fn retry_after_as_an_http_date_is_never_early() {
    run(async {
        let simulator = start().await;
        simulator.set_rate_limit(Some(RateLimit {
            per_minute: 1,
            per_hour: 1500,
        }));
        simulator.set_retry_after_format(RetryAfterFormat::HttpDate);
        assert_eq!(get(&simulator, "/api/machineactions").await.status, 200);
        let sent = SystemTime::now();
        let refused = get(&simulator, "/api/machineactions").await;
        let received = SystemTime::now();
        assert_eq!(refused.status, 429);
        let message = refused.body["error"]["message"].as_str().unwrap();
        let seconds: u64 = message
            .strip_prefix("Rate limit is exceeded. Try again in ")
            .and_then(|rest| rest.strip_suffix(" seconds."))
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&seconds), "{seconds}");
        let date = refused.header("retry-after").unwrap();
        assert!(date.ends_with(" GMT"), "{date}");
        let due = httpdate::parse_http_date(date).unwrap();
        assert!(due >= sent + Duration::from_secs(seconds), "{date}");
        assert!(due <= received + Duration::from_secs(seconds + 1), "{date}");
        simulator.set_retry_after_format(RetryAfterFormat::Seconds);
        let refused = get(&simulator, "/api/machineactions").await;
        let seconds: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&seconds), "{seconds}");
        assert_eq!(calls(&simulator, "list-actions"), (1, 2));
    });
}
