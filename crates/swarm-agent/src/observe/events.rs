//! One call per thing the agent did: it is counted in the action metrics,
//! kept in the action log the fleet page shows, and written to the log, the
//! three always together and always under the same name.

use std::fmt::Display;

use tracing::{error, info};

use super::actions::{ActionLog, Outcome};
use super::metrics::Metrics;
use crate::autoscale::policy::Direction;

/// What the agent did. Its metric label and its name in the action log are
/// contracts (alerts, dashboards and operators read them): each is spelled
/// once, here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The agent started serving.
    Start,
    /// A node became ready (seen by the leader).
    Join,
    /// Instance metadata announced this instance's end, or a rebalance.
    Notice,
    Drain,
    Label,
    Remove,
    /// Swarm facts written again to the token store.
    Publish,
    Rebalance,
    /// A stuck service forced so that its task is placed again.
    Reschedule,
    UpdateOrder,
    RegistryAuth,
    /// This node reported itself unhealthy to its Auto Scaling group.
    SetInstanceHealth,
    ImagePrune,
    /// A pass of the leader's reconciler.
    Reconcile,
    Leave,
    LifecycleHeartbeat,
    LifecycleComplete,
    /// The node did not become ready before the launch hook's deadline.
    LaunchReady,
    LaunchComplete,
    BackupCredentials,
    Scale(Direction),
    /// A scale a dry run only describes.
    WouldScale(Direction),
    /// A service's autoscaling labels cannot be read.
    AutoscaleRefused,
}

impl Kind {
    /// The `action` label of `swarm_agent_actions_total` and
    /// `swarm_agent_action_failures_total`; `None` when it is not counted.
    pub fn metric(self) -> Option<&'static str> {
        Some(match self {
            Kind::Start
            | Kind::Join
            | Kind::Notice
            | Kind::WouldScale(_)
            | Kind::AutoscaleRefused => return None,
            Kind::Drain => "drain",
            Kind::Label => "label",
            Kind::Remove => "remove",
            Kind::Publish => "publish",
            Kind::Rebalance => "rebalance",
            Kind::Reschedule => "reschedule",
            Kind::UpdateOrder => "update-order",
            Kind::RegistryAuth => "registry-auth",
            Kind::SetInstanceHealth => "set-instance-health",
            Kind::ImagePrune => "image_prune",
            Kind::Reconcile => "reconcile",
            Kind::Leave => "leave",
            Kind::LifecycleHeartbeat => "lifecycle_heartbeat",
            Kind::LifecycleComplete => "lifecycle_complete",
            Kind::LaunchReady => "launch_ready",
            Kind::LaunchComplete => "launch_complete",
            Kind::BackupCredentials => "backup-credentials",
            Kind::Scale(_) => "autoscale",
        })
    }

    /// Its name in the action log; `None` for what happens too often to be
    /// worth one of its rows (they are counted and logged).
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Kind::Reconcile | Kind::LifecycleHeartbeat | Kind::BackupCredentials => return None,
            Kind::Start => "start",
            Kind::Join => "join",
            Kind::Notice => "notice",
            Kind::Drain => "drain",
            Kind::Label => "label",
            Kind::Remove => "remove",
            Kind::Publish => "republish",
            Kind::Rebalance => "rebalance",
            Kind::Reschedule => "reschedule",
            Kind::UpdateOrder => "update order",
            Kind::RegistryAuth => "registry auth",
            Kind::SetInstanceHealth => "node unhealthy",
            Kind::ImagePrune => "image-prune",
            Kind::Leave => "leave",
            Kind::LifecycleComplete => "lifecycle hook",
            Kind::LaunchReady | Kind::LaunchComplete => "ready",
            Kind::Scale(Direction::Out) => "scale out",
            Kind::Scale(Direction::In) => "scale in",
            Kind::WouldScale(Direction::Out) => "scale out (dry-run)",
            Kind::WouldScale(Direction::In) => "scale in (dry-run)",
            Kind::AutoscaleRefused => "autoscale refused",
        })
    }
}

/// Where the agent's duties say what they did. Cheap to clone: clones count
/// into the same metrics and keep into the same log.
#[derive(Clone)]
pub struct Events {
    metrics: Metrics,
    log: ActionLog,
}

impl Events {
    pub fn new(metrics: Metrics, log: ActionLog) -> Events {
        Events { metrics, log }
    }

    /// What the fleet page shows.
    pub fn log(&self) -> &ActionLog {
        &self.log
    }

    /// `kind` was done to `subject`: counted, kept and logged (info).
    pub fn done(&self, kind: Kind, subject: &str, detail: impl Into<String>) {
        let detail = detail.into();
        if let Some(label) = kind.metric() {
            self.metrics.action(label);
        }
        info!(action = kind.name().or(kind.metric()), subject, "{detail}");
        self.keep(kind, Outcome::Done, subject, detail);
    }

    /// `kind` failed on `subject` with `error`; `next` says what happens
    /// now. Counted as a failure, kept as "… failed", logged (error).
    pub fn failed(&self, kind: Kind, subject: &str, error: &dyn Display, next: &str) {
        if let Some(label) = kind.metric() {
            self.metrics.failure(label);
        }
        error!(action = kind.name().or(kind.metric()), subject, error = %error, "failed: {next}");
        self.keep(kind, Outcome::Failed, subject, error.to_string());
    }

    fn keep(&self, kind: Kind, outcome: Outcome, subject: &str, detail: String) {
        if let Some(name) = kind.name() {
            self.log.record(name, outcome, subject, detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_counts_keeps_and_names_it_once() {
        let events = Events::new(Metrics::new(), ActionLog::default());
        events.done(Kind::Remove, "w3", "Down for longer than 10m");
        events.failed(Kind::Rebalance, "shop_storefront", &"conflict", "next pass");
        events.failed(Kind::Reconcile, "swarm", &"engine gone", "next pass");

        let rendered = events.metrics.render();
        assert!(rendered.contains("swarm_agent_actions_total{action=\"remove\"} 1"));
        assert!(rendered.contains("swarm_agent_action_failures_total{action=\"rebalance\"} 1"));
        assert!(rendered.contains("swarm_agent_action_failures_total{action=\"reconcile\"} 1"));

        let kept: Vec<String> = events
            .log()
            .newest_first()
            .iter()
            .map(|a| format!("{} {}: {}", a.kind(), a.subject, a.detail))
            .collect();
        assert_eq!(
            kept,
            [
                "rebalance failed shop_storefront: conflict",
                "remove w3: Down for longer than 10m"
            ],
            "a reconcile pass is counted, not kept"
        );
    }

    #[test]
    fn every_kind_is_counted_or_kept() {
        let every = [
            Kind::Start,
            Kind::Join,
            Kind::Notice,
            Kind::Drain,
            Kind::Label,
            Kind::Remove,
            Kind::Publish,
            Kind::Rebalance,
            Kind::UpdateOrder,
            Kind::RegistryAuth,
            Kind::SetInstanceHealth,
            Kind::ImagePrune,
            Kind::Reconcile,
            Kind::Leave,
            Kind::LifecycleHeartbeat,
            Kind::LifecycleComplete,
            Kind::LaunchReady,
            Kind::LaunchComplete,
            Kind::BackupCredentials,
            Kind::Scale(Direction::Out),
            Kind::WouldScale(Direction::In),
            Kind::AutoscaleRefused,
        ];
        for kind in every {
            assert!(kind.metric().is_some() || kind.name().is_some(), "{kind:?}");
        }
    }
}
