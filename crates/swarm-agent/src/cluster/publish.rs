//! What joining and leaving nodes read from the token store: join tokens,
//! manager addresses, the cluster id and the agents' API secret. `init`
//! writes them once; afterwards the leader's `serve` keeps them current
//! (a replaced manager, a token rotated by hand), so no worker's file ever
//! needs editing.

use tracing::{debug, info};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::store::token_store::{Key, TokenStore};

/// How much to say about values that did not change: `init`, run by a
/// person, says each; the leader's periodic pass stays quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Everything,
    ChangesOnly,
}

/// Publish the swarm's current tokens, reachable managers and cluster id.
/// Returns the keys that changed.
pub async fn swarm_facts(
    engine: &Engine,
    store: &TokenStore,
    dry_run: bool,
    report: Report,
) -> Result<Vec<Key>> {
    let swarm = engine.inspect_swarm().await?;
    ensure_store_is_ours(store, swarm.id.as_deref().unwrap_or_default()).await?;
    let tokens = swarm.join_tokens.unwrap_or_default();
    let entries = [
        (Key::WorkerToken, tokens.worker.unwrap_or_default()),
        (Key::ManagerToken, tokens.manager.unwrap_or_default()),
        (Key::Managers, manager_addresses(engine).await?.join(",")),
        (Key::ClusterId, swarm.id.unwrap_or_default()),
    ];
    let mut changed = Vec::new();
    for (key, value) in entries {
        if !value.is_empty() && put_logged(store, key, &value, dry_run, report).await? {
            changed.push(key);
        }
    }
    Ok(changed)
}

/// Refuses a store another swarm publishes to: two stacks on one prefix
/// would hand one swarm's join tokens and managers to the other's new nodes,
/// and a first manager booted again would start a second swarm over the
/// first one's entries.
pub async fn ensure_store_is_ours(store: &TokenStore, cluster_id: &str) -> Result<()> {
    match store.get(Key::ClusterId).await? {
        Some(theirs) if !theirs.is_empty() && !cluster_id.is_empty() && theirs != cluster_id => {
            Err(Error::Refused {
                action: "publish".into(),
                reason: format!(
                    "the token store {} belongs to another swarm (its cluster id is {theirs}, this \
                     swarm's is {cluster_id}); nothing was written. Give each swarm a prefix of its \
                     own (the CloudFormation template names it after the stack), or, if that swarm \
                     is gone for good, delete its entries under the prefix and run this again",
                    store.describe()
                ),
            })
        }
        _ => Ok(()),
    }
}

/// Managers raft can reach (a dead one would only slow every join down);
/// all of them if none is reported reachable yet.
async fn manager_addresses(engine: &Engine) -> Result<Vec<String>> {
    let nodes = engine.nodes().await?;
    let managers: Vec<(String, bool)> = nodes
        .iter()
        .filter_map(|n| n.manager_status.as_ref())
        .filter_map(|m| {
            let reachable = m.reachability == Some(bollard::models::Reachability::REACHABLE);
            m.addr.clone().map(|a| (a, reachable))
        })
        .collect();
    let reachable: Vec<String> = managers
        .iter()
        .filter(|(_, r)| *r)
        .map(|(a, _)| a.clone())
        .collect();
    let mut list = if reachable.is_empty() {
        managers.into_iter().map(|(a, _)| a).collect()
    } else {
        reachable
    };
    list.sort();
    Ok(list)
}

/// Make the agents' API secret once (32 random bytes, hex) unless the store has one.
pub async fn api_secret(store: &TokenStore, dry_run: bool) -> Result<()> {
    if store.get(Key::ApiSecret).await?.is_some() {
        info!(key = Key::ApiSecret.name(), store = %store.describe(), "already published, unchanged");
        return Ok(());
    }
    let secret: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    put_logged(store, Key::ApiSecret, &secret, dry_run, Report::Everything).await?;
    Ok(())
}

async fn put_logged(
    store: &TokenStore,
    key: Key,
    value: &str,
    dry_run: bool,
    report: Report,
) -> Result<bool> {
    let wrote = store.put(key, value, dry_run).await?;
    let shown = if key.is_secret() { "<secret>" } else { value };
    match (wrote, dry_run) {
        (false, _) if report == Report::Everything => {
            info!(key = key.name(), store = %store.describe(), "already published, unchanged")
        }
        (false, _) => {
            debug!(key = key.name(), store = %store.describe(), "already published, unchanged")
        }
        (true, true) => {
            info!(key = key.name(), value = shown, store = %store.describe(), "dry-run: would publish")
        }
        (true, false) => {
            info!(key = key.name(), value = shown, store = %store.describe(), "published: joining and leaving nodes read it from here")
        }
    }
    Ok(wrote)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::token_store::FileStore;

    #[tokio::test]
    async fn a_store_of_another_swarm_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::File(FileStore::new(dir.path()));
        ensure_store_is_ours(&store, "swarm-a")
            .await
            .expect("an empty store is free");
        store.put(Key::ClusterId, "swarm-a", false).await.unwrap();
        ensure_store_is_ours(&store, "swarm-a")
            .await
            .expect("its own store");
        let refused = ensure_store_is_ours(&store, "swarm-b")
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("belongs to another swarm"), "{refused}");
        assert!(
            refused.contains("swarm-a") && refused.contains("swarm-b"),
            "{refused}"
        );
        assert_eq!(
            store.get(Key::ClusterId).await.unwrap().as_deref(),
            Some("swarm-a")
        );
    }
}
