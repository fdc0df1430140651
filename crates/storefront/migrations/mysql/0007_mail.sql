-- Mail the shop sends (mail::outbox): a row is written in the same transaction
-- as the event that causes it, and any replica's sender delivers it. A sender
-- takes a row by setting lease_until (a conditional UPDATE, so two senders
-- never hold one row); a sender that dies holding it loses it when the lease
-- ends, and another sends it with the same Message-ID. Times in epoch
-- milliseconds, so retries can be seconds apart.
CREATE TABLE outbox (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- <uuid@MAIL_FROM's domain>
    message_id VARCHAR(300) NOT NULL,
    recipient VARCHAR(320) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    subject VARCHAR(400) NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    -- pending, sent or dead (no more tries after MAIL_MAX_ATTEMPTS)
    state VARCHAR(16) NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    -- the sender's replica (REPLICA_ID, a Swarm task name) and a random id
    lease_owner VARCHAR(190) NULL,
    lease_until_ms BIGINT NOT NULL DEFAULT 0,
    last_error VARCHAR(500) NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT NULL,
    UNIQUE INDEX outbox_message_id (message_id),
    INDEX outbox_due (state, next_attempt_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Password-reset links: only the SHA-256 of the token is kept, so a copy of
-- the database cannot reset anyone's password. Single use (used_at), short
-- lived (expires_at).
CREATE TABLE password_resets (
    token_hash CHAR(64) NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NULL,
    INDEX password_resets_user (user_id, created_at),
    CONSTRAINT password_resets_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The language an account last used (registration, login), for mail sent
-- when it is not the one asking (a seller's notice of a sale).
ALTER TABLE users ADD COLUMN lang VARCHAR(8) NOT NULL DEFAULT 'en';
