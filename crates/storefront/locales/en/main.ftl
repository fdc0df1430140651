# The shop's English text. Every id here is also in ../es/main.ftl, and is
# used somewhere in src/ or templates/ (tests/catalogues.rs checks both).

## The layout

shop-name = Bookstore
nav-label = Main
nav-catalog = Catalog
nav-cart = Cart
nav-orders = Orders
nav-my-books = My books
nav-admin = Admin
nav-signed-in-as = Signed in as
nav-log-out = Log out
logout-title = Log out of the shop?
nav-log-in = Log in
nav-register = Register
# The switch shows the other language, in that language.
lang-switch = English
footer = Bookstore · public-domain classics and books from our sellers

## Home

home-title = Welcome
home-heading = Welcome to the Bookstore
home-lead = { $count ->
    [one] One book from our sellers, from Austen to Wilde. Find one, buy it in two clicks, or sell your own.
   *[other] { $count } books from our sellers, from Austen to Wilde. Find one, buy it in two clicks, or sell your own.
}
home-lead-more = More than { $count } books from our sellers, from Austen to Wilde. Find one, buy it in two clicks, or sell your own.
search-label = Search by title or author
search-placeholder = e.g. Austen
search-button = Search
tile-catalog = Browse the catalog
tile-catalog-text = Every book, with search and sorting
tile-sell = Sell your books
tile-sell-text = List, edit and remove your own books
tile-orders = Your orders
tile-orders-text = Delivery, payment and status
tile-admin-text = Administration

## Catalog and book pages

catalog-title = Catalog
sort-label = Sort by
sort-title = Title
sort-author = Author
sort-price-low = Price: low to high
sort-price-high = Price: high to low
sort-newest = Newest
sort-relevance = Relevance
catalog-show = Show
catalog-count = { $count ->
    [one] 1 book
   *[other] { $count } books
}
catalog-count-more = More than { $count } books
catalog-matching = matching “{ $search }”
catalog-none = No books found.
catalog-show-all = Show every book
catalog-login-to-buy = to buy.
pager-label = Pages
pager-previous = Previous
pager-next = Next
pager-position = Page { $page } of { $pages }
pager-page = Page { $page }
pager-far = Further pages
stock-available = { $count } available
out-of-stock = Out of stock
quantity = Quantity
quantity-most = At most { $count } per order.
quantity-over-most = One order takes at most { $max } copies of “{ $title }”{ $in_cart ->
    [0] {""}
   *[other] {""}, and your cart has { $in_cart }
}.
quantity-of = Quantity of { $title }
buy-now = Buy now
add-to-cart = Add to cart
book-cover-of = Cover of { $title }
book-by = by { $author }
book-edit-yours = Edit your book
book-login-to-buy = Log in to buy
book-about = About this book
book-sold-by = Sold by { $seller }

## Accounts

login-title = Log in
login-new-here = New here?
login-failed = Login failed: check your e-mail and password.
login-throttled-address = Too many login attempts from your network. Wait a few minutes and try again.
login-throttled-account = Too many failed attempts for this account. Wait a few minutes and try again.
login-welcome-back = Welcome back, { $name }.
register-heading = Create an account
register-lead = One account lets you buy books and sell your own.
register-password-hint = At least 8 characters.
register-already = Already registered?
register-done = Your account is ready. Log in to start shopping.
register-confirm-sent = We mailed you a link to confirm your address. Until you confirm it, your orders do not hold their copies while you pay.
register-email-taken = That e-mail address is already registered. Log in instead?
register-throttled = Too many new accounts from your network. Wait an hour and try again.
field-name = Name
field-email = E-mail
field-password = Password

## Form input

invalid-name-empty = Enter your name.
invalid-email-empty = Enter your e-mail address.
invalid-email-too-long = That e-mail address is too long.
invalid-email-shape = Enter an e-mail address like name@example.com.
invalid-password-empty = Choose a password.
invalid-password-short = Use at least 8 characters.
invalid-password-long = Use at most 128 characters.
invalid-text-one-line = Write it on one line.
invalid-name-reserved = That name is the shop's own: choose another.
invalid-text-control = Remove the invisible control characters (pasted from elsewhere?).
invalid-text-too-long = At most { $max } characters.
invalid-title-empty = Enter the title.
invalid-author-empty = Enter the author.
invalid-price-empty = Enter a price.
invalid-price-shape = Enter a price as a number, like 12.50.
invalid-price-decimals = A price has at most two decimals.
invalid-price-zero = The price must be more than zero.
invalid-price-max = That price is too high: at most $100,000.00.
invalid-quantity-empty = Enter a quantity.
invalid-quantity-whole = The quantity must be a whole number.
invalid-quantity-low = The quantity must be at least 1.
invalid-quantity-high = At most 100 copies per order.
invalid-stock-empty = Enter how many copies you have.
invalid-stock-whole = The stock must be a whole number.
invalid-stock-negative = The stock cannot be negative.
invalid-stock-high = At most 100000 copies.

## Cart

cart-title = Your cart
cart-empty = Your cart is empty.
find-a-book = Find a book
col-book = Book
col-price = Price
col-subtotal = Subtotal
col-order = Order
col-status = Status
col-total = Total
col-stock = Stock
col-actions = Actions
col-buyer = Buyer
col-placed = Placed
col-id = Id
col-role = Role
cart-only-left = Only { $count } left.
cart-update = Update
cart-remove = Remove
cart-remove-title = Remove { $title }
cart-books-total = Books total
cart-delivery-next = Delivery is chosen at the next step.
cart-check-out = Check out
cart-added = Added “{ $title }” to your cart.
cart-over-stock = Only { $stock } left; you already have { $in_cart } in your cart.
cart-full = Your cart is full: check out first.

## Orders

steps-label = Checkout steps
steps-placed = Order placed
steps-delivery = Delivery
steps-payment = Payment
delivery-title = Delivery for order #{ $id }
delivery-books = Books:
delivery-choose = Choose who brings them:
coverage-international = International
coverage-national = National
delivery-provider = Delivery provider
delivery-continue = Continue to payment
delivery-order-details = Order details
delivery-choose-one = Choose one of the providers.
delivery-first = Choose a delivery provider first.
order-title = Order #{ $id }
order-placed = Placed { $when }
order-paid = paid { $when }
order-reserved-until = reserved until { $when }
summary-books = Books
summary-delivery = Delivery
summary-not-chosen = not chosen
summary-total = Total
order-pay-now = Pay now
order-choose-delivery = Choose delivery
order-cancel = Cancel this order
order-cancelled = Order #{ $id } was cancelled.
orders-title = Your orders
orders-none = No orders yet.
orders-pay = Pay
payment-title = Payment for order #{ $id }
payment-total = Total to pay
payment-change-delivery = Change delivery
payment-method = Payment method
payment-pay = Pay { $amount }
payment-choose = Choose a payment method.
payment-received = Thank you! We received { $amount } by { $method }.
method-credit-card = Credit Card
method-paypal = Paypal
method-bank-transfer = Bank Transfer
status-pending-payment = Pending payment
status-unreserved = Pending payment, not reserved
order-open-until = open until { $when }
order-unreserved-note = These copies are not held for you: they are yours when you pay, unless someone pays for them first. An order waits like this when it was placed before its shopper’s address was confirmed, or when shoppers who have never paid already hold their whole share of the stock; once you have paid for an order, your next orders hold their copies while you pay.
cart-unconfirmed-note = Your e-mail address is not confirmed yet, so this order will not hold its copies while you pay: someone who pays first may take them. Confirm it with the link we mail you.
order-unconfirmed-note = These copies are not held for you: they are yours when you pay, unless someone pays for them first. Orders hold their copies once you confirm your e-mail address with the link we mailed you.
order-paid-too-late = Only { $available } of “{ $title }” left: copies went to others while this order waited unreserved. It was not paid and nothing was charged; cancel it and order what is left.
status-paid = Paid
status-cancelled = Cancelled
status-expired = Expired
order-sold-out = “{ $title }” is sold out.
order-only-left = Only { $available } left of “{ $title }”: lower the quantity.
order-book-gone = That book is no longer for sale.
order-own-book = You sell “{ $title }”: you cannot buy it.
cart-book-gone = A book in your cart is no longer for sale, so it was taken out. Check what is left and check out again.
order-too-many-open = You already have { $max } unpaid orders, the most one shopper may hold. Pay for one or cancel it (Your orders) before ordering more.
order-hold-limit = You may hold at most { $max } copies of “{ $title }” in unpaid orders, and already hold { $held }. Pay for or cancel those orders first, or order fewer.
order-try-again = Please try again.
order-settled-paid = Order #{ $id } is paid: nothing more to do.
order-settled-cancelled = Order #{ $id } is cancelled.
order-settled-expired = Order #{ $id } expired before it was paid: its copies went back on sale.
order-price-changed = The price of “{ $title }” changed from { $shown } to { $now } since you saw it. Nothing was bought: buy it again at the new price if you still want it.
order-not-open = This order is no longer waiting for payment: it is already paid, cancelled or expired.
order-no-delivery = Choose a delivery provider before paying.

## Selling

sell-add-heading = Add a book
sell-edit-heading = Edit your book
sell-added = “{ $title }” is now for sale.
sell-updated = “{ $title }” was updated.
sell-stock-moved = Copies were sold or released while this form was open: the stock is now { $stock }. Check the stock and save again.
sell-removed = “{ $title }” was removed from the shop.
sell-none = You have no books for sale yet.
sell-edit = Edit
sell-delete = Delete
sell-delete-title = Delete { $title }
field-title = Title
field-author = Author
field-description = Description
price-placeholder = 12.50
field-price = Price (USD)
field-stock = Copies in stock
form-save = Save
form-cancel = Cancel

## Administration

admin-users-title = Registered users
admin-orders-title = Orders overview
admin-orders-recent = newest first, 50 a page
admin-search = Search
admin-search-button = Search
admin-search-clear = Show all
admin-older = Older
admin-no-match = Nothing matches.
role-admin = Admin
role-shopper = Shopper

## Error pages

error-code = Error { $status }
error-back = Back to the catalog
error-login-other = Log in as someone else
error-not-found = Not found
error-not-found-text = There is nothing here. It may have been removed.
error-forbidden = Not allowed
error-forbidden-text = You are not allowed to see or change this.
error-login = Please log in
error-login-text = Log in to continue.
error-cross-site = Form expired
error-cross-site-text = This form has expired or came from another site. Go back, reload the page and try again.
error-bad-request = Bad request
error-bad-request-text = The request could not be understood.
error-conflict = Not possible
error-conflict-text = That is not possible in the current state.
error-too-many = Too many attempts
error-too-many-text = Too many attempts. Wait a few minutes and try again.
error-timeout = Too slow
error-timeout-text = Your request arrived too slowly. Please try again.
error-too-large = Too large
error-too-large-text = What you sent is larger than this shop accepts.
error-unavailable = Temporarily unavailable
error-unavailable-text = The shop is briefly unavailable. Please try again in a moment.
error-internal = Something went wrong
error-internal-text = Something went wrong on our side. Please try again.
error-method = Not allowed here
error-method-text = This address does not take that kind of request.
error-other = Refused
error-other-text = The request could not be answered.

## Password reset (web/password.rs) and its mail (mail/letters.rs)
forgot-title = Forgot your password?
forgot-lead = Type the address you registered with. If it has an account, we will mail it a link to choose a new password.
forgot-submit = Send me a link
reset-sent = If an account uses that address, a link to choose a new password is on its way to it.
reset-throttled = Too many requests from your network. Please wait a while and try again.
reset-title = Choose a new password
reset-new-password = New password
reset-submit = Set the new password
reset-unusable = This link does not work: it was used already, it has expired, or it was copied incompletely.
reset-ask-again = Ask for a new link
reset-done = Your password is changed, and your account has been logged out everywhere. Log in with the new password.
mail-greeting = Hello { $name },
mail-reset-subject = Choose a new password for your Bookstore account
mail-reset-intro = Someone, hopefully you, asked to reset the password of your Bookstore account.
mail-reset-action = Choose a new password:
mail-reset-expiry = The link works once, for { $minutes } minutes.
mail-reset-not-you = If you did not ask for this, ignore this mail: your password stays as it is.
mail-order-item = { $quantity } × { $title }: { $amount }
mail-order-books = Books: { $amount }
mail-order-delivery = Delivery ({ $provider }): { $amount }
mail-order-total = Total paid: { $amount }
mail-receipt-subject = Your Bookstore receipt for order #{ $number }
mail-receipt-intro = Thank you! We received your payment for order #{ $number } on { $date }:
mail-receipt-action = See your order:
mail-receipt-closing = Keep this mail as your receipt.
mail-sale-subject = You sold books on Bookstore (order #{ $number })
mail-sale-intro = { $buyer } bought from you in order #{ $number }:
mail-sale-earned = Your sale: { $amount }
mail-sale-delivery = It goes by { $provider }.
mail-sale-action = See your books and their stock:
mail-sale-closing = Thank you for selling on Bookstore.

## Address confirmation (web/address.rs) and its mail (mail/letters.rs)
confirm-title = Confirm your e-mail address
confirm-lead = Confirm that this address is yours, and your orders will hold their copies while you pay.
confirm-submit = Confirm my address
confirm-unusable = This link does not work: it was used already, it has expired, or it was copied incompletely. Log in and ask for a new one from your cart, or from an order that waits unreserved.
confirm-done = Your e-mail address is confirmed. From now on, your new orders hold their copies while you pay.
confirm-send-again = Send me a confirmation link
confirm-sent = A new link to confirm your address is on its way.
confirm-already = Your e-mail address is confirmed already.
confirm-limited = We have sent you several links in the last hour: please use the newest one, or try again later.
mail-confirm-subject = Confirm your e-mail address for Bookstore
mail-confirm-intro = Welcome to Bookstore! Please confirm that this address is yours.
mail-confirm-action = Confirm your address:
mail-confirm-expiry = The link works once, for { $hours ->
    [one] one hour
   *[other] { $hours } hours
}.
mail-confirm-not-you = If you did not make an account on Bookstore, ignore this mail: nothing happens without the link.
