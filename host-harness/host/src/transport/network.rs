//! A network setting: the proxy and the extra roots. The runtime has one (from its builder);
//! a tenant may override either part (from its table in the tenants file).

use super::proxy::{Connector, Proxy, Route};
use super::trust::TrustedRoots;
use hyper_rustls::HttpsConnector;
use std::sync::Arc;
use thiserror::Error;

/// How the host reaches the outside: through which proxy, trusting which extra roots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Network {
    /// The proxy; `None` takes the runtime's (whose own `None` means [`Proxy::Environment`]).
    pub proxy: Option<Proxy>,
    /// Certificate authorities trusted besides the system's and the bundled web PKI roots.
    pub extra_roots: TrustedRoots,
}

/// TLS could not be set up (no usable cipher suite in the crypto provider).
#[derive(Debug, Error)]
#[error("setting up TLS: {0}")]
pub struct NetworkError(String);

impl Network {
    /// These settings laid over `defaults`: this proxy if set, else the defaults'; the roots of
    /// both.
    pub fn over(&self, defaults: &Network) -> Network {
        Network {
            proxy: Some(
                self.proxy
                    .clone()
                    .or_else(|| defaults.proxy.clone())
                    .unwrap_or_default(),
            ),
            extra_roots: defaults.extra_roots.and(&self.extra_roots),
        }
    }

    /// Whether nothing is set, so the runtime's own settings apply unchanged.
    pub fn is_inherited(&self) -> bool {
        self.proxy.is_none() && self.extra_roots.is_empty()
    }

    /// The connector for these settings: TCP or a proxy tunnel, then TLS (rustls, offering
    /// HTTP/2 and HTTP/1.1 by ALPN) for `https`.
    pub(crate) fn connector(&self) -> Result<HttpsConnector<Connector>, NetworkError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| NetworkError(e.to_string()))?
            .with_root_certificates(self.extra_roots.store())
            .with_no_client_auth();
        let proxy = self.proxy.clone().unwrap_or_default();
        Ok(hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(Connector::new(Route::new(&proxy))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_proxy_wins_and_roots_add_up() {
        let defaults = Network {
            proxy: Some(Proxy::Disabled),
            extra_roots: TrustedRoots::default(),
        };
        let inherited = Network::default();
        assert!(inherited.is_inherited());
        assert_eq!(inherited.over(&defaults).proxy, Some(Proxy::Disabled));
        assert_eq!(
            Network::default().over(&Network::default()).proxy,
            Some(Proxy::Environment)
        );
        let tenant = Network {
            proxy: Some(Proxy::Environment),
            extra_roots: TrustedRoots::default(),
        };
        assert!(!tenant.is_inherited());
        assert_eq!(tenant.over(&defaults).proxy, Some(Proxy::Environment));
    }

    #[test]
    fn every_setting_makes_a_connector() {
        for proxy in [None, Some(Proxy::Disabled), Some(Proxy::Environment)] {
            let network = Network {
                proxy,
                extra_roots: TrustedRoots::default(),
            };
            assert!(network.connector().is_ok());
        }
    }
}
