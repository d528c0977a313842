//! What the integration tests share: the compiled components, tenants pointing at a simulator,
//! the API page's example values, a test CA and a CONNECT proxy.

pub mod proxy;
pub mod raw_api;
pub mod serve;
pub mod tls;

use defender_host::credentials::{CredentialError, Secret, StaticToken, TokenFuture, TokenSource};
use defender_host::limits::Limits;
use defender_host::outbound::ApiOrigin;
use defender_host::rate_limit::Budget;
use defender_host::transport::HttpClient;
use defender_host::{COMPONENT, FanOut, File, QuarantineRequest, Runtime, Targets, Tenant, Wait};
use defender_simulator::Simulator;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

pub use defender_simulator::example::{COMMENT, FLEET, MACHINE, SHA1};

/// The directory (tenant) ID of the test tenants that sign in.
pub const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The scope they ask for.
pub const SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";

/// The text of a tenants file with one `custom`-cloud tenant, `lab`, whose API and sign-in are
/// the server at `url`, with `extra` settings and the `credential` table.
pub fn lab_tenants_file(url: &str, extra: &str, credential: &str) -> String {
    format!(
        "[[tenant]]\nname = \"lab\"\ncloud = \"custom\"\napi-url = \"{url}\"\nauthority = \"{url}\"\n\
         tenant-id = \"{TENANT_ID}\"\nscope = \"{SCOPE}\"\n{extra}\ncredential = {credential}\n"
    )
}

/// The token the test tenants hold; tests check it never leaks.
pub const TOKEN: &str = "eyJ0eXAi.secret-test-token.Zx9";

/// The test component that sends one request as told (`guests/probe`).
pub const PROBE: &[u8] = include_bytes!(env!("PROBE_WASM"));

/// The product component, compiled once per test binary.
pub fn component() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(COMPONENT, Limits::default()).expect("the component loads"))
}

/// The probe component, compiled once per test binary.
pub fn probe() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(PROBE, Limits::default()).expect("the probe loads"))
}

/// A request for the API page's file on `targets`, with the example comment, `wait`, and the
/// default device cap.
pub fn quarantine_request(targets: Targets, wait: Option<Wait>) -> QuarantineRequest {
    QuarantineRequest {
        targets,
        file: File::Sha1(SHA1.into()),
        comment: COMMENT.into(),
        wait,
        max_machines: None,
    }
}

/// The product component's `quarantine` for [`tenant`] of `simulator`: the call completes
/// and the request is valid.
pub async fn fan_out(simulator: &Simulator, request: QuarantineRequest) -> FanOut {
    component()
        .quarantine(&tenant(simulator), request, None)
        .await
        .expect("the call completes")
        .result
        .expect("the request is valid")
}

/// A simulator that accepts only [`TOKEN`].
pub async fn simulator() -> Simulator {
    Simulator::start(0, Some(TOKEN))
        .await
        .expect("the simulator starts")
}

/// A tenant whose API is `simulator`, holding [`TOKEN`], with the API's default budget.
pub fn tenant(simulator: &Simulator) -> Tenant {
    tenant_with(
        simulator,
        Arc::new(StaticToken::new(Secret::new(TOKEN))),
        Budget::default(),
    )
}

/// A tenant whose API is `simulator`, with the given token source and budget.
pub fn tenant_with(simulator: &Simulator, tokens: Arc<dyn TokenSource>, budget: Budget) -> Tenant {
    Tenant::new(
        ApiOrigin::parse(&simulator.base_url()).expect("a loopback URL"),
        tokens,
    )
    .with_budget(budget)
}

/// How many stop-and-quarantine POSTs `simulator` received.
pub fn posts(simulator: &Simulator) -> usize {
    simulator
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/StopAndQuarantineFile"))
        .count()
}

/// A new, empty directory of the calling test's own under the system's temporary directory:
/// tests run in parallel in one process, so a name alone (or the process ID) is not enough.
pub fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Hands out [`TOKEN`] and counts how many times it was asked: a check that bad input never
/// takes a credential.
#[derive(Default)]
pub struct CountingToken {
    fetches: AtomicUsize,
}

impl CountingToken {
    /// How many times a token was asked for.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl TokenSource for CountingToken {
    fn token<'a>(&'a self, _http: &'a HttpClient, _stale: Option<Secret>) -> TokenFuture<'a> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok::<_, CredentialError>(Secret::new(TOKEN)) })
    }
}

/// A tenant of `simulator` with a budget of one call a minute per API and a token source that
/// counts, for checking that bad input takes nothing with [`assert_nothing_taken`].
pub fn guarded_tenant(simulator: &Simulator) -> (Tenant, Arc<CountingToken>) {
    let tokens = Arc::new(CountingToken::default());
    let tenant = tenant_with(simulator, tokens.clone(), Budget::new(1, 1));
    (tenant, tokens)
}

/// Checks that no credential was fetched and no permit of any API taken.
pub async fn assert_nothing_taken(tenant: &Tenant, tokens: &CountingToken) {
    assert_eq!(tokens.fetches(), 0, "no credential was taken");
    for api in defender_host::rate_limit::Api::ALL {
        assert_eq!(
            tenant.budgets.available_in(api).await,
            std::time::Duration::ZERO,
            "no {api:?} permit was taken"
        );
    }
}

/// Hands out `stale` first and [`TOKEN`] once asked to refresh, like an expired cached token.
#[derive(Default)]
pub struct ExpiringToken {
    refreshes: AtomicUsize,
}

impl ExpiringToken {
    /// How many times a fresh token was asked for.
    pub fn refreshes(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }
}

impl TokenSource for ExpiringToken {
    fn token<'a>(&'a self, _http: &'a HttpClient, stale: Option<Secret>) -> TokenFuture<'a> {
        if stale.is_some() {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
        }
        let token = if self.refreshes() > 0 {
            TOKEN
        } else {
            "stale-token"
        };
        Box::pin(async move { Ok::<_, CredentialError>(Secret::new(token)) })
    }
}
