//! This node's life: joining at boot, the launch readiness gate, draining
//! and leaving at scale-in, the termination watch and health reports to the
//! Auto Scaling group, instance metadata, and the backup credentials relay.

pub mod credentials_relay;
pub mod drain;
pub mod health;
pub mod imds;
pub mod join;
pub mod leave;
pub mod lifecycle;
pub mod readiness;

/// This machine's host name, for the action log and the relay's log lines.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this node".into())
}
