//! A new node's readiness, for its group's launch lifecycle hook.
//!
//! The group holds a new instance in `Pending:Wait` until this agent
//! completes the hook: until then the instance is not in the load balancer's
//! target group and does not count as in service, so a rolling update (the
//! template's `MinInstancesInService`) and the replica autoscaler wait for a
//! node that can serve, not for one that has merely booted.
//!
//! Ready means: the swarm sees the node `ready` and `active` (a manager: raft
//! reaches it too), and every task of a global service the swarm wants on it
//! runs (the proxy, which every node must run to serve). A node whose image
//! pulls fail (stale registry credentials) is therefore never ready: the hook
//! times out with `ABANDON` and the group launches another. Tasks of
//! replicated services are not waited for: their health is the shop's (a
//! storefront replica cannot turn healthy while MySQL is away), and the
//! scheduler can run them elsewhere; judging a node by them would have the
//! group replace good nodes when the shop is down. Before the first
//! `stack deploy` no task is wanted anywhere, so a node is ready once it has
//! joined.
//!
//! Only managers can read tasks: a worker asks a manager's agent
//! (`GET /v1/nodes/{id}/ready`, about itself only, see `agent_api`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::TaskState;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::agent_api::client::AgentClient;
use crate::cli::{ClusterArgs, LifecycleArgs};
use crate::cluster::model::{Availability, NodeView};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::observe::events::{Events, Kind};

/// How often a booting node looks again.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// Looks in a row that must find the node ready: a task the orchestrator
/// has not created yet cannot be seen missing, so one look right after the
/// join could pass too early.
const READY_LOOKS: u32 = 2;

/// One node's readiness, with what it still waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub waiting_for: Vec<String>,
}

/// A task the swarm wants running on the node, as far as readiness cares.
#[derive(Debug, Clone)]
pub struct WantedTask {
    pub service: String,
    pub state: String,
    pub error: Option<String>,
}

/// Whether `node`, with the tasks the swarm wants on it, is ready.
pub fn judge(node: &NodeView, tasks: &[WantedTask]) -> Readiness {
    let mut waiting_for = Vec::new();
    if !node.is_ready() {
        waiting_for.push(format!("the swarm sees the node {}", node.state));
    }
    if node.availability != Availability::Active {
        waiting_for.push(format!("the node is {}", node.availability));
    }
    if node.is_manager() && node.reachable != Some(true) {
        waiting_for.push("raft to reach this manager".into());
    }
    for t in tasks.iter().filter(|t| t.state != "running") {
        let why = t
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        waiting_for.push(format!("{} is {}{why}", t.service, t.state));
    }
    Readiness {
        ready: waiting_for.is_empty(),
        waiting_for,
    }
}

/// Readiness of node `id`, read from a manager's engine: the tasks of global
/// services wanted running there (or about to be, after a restart delay).
pub async fn of_node(engine: &Engine, id: &str) -> Result<Readiness> {
    let node = NodeView::from(&engine.node(id).await?);
    let global: HashMap<String, String> = engine
        .services()
        .await?
        .into_iter()
        .filter_map(|s| {
            let spec = s.spec?;
            spec.mode.as_ref()?.global.as_ref()?;
            Some((s.id?, spec.name?))
        })
        .collect();
    let tasks: Vec<WantedTask> = engine
        .tasks_on_node(id)
        .await?
        .into_iter()
        // A task restarting after a failure waits out its restart delay with
        // desired state `ready`: it is still wanted here.
        .filter(|t| matches!(t.desired_state, Some(TaskState::RUNNING | TaskState::READY)))
        .filter_map(|t| {
            let service = global.get(t.service_id.as_deref()?)?.clone();
            let status = t.status.unwrap_or_default();
            Some(WantedTask {
                service,
                state: status.state.map(|s| s.to_string()).unwrap_or_default(),
                error: status.err.filter(|e| !e.is_empty()),
            })
        })
        .collect();
    Ok(judge(&node, &tasks))
}

/// Completes the launch hook once the node is ready (`serve`, with
/// `--asg-name` and `--launch-hook`).
pub struct LaunchGate {
    pub engine: Engine,
    pub args: LifecycleArgs,
    pub cluster: ClusterArgs,
    pub events: Events,
    pub dry_run: bool,
}

impl LaunchGate {
    pub async fn run(self) {
        let (Some(group), Some(hook_name)) = (&self.args.asg_name, &self.args.launch_hook) else {
            return;
        };
        let started = Instant::now();
        let Some(took) = self.wait_until_ready().await else {
            let waited = format!("not ready after {} s", started.elapsed().as_secs());
            let next = "the launch hook is left to time out, and the group replaces the instance";
            self.events
                .failed(Kind::LaunchReady, "this node", &waited, next);
            return;
        };
        let instance = match crate::node::health::instance_id(&self.args.imds.url).await {
            Ok(id) => id,
            Err(e) => {
                error!(error = %e, "no instance id: cannot complete the launch hook; the group decides when it times out");
                return;
            }
        };
        if self.dry_run {
            info!(?took, "dry-run: would complete the launch lifecycle action");
            return;
        }
        let region = self.cluster.store.aws_region.as_deref();
        let endpoint = self.args.autoscaling_endpoint.as_deref();
        let hook = match crate::node::lifecycle::hook::Hook::new(
            group,
            hook_name,
            &instance,
            region,
            endpoint,
            self.events.clone(),
        )
        .await
        {
            Ok(h) => h,
            Err(e) => {
                error!(error = %e, "no Auto Scaling client: the launch hook is left to time out");
                return;
            }
        };
        self.complete(&hook, took).await;
    }

    async fn complete(&self, hook: &crate::node::lifecycle::hook::Hook, took: Duration) {
        match hook.complete().await {
            Ok(()) => {
                self.events.done(
                    Kind::LaunchComplete,
                    "this node",
                    format!(
                        "ready {}s after the agent started: completed the launch hook",
                        took.as_secs()
                    ),
                );
            }
            // An agent restarted long after boot: the group is not waiting.
            Err(e) if e.to_string().contains("No active Lifecycle Action") => {
                info!("the group holds no launch action for this instance (in service already)")
            }
            Err(e) => {
                let next = "CompleteLifecycleAction failed: the launch hook times out instead";
                self.events
                    .failed(Kind::LaunchComplete, "this node", &e, next);
            }
        }
    }

    /// Looks until [`READY_LOOKS`] looks in a row find the node ready;
    /// None when `--launch-ready-timeout` passes first.
    async fn wait_until_ready(&self) -> Option<Duration> {
        let started = Instant::now();
        let mut in_a_row = 0;
        let mut last_said = Vec::new();
        let mut asker = None;
        while started.elapsed() < self.args.launch_ready_timeout {
            match self.look(&mut asker).await {
                Ok(r) if r.ready => {
                    in_a_row += 1;
                    if in_a_row >= READY_LOOKS {
                        info!(took = ?started.elapsed(), "this node is ready");
                        return Some(started.elapsed());
                    }
                }
                Ok(r) => {
                    in_a_row = 0;
                    if r.waiting_for != last_said {
                        info!(waiting_for = ?r.waiting_for, "not ready yet");
                        last_said = r.waiting_for;
                    }
                }
                Err(e) => {
                    in_a_row = 0;
                    warn!(error = %e, "cannot tell yet whether this node is ready; looking again");
                }
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
        None
    }

    /// One look: a manager reads its own engine, a worker asks a manager's agent.
    async fn look(&self, asker: &mut Option<AgentClient>) -> Result<Readiness> {
        let local = self.engine.local_swarm().await?;
        let Some(id) = local.node_id.filter(|id| !id.is_empty()) else {
            return Ok(Readiness {
                ready: false,
                waiting_for: vec!["this node to join the swarm".into()],
            });
        };
        if local.is_manager {
            return of_node(&self.engine, &id).await;
        }
        if asker.is_none() {
            *asker = Some(self.agent_client().await?);
        }
        let client = asker.as_ref().expect("set above");
        let answer = client
            .call(Method::GET, &format!("/v1/nodes/{id}/ready"), None)
            .await?;
        if !answer.status.is_success() {
            return Err(Error::Api {
                url: "readiness".into(),
                message: format!("{}: {}", answer.status, answer.body),
            });
        }
        serde_json::from_value(answer.body.clone()).map_err(|e| Error::Api {
            url: "readiness".into(),
            message: format!("unexpected answer {}: {e}", answer.body),
        })
    }

    async fn agent_client(&self) -> Result<AgentClient> {
        crate::agent_api::client::cluster_client(&self.cluster)
            .await?
            .ok_or_else(|| {
                Error::Config("no managers' agent to ask (no agent URL or API secret)".into())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::{NodeStatus, Role};

    fn node(
        role: Role,
        state: NodeStatus,
        availability: Availability,
        reachable: Option<bool>,
    ) -> NodeView {
        NodeView {
            id: "n1".into(),
            hostname: "w1".into(),
            role,
            availability,
            state,
            reachable,
            leader: false,
            addr: "10.0.0.1".into(),
            labels: Default::default(),
            updated_at: None,
        }
    }

    fn task(service: &str, state: &str, error: Option<&str>) -> WantedTask {
        WantedTask {
            service: service.into(),
            state: state.into(),
            error: error.map(String::from),
        }
    }

    #[test]
    fn a_joined_node_with_nothing_to_run_is_ready() {
        let r = judge(
            &node(Role::Worker, NodeStatus::Ready, Availability::Active, None),
            &[],
        );
        assert_eq!(
            r,
            Readiness {
                ready: true,
                waiting_for: vec![]
            }
        );
    }

    #[test]
    fn a_node_waits_for_every_task_it_should_run() {
        let tasks = [
            task("bookstore_proxy", "preparing", None),
            task("bookstore_storefront", "running", None),
            task(
                "bookstore_node-exporter",
                "rejected",
                Some("No such image: x"),
            ),
        ];
        let r = judge(
            &node(Role::Worker, NodeStatus::Ready, Availability::Active, None),
            &tasks,
        );
        assert!(!r.ready);
        assert_eq!(
            r.waiting_for,
            [
                "bookstore_proxy is preparing",
                "bookstore_node-exporter is rejected: No such image: x"
            ]
        );
    }

    #[test]
    fn a_down_drained_or_unreachable_node_is_not_ready() {
        let r = judge(
            &node(Role::Worker, NodeStatus::Down, Availability::Drain, None),
            &[],
        );
        assert_eq!(
            r.waiting_for,
            ["the swarm sees the node down", "the node is drain"]
        );
        let r = judge(
            &node(
                Role::Manager,
                NodeStatus::Ready,
                Availability::Active,
                Some(false),
            ),
            &[],
        );
        assert_eq!(r.waiting_for, ["raft to reach this manager"]);
        assert!(
            judge(
                &node(
                    Role::Manager,
                    NodeStatus::Ready,
                    Availability::Active,
                    Some(true)
                ),
                &[]
            )
            .ready
        );
    }
}
