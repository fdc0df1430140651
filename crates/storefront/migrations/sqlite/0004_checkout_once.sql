-- One order per cart: a checkout carries the key of the cart it checks out,
-- and a second checkout of the same cart (a double click, a retry after a
-- lost answer) finds the first order instead of making another.
-- NULL (buy now) never collides.
ALTER TABLE orders ADD COLUMN checkout_key TEXT;
CREATE UNIQUE INDEX orders_checkout_key ON orders (user_id, checkout_key);
