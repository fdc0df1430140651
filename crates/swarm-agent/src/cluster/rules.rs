//! Decision logic, free of I/O: quorum arithmetic, which Down nodes may be
//! removed, which service to rebalance, and how healthy the swarm is. The
//! reconciler and `status` call these with snapshots; unit tests call them
//! with hand-made ones.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use crate::cluster::model::{Availability, NodeView, ServiceMode, ServiceView};

/// Raft needs a strict majority of managers to make any change.
pub fn quorum(managers: usize) -> usize {
    managers / 2 + 1
}

/// How many more managers can be lost before the swarm stops accepting
/// changes. Negative: quorum is already lost.
pub fn quorum_margin(managers: usize, reachable: usize) -> i64 {
    if managers == 0 {
        return -1;
    }
    reachable as i64 - quorum(managers) as i64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ManagerCounts {
    pub total: usize,
    pub reachable: usize,
    pub quorum: usize,
    pub margin: i64,
}

pub fn manager_counts(nodes: &[NodeView]) -> ManagerCounts {
    let managers: Vec<_> = nodes.iter().filter(|n| n.is_manager()).collect();
    let reachable = managers
        .iter()
        .filter(|n| n.reachable == Some(true))
        .count();
    ManagerCounts {
        total: managers.len(),
        reachable,
        quorum: quorum(managers.len()),
        margin: quorum_margin(managers.len(), reachable),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Remove it; managers must be demoted first.
    Remove {
        demote_first: bool,
    },
    NotDown,
    WithinGrace {
        remaining: Duration,
    },
    /// Never the manager we run on, nor the raft leader.
    IsSelfOrLeader,
    /// Removing would need raft changes the swarm cannot make right now.
    WouldLoseQuorum,
}

/// Should `node` be removed? `now` and the node's last update time tell how
/// long it has been Down (that time survives agent restarts, unlike a timer).
pub fn removal(
    node: &NodeView,
    nodes: &[NodeView],
    self_id: &str,
    now: OffsetDateTime,
    grace: Duration,
) -> Removal {
    if !node.is_down() {
        return Removal::NotDown;
    }
    if node.id == self_id || node.leader {
        return Removal::IsSelfOrLeader;
    }
    let down_for = node
        .updated_at
        .map(|t| (now - t).try_into().unwrap_or(Duration::ZERO))
        .unwrap_or(Duration::ZERO);
    if down_for < grace {
        return Removal::WithinGrace {
            remaining: grace - down_for,
        };
    }
    if node.is_manager() {
        // Demoting an unreachable manager is a raft change: it needs quorum
        // now. Afterwards the cluster is smaller, so the majority still holds.
        let counts = manager_counts(nodes);
        if node.reachable == Some(true) || counts.margin < 0 || counts.total <= 1 {
            return Removal::WouldLoseQuorum;
        }
        return Removal::Remove { demote_first: true };
    }
    Removal::Remove {
        demote_first: false,
    }
}

/// Memory of the rebalancer between passes.
#[derive(Debug, Default)]
pub struct RebalanceState {
    /// Ready node ids seen in the previous pass; None before the first pass.
    known_ready: Option<Vec<String>>,
    /// When a node most recently became Ready.
    last_join: Option<Instant>,
    /// When each service was last force-updated by us.
    last_done: HashMap<String, Instant>,
    /// When we last force-updated any service (global rate limit).
    last_any: Option<Instant>,
}

impl RebalanceState {
    /// Record which nodes are Ready now; returns the ids that were not before.
    /// The first pass only learns (an agent restart is not a node join).
    pub fn observe_ready(&mut self, nodes: &[NodeView], now: Instant) -> Vec<String> {
        let mut ready: Vec<String> = nodes
            .iter()
            .filter(|n| n.is_ready())
            .map(|n| n.id.clone())
            .collect();
        ready.sort();
        let new: Vec<String> = match &self.known_ready {
            None => Vec::new(),
            Some(before) => ready
                .iter()
                .filter(|id| !before.contains(id))
                .cloned()
                .collect(),
        };
        if !new.is_empty() {
            self.last_join = Some(now);
        }
        self.known_ready = Some(ready);
        new
    }

    pub fn record(&mut self, service_id: &str, now: Instant) {
        self.last_done.insert(service_id.to_string(), now);
        self.last_any = Some(now);
    }
}

/// The next service to force-update so its tasks spread onto a new node, or
/// None. One per `min_interval` at most, each service once per join, only
/// opted-in replicated services that are converged and not mid-update.
pub fn next_rebalance<'a>(
    services: &'a [ServiceView],
    label: &str,
    state: &RebalanceState,
    now: Instant,
    min_interval: Duration,
) -> Option<&'a ServiceView> {
    let joined = state.last_join?;
    if state
        .last_any
        .is_some_and(|t| now.duration_since(t) < min_interval)
    {
        return None;
    }
    let mut candidates: Vec<&ServiceView> = services
        .iter()
        .filter(|s| s.labels.get(label).is_some_and(|v| v == "true"))
        .filter(|s| s.mode == ServiceMode::Replicated && s.desired > 1)
        .filter(|s| s.converged() && !s.updating())
        .filter(|s| state.last_done.get(&s.id).is_none_or(|t| *t < joined))
        .collect();
    candidates.sort_by(|a, b| a.name.cmp(&b.name));
    candidates.into_iter().next()
}

/// Memory of the rescheduler between passes: since when each service has
/// been stuck (see [`is_stuck`]), and when the agent last forced it.
#[derive(Debug, Default)]
pub struct StuckState {
    stuck_since: HashMap<String, Instant>,
    last_forced: HashMap<String, Instant>,
}

impl StuckState {
    /// Notes which services are stuck now; a service that is not forgets its past.
    pub fn observe(&mut self, services: &[ServiceView], now: Instant) {
        let stuck: Vec<&str> = services
            .iter()
            .filter(|s| is_stuck(s))
            .map(|s| s.id.as_str())
            .collect();
        self.stuck_since
            .retain(|id, _| stuck.contains(&id.as_str()));
        self.last_forced
            .retain(|id, _| stuck.contains(&id.as_str()));
        for id in stuck {
            self.stuck_since.entry(id.to_string()).or_insert(now);
        }
    }

    pub fn record(&mut self, service_id: &str, now: Instant) {
        self.last_forced.insert(service_id.to_string(), now);
    }
}

/// A replicated service none of whose tasks runs, with one the scheduler
/// found no node for. A forced update of it replaces nothing that runs.
pub fn is_stuck(s: &ServiceView) -> bool {
    s.mode == ServiceMode::Replicated
        && s.desired > 0
        && s.running == 0
        && s.pending > 0
        && !s.updating()
        && s.pending_reason
            .as_deref()
            .is_some_and(|reason| reason.starts_with("no suitable node"))
}

/// The next stuck service to force-update, or None: one stuck for `after`
/// and not forced in the last `after`.
///
/// Swarm's scheduler can drop a task it found no node for from its retries
/// (a service update while no node qualified is enough, and the leader's
/// registry-auth renewal is one): the task then stays pending when a node
/// qualifies again. Seen when the data node was lost for good: MySQL stayed
/// pending after its replacement took the label, while Redis, with the same
/// constraint, ran there. A forced update makes a new task, which the
/// scheduler places.
pub fn next_reschedule<'a>(
    services: &'a [ServiceView],
    state: &StuckState,
    now: Instant,
    after: Duration,
) -> Option<&'a ServiceView> {
    let waited = |at: Option<&Instant>| at.is_some_and(|t| now.duration_since(*t) >= after);
    let mut due: Vec<&ServiceView> = services
        .iter()
        .filter(|s| is_stuck(s))
        .filter(|s| waited(state.stuck_since.get(&s.id)))
        .filter(|s| state.last_forced.get(&s.id).is_none_or(|t| waited(Some(t))))
        .collect();
    due.sort_by(|a, b| a.name.cmp(&b.name));
    due.into_iter().next()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Down,
}

impl Health {
    /// 2 is what argument errors exit with, so "down" is 3.
    pub fn exit_code(self) -> u8 {
        match self {
            Health::Healthy => 0,
            Health::Degraded => 1,
            Health::Down => 3,
        }
    }
}

/// Down: the swarm cannot take changes (quorum lost). Degraded: it works
/// but something needs a look (a node not ready, a service short of tasks
/// or stuck in an update). Healthy otherwise.
pub fn health(nodes: &[NodeView], services: &[ServiceView]) -> Health {
    if manager_counts(nodes).margin < 0 {
        return Health::Down;
    }
    let node_trouble = nodes.iter().any(|n| !n.is_ready());
    let service_trouble = services.iter().any(|s| {
        (s.mode != ServiceMode::Job && !s.converged()) || s.update_state.contains("paused")
    });
    if node_trouble || service_trouble {
        Health::Degraded
    } else {
        Health::Healthy
    }
}

/// Things that make rolling updates or scale-in hurt users.
pub fn warnings(services: &[ServiceView]) -> Vec<String> {
    let mut out = Vec::new();
    for s in services.iter().filter(|s| s.mode != ServiceMode::Job) {
        if !s.has_healthcheck {
            out.push(format!(
                "service {} has no healthcheck in its spec: a task counts as up before it can serve \
                 (an image HEALTHCHECK, if any, still applies)",
                s.name
            ));
        }
        if let Some(at) = crate::cluster::registry_auth::renewed_at(s) {
            let age = crate::cluster::registry_auth::age(at, time::OffsetDateTime::now_utc());
            if age >= crate::cluster::registry_auth::STALE_AFTER {
                out.push(format!(
                    "service {}: its stored registry auth is {} h old (ECR tokens die at 12 h: new tasks \
                     will fail to pull); is the leader's agent renewing it? (its log, `registry auth failed`)",
                    s.name,
                    age.as_secs() / 3600
                ));
            }
        }
        if s.pending > 0 {
            out.push(format!("service {}: {}", s.name, pending_line(s)));
        }
        // One replica with a volume (a database) must stop first, or two
        // servers would share its data: advise start-first only where
        // several replicas serve the same thing.
        if s.update_order == "stop-first"
            && s.mode == ServiceMode::Replicated
            && s.desired > 1
            && !ordered_by_agent(s)
        {
            out.push(format!(
                "service {} updates stop-first: each update removes a replica before its replacement is up \
                 (set update_config.order: start-first)",
                s.name
            ));
        }
    }
    out
}

/// The service label with which the agent marks an update order it set
/// itself (`stop-first` while the nodes have no free slot), so that it puts
/// back start-first only where it took it away.
pub const ORDER_LABEL: &str = "swarm-agent.update-order";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOrder {
    StartFirst,
    StopFirst,
}

impl UpdateOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOrder::StartFirst => "start-first",
            UpdateOrder::StopFirst => "stop-first",
        }
    }
}

pub fn ordered_by_agent(s: &ServiceView) -> bool {
    s.labels.get(ORDER_LABEL).map(String::as_str) == Some("stop-first")
}

/// How many replicas of a capped, replicated, unconstrained service the
/// ready, active nodes can place: nodes × `max_replicas_per_node`. None where
/// the agent cannot count it (no cap, another mode, placement constraints).
pub fn room(s: &ServiceView, nodes: &[NodeView]) -> Option<u64> {
    let cap = s.max_per_node?;
    if s.mode != ServiceMode::Replicated || s.constrained {
        return None;
    }
    let schedulable = nodes
        .iter()
        .filter(|n| n.is_ready() && n.availability == Availability::Active)
        .count() as u64;
    Some(schedulable * cap)
}

/// The update order that lets an update of a capped service make progress.
/// A start-first update starts each new task before it stops an old one, so
/// it needs one slot free below `max_replicas_per_node` on some node; with
/// every slot taken it waits forever ("no suitable node"). So: start-first
/// while the ready, active nodes have more slots than the service has
/// replicas (no replica is missing during an update), stop-first when they
/// have not (each step frees a slot before filling it: one replica fewer
/// while it lasts). `None` leaves the service alone: no cap, not replicated,
/// placement constraints the agent cannot count nodes for, or a stop-first
/// order an operator chose.
pub fn update_order(s: &ServiceView, nodes: &[NodeView]) -> Option<UpdateOrder> {
    let room = room(s, nodes)?;
    if s.update_order != "start-first" && !ordered_by_agent(s) {
        return None;
    }
    if room > s.desired {
        Some(UpdateOrder::StartFirst)
    } else {
        Some(UpdateOrder::StopFirst)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::tests::worker;
    use crate::cluster::model::{NodeStatus, Role};
    use std::collections::BTreeMap;

    fn node(
        id: &str,
        role: Role,
        state: NodeStatus,
        reachable: Option<bool>,
        down_mins: i64,
    ) -> NodeView {
        NodeView {
            id: id.into(),
            hostname: id.into(),
            role,
            availability: Availability::Active,
            state,
            reachable,
            leader: false,
            addr: String::new(),
            labels: BTreeMap::new(),
            updated_at: Some(now() - time::Duration::minutes(down_mins)),
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn service(name: &str, desired: u64, running: u64, opted_in: bool) -> ServiceView {
        let mut labels = BTreeMap::new();
        if opted_in {
            labels.insert("swarm-agent.rebalance".to_string(), "true".to_string());
        }
        ServiceView {
            labels,
            ..crate::cluster::model::tests::replicated(
                &format!("id-{name}"),
                name,
                running,
                desired,
            )
        }
    }

    const GRACE: Duration = Duration::from_secs(600);

    fn stuck(name: &str) -> ServiceView {
        ServiceView {
            pending: 1,
            pending_reason: Some(
                "no suitable node (scheduling constraints not satisfied on 3 nodes)".into(),
            ),
            constrained: true,
            ..service(name, 1, 0, false)
        }
    }

    #[test]
    fn a_service_whose_only_task_waits_for_a_node_is_forced_after_a_while_and_not_again_at_once() {
        let after = Duration::from_secs(30);
        let t0 = Instant::now();
        let services = vec![stuck("shop_mysql"), service("shop_web", 3, 3, false)];
        let mut state = StuckState::default();
        state.observe(&services, t0);
        assert!(next_reschedule(&services, &state, t0 + after / 2, after).is_none());
        let due = next_reschedule(&services, &state, t0 + after, after).unwrap();
        assert_eq!(due.name, "shop_mysql");
        state.record(&due.id, t0 + after);
        state.observe(&services, t0 + after);
        assert!(next_reschedule(&services, &state, t0 + after * 3 / 2, after).is_none());
        assert!(next_reschedule(&services, &state, t0 + after * 2, after).is_some());
    }

    #[test]
    fn only_a_service_with_nothing_running_and_no_node_found_is_stuck() {
        assert!(is_stuck(&stuck("db")));
        let some_running = ServiceView {
            running: 1,
            desired: 2,
            ..stuck("web")
        };
        assert!(
            !is_stuck(&some_running),
            "a forced update would replace what runs"
        );
        let pulling = ServiceView {
            pending_reason: Some("preparing".into()),
            ..stuck("db")
        };
        assert!(!is_stuck(&pulling), "placed: the node is working on it");
        let updating = ServiceView {
            update_state: "updating".into(),
            ..stuck("db")
        };
        assert!(!is_stuck(&updating));
    }

    #[test]
    fn a_service_that_ran_again_starts_its_wait_afresh() {
        let after = Duration::from_secs(30);
        let t0 = Instant::now();
        let mut state = StuckState::default();
        state.observe(&[stuck("db")], t0);
        state.observe(&[service("db", 1, 1, false)], t0 + after);
        state.observe(&[stuck("db")], t0 + after * 2);
        assert!(next_reschedule(&[stuck("db")], &state, t0 + after * 2, after).is_none());
        assert!(next_reschedule(&[stuck("db")], &state, t0 + after * 3, after).is_some());
    }

    fn capped(desired: u64, cap: u64) -> ServiceView {
        ServiceView {
            max_per_node: Some(cap),
            ..service("shop", desired, desired, true)
        }
    }

    #[test]
    fn updates_start_first_only_while_a_slot_is_free() {
        let three = [worker("a"), worker("b"), worker("c")];
        let cases = [
            // (nodes, replicas, cap, expected)
            (1, 3, 2, UpdateOrder::StopFirst), // a lone manager: 2 of 3 run, none free
            (1, 2, 2, UpdateOrder::StopFirst), // exactly full
            (1, 1, 2, UpdateOrder::StartFirst),
            (3, 6, 2, UpdateOrder::StopFirst), // the autoscaler filled every node
            (3, 5, 2, UpdateOrder::StartFirst),
            (3, 3, 2, UpdateOrder::StartFirst), // the shipped default on three nodes
        ];
        for (n, replicas, cap, expected) in cases {
            let got = update_order(&capped(replicas, cap), &three[..n]);
            assert_eq!(
                got,
                Some(expected),
                "{n} nodes, {replicas} replicas, cap {cap}"
            );
        }
    }

    #[test]
    fn only_ready_active_nodes_offer_slots() {
        let mut drained = worker("b");
        drained.availability = Availability::Drain;
        let mut down = worker("c");
        down.state = NodeStatus::Down;
        let nodes = vec![worker("a"), drained, down];
        assert_eq!(
            update_order(&capped(2, 2), &nodes),
            Some(UpdateOrder::StopFirst)
        );
        assert_eq!(
            update_order(&capped(1, 2), &nodes),
            Some(UpdateOrder::StartFirst)
        );
    }

    #[test]
    fn services_the_agent_cannot_count_for_are_left_alone() {
        let nodes = vec![worker("a")];
        let uncapped = service("shop", 3, 3, true);
        assert_eq!(update_order(&uncapped, &nodes), None);
        let constrained = ServiceView {
            constrained: true,
            ..capped(3, 2)
        };
        assert_eq!(update_order(&constrained, &nodes), None);
        let global = ServiceView {
            mode: ServiceMode::Global,
            ..capped(1, 1)
        };
        assert_eq!(update_order(&global, &nodes), None);
        // An operator's own stop-first stays; the agent's own goes back.
        let operators = ServiceView {
            update_order: "stop-first".into(),
            ..capped(1, 2)
        };
        assert_eq!(update_order(&operators, &nodes), None);
        let mut agents = operators.clone();
        agents
            .labels
            .insert(ORDER_LABEL.into(), "stop-first".into());
        assert_eq!(update_order(&agents, &nodes), Some(UpdateOrder::StartFirst));
        assert!(
            warnings(&[agents]).is_empty(),
            "the agent's stop-first is not warned about"
        );
    }

    #[test]
    fn pending_replicas_are_warned_about_with_their_reason() {
        let mut s = capped(5, 2);
        s.running = 2;
        s.pending = 3;
        s.pending_reason = Some("no suitable node (max replicas per node limit exceed)".into());
        let w = warnings(&[s]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("service shop: 3 replicas pending: no suitable node"),
            "{}",
            w[0]
        );
        assert!(w[0].contains("a node joins"), "{}", w[0]);
    }

    #[test]
    fn quorum_is_a_strict_majority() {
        assert_eq!(quorum(1), 1);
        assert_eq!(quorum(2), 2);
        assert_eq!(quorum(3), 2);
        assert_eq!(quorum(4), 3);
        assert_eq!(quorum(5), 3);
        assert_eq!(quorum_margin(3, 3), 1);
        assert_eq!(quorum_margin(3, 2), 0);
        assert_eq!(quorum_margin(3, 1), -1);
        assert_eq!(quorum_margin(5, 3), 0);
        assert_eq!(quorum_margin(0, 0), -1, "no managers at all is no quorum");
    }

    #[test]
    fn down_worker_is_removed_only_after_grace() {
        let young = node("w1", Role::Worker, NodeStatus::Down, None, 3);
        let old = node("w2", Role::Worker, NodeStatus::Down, None, 11);
        let ready = node("w3", Role::Worker, NodeStatus::Ready, None, 60);
        let all = [
            node("m1", Role::Manager, NodeStatus::Ready, Some(true), 0),
            young.clone(),
            old.clone(),
            ready.clone(),
        ];
        assert!(
            matches!(removal(&young, &all, "m1", now(), GRACE), Removal::WithinGrace { remaining } if remaining == Duration::from_secs(420))
        );
        assert_eq!(
            removal(&old, &all, "m1", now(), GRACE),
            Removal::Remove {
                demote_first: false
            }
        );
        assert_eq!(removal(&ready, &all, "m1", now(), GRACE), Removal::NotDown);
    }

    #[test]
    fn a_node_without_timestamp_is_treated_as_just_down() {
        let mut n = node("w1", Role::Worker, NodeStatus::Down, None, 0);
        n.updated_at = None;
        assert!(matches!(
            removal(&n, std::slice::from_ref(&n), "m1", now(), GRACE),
            Removal::WithinGrace { .. }
        ));
    }

    #[test]
    fn down_manager_removed_only_while_quorum_holds() {
        // 3 managers, 1 down: 2 reachable >= quorum 2 -> may remove (demote first).
        let m3 = node("m3", Role::Manager, NodeStatus::Down, Some(false), 30);
        let ok = [
            node("m1", Role::Manager, NodeStatus::Ready, Some(true), 0),
            node("m2", Role::Manager, NodeStatus::Ready, Some(true), 0),
            m3.clone(),
        ];
        assert_eq!(
            removal(&m3, &ok, "m1", now(), GRACE),
            Removal::Remove { demote_first: true }
        );

        // 3 managers, 2 down: quorum lost, the swarm could not even demote.
        let m2 = node("m2", Role::Manager, NodeStatus::Down, Some(false), 30);
        let lost = [
            node("m1", Role::Manager, NodeStatus::Ready, Some(true), 0),
            m2.clone(),
            m3.clone(),
        ];
        assert_eq!(
            removal(&m3, &lost, "m1", now(), GRACE),
            Removal::WouldLoseQuorum
        );
    }

    #[test]
    fn never_removes_self_or_leader() {
        let mut leader = node("m2", Role::Manager, NodeStatus::Down, Some(false), 30);
        leader.leader = true;
        let me = node("m1", Role::Manager, NodeStatus::Down, Some(false), 30);
        let all = [me.clone(), leader.clone()];
        assert_eq!(
            removal(&me, &all, "m1", now(), GRACE),
            Removal::IsSelfOrLeader
        );
        assert_eq!(
            removal(&leader, &all, "m1", now(), GRACE),
            Removal::IsSelfOrLeader
        );
    }

    #[test]
    fn rebalance_waits_for_a_join_then_one_service_per_interval() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(60);
        let services = [
            service("b", 3, 3, true),
            service("a", 3, 3, true),
            service("c", 3, 3, false),
        ];
        let mut state = RebalanceState::default();
        let m1 = node("m1", Role::Manager, NodeStatus::Ready, Some(true), 0);
        let w1 = node("w1", Role::Worker, NodeStatus::Ready, None, 0);

        assert!(
            state
                .observe_ready(std::slice::from_ref(&m1), t0)
                .is_empty(),
            "first pass only learns"
        );
        assert!(next_rebalance(&services, "swarm-agent.rebalance", &state, t0, interval).is_none());

        assert_eq!(
            state.observe_ready(&[m1.clone(), w1.clone()], t0),
            vec!["w1".to_string()]
        );
        let first =
            next_rebalance(&services, "swarm-agent.rebalance", &state, t0, interval).unwrap();
        assert_eq!(first.name, "a", "deterministic order");
        state.record(&first.id, t0);

        let soon = t0 + Duration::from_secs(10);
        assert!(
            next_rebalance(&services, "swarm-agent.rebalance", &state, soon, interval).is_none(),
            "rate limited"
        );

        let later = t0 + Duration::from_secs(61);
        let second =
            next_rebalance(&services, "swarm-agent.rebalance", &state, later, interval).unwrap();
        assert_eq!(second.name, "b");
        state.record(&second.id, later);

        let much_later = t0 + Duration::from_secs(600);
        assert!(
            next_rebalance(
                &services,
                "swarm-agent.rebalance",
                &state,
                much_later,
                interval
            )
            .is_none(),
            "each service once per join; `c` never opted in"
        );
    }

    #[test]
    fn rebalance_skips_services_mid_update_or_short_of_tasks() {
        let t0 = Instant::now();
        let mut state = RebalanceState::default();
        state.observe_ready(&[], t0);
        state.observe_ready(&[node("w1", Role::Worker, NodeStatus::Ready, None, 0)], t0);
        let mut updating = service("u", 3, 3, true);
        updating.update_state = "updating".into();
        let short = service("s", 3, 1, true);
        let single = service("one", 1, 1, true);
        let services = [updating, short, single];
        assert!(
            next_rebalance(
                &services,
                "swarm-agent.rebalance",
                &state,
                t0,
                Duration::ZERO
            )
            .is_none()
        );
    }

    #[test]
    fn health_levels() {
        let m1 = node("m1", Role::Manager, NodeStatus::Ready, Some(true), 0);
        let w_down = node("w1", Role::Worker, NodeStatus::Down, None, 5);
        assert_eq!(
            health(std::slice::from_ref(&m1), &[service("a", 2, 2, false)]),
            Health::Healthy
        );
        assert_eq!(health(&[m1.clone(), w_down], &[]), Health::Degraded);
        assert_eq!(
            health(std::slice::from_ref(&m1), &[service("a", 2, 1, false)]),
            Health::Degraded
        );
        let lost = [
            m1.clone(),
            node("m2", Role::Manager, NodeStatus::Down, Some(false), 5),
            node("m3", Role::Manager, NodeStatus::Down, Some(false), 5),
        ];
        assert_eq!(health(&lost, &[]), Health::Down);
        assert_eq!(Health::Down.exit_code(), 3);
    }

    #[test]
    fn warns_about_missing_healthchecks_and_stop_first() {
        let mut s = service("web", 2, 2, false);
        assert!(warnings(std::slice::from_ref(&s)).is_empty());
        s.has_healthcheck = false;
        s.update_order = "stop-first".into();
        let w = warnings(&[s]);
        assert_eq!(w.len(), 2);
        assert!(
            w[0].contains("healthcheck") && w[1].contains("stop-first"),
            "{w:?}"
        );
    }

    #[test]
    fn a_single_replica_with_its_volume_may_stop_first() {
        let mut db = service("mysql", 1, 1, false);
        db.update_order = "stop-first".into();
        assert!(warnings(&[db]).is_empty());
    }
}
