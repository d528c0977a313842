//! A tenant: where its API is, how to get its token, and its shared rate budget.

use crate::credentials::TokenSource;
use crate::limits::Limits;
use crate::origin::ApiOrigin;
use crate::rate_limit::RateLimiter;
use std::sync::Arc;

/// Everything the host knows about one tenant. Cheap to clone; clones share the limiter and
/// the token source, which is what makes concurrent invocations share one budget.
#[derive(Clone)]
pub struct Tenant {
    /// The tenant's API origin: the base URL handed to the component and the only allowed
    /// destination of its requests.
    pub origin: ApiOrigin,
    /// The tenant's token supplier.
    pub tokens: Arc<dyn TokenSource>,
    /// The tenant's rate budget.
    pub limiter: Arc<RateLimiter>,
    /// The tenant's per-invocation limits; `None` takes the runtime's.
    pub limits: Option<Limits>,
}
