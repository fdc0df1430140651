//! The node's own health, for its Auto Scaling group: broken means the node
//! itself, never the shop.
//!
//! The load balancer's check (`/lb-health`) asks the node's proxy, which asks
//! a storefront replica: with no ready replica (a restore, a bad image) every
//! node fails it, and a group that replaced nodes on that check would
//! terminate them all. So the group uses EC2's own status checks
//! (`HealthCheckType: EC2`), and this agent tells it when the node is broken
//! in a way EC2 cannot see: the Docker engine does not answer, or the node is
//! not an active swarm member (a join that never succeeded, a node the
//! managers removed). Either must last `unhealthy_after` before the agent
//! calls `SetInstanceHealth` (Unhealthy, respecting the group's grace
//! period), and it calls again every minute while the node stays broken: a
//! call inside the grace period is ignored by the group.
//!
//! Not the proxy: it runs on every node as a global service, so a `stack rm`
//! or a drained node takes it away from every node at once, and a check on
//! it would have the group replace them all. A proxy that hangs is Swarm's to
//! restart (its healthcheck), as for any task. A dead agent is restarted by
//! systemd; a dead instance fails EC2's checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bollard::models::LocalNodeState;
use tracing::{info, warn};

use crate::engine::Engine;
use crate::observe::events::{Events, Kind};
use crate::observe::metrics::Metrics;

/// How long one look at the engine may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// While broken, tell the group again this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

/// One look at the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The engine answered within [`PROBE_TIMEOUT`].
    pub engine: bool,
    /// The engine says this node is an active member of a swarm.
    pub in_swarm: bool,
}

/// What the looks add up to, over time.
#[derive(Debug, Default)]
pub struct Tracker {
    failing_since: Option<Instant>,
    last_report: Option<Instant>,
}

impl Tracker {
    /// Takes one observation; returns the reason to report the node
    /// unhealthy now (None: healthy, not yet long enough, or reported less
    /// than [`REPORT_EVERY`] ago).
    pub fn observe(
        &mut self,
        seen: Observation,
        now: Instant,
        unhealthy_after: Duration,
    ) -> Option<String> {
        let Some(problem) = problem(seen) else {
            self.failing_since = None;
            self.last_report = None;
            return None;
        };
        let since = *self.failing_since.get_or_insert(now);
        let failing = now.duration_since(since);
        if failing < unhealthy_after {
            return None;
        }
        if self
            .last_report
            .is_some_and(|at| now.duration_since(at) < REPORT_EVERY)
        {
            return None;
        }
        self.last_report = Some(now);
        Some(format!(
            "{problem} for {}",
            humantime::format_duration(Duration::from_secs(failing.as_secs()))
        ))
    }

    /// Whether the node is failing a check right now.
    pub fn failing(&self) -> bool {
        self.failing_since.is_some()
    }
}

fn problem(seen: Observation) -> Option<&'static str> {
    if !seen.engine {
        Some("the Docker engine has not answered")
    } else if !seen.in_swarm {
        Some("this node has not been an active swarm member")
    } else {
        None
    }
}

/// The loop on every worker: look, and tell the group when broken.
pub struct Monitor {
    pub engine: Engine,
    pub unhealthy_after: Duration,
    pub poll: Duration,
    pub report: Reporter,
    pub leaving: Arc<AtomicBool>,
    pub metrics: Metrics,
    pub events: Events,
    pub dry_run: bool,
}

impl Monitor {
    pub async fn run(self) {
        let mut tracker = Tracker::default();
        // A node that is leaving is the group's business already.
        while !self.leaving.load(Ordering::SeqCst) {
            let seen = self.look().await;
            let report = tracker.observe(seen, Instant::now(), self.unhealthy_after);
            self.metrics.node_healthy(!tracker.failing());
            if let Some(reason) = report {
                self.tell_the_group(&reason).await;
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn look(&self) -> Observation {
        let local = tokio::time::timeout(PROBE_TIMEOUT, self.engine.local_swarm()).await;
        let (engine, in_swarm) = match local {
            Ok(Ok(l)) => (true, l.state == LocalNodeState::ACTIVE),
            _ => (false, false),
        };
        Observation { engine, in_swarm }
    }

    async fn tell_the_group(&self, reason: &str) {
        if self.dry_run {
            info!(
                reason,
                "dry-run: would report this instance unhealthy to its group"
            );
            return;
        }
        match self.report.unhealthy().await {
            Ok(()) => {
                let detail = format!(
                    "{reason}: reported unhealthy, its group replaces it (after its grace period)"
                );
                self.events
                    .done(Kind::SetInstanceHealth, "this node", detail);
            }
            Err(e) => {
                let next = format!(
                    "{reason}: not reported to its group; reporting again at the next look"
                );
                self.events
                    .failed(Kind::SetInstanceHealth, "this node", &e, &next);
            }
        }
    }
}

/// Starts the [`Monitor`] on a node of an Auto Scaling group (`--asg-name`):
/// reads the instance id from instance metadata first.
pub async fn watch(
    engine: Engine,
    args: crate::cli::LifecycleArgs,
    region: Option<String>,
    leaving: Arc<AtomicBool>,
    metrics: Metrics,
    events: Events,
    dry_run: bool,
) {
    let instance = loop {
        match instance_id(&args.imds.url).await {
            Ok(id) => break id,
            Err(e) => {
                warn!(error = %e, "node health: no instance id from instance metadata yet; retrying");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    };
    Monitor {
        engine,
        unhealthy_after: args.node_unhealthy_after,
        poll: args.lifecycle_poll,
        report: Reporter::new(
            &instance,
            region.as_deref(),
            args.autoscaling_endpoint.as_deref(),
        )
        .await,
        leaving,
        metrics,
        events,
        dry_run,
    }
    .run()
    .await
}

pub(crate) async fn instance_id(url: &str) -> crate::Result<String> {
    let imds = crate::node::imds::Imds::new(url)?;
    imds.read_all(&["instance-id"])
        .await?
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| crate::Error::Config("instance metadata has no instance-id".into()))
}

/// Tells the Auto Scaling group that this instance is unhealthy.
#[cfg(feature = "aws")]
pub struct Reporter {
    client: aws_sdk_autoscaling::Client,
    instance: String,
}

#[cfg(feature = "aws")]
impl Reporter {
    pub async fn new(instance: &str, region: Option<&str>, endpoint: Option<&str>) -> Reporter {
        Reporter {
            client: crate::store::aws::autoscaling_client(region, endpoint).await,
            instance: instance.to_string(),
        }
    }

    async fn unhealthy(&self) -> crate::Result<()> {
        self.client
            .set_instance_health()
            .instance_id(&self.instance)
            .health_status("Unhealthy")
            .should_respect_grace_period(true)
            .send()
            .await
            .map_err(|e| crate::Error::Api {
                url: format!("autoscaling SetInstanceHealth ({})", self.instance),
                message: aws_sdk_autoscaling::error::DisplayErrorContext(e).to_string(),
            })?;
        Ok(())
    }
}

#[cfg(not(feature = "aws"))]
pub struct Reporter;

#[cfg(not(feature = "aws"))]
impl Reporter {
    pub async fn new(_instance: &str, _region: Option<&str>, _endpoint: Option<&str>) -> Reporter {
        Reporter
    }

    async fn unhealthy(&self) -> crate::Result<()> {
        Err(crate::Error::Config(
            "reporting node health to an Auto Scaling group needs the `aws` feature".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(300);
    const HEALTHY: Observation = Observation {
        engine: true,
        in_swarm: true,
    };
    const ENGINE_HUNG: Observation = Observation {
        engine: false,
        in_swarm: false,
    };

    /// Feeds one observation every 10 s for `span`; returns the reports made.
    fn feed(t: &mut Tracker, start: Instant, span: Duration, obs: Observation) -> Vec<String> {
        let step = Duration::from_secs(10);
        let mut out = Vec::new();
        let mut at = Duration::ZERO;
        while at <= span {
            out.extend(t.observe(obs, start + at, AFTER));
            at += step;
        }
        out
    }

    #[test]
    fn an_engine_that_stops_answering_is_reported_after_the_threshold_then_every_minute() {
        let mut t = Tracker::default();
        let start = Instant::now();
        assert!(feed(&mut t, start, Duration::from_secs(60), HEALTHY).is_empty());
        let later = start + Duration::from_secs(70);
        let reports = feed(&mut t, later, Duration::from_secs(420), ENGINE_HUNG);
        // At 300 s, then each minute: 360 and 420.
        assert_eq!(reports.len(), 3, "{reports:?}");
        assert!(
            reports[0].starts_with("the Docker engine has not answered for 5m"),
            "{}",
            reports[0]
        );
        // Healthy again: the count starts over.
        let back = later + Duration::from_secs(430);
        assert!(t.observe(HEALTHY, back, AFTER).is_none());
        assert!(!t.failing());
    }

    #[test]
    fn a_healthy_node_is_never_reported() {
        let mut t = Tracker::default();
        let hour = Duration::from_secs(3600);
        assert!(feed(&mut t, Instant::now(), hour, HEALTHY).is_empty());
        assert!(!t.failing());
    }

    #[test]
    fn a_node_that_never_joined_is_reported() {
        let mut t = Tracker::default();
        let outside = Observation {
            engine: true,
            in_swarm: false,
        };
        let reports = feed(&mut t, Instant::now(), Duration::from_secs(300), outside);
        assert_eq!(reports.len(), 1);
        assert!(
            reports[0].starts_with("this node has not been an active swarm member"),
            "{}",
            reports[0]
        );
    }

    #[test]
    fn a_short_hiccup_is_not_reported() {
        let mut t = Tracker::default();
        let start = Instant::now();
        feed(&mut t, start, Duration::from_secs(30), HEALTHY);
        let mut at = start + Duration::from_secs(40);
        for _ in 0..20 {
            // 4 minutes down, 10 s up, again and again: never 5 minutes in a row.
            let four_minutes = Duration::from_secs(240);
            assert!(feed(&mut t, at, four_minutes, ENGINE_HUNG).is_empty());
            at += Duration::from_secs(250);
            assert!(t.observe(HEALTHY, at, AFTER).is_none());
            at += Duration::from_secs(10);
        }
    }
}
