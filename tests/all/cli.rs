//! The `host-harness` command line, run in-process on the real component: exit codes, what goes
//! to stdout and stderr, and that the token appears in neither.

use defender_simulator::{Reply, Simulator};
use host_harness::{Console, run};
use integration_tests::{COMMENT, MACHINE, SHA1, TOKEN, scratch_dir, simulator};
use std::process::ExitCode;
use std::sync::Once;
use std::time::Duration;

/// The variable the tests name with `--token-env`.
const TOKEN_ENV: &str = "INTEGRATION_TESTS_MDE_TOKEN";

/// Sets the token variable once, before any test of this binary reads the environment.
fn token_env() -> &'static str {
    static SET: Once = Once::new();
    // SAFETY: every test calls this first, and `Once` makes the others wait until the single
    // write is done, so no thread reads the environment while it is being written.
    SET.call_once(|| unsafe { std::env::set_var(TOKEN_ENV, TOKEN) });
    TOKEN_ENV
}

struct Run {
    code: ExitCode,
    out: String,
    err: String,
}

async fn cli(args: &[&str]) -> Run {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut console = Console {
        out: &mut out,
        err: &mut err,
        err_is_terminal: false,
    };
    let argv = std::iter::once("host-harness")
        .chain(args.iter().copied())
        .map(Into::into);
    let code = run(argv, &mut console).await;
    let run = Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    };
    assert!(
        !run.out.contains(TOKEN) && !run.err.contains(TOKEN),
        "the token leaked"
    );
    run
}

/// `stop-and-quarantine` with these target and hash options and the example comment.
fn stop(options: &[&str]) -> Vec<String> {
    let mut args = vec!["stop-and-quarantine".to_owned()];
    args.extend(options.iter().map(|s| (*s).to_owned()));
    args.extend(["--comment".into(), COMMENT.into()]);
    args
}

/// The options that point the command at `simulator` with the test token.
fn connection(simulator: &Simulator) -> Vec<String> {
    vec![
        "--api-url".into(),
        simulator.base_url(),
        "--token-env".into(),
        token_env().into(),
    ]
}

async fn cli_owned(args: Vec<String>) -> Run {
    cli(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
}

async fn quarantine(simulator: &Simulator, machine: &str, sha1: &str, comment: &str) -> Run {
    let mut args = vec!["stop-and-quarantine".to_owned()];
    args.extend(
        [
            "--machine-id",
            machine,
            "--sha1",
            sha1,
            "--comment",
            comment,
        ]
        .map(String::from),
    );
    args.extend(connection(simulator));
    cli_owned(args).await
}

#[tokio::test]
async fn demo_prints_the_action_with_the_apis_member_names() {
    let run = cli(&["demo"]).await;
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    let action: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(action["type"], "StopAndQuarantineFile");
    assert_eq!(action["status"], "Pending");
    assert_eq!(action["machineId"], MACHINE);
    assert_eq!(action["requestorComment"], COMMENT);
    assert_eq!(action["relatedFileInfo"]["fileIdentifier"], SHA1);
    assert_eq!(action["relatedFileInfo"]["fileIdentifierType"], "Sha1");
    assert!(action["id"].as_str().is_some_and(|id| id.len() == 36));
    assert!(action["creationDateTimeUtc"].is_string());
    assert!(run.err.contains("StopAndQuarantineFile"));
}

#[tokio::test]
async fn success_prints_the_machine_action() {
    let simulator = simulator().await;
    let run = quarantine(&simulator, MACHINE, SHA1, COMMENT).await;
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    let action: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(action["machineId"], MACHINE);
    assert_eq!(
        simulator.requests()[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn invalid_input_exits_2_with_one_line_naming_the_field() {
    let simulator = simulator().await;
    for (machine, sha1, comment, field) in [
        ("nope", SHA1, COMMENT, "machine-id"),
        (MACHINE, "d41d8cd98f00b204e9800998ecf8427e", COMMENT, "sha1"),
        (MACHINE, SHA1, "  ", "comment"),
    ] {
        let run = quarantine(&simulator, machine, sha1, comment).await;
        assert_eq!(run.code, ExitCode::from(2));
        assert_eq!(run.err.lines().count(), 1, "{}", run.err);
        assert!(run.err.contains(field), "{}", run.err);
        assert!(run.out.is_empty());
    }
    assert!(simulator.requests().is_empty());
}

#[tokio::test]
async fn an_insecure_api_url_exits_2() {
    let mut args = stop(&["--machine-id", MACHINE, "--sha1", SHA1]);
    args.extend([
        "--api-url".into(),
        "http://api.security.microsoft.com".into(),
    ]);
    let run = cli_owned(args).await;
    assert_eq!(run.code, ExitCode::from(2));
    assert!(run.err.contains("--api-url"), "{}", run.err);
}

#[tokio::test]
async fn an_api_error_exits_1_naming_status_code_message_and_target() {
    let simulator = simulator().await;
    simulator.script([Reply::error(404, "ResourceNotFound")]);
    let run = quarantine(&simulator, MACHINE, SHA1, COMMENT).await;
    assert_eq!(run.code, ExitCode::FAILURE);
    assert!(run.out.is_empty());
    let line = run.err.trim();
    assert!(line.contains("HTTP 404"), "{line}");
    assert!(line.contains("code ResourceNotFound"), "{line}");
    assert!(line.contains("Simulated ResourceNotFound"), "{line}");
    assert!(line.contains("target "), "{line}");
}

#[tokio::test]
async fn a_rejected_token_does_not_leak_into_the_output() {
    let simulator = Simulator::start(0, Some("another")).await.unwrap();
    let run = quarantine(&simulator, MACHINE, SHA1, COMMENT).await;
    assert_eq!(run.code, ExitCode::FAILURE);
    assert!(run.err.contains("unauthorized: HTTP 401"), "{}", run.err);
    assert_eq!(simulator.requests().len(), 2);
}

#[tokio::test]
async fn a_missing_token_is_a_credentials_error() {
    let simulator = simulator().await;
    let mut args = stop(&["--machine-id", MACHINE, "--sha1", SHA1]);
    args.extend(["--api-url".into(), simulator.base_url()]);
    args.extend([
        "--token-env".into(),
        "INTEGRATION_TESTS_UNSET_VARIABLE".into(),
    ]);
    let run = cli_owned(args).await;
    assert_eq!(run.code, ExitCode::FAILURE);
    assert!(
        run.err.contains("INTEGRATION_TESTS_UNSET_VARIABLE"),
        "{}",
        run.err
    );
    assert!(simulator.requests().is_empty());
}

#[tokio::test]
async fn another_component_can_be_run() {
    let simulator = simulator().await;
    let mut args = stop(&["--machine-id", MACHINE, "--sha1", SHA1]);
    args.extend(["--component".into(), "/nonexistent/component.wasm".into()]);
    let missing = cli_owned(args).await;
    assert_eq!(missing.code, ExitCode::FAILURE);
    assert!(
        missing.err.contains("/nonexistent/component.wasm"),
        "{}",
        missing.err
    );

    let dir = scratch_dir("cli-component");
    let (good, bad) = (dir.join("good.wasm"), dir.join("bad.wasm"));
    std::fs::write(&good, defender_host::COMPONENT).unwrap();
    std::fs::write(&bad, b"\0asm not really").unwrap();
    let with = |path: &std::path::Path| {
        let mut args = stop(&["--machine-id", MACHINE, "--sha1", SHA1]);
        args.extend(connection(&simulator));
        args.extend(["--component".into(), path.display().to_string()]);
        args
    };
    let run_bad = cli_owned(with(&bad)).await;
    assert_eq!(run_bad.code, ExitCode::FAILURE);
    assert!(
        run_bad.err.contains("loading the component"),
        "{}",
        run_bad.err
    );
    assert!(simulator.requests().is_empty());
    let run_good = cli_owned(with(&good)).await;
    assert_eq!(run_good.code, ExitCode::SUCCESS, "{}", run_good.err);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(simulator.requests().len(), 1);
}

const OTHER: &str = integration_tests::FLEET[1];

fn quarantine_args(simulator: &Simulator, targets: &[&str], extra: &[&str]) -> Vec<String> {
    let mut args = stop(&[targets, extra].concat());
    args.extend(connection(simulator));
    args
}

#[tokio::test]
async fn several_devices_print_an_array_and_exit_1_when_any_failed() {
    let simulator = simulator().await;
    simulator.reply_for_machine(OTHER, Reply::error(404, "ResourceNotFound"));
    let run = cli_owned(quarantine_args(
        &simulator,
        &["--machine-id", MACHINE, "--machine-id", OTHER],
        &["--sha1", SHA1],
    ))
    .await;
    assert_eq!(run.code, ExitCode::FAILURE);
    let outcomes: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(outcomes[0]["machineId"], MACHINE);
    assert_eq!(outcomes[0]["action"]["status"], "Pending");
    assert!(outcomes[0].get("adopted").is_none());
    assert_eq!(outcomes[1]["machineId"], OTHER);
    assert_eq!(outcomes[1]["error"]["kind"], "not-found");
    assert_eq!(outcomes[1]["error"]["status"], 404);
    assert_eq!(outcomes[1]["error"]["code"], "ResourceNotFound");
    assert!(outcomes[1]["error"]["target"].is_string());
    assert!(run.err.contains(OTHER), "{}", run.err);

    // The same devices again: both now have a pending action, which is adopted.
    simulator.reply_for_machine(OTHER, Reply::Create);
    let run = cli_owned(quarantine_args(
        &simulator,
        &["--machine-id", MACHINE, "--machine-id", OTHER],
        &["--sha1", SHA1],
    ))
    .await;
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    let outcomes: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(outcomes[0]["adopted"], true);
    assert!(outcomes[1].get("adopted").is_none());
}

#[tokio::test]
async fn a_machines_file_and_a_file_to_hash() {
    let simulator = simulator().await;
    let dir = scratch_dir("cli-files");
    let list = dir.join("machines.txt");
    std::fs::write(&list, format!("# devices\n{MACHINE}\n\n{OTHER}\n")).unwrap();
    let sample = dir.join("sample.bin");
    std::fs::write(&sample, b"abc").unwrap();
    let (list, sample) = (list.display().to_string(), sample.display().to_string());
    let run = cli_owned(quarantine_args(
        &simulator,
        &["--machines-file", &list],
        &["--file", &sample],
    ))
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    let outcomes: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(outcomes.as_array().unwrap().len(), 2);
    let sha1_of_abc = "a9993e364706816aba3e25717850c26c9cd0d89d";
    assert_eq!(
        outcomes[1]["action"]["relatedFileInfo"]["fileIdentifier"],
        sha1_of_abc
    );
}

#[tokio::test]
async fn too_many_devices_exit_2_before_sending() {
    let ids: Vec<String> = (0..1001).map(|i| format!("{i:040x}")).collect();
    let err = refused_machines_file("cli-many", &ids.join("\n")).await;
    assert!(err.contains("machine-ids"), "{err}");
}

/// `stop-and-quarantine --machines-file` with a file holding `text`: exit 2 and nothing sent;
/// the error line.
async fn refused_machines_file(name: &str, text: &str) -> String {
    let simulator = simulator().await;
    let dir = scratch_dir(name);
    let path = dir.join("machines.txt");
    std::fs::write(&path, text).unwrap();
    let list = path.display().to_string();
    let run = cli_owned(quarantine_args(
        &simulator,
        &["--machines-file", &list],
        &["--sha1", SHA1],
    ))
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(run.code, ExitCode::from(2));
    assert!(simulator.requests().is_empty());
    run.err
}

#[tokio::test]
async fn everywhere_with_wait_shows_progress_lines_and_final_actions() {
    let simulator = simulator().await;
    simulator.file_seen_on(SHA1, &[MACHINE, OTHER]);
    let run = cli_owned(quarantine_args(
        &simulator,
        &["--everywhere"],
        &["--sha1", SHA1, "--wait", "--timeout", "60"],
    ))
    .await;
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    let outcomes: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    let outcomes = outcomes.as_array().unwrap();
    let devices: Vec<&str> = outcomes
        .iter()
        .map(|o| o["machineId"].as_str().unwrap())
        .collect();
    assert_eq!(devices, [MACHINE, OTHER], "in the API's order");
    for outcome in outcomes {
        assert_eq!(outcome["action"]["status"], "Succeeded");
    }
    let lines: Vec<&str> = run.err.lines().collect();
    assert!(!lines.is_empty());
    assert!(
        lines.iter().all(|l| l.starts_with("progress: machine ")),
        "{}",
        run.err
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(OTHER) && l.ends_with("Succeeded"))
    );
}

#[tokio::test]
async fn on_a_terminal_progress_is_a_bar() {
    let simulator = simulator().await;
    let args = quarantine_args(
        &simulator,
        &["--machine-id", MACHINE],
        &["--sha1", SHA1, "--wait", "--timeout", "60"],
    );
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut console = Console {
        out: &mut out,
        err: &mut err,
        err_is_terminal: true,
    };
    let argv = std::iter::once("host-harness".to_owned())
        .chain(args)
        .map(Into::into);
    assert_eq!(run(argv, &mut console).await, ExitCode::SUCCESS);
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains("\r[##############################] 1/1 final"),
        "{err:?}"
    );
    // One device and no fan-out: stdout is the action object, as before.
    let action: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(action["status"], "Succeeded");
}

#[tokio::test]
async fn status_and_cancel_commands() {
    let simulator = simulator().await;
    simulator.set_progression(defender_simulator::Progression::StayPending);
    let created = cli_owned(quarantine_args(
        &simulator,
        &["--machine-id", MACHINE],
        &["--sha1", SHA1],
    ))
    .await;
    let action: serde_json::Value = serde_json::from_str(&created.out).unwrap();
    let id = action["id"].as_str().unwrap().to_owned();

    let mut status = vec!["status".to_owned(), id.clone()];
    status.extend(connection(&simulator));
    let run = cli_owned(status).await;
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    let shown: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(
        (shown["id"].as_str(), shown["status"].as_str()),
        (Some(id.as_str()), Some("Pending"))
    );

    let mut cancel = vec![
        "cancel".to_owned(),
        id.clone(),
        "--comment".into(),
        "mistake".into(),
    ];
    cancel.extend(connection(&simulator));
    let run = cli_owned(cancel).await;
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    let cancelled: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(cancelled["status"], "Cancelled");
    assert_eq!(cancelled["cancellationComment"], "mistake");

    let mut unknown = vec![
        "cancel".to_owned(),
        "00000000-0000-4000-8000-000000000000".into(),
        "--comment".into(),
        "x".into(),
    ];
    unknown.extend(connection(&simulator));
    let run = cli_owned(unknown).await;
    assert_eq!(run.code, ExitCode::FAILURE);
    assert!(run.err.contains("HTTP 404"), "{}", run.err);
}

#[tokio::test]
async fn a_tenant_from_a_tenants_file() {
    let simulator = simulator().await;
    let dir = scratch_dir("cli-tenants");
    let file = dir.join("tenants.toml");
    let url = simulator.base_url();
    std::fs::write(
        &file,
        format!(
            "[[tenant]]\nname = \"lab\"\ncloud = \"custom\"\napi-url = \"{url}\"\n\
             credential = {{ kind = \"token\", token-env = \"{}\" }}\n",
            token_env()
        ),
    )
    .unwrap();
    let file = file.display().to_string();
    let mut args = stop(&["--machine-id", MACHINE, "--sha1", SHA1]);
    args.extend([
        "--tenants".into(),
        file.clone(),
        "--tenant".into(),
        "lab".into(),
    ]);
    let run = cli_owned(args).await;
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    assert_eq!(simulator.requests().len(), 1);

    let mut args = stop(&["--machine-id", MACHINE, "--sha1", SHA1]);
    args.extend(["--tenants".into(), file, "--tenant".into(), "nobody".into()]);
    let run = cli_owned(args).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(run.code, ExitCode::from(2));
    assert!(run.err.contains("nobody"), "{}", run.err);
}

#[tokio::test]
async fn the_embedded_component_can_be_written_out_for_other_hosts() {
    let dir = scratch_dir("cli-out");
    let out = dir.join("defender.wasm");
    let run = cli(&["component", "--out", out.to_str().unwrap()]).await;
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    let written = std::fs::read(&out).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(written, defender_host::COMPONENT);
    // A component, not a core module: the preamble's layer field is 1.
    assert_eq!(written[..8], *b"\0asm\x0d\0\x01\0");
}

#[tokio::test]
async fn text_from_outside_reaches_stderr_with_its_control_characters_escaped() {
    let simulator = simulator().await;
    simulator.script([Reply::Error {
        status: 403,
        code: "Forbidden\u{1b}]0;owned\u{7}".into(),
        message: "clear\u{1b}[2J the screen".into(),
    }]);
    let run = quarantine(&simulator, MACHINE, SHA1, COMMENT).await;
    assert_eq!(run.code, ExitCode::FAILURE);
    assert!(
        run.err.contains("Forbidden\\u{1b}]0;owned\\u{7}"),
        "{}",
        run.err
    );
    // A listing that names a device with an escape sequence: the device's own error line.
    simulator.file_seen_on(SHA1, &["\u{1b}[31mred", MACHINE]);
    let mut args = stop(&["--everywhere", "--sha1", SHA1]);
    args.extend(connection(&simulator));
    let everywhere = cli_owned(args).await;
    assert!(
        everywhere.err.contains("machine \\u{1b}[31mred"),
        "{}",
        everywhere.err
    );
    for run in [&run, &everywhere] {
        assert!(
            !run.err.contains('\u{1b}') && !run.err.contains('\u{7}'),
            "{:?}",
            run.err
        );
    }
}

#[tokio::test]
async fn a_large_file_is_hashed_as_a_stream_and_a_device_is_refused() {
    let simulator = simulator().await;
    let dir = scratch_dir("cli-large");
    let large = dir.join("large.bin");
    let bytes: Vec<u8> = (0..20 * 1024 * 1024)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    std::fs::write(&large, &bytes).unwrap();
    let sha1sum = std::process::Command::new("sha1sum")
        .arg(&large)
        .output()
        .expect("sha1sum runs");
    let expected = String::from_utf8(sha1sum.stdout).unwrap()[..40].to_owned();
    let large = large.display().to_string();
    let run = cli_owned(quarantine_args(
        &simulator,
        &["--machine-id", MACHINE],
        &["--file", &large],
    ))
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    let action: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(
        action["relatedFileInfo"]["fileIdentifier"],
        expected.as_str()
    );

    let endless = cli_owned(quarantine_args(
        &simulator,
        &["--machine-id", MACHINE],
        &["--file", "/dev/zero"],
    ))
    .await;
    assert_eq!(endless.code, ExitCode::from(2));
    assert!(
        endless.err.contains("not a regular file"),
        "{}",
        endless.err
    );
    let devices = cli_owned(quarantine_args(
        &simulator,
        &["--machines-file", "/dev/zero"],
        &["--sha1", SHA1],
    ))
    .await;
    assert_eq!(devices.code, ExitCode::from(2));
    assert!(
        devices.err.contains("not a regular file"),
        "{}",
        devices.err
    );
    // A named pipe nobody writes to: opening it must not wait for a writer.
    let dir = scratch_dir("cli-fifo");
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let fifo = fifo.display().to_string();
    for (devices, file) in [
        (["--machine-id", MACHINE], ["--file", fifo.as_str()]),
        (["--machines-file", fifo.as_str()], ["--sha1", SHA1]),
    ] {
        let run = tokio::time::timeout(
            Duration::from_secs(60),
            cli_owned(quarantine_args(&simulator, &devices, &file)),
        )
        .await
        .expect("the command does not hang on a pipe");
        assert_eq!(run.code, ExitCode::from(2));
        assert!(run.err.contains("not a regular file"), "{}", run.err);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        simulator.requests().len(),
        1,
        "only the large file's action was sent"
    );
}

#[tokio::test]
async fn a_machines_file_past_its_cap_is_refused_before_sending() {
    let lines = format!("{MACHINE}\n").repeat(30_000);
    let err = refused_machines_file("cli-many-lines", &lines).await;
    assert!(err.contains("more than 1048576 bytes"), "{err}");
}

#[tokio::test]
async fn a_tenants_file_with_an_endless_limit_is_refused_not_a_crash() {
    let simulator = simulator().await;
    let dir = scratch_dir("cli-endless");
    let path = dir.join("tenants.toml");
    let text = integration_tests::lab_tenants_file(
        &simulator.base_url(),
        "",
        &format!(r#"{{ kind = "token", token-env = "{}" }}"#, token_env()),
    ) + "[tenant.limits]\nwall-clock-secs = 18446744073709551615\n";
    std::fs::write(&path, text).unwrap();
    let tenants = path.display().to_string();
    let run = cli(&[
        "status",
        "141408d1-384c-4c19-8b57-ba39e378011a",
        "--tenants",
        &tenants,
        "--tenant",
        "lab",
    ])
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(run.code, ExitCode::from(2));
    assert!(run.err.contains("limits.wall-clock-secs"), "{}", run.err);
    assert!(simulator.requests().is_empty());
}

#[tokio::test]
async fn a_secret_pasted_into_a_tenants_file_is_never_echoed() {
    let dir = scratch_dir("cli-pasted");
    let path = dir.join("tenants.toml");
    for text in [
        "[[tenant]]\nname = \"lab\"\ncloud = \"commercial\"\ncredential = \"Zq8~pasted.client-secret\"\n",
        "[[tenant]]\nname = \"lab\"\ncloud = \"commercial\"\ntenant-id = \"t\"\n[tenant.credential]\nkind = \"client-secret\"\nclient-id = \"c\"\nsecret-env = \"S\"\nsecret = \"Zq8~pasted.client-secret\"\n",
    ] {
        std::fs::write(&path, text).unwrap();
        let tenants = path.display().to_string();
        let run = cli(&[
            "status",
            "141408d1-384c-4c19-8b57-ba39e378011a",
            "--tenants",
            &tenants,
            "--tenant",
            "lab",
        ])
        .await;
        assert_eq!(run.code, ExitCode::from(2));
        assert!(run.err.contains("line "), "{}", run.err);
        assert!(!run.err.contains("Zq8~pasted"), "{}", run.err);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn every_member_the_api_sent_is_printed_as_it_sent_it() {
    let simulator = simulator().await;
    simulator.add_action_member(
        "futureMember",
        serde_json::json!({"weight": 2.50, "tags": []}),
    );
    let run = quarantine(&simulator, MACHINE, SHA1, COMMENT).await;
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    // As the simulator wrote it: the member's name, order and values.
    assert!(
        run.out
            .contains(r#""futureMember":{"weight":2.5,"tags":[]}"#),
        "{}",
        run.out
    );
    let action: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    for member in [
        "title",
        "scope",
        "externalId",
        "commands",
        "lastUpdateDateTimeUtc",
    ] {
        assert!(action.get(member).is_some(), "{member} in {}", run.out);
    }
    assert_eq!(action["futureMember"]["tags"], serde_json::json!([]));

    let run = cli_owned(quarantine_args(
        &simulator,
        &[
            "--machine-id",
            OTHER,
            "--machine-id",
            integration_tests::FLEET[2],
        ],
        &["--sha1", SHA1],
    ))
    .await;
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    let outcomes: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(outcomes[1]["action"]["futureMember"]["weight"], 2.5);
    assert_eq!(outcomes[1]["action"]["externalId"], serde_json::Value::Null);
}

#[tokio::test]
async fn the_apis_json_is_compacted_and_what_a_terminal_acts_on_escaped() {
    let simulator = simulator().await;
    let sent = "a\u{9b}2J\u{202e}b\u{2028}\u{85}\u{1b}[0m";
    simulator.add_action_member("note", serde_json::json!(sent));
    let run = quarantine(&simulator, MACHINE, SHA1, COMMENT).await;
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    // One line, every member as sent: the characters written as JSON escapes, so the text
    // reads back the same and nothing reaches the terminal raw.
    assert_eq!(run.out.trim_end().lines().count(), 1, "{}", run.out);
    assert!(
        run.out
            .contains(r#""note":"a\u009b2J\u202eb\u2028\u0085\u001b[0m""#),
        "{}",
        run.out
    );
    assert!(
        !run.out
            .contains(['\u{9b}', '\u{202e}', '\u{2028}', '\u{85}', '\u{1b}'])
    );
    let action: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(action["note"], sent);
}

#[tokio::test]
async fn an_error_entry_from_the_api_reaches_stdout_escaped() {
    let simulator = simulator().await;
    let reply = Reply::Error {
        status: 404,
        code: "Not\u{9b}2JFound".into(),
        message: "gone\u{202e}".into(),
    };
    simulator.reply_for_machine(OTHER, reply);
    let run = cli_owned(quarantine_args(
        &simulator,
        &["--machine-id", MACHINE, "--machine-id", OTHER],
        &["--sha1", SHA1],
    ))
    .await;
    assert_eq!(run.code, ExitCode::FAILURE, "{}", run.err);
    assert!(!run.out.contains(['\u{9b}', '\u{202e}']), "{}", run.out);
    let outcomes: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(outcomes[1]["error"]["code"], "Not\u{9b}2JFound");
}

#[tokio::test]
async fn cancel_on_timeout_cancels_what_is_still_pending_and_needs_wait() {
    let simulator = simulator().await;
    simulator.set_progression(defender_simulator::Progression::StayPending);
    let run = cli_owned(quarantine_args(
        &simulator,
        &["--machine-id", MACHINE, "--machine-id", OTHER],
        &[
            "--sha1",
            SHA1,
            "--wait",
            "--timeout",
            "3",
            "--cancel-on-timeout",
        ],
    ))
    .await;
    assert_eq!(run.code, ExitCode::SUCCESS, "{}", run.err);
    let outcomes: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    let outcomes = outcomes.as_array().unwrap();
    assert_eq!(outcomes.len(), 2);
    for outcome in outcomes {
        assert_eq!(outcome["action"]["status"], "Cancelled", "{outcome}");
        let reason = outcome["action"]["cancellationComment"].as_str().unwrap();
        assert!(reason.starts_with("Wait timed out"), "{reason}");
    }
    let cancels = simulator
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/cancel"))
        .count();
    assert_eq!(cancels, 2);

    // Without `--wait` there is no timeout to cancel at: refused before anything is sent.
    let before = simulator.requests().len();
    let run = cli_owned(quarantine_args(
        &simulator,
        &["--machine-id", MACHINE],
        &["--sha1", SHA1, "--cancel-on-timeout"],
    ))
    .await;
    assert_eq!(run.code, ExitCode::from(2), "{}", run.err);
    assert_eq!(simulator.requests().len(), before);
}

#[tokio::test]
async fn a_failed_last_poll_and_a_failed_cancellation_are_printed_and_exit_1() {
    let simulator = simulator().await;
    simulator.set_progression(defender_simulator::Progression::StayPending);
    // Every poll of the actions is refused (the listing, then each GET); the first
    // cancellation at the timeout fails for good (four 503s), the second goes through.
    for pattern in ["/api/machineactions", "/api/machineactions/*"] {
        simulator
            .script_route("GET", pattern, vec![Reply::error(403, "Forbidden"); 20])
            .unwrap();
    }
    simulator
        .script_route(
            "POST",
            "/api/machineactions/*/cancel",
            vec![Reply::error(503, "ServiceUnavailable\u{1b}[2J"); 4],
        )
        .unwrap();
    let run = cli_owned(quarantine_args(
        &simulator,
        &["--machine-id", MACHINE, "--machine-id", OTHER],
        &[
            "--sha1",
            SHA1,
            "--wait",
            "--timeout",
            "6",
            "--cancel-on-timeout",
        ],
    ))
    .await;
    assert_eq!(run.code, ExitCode::FAILURE, "{}", run.err);
    let outcomes: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    let outcomes = outcomes.as_array().unwrap();
    assert_eq!(outcomes.len(), 2);
    // The first: its polls and its cancellation failed, the last status seen kept.
    let first = &outcomes[0];
    assert_eq!(first["action"]["status"], "Pending");
    assert_eq!(first["pollError"]["kind"], "forbidden", "{first}");
    assert_eq!(first["cancelError"]["kind"], "upstream", "{first}");
    assert_eq!(first["cancelError"]["status"], 503);
    assert!(first["cancelError"]["target"].is_string());
    // The second: cancelled, which is a look that succeeded.
    let second = &outcomes[1];
    assert_eq!(second["action"]["status"], "Cancelled");
    assert!(second.get("pollError").is_none() && second.get("cancelError").is_none());
    assert!(
        run.err
            .contains("its last poll failed, the last status seen is shown"),
        "{}",
        run.err
    );
    assert!(
        run.err.contains("cancelling it failed, it may still run"),
        "{}",
        run.err
    );
    assert!(!run.err.contains('\u{1b}'), "escaped: {}", run.err);
    assert!(!run.out.contains('\u{1b}'), "escaped: {}", run.out);
}
