use super::*;
use crate::limits::Limits;
use crate::rate_limit::{Api, Budget};
use crate::transport::Proxy;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// A directory of its own for a test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tenants-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

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
proxy = "http://proxy.agency.example:3128"
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
fn clouds_give_the_api_origin_budget_limits_and_proxy() {
    let dir = scratch("clouds");
    write(&dir, "agency.secret", "s3cret\n", 0o600);
    let tenants = TenantsFile::parse(COMMERCIAL_AND_GCC_HIGH, &dir).unwrap();
    let contoso = tenants.get("contoso").unwrap();
    assert_eq!(
        contoso.origin.base_url(),
        "https://api.security.microsoft.com"
    );
    for api in Api::ALL {
        assert_eq!(contoso.budgets.budget(api), Budget::default());
    }
    assert_eq!(contoso.limits, None);
    assert!(contoso.network.is_inherited());
    let agency = tenants.get("agency").unwrap();
    assert_eq!(
        agency.origin.base_url(),
        "https://api-gov.securitycenter.microsoft.us"
    );
    for api in Api::ALL {
        let budget = agency.budgets.budget(api);
        assert_eq!(budget, Budget::new(10, 100), "{api}");
    }
    let limits = agency.limits.unwrap();
    assert_eq!(limits.cpu, Duration::from_millis(500));
    assert_eq!(limits.memory_bytes, 8 * 1024 * 1024);
    assert_eq!(limits.wall_clock, Limits::default().wall_clock);
    assert_eq!(
        agency.network.proxy,
        Some(Proxy::parse("http://proxy.agency.example:3128").unwrap())
    );
    assert!(matches!(
        tenants.get("nobody"),
        Err(ConfigError::Unknown(_))
    ));
    assert_eq!(tenants.iter().count(), 2);
}

#[test]
fn only_the_custom_cloud_sets_urls_and_it_must_name_its_scope() {
    let text = r#"
[[tenant]]
name = "lab"
cloud = "custom"
api-url = "http://127.0.0.1:8080"
authority = "http://127.0.0.1:8080"
tenant-id = "lab"
scope = "https://api.securitycenter.microsoft.com/.default"
credential = { kind = "client-secret", client-id = "c", secret-env = "S" }
"#;
    let tenants = TenantsFile::parse(text, Path::new(".")).unwrap();
    assert_eq!(
        tenants.get("lab").unwrap().origin.base_url(),
        "http://127.0.0.1:8080"
    );

    let overridden = r#"[[tenant]]
name = "eu"
cloud = "eu"
api-url = "https://api-eu.attacker.example"
credential = { kind = "token", token-env = "X" }"#;
    let message = error_of(overridden);
    assert!(
        message.contains(r#"tenant "eu": api-url: only cloud = "custom""#),
        "{message}"
    );
    let authority = r#"[[tenant]]
name = "c"
cloud = "commercial"
tenant-id = "t"
authority = "https://login.attacker.example"
credential = { kind = "client-secret", client-id = "c", secret-env = "S" }"#;
    assert!(error_of(authority).contains("authority: only cloud"));

    let no_scope = r#"[[tenant]]
name = "lab"
cloud = "custom"
api-url = "http://127.0.0.1:8080"
authority = "http://127.0.0.1:8080"
tenant-id = "lab"
credential = { kind = "client-secret", client-id = "c", secret-env = "S" }"#;
    assert!(error_of(no_scope).contains(r#"tenant "lab": scope: required"#));
}

fn error_of(text: &str) -> String {
    error_in(text, Path::new("."))
}

fn error_in(text: &str, base: &Path) -> String {
    match TenantsFile::parse(text, base) {
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
}

#[test]
fn an_unknown_key_anywhere_is_refused() {
    let tables = [
        ("tenant_id = \"underscore\"\n", "", "tenant_id"),
        ("", "colour = \"blue\"\n", "colour"),
        (
            "[tenant.budget]\nper-minute = 1\nper-hour = 2\nburst = 3\n",
            "",
            "burst",
        ),
        ("[tenant.limits]\ncpu = 1\n", "", "cpu"),
    ];
    for (extra_table, extra_credential, key) in tables {
        let text = format!(
            "[[tenant]]\nname = \"x\"\ncloud = \"commercial\"\n{}[tenant.credential]\nkind = \"token\"\ntoken-env = \"X\"\n{extra_credential}",
            if extra_table.starts_with('[') {
                ""
            } else {
                extra_table
            }
        );
        let text = if extra_table.starts_with('[') {
            format!("{text}{extra_table}")
        } else {
            text
        };
        let message = error_of(&text);
        assert!(
            message.contains(&format!("unknown field `{key}`")),
            "{message}"
        );
    }
}

#[test]
fn credential_files_are_checked_before_anything_is_sent() {
    let dir = scratch("files");
    write(&dir, "shared.secret", "s3cret-value", 0o666);
    write(&dir, "empty.secret", "  \n", 0o600);
    let secret = |file: &str| {
        format!(
            "[[tenant]]\nname = \"x\"\ncloud = \"commercial\"\ntenant-id = \"t\"\ncredential = {{ kind = \"client-secret\", client-id = \"c\", secret-file = \"{file}\" }}\n"
        )
    };
    let shared = error_in(&secret("shared.secret"), &dir);
    assert!(
        shared.contains(r#"tenant "x": credential.secret-file"#),
        "{shared}"
    );
    assert!(shared.contains("other users can write it"), "{shared}");
    assert!(shared.contains("shared.secret"), "{shared}");
    assert!(!shared.contains("s3cret-value"), "{shared}");
    assert!(error_in(&secret("missing.secret"), &dir).contains("missing.secret"));
    assert!(error_in(&secret("empty.secret"), &dir).contains("no secret"));

    let certificate = "[[tenant]]\nname = \"x\"\ncloud = \"commercial\"\ntenant-id = \"t\"\ncredential = { kind = \"client-certificate\", client-id = \"c\", certificate-file = \"nowhere.pem\" }\n";
    let message = error_in(certificate, &dir);
    assert!(
        message.contains("credential.certificate-file") && message.contains("nowhere.pem"),
        "{message}"
    );
}

#[test]
fn a_proxy_or_ca_file_that_cannot_be_used_is_refused() {
    let dir = scratch("network");
    write(&dir, "not-a-ca.pem", "hello\n", 0o644);
    let with = |setting: &str| {
        format!(
            "[[tenant]]\nname = \"x\"\ncloud = \"commercial\"\n{setting}\ncredential = {{ kind = \"token\", token-env = \"X\" }}\n"
        )
    };
    let proxy = error_of(&with("proxy = \"https://svc:hunter2@proxy.corp:8443\""));
    assert!(proxy.contains(r#"tenant "x": proxy"#), "{proxy}");
    assert!(!proxy.contains("hunter2"), "{proxy}");
    assert!(error_of(&with("proxy = \"proxy.corp:3128\"")).contains("proxy"));
    let ca = error_in(&with("ca-file = \"not-a-ca.pem\""), &dir);
    assert!(
        ca.contains(r#"tenant "x": ca-file"#) && ca.contains("not-a-ca.pem"),
        "{ca}"
    );
    assert!(ca.contains("no PEM certificate"), "{ca}");
    let none = TenantsFile::parse(&with("proxy = \"none\""), &dir).unwrap();
    assert_eq!(none.get("x").unwrap().network.proxy, Some(Proxy::Disabled));
}

#[test]
fn a_secret_pasted_into_the_wrong_place_is_not_echoed() {
    let text = "[[tenant]]\nname = \"x\"\ncloud = \"commercial\"\ncredential = \"hunter2-client-secret\"\n";
    let message = error_of(text);
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("line 4"), "{message}");
}

#[test]
fn managed_identities_take_imds_or_a_local_or_https_endpoint() {
    let with = |credential: &str| {
        format!("[[tenant]]\nname = \"vm\"\ncloud = \"commercial\"\ncredential = {credential}\n")
    };
    assert!(
        TenantsFile::parse(
            &with(r#"{ kind = "managed-identity", source = "imds" }"#),
            Path::new(".")
        )
        .is_ok()
    );
    assert!(
        TenantsFile::parse(
            &with(r#"{ kind = "managed-identity", source = "imds", client-id = "u-1", endpoint = "http://127.0.0.1:9/metadata/identity/oauth2/token" }"#),
            Path::new(".")
        )
        .is_ok()
    );
    let remote = error_of(&with(
        r#"{ kind = "managed-identity", endpoint = "http://metadata.attacker.example/token" }"#,
    ));
    assert!(
        remote.contains("credential.endpoint") && remote.contains("plain http"),
        "{remote}"
    );
    let header_for_imds = error_of(&with(
        r#"{ kind = "managed-identity", source = "imds", identity-header-env = "H" }"#,
    ));
    assert!(
        header_for_imds.contains("identity header"),
        "{header_for_imds}"
    );
}

#[test]
fn workload_identity_needs_a_readable_token_file() {
    let dir = scratch("workload");
    write(&dir, "token.jwt", "eyJ.header.sig", 0o644);
    let with = |file: &str| {
        format!(
            "[[tenant]]\nname = \"k8s\"\ncloud = \"commercial\"\ntenant-id = \"t\"\ncredential = {{ kind = \"workload-identity\", client-id = \"c\", token-file = \"{file}\" }}\n"
        )
    };
    assert!(TenantsFile::parse(&with("token.jwt"), &dir).is_ok());
    let missing = error_in(&with("gone.jwt"), &dir);
    assert!(
        missing.contains("credential.token-file") && missing.contains("gone.jwt"),
        "{missing}"
    );
}

#[test]
fn a_limit_past_a_day_is_refused_not_overflowed() {
    for setting in [
        "wall-clock-secs = 18446744073709551615",
        "io-timeout-secs = 86401",
        "cpu-ms = 18446744073709551615",
        "max-retry-after-secs = 100000000",
    ] {
        let text = format!(
            "[[tenant]]\nname = \"x\"\ncloud = \"commercial\"\ncredential = {{ kind = \"token\", token-env = \"X\" }}\n[tenant.limits]\n{setting}\n"
        );
        let message = error_of(&text);
        assert!(message.contains("more than a day"), "{setting}: {message}");
    }
    let fine = "[[tenant]]\nname = \"x\"\ncloud = \"commercial\"\ncredential = { kind = \"token\", token-env = \"X\" }\n[tenant.limits]\nmax-retry-after-secs = 60\n";
    let tenants = TenantsFile::parse(fine, Path::new(".")).unwrap();
    let limits = tenants.get("x").unwrap().limits.unwrap();
    assert_eq!(limits.max_retry_after, Duration::from_secs(60));
}

#[test]
fn a_concurrency_cap_past_what_a_runtime_runs_is_refused_not_a_panic() {
    for key in ["max-concurrent-invocations", "max-requests-in-flight"] {
        caps_are_checked(key);
    }
}

fn caps_are_checked(key: &str) {
    for (cap, refused) in [
        ("0", true),
        ("10001", true),
        ("9223372036854775807", true),
        ("16", false),
    ] {
        let text = format!(
            "[[tenant]]\nname = \"x\"\ncloud = \"commercial\"\n{key} = {cap}\ncredential = {{ kind = \"token\", token-env = \"X\" }}\n"
        );
        match TenantsFile::parse(&text, Path::new(".")) {
            Err(error) => {
                assert!(refused, "{cap}: {error}");
                assert!(error.to_string().contains(key), "{error}");
            }
            Ok(_) => assert!(!refused, "{cap} was accepted"),
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
    #[test]
    fn any_tenants_file_loads_or_is_refused_without_a_panic(text in "[ -~\n]{0,400}") {
        let _ = TenantsFile::parse(&text, Path::new("/nonexistent"));
    }
}

/// Two entries for `app` in tenant `directory`, with `budget_a` and `budget_b` tables.
fn two_entries(directory: &str, app: &str, budget_a: &str, budget_b: &str) -> String {
    let entry = |name: &str, budget: &str| {
        format!(
            "[[tenant]]\nname = \"{name}\"\ncloud = \"commercial\"\ntenant-id = \"{directory}\"\n\
             [tenant.credential]\nkind = \"client-secret\"\nclient-id = \"{app}\"\n\
             secret-env = \"MDE_SECRET\"\n{budget}\n"
        )
    };
    format!("{}{}", entry("a", budget_a), entry("b", budget_b))
}

#[test]
fn each_api_may_have_a_budget_of_its_own() {
    let text = two_entries(
        "t1",
        "app",
        "[tenant.budget]\nper-minute = 50\n[tenant.budget.list-actions]\nper-hour = 3000\n\
         [tenant.budget.cancel-action]\nper-minute = 5\nper-hour = 10",
        "[tenant.budget]\nper-minute = 50\n[tenant.budget.list-actions]\nper-hour = 3000\n\
         [tenant.budget.cancel-action]\nper-minute = 5\nper-hour = 10",
    );
    let tenants = TenantsFile::parse(&text, Path::new("/")).unwrap();
    let budgets = &tenants.get("a").unwrap().budgets;
    assert_eq!(budgets.budget(Api::CreateAction), Budget::new(50, 1500));
    assert_eq!(budgets.budget(Api::ListActions), Budget::new(50, 3000));
    assert_eq!(budgets.budget(Api::CancelAction), Budget::new(5, 10));
}

#[test]
fn entries_of_one_application_share_its_budgets() {
    let text = two_entries("T1", "App", "", "");
    let tenants = TenantsFile::parse(&text, Path::new("/")).unwrap();
    let (a, b) = (tenants.get("a").unwrap(), tenants.get("b").unwrap());
    assert!(std::sync::Arc::ptr_eq(&a.budgets, &b.budgets));
    let other_app = TenantsFile::parse(
        &two_entries("t1", "app", "", "").replace(
            "name = \"b\"\ncloud = \"commercial\"\ntenant-id = \"t1\"\n[tenant.credential]\n\
         kind = \"client-secret\"\nclient-id = \"app\"",
            "name = \"b\"\ncloud = \"commercial\"\ntenant-id = \"t1\"\n[tenant.credential]\n\
         kind = \"client-secret\"\nclient-id = \"other-app\"",
        ),
        Path::new("/"),
    )
    .unwrap();
    assert!(!std::sync::Arc::ptr_eq(
        &other_app.get("a").unwrap().budgets,
        &other_app.get("b").unwrap().budgets
    ));
}

#[test]
fn entries_of_one_application_cannot_disagree_on_its_budgets() {
    let text = two_entries("t1", "app", "", "[tenant.budget]\nper-minute = 10");
    let error = error_of(&text);
    assert!(error.contains("same application"), "{error}");
    assert!(error.contains("\"a\""), "{error}");
}

#[test]
fn a_budget_of_nothing_is_refused_by_its_name() {
    for (table, setting) in [
        ("[tenant.budget]\nper-minute = 0", "budget.per-minute"),
        (
            "[tenant.budget.get-action]\nper-hour = 0",
            "budget.get-action.per-hour",
        ),
    ] {
        let error = error_of(&two_entries("t1", "app", table, table));
        assert!(error.contains(setting), "{error}");
    }
}

#[test]
fn budgets_equal_in_effect_are_the_same_however_written() {
    let text = two_entries(
        "t1",
        "app",
        "[tenant.budget.list-actions]\nper-minute = 100",
        "[tenant.budget]\nper-hour = 1500",
    );
    let tenants = TenantsFile::parse(&text, Path::new("/")).unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &tenants.get("a").unwrap().budgets,
        &tenants.get("b").unwrap().budgets
    ));
}

#[test]
fn a_memory_limit_past_the_pools_slots_is_refused() {
    for mib in [0, 1025] {
        let text = format!(
            "[[tenant]]\nname = \"x\"\ncloud = \"commercial\"\n[tenant.credential]\nkind = \"token\"\n\
             token-env = \"X\"\n[tenant.limits]\nmemory-mib = {mib}\n"
        );
        let error = error_of(&text);
        assert!(error.contains("limits.memory-mib"), "{error}");
    }
}

#[test]
fn redis_settings_without_the_redis_backend_are_refused_by_name() {
    for (table, setting) in [
        (
            "[tenant.budget]\nredis-url = \"redis://127.0.0.1:1/0\"",
            "redis-url",
        ),
        (
            "[tenant.budget]\nbackend = \"local\"\nfleet-size = 3",
            "fleet-size",
        ),
        ("[tenant.budget]\nredis-timeout-ms = 5", "redis-timeout-ms"),
    ] {
        let error = error_of(&two_entries("t1", "app", table, table));
        assert!(error.contains(setting), "{error}");
        assert!(error.contains("only backend = \"redis\""), "{error}");
    }
    let error = error_of(&two_entries(
        "t1",
        "app",
        "[tenant.budget]\nbackend = \"memcached\"",
        "",
    ));
    assert!(error.contains("expected `local` or `redis`"), "{error}");
}

#[cfg(feature = "redis")]
#[test]
fn the_redis_backend_is_checked_and_shared_by_one_application() {
    let redis = "[tenant.budget]\nbackend = \"redis\"\nredis-url = \"redis://127.0.0.1:1/0\"\n\
                 fleet-size = 3\nredis-timeout-ms = 150";
    let tenants =
        TenantsFile::parse(&two_entries("t1", "app", redis, redis), Path::new("/")).unwrap();
    let (a, b) = (tenants.get("a").unwrap(), tenants.get("b").unwrap());
    assert!(std::sync::Arc::ptr_eq(&a.budgets, &b.budgets));
    assert_eq!(a.budgets.budget(Api::CreateAction), Budget::default());
    for (table, setting, why) in [
        (
            "[tenant.budget]\nbackend = \"redis\"",
            "redis-url",
            "required",
        ),
        (
            "[tenant.budget]\nbackend = \"redis\"\nredis-url = \"http://u:hunter2@h\"",
            "redis-url",
            "not a Redis URL",
        ),
        (
            "[tenant.budget]\nbackend = \"redis\"\nredis-url = \"redis://h\"\nfleet-size = 0",
            "fleet-size",
            "from 1 to 1000",
        ),
        (
            "[tenant.budget]\nbackend = \"redis\"\nredis-url = \"redis://h\"\n\
             redis-timeout-ms = 60000",
            "redis-timeout-ms",
            "from 1 to 10000",
        ),
    ] {
        let error = error_of(&two_entries("t1", "app", table, table));
        assert!(error.contains(setting) && error.contains(why), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
    // One application's entries must keep its budget in one place.
    let error = error_of(&two_entries("t1", "app", redis, ""));
    assert!(error.contains("same application"), "{error}");
}
