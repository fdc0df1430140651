//! `swarm-agent leave`: at shutdown or scale-in, hand this node's work to
//! others before going, so users see no gap, then get removed from the list.

use std::time::Duration;

use bollard::models::{LocalNodeState, NodeSpecRoleEnum};
use reqwest::{Method, StatusCode};
use tracing::{info, warn};

use crate::agent_api::client::{self, AgentClient};
use crate::backoff::{Backoff, Deadline};
use crate::cli::LeaveArgs;
use crate::cluster::model::NodeView;
use crate::cluster::rules;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::node::drain::{self, DrainProgress};

pub async fn run(engine: &Engine, args: &LeaveArgs, dry_run: bool) -> Result<()> {
    let local = engine.local_swarm().await?;
    match local.state {
        LocalNodeState::INACTIVE | LocalNodeState::EMPTY => {
            info!("not in a swarm: nothing to leave");
            return Ok(());
        }
        LocalNodeState::PENDING => {
            info!("a join was still in progress: cancelling it");
            return if dry_run {
                Ok(())
            } else {
                engine.leave_swarm(true).await
            };
        }
        LocalNodeState::ACTIVE => {}
        other => {
            return Err(Error::BadLocalState {
                state: other.to_string(),
                detail: "fix the engine's swarm state by hand (docker info)".into(),
            });
        }
    }
    let id = local.node_id.clone().ok_or(Error::NotInSwarm)?;
    let client = agent_client(args).await?;
    if !args.lb_drain_delay.is_zero() && !dry_run {
        info!(delay = ?args.lb_drain_delay, "waiting for the load balancer to stop sending requests here before draining");
        tokio::time::sleep(args.lb_drain_delay).await;
    }
    if local.is_manager {
        leave_as_manager(engine, &id, args, dry_run).await?;
    } else {
        let client = client.as_ref().ok_or_else(|| {
            Error::Config(
                "a worker is drained by a manager's agent: give --token-store (where the managers \
                 publish their addresses and the API secret), or --agent-url/--manager and the secret"
                    .into(),
            )
        })?;
        leave_as_worker(client, &id, args, dry_run).await?;
    }
    if dry_run {
        info!(node = %id, "dry-run: would leave the swarm and ask a manager to remove this node");
        return Ok(());
    }
    engine.leave_swarm(false).await?;
    info!(node = %id, "left the swarm: its work runs elsewhere");
    match &client {
        Some(c) => request_removal(c, &id, args).await,
        None => {
            info!(
                "no agent API configured: a manager's reconciler removes this node after its Down grace period"
            );
            Ok(())
        }
    }
}

/// The managers' agents, from the flags or the token store; a store that
/// cannot be read is an error (leaving undrained would drop requests).
async fn agent_client(args: &LeaveArgs) -> Result<Option<AgentClient>> {
    client::cluster_client(&args.cluster).await
}

async fn leave_as_worker(
    client: &AgentClient,
    id: &str,
    args: &LeaveArgs,
    dry_run: bool,
) -> Result<()> {
    if dry_run {
        info!(node = %id, "dry-run: would ask a manager's agent to drain this node");
        return Ok(());
    }
    let answer = ask_to_drain(client, id, args).await?;
    if answer.status == StatusCode::NOT_FOUND {
        // Removed already (e.g. by the reconciler while this node was cut
        // off): nothing runs here for the swarm any more, so just leave.
        warn!(node = %id, "the managers no longer know this node: leaving without a drain");
        return Ok(());
    }
    if !answer.status.is_success() {
        return Err(Error::Api {
            url: "drain".into(),
            message: format!("{}: {}", answer.status, answer.body),
        });
    }
    info!(node = %id, answer = %answer.body, "asked a manager to drain this node: leaving the swarm");
    wait_drained(id, args, || async {
        let a = client
            .call(Method::GET, &format!("/v1/nodes/{id}/drain"), None)
            .await?;
        serde_json::from_value::<DrainProgress>(a.body.clone()).map_err(|e| Error::Api {
            url: "drain status".into(),
            message: format!("{}: unexpected answer {}: {e}", a.status, a.body),
        })
    })
    .await
}

/// Asks a manager's agent to drain this node, again while no agent can
/// answer yet (unreachable, or 503: a node that has just joined is not known
/// by its address yet), until the deadline. A refusal is the caller's to read.
async fn ask_to_drain(client: &AgentClient, id: &str, args: &LeaveArgs) -> Result<client::Answer> {
    let deadline = Deadline::after(args.deadline.min(Duration::from_secs(120)));
    let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    let mut round = 0;
    loop {
        match client
            .call(Method::POST, &format!("/v1/nodes/{id}/drain"), None)
            .await
        {
            Ok(answer) => return Ok(answer),
            Err(e @ Error::ApiUnauthorized { .. }) => return Err(e),
            Err(e) if deadline.expired() => return Err(e),
            Err(e) => warn!(error = %e, "no manager agent could take the drain yet; retrying"),
        }
        deadline.sleep(backoff.delay(round)).await;
        round += 1;
    }
}

/// A manager drains itself, then steps down to worker (so raft keeps its
/// majority), then leaves like any worker.
async fn leave_as_manager(
    engine: &Engine,
    id: &str,
    args: &LeaveArgs,
    dry_run: bool,
) -> Result<()> {
    let nodes: Vec<NodeView> = engine.nodes().await?.iter().map(NodeView::from).collect();
    let counts = rules::manager_counts(&nodes);
    if counts.total <= 1 {
        return Err(Error::Refused {
            action: "leave".into(),
            reason: "this is the last manager: leaving would destroy the swarm \
                     (promote another node first, or use `docker swarm leave --force` deliberately)"
                .into(),
        });
    }
    if rules::quorum_margin(counts.total - 1, counts.reachable.saturating_sub(1)) < 0 {
        return Err(Error::Refused {
            action: "leave".into(),
            reason: format!(
                "only {} of {} managers are reachable: without this one the swarm would lose quorum",
                counts.reachable, counts.total
            ),
        });
    }
    drain::drain(engine, id, "leaving the swarm", dry_run).await?;
    if dry_run {
        info!(node = %id, "dry-run: would wait for tasks to move, then demote this manager");
        return Ok(());
    }
    wait_drained(id, args, || drain::progress(engine, id)).await?;
    engine
        .update_node(id, |spec| spec.role = Some(NodeSpecRoleEnum::WORKER))
        .await?;
    info!(node = %id, "demoted this manager to worker before leaving: keeps raft's majority intact");
    let deadline = Deadline::after(Duration::from_secs(30));
    while engine.local_swarm().await?.is_manager {
        if !deadline.sleep(Duration::from_millis(500)).await {
            return Err(Error::Deadline {
                what: "the demotion to take effect".into(),
                waited: deadline.elapsed(),
            });
        }
    }
    Ok(())
}

/// Poll until the drain is complete or the deadline passes.
async fn wait_drained<F, Fut>(id: &str, args: &LeaveArgs, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<DrainProgress>>,
{
    let deadline = Deadline::after(args.deadline);
    let mut last: Option<DrainProgress> = None;
    loop {
        match check().await {
            Ok(p) if p.done => {
                info!(node = %id, "drain complete: no task left here and every service is at its desired count");
                return Ok(());
            }
            Ok(p) => {
                if last.as_ref() != Some(&p) {
                    info!(node = %id, tasks_remaining = p.tasks_remaining, services_pending = ?p.services_pending, "waiting for the drain");
                }
                last = Some(p);
            }
            Err(e) => warn!(error = %e, "could not check drain progress; retrying"),
        }
        if !deadline.sleep(args.poll).await {
            return Err(Error::Deadline {
                what: format!(
                    "node {id} to drain (last: {last:?}); it stays in the swarm, drained — fix the pending services and rerun leave"
                ),
                waited: deadline.elapsed(),
            });
        }
    }
}

/// The node has left; a manager sees it Down within seconds and removes it.
async fn request_removal(client: &AgentClient, id: &str, args: &LeaveArgs) -> Result<()> {
    let deadline = Deadline::after(args.deadline.min(Duration::from_secs(120)));
    let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    let mut last = String::new();
    for round in 0.. {
        match client
            .call(Method::POST, &format!("/v1/nodes/{id}/remove"), None)
            .await
        {
            Ok(a) if a.status.is_success() => {
                info!(node = %id, answer = %a.body, "a manager removed this node from the swarm");
                return Ok(());
            }
            Ok(a) if a.status == StatusCode::CONFLICT => last = a.body.to_string(),
            Ok(a) => last = format!("{}: {}", a.status, a.body),
            Err(e) => last = e.to_string(),
        }
        if !deadline.sleep(backoff.delay(round)).await {
            break;
        }
    }
    warn!(node = %id, last = %last, "left the swarm, but no manager removed the node; the reconciler will after its Down grace");
    Ok(())
}
