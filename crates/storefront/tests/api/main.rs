//! HTTP integration tests: one binary, each test on its own real server and database.

mod abuse;
mod admin;
mod auth;
mod cart;
mod catalog;
#[path = "../common/mod.rs"]
mod common;
mod concurrency;
mod fleet;
mod floods;
mod helpers;
mod hoarding;
mod language;
mod logs;
mod mail;
mod orders;
mod search;
mod security;
mod seller;
mod slow_clients;
