//! CPU use of swarm replicas, measured where they run. Docker's stats API is
//! per engine, so every node's agent measures the task containers of its own
//! engine and serves the figures on the agent API (`GET /v1/replicas/cpu`,
//! behind the API secret); the leader asks each node's agent and measures
//! its own node directly. A node whose agent does not answer is reported as
//! missing: its replicas are missing samples for the decision
//! (docs/decisions.md, "Replica autoscaling").

use futures::future::join_all;
use tracing::debug;

use crate::agent_api::client::{Peers, ReplicaCpu};
use crate::cluster::model::{Availability, NodeView};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Every running swarm task container of this engine, measured at once
/// (each stats call waits about a second for its second reading).
pub async fn measure_local(engine: &Engine) -> Result<Vec<ReplicaCpu>> {
    let containers = engine.task_containers().await?;
    let measured = join_all(containers.iter().map(|c| async move {
        let stats = engine.container_stats(&c.id).await;
        (c, stats)
    }))
    .await;
    Ok(measured
        .into_iter()
        .filter_map(|(c, stats)| match stats {
            Ok(s) => cores_in_use(&s).map(|cores| ReplicaCpu {
                service_id: c.service_id.clone(),
                task_id: c.task_id.clone(),
                started: c.created,
                cores,
            }),
            // Stopped between the list and the stats call: nothing to measure.
            Err(e) => {
                debug!(container = %c.id, error = %e, "no stats for a task container");
                None
            }
        })
        .collect())
}

/// Cores used between the two readings of a non-streamed stats answer
/// (`cpu_stats` and `precpu_stats`): the container's share of the host's
/// CPU time, times the host's CPUs. None when a reading is missing (a
/// container that just started has no previous reading).
pub fn cores_in_use(stats: &serde_json::Value) -> Option<f64> {
    let read = |path: &str| stats.pointer(path).and_then(serde_json::Value::as_u64);
    let used = read("/cpu_stats/cpu_usage/total_usage")?
        .checked_sub(read("/precpu_stats/cpu_usage/total_usage")?)?;
    let system = read("/cpu_stats/system_cpu_usage")?
        .checked_sub(read("/precpu_stats/system_cpu_usage").filter(|v| *v > 0)?)?;
    let cpus = read("/cpu_stats/online_cpus").filter(|n| *n > 0)?;
    (system > 0).then(|| used as f64 / system as f64 * cpus as f64)
}

/// What the leader gathered this pass: samples, and the nodes it could not
/// ask (their replicas are missing, not idle).
#[derive(Debug, Default)]
pub struct Gathered {
    pub replicas: Vec<ReplicaCpu>,
    pub missing_nodes: Vec<String>,
}

impl Gathered {
    /// Keeps the replicas the swarm still wants. A task being stopped (a
    /// scale-in's surplus, draining for its grace period) idles, and
    /// counting it would pull the average down and invite another scale-in.
    pub fn keep_wanted(&mut self, wanted_task_ids: &[String]) {
        self.replicas
            .retain(|r| wanted_task_ids.contains(&r.task_id));
    }
}

/// This node through its own engine, every other ready node through its
/// agent. Nodes that are down or drained run no replicas and are not asked.
pub async fn gather(
    engine: &Engine,
    nodes: &[NodeView],
    self_id: &str,
    peers: Option<&Peers>,
) -> Gathered {
    let others: Vec<&NodeView> = nodes
        .iter()
        .filter(|n| n.id != self_id && n.is_ready() && n.availability == Availability::Active)
        .collect();
    let local = measure_local(engine);
    let remote = join_all(others.iter().map(|n| async move {
        match peers {
            Some(p) => p.replicas_cpu(n).await,
            None => Err(Error::Config("no agent API secret to ask it with".into())),
        }
    }));
    let (local, remote) = tokio::join!(local, remote);
    let mut out = Gathered::default();
    match local {
        Ok(r) => out.replicas.extend(r),
        Err(e) => {
            debug!(error = %e, "could not measure this node's replicas");
            out.missing_nodes.push(self_id.to_string());
        }
    }
    for (node, answer) in others.iter().zip(remote) {
        match answer {
            Ok(r) => out.replicas.extend(r),
            Err(e) => {
                debug!(node = %node.hostname, error = %e, "no CPU figures from this node's agent");
                out.missing_nodes.push(node.hostname.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn cores_from_two_readings() {
        // 0.5 s of container CPU while 2 CPUs gave 4 s of CPU time (2 s of
        // wall time): a quarter of a core.
        let stats = serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 1_500_000_000u64},
                          "system_cpu_usage": 10_000_000_000u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000u64},
                             "system_cpu_usage": 6_000_000_000u64}
        });
        assert_eq!(cores_in_use(&stats), Some(0.25));
    }

    #[test]
    fn no_previous_reading_is_no_figure() {
        let stats = serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 5u64}, "system_cpu_usage": 10u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 0u64}}
        });
        assert_eq!(cores_in_use(&stats), None);
    }
}
