//! Plain views of swarm nodes and services: the engine's deeply optional
//! structs are flattened once here, so the decision logic (reconcile, status)
//! is written and unit-tested against simple values.

use std::collections::BTreeMap;

use bollard::models::{
    Node, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState, Reachability, Service,
    ServiceSpecUpdateConfigOrderEnum, ServiceUpdateStatusStateEnum, Task, TaskState,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manager,
    Worker,
}

/// Whether the scheduler may place tasks on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Active,
    Pause,
    Drain,
}

/// What the managers last heard of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Ready,
    Down,
    Disconnected,
    Unknown,
}

/// How a service's tasks are counted (jobs of either kind are `Job`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    Replicated,
    Global,
    Job,
}

/// The engine's word for each, which tables, metrics labels and messages show.
macro_rules! shown_as_engine_word {
    ($type:ty { $($variant:ident => $word:literal),+ }) => {
        impl $type {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $word),+ }
            }
        }
        impl std::fmt::Display for $type {
            // `pad`, so the status table's column widths apply.
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}
shown_as_engine_word!(Availability { Active => "active", Pause => "pause", Drain => "drain" });
shown_as_engine_word!(NodeStatus { Ready => "ready", Down => "down", Disconnected => "disconnected", Unknown => "unknown" });
shown_as_engine_word!(ServiceMode { Replicated => "replicated", Global => "global", Job => "job" });

impl From<Option<NodeSpecAvailabilityEnum>> for Availability {
    fn from(a: Option<NodeSpecAvailabilityEnum>) -> Self {
        match a {
            Some(NodeSpecAvailabilityEnum::PAUSE) => Availability::Pause,
            Some(NodeSpecAvailabilityEnum::DRAIN) => Availability::Drain,
            // The engine's default when the spec leaves it out.
            _ => Availability::Active,
        }
    }
}

impl From<Option<NodeState>> for NodeStatus {
    fn from(s: Option<NodeState>) -> Self {
        match s {
            Some(NodeState::READY) => NodeStatus::Ready,
            Some(NodeState::DOWN) => NodeStatus::Down,
            Some(NodeState::DISCONNECTED) => NodeStatus::Disconnected,
            _ => NodeStatus::Unknown,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub id: String,
    pub hostname: String,
    pub role: Role,
    pub availability: Availability,
    pub state: NodeStatus,
    /// Managers only: whether raft can reach it.
    pub reachable: Option<bool>,
    pub leader: bool,
    pub addr: String,
    pub labels: BTreeMap<String, String>,
    /// Last change of the node object; for a Down node, roughly when it went down.
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

impl NodeView {
    pub fn is_down(&self) -> bool {
        self.state == NodeStatus::Down
    }

    pub fn is_ready(&self) -> bool {
        self.state == NodeStatus::Ready
    }

    pub fn is_manager(&self) -> bool {
        self.role == Role::Manager
    }
}

impl From<&Node> for NodeView {
    fn from(n: &Node) -> Self {
        let spec = n.spec.clone().unwrap_or_default();
        let status = n.status.clone().unwrap_or_default();
        let manager = n.manager_status.clone();
        NodeView {
            id: n.id.clone().unwrap_or_default(),
            hostname: n
                .description
                .as_ref()
                .and_then(|d| d.hostname.clone())
                .unwrap_or_default(),
            role: match spec.role {
                Some(NodeSpecRoleEnum::MANAGER) => Role::Manager,
                _ => Role::Worker,
            },
            availability: spec.availability.into(),
            state: status.state.into(),
            reachable: manager
                .as_ref()
                .map(|m| m.reachability == Some(Reachability::REACHABLE)),
            leader: manager.as_ref().and_then(|m| m.leader).unwrap_or(false),
            addr: status.addr.unwrap_or_default(),
            labels: spec.labels.unwrap_or_default().into_iter().collect(),
            updated_at: n.updated_at.as_deref().and_then(parse_time),
        }
    }
}

pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    pub id: String,
    pub name: String,
    /// The image its tasks run ("registry/repository:tag@digest").
    pub image: String,
    pub mode: ServiceMode,
    pub desired: u64,
    pub running: u64,
    /// Engine update state (`updating`, `completed`, `rollback_completed`, …) or empty.
    pub update_state: String,
    pub has_healthcheck: bool,
    /// `stop-first` (the engine default) or `start-first`.
    pub update_order: String,
    pub labels: BTreeMap<String, String>,
    /// Last change of the service's spec (a deploy, an update, a scale).
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// Each task's CPU limit in cores (`deploy.resources.limits.cpus`).
    pub cpu_limit: Option<f64>,
    /// `deploy.placement.max_replicas_per_node` (None: no cap).
    pub max_per_node: Option<u64>,
    /// The service has placement constraints (which nodes qualify is then
    /// the scheduler's knowledge, not a count the agent can make).
    pub constrained: bool,
    /// Tasks the swarm wants running that no node has started: not placed
    /// yet, or waiting for room. Filled from the task list by the snapshot.
    pub pending: u64,
    /// Why the first of those waits, as the scheduler says it
    /// ("no suitable node (max replicas per node limit exceed)").
    pub pending_reason: Option<String>,
}

impl ServiceView {
    pub fn converged(&self) -> bool {
        self.running >= self.desired
    }

    pub fn updating(&self) -> bool {
        matches!(
            self.update_state.as_str(),
            "updating" | "rollback_started" | "paused" | "rollback_paused"
        )
    }
}

impl From<&Service> for ServiceView {
    fn from(s: &Service) -> Self {
        let spec = s.spec.clone().unwrap_or_default();
        let mode = spec.mode.clone().unwrap_or_default();
        let mode = if mode.global.is_some() {
            ServiceMode::Global
        } else if mode.replicated_job.is_some() || mode.global_job.is_some() {
            ServiceMode::Job
        } else {
            ServiceMode::Replicated
        };
        let counts = s.service_status.clone().unwrap_or_default();
        let health = spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.health_check.as_ref())
            .and_then(|h| h.test.clone());
        let order = spec
            .update_config
            .as_ref()
            .and_then(|u| u.order)
            .filter(|o| *o == ServiceSpecUpdateConfigOrderEnum::START_FIRST)
            .map_or("stop-first", |_| "start-first");
        ServiceView {
            id: s.id.clone().unwrap_or_default(),
            name: spec.name.clone().unwrap_or_default(),
            image: spec
                .task_template
                .as_ref()
                .and_then(|t| t.container_spec.as_ref())
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            mode,
            desired: counts.desired_tasks.unwrap_or(0),
            running: counts.running_tasks.unwrap_or(0),
            update_state: s
                .update_status
                .as_ref()
                .and_then(|u| u.state)
                .filter(|st| *st != ServiceUpdateStatusStateEnum::EMPTY)
                .map(|st| st.to_string())
                .unwrap_or_default(),
            // ["NONE"] explicitly disables an image's HEALTHCHECK.
            has_healthcheck: health.is_some_and(|t| t.first().is_some_and(|c| c != "NONE")),
            update_order: order.into(),
            cpu_limit: spec
                .task_template
                .as_ref()
                .and_then(|t| t.resources.as_ref())
                .and_then(|r| r.limits.as_ref())
                .and_then(|l| l.nano_cpus)
                .filter(|n| *n > 0)
                .map(|n| n as f64 / 1e9),
            max_per_node: placement(&spec)
                .and_then(|p| p.max_replicas)
                .filter(|n| *n > 0)
                .map(|n| n as u64),
            constrained: placement(&spec)
                .and_then(|p| p.constraints.as_ref())
                .is_some_and(|c| !c.is_empty()),
            pending: 0,
            pending_reason: None,
            labels: spec.labels.unwrap_or_default().into_iter().collect(),
            updated_at: s.updated_at.as_deref().and_then(parse_time),
        }
    }
}

fn placement(spec: &bollard::models::ServiceSpec) -> Option<&bollard::models::TaskSpecPlacement> {
    spec.task_template.as_ref()?.placement.as_ref()
}

/// Fills each service's `pending` and `pending_reason` from the task list:
/// tasks the swarm wants running that have not started.
pub fn count_pending(services: &mut [ServiceView], tasks: &[TaskView]) {
    for s in services.iter_mut() {
        let mut waiting = tasks
            .iter()
            .filter(|t| t.service_id == s.id && t.desired && t.waiting);
        let first = waiting.next();
        s.pending = first.map_or(0, |_| 1 + waiting.count() as u64);
        s.pending_reason = first.and_then(|t| t.reason.clone());
    }
}

/// Where one task is meant to run and whether it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    pub service_id: String,
    pub node_id: String,
    /// The swarm wants it running (not shut down or superseded).
    pub desired: bool,
    pub running: bool,
    /// Not started yet: new, pending (no node has room), assigned, …
    pub waiting: bool,
    /// The scheduler's or the engine's word on it ("no suitable node (…)").
    pub reason: Option<String>,
}

impl From<&Task> for TaskView {
    fn from(t: &Task) -> Self {
        TaskView {
            service_id: t.service_id.clone().unwrap_or_default(),
            node_id: t.node_id.clone().unwrap_or_default(),
            desired: t.desired_state == Some(TaskState::RUNNING),
            running: t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING),
            waiting: matches!(
                t.status.as_ref().and_then(|s| s.state),
                Some(
                    TaskState::NEW
                        | TaskState::ALLOCATED
                        | TaskState::PENDING
                        | TaskState::ASSIGNED
                        | TaskState::ACCEPTED
                        | TaskState::PREPARING
                )
            ),
            reason: t
                .status
                .as_ref()
                .and_then(|s| {
                    s.err
                        .clone()
                        .filter(|e| !e.is_empty())
                        .or(s.message.clone())
                })
                .filter(|r| !r.is_empty()),
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A ready, active worker with nothing else set: a base for test cases.
    pub fn worker(id: &str) -> NodeView {
        NodeView {
            id: id.into(),
            hostname: id.into(),
            role: Role::Worker,
            availability: Availability::Active,
            state: NodeStatus::Ready,
            reachable: None,
            leader: false,
            addr: String::new(),
            labels: BTreeMap::new(),
            updated_at: None,
        }
    }

    /// A replicated service with a healthcheck and start-first updates, no
    /// labels and no CPU limit: a base for test cases.
    pub fn replicated(id: &str, name: &str, running: u64, desired: u64) -> ServiceView {
        ServiceView {
            id: id.into(),
            name: name.into(),
            image: "bookstore/storefront:1".into(),
            mode: ServiceMode::Replicated,
            desired,
            running,
            update_state: String::new(),
            has_healthcheck: true,
            update_order: "start-first".into(),
            cpu_limit: None,
            max_per_node: None,
            constrained: false,
            pending: 0,
            pending_reason: None,
            labels: BTreeMap::new(),
            updated_at: None,
        }
    }
}
