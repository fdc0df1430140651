//! swarm-agent: the Docker Swarm node companion (see docs/swarm-agent.md).
//!
//! `main.rs` only parses the command line and calls [`run`].

// One folder per role (docs/architecture.md has the map); no module reaches
// itself through its imports (the module_graph test):
// - foundation: the command line, errors, retries, the Docker engine;
// - `store`: the token store, the API secret, AWS clients;
// - `cluster`: the swarm as a manager sees it, its pure rules, the
//   leader's duties (reconcile, publish, registry auth, image prune);
// - `observe`: metrics, the action log, the status report and routes;
// - `autoscale`: replica autoscaling (policy, CPU measurement, controller);
// - `node`: this node's life (join, readiness, drain, leave, termination);
// - `agent_api`: the agents' HTTP API, its client and the fleet page;
// - `serve`: the long-running agent, wiring the above together.
mod agent_api;
mod autoscale;
mod backoff;
pub mod cli;
pub mod cluster;
pub mod engine;
mod error;
mod node;
pub mod observe;
mod serve;
mod store;

#[cfg(test)]
mod module_graph;

use cli::{Cli, Command, LogFormat};
pub use error::{Error, Result};

/// Exit code for failures (bad token, unreachable manager, …). `status`
/// uses its own codes (0/1/3) and 3 when it cannot report at all.
pub const EXIT_FAILURE: u8 = 1;

/// `init` on a manager whose swarm another manager founds (the store's
/// `founder` entry is theirs): not a failure, the caller joins instead.
pub const EXIT_FOUNDED_ELSEWHERE: u8 = 4;

/// Run one subcommand; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let dry_run = cli.global.dry_run;
    let result = dispatch(cli).await;
    match result {
        Ok(code) => code,
        Err((e, code)) => {
            tracing::error!(error = %e, dry_run, "failed");
            eprintln!("swarm-agent: {e}");
            code
        }
    }
}

async fn dispatch(cli: Cli) -> std::result::Result<u8, (Error, u8)> {
    if let Command::Status(a) = &cli.command
        && a.json
    {
        return Ok(status_json(&cli).await);
    }
    let fail = |e: Error| (e, EXIT_FAILURE);
    let g = &cli.global;
    let is_status = matches!(cli.command, Command::Status(_));
    let engine = engine::Engine::connect(&g.docker_host, g.engine_wait)
        .await
        .map_err(|e| {
            (
                e,
                if is_status {
                    cluster::rules::Health::Down.exit_code()
                } else {
                    EXIT_FAILURE
                },
            )
        })?;
    match &cli.command {
        Command::Init(a) => {
            cluster::init::run(&engine, a, g.dry_run)
                .await
                .map_err(|e| match e {
                    Error::FoundedElsewhere { .. } => (e, EXIT_FOUNDED_ELSEWHERE),
                    e => fail(e),
                })?
        }
        Command::Join(a) => node::join::run(&engine, a, g.dry_run).await.map_err(fail)?,
        Command::Leave(a) => node::leave::run(&engine, a, g.dry_run)
            .await
            .map_err(fail)?,
        Command::Serve(a) => serve::run(engine, a, g.dry_run).await.map_err(fail)?,
        Command::Status(a) => {
            return observe::status::run(&engine, a)
                .await
                .map(|h| h.exit_code())
                .map_err(|e| (e, cluster::rules::Health::Down.exit_code()));
        }
    }
    Ok(0)
}

/// `status --json`: every outcome, a failure to report included, is one JSON
/// document on stdout, so a script never has to parse a log line.
async fn status_json(cli: &Cli) -> u8 {
    let g = &cli.global;
    let down = cluster::rules::Health::Down.exit_code();
    let failed = |e: Error| {
        println!(
            "{}",
            serde_json::json!({ "health": "down", "error": e.to_string() })
        );
        down
    };
    let engine = match engine::Engine::connect(&g.docker_host, g.engine_wait).await {
        Ok(engine) => engine,
        Err(e) => return failed(e),
    };
    let Command::Status(args) = &cli.command else {
        unreachable!("status_json runs for `status --json` only")
    };
    match observe::status::full_report(&engine, args).await {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serialises")
            );
            report.swarm.health.exit_code()
        }
        Err(e) => failed(e),
    }
}

/// Logs go to stderr so `status --json` output on stdout stays parseable;
/// colour only on a terminal (journald and files get plain text).
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWARM_AGENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
