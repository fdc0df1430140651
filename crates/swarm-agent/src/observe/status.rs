//! `swarm-agent status`: the swarm's snapshot with the autoscaled services
//! measured, as two tables for people or as JSON.

use std::fmt::Write as _;

use std::time::Duration;

use serde::Serialize;

use crate::agent_api::client::Peers;
use crate::autoscale::controller::{self, Overview};
use crate::cli::StatusArgs;
use crate::cluster::model::ServiceView;
use crate::cluster::registry_auth;
use crate::cluster::rules::{Health, pending_line};
use crate::cluster::snapshot::{Report, snapshot};
use crate::engine::Engine;
use crate::error::Result;
use crate::store::secret::read_secret;

/// What `status` prints: the snapshot, and the autoscaled services measured
/// (their CPU now, which only this command takes the second to measure).
#[derive(Debug, Clone, Serialize)]
pub struct FullReport {
    #[serde(flatten)]
    pub swarm: Report,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub autoscale: Vec<Overview>,
}

/// "registry auth: 3 services renewed by the leader, oldest 2h 5m ago (bookstore_proxy)".
pub fn registry_auth_line(services: &[ServiceView], now: time::OffsetDateTime) -> Option<String> {
    let (oldest, age) = registry_auth::oldest(services, now)?;
    let renewed = services
        .iter()
        .filter(|s| registry_auth::renewed_at(s).is_some())
        .count();
    let age = Duration::from_secs(age.as_secs() / 60 * 60);
    Some(format!(
        "registry auth: {renewed} service{} renewed by the leader, oldest {} ago ({})",
        if renewed == 1 { "" } else { "s" },
        if age.is_zero() {
            "under a minute".to_string()
        } else {
            humantime::format_duration(age).to_string()
        },
        oldest.name
    ))
}

/// The report for people: two tables, then warnings, then the verdict.
pub fn render_table(full: &FullReport) -> String {
    let r = &full.swarm;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<27} {:<16} {:<8} {:<13} {:<8} {:<12} LABELS",
        "NODE", "HOSTNAME", "ROLE", "STATE", "AVAIL", "MANAGER"
    );
    for n in &r.nodes {
        let manager = match (n.is_manager(), n.leader, n.reachable) {
            (false, _, _) => "-",
            (true, true, _) => "leader",
            (true, false, Some(true)) => "reachable",
            _ => "unreachable",
        };
        let me = if n.id == r.node_id { " *" } else { "" };
        let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "{:<27} {:<16} {:<8} {:<13} {:<8} {:<12} {}",
            format!("{}{me}", n.id),
            n.hostname,
            format!("{:?}", n.role).to_lowercase(),
            n.state,
            n.availability,
            manager,
            labels.join(",")
        );
    }
    let m = &r.managers;
    let _ = writeln!(
        out,
        "\nmanagers: {} total, {} reachable, quorum {}, margin {}\n",
        m.total, m.reachable, m.quorum, m.margin
    );
    let _ = writeln!(
        out,
        "{:<28} {:<11} {:>9} {:<20}",
        "SERVICE", "MODE", "RUNNING", "UPDATE"
    );
    for s in &r.services {
        let _ = writeln!(
            out,
            "{:<28} {:<11} {:>9} {:<20}",
            s.name,
            s.mode,
            format!("{}/{}", s.running, s.desired),
            if s.update_state.is_empty() {
                "-"
            } else {
                &s.update_state
            }
        );
        if s.pending > 0 {
            let _ = writeln!(out, "  {}", pending_line(s));
        }
    }
    if let Some(line) = registry_auth_line(&r.services, time::OffsetDateTime::now_utc()) {
        let _ = writeln!(out, "\n{line}");
    }
    if !full.autoscale.is_empty() {
        render_autoscale(&mut out, &full.autoscale);
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out, "\nhealth: {:?}", r.health);
    out
}

/// Autoscaled services: CPU now against the thresholds, replicas against
/// the bounds, the last scale an agent made.
fn render_autoscale(out: &mut String, rows: &[Overview]) {
    let _ = writeln!(
        out,
        "\n{:<28} {:>8} {:>9} {:>7} {:>9}  LAST DECISION",
        "AUTOSCALED", "CPU NOW", "REPLICAS", "BOUNDS", "OUT/IN"
    );
    for a in rows {
        let Some(p) = &a.policy else {
            let problem = a.problem.as_deref().unwrap_or_default();
            let _ = writeln!(out, "{:<28} not autoscaled: {problem}", a.service);
            continue;
        };
        let cpu = a
            .cpu_now
            .map_or_else(|| "-".into(), |c| format!("{c:.0} %"));
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:>9} {:>7} {:>9}  {}",
            a.service,
            cpu,
            format!("{}/{}", a.running, a.desired),
            format!("{}-{}", p.min, p.max),
            format!("{:.0}/{:.0} %", p.cpu_out, p.cpu_in),
            a.last_decision.as_deref().unwrap_or("none yet")
        );
        if a.measured < a.running as usize {
            let _ = writeln!(
                out,
                "{:<28} CPU of {} of {} replicas (not measured on: {})",
                "",
                a.measured,
                a.running,
                if a.missing_nodes.is_empty() {
                    "-".to_string()
                } else {
                    a.missing_nodes.join(", ")
                }
            );
        }
    }
}

/// The snapshot with the autoscaled services measured: what `status` prints.
pub async fn full_report(engine: &Engine, args: &StatusArgs) -> Result<FullReport> {
    let swarm = snapshot(engine).await?;
    let peers = match read_secret(&args.secret)? {
        Some(secret) => Some(Peers::new(secret, args.agent_port)?),
        None => None,
    };
    let autoscale = controller::overview(engine, &swarm, peers.as_ref()).await;
    Ok(FullReport { swarm, autoscale })
}

/// `swarm-agent status`: prints the report, returns the health for the exit code.
pub async fn run(engine: &Engine, args: &StatusArgs) -> Result<Health> {
    let report = full_report(engine, args).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print!("{}", render_table(&report));
    }
    Ok(report.swarm.health)
}
