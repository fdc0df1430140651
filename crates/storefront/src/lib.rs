//! The bookstore's shop: a library that `main` and the tests share.

pub mod app;
pub mod cover;
pub mod db;
pub mod domain;
pub mod edge;
pub mod error;
pub mod i18n;
pub mod mail;
pub mod metrics;
pub mod password;
pub mod search;
pub mod seed;
pub mod shared;
pub mod store;
pub mod web;

#[cfg(test)]
mod module_graph;
