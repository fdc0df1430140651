//! What the storefront writes to its log, read from the real binary's stderr.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::common::free_port;
use crate::helpers::fresh_database;

/// Starts the real binary on a fresh SQLite database with `env` added, waits
/// until it is ready, stops it, and returns what it wrote to its (piped) stderr.
async fn startup_log(env: &[(&str, &str)]) -> String {
    let (database_url, _dir) = fresh_database().await;
    let port = free_port();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_storefront"));
    command
        .env("DATABASE_URL", &database_url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("RUST_LOG", "info")
        .env_remove("LOG_FORMAT")
        .env_remove("REDIS_URL")
        .env_remove("TRUSTED_PROXIES")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut process = command.spawn().expect("the storefront binary starts");
    let started = Instant::now();
    while reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(started.elapsed() < Duration::from_secs(60), "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    process.kill().await.unwrap();
    let mut log = String::new();
    process
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await
        .unwrap();
    log
}

/// Colour codes belong on a terminal: in a file, a pipe or a log shipper
/// (the fleet's awslogs) they are noise, and an attacker's flood of log lines
/// should not carry them either.
#[tokio::test]
async fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let log = startup_log(&[]).await;
    assert!(log.contains("INFO"), "the binary logged at info: {log:?}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log: {log:?}"
    );
}

/// X-Forwarded-For is anyone's to write: by default no peer is believed
/// (before, loopback and every private range were), and the start says which
/// peers are, so an operator sees a missing or wrong TRUSTED_PROXIES at once.
#[tokio::test]
async fn the_start_says_whose_forwarded_for_is_believed_and_by_default_nobodys() {
    let log = startup_log(&[]).await;
    assert!(
        log.contains("X-Forwarded-For is not believed from any peer"),
        "default: {log}"
    );
    let log = startup_log(&[("TRUSTED_PROXIES", "10.0.0.0/8 localhost")]).await;
    assert!(
        log.contains("X-Forwarded-For is believed from these peers only")
            && log.contains("10.0.0.0/8, localhost (looked up every 5s)"),
        "with TRUSTED_PROXIES: {log}"
    );
}
