use super::*;

#[test]
fn reads_none_environment_and_urls() {
    assert_eq!(Proxy::parse("none"), Ok(Proxy::Disabled));
    assert_eq!(Proxy::parse("environment"), Ok(Proxy::Environment));
    let Ok(Proxy::Url(url)) = Proxy::parse("http://proxy.corp.example:3128") else {
        panic!("a proxy URL");
    };
    assert_eq!(url.to_string(), "http://proxy.corp.example:3128");
    assert_eq!(url.authorization, None);
}

#[test]
fn credentials_become_a_basic_header_and_are_never_shown() {
    let Ok(Proxy::Url(url)) = Proxy::parse("http://svc%40corp:p%3Ass@10.0.0.1:8080/") else {
        panic!("a proxy URL");
    };
    let expected = format!("Basic {}", STANDARD.encode("svc@corp:p:ss"));
    assert_eq!(
        url.authorization.as_ref().map(HeaderValue::as_bytes),
        Some(expected.as_bytes())
    );
    assert!(
        url.authorization
            .as_ref()
            .is_some_and(HeaderValue::is_sensitive)
    );
    let shown = format!("{url} {url:?} {:?}", Proxy::Url(url.clone()));
    assert!(
        !shown.contains("p%3Ass") && !shown.contains("svc"),
        "{shown}"
    );
    assert!(
        shown.contains("http://10.0.0.1:8080 (with credentials)"),
        "{shown}"
    );
}

#[test]
fn refuses_what_it_cannot_use_without_echoing_a_password() {
    for (text, expected) in [
        ("proxy:3128", "Malformed"),
        ("http://", "Malformed"),
        ("http://proxy:3128/path", "Malformed"),
        ("http://proxy:3128/?q=1", "Malformed"),
        ("https://user:hunter2@proxy:3128", "UnsupportedScheme"),
        ("socks5://proxy:1080", "UnsupportedScheme"),
        ("http://user:hunter2@proxy", "MissingPort"),
        ("not a url at all", "Malformed"),
    ] {
        let error = Proxy::parse(text).expect_err(text);
        assert!(
            format!("{error:?}").starts_with(expected),
            "{text}: {error:?}"
        );
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}

#[test]
fn a_fixed_proxy_takes_every_destination_loopback_included() {
    let Ok(Proxy::Url(url)) = Proxy::parse("http://127.0.0.1:3128") else {
        panic!("a proxy URL");
    };
    let route = Route::Fixed(url);
    for destination in [
        "https://api.security.microsoft.com/api",
        "http://127.0.0.1:8080/x",
        "https://localhost:8443/x",
    ] {
        let via = route.via(&destination.parse().unwrap()).expect(destination);
        assert_eq!(via.uri, "http://127.0.0.1:3128/");
    }
    let metadata = "http://169.254.169.254/metadata/identity/oauth2/token";
    assert!(
        route.via(&metadata.parse().unwrap()).is_none(),
        "never the proxy's own IMDS"
    );
    assert!(
        Route::Direct
            .via(&"https://a.example/".parse().unwrap())
            .is_none()
    );
}

#[test]
fn an_environment_proxy_skips_local_destinations_and_honours_no_proxy() {
    let matcher = Matcher::builder()
        .https("http://svc:pw@proxy.corp.example:3128")
        .http("http://proxy.corp.example:3128")
        .no("internal.corp.example")
        .build();
    let route = Route::Environment(Box::new(matcher));
    let via = |destination: &str| route.via(&destination.parse().unwrap());
    let proxied = via("https://api.security.microsoft.com/api/machines").expect("proxied");
    assert_eq!(proxied.uri, "http://proxy.corp.example:3128/");
    assert!(proxied.authorization.is_some());
    for direct in [
        "https://mde.internal.corp.example/api",
        "http://127.0.0.1:8080/api",
        "https://localhost:8443/api",
        "http://169.254.169.254/metadata/identity/oauth2/token",
    ] {
        assert!(via(direct).is_none(), "{direct}");
    }
}

#[test]
fn an_environment_proxy_that_does_not_parse_is_named_not_ignored() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    assert_eq!(unparsable_proxy_variable(env(&[])), None);
    assert_eq!(
        unparsable_proxy_variable(env(&[("https_proxy", "proxy.corp:3128")])),
        None
    );
    assert_eq!(
        unparsable_proxy_variable(env(&[("HTTPS_PROXY", "http://svc:p%ss@proxy:31x8")])),
        Some("HTTPS_PROXY")
    );
    assert_eq!(
        unparsable_proxy_variable(env(&[("HTTP_PROXY", "http://"), ("http_proxy", "ok:1")])),
        Some("HTTP_PROXY"),
        "the upper-case form is the one read"
    );
    let message = UnusableEnvironmentProxy("HTTPS_PROXY").to_string();
    assert!(message.contains("HTTPS_PROXY") && !message.contains("p%ss"));
}

#[test]
fn a_tunnel_target_always_names_its_port() {
    let cases = [
        ("http://127.0.0.1/x", "http://127.0.0.1:80/x"),
        (
            "https://api.security.microsoft.com/x",
            "https://api.security.microsoft.com:443/x",
        ),
        ("https://localhost:8443/x", "https://localhost:8443/x"),
    ];
    for (given, expected) in cases {
        assert_eq!(with_port(given.parse().unwrap()).to_string(), expected);
    }
}

proptest::proptest! {
    #[test]
    fn any_proxy_setting_parses_or_is_refused_without_its_password(text in ".{0,80}") {
        if let Err(error) = Proxy::parse(&format!("http://user:hunter2@{text}")) {
            proptest::prop_assert!(!error.to_string().contains("hunter2"));
        }
    }
}
