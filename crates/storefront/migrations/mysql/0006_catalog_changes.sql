-- The search index's feed: every write of a book's listed fields appends a row
-- here in the same transaction (search::feed::record), and each replica's
-- index applies the rows in id order. A NULL book_id means "many books
-- changed" (the seeder's bulk load): indexes rebuild from the books table.
-- Rows older than a day are pruned; the index never needs them (it builds
-- from the books table at start).
CREATE TABLE catalog_changes (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    book_id BIGINT NULL,
    changed_at BIGINT NOT NULL,
    INDEX catalog_changes_at (changed_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
