//! Where a replica's index is in the change feed. Ids of `catalog_changes`
//! are given at INSERT but become visible at COMMIT, so two writers can
//! commit out of order: 12 can be read while 11 is still in flight. The
//! position is therefore the highest id below which every change has been
//! applied; later ids already applied are remembered, and a gap is waited
//! for a while before it is taken as a rolled-back write (an id given and
//! never committed), which leaves a gap for good.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::store::changes::ChangeId;

/// How long a gap in the ids is waited for. A write's transaction is a few
/// statements; one that holds an id longer than this is taken as rolled
/// back (were it committed after all, the book is read again at the next
/// change or rebuild).
pub const GAP_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Position {
    /// Every change up to this id is applied.
    applied: ChangeId,
    /// Changes past `applied` already applied.
    ahead: BTreeSet<ChangeId>,
    /// Missing ids below the highest applied one, since when.
    gaps: BTreeMap<ChangeId, Instant>,
}

impl Position {
    pub fn at(applied: ChangeId) -> Position {
        Position {
            applied,
            ..Position::default()
        }
    }

    /// Every change up to this id is applied.
    pub fn applied(&self) -> ChangeId {
        self.applied
    }

    /// Where the next read starts: just after `applied`; changes after it
    /// already applied are skipped with [`Position::is_new`].
    pub fn read_from(&self) -> ChangeId {
        self.applied
    }

    pub fn is_new(&self, id: ChangeId) -> bool {
        id > self.applied && !self.ahead.contains(&id)
    }

    /// Records changes as applied (`ids` in increasing order, as read).
    pub fn applied_ids(&mut self, ids: &[ChangeId], now: Instant) {
        for &id in ids {
            if id <= self.applied {
                continue;
            }
            self.gaps.remove(&id);
            let highest = self.ahead.last().copied().unwrap_or(self.applied);
            for missing in highest + 1..id {
                self.gaps.entry(missing).or_insert(now);
            }
            self.ahead.insert(id);
        }
        self.advance(now);
    }

    /// Moves `applied` over the changes applied and the gaps waited for long enough.
    pub fn advance(&mut self, now: Instant) {
        loop {
            let next = self.applied + 1;
            if self.ahead.remove(&next) {
                self.applied = next;
            } else if self
                .gaps
                .get(&next)
                .is_some_and(|since| now.duration_since(*since) >= GAP_WAIT)
            {
                self.gaps.remove(&next);
                self.applied = next;
            } else {
                return;
            }
        }
    }

    /// The highest change applied, counting those past a gap.
    pub fn highest(&self) -> ChangeId {
        self.ahead.last().copied().unwrap_or(self.applied)
    }

    /// Whether a change the caller knows of (its own write) is applied.
    pub fn has(&self, id: ChangeId) -> bool {
        id <= self.applied || self.ahead.contains(&id)
    }

    pub fn waiting_for_gaps(&self) -> bool {
        !self.gaps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_in_order_move_the_position() {
        let mut position = Position::at(10);
        let now = Instant::now();
        position.applied_ids(&[11, 12, 13], now);
        assert_eq!(position.applied(), 13);
        assert!(!position.is_new(12));
        assert!(position.is_new(14));
    }

    #[test]
    fn a_change_committed_late_is_still_read() {
        let mut position = Position::at(10);
        let now = Instant::now();
        // 11 is in flight: 12 is read first.
        position.applied_ids(&[12], now);
        assert_eq!(position.applied(), 10, "the next read starts before 11");
        assert!(position.has(12) && !position.has(11));
        assert!(!position.is_new(12), "12 is not applied twice");
        assert!(position.waiting_for_gaps());
        position.applied_ids(&[11], now + Duration::from_millis(200));
        assert_eq!(position.applied(), 12);
        assert!(!position.waiting_for_gaps());
    }

    #[test]
    fn a_gap_never_filled_is_passed_after_the_wait() {
        let mut position = Position::at(0);
        let start = Instant::now();
        position.applied_ids(&[1, 3, 4], start);
        assert_eq!(position.applied(), 1);
        position.advance(start + GAP_WAIT - Duration::from_millis(1));
        assert_eq!(position.applied(), 1);
        position.advance(start + GAP_WAIT);
        assert_eq!(position.applied(), 4);
        assert_eq!(position.highest(), 4);
    }
}
