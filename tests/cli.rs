//! The `credit-emulator` binary itself: flags, the listening line, health, and clean shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn spawn(args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_credit-emulator"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("a first line");
    (child, line.trim().to_string())
}

fn health(url: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::get(format!("{url}/_emulator/health"))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    })
}

#[test]
fn port_zero_prints_the_address_and_serves_health() {
    let (mut child, line) = spawn(&["--port", "0"], &[]);
    let url = line
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    assert_eq!(health(&url), 200);
    child.kill().ok();
    child.wait().ok();
}

/// A port that was free a moment ago: bound, read, released.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn port_from_the_environment() {
    let port = free_port();
    let (mut child, line) = spawn(&[], &[("PORT", &port.to_string())]);
    assert_eq!(line, format!("listening on http://127.0.0.1:{port}"));
    assert_eq!(health(&format!("http://127.0.0.1:{port}")), 200);
    child.kill().ok();
    child.wait().ok();
}

#[test]
fn port_flag_wins_over_the_environment() {
    let (env_port, flag_port) = (free_port(), free_port());
    let (mut child, line) = spawn(
        &["--port", &flag_port.to_string()],
        &[("PORT", &env_port.to_string())],
    );
    assert_eq!(line, format!("listening on http://127.0.0.1:{flag_port}"));
    child.kill().ok();
    child.wait().ok();
}

#[cfg(unix)]
#[test]
fn sigterm_stops_cleanly() {
    let (mut child, line) = spawn(&["--port", "0"], &[]);
    let url = line.strip_prefix("listening on ").unwrap().to_string();
    assert_eq!(health(&url), 200);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = child.wait().expect("exits");
    assert!(exit.success(), "exit status {exit:?}");
}

/// Reads the first `n` lines the binary prints.
fn spawn_lines(args: &[&str], n: usize) -> (Child, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_credit-emulator"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("binary starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let lines = (0..n)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).expect("a line");
            line.trim().to_string()
        })
        .collect();
    (child, lines)
}

#[test]
fn forwarding_prints_the_signing_secret_after_the_listening_line() {
    let (mut child, lines) = spawn_lines(
        &["--port", "0", "--forward-to", "http://127.0.0.1:9/hook"],
        2,
    );
    assert!(lines[0].starts_with("listening on http://"), "{lines:?}");
    let secret = lines[1]
        .strip_prefix("forwarding events to http://127.0.0.1:9/hook; webhook signing secret ")
        .expect("the forwarding line");
    assert!(
        secret.starts_with("whsec_") && secret.len() > 20,
        "{secret}"
    );
    child.kill().ok();
    child.wait().ok();

    let (mut child, lines) = spawn_lines(
        &[
            "--port",
            "0",
            "--forward-to",
            "http://127.0.0.1:9/a",
            "--forward-to",
            "http://127.0.0.1:9/b",
            "--webhook-secret",
            "whsec_fixed",
            "--webhook-retry-schedule",
            "stripe",
            "--forward-events",
            "customer.created, invoice.paid,issuing_card.created",
        ],
        2,
    );
    assert_eq!(
        lines[1],
        "forwarding events to http://127.0.0.1:9/a, http://127.0.0.1:9/b; webhook signing secret whsec_fixed"
    );
    child.kill().ok();
    child.wait().ok();
}

#[test]
fn bad_webhook_flags_are_refused() {
    for args in [
        &["--forward-to", "ftp://example.com/x"][..],
        &["--forward-to", "example.com"],
        &["--webhook-secret", "secret"],
        &["--webhook-retry-schedule", "often"],
        &["--webhook-retry-schedule", "1,-2"],
        &["--forward-events", "customer.created,customer.exploded"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_credit-emulator"))
            .args(["--port", "0"])
            .args(args)
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{args:?} is refused");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(args[0]),
            "{args:?}: the error names the flag"
        );
    }
}

/// Every flag `--help` lists, exactly: a flag added to the command must be added here, and to the
/// README, which documents each of them.
#[test]
fn help_documents_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_credit-emulator"))
        .arg("--help")
        .output()
        .expect("help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut listed: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    listed.sort();
    listed.dedup();
    let expected = [
        "--body-read-timeout",
        "--data-dir",
        "--fixtures",
        "--fixtures-key",
        "--forward-events",
        "--forward-to",
        "--header-read-timeout",
        "--help",
        "--host",
        "--invoice-grace-period",
        "--log",
        "--max-body-bytes",
        "--max-connections",
        "--max-depth",
        "--max-header-bytes",
        "--max-idempotency-keys",
        "--max-json-depth",
        "--max-params",
        "--max-tenants",
        "--port",
        "--request-log",
        "--seed",
        "--version",
        "--webhook-retry-schedule",
        "--webhook-secret",
    ];
    assert_eq!(listed, expected, "the flags --help lists");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for flag in expected {
        assert!(readme.contains(flag), "README.md documents {flag}");
    }
}

/// `POST /v1/customers` with `key`, then its status and body.
fn create_customer(url: &str, key: &str) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{url}/v1/customers"))
            .bearer_auth(key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("name=Ada")
            .send()
            .await
            .expect("the emulator answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    })
}

#[test]
fn max_tenants_comes_from_the_flag_or_the_environment() {
    for (args, env) in [
        (&["--port", "0", "--max-tenants", "1"][..], &[][..]),
        (
            &["--port", "0"][..],
            &[("CREDIT_EMULATOR_MAX_TENANTS", "1")][..],
        ),
    ] {
        let (mut child, line) = spawn(args, env);
        let url = line.strip_prefix("listening on ").expect("listening line");
        assert_eq!(create_customer(url, "sk_test_cli_first").0, 200);
        let (status, body) = create_customer(url, "sk_test_cli_second");
        assert_eq!(status, 400, "{args:?} {env:?}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("(--max-tenants 1)")),
            "{body}"
        );
        child.kill().ok();
        child.wait().ok();
    }
    for args in [
        &["--max-tenants", "0"][..],
        &["--max-idempotency-keys", "0"],
        &["--max-tenants", "lots"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_credit-emulator"))
            .args(["--port", "0"])
            .args(args)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?} is refused");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(args[0]),
            "{args:?}: the error names the flag"
        );
    }
}
