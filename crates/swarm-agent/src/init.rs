//! `swarm-agent init`: the first manager creates the swarm (once) and
//! publishes what joining nodes need: tokens, manager addresses, cluster id.

use bollard::models::{LocalNodeState, SwarmInitRequest};
use tracing::info;

use crate::cli::InitArgs;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::publish;
use crate::token_store::{Key, TokenStore};

pub async fn run(engine: &Engine, args: &InitArgs, dry_run: bool) -> Result<()> {
    let store = TokenStore::open(&args.store).await?;
    let local = engine.local_swarm().await?;
    match local.state {
        LocalNodeState::ACTIVE if local.is_manager => {
            info!(node = ?local.node_id, "swarm already initialised here: not initialising again");
        }
        LocalNodeState::ACTIVE => {
            return Err(Error::Refused {
                action: "init".into(),
                reason: "this node is a worker of an existing swarm; run init on a manager".into(),
            });
        }
        LocalNodeState::INACTIVE | LocalNodeState::EMPTY => {
            refuse_a_store_in_use(&store).await?;
            if dry_run {
                info!(advertise = ?args.advertise_addr, "dry-run: would initialise a new swarm, then publish its tokens");
                return Ok(());
            }
            let req = SwarmInitRequest {
                listen_addr: Some(args.listen_addr.clone()),
                advertise_addr: args.advertise_addr.clone(),
                ..Default::default()
            };
            let id = engine.init_swarm(req).await?;
            info!(node = %id, "initialised a new swarm: no swarm existed on this engine");
        }
        other => {
            return Err(Error::BadLocalState {
                state: other.to_string(),
                detail: local
                    .error
                    .unwrap_or_else(|| "resolve it by hand before init".into()),
            });
        }
    }
    if args.rotate_worker_token {
        if dry_run {
            info!("dry-run: would rotate the worker join token");
        } else {
            engine.rotate_worker_token().await?;
            info!("rotated the worker join token: the old one no longer admits nodes");
        }
    }
    publish::api_secret(&store, dry_run).await?;
    publish::swarm_facts(engine, &store, dry_run, publish::Report::Everything).await?;
    Ok(())
}

/// A first manager booted again (a replaced instance, a second stack on the
/// same prefix) must not start a second swarm over the first one's entries:
/// new nodes would then join whichever swarm published last.
async fn refuse_a_store_in_use(store: &TokenStore) -> Result<()> {
    match store.get(Key::ClusterId).await? {
        Some(id) if !id.is_empty() => Err(Error::Refused {
            action: "init".into(),
            reason: format!(
                "the token store {} already belongs to the swarm {id}, and this engine is in no \
                 swarm: a new swarm here would take over that swarm's entries. Join it instead \
                 (boot with the managers' user data), give this swarm a prefix of its own, or, if \
                 that swarm is gone for good, delete its entries under the prefix and run init again",
                store.describe()
            ),
        }),
        _ => Ok(()),
    }
}
