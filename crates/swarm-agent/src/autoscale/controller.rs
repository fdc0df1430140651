//! The leader's replica autoscaler: gathers CPU figures (`autoscale::cpu`), keeps
//! each opted-in service's samples for its window, asks `policy::decide`
//! and carries the decision out by changing the replica count. Every
//! decision is logged with its inputs, counted, recorded for the fleet page
//! and written on the service (labels read by `status` and by the next
//! leader, for the cooldown).

use std::collections::HashMap;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{debug, info, warn};

use crate::agent_api::client::{Peers, ReplicaCpu};
use crate::autoscale::cpu::{self, Gathered};
use crate::autoscale::policy::{
    self, Decision, Direction, Evaluation, Inputs, LabelError, Policy, Sample,
};
use crate::cluster::model::{ServiceMode, ServiceView, parse_time};
use crate::cluster::snapshot::Report;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::observe::events::{Events, Kind};
use crate::observe::metrics::Metrics;

/// Why a service that opted in is not autoscaled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unscalable {
    #[error(transparent)]
    Labels(#[from] LabelError),
    #[error("{0} mode services have no replica count")]
    NotReplicated(ServiceMode),
    #[error("no CPU limit (deploy.resources.limits.cpus): CPU is measured against it")]
    NoCpuLimit,
}

/// An opted-in service with a usable policy and CPU limit, or why not.
pub fn policy_of(s: &ServiceView) -> Option<std::result::Result<(Policy, f64), Unscalable>> {
    let policy = policy::Policy::from_labels(&s.labels)?;
    Some(match (policy, s.cpu_limit) {
        (Err(labels), _) => Err(labels.into()),
        (Ok(p), Some(limit)) if s.mode == ServiceMode::Replicated => Ok((p, limit)),
        (Ok(_), Some(_)) => Err(Unscalable::NotReplicated(s.mode)),
        (Ok(_), None) => Err(Unscalable::NoCpuLimit),
    })
}

/// When the service was last scaled by an agent, from its label.
pub fn last_scale(s: &ServiceView) -> Option<OffsetDateTime> {
    s.labels.get(policy::LAST_AT).and_then(|v| parse_time(v))
}

/// A replica's figure as a percentage of the service's CPU limit.
fn sample(r: &ReplicaCpu, limit: f64, at: OffsetDateTime) -> Sample {
    Sample {
        at,
        replica: r.task_id.clone(),
        started: OffsetDateTime::from_unix_timestamp(r.started).unwrap_or(at),
        percent: r.cores / limit * 100.0,
    }
}

pub struct Autoscaler {
    engine: Engine,
    peers: Option<Peers>,
    metrics: Metrics,
    events: Events,
    dry_run: bool,
    /// Samples in each service's window, by service id.
    samples: HashMap<String, Vec<Sample>>,
    /// What was last said about each service (a label problem or a hold),
    /// so the log gets a line when it changes, not every pass.
    said: HashMap<String, String>,
    /// Under --dry-run nothing is written on the service: the would-be
    /// scale time is kept here so the dry-run log shows the cooldowns too.
    dry_run_last: HashMap<String, (OffsetDateTime, u64)>,
}

impl Autoscaler {
    pub fn new(
        engine: Engine,
        peers: Option<Peers>,
        metrics: Metrics,
        events: Events,
        dry_run: bool,
    ) -> Self {
        Autoscaler {
            engine,
            peers,
            metrics,
            events,
            dry_run,
            samples: HashMap::new(),
            said: HashMap::new(),
            dry_run_last: HashMap::new(),
        }
    }

    pub fn record_to(&mut self, events: Events) {
        self.events = events;
    }

    pub fn ask_peers(&mut self, peers: Option<Peers>) {
        self.peers = peers;
    }

    /// One look at every opted-in service; at most one scale each.
    pub async fn pass(&mut self, report: &Report) -> Vec<(String, Evaluation)> {
        let services = self.opted_in(report);
        self.samples
            .retain(|id, _| services.iter().any(|(s, _, _)| &s.id == id));
        if services.is_empty() {
            self.metrics.autoscale_forget();
            return Vec::new();
        }
        let gathered = gather_wanted(&self.engine, report, self.peers.as_ref()).await;
        let now = OffsetDateTime::now_utc();
        let mut out = Vec::new();
        for (service, policy, limit) in services {
            let eval = self.evaluate(service, &policy, limit, &gathered, now);
            self.metrics
                .autoscale_observe(&service.name, &policy, &eval);
            self.carry_out(service, &eval, now).await;
            out.push((service.name.clone(), eval));
        }
        out
    }

    fn opted_in<'r>(&mut self, report: &'r Report) -> Vec<(&'r ServiceView, Policy, f64)> {
        let mut out = Vec::new();
        for s in &report.services {
            match policy_of(s) {
                Some(Ok((p, limit))) => {
                    let room = crate::cluster::rules::room(s, &report.nodes);
                    out.push((s, p.within_room(room), limit));
                }
                Some(Err(problem)) => self.refuse_once(s, problem.to_string()),
                None => {}
            }
        }
        out
    }

    /// Says why `s` is not autoscaled, once per change, not every pass.
    fn refuse_once(&mut self, s: &ServiceView, problem: String) {
        if self.said.get(&s.id) == Some(&problem) {
            return;
        }
        let problem_and_fix = format!("{problem}: not autoscaled until this is fixed");
        self.events
            .done(Kind::AutoscaleRefused, &s.name, problem_and_fix);
        self.said.insert(s.id.clone(), problem);
    }

    fn evaluate(
        &mut self,
        s: &ServiceView,
        policy: &Policy,
        limit: f64,
        gathered: &Gathered,
        now: OffsetDateTime,
    ) -> Evaluation {
        let window = self.samples.entry(s.id.clone()).or_default();
        window.extend(
            gathered
                .replicas
                .iter()
                .filter(|r| r.service_id == s.id)
                .map(|r| sample(r, limit, now)),
        );
        policy::prune(window, policy.window, now);
        let (last, desired, running) = match self.dry_run_last.get(&s.id) {
            // Dry-run: pretend the would-be scale happened (and its replicas run).
            Some((at, to)) if self.dry_run => (Some(*at), *to, *to),
            _ => (last_scale(s), s.desired, s.running),
        };
        policy::decide(
            policy,
            Inputs {
                desired,
                running,
                samples: window,
                last_scale: last,
                now,
            },
        )
    }

    async fn carry_out(&mut self, s: &ServiceView, eval: &Evaluation, now: OffsetDateTime) {
        let cpu = eval.cpu.map(|c| format!("{c:.0} %"));
        let Decision::Scale {
            direction,
            to,
            reason,
        } = &eval.decision
        else {
            let hold = match &eval.decision {
                Decision::Hold(h) => h.to_string(),
                Decision::Scale { .. } => unreachable!(),
            };
            if self.said.get(&s.id) != Some(&hold) {
                info!(service = %s.name, cpu = ?cpu, measured = eval.measured, desired = eval.desired,
                      running = eval.running, reason = %hold, "autoscale: holding");
                self.said.insert(s.id.clone(), hold);
            } else {
                debug!(service = %s.name, cpu = ?cpu, measured = eval.measured, reason = %hold, "autoscale: holding");
            }
            return;
        };
        self.said.remove(&s.id);
        let what = format!("{} → {to}: {reason}", eval.desired);
        self.metrics.autoscale_decision(&s.name, *direction);
        if self.dry_run {
            info!(service = %s.name, direction = direction.as_str(), from = eval.desired, to, cpu = ?cpu,
                  measured = eval.measured, %reason, "dry-run: would scale");
            self.events
                .done(Kind::WouldScale(*direction), &s.name, what);
            self.dry_run_last.insert(s.id.clone(), (now, *to));
            return;
        }
        match self.scale(s, *to, *direction, &what, now).await {
            Ok(()) => {
                info!(service = %s.name, direction = direction.as_str(), from = eval.desired, to, cpu = ?cpu,
                      measured = eval.measured, %reason, "scaled");
                self.events.done(Kind::Scale(*direction), &s.name, what);
                // The samples described another replica count.
                self.samples.remove(&s.id);
            }
            Err(e) => {
                let next = format!("not scaled to {to}: the next pass decides again");
                self.events
                    .failed(Kind::Scale(*direction), &s.name, &e, &next);
            }
        }
    }

    async fn scale(
        &self,
        s: &ServiceView,
        to: u64,
        direction: Direction,
        what: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        let raw = self.engine.services().await?;
        let service = raw
            .iter()
            .find(|r| r.id.as_deref() == Some(s.id.as_str()))
            .ok_or(Error::Refused {
                action: "autoscale".into(),
                reason: format!("service {} vanished", s.name),
            })?;
        let at = now.format(&Rfc3339).unwrap_or_default();
        let decision = format!("{} {what} (at {at})", direction.as_str());
        self.engine
            .scale_service(
                service,
                to,
                &[(policy::LAST_AT, at), (policy::LAST_DECISION, decision)],
            )
            .await
    }
}

/// One autoscaled service as `status` shows it: CPU measured now (about a
/// second, not the leader's window), replicas, bounds, the last scale.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub service: String,
    pub policy: Option<Policy>,
    /// Why it is not autoscaled, when its labels are wrong.
    pub problem: Option<String>,
    pub cpu_now: Option<f64>,
    pub measured: usize,
    pub missing_nodes: Vec<String>,
    pub running: u64,
    pub desired: u64,
    pub last_decision: Option<String>,
}

pub async fn overview(engine: &Engine, report: &Report, peers: Option<&Peers>) -> Vec<Overview> {
    let opted: Vec<_> = report
        .services
        .iter()
        .filter_map(|s| policy_of(s).map(|p| (s, p)))
        .collect();
    if opted.is_empty() {
        return Vec::new();
    }
    let gathered = gather_wanted(engine, report, peers).await;
    opted
        .into_iter()
        .map(|(s, p)| {
            let (policy, problem) = match p {
                Ok((p, _)) => (Some(p), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let (cpu_now, measured) = cpu_now(s, &gathered.replicas);
            Overview {
                service: s.name.clone(),
                policy,
                problem,
                cpu_now,
                measured,
                missing_nodes: gathered.missing_nodes.clone(),
                running: s.running,
                desired: s.desired,
                last_decision: s.labels.get(policy::LAST_DECISION).cloned(),
            }
        })
        .collect()
}

/// Every node's replicas' CPU, less the tasks the swarm is stopping. If the
/// task list cannot be read, every replica counts (as before a scale-in).
async fn gather_wanted(engine: &Engine, report: &Report, peers: Option<&Peers>) -> Gathered {
    let mut gathered = cpu::gather(engine, &report.nodes, &report.node_id, peers).await;
    match engine.tasks_wanted_running().await {
        Ok(wanted) => gathered.keep_wanted(&wanted),
        Err(e) => warn!(error = %e, "could not list tasks: replicas being stopped are counted"),
    }
    gathered
}

/// Mean over the service's replicas, percent of its CPU limit.
fn cpu_now(s: &ServiceView, replicas: &[ReplicaCpu]) -> (Option<f64>, usize) {
    let Some(limit) = s.cpu_limit else {
        return (None, 0);
    };
    let mine: Vec<f64> = replicas
        .iter()
        .filter(|r| r.service_id == s.id)
        .map(|r| r.cores / limit * 100.0)
        .collect();
    if mine.is_empty() {
        return (None, 0);
    }
    (
        Some(mine.iter().sum::<f64>() / mine.len() as f64),
        mine.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn service(labels: &[(&str, &str)], limit: Option<f64>) -> ServiceView {
        ServiceView {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            cpu_limit: limit,
            ..crate::cluster::model::tests::replicated("s1", "shop", 3, 3)
        }
    }

    #[test]
    fn needs_a_cpu_limit_to_measure_against() {
        let labels = [
            ("swarm-agent.autoscale.min", "3"),
            ("swarm-agent.autoscale.max", "8"),
        ];
        assert!(policy_of(&service(&[], Some(1.0))).is_none());
        assert!(policy_of(&service(&labels, Some(0.5))).unwrap().is_ok());
        let err = policy_of(&service(&labels, None)).unwrap().unwrap_err();
        assert_eq!(err, Unscalable::NoCpuLimit);
        assert!(err.to_string().contains("limits.cpus"), "{err}");
    }

    #[test]
    fn cpu_is_a_share_of_the_limit() {
        let s = service(&[], Some(0.5));
        let r = |task: &str, service: &str, cores| ReplicaCpu {
            service_id: service.into(),
            task_id: task.into(),
            started: 0,
            cores,
        };
        let replicas = [r("a", "s1", 0.4), r("b", "s1", 0.2), r("c", "other", 2.0)];
        let (cpu, n) = cpu_now(&s, &replicas);
        assert_eq!(n, 2);
        assert!((cpu.unwrap() - 60.0).abs() < 1e-9);
        let percent = sample(&replicas[0], 0.5, OffsetDateTime::UNIX_EPOCH).percent;
        assert!((percent - 80.0).abs() < 1e-9, "{percent}");
    }

    #[test]
    fn replicas_being_stopped_are_not_measured() {
        let r = |task: &str, cores| ReplicaCpu {
            service_id: "s1".into(),
            task_id: task.into(),
            started: 0,
            cores,
        };
        let mut gathered = Gathered {
            replicas: vec![r("kept", 0.9), r("stopping", 0.0)],
            missing_nodes: vec![],
        };
        gathered.keep_wanted(&["kept".to_string(), "elsewhere".to_string()]);
        let (cpu, n) = cpu_now(&service(&[], Some(1.0)), &gathered.replicas);
        assert_eq!(n, 1);
        assert!((cpu.unwrap() - 90.0).abs() < 1e-9);
    }

    #[test]
    fn the_last_scale_is_read_from_the_service() {
        let s = service(&[(policy::LAST_AT, "2026-12-01T20:30:00Z")], Some(1.0));
        assert_eq!(
            last_scale(&s).unwrap().unix_timestamp(),
            parse_time("2026-12-01T20:30:00Z").unwrap().unix_timestamp()
        );
        assert!(last_scale(&service(&[], Some(1.0))).is_none());
    }
}
