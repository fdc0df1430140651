//! The binary's contract without any engine: help text, env variables,
//! and a clear failure (not an endless retry) when the engine is missing.

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_swarm-agent");

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String, Duration) {
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
        started.elapsed(),
    )
}

#[test]
fn every_subcommand_explains_its_flags_and_variables() {
    for (cmd, flags) in [
        (
            "init",
            &[
                "--token-store",
                "--rotate-worker-token",
                "--advertise-addr",
                "--dry-run",
            ][..],
        ),
        (
            "join",
            &[
                "--manager",
                "--label",
                "--imds",
                "--deadline",
                "--role",
                "SWARM_AGENT_MANAGERS",
            ][..],
        ),
        (
            "leave",
            &[
                "--agent-url",
                "--api-secret-file",
                "--deadline",
                "--dry-run",
            ][..],
        ),
        ("status", &["--json"][..]),
        (
            "leave",
            &[
                "--token-store",
                "--lb-drain-delay",
                "SWARM_AGENT_TOKEN_STORE",
            ][..],
        ),
        (
            "serve",
            &[
                "--metrics-addr",
                "--api-addr",
                "--down-grace",
                "--rebalance-label",
                "SWARM_AGENT_DOWN_GRACE",
                "--asg-name",
                "--lifecycle-hook",
                "--lb-check-url",
                "--worker-label-key",
                "SWARM_AGENT_IMDS",
            ][..],
        ),
    ] {
        let (code, out, _, _) = run(&[cmd, "--help"], &[]);
        assert_eq!(code, 0);
        for f in flags {
            assert!(out.contains(f), "`{cmd} --help` lacks {f}:\n{out}");
        }
    }
}

#[test]
fn missing_engine_fails_clearly_within_the_wait() {
    let (code, _, err, took) = run(
        &[
            "--docker-host",
            "unix:///nonexistent/docker.sock",
            "--engine-wait",
            "1s",
            "join",
            "--token-store",
            "file:/nonexistent",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("Docker engine not reachable at unix:///nonexistent/docker.sock"),
        "{err}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn status_without_engine_exits_down() {
    let (code, _, err, _) = run(
        &["status"],
        &[
            ("SWARM_AGENT_DOCKER_HOST", "unix:///nonexistent.sock"),
            ("SWARM_AGENT_ENGINE_WAIT", "300ms"),
        ],
    );
    assert_eq!(code, 3, "{err}");
}

#[test]
fn status_json_is_json_even_when_it_cannot_report() {
    let (code, out, _, _) = run(
        &["status", "--json"],
        &[
            ("SWARM_AGENT_DOCKER_HOST", "unix:///nonexistent.sock"),
            ("SWARM_AGENT_ENGINE_WAIT", "300ms"),
        ],
    );
    assert_eq!(code, 3);
    let report: serde_json::Value =
        serde_json::from_str(&out).expect("stdout is one JSON document");
    assert_eq!(report["health"], "down");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("not reachable")),
        "{report}"
    );
}

#[test]
fn bad_flag_values_are_rejected_before_anything_runs() {
    let (code, _, err, _) = run(
        &["join", "--token-store", "file:/x", "--deadline", "soon"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--deadline"), "{err}");
}
