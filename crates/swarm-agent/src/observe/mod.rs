//! How the agent reports: Prometheus metrics, the log of what it did, the
//! `status` report, and the HTTP routes that serve them.

pub mod actions;
pub mod metrics;
pub mod routes;
pub mod status;
