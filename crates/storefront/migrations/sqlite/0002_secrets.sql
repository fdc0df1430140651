-- Secrets every replica must share, created once by whichever starts first
-- (the key that signs anonymous visitors' CSRF cookies).
CREATE TABLE app_secrets (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
