//! Which proxy a request goes through, and the connector that opens the way: straight to the
//! destination, or through an HTTP proxy's `CONNECT` tunnel (hyper-util's `Tunnel`).
//!
//! Every proxied request is tunnelled, `http` ones included: the only plain-http destinations
//! the host ever has are loopback simulators and the managed-identity endpoints, and a tunnel
//! keeps one code path and never shows the proxy a request line.

use crate::outbound::{HostKind, host_kind};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use thiserror::Error;
use tokio::net::TcpStream;
use tower_service::Service;

/// Where the host's requests go on their way out.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub enum Proxy {
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (or their lower-case forms), read
    /// as curl reads them; loopback and link-local destinations (simulators, the metadata
    /// endpoint) are never sent to a proxy named only by the environment.
    #[default]
    Environment,
    /// Straight to every destination, whatever the environment says.
    Disabled,
    /// Through this proxy, for every destination, loopback included.
    Url(ProxyUrl),
}

impl Proxy {
    /// Reads a setting: `none` (no proxy), `environment`, or an `http://[user:password@]host:port`
    /// URL.
    pub fn parse(text: &str) -> Result<Self, ProxyError> {
        match text.trim() {
            "none" => Ok(Self::Disabled),
            "environment" => Ok(Self::Environment),
            url => ProxyUrl::parse(url).map(Self::Url),
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Environment => f.write_str("the environment's proxy"),
            Self::Disabled => f.write_str("no proxy"),
            Self::Url(url) => write!(f, "{url}"),
        }
    }
}

/// Why a proxy setting cannot be used. Never holds the proxy's password.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProxyError {
    /// Not `http://host:port`.
    #[error("the proxy {0} is not a URL of the form http://[user:password@]host:port")]
    Malformed(String),
    /// A scheme other than `http` (TLS to the proxy, SOCKS).
    #[error(
        "the proxy {0} uses a scheme this host does not speak: only http:// proxies are supported"
    )]
    UnsupportedScheme(String),
    /// No port: proxies have no agreed default.
    #[error("the proxy {0} names no port")]
    MissingPort(String),
}

/// An HTTP proxy's address and its credentials, which are sent only as `Proxy-Authorization`
/// and never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl {
    uri: Uri,
    authorization: Option<HeaderValue>,
}

impl ProxyUrl {
    fn parse(text: &str) -> Result<Self, ProxyError> {
        let shown = redacted(text);
        let uri: Uri = text
            .parse()
            .map_err(|_| ProxyError::Malformed(shown.clone()))?;
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty())
            .ok_or_else(|| ProxyError::Malformed(shown.clone()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(ProxyError::UnsupportedScheme(shown)),
            None => return Err(ProxyError::Malformed(shown)),
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(ProxyError::Malformed(shown));
        }
        let port = authority
            .port_u16()
            .ok_or_else(|| ProxyError::MissingPort(shown.clone()))?;
        let authorization = match authority.as_str().rsplit_once('@') {
            Some((userinfo, _)) => Some(basic(userinfo).ok_or(ProxyError::Malformed(shown))?),
            None => None,
        };
        let uri = Uri::builder()
            .scheme("http")
            .authority(format!("{}:{port}", authority.host()))
            .path_and_query("/")
            .build()
            .map_err(|_| ProxyError::Malformed(redacted(text)))?;
        Ok(Self { uri, authorization })
    }
}

impl ProxyUrl {
    /// Whether the URL carries credentials for the proxy.
    pub fn has_credentials(&self) -> bool {
        self.authorization.is_some()
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let authority = self.uri.authority().map_or("", |a| a.as_str());
        let credentials = if self.authorization.is_some() {
            " (with credentials)"
        } else {
            ""
        };
        write!(f, "http://{authority}{credentials}")
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `user:password` (percent-encoded, as in a URL) as a `Basic` credential.
fn basic(userinfo: &str) -> Option<HeaderValue> {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .ok()
            .map(|s| s.into_owned())
    };
    let pair = zeroize::Zeroizing::new(format!("{}:{}", decode(user)?, decode(password)?));
    let mut value =
        HeaderValue::try_from(format!("Basic {}", STANDARD.encode(pair.as_bytes()))).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// A URL as it may be shown: scheme, host and port, never user information.
fn redacted(text: &str) -> String {
    match text.parse::<Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => {
                let host = authority.as_str().rsplit('@').next().unwrap_or_default();
                crate::escape::escape(&format!("{scheme}://{host}"))
            }
            _ => "(unparsable URL)".to_owned(),
        },
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// The proxy decision for one network setting.
pub(crate) enum Route {
    Direct,
    Environment(Box<Matcher>),
    Fixed(ProxyUrl),
    /// The environment names a proxy that does not parse: hyper-util would ignore it and go
    /// direct, which fails as a firewall would; say so instead. Holds the variable's name.
    Unusable(&'static str),
}

/// The variables hyper-util's matcher reads, in its order (upper case first).
const PROXY_VARIABLES: [[&str; 2]; 3] = [
    ["ALL_PROXY", "all_proxy"],
    ["HTTPS_PROXY", "https_proxy"],
    ["HTTP_PROXY", "http_proxy"],
];

/// The first proxy variable whose value (as the matcher would take it) is not a URL.
fn unparsable_proxy_variable(read: impl Fn(&str) -> Option<String>) -> Option<&'static str> {
    PROXY_VARIABLES.iter().find_map(|names| {
        let (name, value) = names
            .iter()
            .find_map(|name| read(name).map(|value| (*name, value)))?;
        let value = value.trim();
        let with_scheme = if value.contains("://") {
            value.to_owned()
        } else {
            format!("http://{value}")
        };
        let usable = value.is_empty()
            || with_scheme.parse::<Uri>().is_ok_and(|uri| {
                uri.authority().is_some_and(|a| {
                    // `http` reads a port that is not a number as no port at all.
                    let host_and_port = a.as_str().rsplit('@').next().unwrap_or_default();
                    let after_host = host_and_port
                        .rsplit_once(']')
                        .map_or(host_and_port, |(_, rest)| rest);
                    !a.host().is_empty() && (!after_host.contains(':') || a.port_u16().is_some())
                })
            });
        (!usable).then_some(name)
    })
}

/// The environment names a proxy that does not parse.
#[derive(Debug, Error)]
#[error("the proxy in {0} is not a URL (its value is not shown: it may hold a password)")]
pub(crate) struct UnusableEnvironmentProxy(&'static str);

/// A proxy to go through: its URI (`http://host:port/`) and its credentials.
pub(crate) struct Via {
    pub uri: Uri,
    pub authorization: Option<HeaderValue>,
}

impl Route {
    /// The route for `proxy`; the environment is read now.
    pub fn new(proxy: &Proxy) -> Self {
        match proxy {
            Proxy::Environment => match unparsable_proxy_variable(|n| std::env::var(n).ok()) {
                Some(variable) => Self::Unusable(variable),
                None => Self::Environment(Box::new(Matcher::from_env())),
            },
            Proxy::Disabled => Self::Direct,
            Proxy::Url(url) => Self::Fixed(url.clone()),
        }
    }

    /// The proxy a request to `destination` goes through, if any. A link-local destination
    /// (Azure's metadata endpoint) never does: only this machine can reach its own, and a proxy
    /// would reach the proxy's.
    pub fn via(&self, destination: &Uri) -> Option<Via> {
        let kind = destination.host().map_or(HostKind::Elsewhere, host_kind);
        match self {
            _ if kind == HostKind::LinkLocal => None,
            Self::Direct | Self::Unusable(_) => None,
            Self::Fixed(url) => Some(Via {
                uri: url.uri.clone(),
                authorization: url.authorization.clone(),
            }),
            Self::Environment(_) if kind == HostKind::Loopback => None,
            Self::Environment(matcher) => {
                let intercept = matcher.intercept(destination)?;
                Some(Via {
                    uri: intercept.uri().clone(),
                    authorization: intercept.basic_auth().cloned(),
                })
            }
        }
    }
}

/// Opens a TCP connection to the destination or a `CONNECT` tunnel to it through the route's
/// proxy; TLS, if any, is layered on top by the caller, end to end with the destination.
#[derive(Clone)]
pub(crate) struct Connector {
    tcp: HttpConnector,
    route: Arc<Route>,
}

type Connecting = Pin<
    Box<
        dyn Future<Output = Result<TokioIo<TcpStream>, Box<dyn std::error::Error + Send + Sync>>>
            + Send,
    >,
>;

/// A proxy named by the environment with a scheme this host does not speak.
#[derive(Debug, Error)]
#[error("the proxy {0} (from the environment) is not an http:// proxy, the only kind supported")]
pub(crate) struct UnsupportedEnvironmentProxy(String);

/// Why hyper-util's tunnel failed (its type is public but not exported by name).
pub(crate) type TunnelError = <Tunnel<HttpConnector> as Service<Uri>>::Error;

/// The tunnel could not be opened: which proxy, and why.
#[derive(Debug, Error)]
#[error("through the proxy {proxy}: {source}")]
pub(crate) struct ThroughProxy {
    pub proxy: String,
    #[source]
    pub source: TunnelError,
}

impl Connector {
    pub fn new(route: Route) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        Self {
            tcp,
            route: Arc::new(route),
        }
    }
}

impl Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        if let Route::Unusable(variable) = *self.route {
            return Box::pin(async move { Err(UnusableEnvironmentProxy(variable).into()) });
        }
        let mut tcp = self.tcp.clone();
        let Some(via) = self.route.via(&destination) else {
            return Box::pin(async move { tcp.call(destination).await.map_err(Into::into) });
        };
        if via.uri.scheme_str() != Some("http") {
            let shown = redacted(&via.uri.to_string());
            return Box::pin(async move { Err(UnsupportedEnvironmentProxy(shown).into()) });
        }
        let proxy = redacted(&via.uri.to_string());
        let target = with_port(destination);
        let mut tunnel = Tunnel::new(via.uri, tcp);
        if let Some(authorization) = via.authorization {
            tunnel = tunnel.with_auth(authorization);
        }
        Box::pin(async move {
            tunnel
                .call(target)
                .await
                .map_err(|source| ThroughProxy { proxy, source }.into())
        })
    }
}

/// The destination with its port spelled out: the tunnel would otherwise assume 443.
fn with_port(destination: Uri) -> Uri {
    let Some(authority) = destination.authority() else {
        return destination;
    };
    if authority.port().is_some() {
        return destination;
    }
    let port = if destination.scheme_str() == Some("http") {
        80
    } else {
        443
    };
    let mut parts = destination.clone().into_parts();
    match format!("{}:{port}", authority.host()).parse() {
        Ok(with_port) => {
            parts.authority = Some(with_port);
            Uri::from_parts(parts).unwrap_or(destination)
        }
        Err(_) => destination,
    }
}

#[cfg(test)]
mod tests;
