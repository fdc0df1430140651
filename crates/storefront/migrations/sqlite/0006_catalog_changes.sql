-- The search index's feed (see the MySQL migration of the same number).
-- AUTOINCREMENT: an id is never given twice, even after the newest row is
-- pruned, so a reader's "after this id" stays right.
CREATE TABLE catalog_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    book_id INTEGER NULL,
    changed_at INTEGER NOT NULL
);
CREATE INDEX catalog_changes_at ON catalog_changes (changed_at);
