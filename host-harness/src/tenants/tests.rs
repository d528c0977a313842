use super::*;

const COMMERCIAL_AND_GCC_HIGH: &str = r#"
[[tenant]]
name = "contoso"
cloud = "commercial"
[tenant.credential]
kind = "token"
token-env = "CONTOSO_MDE_TOKEN"

[[tenant]]
name = "agency"
cloud = "gcc-high"
tenant-id = "11111111-2222-3333-4444-555555555555"
[tenant.credential]
kind = "client-secret"
client-id = "app-1"
secret-file = "agency.secret"
[tenant.budget]
per-minute = 10
per-hour = 100
[tenant.limits]
cpu-ms = 500
memory-mib = 8
"#;

#[test]
fn clouds_give_the_api_origin_budget_and_limits() {
    let tenants = Tenants::parse(COMMERCIAL_AND_GCC_HIGH, Path::new("/etc/mde")).unwrap();
    let contoso = tenants.get("contoso").unwrap();
    assert_eq!(
        contoso.origin.base_url(),
        "https://api.security.microsoft.com"
    );
    assert_eq!(contoso.limiter.budget(), Budget::default());
    assert_eq!(contoso.limits, None);
    let agency = tenants.get("agency").unwrap();
    assert_eq!(
        agency.origin.base_url(),
        "https://api-gov.securitycenter.microsoft.us"
    );
    assert_eq!(
        agency.limiter.budget(),
        Budget {
            per_minute: 10,
            per_hour: 100
        }
    );
    let limits = agency.limits.unwrap();
    assert_eq!(limits.cpu, Duration::from_millis(500));
    assert_eq!(limits.memory_bytes, 8 * 1024 * 1024);
    assert_eq!(limits.wall_clock, Limits::default().wall_clock);
    assert!(matches!(
        tenants.get("nobody"),
        Err(ConfigError::Unknown(_))
    ));
    assert_eq!(tenants.iter().count(), 2);
}

#[test]
fn an_api_url_override_and_a_custom_cloud() {
    let text = r#"
[[tenant]]
name = "eu"
cloud = "eu"
api-url = "https://api-eu.securitycenter.microsoft.com"
credential = { kind = "token", token-env = "X" }

[[tenant]]
name = "lab"
cloud = "custom"
api-url = "http://127.0.0.1:8080"
authority = "http://127.0.0.1:8080"
tenant-id = "lab"
credential = { kind = "client-secret", client-id = "c", secret-env = "S" }
"#;
    let tenants = Tenants::parse(text, Path::new(".")).unwrap();
    assert_eq!(
        tenants.get("eu").unwrap().origin.base_url(),
        "https://api-eu.securitycenter.microsoft.com"
    );
    assert_eq!(
        tenants.get("lab").unwrap().origin.base_url(),
        "http://127.0.0.1:8080"
    );
}

fn error_of(text: &str) -> String {
    match Tenants::parse(text, Path::new(".")) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("expected an error for {text}"),
    }
}

#[test]
fn mistakes_name_the_tenant_and_the_setting() {
    let custom = r#"[[tenant]]
name = "x"
cloud = "custom"
credential = { kind = "token", token-env = "X" }"#;
    assert!(
        error_of(custom).contains(r#"tenant "x": api-url"#),
        "{}",
        error_of(custom)
    );

    let plain_http = r#"[[tenant]]
name = "x"
cloud = "commercial"
api-url = "http://api.security.microsoft.com"
credential = { kind = "token", token-env = "X" }"#;
    assert!(error_of(plain_http).contains("api-url"));

    let no_tenant_id = r#"[[tenant]]
name = "x"
cloud = "commercial"
credential = { kind = "client-secret", client-id = "c", secret-env = "S" }"#;
    assert!(error_of(no_tenant_id).contains("tenant-id"));

    let both_sources = r#"[[tenant]]
name = "x"
cloud = "commercial"
credential = { kind = "token", token-env = "X", token-file = "t" }"#;
    assert!(error_of(both_sources).contains("exactly one"));

    let unknown_cloud = r#"[[tenant]]
name = "x"
cloud = "mars"
credential = { kind = "token", token-env = "X" }"#;
    assert!(error_of(unknown_cloud).contains("mars"));

    let twice = r#"[[tenant]]
name = "x"
cloud = "commercial"
credential = { kind = "token", token-env = "X" }
[[tenant]]
name = "x"
cloud = "commercial"
credential = { kind = "token", token-env = "X" }"#;
    assert!(error_of(twice).contains("appears twice"));

    let typo = r#"[[tenant]]
name = "x"
cloud = "commercial"
tenant_id = "underscore"
credential = { kind = "token", token-env = "X" }"#;
    assert!(error_of(typo).contains("tenant_id"));
}
