//! The stack's end-to-end scenarios as named tests (`tests/`), and what they
//! share: [`Stack`], the real stack.yml deployed on a swarm of this machine's
//! Docker engine, read and changed through bollard; [`Shopper`], a client
//! with its own cookie jar that uses the shop's real forms; and [`wait`],
//! polling with a deadline that says what it waited for.
//!
//! `scripts/e2e-swarm` does what must be shell (the images from the real
//! Dockerfiles, `docker stack deploy`) and runs these tests, which are
//! ignored by a plain `cargo test`: they need that stack. With it deployed,
//! `cargo test -p e2e --test swarm outage -- --ignored` runs one scenario
//! (docs/operations.md, "The end-to-end scenarios").

pub mod attack;
pub mod shopper;
pub mod stack;
pub mod wait;

pub use shopper::Shopper;
pub use stack::Stack;

/// A check that held, in the form `scripts/e2e-swarm` gathers into its
/// summary (a failed check is the test's error).
pub fn pass(what: impl std::fmt::Display) {
    println!("PASS: {what}");
}
