//! One snapshot of the swarm as seen from a manager: used by `status`, by the
//! `/status` endpoint and by every reconcile pass.

use std::fmt::Write as _;

use bollard::models::LocalNodeState;
use serde::Serialize;

use crate::decide::{self, Health, ManagerCounts};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{NodeView, ServiceView};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub node_id: String,
    pub health: Health,
    pub managers: ManagerCounts,
    pub nodes: Vec<NodeView>,
    pub services: Vec<ServiceView>,
    pub warnings: Vec<String>,
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
    Ok(Report {
        node_id: local.node_id.unwrap_or_default(),
        health: decide::health(&nodes, &services),
        managers: decide::manager_counts(&nodes),
        warnings: decide::warnings(&services),
        nodes,
        services,
    })
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
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out, "\nhealth: {:?}", r.health);
    out
}

/// `swarm-agent status`: prints the report, returns the health for the exit code.
pub async fn run(engine: &Engine, json: bool) -> Result<Health> {
    let report = snapshot(engine).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print!("{}", render_table(&report));
    }
    Ok(report.health)
}
