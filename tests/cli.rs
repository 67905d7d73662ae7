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

#[test]
fn port_from_the_environment() {
    let (mut child, line) = spawn(&[], &[("PORT", "0")]);
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
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

#[test]
fn help_documents_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_credit-emulator"))
        .arg("--help")
        .output()
        .expect("help");
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--host",
        "--port",
        "--seed",
        "--max-body-bytes",
        "--max-params",
        "--max-depth",
        "--max-json-depth",
        "--header-read-timeout",
        "--max-connections",
        "--max-header-bytes",
        "--log",
    ] {
        assert!(text.contains(flag), "--help mentions {flag}");
    }
}
