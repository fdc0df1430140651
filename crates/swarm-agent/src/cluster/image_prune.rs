//! Every node: images no container uses are removed once they are older
//! than a day. Each deploy pulls a new tag of every image and Swarm never
//! removes the old ones, so without this a node's disk fills over months of
//! deploys. A day's margin keeps the previous release's images on the node,
//! so a rollback right after an update starts without a pull.

use std::time::Duration;

use tracing::info;

use crate::engine::Engine;
use crate::observe::events::{Events, Kind};
use crate::observe::metrics::Metrics;

/// `--image-prune-interval` and `--image-prune-age` from `serve`'s flags.
pub struct Pruner {
    pub engine: Engine,
    pub every: Duration,
    pub older_than: Duration,
    pub metrics: Metrics,
    pub events: Events,
    pub dry_run: bool,
}

impl Pruner {
    /// Prune now and then every `every`, until the agent stops; a zero
    /// interval turns it off.
    pub async fn run(self) {
        if self.every.is_zero() {
            info!("image prune off (--image-prune-interval 0)");
            return;
        }
        loop {
            self.prune_once().await;
            tokio::time::sleep(self.every).await;
        }
    }

    async fn prune_once(&self) {
        if self.dry_run {
            info!(older_than = ?self.older_than, "dry-run: would remove the images no container uses");
            return;
        }
        match self.engine.prune_unused_images(self.older_than).await {
            Ok((0, _)) => info!(
                "image prune: no unused image older than {:?}",
                self.older_than
            ),
            Ok((removed, bytes)) => {
                self.metrics.images_pruned(removed, bytes);
                let detail = format!(
                    "removed {removed} unused image(s), {} MB freed",
                    bytes / 1_000_000
                );
                self.events.done(Kind::ImagePrune, "this node", detail);
            }
            Err(e) => {
                let next = "retrying at the next interval";
                self.events.failed(Kind::ImagePrune, "this node", &e, next);
            }
        }
    }
}
