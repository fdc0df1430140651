//! The swarm as a whole, as a manager sees it: the snapshot and its views,
//! the pure rules that judge it, and the leader's duties that act on it
//! (founding, publishing tokens, reconciling, renewing registry auth,
//! pruning images).

pub mod image_prune;
pub mod init;
pub mod model;
pub mod publish;
pub mod reconcile;
pub mod registry_auth;
pub mod renew_auth;
pub mod rules;
pub mod snapshot;
