//! How the agent reports: Prometheus metrics, the log of what it did, the
//! `status` report, and the HTTP routes that serve them.

pub(crate) mod actions;
pub(crate) mod events;
pub mod metrics;
pub(crate) mod routes;
pub(crate) mod status;
