//! HTTP integration tests: one binary, each test on its own real server and database.

mod admin;
mod auth;
mod cart;
mod catalog;
mod concurrency;
mod fleet;
mod helpers;
mod orders;
mod security;
mod seller;
