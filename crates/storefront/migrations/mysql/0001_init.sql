-- Money is integer cents, times are UTC epoch seconds: BIGINT everywhere, because
-- sqlx's Any driver cannot carry MySQL's DECIMAL, DATETIME or TINYINT. Text
-- columns are VARCHAR, because it reads MySQL's TEXT as a BLOB.
CREATE TABLE users (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name          VARCHAR(100) NOT NULL,
    email         VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    is_admin      BIGINT       NOT NULL DEFAULT 0,
    created_at    BIGINT       NOT NULL,
    UNIQUE KEY users_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE books (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    title       VARCHAR(150) NOT NULL,
    author      VARCHAR(100) NOT NULL,
    description VARCHAR(5000) NOT NULL,
    price_cents BIGINT       NOT NULL,
    stock       BIGINT       NOT NULL,
    seller_id   BIGINT       NOT NULL,
    created_at  BIGINT       NOT NULL,
    CONSTRAINT books_price_positive CHECK (price_cents > 0),
    CONSTRAINT books_stock_non_negative CHECK (stock >= 0),
    CONSTRAINT books_seller_fk FOREIGN KEY (seller_id) REFERENCES users (id),
    KEY books_title (title),
    KEY books_author (author),
    KEY books_price (price_cents)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE delivery_providers (
    id            BIGINT       NOT NULL PRIMARY KEY,
    name          VARCHAR(100) NOT NULL,
    coverage_area VARCHAR(100) NOT NULL,
    cost_cents    BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
INSERT INTO delivery_providers (id, name, coverage_area, cost_cents) VALUES
    (1, 'DHL', 'International', 5000),
    (2, 'FedEx', 'International', 4500),
    (3, 'Envia', 'National', 2000),
    (4, 'Servientrega', 'National', 1500);

CREATE TABLE orders (
    id             BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id        BIGINT      NOT NULL,
    status         VARCHAR(32) NOT NULL,
    items_cents    BIGINT      NOT NULL,
    provider_id    BIGINT      NULL,
    delivery_cents BIGINT      NOT NULL DEFAULT 0,
    created_at     BIGINT      NOT NULL,
    expires_at     BIGINT      NOT NULL,
    paid_at        BIGINT      NULL,
    CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT orders_provider_fk FOREIGN KEY (provider_id) REFERENCES delivery_providers (id),
    KEY orders_user (user_id, id),
    KEY orders_expiry (status, expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE order_lines (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id   BIGINT       NOT NULL,
    book_id    BIGINT       NULL,
    title      VARCHAR(150) NOT NULL,
    unit_cents BIGINT       NOT NULL,
    quantity   BIGINT       NOT NULL,
    CONSTRAINT order_lines_quantity_positive CHECK (quantity > 0),
    CONSTRAINT order_lines_order_fk FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT order_lines_book_fk FOREIGN KEY (book_id) REFERENCES books (id) ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE payments (
    id           BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id     BIGINT      NOT NULL,
    amount_cents BIGINT      NOT NULL,
    method       VARCHAR(32) NOT NULL,
    created_at   BIGINT      NOT NULL,
    UNIQUE KEY payments_order (order_id),
    CONSTRAINT payments_order_fk FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
