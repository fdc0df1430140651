//! What the agents share outside the swarm: the token store (join tokens,
//! manager addresses, the API secret), the API secret's own sources, and the
//! AWS clients behind the store and the lifecycle hooks.

#[cfg(feature = "aws")]
pub mod aws;
pub mod secret;
pub mod token_store;
