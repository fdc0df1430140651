//! Replica autoscaling, free of I/O: a service's policy (read from its deploy
//! labels) and the decision, a pure function of the policy, the replica
//! counts, CPU samples with their times, the last scale and the clock. The
//! leader's reconciler (`autoscale::controller`) gathers the samples and carries the
//! decision out; `status` shows it. docs/decisions.md, "Replica autoscaling".

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

/// Labels start with this; `min` or `max` present opts the service in.
pub const PREFIX: &str = "swarm-agent.autoscale.";
/// Written by the leader on the service with each scale, so the cooldown and
/// the last decision survive agent restarts and leader changes.
pub const LAST_AT: &str = "swarm-agent.autoscale.last-at";
pub const LAST_DECISION: &str = "swarm-agent.autoscale.last-decision";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub min: u64,
    pub max: u64,
    /// Scale out above this average CPU, in percent of each replica's CPU limit.
    pub cpu_out: f64,
    /// Scale in below this. The gap between the two is the hysteresis.
    pub cpu_in: f64,
    /// After any scale, no scale-out for this long (new replicas must warm up
    /// and take their share before the load is judged again).
    #[serde(with = "humantime_serde_secs")]
    pub cooldown_out: Duration,
    /// After any scale, no scale-in for this long.
    #[serde(with = "humantime_serde_secs")]
    pub cooldown_in: Duration,
    pub step: u64,
    /// Samples older than this are forgotten; the average is over this window.
    #[serde(with = "humantime_serde_secs")]
    pub window: Duration,
    /// A replica's samples from its first `warmup` are ignored (start-up,
    /// migrations and cold caches are not load).
    #[serde(with = "humantime_serde_secs")]
    pub warmup: Duration,
    /// How many replicas the ready nodes can place under the service's
    /// `max_replicas_per_node` (None: no cap). The bounds never go past it:
    /// a replica with no room waits forever and blocks every update.
    pub room: Option<u64>,
}

/// Durations as whole seconds in `status --json`.
mod humantime_serde_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

impl Policy {
    /// The seed's rule: out above 70 %, in below 30 %.
    pub fn with_bounds(min: u64, max: u64) -> Policy {
        Policy {
            min,
            max,
            cpu_out: 70.0,
            cpu_in: 30.0,
            cooldown_out: Duration::from_secs(60),
            cooldown_in: Duration::from_secs(300),
            step: 1,
            window: Duration::from_secs(60),
            warmup: Duration::from_secs(60),
            room: None,
        }
    }

    /// The same policy within the nodes' room (see `room`).
    pub fn within_room(mut self, room: Option<u64>) -> Policy {
        self.room = room.filter(|r| *r >= 1);
        self
    }

    /// The most replicas to ask for: the maximum, or the nodes' room if less.
    pub fn ceiling(&self) -> u64 {
        self.room.map_or(self.max, |room| room.min(self.max))
    }

    /// The fewest replicas to keep: the minimum, or the nodes' room if less.
    pub fn floor(&self) -> u64 {
        self.room.map_or(self.min, |room| room.min(self.min))
    }

    /// None: the service did not opt in. Err: it did, with labels that make
    /// no sense (the error names the label and what it should be).
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Result<Policy, LabelError>> {
        let get = |key: &str| labels.get(&format!("{PREFIX}{key}")).map(|v| v.trim());
        if get("min").is_none() && get("max").is_none() {
            return None;
        }
        Some(Self::parse(&get))
    }

    fn parse<'a>(get: &impl Fn(&'static str) -> Option<&'a str>) -> Result<Policy, LabelError> {
        let required = |key: &'static str| get(key).ok_or(LabelError::Missing(key));
        let min = number(required("min")?, "min")?;
        let max = number(required("max")?, "max")?;
        let mut p = Policy::with_bounds(min, max);
        if let Some(v) = get("cpu-out") {
            p.cpu_out = percent(v, "cpu-out")?;
        }
        if let Some(v) = get("cpu-in") {
            p.cpu_in = percent(v, "cpu-in")?;
        }
        for (key, field) in [
            ("cooldown-out", &mut p.cooldown_out),
            ("cooldown-in", &mut p.cooldown_in),
            ("window", &mut p.window),
            ("warmup", &mut p.warmup),
        ] {
            if let Some(v) = get(key) {
                *field = humantime::parse_duration(v).map_err(|e| LabelError::NotADuration {
                    key,
                    value: v.into(),
                    reason: e.to_string(),
                })?;
            }
        }
        if let Some(v) = get("step") {
            p.step = number(v, "step")?;
        }
        p.check()
    }

    fn check(self) -> Result<Policy, LabelError> {
        if self.min < 1 || self.min > self.max {
            return Err(LabelError::Bounds {
                min: self.min,
                max: self.max,
            });
        }
        if self.cpu_in >= self.cpu_out {
            return Err(LabelError::NoGap {
                cpu_in: self.cpu_in,
                cpu_out: self.cpu_out,
            });
        }
        if self.step < 1 {
            return Err(LabelError::ZeroStep);
        }
        if self.window.is_zero() {
            return Err(LabelError::ZeroWindow);
        }
        Ok(self)
    }
}

/// Why a service's autoscaling labels cannot be used: each names the label
/// and what it should hold.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LabelError {
    #[error("label {PREFIX}{0} is missing (a whole number)")]
    Missing(&'static str),
    #[error("label {PREFIX}{key}={value}: not a whole number")]
    NotANumber { key: &'static str, value: String },
    #[error("label {PREFIX}{key}={value}: a percentage of the CPU limit, above 0 and at most 100")]
    NotAPercentage { key: &'static str, value: String },
    #[error("label {PREFIX}{key}={value}: {reason} (e.g. 90s, 5m)")]
    NotADuration {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("{PREFIX}min={min} and max={max}: need 1 <= min <= max")]
    Bounds { min: u64, max: u64 },
    #[error(
        "{PREFIX}cpu-in={cpu_in} must be below cpu-out={cpu_out}: the gap is what keeps it from flapping"
    )]
    NoGap { cpu_in: f64, cpu_out: f64 },
    #[error("{PREFIX}step must be at least 1")]
    ZeroStep,
    #[error("{PREFIX}window must be longer than 0s")]
    ZeroWindow,
}

fn number(v: &str, key: &'static str) -> Result<u64, LabelError> {
    v.parse().map_err(|_| LabelError::NotANumber {
        key,
        value: v.into(),
    })
}

fn percent(v: &str, key: &'static str) -> Result<f64, LabelError> {
    match v.trim_end_matches('%').parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => Err(LabelError::NotAPercentage {
            key,
            value: v.into(),
        }),
    }
}

/// One replica's CPU use, measured at `at`, in percent of its CPU limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: OffsetDateTime,
    /// The task (replica) it belongs to.
    pub replica: String,
    /// When that replica's container started.
    pub started: OffsetDateTime,
    pub percent: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Out,
    In,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }
}

/// Why nothing is done this time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "hold")]
pub enum Hold {
    /// Between the two thresholds.
    InBand,
    /// Desired replicas 0: an operator stopped the service (a restore does).
    Stopped,
    /// No replica past its warm-up has a sample in the window.
    NoSamples,
    /// Samples span less than half the window (the agent just started).
    WindowFilling,
    Cooldown {
        remaining_secs: u64,
    },
    AtMax,
    AtMin,
    /// Replicas asked for are not running yet: more would add no capacity.
    Pending {
        running: u64,
    },
    /// Not every replica was measured: removing capacity on partial
    /// information is not done.
    PartialSamples {
        measured: usize,
    },
    /// One step in would push the rest above the scale-out threshold.
    WouldFlap {
        projected: f64,
    },
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::InBand => write!(f, "CPU between the thresholds"),
            Hold::Stopped => write!(f, "scaled to 0 by an operator: left alone"),
            Hold::NoSamples => write!(f, "no replica past its warm-up was measured"),
            Hold::WindowFilling => write!(f, "samples span less than half the window"),
            Hold::Cooldown { remaining_secs } => {
                write!(f, "cooling down ({remaining_secs} s left)")
            }
            Hold::AtMax => write!(f, "at the maximum"),
            Hold::AtMin => write!(f, "at the minimum"),
            Hold::Pending { running } => {
                write!(
                    f,
                    "only {running} replicas run: waiting for the rest to start"
                )
            }
            Hold::PartialSamples { measured } => write!(
                f,
                "only {measured} replicas measured: no scale-in on partial information"
            ),
            Hold::WouldFlap { projected } => write!(
                f,
                "one step in would put the rest at {projected:.0} %, above the scale-out threshold"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Decision {
    Hold(Hold),
    Scale {
        direction: Direction,
        to: u64,
        reason: String,
    },
}

/// A decision with the inputs it was made from, for logs, metrics and status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Window average over the measured replicas, percent of the CPU limit.
    pub cpu: Option<f64>,
    /// Replicas with at least one sample past their warm-up in the window.
    pub measured: usize,
    pub desired: u64,
    pub running: u64,
    pub decision: Decision,
}

/// What `decide` is given: the service's state and what was measured.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub desired: u64,
    pub running: u64,
    pub samples: &'a [Sample],
    pub last_scale: Option<OffsetDateTime>,
    pub now: OffsetDateTime,
}

/// The decision. Order matters: bounds first (never below min or above max,
/// whatever the CPU), then the measurement, then the thresholds, each with
/// its own guard (cooldown, pending replicas, partial samples, flapping).
pub fn decide(p: &Policy, i: Inputs<'_>) -> Evaluation {
    let (cpu, measured, oldest) = window_average(p, i.samples, i.now);
    let eval = |decision| Evaluation {
        cpu,
        measured,
        desired: i.desired,
        running: i.running,
        decision,
    };
    if i.desired == 0 {
        return eval(Decision::Hold(Hold::Stopped));
    }
    if let Some(d) = bounds(p, i.desired) {
        return eval(d);
    }
    let Some(cpu) = cpu else {
        return eval(Decision::Hold(Hold::NoSamples));
    };
    let span = oldest.map_or(Duration::ZERO, |t| since(t, i.now));
    if span < p.window / 2 {
        return eval(Decision::Hold(Hold::WindowFilling));
    }
    let decision = if cpu > p.cpu_out {
        scale_out(p, &i, cpu, measured)
    } else if cpu < p.cpu_in {
        scale_in(p, &i, cpu, measured)
    } else {
        Decision::Hold(Hold::InBand)
    };
    eval(decision)
}

fn bounds(p: &Policy, desired: u64) -> Option<Decision> {
    if desired < p.floor() {
        return Some(Decision::Scale {
            direction: Direction::Out,
            to: p.floor(),
            reason: format!("below the minimum of {}", p.floor()),
        });
    }
    if desired > p.ceiling() {
        let reason = if p.ceiling() < p.max {
            format!(
                "above the {} replicas the ready nodes have room for (max_replicas_per_node)",
                p.ceiling()
            )
        } else {
            format!("above the maximum of {}", p.max)
        };
        return Some(Decision::Scale {
            direction: Direction::In,
            to: p.ceiling(),
            reason,
        });
    }
    None
}

fn scale_out(p: &Policy, i: &Inputs<'_>, cpu: f64, measured: usize) -> Decision {
    if i.desired >= p.ceiling() {
        return Decision::Hold(Hold::AtMax);
    }
    if i.running < i.desired {
        return Decision::Hold(Hold::Pending { running: i.running });
    }
    if let Some(hold) = cooling(i.last_scale, p.cooldown_out, i.now) {
        return Decision::Hold(hold);
    }
    Decision::Scale {
        direction: Direction::Out,
        to: (i.desired + p.step).min(p.ceiling()),
        reason: format!(
            "CPU {cpu:.0} % > {:.0} % over {measured} replicas",
            p.cpu_out
        ),
    }
}

fn scale_in(p: &Policy, i: &Inputs<'_>, cpu: f64, measured: usize) -> Decision {
    if i.desired <= p.floor() {
        return Decision::Hold(Hold::AtMin);
    }
    if (measured as u64) < i.desired {
        return Decision::Hold(Hold::PartialSamples { measured });
    }
    if let Some(hold) = cooling(i.last_scale, p.cooldown_in, i.now) {
        return Decision::Hold(hold);
    }
    let to = i.desired.saturating_sub(p.step).max(p.floor());
    // The same work on fewer replicas: if that crosses the upper threshold,
    // the next pass would scale out again.
    let projected = cpu * i.desired as f64 / to as f64;
    if projected > p.cpu_out {
        return Decision::Hold(Hold::WouldFlap { projected });
    }
    Decision::Scale {
        direction: Direction::In,
        to,
        reason: format!(
            "CPU {cpu:.0} % < {:.0} % over {measured} replicas (about {projected:.0} % after)",
            p.cpu_in
        ),
    }
}

fn cooling(last: Option<OffsetDateTime>, cooldown: Duration, now: OffsetDateTime) -> Option<Hold> {
    let elapsed = since(last?, now);
    (elapsed < cooldown).then(|| Hold::Cooldown {
        remaining_secs: (cooldown - elapsed).as_secs_f64().ceil() as u64,
    })
}

fn since(t: OffsetDateTime, now: OffsetDateTime) -> Duration {
    (now - t).try_into().unwrap_or(Duration::ZERO)
}

/// Each replica's mean over its samples in the window (past its warm-up),
/// then the mean over replicas, so a replica sampled more often does not
/// weigh more. Also: how many replicas, and the oldest sample used.
fn window_average(
    p: &Policy,
    samples: &[Sample],
    now: OffsetDateTime,
) -> (Option<f64>, usize, Option<OffsetDateTime>) {
    let mut per_replica: HashMap<&str, (f64, u32)> = HashMap::new();
    let mut oldest: Option<OffsetDateTime> = None;
    for s in samples.iter().filter(|s| usable(p, s, now)) {
        let e = per_replica.entry(s.replica.as_str()).or_default();
        e.0 += s.percent;
        e.1 += 1;
        oldest = Some(oldest.map_or(s.at, |o| o.min(s.at)));
    }
    if per_replica.is_empty() {
        return (None, 0, None);
    }
    let n = per_replica.len();
    let sum: f64 = per_replica.values().map(|(s, c)| s / f64::from(*c)).sum();
    (Some(sum / n as f64), n, oldest)
}

fn usable(p: &Policy, s: &Sample, now: OffsetDateTime) -> bool {
    s.at <= now && since(s.at, now) <= p.window && since(s.started, s.at) >= p.warmup
}

/// Drop samples that have left the window (the caller keeps the rest).
pub fn prune(samples: &mut Vec<Sample>, window: Duration, now: OffsetDateTime) {
    samples.retain(|s| since(s.at, now) <= window);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
    }

    /// Replicas r0..r{n}, started long ago, sampled every 15 s over the last
    /// minute at `cpu(replica, sample)`.
    fn steady(n: usize, now: i64, cpu: impl Fn(usize, usize) -> f64) -> Vec<Sample> {
        let mut out = Vec::new();
        for r in 0..n {
            for k in 0..5 {
                out.push(Sample {
                    at: t(now - 60 + 15 * k as i64),
                    replica: format!("r{r}"),
                    started: t(-3600),
                    percent: cpu(r, k),
                });
            }
        }
        out
    }

    fn policy() -> Policy {
        Policy::with_bounds(3, 8)
    }

    fn run(desired: u64, samples: &[Sample], last_scale: Option<i64>, now: i64) -> Evaluation {
        decide(
            &policy(),
            Inputs {
                desired,
                running: desired,
                samples,
                last_scale: last_scale.map(t),
                now: t(now),
            },
        )
    }

    fn scaled(e: &Evaluation) -> Option<(Direction, u64)> {
        match &e.decision {
            Decision::Scale { direction, to, .. } => Some((*direction, *to)),
            Decision::Hold(_) => None,
        }
    }

    fn held(e: &Evaluation) -> Hold {
        match &e.decision {
            Decision::Hold(h) => h.clone(),
            d => panic!("expected a hold, got {d:?}"),
        }
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            desired: u64,
            samples: Vec<Sample>,
            last_scale: Option<i64>,
            want: Result<(Direction, u64), Hold>,
        }
        let now = 1000;
        let cases = [
            Case {
                name: "steady load in the band",
                desired: 4,
                samples: steady(4, now, |_, _| 50.0),
                last_scale: None,
                want: Err(Hold::InBand),
            },
            Case {
                name: "sustained high load scales out one step",
                desired: 4,
                samples: steady(4, now, |_, _| 85.0),
                last_scale: None,
                want: Ok((Direction::Out, 5)),
            },
            Case {
                name: "a one-sample spike is averaged away",
                desired: 3,
                samples: steady(3, now, |_, k| if k == 4 { 100.0 } else { 40.0 }),
                last_scale: None,
                want: Err(Hold::InBand),
            },
            Case {
                name: "slow ramp: still below the threshold on average",
                desired: 3,
                samples: steady(3, now, |_, k| 50.0 + 6.0 * k as f64),
                last_scale: None,
                want: Err(Hold::InBand),
            },
            Case {
                name: "slow ramp: past the threshold on average",
                desired: 3,
                samples: steady(3, now, |_, k| 66.0 + 6.0 * k as f64),
                last_scale: None,
                want: Ok((Direction::Out, 4)),
            },
            Case {
                name: "flapping input (95/5 alternating) averages into the band",
                desired: 5,
                samples: steady(5, now, |_, k| if k % 2 == 0 { 95.0 } else { 5.0 }),
                last_scale: None,
                want: Err(Hold::InBand),
            },
            Case {
                name: "low load scales in one step",
                desired: 6,
                samples: steady(6, now, |_, _| 10.0),
                last_scale: None,
                want: Ok((Direction::In, 5)),
            },
            Case {
                name: "at the maximum, high load holds",
                desired: 8,
                samples: steady(8, now, |_, _| 95.0),
                last_scale: None,
                want: Err(Hold::AtMax),
            },
            Case {
                name: "at the minimum, low load holds",
                desired: 3,
                samples: steady(3, now, |_, _| 5.0),
                last_scale: None,
                want: Err(Hold::AtMin),
            },
            Case {
                name: "below the minimum is raised whatever the CPU",
                desired: 2,
                samples: vec![],
                last_scale: Some(now - 1),
                want: Ok((Direction::Out, 3)),
            },
            Case {
                name: "above the maximum is lowered whatever the CPU",
                desired: 10,
                samples: steady(10, now, |_, _| 99.0),
                last_scale: Some(now - 1),
                want: Ok((Direction::In, 8)),
            },
            Case {
                name: "scale-out within its cooldown holds",
                desired: 4,
                samples: steady(4, now, |_, _| 90.0),
                last_scale: Some(now - 20),
                want: Err(Hold::Cooldown { remaining_secs: 40 }),
            },
            Case {
                name: "scale-out after its cooldown goes on",
                desired: 4,
                samples: steady(4, now, |_, _| 90.0),
                last_scale: Some(now - 61),
                want: Ok((Direction::Out, 5)),
            },
            Case {
                name: "scale-in waits for its longer cooldown",
                desired: 5,
                samples: steady(5, now, |_, _| 10.0),
                last_scale: Some(now - 120),
                want: Err(Hold::Cooldown {
                    remaining_secs: 180,
                }),
            },
            Case {
                name: "missing samples: no scale-in on part of the replicas",
                desired: 5,
                samples: steady(3, now, |_, _| 10.0),
                last_scale: None,
                want: Err(Hold::PartialSamples { measured: 3 }),
            },
            Case {
                name: "missing samples: the measured replicas still show overload",
                desired: 5,
                samples: steady(2, now, |_, _| 90.0),
                last_scale: None,
                want: Ok((Direction::Out, 6)),
            },
            Case {
                name: "no samples at all holds",
                desired: 4,
                samples: vec![],
                last_scale: None,
                want: Err(Hold::NoSamples),
            },
            Case {
                name: "samples older than the window are not used",
                desired: 4,
                samples: steady(4, now - 120, |_, _| 95.0),
                last_scale: None,
                want: Err(Hold::NoSamples),
            },
            Case {
                name: "an agent that just started waits for half a window",
                desired: 4,
                samples: steady(4, now, |_, _| 95.0)
                    .into_iter()
                    .filter(|s| s.at > t(now - 20))
                    .collect(),
                last_scale: None,
                want: Err(Hold::WindowFilling),
            },
        ];
        for c in cases {
            let e = run(c.desired, &c.samples, c.last_scale, now);
            match c.want {
                Ok(want) => assert_eq!(scaled(&e), Some(want), "{}: {e:?}", c.name),
                Err(hold) => assert_eq!(held(&e), hold, "{}: {e:?}", c.name),
            }
        }
    }

    #[test]
    fn a_replica_just_started_is_ignored() {
        let now = 1000;
        // Three settled replicas at 40 %; a fourth started 20 s ago burns
        // 100 % migrating and warming caches: that is not load.
        let mut samples = steady(3, now, |_, _| 40.0);
        for k in 0..2 {
            samples.push(Sample {
                at: t(now - 15 * k),
                replica: "new".into(),
                started: t(now - 20),
                percent: 100.0,
            });
        }
        let e = run(4, &samples, None, now);
        assert_eq!(e.measured, 3);
        assert_eq!(e.cpu, Some(40.0));
        assert_eq!(held(&e), Hold::InBand);

        // Low load with the young replica unmeasured: not every replica is
        // known, so no scale-in yet.
        let mut quiet = steady(3, now, |_, _| 10.0);
        quiet.extend(samples.into_iter().filter(|s| s.replica == "new"));
        assert_eq!(
            held(&run(4, &quiet, None, now)),
            Hold::PartialSamples { measured: 3 }
        );
    }

    #[test]
    fn a_sample_past_the_warmup_counts() {
        let now = 1000;
        let mut samples = steady(3, now, |_, _| 90.0);
        for r in &mut samples {
            // Started 80 s ago: samples from its first 60 s are ignored.
            r.started = t(now - 80);
        }
        let e = run(3, &samples, None, now);
        assert_eq!(e.measured, 3, "the last two samples of each count");
        assert_eq!(held(&e), Hold::WindowFilling, "but they span only 15 s");
    }

    #[test]
    fn pending_replicas_block_scale_out() {
        let now = 1000;
        let samples = steady(4, now, |_, _| 95.0);
        let e = decide(
            &policy(),
            Inputs {
                desired: 6,
                running: 4,
                samples: &samples,
                last_scale: None,
                now: t(now),
            },
        );
        assert_eq!(held(&e), Hold::Pending { running: 4 });
    }

    #[test]
    fn scale_in_that_would_flap_back_holds() {
        // cpu-in 45 and cpu-out 55 are too close for 3 -> 2: 44 % on three
        // replicas is 66 % on two.
        let mut p = Policy::with_bounds(2, 8);
        p.cpu_in = 45.0;
        p.cpu_out = 55.0;
        let now = 1000;
        let samples = steady(3, now, |_, _| 44.0);
        let e = decide(
            &p,
            Inputs {
                desired: 3,
                running: 3,
                samples: &samples,
                last_scale: None,
                now: t(now),
            },
        );
        assert!(
            matches!(held(&e), Hold::WouldFlap { projected } if (projected - 66.0).abs() < 0.01),
            "{e:?}"
        );
    }

    #[test]
    fn an_operator_who_stopped_the_service_is_not_overruled() {
        assert_eq!(held(&run(0, &[], None, 1000)), Hold::Stopped);
    }

    #[test]
    fn steps_stop_at_the_bounds() {
        let mut p = policy();
        p.step = 3;
        let now = 1000;
        let hot = steady(7, now, |_, _| 95.0);
        let i = Inputs {
            desired: 7,
            running: 7,
            samples: &hot,
            last_scale: None,
            now: t(now),
        };
        assert_eq!(scaled(&decide(&p, i)), Some((Direction::Out, 8)));
        let cold = steady(4, now, |_, _| 5.0);
        let i = Inputs {
            desired: 4,
            samples: &cold,
            running: 4,
            ..i
        };
        assert_eq!(scaled(&decide(&p, i)), Some((Direction::In, 3)));
    }

    #[test]
    fn the_bounds_follow_the_nodes_room() {
        let now = 1000;
        let hot = steady(2, now, |_, _| 95.0);
        let inputs = |desired, samples| Inputs {
            desired,
            running: desired.min(2),
            samples,
            last_scale: None,
            now: t(now),
        };
        // One node with two slots: 3 replicas (the minimum) would leave one
        // waiting forever, so the service comes down to 2 whatever the CPU,
        // and a hot pair holds there instead of asking for a third.
        let alone = policy().within_room(Some(2));
        let lowered = decide(&alone, inputs(3, &hot));
        assert_eq!(scaled(&lowered), Some((Direction::In, 2)));
        let Decision::Scale { reason, .. } = &lowered.decision else {
            unreachable!()
        };
        assert!(reason.contains("room for"), "{reason}");
        assert_eq!(held(&decide(&alone, inputs(2, &hot))), Hold::AtMax);
        // More room than the maximum: the labels' bounds as they are.
        let roomy = policy().within_room(Some(10));
        assert_eq!((roomy.floor(), roomy.ceiling()), (3, 8));
        assert_eq!(
            scaled(&decide(&roomy, inputs(2, &hot))),
            Some((Direction::Out, 3))
        );
        // No ready node (room 0) tells nothing: the bounds stay.
        let none = policy().within_room(Some(0));
        assert_eq!((none.floor(), none.ceiling()), (3, 8));
    }

    /// A minute-by-minute run: load rises, stays, falls. Replicas never
    /// leave the bounds, never reverse within a cooldown, never flap.
    #[test]
    fn a_day_in_the_shop_never_flaps() {
        let p = policy();
        let mut desired = 3u64;
        let mut last: Option<OffsetDateTime> = None;
        let mut samples: Vec<Sample> = Vec::new();
        let mut history = Vec::new();
        // Work in CPU-limit units: 1.0 = one replica fully busy.
        let work = |minute: i64| match minute {
            0..10 => 1.2,
            10..40 => 4.5,
            _ => 1.0,
        };
        for tick in 0..(70 * 4) {
            let now = t(tick * 15);
            let per_replica = 100.0 * work(tick / 4) / desired as f64;
            for r in 0..desired {
                samples.push(Sample {
                    at: now,
                    replica: format!("r{r}"),
                    started: t(-3600),
                    percent: per_replica.min(100.0),
                });
            }
            prune(&mut samples, p.window, now);
            let e = decide(
                &p,
                Inputs {
                    desired,
                    running: desired,
                    samples: &samples,
                    last_scale: last,
                    now,
                },
            );
            if let Some((direction, to)) = scaled(&e) {
                history.push((tick * 15, direction, to));
                desired = to;
                last = Some(now);
                // The old replicas' history describes another replica count.
                samples.clear();
            }
            assert!((p.min..=p.max).contains(&desired));
        }
        let outs = history.iter().filter(|h| h.1 == Direction::Out).count();
        let ins = history.iter().filter(|h| h.1 == Direction::In).count();
        assert_eq!(
            (outs, ins, desired),
            (4, 4, 3),
            "3 -> 7 under 4.5 CPUs of work, back to 3: {history:?}"
        );
        for pair in history.windows(2) {
            assert!(
                pair[0].1 == pair[1].1 || pair[1].0 - pair[0].0 >= 300,
                "a reversal within the scale-in cooldown: {history:?}"
            );
        }
    }

    #[test]
    fn policy_from_labels() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
                .collect()
        };
        assert!(
            Policy::from_labels(&BTreeMap::new()).is_none(),
            "not opted in"
        );
        let p = Policy::from_labels(&labels(&[("min", "3"), ("max", "8")]))
            .unwrap()
            .unwrap();
        assert_eq!(p, Policy::with_bounds(3, 8), "the seed's 70/30 by default");
        let p = Policy::from_labels(&labels(&[
            ("min", "2"),
            ("max", "4"),
            ("cpu-out", "60%"),
            ("cpu-in", "20"),
            ("cooldown-out", "10s"),
            ("cooldown-in", "1m"),
            ("step", "2"),
            ("window", "30s"),
            ("warmup", "5s"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (p.cpu_out, p.cpu_in, p.cooldown_out, p.cooldown_in, p.step),
            (
                60.0,
                20.0,
                Duration::from_secs(10),
                Duration::from_secs(60),
                2
            )
        );
        assert_eq!(
            (p.window, p.warmup),
            (Duration::from_secs(30), Duration::from_secs(5))
        );

        for (bad, says) in [
            (labels(&[("min", "3")]), "max is missing"),
            (labels(&[("min", "5"), ("max", "3")]), "min <= max"),
            (labels(&[("min", "0"), ("max", "3")]), "min <= max"),
            (labels(&[("min", "x"), ("max", "3")]), "not a whole number"),
            (
                labels(&[("min", "1"), ("max", "3"), ("cpu-in", "80")]),
                "must be below cpu-out",
            ),
            (
                labels(&[("min", "1"), ("max", "3"), ("cpu-out", "150")]),
                "at most 100",
            ),
            (
                labels(&[("min", "1"), ("max", "3"), ("cooldown-in", "soon")]),
                "cooldown-in=soon",
            ),
        ] {
            let err = Policy::from_labels(&bad).unwrap().unwrap_err();
            assert!(err.to_string().contains(says), "{bad:?}: {err}");
        }
    }
}
