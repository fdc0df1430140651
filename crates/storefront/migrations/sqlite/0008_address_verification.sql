-- Address verification: see the MySQL migration of the same number for why
-- accounts that have paid count as confirmed and the others do not.
ALTER TABLE users ADD COLUMN email_verified_at INTEGER NULL;

UPDATE users SET email_verified_at = created_at
WHERE id IN (SELECT user_id FROM orders WHERE status = 'paid');

CREATE TABLE address_verifications (
    token_hash TEXT NOT NULL PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER NULL
);
CREATE INDEX address_verifications_user ON address_verifications (user_id, created_at);
