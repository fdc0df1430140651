//! Registry credentials that never go stale: the rules (which services
//! are due, how old their stored auth is). The leader's duty that acts on
//! them is `cluster::renew_auth`.
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
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cluster::model::{ServiceView, parse_time};

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

/// ECR's token: base64 of `AWS:password` (read by the ECR source, which
/// only builds with the `aws` feature).
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
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
    use crate::cluster::model::tests::replicated;

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
