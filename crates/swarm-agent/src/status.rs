//! One snapshot of the swarm as seen from a manager: used by `status`, by the
//! `/status` endpoint and by every reconcile pass.

use std::fmt::Write as _;

use bollard::models::LocalNodeState;
use serde::Serialize;

use crate::autoscaler::{self, Overview};
use crate::cli::StatusArgs;
use crate::cpu::Peers;
use crate::decide::{self, Health, ManagerCounts};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{NodeView, ServiceView, TaskView};
use crate::registry_auth;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub node_id: String,
    pub health: Health,
    pub managers: ManagerCounts,
    pub nodes: Vec<NodeView>,
    pub services: Vec<ServiceView>,
    pub warnings: Vec<String>,
    /// Autoscaled services; filled by `status` only (it measures CPU).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub autoscale: Vec<Overview>,
}

pub async fn snapshot(engine: &Engine) -> Result<Report> {
    let local = engine.local_swarm().await?;
    if local.state != LocalNodeState::ACTIVE {
        return Err(Error::NotInSwarm);
    }
    if !local.is_manager {
        return Err(Error::NotManager { command: "status" });
    }
    let mut nodes: Vec<NodeView> = engine.nodes().await?.iter().map(NodeView::from).collect();
    nodes.sort_by(|a, b| {
        (a.role != crate::model::Role::Manager, &a.hostname, &a.id).cmp(&(
            b.role != crate::model::Role::Manager,
            &b.hostname,
            &b.id,
        ))
    });
    let mut services: Vec<ServiceView> = engine
        .services()
        .await?
        .iter()
        .map(ServiceView::from)
        .collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    let tasks: Vec<TaskView> = engine.tasks().await?.iter().map(TaskView::from).collect();
    crate::model::count_pending(&mut services, &tasks);
    Ok(Report {
        node_id: local.node_id.unwrap_or_default(),
        health: decide::health(&nodes, &services),
        managers: decide::manager_counts(&nodes),
        warnings: decide::warnings(&services),
        autoscale: Vec::new(),
        nodes,
        services,
    })
}

/// "2 replicas pending: no suitable node (max replicas per node limit exceed)",
/// and what happens next when the reason is the per-node cap.
pub fn pending_line(s: &ServiceView) -> String {
    let reason = s.pending_reason.as_deref().unwrap_or("not started yet");
    let mut line = format!(
        "{} {} pending: {reason}",
        s.pending,
        if s.pending == 1 {
            "replica"
        } else {
            "replicas"
        }
    );
    if reason.contains("max replicas per node") {
        line.push_str(
            " (every node holds its cap; they start when a node joins: the group's CPU alarm adds one)",
        );
    }
    line
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
pub fn render_table(r: &Report) -> String {
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
    if !r.autoscale.is_empty() {
        render_autoscale(&mut out, &r.autoscale);
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
pub async fn full_report(engine: &Engine, args: &StatusArgs) -> Result<Report> {
    let mut report = snapshot(engine).await?;
    let peers = match crate::api::read_secret(&args.secret)? {
        Some(secret) => Some(Peers::new(secret, args.agent_port)?),
        None => None,
    };
    report.autoscale = autoscaler::overview(engine, &report, peers.as_ref()).await;
    Ok(report)
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
    Ok(report.health)
}
