//! A node's end of life, noticed by the node itself: the Auto Scaling
//! group's scale-in (IMDSv2 `autoscaling/target-lifecycle-state`), a spot
//! interruption (`spot/instance-action`), and the advisory rebalance
//! recommendation. On a termination the node hands its work over before it
//! goes: drain through a manager, heartbeats on the lifecycle hook while its
//! tasks start elsewhere, leave, then `CompleteLifecycleAction` so the group
//! terminates it. No central queue or Lambda is needed; the Down-node
//! reconciler stays as the safety net for nodes that die without notice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{error, info, warn};

use crate::cli::{ClusterArgs, LeaveArgs, LifecycleArgs};
use crate::engine::Engine;
use crate::node::imds::Imds;
use crate::observe::events::{Events, Kind};
use crate::observe::metrics::Metrics;

/// Metadata paths read on every poll, in this order.
const TARGET_STATE: &str = "autoscaling/target-lifecycle-state";
const SPOT_ACTION: &str = "spot/instance-action";
const REBALANCE: &str = "events/recommendations/rebalance";

/// What the metadata says about this instance's future.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Nothing planned.
    None,
    /// EC2 advises that spot capacity is at risk. Nothing is terminated yet:
    /// with Capacity Rebalancing the group launches a replacement first and
    /// then terminates this node through the lifecycle hook, which we handle.
    Rebalance,
    /// The group is scaling in (or replacing) this instance; the lifecycle
    /// hook holds it in Terminating:Wait until we complete it.
    ScaleIn,
    /// A spot interruption: about two minutes, and no hook to complete.
    Spot { action: String },
}

impl Notice {
    pub fn kind(&self) -> &'static str {
        match self {
            Notice::None => "none",
            Notice::Rebalance => "rebalance",
            Notice::ScaleIn => "scale_in",
            Notice::Spot { .. } => "spot",
        }
    }

    pub fn ends_the_node(&self) -> bool {
        matches!(self, Notice::ScaleIn | Notice::Spot { .. })
    }
}

/// Decide from the three metadata values (None: the path answered 404).
/// A spot interruption wins: it leaves the least time.
pub fn notice(target_state: Option<&str>, spot: Option<&str>, rebalance: Option<&str>) -> Notice {
    if let Some(raw) = spot {
        let action = serde_json::from_str::<serde_json::Value>(raw)
            .ok()
            .and_then(|v| v.get("action").and_then(|a| a.as_str()).map(String::from))
            .unwrap_or_else(|| "terminate".into());
        return Notice::Spot { action };
    }
    // "Warmed:Terminated" is a warm-pool instance being removed.
    if target_state.is_some_and(|s| s == "Terminated" || s.ends_with(":Terminated")) {
        return Notice::ScaleIn;
    }
    if rebalance.is_some() {
        return Notice::Rebalance;
    }
    Notice::None
}

/// Everything the watcher needs, from `serve`'s flags.
pub struct Watcher {
    pub engine: Engine,
    /// Set when a notice ends the node: /lb-health then fails at once.
    pub leaving: Arc<AtomicBool>,
    pub args: LifecycleArgs,
    pub cluster: ClusterArgs,
    pub metrics: Metrics,
    /// What this agent did, for the fleet page.
    pub events: Events,
    pub dry_run: bool,
}

impl Watcher {
    /// Poll until a notice ends the node, hand the work over, then return.
    pub async fn run(self) {
        let imds = match Imds::new(&self.args.imds.url) {
            Ok(i) => i,
            Err(e) => {
                error!(error = %e, "lifecycle watcher not started");
                return;
            }
        };
        let mut rebalance_seen = false;
        let mut unreadable_logged = false;
        loop {
            match imds.read_all(&[TARGET_STATE, SPOT_ACTION, REBALANCE]).await {
                Ok(v) => {
                    unreadable_logged = false;
                    let seen = notice(v[0].as_deref(), v[1].as_deref(), v[2].as_deref());
                    if seen.ends_the_node() {
                        self.metrics.notice(seen.kind());
                        self.events.done(
                            Kind::Notice,
                            "this node",
                            format!("{}: this instance is being terminated", seen.kind()),
                        );
                        self.hand_over(&imds, &seen).await;
                        return;
                    }
                    if seen == Notice::Rebalance && !rebalance_seen {
                        rebalance_seen = true;
                        self.metrics.notice(seen.kind());
                        self.events.done(
                            Kind::Notice,
                            "this node",
                            "EC2 recommends rebalancing this spot instance: no action until a \
                             termination notice (the group replaces it through the lifecycle hook)",
                        );
                    }
                }
                Err(e) if !unreadable_logged => {
                    unreadable_logged = true;
                    warn!(error = %e, "cannot read termination notices from instance metadata; retrying")
                }
                Err(_) => {}
            }
            tokio::time::sleep(self.args.lifecycle_poll).await;
        }
    }

    async fn hand_over(&self, imds: &Imds, seen: &Notice) {
        let deadline = match seen {
            Notice::Spot { .. } => self.args.spot_leave_deadline,
            _ => self.args.leave_deadline,
        };
        self.leaving.store(true, Ordering::SeqCst);
        info!(notice = seen.kind(), ?seen, deadline = ?deadline, "this instance is being terminated: handing its work over before it goes");
        let hook = match seen {
            Notice::ScaleIn => self.hook(imds).await,
            _ => None,
        };
        let heartbeats = hook.as_ref().map(|h| {
            let h = h.clone();
            let every = self.args.heartbeat_interval;
            tokio::spawn(async move { h.keep_alive(every).await })
        });
        let started = std::time::Instant::now();
        let left =
            crate::node::leave::run(&self.engine, &self.leave_args(deadline), self.dry_run).await;
        if let Some(task) = heartbeats {
            task.abort();
        }
        match &left {
            Ok(()) => {
                let took = started.elapsed().as_secs();
                let detail = format!("left the swarm {took} s after handing its work over");
                self.events.done(Kind::Leave, "this node", detail);
            }
            Err(e) => {
                let next = "the managers' reconciler removes this node once it is Down";
                self.events.failed(Kind::Leave, "this node", e, next);
            }
        }
        if let Some(hook) = hook {
            if self.dry_run {
                info!("dry-run: would complete the lifecycle action with CONTINUE");
            } else {
                let lifecycle = Kind::LifecycleComplete;
                match hook.complete().await {
                    Ok(()) => self.events.done(lifecycle, "this node", "CONTINUE"),
                    Err(e) => {
                        let next = "the group terminates this instance when the hook times out";
                        self.events.failed(lifecycle, "this node", &e, next);
                    }
                }
            }
        }
    }

    fn leave_args(&self, deadline: Duration) -> LeaveArgs {
        LeaveArgs {
            cluster: self.cluster.clone(),
            deadline,
            poll: Duration::from_secs(2),
            lb_drain_delay: self.args.lb_drain_delay,
        }
    }

    /// The lifecycle hook of this instance, when the group and hook are configured.
    async fn hook(&self, imds: &Imds) -> Option<hook::Hook> {
        let (Some(group), Some(name)) = (&self.args.asg_name, &self.args.lifecycle_hook) else {
            warn!(
                "no --asg-name/--lifecycle-hook: the group terminates this instance when its hook times out"
            );
            return None;
        };
        let instance = match imds.read_all(&["instance-id"]).await {
            Ok(v) => v.into_iter().next().flatten()?,
            Err(e) => {
                error!(error = %e, "cannot read the instance id: the lifecycle hook will time out instead");
                return None;
            }
        };
        hook::Hook::new(
            group,
            name,
            &instance,
            self.cluster.store.aws_region.as_deref(),
            self.args.autoscaling_endpoint.as_deref(),
            self.events.clone(),
        )
        .await
        .map_err(|e| error!(error = %e, "no Auto Scaling client"))
        .ok()
    }
}

#[cfg(feature = "aws")]
pub(crate) mod hook {
    use std::time::Duration;

    use aws_sdk_autoscaling::error::DisplayErrorContext;
    use tracing::info;

    use crate::error::{Error, Result};
    use crate::observe::events::{Events, Kind};

    /// One instance's place in its group's termination lifecycle hook.
    #[derive(Clone)]
    pub struct Hook {
        client: aws_sdk_autoscaling::Client,
        group: String,
        name: String,
        instance: String,
        events: Events,
    }

    impl Hook {
        pub async fn new(
            group: &str,
            name: &str,
            instance: &str,
            region: Option<&str>,
            endpoint: Option<&str>,
            events: Events,
        ) -> Result<Hook> {
            Ok(Hook {
                client: crate::store::aws::autoscaling_client(region, endpoint).await,
                group: group.into(),
                name: name.into(),
                instance: instance.into(),
                events,
            })
        }

        fn fail(&self, call: &str, e: impl std::error::Error) -> Error {
            Error::Api {
                url: format!("autoscaling {call} ({} / {})", self.group, self.name),
                message: DisplayErrorContext(e).to_string(),
            }
        }

        /// Extend the hook's timeout every `every` until aborted.
        pub async fn keep_alive(&self, every: Duration) {
            loop {
                let sent = self
                    .client
                    .record_lifecycle_action_heartbeat()
                    .auto_scaling_group_name(&self.group)
                    .lifecycle_hook_name(&self.name)
                    .instance_id(&self.instance)
                    .send()
                    .await;
                match sent {
                    Ok(_) => self.events.done(
                        Kind::LifecycleHeartbeat,
                        &self.instance,
                        "the group waits while tasks move",
                    ),
                    Err(e) => self.events.failed(
                        Kind::LifecycleHeartbeat,
                        &self.instance,
                        &self.fail("RecordLifecycleActionHeartbeat", e),
                        "the next heartbeat tries again",
                    ),
                }
                tokio::time::sleep(every).await;
            }
        }

        pub async fn complete(&self) -> Result<()> {
            self.client
                .complete_lifecycle_action()
                .auto_scaling_group_name(&self.group)
                .lifecycle_hook_name(&self.name)
                .instance_id(&self.instance)
                .lifecycle_action_result("CONTINUE")
                .send()
                .await
                .map_err(|e| self.fail("CompleteLifecycleAction", e))?;
            info!(instance = %self.instance, group = %self.group, hook = %self.name, "completed the lifecycle action (CONTINUE): the group goes on with this instance's launch or termination");
            Ok(())
        }
    }
}

#[cfg(not(feature = "aws"))]
pub(crate) mod hook {
    use std::time::Duration;

    use crate::error::{Error, Result};
    use crate::observe::events::Events;

    #[derive(Clone)]
    pub struct Hook;

    impl Hook {
        pub async fn new(
            _: &str,
            _: &str,
            _: &str,
            _: Option<&str>,
            _: Option<&str>,
            _: Events,
        ) -> Result<Hook> {
            Err(Error::Config(
                "this build has no AWS support (built without the `aws` feature)".into(),
            ))
        }
        pub async fn keep_alive(&self, _: Duration) {}
        pub async fn complete(&self) -> Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_from_metadata() {
        // (target-lifecycle-state, spot/instance-action, rebalance) -> notice
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, Notice);
        let cases: &[Case] = &[
            (Some("InService"), None, None, Notice::None),
            (None, None, None, Notice::None),
            (Some("Terminated"), None, None, Notice::ScaleIn),
            (Some("Warmed:Terminated"), None, None, Notice::ScaleIn),
            (Some("Warmed:Stopped"), None, None, Notice::None),
            (
                Some("InService"),
                None,
                Some(r#"{"noticeTime":"2026-11-29T07:00:00Z"}"#),
                Notice::Rebalance,
            ),
            (
                Some("InService"),
                Some(r#"{"action":"terminate","time":"2026-11-29T07:02:00Z"}"#),
                None,
                Notice::Spot {
                    action: "terminate".into(),
                },
            ),
            (
                Some("Terminated"),
                Some(r#"{"action":"stop","time":"2026-11-29T07:02:00Z"}"#),
                None,
                Notice::Spot {
                    action: "stop".into(),
                },
            ),
            (
                None,
                Some("not json"),
                None,
                Notice::Spot {
                    action: "terminate".into(),
                },
            ),
        ];
        for (state, spot, rebalance, want) in cases {
            assert_eq!(
                &notice(*state, *spot, *rebalance),
                want,
                "{state:?} {spot:?} {rebalance:?}"
            );
        }
        assert!(Notice::ScaleIn.ends_the_node());
        assert!(!Notice::Rebalance.ends_the_node());
    }
}
