//! Node changes made through a manager's engine: drain, labels, and the
//! "has the drain finished" question `leave` waits on.

use std::collections::BTreeMap;

use bollard::models::{NodeSpecAvailabilityEnum, TaskState};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::cluster::model::{Availability, NodeView, ServiceMode, ServiceView};
use crate::engine::Engine;
use crate::error::Result;

/// Set the node to `drain` unless it already is. Returns whether it changed.
pub async fn drain(engine: &Engine, id: &str, why: &str, dry_run: bool) -> Result<bool> {
    let node = NodeView::from(&engine.node(id).await?);
    if node.availability == Availability::Drain {
        info!(node = %id, "node already drained");
        return Ok(false);
    }
    if dry_run {
        info!(node = %id, reason = why, "dry-run: would drain node");
        return Ok(true);
    }
    engine
        .update_node(id, |spec| {
            spec.availability = Some(NodeSpecAvailabilityEnum::DRAIN)
        })
        .await?;
    info!(node = %id, reason = why, "drained node: the scheduler moves its tasks to other nodes");
    Ok(true)
}

/// Merge `labels` into the node's labels unless they are already there.
pub async fn apply_labels(
    engine: &Engine,
    id: &str,
    labels: &BTreeMap<String, String>,
    dry_run: bool,
) -> Result<bool> {
    let node = NodeView::from(&engine.node(id).await?);
    let missing: BTreeMap<_, _> = labels
        .iter()
        .filter(|(k, v)| node.labels.get(*k) != Some(*v))
        .collect();
    if missing.is_empty() {
        info!(node = %id, "node labels already set");
        return Ok(false);
    }
    if dry_run {
        info!(node = %id, labels = ?missing, "dry-run: would set node labels");
        return Ok(true);
    }
    engine
        .update_node(id, |spec| {
            let map = spec.labels.get_or_insert_with(Default::default);
            for (k, v) in labels {
                map.insert(k.clone(), v.clone());
            }
        })
        .await?;
    info!(node = %id, labels = ?missing, "set node labels (placement constraints and zone spreading use them)");
    Ok(true)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainProgress {
    pub availability: Availability,
    /// Tasks still alive on the node.
    pub tasks_remaining: usize,
    /// Services below their desired count anywhere in the swarm.
    pub services_pending: Vec<String>,
    pub done: bool,
}

fn task_alive(state: Option<TaskState>) -> bool {
    !matches!(
        state,
        Some(
            TaskState::COMPLETE
                | TaskState::FAILED
                | TaskState::SHUTDOWN
                | TaskState::REJECTED
                | TaskState::ORPHANED
                | TaskState::REMOVE
        )
    )
}

/// Done when the node is drained, nothing runs on it any more, and every
/// service is back to its desired count elsewhere: only then does leaving
/// cost users nothing.
pub async fn progress(engine: &Engine, id: &str) -> Result<DrainProgress> {
    let node = NodeView::from(&engine.node(id).await?);
    let tasks = engine.tasks_on_node(id).await?;
    let tasks_remaining = tasks
        .iter()
        .filter(|t| task_alive(t.status.as_ref().and_then(|s| s.state)))
        .count();
    let services_pending: Vec<String> = engine
        .services()
        .await?
        .iter()
        .map(ServiceView::from)
        .filter(|s| s.mode != ServiceMode::Job && !s.converged())
        .map(|s| s.name)
        .collect();
    let done = node.availability == Availability::Drain
        && tasks_remaining == 0
        && services_pending.is_empty();
    Ok(DrainProgress {
        availability: node.availability,
        tasks_remaining,
        services_pending,
        done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_tasks_do_not_hold_up_a_drain() {
        assert!(task_alive(Some(TaskState::RUNNING)));
        assert!(task_alive(Some(TaskState::PREPARING)));
        assert!(task_alive(None));
        assert!(!task_alive(Some(TaskState::SHUTDOWN)));
        assert!(!task_alive(Some(TaskState::COMPLETE)));
    }
}
