-- Secrets every replica must share, created once by whichever starts first
-- (the key that signs anonymous visitors' CSRF cookies).
CREATE TABLE app_secrets (
    name  VARCHAR(64)  NOT NULL PRIMARY KEY,
    value VARCHAR(255) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
