//! The application as a whole: configuration, the one state every handler
//! reaches, building and running it, its logs, and the image's healthcheck.

pub mod config;
pub mod healthcheck;
pub mod startup;
pub mod state;
pub mod telemetry;
