//! The host's one HTTP client: every request the host sends, the component's API calls and the
//! host's own sign-in requests alike, goes through it. One pool of kept-alive connections per
//! runtime (HTTP/1.1 with `Host` set, or HTTP/2 where the server offers it by ALPN; TLS sessions
//! resumed), a proxy from the environment or the configuration (HTTPS through `CONNECT`), and
//! the operating system's roots plus the bundled web PKI roots plus any `ca-file`.
//!
//! What may be sent is decided elsewhere (the outbound policy for the component, the token
//! sources for sign-in); this only sends it, within the timeouts it is given, and says why a
//! connection failed in words a person can act on (the TLS reason, the proxy's refusal).

mod failure;
mod network;
mod pool;
mod proxy;
mod trust;

pub use failure::TransportError;
pub use network::{Network, NetworkError};
pub use pool::{DEFAULT_MAX_REQUESTS_PER_HOST, HttpClient, Reply, Timeouts};
pub use proxy::{Proxy, ProxyError};
pub use trust::{TrustError, TrustedRoots};

pub(crate) use pool::{ConnectionPool, destination};
