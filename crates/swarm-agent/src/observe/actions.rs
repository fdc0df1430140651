//! The last actions this agent took (joins seen, drains, removals,
//! rebalances, republishes, lifecycle notices), kept in memory for the fleet
//! page. The logs keep the full history; this answers "what changed lately?"
//! without a log search. Bounded, so a flapping node cannot grow it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

/// How many actions the page shows; older ones are dropped.
pub const KEPT: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub at: OffsetDateTime,
    /// `join`, `drain`, `remove`, `rebalance`, … (`events::Kind::name`).
    pub name: &'static str,
    pub outcome: Outcome,
    /// The node or service it was about.
    pub subject: String,
    /// What was done, or the error when it failed.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed,
}

impl Action {
    /// As the fleet page shows it: the name, and "failed" after it when it failed.
    pub fn kind(&self) -> String {
        match self.outcome {
            Outcome::Done => self.name.to_string(),
            Outcome::Failed => format!("{} failed", self.name),
        }
    }
}

/// Cheap to clone: every clone records into the same buffer.
#[derive(Clone)]
pub struct ActionLog {
    entries: Arc<Mutex<VecDeque<Action>>>,
    capacity: usize,
}

impl Default for ActionLog {
    fn default() -> Self {
        Self::with_capacity(KEPT)
    }
}

impl ActionLog {
    pub fn with_capacity(capacity: usize) -> Self {
        ActionLog {
            entries: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity,
        }
    }

    /// Kept through `events::Events`, which also counts and logs it.
    pub(super) fn record(
        &self,
        name: &'static str,
        outcome: Outcome,
        subject: &str,
        detail: impl Into<String>,
    ) {
        self.push(Action {
            at: OffsetDateTime::now_utc(),
            name,
            outcome,
            subject: subject.to_string(),
            detail: detail.into(),
        });
    }

    pub fn push(&self, action: Action) {
        // A panic elsewhere while holding the lock leaves plain data: keep using it.
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(action);
    }

    pub fn newest_first(&self) -> Vec<Action> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_shows_them_first() {
        let log = ActionLog::with_capacity(3);
        for n in 1..=5 {
            log.record("drain", Outcome::Done, &format!("node-{n}"), "");
        }
        let subjects: Vec<String> = log.newest_first().into_iter().map(|a| a.subject).collect();
        assert_eq!(subjects, ["node-5", "node-4", "node-3"]);
    }

    #[test]
    fn clones_share_one_buffer() {
        let log = ActionLog::default();
        log.clone()
            .record("join", Outcome::Done, "w1", "became ready");
        assert_eq!(log.newest_first().len(), 1);
    }
}
