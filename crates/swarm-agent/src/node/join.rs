//! `swarm-agent join`: what `docker swarm join --token … mgr:2377` in
//! user-data did, made safe to repeat and to run before the manager is up.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bollard::models::{LocalNodeState, SwarmJoinRequest};
use tracing::{info, warn};

use crate::agent_api::client::{self, AgentClient};
use crate::backoff::{Backoff, Deadline};
use crate::cli::{JoinArgs, JoinRole};
use crate::engine::{Engine, LocalSwarm};
use crate::error::{Error, Result};
use crate::node::drain;
use crate::node::imds::{self, Imds};
use crate::store::token_store::{Key, TokenStore};

pub const SWARM_PORT: u16 = 2377;

/// What to do given the node's current membership.
#[derive(Debug, PartialEq, Eq)]
pub enum Membership {
    NotMember,
    /// Already in the swarm we were asked to join: nothing to do.
    SameSwarm,
    OtherSwarm(String),
    /// A previous join is still retrying inside the engine.
    Pending,
    Broken(String),
}

/// Decide from what the engine reports. Workers do not see the cluster id,
/// so "same swarm" means: they talk to one of our managers.
pub fn membership(
    local: &LocalSwarm,
    managers: &[SocketAddr],
    cluster_id: Option<&str>,
) -> Membership {
    match local.state {
        LocalNodeState::INACTIVE | LocalNodeState::EMPTY => Membership::NotMember,
        LocalNodeState::PENDING => Membership::Pending,
        LocalNodeState::LOCKED => {
            Membership::Broken("the swarm is locked: run `docker swarm unlock`".into())
        }
        LocalNodeState::ERROR => Membership::Broken(
            local
                .error
                .clone()
                .unwrap_or_else(|| "engine reports a swarm error".into()),
        ),
        LocalNodeState::ACTIVE => {
            if let (Some(mine), Some(wanted)) = (local.cluster_id.as_deref(), cluster_id) {
                return if mine == wanted {
                    Membership::SameSwarm
                } else {
                    Membership::OtherSwarm(format!("cluster {mine}, expected {wanted}"))
                };
            }
            let ours = |addr: &String| managers.iter().any(|m| m.to_string() == *addr);
            if local.remote_managers.is_empty() || local.remote_managers.iter().any(ours) {
                Membership::SameSwarm
            } else {
                Membership::OtherSwarm(format!(
                    "its managers are {}",
                    local.remote_managers.join(",")
                ))
            }
        }
    }
}

/// `host`, `host:port`, `ip`, `ip:port` -> every address it resolves to.
pub async fn resolve(managers: &[String]) -> (Vec<SocketAddr>, Vec<String>) {
    let mut addrs = Vec::new();
    let mut errors = Vec::new();
    for m in managers.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
        let target = match m.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, SWARM_PORT).to_string(),
            Err(_) if m.parse::<SocketAddr>().is_ok() || has_port(m) => m.to_string(),
            Err(_) => format!("{m}:{SWARM_PORT}"),
        };
        match tokio::net::lookup_host(&target).await {
            Ok(found) => {
                for a in found {
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
            }
            Err(e) => errors.push(format!("{m}: {e}")),
        }
    }
    (addrs, errors)
}

fn has_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(h, p)| !h.contains(':') && p.parse::<u16>().is_ok())
}

/// The local address the kernel would use towards `manager` (no packet is sent).
pub fn detect_advertise_addr(manager: SocketAddr) -> Option<IpAddr> {
    let sock = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    sock.connect(manager).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

async fn port_open(addr: SocketAddr, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// Engine join errors that no retry can fix.
pub fn is_invalid_token(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("join token")
        && (m.contains("invalid") || m.contains("valid join token is necessary"))
}

fn engine_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

pub async fn run(engine: &Engine, args: &JoinArgs, dry_run: bool) -> Result<()> {
    // One deadline for joining and labelling together, so the unit's start
    // timeout (swarm/systemd/swarm-agent.service) can be set above it.
    let deadline = Deadline::after(args.deadline);
    let store = TokenStore::open(&args.cluster.store).await?;
    if args.role == JoinRole::Manager {
        wait_while_founding(&store, &deadline).await?;
    }
    let manager_list = manager_list(&store, &args.cluster.managers.hosts).await?;
    let labels = wanted_labels(args).await?;
    let cluster_id = store.get(Key::ClusterId).await?;
    let (resolved, _) = resolve(&manager_list).await;

    let labelling = Labelling {
        args,
        store: &store,
        managers: &manager_list,
        labels: &labels,
        deadline: &deadline,
        dry_run,
    };

    let local = engine.local_swarm().await?;
    match membership(&local, &resolved, cluster_id.as_deref()) {
        Membership::SameSwarm => {
            info!(node = ?local.node_id, "already a member of this swarm: not joining again");
            return labelling.apply(engine).await;
        }
        Membership::OtherSwarm(detail) => return Err(Error::OtherSwarm { detail }),
        Membership::Broken(detail) => {
            return Err(Error::BadLocalState {
                state: local.state.to_string(),
                detail,
            });
        }
        Membership::Pending if args.role == JoinRole::Manager => {
            warn!("an earlier join is still completing inside the engine; waiting for it");
            if !dry_run && let Some(reason) = wait_for_pending_join(engine, &deadline).await? {
                return Err(Error::Deadline {
                    what: format!("the engine's pending join ({reason})"),
                    waited: deadline.elapsed(),
                });
            }
            return labelling.apply(engine).await;
        }
        Membership::Pending => {
            warn!(
                "an earlier join is still retrying inside the engine; cancelling it to start over"
            );
            if !dry_run {
                engine.leave_swarm(true).await?;
            }
        }
        Membership::NotMember => {}
    }

    let key = match args.role {
        JoinRole::Worker => Key::WorkerToken,
        JoinRole::Manager => Key::ManagerToken,
    };
    let mut token = store.require(key).await?;
    loop {
        match join_any(engine, args, &manager_list, &token, &deadline, dry_run).await {
            Err(rejected @ Error::InvalidToken { .. }) => {
                token = match republished_token(&store, key, &token, args.token_wait).await? {
                    Some(newer) => newer,
                    None => return Err(rejected),
                };
                info!("the store holds a newer join token (rotated): joining with it");
            }
            other => break other?,
        }
    }
    if dry_run {
        return Ok(());
    }
    labelling.apply(engine).await
}

/// Managers that boot together: the one founding the swarm publishes its
/// manager token a few seconds after the others start waiting for it. A
/// store with no founder has nothing coming, so the usual error follows.
async fn wait_while_founding(store: &TokenStore, deadline: &Deadline) -> Result<()> {
    let mut said = false;
    while store.get(Key::ManagerToken).await?.is_none() {
        let Some(founder) = store.get(Key::Founder).await? else {
            return Ok(());
        };
        if !said {
            info!(%founder, "the swarm is being founded elsewhere: waiting for its manager token");
            said = true;
        }
        if !deadline.sleep(Duration::from_secs(3)).await {
            return Err(Error::Deadline {
                what: format!("{founder} to publish the manager token it founds the swarm with"),
                waited: deadline.elapsed(),
            });
        }
    }
    Ok(())
}

async fn manager_list(store: &TokenStore, given: &[String]) -> Result<Vec<String>> {
    let managers = client::managers(given, Some(store)).await?;
    if managers.is_empty() {
        return Err(Error::TokenMissing {
            store: store.describe(),
            key: Key::Managers.name().into(),
        });
    }
    Ok(managers)
}

/// After a rejected token: a rotation may be under way and the leader's
/// agent republishes the new token within one reconcile interval. Read the
/// store until it differs from `rejected` or `wait` runs out.
async fn republished_token(
    store: &TokenStore,
    key: Key,
    rejected: &str,
    wait: Duration,
) -> Result<Option<String>> {
    let deadline = Deadline::after(wait);
    loop {
        if let Some(current) = store.get(key).await?
            && current != rejected
        {
            return Ok(Some(current));
        }
        warn!(waited = ?deadline.elapsed(), "join token rejected; waiting for the managers to publish a new one");
        if !deadline.sleep(Duration::from_secs(3)).await {
            return Ok(None);
        }
    }
}

/// Labels from the command line, plus EC2 placement facts when available.
async fn wanted_labels(args: &JoinArgs) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    if args.imds.enabled() {
        match Imds::new(&args.imds.url)?.labels().await {
            Ok(found) => {
                info!(labels = ?found, "read EC2 instance metadata");
                labels.extend(found);
            }
            Err(e) if args.require_imds => return Err(e),
            Err(e) => {
                warn!(error = %e, "no EC2 instance metadata (not on EC2?): joining without zone labels")
            }
        }
    }
    // Explicit flags win over metadata.
    labels.extend(imds::parse_labels(&args.labels)?);
    Ok(labels)
}

/// Try every manager address, round after round with backoff and jitter,
/// until one accepts us, the token is rejected, or the deadline passes.
async fn join_any(
    engine: &Engine,
    args: &JoinArgs,
    managers: &[String],
    token: &str,
    deadline: &Deadline,
    dry_run: bool,
) -> Result<()> {
    let backoff = Backoff::default();
    let mut last = String::from("no attempt made");
    for round in 0.. {
        let (addrs, dns_errors) = resolve(managers).await;
        if let Some(e) = dns_errors.last() {
            last = format!("DNS: {e}");
        }
        for addr in addrs {
            if !port_open(addr, args.connect_timeout).await {
                last = format!(
                    "{addr}: swarm port not reachable within {:?}",
                    args.connect_timeout
                );
                warn!(manager = %addr, "manager not reachable; trying the next one");
                continue;
            }
            match join_one(engine, args, addr, token, deadline, dry_run).await? {
                None => return Ok(()),
                Some(err) => last = err,
            }
        }
        if !deadline.sleep(backoff.delay(round)).await {
            break;
        }
    }
    Err(Error::ManagersUnreachable {
        tried: managers.join(","),
        waited: deadline.elapsed(),
        last,
    })
}

/// One join attempt. Ok(None): joined. Ok(Some(reason)): retryable failure.
async fn join_one(
    engine: &Engine,
    args: &JoinArgs,
    addr: SocketAddr,
    token: &str,
    deadline: &Deadline,
    dry_run: bool,
) -> Result<Option<String>> {
    let advertise = match &args.advertise_addr {
        Some(a) => a.clone(),
        None => detect_advertise_addr(addr)
            .map(|ip| ip.to_string())
            .ok_or_else(|| {
                Error::Config(format!(
                    "cannot find a local address routing to {addr}; give --advertise-addr"
                ))
            })?,
    };
    if dry_run {
        info!(manager = %addr, %advertise, role = ?args.role, "dry-run: would join the swarm");
        return Ok(None);
    }
    let req = SwarmJoinRequest {
        listen_addr: Some(format!("0.0.0.0:{SWARM_PORT}")),
        advertise_addr: Some(advertise.clone()),
        remote_addrs: Some(vec![addr.to_string()]),
        join_token: Some(token.to_string()),
        ..Default::default()
    };
    match engine.join_swarm(req).await {
        Ok(()) => {
            info!(manager = %addr, %advertise, role = ?args.role, "joined the swarm");
            Ok(None)
        }
        Err(e) => {
            let message = engine_message(&e);
            if is_invalid_token(&message) {
                return Err(Error::InvalidToken {
                    manager: addr.to_string(),
                    message,
                });
            }
            warn!(manager = %addr, error = %message, "join attempt failed");
            // After a timeout the engine keeps trying in the background. A
            // worker's attempt is stopped so the next one (maybe another
            // manager) starts clean; a manager's is waited for, see
            // wait_for_pending_join.
            match engine.local_swarm().await?.state {
                LocalNodeState::PENDING if args.role == JoinRole::Manager => {
                    return wait_for_pending_join(engine, deadline).await;
                }
                LocalNodeState::PENDING => engine.leave_swarm(true).await?,
                // The engine finished joining after all (slow manager).
                LocalNodeState::ACTIVE => return Ok(None),
                _ => {}
            }
            Ok(Some(format!("{addr}: {message}")))
        }
    }
}

/// A manager whose join timed out may already be a member of raft: the
/// managers committed it and it is still catching up. Cancelling it then
/// (`leave --force`) leaves a member that never comes back, and with one
/// manager already lost (the one this node replaces) raft counts 2 live of 4
/// and loses quorum. So the engine's own background join is waited for.
/// Ok(None): joined; Ok(Some(reason)): it ended without joining.
async fn wait_for_pending_join(engine: &Engine, deadline: &Deadline) -> Result<Option<String>> {
    info!(
        "waiting for the engine to finish joining as a manager (never cancelled: raft may count it already)"
    );
    loop {
        let local = engine.local_swarm().await?;
        match local.state {
            LocalNodeState::ACTIVE => {
                info!("joined the swarm as a manager (the engine finished in the background)");
                return Ok(None);
            }
            LocalNodeState::PENDING => {}
            other => {
                return Ok(Some(format!(
                    "the engine's join ended in state {other}: {}",
                    local.error.unwrap_or_default()
                )));
            }
        }
        if !deadline.sleep(Duration::from_secs(2)).await {
            return Ok(Some(
                "still pending at the deadline; left to finish on its own".into(),
            ));
        }
    }
}

/// The node labels a join run wants, and what it needs to get them set.
struct Labelling<'a> {
    args: &'a JoinArgs,
    store: &'a TokenStore,
    managers: &'a [String],
    labels: &'a BTreeMap<String, String>,
    deadline: &'a Deadline,
    dry_run: bool,
}

impl Labelling<'_> {
    /// Managers label themselves; workers ask a manager's agent.
    async fn apply(&self, engine: &Engine) -> Result<()> {
        let Labelling {
            labels, dry_run, ..
        } = *self;
        if labels.is_empty() {
            return Ok(());
        }
        let local = engine.local_swarm().await?;
        let id = local.node_id.clone().ok_or(Error::NotInSwarm)?;
        if local.is_manager {
            drain::apply_labels(engine, &id, labels, dry_run).await?;
            return Ok(());
        }
        if dry_run {
            info!(node = %id, labels = ?labels, "dry-run: would ask a manager's agent to set node labels");
            return Ok(());
        }
        self.ask_a_manager(&id).await
    }

    /// A worker cannot label itself: a manager's agent sets the labels,
    /// retried until the join's deadline.
    async fn ask_a_manager(&self, id: &str) -> Result<()> {
        let Labelling {
            args,
            store,
            managers,
            labels,
            deadline,
            ..
        } = *self;
        let secret = crate::store::secret::resolve_secret(&args.cluster.secret, Some(store))
        .await?
        .ok_or_else(|| {
            Error::Config(format!(
                "labels on a worker need the agent API secret: the store {} has no `api-secret` \
                 (run `swarm-agent init` on a manager to publish it)",
                store.describe()
            ))
        })?;
        let urls = if args.cluster.managers.agent_urls.is_empty() {
            client::urls_from_managers(managers)
        } else {
            args.cluster.managers.agent_urls.clone()
        };
        let client = AgentClient::new(urls, secret)?;
        let body = serde_json::json!({ "labels": labels });
        let backoff = Backoff::default();
        for round in 0.. {
            match client
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/nodes/{id}/labels"),
                    Some(body.clone()),
                )
                .await
            {
                Ok(a) if a.status.is_success() => {
                    info!(node = %id, labels = ?labels, answer = %a.body, "node labels applied by a manager");
                    return Ok(());
                }
                Ok(a) if a.status == reqwest::StatusCode::FORBIDDEN => {
                    return Err(Error::Api {
                        url: "labels".into(),
                        message: format!("the managers refuse these labels: {}", a.body),
                    });
                }
                Ok(a) => {
                    warn!(status = %a.status, answer = %a.body, "manager agent refused labels; retrying")
                }
                Err(e @ Error::ApiUnauthorized { .. }) => return Err(e),
                // Unreachable agents, and agents that answer "not yet" (503:
                // the swarm has not learnt this node's address yet).
                Err(e) => warn!(error = %e, "no manager agent could set the labels yet; retrying"),
            }
            if !deadline.sleep(backoff.delay(round)).await {
                break;
            }
        }
        Err(Error::Deadline {
            what: format!(
                "a manager's agent to set labels on {id} (the node has joined; rerun `swarm-agent join` to retry)"
            ),
            waited: deadline.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(remote: &[&str]) -> LocalSwarm {
        LocalSwarm {
            state: LocalNodeState::ACTIVE,
            remote_managers: remote.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn membership_decisions() {
        let ours: Vec<SocketAddr> = vec![
            "10.0.0.1:2377".parse().unwrap(),
            "10.0.0.2:2377".parse().unwrap(),
        ];
        assert_eq!(
            membership(&LocalSwarm::default(), &ours, None),
            Membership::NotMember
        );
        assert_eq!(
            membership(&active(&["10.0.0.2:2377"]), &ours, None),
            Membership::SameSwarm
        );
        assert!(matches!(
            membership(&active(&["192.168.9.9:2377"]), &ours, None),
            Membership::OtherSwarm(_)
        ));

        let mut mgr = active(&[]);
        mgr.cluster_id = Some("abc".into());
        assert_eq!(membership(&mgr, &ours, Some("abc")), Membership::SameSwarm);
        assert!(matches!(
            membership(&mgr, &ours, Some("xyz")),
            Membership::OtherSwarm(_)
        ));

        let pending = LocalSwarm {
            state: LocalNodeState::PENDING,
            ..Default::default()
        };
        assert_eq!(membership(&pending, &ours, None), Membership::Pending);
        let locked = LocalSwarm {
            state: LocalNodeState::LOCKED,
            ..Default::default()
        };
        assert!(matches!(
            membership(&locked, &ours, None),
            Membership::Broken(_)
        ));
    }

    #[test]
    fn invalid_token_messages_stop_retries() {
        assert!(is_invalid_token(
            "rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster"
        ));
        assert!(is_invalid_token("invalid join token"));
        assert!(!is_invalid_token("Timeout was reached before node joined."));
    }

    #[tokio::test]
    async fn resolves_literal_addresses_with_default_port() {
        let (addrs, errs) = resolve(&[
            "127.0.0.1".into(),
            "127.0.0.2:4000".into(),
            "localhost".into(),
            "::1".into(),
        ])
        .await;
        assert!(errs.is_empty(), "{errs:?}");
        assert!(
            addrs.contains(&"[::1]:2377".parse().unwrap()),
            "IPv6 literal gets the default port"
        );
        assert!(addrs.contains(&"127.0.0.1:2377".parse().unwrap()));
        assert!(addrs.contains(&"127.0.0.2:4000".parse().unwrap()));
    }

    #[test]
    fn advertise_address_is_the_route_source() {
        assert_eq!(
            detect_advertise_addr("127.0.0.1:2377".parse().unwrap()),
            Some("127.0.0.1".parse().unwrap())
        );
    }
}
