-- New buyers' orders are made one after the other (store::orders,
-- lock_new_buyers_share): the row below is what they lock. SQLite already
-- makes writers wait for each other; the table keeps both schemas alike.
CREATE TABLE hold_locks (name TEXT NOT NULL PRIMARY KEY);
INSERT INTO hold_locks (name) VALUES ('new_buyers');
