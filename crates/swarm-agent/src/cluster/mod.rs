//! The swarm as a whole, as a manager sees it: the snapshot and its views,
//! the pure rules that judge it, and the leader's duties that act on it
//! (founding, publishing tokens, reconciling, renewing registry auth,
//! pruning images).

pub(crate) mod image_prune;
pub(crate) mod init;
pub mod model;
pub(crate) mod publish;
pub mod reconcile;
pub(crate) mod registry_auth;
pub(crate) mod renew_auth;
pub(crate) mod rules;
pub(crate) mod snapshot;
