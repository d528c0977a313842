//! The tenant's API origin: the one place the component's requests may go.

use std::fmt;
use std::net::IpAddr;
use thiserror::Error;

/// Why a URL cannot be an API origin.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OriginError {
    /// Not a URL of the form `scheme://host[:port]`.
    #[error("`{0}` is not an absolute http(s) URL")]
    Malformed(String),
    /// Plain http to something other than a loopback address.
    #[error(
        "`{0}` uses plain http; only https is allowed, except to 127.0.0.1, [::1] or localhost"
    )]
    InsecureScheme(String),
}

/// Scheme, host and port of the tenant's API, as the outbound policy compares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiOrigin {
    https: bool,
    host: String,
    port: u16,
}

impl ApiOrigin {
    /// Parses a base URL such as `https://api.security.microsoft.com` or
    /// `http://127.0.0.1:8080`. Plain http is accepted only for loopback hosts (simulators and
    /// tests); a path, query or credentials in the URL are refused.
    pub fn parse(url: &str) -> Result<Self, OriginError> {
        let malformed = || OriginError::Malformed(url.to_owned());
        let uri: http::Uri = url.parse().map_err(|_| malformed())?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(malformed()),
        };
        let authority = uri.authority().ok_or_else(malformed)?;
        let path_is_empty = matches!(uri.path(), "" | "/") && uri.query().is_none();
        if authority.as_str().contains('@') || !path_is_empty || authority.host().is_empty() {
            return Err(malformed());
        }
        let host = authority.host().to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let origin = Self { https, host, port };
        if !https && !origin.is_loopback() {
            return Err(OriginError::InsecureScheme(url.to_owned()));
        }
        Ok(origin)
    }

    /// Whether a request URI goes to exactly this origin.
    pub fn admits(&self, uri: &http::Uri) -> bool {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return false,
        };
        let Some(authority) = uri.authority() else {
            return false;
        };
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        https == self.https
            && port == self.port
            && authority.host().eq_ignore_ascii_case(&self.host)
            && !authority.as_str().contains('@')
    }

    /// The base URL handed to the component, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.to_string()
    }

    fn is_loopback(&self) -> bool {
        host_kind(&self.host) == HostKind::Loopback
    }
}

/// Where a host name or address points, for the rules that treat this machine's own
/// addresses apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostKind {
    /// This machine: `localhost`, 127.0.0.0/8, `::1` (IPv4-mapped forms included).
    Loopback,
    /// The link this machine is on: 169.254.0.0/16 (Azure's metadata endpoint), `fe80::/10`.
    LinkLocal,
    /// Anywhere else.
    Elsewhere,
}

/// The kind of `host` (a name, an IPv4 address, or an IPv6 address with or without brackets).
pub(crate) fn host_kind(host: &str) -> HostKind {
    if host.eq_ignore_ascii_case("localhost") {
        return HostKind::Loopback;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match bare.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        Ok(ip) => ip,
        Err(_) => return HostKind::Elsewhere,
    };
    match ip {
        ip if ip.is_loopback() => HostKind::Loopback,
        IpAddr::V4(v4) if v4.is_link_local() => HostKind::LinkLocal,
        IpAddr::V6(v6) if v6.is_unicast_link_local() => HostKind::LinkLocal,
        _ => HostKind::Elsewhere,
    }
}

impl fmt::Display for ApiOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let default_port = if self.https { 443 } else { 80 };
        if self.port == default_port {
            write!(f, "{scheme}://{}", self.host)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_and_loopback_http() {
        let origin = ApiOrigin::parse("https://api.security.microsoft.com/").unwrap();
        assert_eq!(origin.base_url(), "https://api.security.microsoft.com");
        for url in [
            "http://127.0.0.1:9",
            "http://localhost:80",
            "http://[::1]:7",
        ] {
            assert!(ApiOrigin::parse(url).is_ok(), "{url}");
        }
        assert_eq!(
            ApiOrigin::parse("http://127.0.0.1:8080")
                .unwrap()
                .base_url(),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn refuses_plain_http_elsewhere_and_odd_urls() {
        assert!(matches!(
            ApiOrigin::parse("http://api.security.microsoft.com"),
            Err(OriginError::InsecureScheme(_))
        ));
        for bad in [
            "ftp://x",
            "api.security.microsoft.com",
            "https://user:pw@host",
            "https://host/api",
            "https://host?x=1",
        ] {
            assert!(
                matches!(ApiOrigin::parse(bad), Err(OriginError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn host_kinds_know_this_machine_and_its_link() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.8.9.1",
            "[::1]",
            "::1",
            "[::ffff:127.0.0.1]",
        ] {
            assert_eq!(host_kind(host), HostKind::Loopback, "{host}");
        }
        for host in ["169.254.169.254", "[fe80::1]", "[::ffff:169.254.169.254]"] {
            assert_eq!(host_kind(host), HostKind::LinkLocal, "{host}");
        }
        for host in [
            "api.security.microsoft.com",
            "10.0.0.1",
            "192.168.1.1",
            "[2001:db8::1]",
            "localhost.evil.test",
        ] {
            assert_eq!(host_kind(host), HostKind::Elsewhere, "{host}");
        }
    }

    #[test]
    fn admits_only_the_same_scheme_host_and_port() {
        let origin = ApiOrigin::parse("https://api.security.microsoft.com").unwrap();
        let admits = |u: &str| origin.admits(&u.parse().unwrap());
        assert!(admits("https://api.security.microsoft.com/api/machines"));
        assert!(admits("https://API.security.microsoft.com:443/x"));
        assert!(!admits("http://api.security.microsoft.com/x"));
        assert!(!admits("https://api.security.microsoft.com:444/x"));
        assert!(!admits("https://login.microsoftonline.com/x"));
        assert!(!admits("https://api.security.microsoft.com.evil.test/x"));
    }
}
