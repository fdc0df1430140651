//! The leader's reconciler: one pass looks at the swarm once and acts at
//! most a little (republish tokens, remove long-Down nodes, rebalance after
//! a join, force a service stuck without a node, keep capped updates moving,
//! autoscale, renew registry auth).
//! Passes run on a timer and on engine events; leadership is checked on
//! every pass, so a new leader takes over by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::agent_api::client::Peers;
use crate::autoscale::controller::Autoscaler;
use crate::autoscale::policy::Evaluation;
use crate::cluster::publish;
use crate::cluster::renew_auth::Renewer;
use crate::cluster::rules::{self, RebalanceState, Removal, StuckState, UpdateOrder};
use crate::cluster::snapshot::{self, Report};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::observe::actions::ActionLog;
use crate::observe::events::{Events, Kind};
use crate::observe::metrics::Metrics;
use crate::store::token_store::TokenStore;
use bollard::models::NodeSpecRoleEnum as NodeRole;

/// Settings of the reconciler, separate from the CLI so tests can build one.
#[derive(Debug, Clone)]
pub struct Policy {
    pub down_grace: Duration,
    pub rebalance_label: String,
    pub rebalance_interval: Duration,
    /// A service with nothing running and a task no node was found for is
    /// forced after this long (`rules::next_reschedule`).
    pub reschedule_after: Duration,
    pub dry_run: bool,
}

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone)]
pub struct PassOutcome {
    pub removed: Vec<String>,
    pub rebalanced: Option<String>,
    /// A stuck service forced to make a new task.
    pub rescheduled: Option<String>,
    pub joined: Vec<String>,
    /// Each autoscaled service's evaluation (and what was done about it).
    pub autoscaled: Vec<(String, Evaluation)>,
    /// Services whose update order changed, with the new order.
    pub reordered: Vec<(String, &'static str)>,
    /// Services whose stored registry auth was renewed.
    pub registry_auth_renewed: Vec<String>,
}

pub struct Reconciler {
    engine: Engine,
    policy: Policy,
    metrics: Metrics,
    rebalance: RebalanceState,
    stuck: StuckState,
    store: Option<Arc<TokenStore>>,
    events: Events,
    autoscaler: Autoscaler,
    registry_auth: Renewer,
}

impl Reconciler {
    pub fn new(engine: Engine, policy: Policy, metrics: Metrics) -> Self {
        let events = Events::new(metrics.clone(), ActionLog::default());
        Reconciler {
            autoscaler: Autoscaler::new(
                engine.clone(),
                None,
                metrics.clone(),
                events.clone(),
                policy.dry_run,
            ),
            registry_auth: Renewer::off(engine.clone(), metrics.clone()),
            engine,
            policy,
            metrics,
            rebalance: RebalanceState::default(),
            stuck: StuckState::default(),
            store: None,
            events,
        }
    }

    /// Actions are recorded here, for the fleet page.
    pub fn recording_to(mut self, events: Events) -> Self {
        self.autoscaler.record_to(events.clone());
        self.events = events;
        self
    }

    /// The autoscaler asks other nodes' agents for their replicas' CPU with
    /// these; without, only this node's replicas are measured.
    pub fn asking_peers(mut self, peers: Option<Peers>) -> Self {
        self.autoscaler.ask_peers(peers);
        self
    }

    /// The leader keeps the registry auth stored in services fresh with this.
    pub fn renewing_registry_auth(mut self, renewer: Renewer) -> Self {
        self.registry_auth = renewer;
        self
    }

    /// The leader republishes tokens and managers to this store.
    pub fn publishing_to(mut self, store: Option<Arc<TokenStore>>) -> Self {
        self.store = store;
        self
    }

    /// Look once, act at most a little, and only as the leader: republish,
    /// remove long-Down nodes, rebalance one service if a node joined.
    /// Errors of single actions are logged and counted, not fatal: the next
    /// pass tries again. Workers and followers only observe.
    pub async fn pass(&mut self) -> Result<PassOutcome> {
        let local = self.engine.local_swarm().await?;
        if !local.is_manager {
            self.metrics.role(false, false);
            self.registry_auth.step_down();
            return Ok(PassOutcome::default());
        }
        let report = snapshot::snapshot(&self.engine).await?;
        self.metrics.observe(&report);
        let leader = report
            .nodes
            .iter()
            .any(|n| n.id == report.node_id && n.leader);
        self.metrics.role(true, leader);
        let mut outcome = PassOutcome {
            joined: self.rebalance.observe_ready(&report.nodes, Instant::now()),
            ..Default::default()
        };
        self.stuck.observe(&report.services, Instant::now());
        if !leader {
            self.registry_auth.step_down();
            return Ok(outcome);
        }
        for id in &outcome.joined {
            self.events.done(
                Kind::Join,
                &hostname_of(&report, id),
                "became ready: opted-in services will be rebalanced",
            );
        }
        self.republish().await;
        outcome.removed = self.remove_down_nodes(&report).await;
        outcome.rebalanced = self.rebalance_one(&report).await;
        outcome.rescheduled = self.reschedule_one(&report).await;
        outcome.autoscaled = self.autoscaler.pass(&report).await;
        outcome.reordered = self.keep_updates_moving(&report).await;
        outcome.registry_auth_renewed = self.registry_auth.pass(&report).await;
        Ok(outcome)
    }

    /// Keep what joining and leaving nodes read current: a replaced manager
    /// or a token rotated by hand reaches the store within one pass.
    async fn republish(&self) {
        let Some(store) = &self.store else { return };
        let quiet = publish::Report::ChangesOnly;
        match publish::swarm_facts(&self.engine, store, self.policy.dry_run, quiet).await {
            Ok(changed) if !changed.is_empty() => {
                let keys: Vec<&str> = changed.iter().map(|k| k.name()).collect();
                self.events
                    .done(Kind::Publish, "token store", keys.join(", "));
            }
            Ok(_) => {}
            Err(e) => self.events.failed(
                Kind::Publish,
                "token store",
                &e,
                "republished at the next pass",
            ),
        }
    }

    async fn remove_down_nodes(&self, report: &Report) -> Vec<String> {
        let now = OffsetDateTime::now_utc();
        let mut removed = Vec::new();
        for node in &report.nodes {
            match rules::removal(
                node,
                &report.nodes,
                &report.node_id,
                now,
                self.policy.down_grace,
            ) {
                Removal::Remove { demote_first } => {
                    if self
                        .remove_node(&node.id, &node.hostname, demote_first)
                        .await
                    {
                        removed.push(node.id.clone());
                    }
                }
                Removal::WithinGrace { remaining } => {
                    debug!(node = %node.id, ?remaining, "node is Down; within grace period")
                }
                Removal::WouldLoseQuorum => {
                    warn!(node = %node.id, "Down manager kept: removing it needs a quorum the swarm does not have")
                }
                Removal::NotDown | Removal::IsSelfOrLeader => {}
            }
        }
        removed
    }

    async fn remove_node(&self, id: &str, hostname: &str, demote_first: bool) -> bool {
        let why = format!("Down for longer than {:?}", self.policy.down_grace);
        if self.policy.dry_run {
            info!(node = %id, %hostname, reason = %why, demote_first, "dry-run: would remove node");
            return false;
        }
        let result = async {
            if demote_first {
                self.engine
                    .update_node(id, |s| s.role = Some(NodeRole::WORKER))
                    .await?;
            }
            self.engine.remove_node(id, true).await
        }
        .await;
        match result {
            Ok(()) => {
                self.events
                    .done(Kind::Remove, hostname, format!("{why} (node {id})"));
                true
            }
            Err(e) => {
                let next = format!("the Down node {id} is removed at a later pass");
                self.events.failed(Kind::Remove, hostname, &e, &next);
                false
            }
        }
    }

    /// Forces a stuck service (rules::next_reschedule), so that the
    /// scheduler places a new task on the nodes as they are now.
    async fn reschedule_one(&mut self, report: &Report) -> Option<String> {
        let now = Instant::now();
        let svc = rules::next_reschedule(
            &report.services,
            &self.stuck,
            now,
            self.policy.reschedule_after,
        )?;
        let name = svc.name.clone();
        self.stuck.record(&svc.id, now);
        let reason = svc.pending_reason.clone().unwrap_or_default();
        if self.policy.dry_run {
            info!(service = %name, %reason, "dry-run: would force-update the stuck service");
            return None;
        }
        let done = format!(
            "forced update: nothing ran for {:?} and its task waited ({reason}); a new task is placed on the nodes as they are now",
            self.policy.reschedule_after
        );
        let next = "tried again after the same wait";
        self.force_update(Kind::Reschedule, &svc.id, name, done, next)
            .await
    }

    /// A forced update of the service `id`, as the engine holds it now,
    /// recorded as `kind` with `done` (or the error and `next`); its name
    /// when the engine took it.
    async fn force_update(
        &self,
        kind: Kind,
        id: &str,
        name: String,
        done: impl Into<String>,
        next: &str,
    ) -> Option<String> {
        let result = async {
            let raw = self.engine.services().await?;
            let service =
                raw.iter()
                    .find(|s| s.id.as_deref() == Some(id))
                    .ok_or(Error::Refused {
                        action: kind.metric().unwrap_or("force-update").into(),
                        reason: format!("service {name} vanished"),
                    })?;
            self.engine.force_update_service(service).await
        }
        .await;
        match result {
            Ok(()) => {
                self.events.done(kind, &name, done);
                Some(name)
            }
            Err(e) => {
                self.events.failed(kind, &name, &e, next);
                None
            }
        }
    }

    async fn rebalance_one(&mut self, report: &Report) -> Option<String> {
        let now = Instant::now();
        let svc = rules::next_rebalance(
            &report.services,
            &self.policy.rebalance_label,
            &self.rebalance,
            now,
            self.policy.rebalance_interval,
        )?;
        let name = svc.name.clone();
        // Recorded even on failure or dry-run, so a broken service cannot
        // monopolise the rate limit or spam the log every pass.
        self.rebalance.record(&svc.id, now);
        if self.policy.dry_run {
            info!(service = %name, "dry-run: would force-update service to spread it onto the new node");
            return None;
        }
        let done = "forced update after a node joined: tasks spread onto it";
        let next = "tried again after the rebalance interval";
        self.force_update(Kind::Rebalance, &svc.id, name, done, next)
            .await
    }
}

impl Reconciler {
    /// Gives each capped service the update order that can make progress
    /// with the nodes' free slots (rules::update_order): stop-first, marked
    /// with the agent's label, while every slot is taken; start-first again
    /// once a slot is free. A stalled start-first update resumes.
    async fn keep_updates_moving(&self, report: &Report) -> Vec<(String, &'static str)> {
        let mut changed = Vec::new();
        for svc in &report.services {
            let Some(order) = rules::update_order(svc, &report.nodes) else {
                continue;
            };
            if svc.update_order == order.as_str() {
                continue;
            }
            let why = match order {
                UpdateOrder::StopFirst => "no node has a free slot below max_replicas_per_node",
                UpdateOrder::StartFirst => "a node has a free slot again",
            };
            if self.policy.dry_run {
                info!(service = %svc.name, order = order.as_str(), why, "dry-run: would change the update order");
                continue;
            }
            let start_first = order == UpdateOrder::StartFirst;
            let label = (rules::ORDER_LABEL, (!start_first).then_some("stop-first"));
            let result = match self.raw_service(&svc.id).await {
                Ok(service) => {
                    self.engine
                        .set_update_order(&service, start_first, label)
                        .await
                }
                Err(e) => Err(e),
            };
            let detail = format!("updates {}: {why}", order.as_str());
            match result {
                Ok(()) => {
                    self.events.done(Kind::UpdateOrder, &svc.name, detail);
                    changed.push((svc.name.clone(), order.as_str()));
                }
                Err(e) => {
                    let next = "tried again at the next pass";
                    self.events.failed(Kind::UpdateOrder, &svc.name, &e, next);
                }
            }
        }
        changed
    }

    async fn raw_service(&self, id: &str) -> Result<bollard::models::Service> {
        self.engine
            .services()
            .await?
            .into_iter()
            .find(|s| s.id.as_deref() == Some(id))
            .ok_or(Error::Refused {
                action: "update order".into(),
                reason: format!("service {id} vanished"),
            })
    }
}

/// A node's name as the swarm shows it, for the action list.
fn hostname_of(report: &Report, id: &str) -> String {
    report
        .nodes
        .iter()
        .find(|n| n.id == id && !n.hostname.is_empty())
        .map_or_else(|| id.to_string(), |n| n.hostname.clone())
}

/// Passes until the task is aborted: every `interval`, or soon after an event.
pub async fn reconcile_loop(mut r: Reconciler, interval: Duration, wake: Arc<Notify>) {
    loop {
        match r.pass().await {
            Ok(o) => debug!(?o, "reconcile pass done"),
            Err(e) => r
                .events
                .failed(Kind::Reconcile, "swarm", &e, "the next pass tries again"),
        }
        // Events come in bursts (a node update fires several); a short
        // settle time turns a burst into one pass.
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = wake.notified() => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
