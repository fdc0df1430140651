-- New buyers' orders are made one after the other (store::orders,
-- lock_new_buyers_share): the row below is what they lock, so that two of
-- them cannot pass the new buyers' share of the stock together.
CREATE TABLE hold_locks (
    name VARCHAR(32) NOT NULL PRIMARY KEY
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
INSERT INTO hold_locks (name) VALUES ('new_buyers');
