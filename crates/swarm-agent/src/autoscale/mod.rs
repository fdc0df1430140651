//! Replica autoscaling: the policy a service opts into with labels and the
//! pure decision (`policy`), CPU measured where replicas run (`cpu`), and
//! the leader's controller that applies decisions (`controller`).

pub mod controller;
pub mod cpu;
pub mod policy;
