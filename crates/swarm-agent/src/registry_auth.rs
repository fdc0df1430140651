//! Registry credentials that never go stale.
//!
//! Swarm pulls a service's image, on every node and for every new task, with
//! the registry auth stored in the service's spec when it was deployed
//! (`docker stack deploy --with-registry-auth`). An ECR token lives 12 hours:
//! from then on a new node cannot pull the proxy that runs on every node, a
//! replica placed on it fails, and `docker service update --image` fails
//! (moby/moby#36126). The leader's agent therefore stores a fresh token in
//! every service whose image is on ECR: once when it starts or becomes
//! leader, again when a deploy dropped its mark (a `stack deploy` replaces the
//! labels), and every `max_age` after that. The renewal is a service update
//! with the new auth and one label changed: the task template is untouched,
//! so no task restarts (Swarm ignores the pull options of a running task).
//!
//! The label holds when the auth was renewed, so `status`, the metrics and the
//! `SwarmRegistryAuthStale` alert tell the age of the oldest stored auth from
//! any manager, and a new leader knows where its predecessor left off.
//! Nodes' own pulls (the agent image at boot) use the credential helper.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{error, info, warn};

use crate::actions::ActionLog;
use crate::cli::{RegistryAuthArgs, RegistryAuthSource};
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::model::{ServiceView, parse_time};
use crate::status::Report;

/// On a service: when its stored registry auth was last renewed (RFC 3339).
pub const RENEWED_LABEL: &str = "swarm-agent.registry-auth.renewed";

/// Past this age a stored auth is reported as stale: ECR tokens die at 12 h
/// and the agent renews at half that by default.
pub const STALE_AFTER: Duration = Duration::from_secs(8 * 3600);

/// The registry an image is pulled from: the first path component when it
/// names a host (has a dot or a port, or is `localhost`); None for Docker
/// Hub's short names (`debian:12`, `library/redis`).
pub fn registry_host(image: &str) -> Option<&str> {
    let (first, rest) = image.split_once('/')?;
    let is_host = first.contains('.') || first.contains(':') || first == "localhost";
    (is_host && !rest.is_empty()).then_some(first)
}

/// An ECR registry, from its host: `ACCOUNT.dkr.ecr.REGION.amazonaws.com`
/// (`.com.cn` in China).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EcrRegistry {
    pub host: String,
    pub account: String,
    pub region: String,
}

impl EcrRegistry {
    pub fn parse(host: &str) -> Option<EcrRegistry> {
        let parts: Vec<&str> = host.split('.').collect();
        let is_ecr = parts.len() >= 6
            && parts[1] == "dkr"
            && parts[2] == "ecr"
            && parts[4] == "amazonaws"
            && matches!(&parts[5..], ["com"] | ["com", "cn"]);
        let account = parts[0];
        (is_ecr && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then(|| {
            EcrRegistry {
                host: host.to_string(),
                account: account.to_string(),
                region: parts[3].to_string(),
            }
        })
    }

    /// The ECR registry of a service's image, if it is on one.
    pub fn of(service: &ServiceView) -> Option<EcrRegistry> {
        registry_host(&service.image).and_then(EcrRegistry::parse)
    }
}

/// A registry login, as a token from the registry's API gives it.
#[derive(Clone)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// The registry's address as the token names it (ECR's proxy endpoint).
    pub server: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// When a service's auth was last renewed by an agent (None: never, or a
/// deploy replaced the labels since).
pub fn renewed_at(service: &ServiceView) -> Option<OffsetDateTime> {
    service
        .labels
        .get(RENEWED_LABEL)
        .and_then(|v| parse_time(v))
}

/// The label value that records a renewal at `now`.
pub fn label_value(now: OffsetDateTime) -> String {
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&Rfc3339)
        .expect("a UTC time formats as RFC 3339")
}

/// A service whose spec changed this recently is left alone: its tasks may
/// still be pulling, and a renewal now would restart them (Swarm keeps a
/// task's pull options out of the comparison only once the task has
/// started). A deploy stores its own, fresh auth anyway.
pub const SETTLE: Duration = Duration::from_secs(60);

/// Services on ECR whose stored auth must be renewed now, grouped by
/// registry (one token each): not renewed since this agent became leader
/// (`done_this_term`, by service id), never renewed or renewed before a
/// deploy dropped the label, or renewed `max_age` ago or more; none that
/// may not be touched now ([`leave_alone`]).
pub fn due<'a>(
    services: &'a [ServiceView],
    now: OffsetDateTime,
    max_age: Duration,
    done_this_term: &HashSet<String>,
) -> BTreeMap<EcrRegistry, Vec<&'a ServiceView>> {
    let mut due: BTreeMap<EcrRegistry, Vec<&ServiceView>> = BTreeMap::new();
    for s in services {
        let Some(registry) = EcrRegistry::of(s) else {
            continue;
        };
        let fresh = renewed_at(s).is_some_and(|at| age(at, now) < max_age);
        if !leave_alone(s, now) && (!fresh || !done_this_term.contains(&s.id)) {
            due.entry(registry).or_default().push(s);
        }
    }
    due
}

/// Not now: the service is mid-update (a renewal would become the spec a
/// failed update rolls back to, and would resume a paused one), or its spec
/// changed less than [`SETTLE`] ago by someone else.
pub fn leave_alone(s: &ServiceView, now: OffsetDateTime) -> bool {
    s.updating() || changed_by_others_lately(s, now)
}

/// The service's spec changed less than [`SETTLE`] ago, and not by this
/// duty's own renewal (its label carries the same time as the change).
fn changed_by_others_lately(s: &ServiceView, now: OffsetDateTime) -> bool {
    let Some(changed) = s.updated_at else {
        return false;
    };
    let ours = renewed_at(s).is_some_and(|r| (changed - r).abs() < time::Duration::seconds(5));
    age(changed, now) < SETTLE && !ours
}

/// How long ago `at` was (zero for a time in the future: clocks differ).
pub fn age(at: OffsetDateTime, now: OffsetDateTime) -> Duration {
    (now - at).try_into().unwrap_or(Duration::ZERO)
}

/// The service whose stored auth is the oldest, with its age, among those
/// an agent renews (they carry the label).
pub fn oldest(services: &[ServiceView], now: OffsetDateTime) -> Option<(&ServiceView, Duration)> {
    services
        .iter()
        .filter_map(|s| renewed_at(s).map(|at| (s, age(at, now))))
        .max_by_key(|(_, age)| *age)
}

/// Tokens from ECR's `GetAuthorizationToken`, with the node's credentials
/// (the instance role: `ecr:GetAuthorizationToken` on `*`).
#[cfg(feature = "aws")]
pub struct Ecr {
    endpoint: Option<String>,
}

#[cfg(feature = "aws")]
impl Ecr {
    /// `endpoint` replaces ECR's API address (a test's stand-in).
    pub fn new(endpoint: Option<String>) -> Ecr {
        Ecr { endpoint }
    }

    /// A token for `registry`, valid for 12 hours on AWS.
    pub async fn token(&self, registry: &EcrRegistry) -> crate::Result<Credential> {
        let failed = |reason: String| crate::Error::Refused {
            action: "ecr get-authorization-token".into(),
            reason,
        };
        let sdk = crate::aws::sdk_config(Some(&registry.region)).await;
        let mut config = aws_sdk_ecr::config::Builder::from(&sdk);
        if let Some(url) = &self.endpoint {
            config = config.endpoint_url(url);
        }
        let client = aws_sdk_ecr::Client::from_conf(config.build());
        let answer = client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| failed(aws_sdk_ecr::error::DisplayErrorContext(e).to_string()))?;
        let data = answer
            .authorization_data()
            .first()
            .ok_or_else(|| failed("the answer holds no authorization data".into()))?;
        let token = data
            .authorization_token()
            .ok_or_else(|| failed("the answer holds no token".into()))?;
        let server = data
            .proxy_endpoint()
            .map(|p| p.trim_start_matches("https://").trim_end_matches('/'))
            .unwrap_or(&registry.host)
            .to_string();
        let (username, password) = decode_token(token)
            .ok_or_else(|| failed("the token is not base64 of \"user:password\"".into()))?;
        Ok(Credential {
            username,
            password,
            server,
        })
    }
}

/// The leader's duty: renews what [`due`] names, one token per registry.
pub struct Renewer {
    engine: Engine,
    source: Option<Arc<Source>>,
    max_age: Duration,
    /// Services renewed since this agent became leader (by id).
    done_this_term: HashSet<String>,
    /// Dry run: services already said to be due (said once per term).
    said: HashSet<String>,
    /// After a failed token request, wait before asking again.
    retry_at: Option<Instant>,
    metrics: Metrics,
    actions: ActionLog,
    dry_run: bool,
}

/// Where tokens come from.
enum Source {
    #[cfg(feature = "aws")]
    Ecr(Ecr),
}

/// After a failed token request, ask again this much later.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

impl Renewer {
    pub fn new(
        engine: Engine,
        args: &RegistryAuthArgs,
        metrics: Metrics,
        actions: ActionLog,
        dry_run: bool,
    ) -> crate::Result<Renewer> {
        let source = match args.source {
            RegistryAuthSource::Off => None,
            #[cfg(feature = "aws")]
            RegistryAuthSource::Ecr => {
                Some(Arc::new(Source::Ecr(Ecr::new(args.ecr_endpoint.clone()))))
            }
            #[cfg(not(feature = "aws"))]
            RegistryAuthSource::Ecr => {
                return Err(crate::Error::Config(
                    "--registry-auth ecr needs the `aws` feature (or set --registry-auth off)"
                        .into(),
                ));
            }
        };
        Ok(Renewer {
            engine,
            source,
            max_age: args.max_age,
            done_this_term: HashSet::new(),
            said: HashSet::new(),
            retry_at: None,
            metrics,
            actions,
            dry_run,
        })
    }

    /// Renews nothing (tests, and `--registry-auth off`).
    pub fn off(engine: Engine, metrics: Metrics) -> Renewer {
        Renewer {
            engine,
            source: None,
            max_age: Duration::MAX,
            done_this_term: HashSet::new(),
            said: HashSet::new(),
            retry_at: None,
            metrics,
            actions: ActionLog::default(),
            dry_run: true,
        }
    }

    /// No longer the leader: whoever leads next renews everything once, and
    /// so does this agent if it leads again.
    pub fn step_down(&mut self) {
        self.done_this_term.clear();
        self.said.clear();
    }

    /// Renews the stored auth of every service that is due; returns the
    /// names of those renewed.
    pub async fn pass(&mut self, report: &Report) -> Vec<String> {
        let Some(source) = self.source.clone() else {
            return Vec::new();
        };
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return Vec::new();
        }
        let now = OffsetDateTime::now_utc();
        let due = due(&report.services, now, self.max_age, &self.done_this_term);
        let mut renewed = Vec::new();
        for (registry, services) in due {
            if self.dry_run {
                let names: Vec<&str> = services
                    .iter()
                    .filter(|s| self.said.insert(s.id.clone()))
                    .map(|s| s.name.as_str())
                    .collect();
                if !names.is_empty() {
                    info!(registry = %registry.host, services = ?names, "dry-run: would renew the stored registry auth");
                }
                continue;
            }
            let credential = match source.token(&registry).await {
                Ok(credential) => credential,
                Err(e) => {
                    self.token_failed(&registry, &e);
                    continue;
                }
            };
            for service in services {
                if self.renew(service, &credential, now).await {
                    renewed.push(service.name.clone());
                }
            }
        }
        renewed
    }

    fn token_failed(&mut self, registry: &EcrRegistry, e: &crate::Error) {
        self.retry_at = Some(Instant::now() + RETRY_AFTER_FAILURE);
        self.metrics.failure("registry-auth");
        self.actions
            .record("registry auth failed", &registry.host, e.to_string());
        error!(registry = %registry.host, error = %e, "no registry token: the stored auth was not renewed (retrying in a minute)");
    }

    async fn renew(
        &mut self,
        service: &ServiceView,
        credential: &Credential,
        now: OffsetDateTime,
    ) -> bool {
        let result = match self.engine.service(&service.id).await {
            // Changed since the pass's snapshot (this pass's rebalance or
            // scale, a deploy): not now, the next pass looks again.
            Ok(raw) if leave_alone(&ServiceView::from(&raw), now) => return false,
            Ok(raw) => {
                self.engine
                    .renew_registry_auth(&raw, credential, (RENEWED_LABEL, label_value(now)))
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                self.done_this_term.insert(service.id.clone());
                self.metrics.action("registry-auth");
                self.actions.record(
                    "registry auth renewed",
                    &service.name,
                    format!("a fresh token for {} stored", credential.server),
                );
                info!(service = %service.name, registry = %credential.server, "stored registry auth renewed");
                true
            }
            Err(e) => {
                // Another update in between (version conflict), or worse: a
                // minute from now, not every pass.
                self.retry_at = Some(Instant::now() + RETRY_AFTER_FAILURE);
                self.metrics.failure("registry-auth");
                self.actions
                    .record("registry auth failed", &service.name, e.to_string());
                warn!(service = %service.name, error = %e, "renewing the stored registry auth failed (retrying in a minute)");
                false
            }
        }
    }
}

impl Source {
    // Without the `aws` feature there is no source, so nothing reads `registry`.
    #[cfg_attr(not(feature = "aws"), allow(unused_variables))]
    async fn token(&self, registry: &EcrRegistry) -> crate::Result<Credential> {
        match *self {
            #[cfg(feature = "aws")]
            Source::Ecr(ref ecr) => ecr.token(registry).await,
        }
    }
}

/// ECR's token: base64 of `AWS:password`.
pub fn decode_token(token: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::replicated;

    const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

    fn on(image: &str, id: &str, renewed: Option<OffsetDateTime>) -> ServiceView {
        let mut s = replicated(id, id, 1, 1);
        s.image = image.to_string();
        if let Some(at) = renewed {
            s.labels.insert(RENEWED_LABEL.into(), label_value(at));
        }
        s
    }

    #[test]
    fn the_registry_is_the_first_component_when_it_names_a_host() {
        assert_eq!(
            registry_host(&format!("{ECR}/bookstore/proxy:1")),
            Some(ECR)
        );
        assert_eq!(registry_host("10.0.0.1:5000/shop:1"), Some("10.0.0.1:5000"));
        assert_eq!(registry_host("localhost/shop"), Some("localhost"));
        assert_eq!(registry_host("bookstore/storefront:1"), None);
        assert_eq!(registry_host("redis:7"), None);
    }

    #[test]
    fn ecr_hosts_give_their_account_and_region() {
        let r = EcrRegistry::parse(ECR).unwrap();
        assert_eq!(
            (r.account.as_str(), r.region.as_str()),
            ("123456789012", "eu-west-1")
        );
        assert!(EcrRegistry::parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").is_some());
        for other in [
            "registry.example.com",
            "12345.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example",
            "123456789012.dkr.ecr.eu-west-1.example.com",
        ] {
            assert_eq!(EcrRegistry::parse(other), None, "{other}");
        }
    }

    #[test]
    fn renews_once_per_term_after_a_deploy_and_at_max_age() {
        let now = OffsetDateTime::now_utc();
        let max_age = Duration::from_secs(6 * 3600);
        let image = format!("{ECR}/bookstore/proxy:1@sha256:abc");
        let services = vec![
            on(&image, "fresh", Some(now - Duration::from_secs(60))),
            on(&image, "old", Some(now - max_age)),
            on(&image, "deployed", None),
            on("bookstore/storefront:1", "hub", None),
            on("10.0.0.1:5000/shop:1", "other-registry", None),
        ];
        let ids = |due: &BTreeMap<EcrRegistry, Vec<&ServiceView>>| -> Vec<String> {
            due.values().flatten().map(|s| s.id.clone()).collect()
        };
        // A new leader renews every ECR service once, whatever the labels say.
        let first = due(&services, now, max_age, &HashSet::new());
        assert_eq!(ids(&first), ["fresh", "old", "deployed"]);
        assert_eq!(first.keys().next().unwrap().host, ECR);
        // Then only what a deploy stripped or what has aged.
        let done: HashSet<String> = ["fresh", "old", "deployed"].map(String::from).into();
        assert_eq!(
            ids(&due(&services, now, max_age, &done)),
            ["old", "deployed"]
        );
    }

    #[test]
    fn a_service_mid_update_is_left_alone() {
        let now = OffsetDateTime::now_utc();
        let mut updating = on(&format!("{ECR}/bookstore/storefront:2"), "updating", None);
        updating.update_state = "updating".into();
        let mut paused = on(&format!("{ECR}/bookstore/mysql:2"), "paused", None);
        paused.update_state = "paused".into();
        let mut done = on(&format!("{ECR}/bookstore/proxy:2"), "done", None);
        done.update_state = "completed".into();
        let services = [updating, paused, done];
        let due = due(&services, now, Duration::from_secs(3600), &HashSet::new());
        let ids: Vec<&str> = due.values().flatten().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["done"]);
    }

    #[test]
    fn a_service_whose_spec_just_changed_waits_for_its_tasks() {
        let now = OffsetDateTime::now_utc();
        let image = format!("{ECR}/bookstore/proxy:1");
        let mut just_deployed = on(&image, "just-deployed", None);
        just_deployed.updated_at = Some(now - Duration::from_secs(5));
        let mut deployed_a_while_ago = on(&image, "a-while-ago", None);
        deployed_a_while_ago.updated_at = Some(now - SETTLE);
        // Renewed by this duty a moment ago: that change does not hold the next one.
        let mut renewed_just_now = on(&image, "ours", Some(now - Duration::from_secs(10)));
        renewed_just_now.updated_at = Some(now - Duration::from_secs(9));
        let services = [just_deployed, deployed_a_while_ago, renewed_just_now];
        let due = due(&services, now, Duration::from_secs(3600), &HashSet::new());
        let ids: Vec<&str> = due.values().flatten().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a-while-ago", "ours"]);
    }

    #[test]
    fn the_oldest_stored_auth_is_reported() {
        let now = OffsetDateTime::now_utc();
        let image = format!("{ECR}/bookstore/proxy:1");
        let services = vec![
            on(&image, "a", Some(now - Duration::from_secs(60))),
            on(&image, "b", Some(now - Duration::from_secs(7200))),
            on(&image, "c", None),
        ];
        let (s, age) = oldest(&services, now).unwrap();
        assert_eq!(s.id, "b");
        assert_eq!(age.as_secs() / 60, 120);
        assert!(oldest(&services[2..], now).is_none());
    }

    #[test]
    fn tokens_decode_to_user_and_password() {
        assert_eq!(
            decode_token("QVdTOnNlY3JldDpwYXJ0"),
            Some(("AWS".into(), "secret:part".into()))
        );
        assert_eq!(decode_token("not base64!"), None);
    }
}
