//! One snapshot of the swarm as seen from a manager: used by `status`, by the
//! `/status` endpoint and by every reconcile pass.

use bollard::models::LocalNodeState;
use serde::Serialize;

use crate::cluster::model::{NodeView, ServiceView, TaskView};
use crate::cluster::rules::{self, Health, ManagerCounts};
use crate::engine::Engine;
use crate::error::{Error, Result};

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
        (
            a.role != crate::cluster::model::Role::Manager,
            &a.hostname,
            &a.id,
        )
            .cmp(&(
                b.role != crate::cluster::model::Role::Manager,
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
    crate::cluster::model::count_pending(&mut services, &tasks);
    Ok(Report {
        node_id: local.node_id.unwrap_or_default(),
        health: rules::health(&nodes, &services),
        managers: rules::manager_counts(&nodes),
        warnings: rules::warnings(&services),
        nodes,
        services,
    })
}
