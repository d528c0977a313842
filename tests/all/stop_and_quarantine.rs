//! The real component in the real host against the simulator: the request on the wire, every
//! validation rule, every row of the API's error table, and the retries.

use defender_host::credentials::{Secret, StaticToken};
use defender_host::rate_limit::Api;
use defender_host::rate_limit::Budget;
use defender_host::{ActionError, ActionStatus, ApiError, MachineAction, Outcome};
use defender_simulator::Reply;
use integration_tests::{
    COMMENT, ExpiringToken, MACHINE, SHA1, TOKEN, assert_nothing_taken, component, guarded_tenant,
    simulator, tenant, tenant_with,
};
use std::sync::Arc;
use std::time::Duration;

async fn run(simulator: &defender_simulator::Simulator) -> Outcome<MachineAction> {
    component()
        .stop_and_quarantine(&tenant(simulator), MACHINE, SHA1, COMMENT)
        .await
        .expect("the call completes")
}

fn api_error(outcome: &Outcome<MachineAction>) -> &ApiError {
    let error = outcome.result.as_ref().expect_err("an error");
    error
        .api()
        .unwrap_or_else(|| panic!("not an API error: {error:?}"))
}

#[tokio::test]
async fn the_api_pages_example_creates_the_action() {
    let simulator = simulator().await;
    let outcome = run(&simulator).await;
    let action = outcome.result.expect("the action");
    assert_eq!(action.action_type.as_deref(), Some("StopAndQuarantineFile"));
    assert_eq!(action.status, ActionStatus::Pending);
    assert_eq!(action.machine_id.as_deref(), Some(MACHINE));
    assert_eq!(action.requestor_comment.as_deref(), Some(COMMENT));
    assert_eq!(action.related_file_info.unwrap().file_identifier, SHA1);
    assert_eq!(action.id.len(), 36);

    let requests = simulator.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        format!("/api/machines/{MACHINE}/StopAndQuarantineFile")
    );
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let body = String::from_utf8(request.body.clone()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"Comment": COMMENT, "Sha1": SHA1}).to_string()
    );
}

#[tokio::test]
async fn upper_case_input_is_normalised_before_sending() {
    let simulator = simulator().await;
    let outcome = component()
        .stop_and_quarantine(
            &tenant(&simulator),
            &MACHINE.to_uppercase(),
            &format!(" {} ", SHA1.to_uppercase()),
            COMMENT,
        )
        .await
        .unwrap();
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    let request = &simulator.requests()[0];
    assert!(request.path.contains(MACHINE));
    assert!(String::from_utf8_lossy(&request.body).contains(SHA1));
}

#[tokio::test]
async fn every_validation_rule_refuses_before_sending() {
    let simulator = simulator().await;
    let (tenant, tokens) = guarded_tenant(&simulator);
    let long_comment = "x".repeat(16 * 1024 + 1);
    let cases = [
        ("", SHA1, COMMENT, "machine-id"),
        (&MACHINE[..39], SHA1, COMMENT, "machine-id"),
        (
            "../../api/machineactions?x=1234567890123",
            SHA1,
            COMMENT,
            "machine-id",
        ),
        (
            "1e5bc9d7e413ddd7902c2932e418702b84d0cc0/",
            SHA1,
            COMMENT,
            "machine-id",
        ),
        (MACHINE, "", COMMENT, "sha1"),
        (MACHINE, "d41d8cd98f00b204e9800998ecf8427e", COMMENT, "sha1"),
        (
            MACHINE,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            COMMENT,
            "sha1",
        ),
        (
            MACHINE,
            "87662bc3d60e4200ceaf7aae249d1c343f4b83cz",
            COMMENT,
            "sha1",
        ),
        (MACHINE, SHA1, "", "comment"),
        (MACHINE, SHA1, " \n\t ", "comment"),
        (MACHINE, SHA1, &long_comment, "comment"),
    ];
    for (machine, sha1, comment, field) in cases {
        let outcome = component()
            .stop_and_quarantine(&tenant, machine, sha1, comment)
            .await
            .unwrap();
        match outcome.result {
            Err(ActionError::InvalidInput(invalid)) => {
                assert_eq!(invalid.field, field, "{machine:?} {sha1:?}");
            }
            other => panic!("{machine:?} {sha1:?}: expected invalid input, got {other:?}"),
        }
        assert_eq!(outcome.requests_sent, 0);
    }
    assert!(simulator.requests().is_empty());
    assert_nothing_taken(&tenant, &tokens).await;
}

#[tokio::test]
async fn md5_and_sha256_are_named_in_the_error() {
    let simulator = simulator().await;
    for (hash, name) in [
        ("d41d8cd98f00b204e9800998ecf8427e", "MD5"),
        (
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "SHA-256",
        ),
    ] {
        let outcome = component()
            .stop_and_quarantine(&tenant(&simulator), MACHINE, hash, COMMENT)
            .await
            .unwrap();
        let Err(ActionError::InvalidInput(invalid)) = outcome.result else {
            panic!("expected invalid input");
        };
        assert!(invalid.message.contains(name), "{}", invalid.message);
        assert!(
            invalid.message.contains("only SHA-1"),
            "{}",
            invalid.message
        );
    }
}

#[tokio::test]
async fn final_400s_report_code_message_and_correlation_id_without_retry() {
    for code in [
        "InvalidInput",
        "InvalidRequestBody",
        "InvalidHashValue",
        "MissingRequiredParameter",
        "BadRequest",
        "ODataError",
        "OsPlatformNotSupported",
        "ClientVersionNotSupported",
    ] {
        let simulator = simulator().await;
        simulator.script([Reply::error(400, code)]);
        let outcome = run(&simulator).await;
        assert!(
            matches!(outcome.result, Err(ActionError::Upstream(_))),
            "{code}"
        );
        let api = api_error(&outcome);
        assert_eq!(api.status, 400);
        assert_eq!(api.code.as_deref(), Some(code));
        assert_eq!(api.message, Some(format!("Simulated {code}")));
        assert_eq!(api.target.as_ref().map(String::len), Some(36));
        assert_eq!(simulator.requests().len(), 1, "{code} was retried");
    }
}

#[tokio::test]
async fn already_pending_with_no_matching_action_is_the_already_pending_error() {
    let simulator = simulator().await;
    simulator.script([Reply::Error {
        status: 400,
        code: "ActiveRequestAlreadyExists".into(),
        message: "Action is already in progress".into(),
    }]);
    let outcome = run(&simulator).await;
    assert!(matches!(
        outcome.result,
        Err(ActionError::AlreadyPending(_))
    ));
    assert_eq!(
        api_error(&outcome).message.as_deref(),
        Some("Action is already in progress")
    );
    // The component looked for a pending action for this device and file before giving up.
    let requests = simulator.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].method, "GET");
    assert!(requests[1].path.starts_with("/api/machineactions?$filter="));
}

#[tokio::test]
async fn forbidden_says_which_permissions_are_needed() {
    for code in ["Forbidden", "DisabledFeature", "DisallowedOperation"] {
        let simulator = simulator().await;
        simulator.script([Reply::error(403, code)]);
        let outcome = run(&simulator).await;
        let Err(ActionError::Forbidden(forbidden)) = &outcome.result else {
            panic!("{code}: {:?}", outcome.result);
        };
        assert!(
            forbidden
                .required_permissions
                .contains("Machine.StopAndQuarantine")
        );
        assert!(forbidden.required_permissions.contains("Machine.Read.All"));
        assert_eq!(forbidden.api.code.as_deref(), Some(code));
        assert_eq!(simulator.requests().len(), 1);
    }
}

#[tokio::test]
async fn not_found_is_not_retried() {
    for code in ["NotFound", "ResourceNotFound"] {
        let simulator = simulator().await;
        simulator.script([Reply::error(404, code)]);
        let outcome = run(&simulator).await;
        assert!(matches!(outcome.result, Err(ActionError::NotFound(_))));
        assert_eq!(api_error(&outcome).code.as_deref(), Some(code));
        assert_eq!(simulator.requests().len(), 1);
    }
}

#[tokio::test]
async fn the_simulators_own_404_for_an_unknown_path_is_reported() {
    let simulator = simulator().await;
    let outcome = component()
        .stop_and_quarantine(&tenant(&simulator), MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    assert!(outcome.result.is_ok());
    simulator.script([Reply::Error {
        status: 404,
        code: "ResourceNotFound".into(),
        message: format!("Sha1 {SHA1} was not found in machine {MACHINE}"),
    }]);
    let outcome = run(&simulator).await;
    assert!(
        api_error(&outcome)
            .message
            .as_deref()
            .unwrap()
            .contains("was not found in machine")
    );
}

#[tokio::test]
async fn throttling_waits_retry_after_then_succeeds() {
    let simulator = simulator().await;
    simulator.script([Reply::throttle(1)]);
    let tenant = tenant(&simulator);
    let started = std::time::Instant::now();
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(simulator.requests().len(), 2);
    assert_eq!(outcome.requests_sent, 2);
    // The wait happened: a retry sent at once would be back well within the second.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn throttling_beyond_the_deadline_is_rate_limited_with_the_apis_answer() {
    let simulator = simulator().await;
    simulator.script([Reply::throttle(3600)]);
    let tenant = tenant(&simulator);
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    let Err(ActionError::RateLimited(limited)) = outcome.result else {
        panic!("expected rate limited: {:?}", outcome.result);
    };
    // The API asked for an hour; the host pauses the tenant, and tells the component, at most
    // the limit (five minutes by default).
    assert_eq!(limited.retry_after_ms, 300_000);
    assert_eq!(
        limited.api.unwrap().code.as_deref(),
        Some("TooManyRequests")
    );
    // The whole tenant is paused: the next call does not even send.
    let next = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    assert!(matches!(next.result, Err(ActionError::RateLimited(_))));
    assert_eq!(simulator.requests().len(), 1);
}

#[tokio::test]
async fn an_exhausted_budget_sends_nothing() {
    let simulator = simulator().await;
    let budget = Budget {
        per_minute: 100,
        per_hour: 1,
    };
    let tenant = tenant_with(
        &simulator,
        Arc::new(defender_host::credentials::StaticToken::new(
            defender_host::credentials::Secret::new(TOKEN),
        )),
        budget,
    );
    tenant.budgets.try_acquire(Api::CreateAction).await.unwrap();
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    let Err(ActionError::RateLimited(limited)) = outcome.result else {
        panic!("expected rate limited");
    };
    assert!(limited.api.is_none());
    assert!(limited.retry_after_ms > 3_500_000);
    assert!(simulator.requests().is_empty());
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let simulator = simulator().await;
    simulator.script([
        Reply::error(503, "ServiceUnavailable"),
        Reply::error(500, "InternalServerError"),
        Reply::error(502, "BadGateway"),
    ]);
    let outcome = run(&simulator).await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(simulator.requests().len(), 4);
}

#[tokio::test]
async fn persistent_server_errors_give_up_with_the_last_answer() {
    let simulator = simulator().await;
    simulator.script((0..4).map(|_| Reply::error(504, "GatewayTimeout")));
    let outcome = run(&simulator).await;
    assert!(matches!(outcome.result, Err(ActionError::Upstream(_))));
    let api = api_error(&outcome);
    assert_eq!(
        (api.status, api.code.as_deref()),
        (504, Some("GatewayTimeout"))
    );
    assert_eq!(simulator.requests().len(), 4);
}

#[tokio::test]
async fn unauthorized_gets_one_fresh_credential() {
    let simulator = simulator().await;
    let tokens = Arc::new(ExpiringToken::default());
    let tenant = tenant_with(&simulator, tokens.clone(), Budget::default());
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(tokens.refreshes(), 1);
    let auth: Vec<_> = simulator
        .requests()
        .into_iter()
        .map(|r| r.authorization.unwrap())
        .collect();
    assert_eq!(
        auth,
        ["Bearer stale-token".to_string(), format!("Bearer {TOKEN}")]
    );
}

/// Hands out a token the API refuses, and fails when asked for a fresh one (Entra down).
struct RefreshFails;

impl defender_host::credentials::TokenSource for RefreshFails {
    fn token<'a>(
        &'a self,
        _http: &'a defender_host::transport::HttpClient,
        stale: Option<Secret>,
    ) -> defender_host::credentials::TokenFuture<'a> {
        Box::pin(async move {
            match stale {
                None => Ok(Secret::new("stale-token")),
                Some(_) => Err(defender_host::credentials::CredentialError(
                    "the token endpoint answered 503".into(),
                )),
            }
        })
    }
}

#[tokio::test]
async fn unauthorized_whose_refresh_fails_is_a_credentials_error() {
    let simulator = simulator().await;
    let tenant = tenant_with(&simulator, Arc::new(RefreshFails), Budget::default());
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    let Err(ActionError::Credentials(message)) = &outcome.result else {
        panic!("{:?}", outcome.result);
    };
    assert!(
        message.contains("the token endpoint answered 503"),
        "{message}"
    );
    assert!(!message.contains("stale-token"), "{message}");
    assert_eq!(simulator.requests().len(), 1, "not sent without a token");
}

#[tokio::test]
async fn unauthorized_twice_gives_up() {
    let simulator = simulator().await;
    simulator.script([
        Reply::error(401, "Unauthorized"),
        Reply::error(401, "Unauthorized"),
    ]);
    let outcome = run(&simulator).await;
    assert!(matches!(outcome.result, Err(ActionError::Unauthorized(_))));
    assert_eq!(api_error(&outcome).code.as_deref(), Some("Unauthorized"));
    assert_eq!(simulator.requests().len(), 2);
}

#[tokio::test]
async fn an_oversized_body_is_refused_not_read_whole() {
    let simulator = simulator().await;
    simulator.script([Reply::Oversized {
        status: 201,
        bytes: 8 * 1024 * 1024,
    }]);
    // The host ends a call whose answer passes 2 MiB: reading the 8 MiB whole and cutting it
    // afterwards would end in `RuntimeError::Limit`, not in an answer. (The host receives a
    // little ahead of what the component reads, so the limit is not the component's 1 MiB.)
    let mut tenant = tenant(&simulator);
    tenant.limits = Some(defender_host::limits::Limits {
        max_response_bytes: 2 * 1024 * 1024,
        ..defender_host::limits::Limits::default()
    });
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .expect("the component stops reading at its own cap");
    let api = api_error(&outcome);
    assert_eq!(api.status, 201);
    assert!(
        api.message.as_deref().unwrap().contains("exceeds"),
        "{api:?}"
    );
}

#[tokio::test]
async fn non_json_bodies_are_described() {
    let simulator = simulator().await;
    simulator.script([Reply::Raw {
        status: 201,
        content_type: "text/plain".into(),
        body: "created!".into(),
    }]);
    let api = api_error(&run(&simulator).await).clone();
    assert!(api.message.unwrap().contains("may have been created"));

    simulator.script([Reply::Raw {
        status: 400,
        content_type: "text/html".into(),
        body: "<html><body>Bad Request</body></html>".into(),
    }]);
    let api = api_error(&run(&simulator).await).clone();
    assert_eq!(api.status, 400);
    assert_eq!(api.code, None);
    assert!(api.message.unwrap().contains("<html><body>Bad Request"));
}

#[tokio::test]
async fn unknown_statuses_and_members_are_tolerated() {
    let simulator = simulator().await;
    simulator.script([Reply::Raw {
        status: 201,
        content_type: "application/json".into(),
        body: r#"{"id":"a-1","status":"Queued","lastUpdateTimeUtc":"2018-12-04T12:15:04Z",
                  "machineId":null,"novel":{"x":[1,2]},"errorHResult":0}"#
            .into(),
    }]);
    let action = run(&simulator).await.result.unwrap();
    assert_eq!(action.status, ActionStatus::Other("Queued".into()));
    assert_eq!(
        action.last_update_date_time_utc.as_deref(),
        Some("2018-12-04T12:15:04Z")
    );
    assert_eq!(action.machine_id, None);
}

#[tokio::test]
async fn a_slow_answer_within_the_timeouts_is_waited_for() {
    let simulator = simulator().await;
    simulator.script([Reply::Delayed(
        std::time::Duration::from_millis(300),
        Box::new(Reply::Create),
    )]);
    assert!(run(&simulator).await.result.is_ok());
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error() {
    // A port bound but never listened on refuses connections, and stays this test's until it
    // ends: no parallel test can be given it.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let origin =
        defender_host::outbound::ApiOrigin::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let tenant = defender_host::Tenant::new(origin, Arc::new(StaticToken::new(Secret::new(TOKEN))));
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    let Err(ActionError::Transport(message)) = outcome.result else {
        panic!("expected transport: {:?}", outcome.result);
    };
    assert!(message.contains("connection-refused"), "{message}");
    drop(held);
}

#[tokio::test]
async fn connections_are_kept_alive_across_calls() {
    let simulator = simulator().await;
    let tenant = tenant(&simulator);
    for i in 0..10 {
        let machine = format!("{i:040x}");
        let outcome = component()
            .stop_and_quarantine(&tenant, &machine, SHA1, COMMENT)
            .await
            .unwrap();
        assert!(outcome.result.is_ok());
    }
    assert_eq!(simulator.requests().len(), 10);
    // The pool takes a connection back on a task of its own, so a call can find it not yet
    // returned and open one more; ten calls over ten connections would show no reuse.
    assert!(
        simulator.connections() < 10,
        "the calls reused their connections: {} for 10 calls",
        simulator.connections()
    );
}

#[tokio::test]
async fn a_huge_retry_after_pauses_the_tenant_no_longer_than_the_limit() {
    let simulator = simulator().await;
    simulator.script([Reply::throttle(100_000_000)]);
    let tenant = tenant(&simulator);
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    assert!(matches!(outcome.result, Err(ActionError::RateLimited(_))));
    let paused = tenant
        .budgets
        .try_acquire(Api::CreateAction)
        .await
        .expect_err("paused");
    let limit = defender_host::Limits::default().max_retry_after;
    assert!(
        paused <= limit && paused > limit - Duration::from_secs(10),
        "{paused:?}"
    );
}

#[tokio::test]
async fn a_retry_after_given_as_an_http_date_is_read_by_the_host() {
    let simulator = simulator().await;
    let in_two_minutes = std::time::SystemTime::now() + Duration::from_secs(120);
    simulator.script([Reply::Throttle {
        retry_after: httpdate::fmt_http_date(in_two_minutes),
    }]);
    let tenant = tenant(&simulator);
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    // Two minutes fit the component's 90-second deadline no more than the host's pause does:
    // the call ends rate-limited with the API's answer and the wait the date asked for.
    let Err(ActionError::RateLimited(limited)) = &outcome.result else {
        panic!("{:?}", outcome.result);
    };
    assert!(
        (100_000..=120_000).contains(&limited.retry_after_ms),
        "{limited:?}"
    );
    assert_eq!(limited.api.as_ref().map(|api| api.status), Some(429));
    assert_eq!(simulator.requests().len(), 1, "not sent again");
    let paused = tenant
        .budgets
        .try_acquire(Api::CreateAction)
        .await
        .expect_err("paused");
    assert!(
        paused <= Duration::from_secs(120) && paused >= Duration::from_secs(100),
        "{paused:?}"
    );
}
