-- Money is integer cents, times are UTC epoch seconds: the same columns read
-- through sqlx's Any driver on SQLite and MySQL.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE books (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    title       TEXT    NOT NULL,
    author      TEXT    NOT NULL,
    description TEXT    NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents > 0),
    stock       INTEGER NOT NULL CHECK (stock >= 0),
    seller_id   INTEGER NOT NULL REFERENCES users (id),
    created_at  INTEGER NOT NULL
);
CREATE INDEX books_seller ON books (seller_id);
CREATE INDEX books_title ON books (title);
CREATE INDEX books_author ON books (author);
CREATE INDEX books_price ON books (price_cents);

CREATE TABLE delivery_providers (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    coverage_area TEXT    NOT NULL,
    cost_cents    INTEGER NOT NULL
);
INSERT INTO delivery_providers (id, name, coverage_area, cost_cents) VALUES
    (1, 'DHL', 'International', 5000),
    (2, 'FedEx', 'International', 4500),
    (3, 'Envia', 'National', 2000),
    (4, 'Servientrega', 'National', 1500);

CREATE TABLE orders (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL REFERENCES users (id),
    status         TEXT    NOT NULL,
    items_cents    INTEGER NOT NULL,
    provider_id    INTEGER REFERENCES delivery_providers (id),
    delivery_cents INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    paid_at        INTEGER
);
CREATE INDEX orders_user ON orders (user_id, id);
CREATE INDEX orders_expiry ON orders (status, expires_at);

-- Lines keep the title and unit price paid, so history survives a book's deletion.
CREATE TABLE order_lines (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id   INTEGER NOT NULL REFERENCES orders (id),
    book_id    INTEGER REFERENCES books (id) ON DELETE SET NULL,
    title      TEXT    NOT NULL,
    unit_cents INTEGER NOT NULL,
    quantity   INTEGER NOT NULL CHECK (quantity > 0)
);
CREATE INDEX order_lines_order ON order_lines (order_id);
CREATE INDEX order_lines_book ON order_lines (book_id);

-- One payment per order: the unique key is the last line of defence against double charges.
CREATE TABLE payments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id     INTEGER NOT NULL UNIQUE REFERENCES orders (id),
    amount_cents INTEGER NOT NULL,
    method       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);
