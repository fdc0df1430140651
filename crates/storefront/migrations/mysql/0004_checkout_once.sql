-- One order per cart: a checkout carries the key of the cart it checks out,
-- and a second checkout of the same cart (a double click, a retry after a
-- lost answer) finds the first order instead of making another.
-- NULL (buy now) never collides.
ALTER TABLE orders ADD COLUMN checkout_key VARCHAR(64) NULL,
  ADD UNIQUE INDEX orders_checkout_key (user_id, checkout_key);
