-- Mail the shop sends and password-reset links (see the MySQL migration of
-- the same number).
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    lease_owner TEXT NULL,
    lease_until_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NULL,
    created_at INTEGER NOT NULL,
    sent_at INTEGER NULL
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_ms);

CREATE TABLE password_resets (
    token_hash TEXT NOT NULL PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER NULL
);
CREATE INDEX password_resets_user ON password_resets (user_id, created_at);

ALTER TABLE users ADD COLUMN lang TEXT NOT NULL DEFAULT 'en';
