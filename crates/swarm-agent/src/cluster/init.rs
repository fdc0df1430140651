//! `swarm-agent init`: the first manager creates the swarm (once) and
//! publishes what joining nodes need: tokens, manager addresses, cluster id.
//! Managers that boot together (an Auto Scaling group of three) all run it:
//! the one that claims the store's `founder` entry first creates the swarm,
//! the others are told it is founded elsewhere (exit code 4) and join it.

use bollard::models::{LocalNodeState, SwarmInitRequest};
use tracing::info;

use crate::cli::InitArgs;
use crate::cluster::publish;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::store::token_store::{Claim, Key, TokenStore};

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
            let me = local.hostname.as_deref().unwrap_or("this host");
            refuse_a_store_in_use(&store, me).await?;
            if dry_run {
                info!(advertise = ?args.advertise_addr, "dry-run: would initialise a new swarm, then publish its tokens");
                return Ok(());
            }
            claim_the_founding(&store, me).await?;
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

/// Of several managers booting at once, only the one whose claim lands
/// first creates the swarm; a second `swarm init` would split the fleet in
/// two swarms, each publishing over the other's tokens.
async fn claim_the_founding(store: &TokenStore, me: &str) -> Result<()> {
    match store.claim(Key::Founder, me).await? {
        Claim::Ours => {
            info!(founder = me, store = %store.describe(), "claimed the founding of the swarm");
            Ok(())
        }
        Claim::Theirs(founder) => Err(Error::FoundedElsewhere {
            store: store.describe(),
            owner: format!("the swarm that {founder} is founding"),
        }),
    }
}

/// A manager booted again (a replaced instance, the founder's own
/// replacement) or a second stack on the same prefix must not start a
/// second swarm over the first one's entries: new nodes would then join
/// whichever swarm published last.
async fn refuse_a_store_in_use(store: &TokenStore, me: &str) -> Result<()> {
    let cluster = store.get(Key::ClusterId).await?.filter(|id| !id.is_empty());
    let founder = store.get(Key::Founder).await?;
    let owner = match (cluster, founder) {
        (Some(id), Some(founder)) => format!("the swarm {id}, founded by {founder}"),
        (Some(id), None) => format!("the swarm {id}"),
        (None, Some(founder)) if founder != me => format!("the swarm that {founder} is founding"),
        _ => return Ok(()),
    };
    Err(Error::FoundedElsewhere {
        store: store.describe(),
        owner,
    })
}
