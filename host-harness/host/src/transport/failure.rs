//! Why a request failed, in words a person can act on: a certificate not trusted or issued for
//! another name is not a refused connection, and a proxy asking for credentials is not a
//! firewall. Each failure also has the wasi-http error code the component is given.

use super::proxy::{
    ThroughProxy, TunnelError, UnsupportedEnvironmentProxy, UnusableEnvironmentProxy,
};
use rustls::{CertificateError, Error as TlsError};
use std::error::Error as StdError;
use thiserror::Error;
use wasmtime_wasi_http::Error as ErrorCode;

/// A request that got no answer: the code a wasi-http guest is given, and what happened.
#[derive(Debug, Error)]
#[error("{detail}")]
pub struct TransportError {
    /// The wasi-http error code.
    pub code: ErrorCode,
    /// What happened, naming the host (and the proxy, when one was in the way); never a
    /// credential.
    pub detail: String,
}

impl TransportError {
    pub(crate) fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

/// The failure of a request to `destination` (`scheme://host:port`) that hyper's client
/// reported as `error`.
pub(crate) fn classify(
    error: &hyper_util::client::legacy::Error,
    destination: &str,
) -> TransportError {
    let causes = || chain(error);
    if let Some(tls) = causes().find_map(tls_error) {
        return tls_failure(tls, destination);
    }
    if let Some(through) = causes().find_map(|e| e.downcast_ref::<ThroughProxy>()) {
        return proxy_failure(through, destination);
    }
    let misconfigured = causes().find_map(|e| {
        e.downcast_ref::<UnsupportedEnvironmentProxy>()
            .map(ToString::to_string)
            .or_else(|| {
                e.downcast_ref::<UnusableEnvironmentProxy>()
                    .map(ToString::to_string)
            })
    });
    if let Some(message) = misconfigured {
        return TransportError::new(ErrorCode::ConfigurationError, message);
    }
    let chain = causes()
        .skip(1)
        .map(|e| crate::escape::escape(&e.to_string()))
        .collect::<Vec<_>>()
        .join(": ");
    let reason = if chain.is_empty() {
        crate::escape::escape(&error.to_string())
    } else {
        chain
    };
    if !error.is_connect() {
        return TransportError::new(
            ErrorCode::HttpProtocolError,
            format!("{destination}: the exchange failed: {reason}"),
        );
    }
    let refused = causes().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    if refused {
        return TransportError::new(
            ErrorCode::ConnectionRefused,
            format!("{destination} refused the connection ({reason})"),
        );
    }
    if reason.contains("dns error") || reason.contains("failed to lookup address") {
        return TransportError::new(
            ErrorCode::DnsError {
                rcode: None,
                info_code: None,
            },
            format!("{destination}: the name could not be resolved ({reason})"),
        );
    }
    TransportError::new(
        ErrorCode::ConnectionRefused,
        format!("{destination}: could not connect ({reason})"),
    )
}

/// `error` and its sources, outermost first.
fn chain<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |e: &&'a (dyn StdError + 'static)| {
        (*e).source()
    })
}

/// A rustls error, possibly inside I/O errors (tokio-rustls wraps it in one, hyper-rustls wraps
/// that in another, and an I/O error's `source` skips what it wraps).
fn tls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a TlsError> {
    let mut current = error;
    loop {
        if let Some(tls) = current.downcast_ref::<TlsError>() {
            return Some(tls);
        }
        let inner = current.downcast_ref::<std::io::Error>()?.get_ref()?;
        current = inner;
    }
}

fn tls_failure(error: &TlsError, destination: &str) -> TransportError {
    let certificate = |why: &str| {
        TransportError::new(
            ErrorCode::TlsCertificateError,
            format!("TLS with {destination}: the server's certificate {why}"),
        )
    };
    match error {
        TlsError::InvalidCertificate(reason) => match reason {
            CertificateError::UnknownIssuer => certificate(
                "is not signed by a trusted authority (unknown issuer); if a proxy inspects \
                 TLS, add its root with ca-file",
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                certificate(&format!(
                    "is not valid for this host name (name mismatch): {}",
                    crate::escape::escape(&error.to_string())
                ))
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                certificate("has expired")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                certificate("is not valid yet (check this machine's clock)")
            }
            CertificateError::Revoked => certificate("has been revoked"),
            other => certificate(&format!(
                "was refused: {}",
                crate::escape::escape(&format!("{other:?}"))
            )),
        },
        TlsError::AlertReceived(alert) => TransportError::new(
            ErrorCode::TlsAlertReceived {
                alert_id: Some(u8::from(*alert)),
                alert_message: Some(format!("{alert:?}")),
            },
            format!("TLS with {destination}: the server sent the alert {alert:?}"),
        ),
        other => TransportError::new(
            ErrorCode::TlsProtocolError,
            format!(
                "TLS with {destination} failed: {}",
                crate::escape::escape(&other.to_string())
            ),
        ),
    }
}

fn proxy_failure(through: &ThroughProxy, destination: &str) -> TransportError {
    let proxy = &through.proxy;
    let (code, why) = match &through.source {
        TunnelError::ProxyAuthRequired => (
            ErrorCode::ConnectionRefused,
            "the proxy asks for credentials (407); put them in the proxy URL".to_owned(),
        ),
        TunnelError::TunnelUnsuccessful => (
            ErrorCode::ConnectionRefused,
            "the proxy refused to open a tunnel (CONNECT was not answered 200)".to_owned(),
        ),
        TunnelError::ConnectFailed(cause) => (
            ErrorCode::ConnectionRefused,
            format!(
                "could not connect to the proxy ({})",
                crate::escape::escape(&cause.to_string())
            ),
        ),
        other => (
            ErrorCode::ConnectionTerminated,
            format!(
                "the tunnel failed ({})",
                crate::escape::escape(&other.to_string())
            ),
        ),
    };
    TransportError::new(
        code,
        format!("{destination} through the proxy {proxy}: {why}"),
    )
}
