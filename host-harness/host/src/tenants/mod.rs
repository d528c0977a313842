//! Tenants: what the host knows about each one (its API origin, token source, shared rate
//! budgets, limits and network setting), the clouds they live in, and the tenants file that
//! describes them.

mod cloud;
mod file;

pub use cloud::Cloud;
pub use file::{ConfigError, TenantsFile};

use crate::credentials::TokenSource;
use crate::limits::Limits;
use crate::outbound::ApiOrigin;
use crate::rate_limit::{ApiBudgets, Budget, PermitSource};
use crate::transport::Network;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Everything the host knows about one tenant. Cheap to clone; clones share the budgets and
/// the token source, which is what makes concurrent invocations share one budget per API.
#[derive(Clone)]
pub struct Tenant {
    /// What metrics and logs call the tenant: its name in the tenants file, or `tenant`.
    name: Arc<str>,
    /// The tenant's API origin: the base URL handed to the component and the only allowed
    /// destination of its requests.
    pub origin: ApiOrigin,
    /// The tenant's token supplier.
    pub tokens: Arc<dyn TokenSource>,
    /// The tenant's rate budgets, one per API; shared with every tenant that signs in as the
    /// same application to the same directory, as the API counts them (in this process, or,
    /// with the `redis` feature, by a fleet of hosts).
    pub budgets: Arc<dyn PermitSource>,
    /// The tenant's per-invocation limits; `None` takes the runtime's.
    pub limits: Option<Limits>,
    /// The tenant's proxy and extra trusted roots, laid over the runtime's; sign-in and API
    /// traffic both use them.
    pub network: Network,
    /// How many of the tenant's invocations may run at once, shared by clones: one tenant
    /// cannot take every one of the runtime's slots.
    invocations: Arc<Semaphore>,
    /// How many of the tenant's requests may be in flight at once (until each body is read or
    /// taken back), shared by clones: tenants of one cloud share its API host, and one tenant
    /// cannot hold every one of that host's turns.
    requests: Arc<Semaphore>,
}

/// How many of one tenant's invocations run at once unless it says otherwise.
pub const DEFAULT_MAX_CONCURRENT_INVOCATIONS: usize = 64;
/// How many of one tenant's requests are in flight at once unless it says otherwise: a
/// quarter of the runtime's default turns per host. The API's budget (100 calls a minute)
/// rarely keeps more than a few in flight.
pub const DEFAULT_MAX_REQUESTS_IN_FLIGHT: usize = 16;

impl Tenant {
    /// A tenant at `origin` with tokens from `tokens`, the API's default budgets (its own), the
    /// runtime's limits and the runtime's network settings.
    pub fn new(origin: ApiOrigin, tokens: Arc<dyn TokenSource>) -> Self {
        Self {
            name: Arc::from("tenant"),
            origin,
            tokens,
            budgets: Arc::new(ApiBudgets::new(Budget::default())),
            limits: None,
            network: Network::default(),
            invocations: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT_INVOCATIONS)),
            requests: Arc::new(Semaphore::new(DEFAULT_MAX_REQUESTS_IN_FLIGHT)),
        }
    }

    /// The same tenant called `name` in metrics and logs.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Arc::from(crate::escape::escape(name));
        self
    }

    /// What metrics and logs call the tenant.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same tenant allowed at most `max` requests in flight at once (at least one, at
    /// most [`Semaphore::MAX_PERMITS`]), counted anew for it and its clones.
    pub fn with_max_requests_in_flight(mut self, max: usize) -> Self {
        self.requests = Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS)));
        self
    }

    /// The tenant's turns for requests in flight.
    pub(crate) fn request_turns(&self) -> Arc<Semaphore> {
        self.requests.clone()
    }

    /// The same tenant allowed at most `max` invocations at once (at least one, at most
    /// [`Semaphore::MAX_PERMITS`]), counted anew for it and its clones.
    pub fn with_max_concurrent_invocations(mut self, max: usize) -> Self {
        self.invocations = Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS)));
        self
    }

    /// Waits for one of the tenant's invocation turns; it ends when dropped.
    pub(crate) async fn invocation_turn(&self) -> Option<OwnedSemaphorePermit> {
        self.invocations.clone().acquire_owned().await.ok()
    }

    /// The same tenant with budgets of its own: `budget` for each API.
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budgets = Arc::new(ApiBudgets::new(budget));
        self
    }

    /// The same tenant sharing `budgets`: give every tenant that signs in as the same
    /// application to the same directory the same budgets, as the API counts them.
    pub fn with_budgets(mut self, budgets: Arc<dyn PermitSource>) -> Self {
        self.budgets = budgets;
        self
    }
}
