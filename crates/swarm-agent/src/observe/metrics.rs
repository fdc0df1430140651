//! Prometheus metrics of the reconciler, on their own port.

use prometheus::{
    Encoder, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::autoscale::policy::{Direction, Evaluation, Policy};

use crate::cluster::snapshot::Report;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    nodes: IntGaugeVec,
    managers_reachable: IntGauge,
    managers_total: IntGauge,
    quorum_margin: IntGauge,
    service_desired: IntGaugeVec,
    service_running: IntGaugeVec,
    service_pending: IntGaugeVec,
    service_update: IntGaugeVec,
    registry_auth_age: IntGaugeVec,
    actions: IntCounterVec,
    failures: IntCounterVec,
    health: IntGauge,
    is_manager: IntGauge,
    is_leader: IntGauge,
    node_healthy: IntGauge,
    lifecycle_notices: IntCounterVec,
    images_pruned: IntCounter,
    image_bytes_pruned: IntCounter,
    autoscale: AutoscaleMetrics,
}

/// The autoscaler's figures, per service.
#[derive(Clone)]
struct AutoscaleMetrics {
    decisions: IntCounterVec,
    cpu: GaugeVec,
    measured: IntGaugeVec,
    desired: IntGaugeVec,
    bounds: IntGaugeVec,
}

impl AutoscaleMetrics {
    fn new(r: &Registry) -> Self {
        let decisions = IntCounterVec::new(
            Opts::new(
                "swarm_agent_autoscale_decisions_total",
                "Scale decisions of the autoscaler (dry-run ones included), by service and direction (out, in)",
            ),
            &["service", "direction"],
        )
        .expect("valid metric");
        r.register(Box::new(decisions.clone()))
            .expect("unique metric");
        let cpu = GaugeVec::new(
            Opts::new(
                "swarm_agent_autoscale_cpu_percent",
                "Average CPU of the service's replicas over the window, in percent of each replica's CPU limit",
            ),
            &["service"],
        )
        .expect("valid metric");
        r.register(Box::new(cpu.clone())).expect("unique metric");
        AutoscaleMetrics {
            decisions,
            cpu,
            measured: gauge_vec(
                r,
                "swarm_agent_autoscale_measured_replicas",
                "Replicas with CPU samples in the window (fewer than desired: some are warming up or their node's agent did not answer)",
                &["service"],
            ),
            desired: gauge_vec(
                r,
                "swarm_agent_autoscale_replicas",
                "Replicas the autoscaler decided on (desired after its decision)",
                &["service"],
            ),
            bounds: gauge_vec(
                r,
                "swarm_agent_autoscale_bound_replicas",
                "The service's autoscaling bounds (bound=min or max)",
                &["service", "bound"],
            ),
        }
    }
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &["action"]).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        Metrics {
            nodes: gauge_vec(
                &r,
                "swarm_agent_nodes",
                "Swarm nodes by state, availability and role",
                &["state", "availability", "role"],
            ),
            managers_reachable: gauge(
                &r,
                "swarm_agent_managers_reachable",
                "Managers raft can reach",
            ),
            managers_total: gauge(&r, "swarm_agent_managers", "Managers in the swarm"),
            quorum_margin: gauge(
                &r,
                "swarm_agent_quorum_margin",
                "Managers that can still be lost before quorum is (negative: lost)",
            ),
            service_desired: gauge_vec(
                &r,
                "swarm_agent_service_desired_tasks",
                "Desired tasks per service",
                &["service"],
            ),
            service_running: gauge_vec(
                &r,
                "swarm_agent_service_running_tasks",
                "Running tasks per service",
                &["service"],
            ),
            service_pending: gauge_vec(
                &r,
                "swarm_agent_service_pending_tasks",
                "Tasks the swarm wants running that have not started (no node with room, image not pulled, …)",
                &["service"],
            ),
            service_update: gauge_vec(
                &r,
                "swarm_agent_service_update_state",
                "1 for the service's current update state",
                &["service", "state"],
            ),
            registry_auth_age: gauge_vec(
                &r,
                "swarm_agent_registry_auth_age_seconds",
                "Age of the registry auth stored in the service, for services the leader renews (ECR tokens die at 12 h)",
                &["service"],
            ),
            actions: counter_vec(
                &r,
                "swarm_agent_actions_total",
                "Actions taken by the agent",
            ),
            failures: counter_vec(
                &r,
                "swarm_agent_action_failures_total",
                "Actions that failed",
            ),
            health: gauge(
                &r,
                "swarm_agent_health",
                "0 healthy, 1 degraded, 3 down (same as `status` exit code)",
            ),
            is_manager: gauge(
                &r,
                "swarm_agent_is_manager",
                "1 when this node is a swarm manager",
            ),
            is_leader: gauge(
                &r,
                "swarm_agent_is_leader",
                "1 when this node is the raft leader (the one that reconciles and publishes)",
            ),
            node_healthy: gauge(
                &r,
                "swarm_agent_node_healthy",
                "0 while this node fails its own check (engine, swarm membership)",
            ),
            lifecycle_notices: {
                let c = IntCounterVec::new(
                    Opts::new(
                        "swarm_agent_lifecycle_notices_total",
                        "End-of-life notices seen in instance metadata, by kind (scale_in, spot, rebalance)",
                    ),
                    &["kind"],
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            images_pruned: counter(
                &r,
                "swarm_agent_images_pruned_total",
                "Images and layers deleted by this node's image prune (image_prune.rs)",
            ),
            image_bytes_pruned: counter(
                &r,
                "swarm_agent_image_bytes_pruned_total",
                "Disk space those removals freed, in bytes",
            ),
            autoscale: AutoscaleMetrics::new(&r),
            registry: r,
        }
    }

    pub fn autoscale_decision(&self, service: &str, direction: Direction) {
        self.autoscale
            .decisions
            .with_label_values(&[service, direction.as_str()])
            .inc();
    }

    /// The inputs and outcome of one evaluation.
    pub fn autoscale_observe(&self, service: &str, policy: &Policy, eval: &Evaluation) {
        let a = &self.autoscale;
        match eval.cpu {
            Some(cpu) => a.cpu.with_label_values(&[service]).set(cpu),
            None => {
                let _ = a.cpu.remove_label_values(&[service]);
            }
        }
        a.measured
            .with_label_values(&[service])
            .set(eval.measured as i64);
        let desired = match &eval.decision {
            crate::autoscale::policy::Decision::Scale { to, .. } => *to,
            crate::autoscale::policy::Decision::Hold(_) => eval.desired,
        };
        a.desired.with_label_values(&[service]).set(desired as i64);
        a.bounds
            .with_label_values(&[service, "min"])
            .set(policy.min as i64);
        a.bounds
            .with_label_values(&[service, "max"])
            .set(policy.max as i64);
    }

    /// No service is autoscaled (any more): its gauges go.
    pub fn autoscale_forget(&self) {
        let a = &self.autoscale;
        a.cpu.reset();
        a.measured.reset();
        a.desired.reset();
        a.bounds.reset();
    }

    pub fn role(&self, manager: bool, leader: bool) {
        self.is_manager.set(i64::from(manager));
        self.is_leader.set(i64::from(leader));
    }

    pub fn notice(&self, kind: &str) {
        self.lifecycle_notices.with_label_values(&[kind]).inc();
    }

    pub fn images_pruned(&self, images: usize, bytes: u64) {
        self.images_pruned.inc_by(images as u64);
        self.image_bytes_pruned.inc_by(bytes);
    }

    /// Replace the gauges with the latest snapshot; vanished nodes and
    /// services disappear from the output instead of lingering.
    pub fn observe(&self, report: &Report) {
        self.nodes.reset();
        for n in &report.nodes {
            let role = if n.is_manager() { "manager" } else { "worker" };
            self.nodes
                .with_label_values(&[n.state.as_str(), n.availability.as_str(), role])
                .inc();
        }
        self.managers_reachable
            .set(report.managers.reachable as i64);
        self.managers_total.set(report.managers.total as i64);
        self.quorum_margin.set(report.managers.margin);
        self.service_desired.reset();
        self.service_running.reset();
        self.service_pending.reset();
        self.service_update.reset();
        self.registry_auth_age.reset();
        let now = time::OffsetDateTime::now_utc();
        for s in &report.services {
            if let Some(at) = crate::cluster::registry_auth::renewed_at(s) {
                self.registry_auth_age
                    .with_label_values(&[s.name.as_str()])
                    .set(crate::cluster::registry_auth::age(at, now).as_secs() as i64);
            }
            self.service_desired
                .with_label_values(&[s.name.as_str()])
                .set(s.desired as i64);
            self.service_running
                .with_label_values(&[s.name.as_str()])
                .set(s.running as i64);
            self.service_pending
                .with_label_values(&[s.name.as_str()])
                .set(s.pending as i64);
            let state = if s.update_state.is_empty() {
                "none"
            } else {
                s.update_state.as_str()
            };
            self.service_update
                .with_label_values(&[s.name.as_str(), state])
                .set(1);
        }
        self.health.set(i64::from(report.health.exit_code()));
    }

    pub fn node_healthy(&self, healthy: bool) {
        self.node_healthy.set(i64::from(healthy));
    }

    /// Counted through `events::Events`, with the action log and the log line.
    pub(super) fn action(&self, action: &str) {
        self.actions.with_label_values(&[action]).inc();
    }

    pub(super) fn failure(&self, action: &str) {
        self.failures.with_label_values(&[action]).inc();
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is utf-8")
    }
}
