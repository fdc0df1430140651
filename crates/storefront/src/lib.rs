//! The bookstore's shop: a library that `main` and the tests share.

pub mod after_response;
pub mod client_addr;
pub mod config;
pub mod cover;
pub mod db;
pub mod domain;
pub mod error;
pub mod healthcheck;
pub mod i18n;
pub mod metrics;
pub mod password;
pub mod ratelimit;
pub mod read_cache;
pub mod redis;
pub mod seed;
pub mod serve;
pub mod session_cache;
pub mod session_store;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod web;

#[cfg(test)]
mod module_graph;
