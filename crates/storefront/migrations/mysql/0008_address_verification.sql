-- Address verification (web/address.rs): an account's orders hold copies only
-- once its e-mail address is confirmed through a mailed link.
--
-- Accounts made before this have never been sent a link. Those that have paid
-- for an order count as confirmed (a shopper who paid is a customer, and
-- their orders held copies before; blocking them would punish the shop's
-- real buyers). Accounts that never paid, which is where throwaway accounts
-- that hoard stock sit, start unconfirmed and can ask for a link from any
-- unreserved order's page.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT NULL;

UPDATE users SET email_verified_at = created_at
WHERE id IN (SELECT user_id FROM orders WHERE status = 'paid');

-- Confirmation links, kept as the SHA-256 of their token like password_resets.
CREATE TABLE address_verifications (
    token_hash CHAR(64) NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NULL,
    INDEX address_verifications_user (user_id, created_at),
    CONSTRAINT address_verifications_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
