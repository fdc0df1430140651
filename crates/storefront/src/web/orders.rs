//! Buying: buy now, then delivery, then payment (amount = books + delivery,
//! computed here), the shopper's orders, and cancelling an unpaid order.

use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use super::address;
use super::catalog::{CardFields, over_the_most, refuse_quantity};
use super::csrf::is_token_of_len;
use super::page::{CsrfForm, NoPage, Page, SignedIn, flash, parse_id, render, render_as, shown_as};
use tower_sessions::Session;

use crate::app::state::AppState;
use crate::domain::{Cents, OrderStatus, PaymentMethod, Quantity};
use crate::error::{AppError, AppResult};
use crate::i18n::{self, t, t_args};
use crate::metrics::OrderEvent;
use crate::store::books;
use crate::store::orders::{self, Order, OrderError, OrderLine, ShownPrices, StepError};
use crate::store::providers::{self, Provider};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/buy/{book_id}", post(buy))
        .route(
            "/delivery/{order_id}",
            get(delivery_page).post(choose_delivery),
        )
        .route("/payment/{order_id}", get(payment_page).post(pay))
        .route("/orders", get(list))
        .route("/orders/{order_id}", get(detail))
        .route("/orders/{order_id}/cancel", post(cancel))
}

/// Status and text for an order that could not be placed.
pub fn explain_order_error(err: &OrderError) -> (StatusCode, String) {
    match err {
        OrderError::OutOfStock {
            title,
            available: 0,
        } => (
            StatusCode::CONFLICT,
            t_args("order-sold-out", &[("title", title.as_str().into())]),
        ),
        OrderError::OutOfStock { title, available } => (
            StatusCode::CONFLICT,
            t_args(
                "order-only-left",
                &[
                    ("available", (*available).into()),
                    ("title", title.as_str().into()),
                ],
            ),
        ),
        OrderError::BookNotFound(_) => (StatusCode::NOT_FOUND, t("order-book-gone")),
        OrderError::Empty => (StatusCode::UNPROCESSABLE_ENTITY, t("cart-empty")),
        OrderError::OwnBook { title } => (
            StatusCode::FORBIDDEN,
            t_args("order-own-book", &[("title", title.as_str().into())]),
        ),
        OrderError::TooManyOpen { max, .. } => (
            StatusCode::CONFLICT,
            t_args("order-too-many-open", &[("max", (*max).into())]),
        ),
        OrderError::HoldLimit { title, held, max } => (
            StatusCode::CONFLICT,
            t_args(
                "order-hold-limit",
                &[
                    ("max", (*max).into()),
                    ("title", title.as_str().into()),
                    ("held", (*held).into()),
                ],
            ),
        ),
        OrderError::PriceChanged { title, shown, now } => {
            let money = |cents: &Cents| i18n::current().money(cents.get()).to_string();
            (
                StatusCode::CONFLICT,
                t_args(
                    "order-price-changed",
                    &[
                        ("title", title.as_str().into()),
                        ("shown", money(shown).into()),
                        ("now", money(now).into()),
                    ],
                ),
            )
        }
        OrderError::Db(_) => (StatusCode::SERVICE_UNAVAILABLE, t("order-try-again")),
    }
}

/// The original's buy form also sent `price`; it is accepted and ignored.
#[derive(Deserialize, Default)]
#[serde(default)]
struct BuyForm {
    quantity: String,
    /// New in every page that shows a buy form (`catalog::new_buy_key`): the
    /// same form sent twice (a double click, a resend) carries the same key
    /// and leads to the one order. Required: a post without it, or with a
    /// malformed one, is refused as an expired form, so no client can turn
    /// its retries into new orders.
    buy_key: String,
    /// The price the page showed, in cents: the order stops if it changed.
    shown_price: String,
    /// A catalog card's `quantity-{id}` and `shown_price-{id}`.
    #[serde(flatten)]
    card: CardFields,
}

impl BuyForm {
    /// The quantity and price of the book bought: a catalog card's own
    /// fields when the form came from the catalog.
    fn for_book(mut self, book_id: i64) -> BuyForm {
        if let Some(quantity) = self.card.take("quantity", book_id) {
            self.quantity = quantity;
        }
        if let Some(price) = self.card.take("shown_price", book_id) {
            self.shown_price = price;
        }
        self
    }
}

/// The price a buy form says its page showed, if it says one.
fn shown_price(book_id: i64, raw: &str) -> ShownPrices {
    raw.trim()
        .parse::<i64>()
        .ok()
        .and_then(|cents| Cents::try_from(cents).ok())
        .map(|cents| ShownPrices::from([(book_id, cents)]))
        .unwrap_or_default()
}

/// What the order stores for a buy-now form's key (orders.checkout_key):
/// the book and quantity are part of it, since one page's forms share a key
/// and the shopper may change the quantity and send the form again.
fn buy_checkout_key(form_key: &str, book_id: i64, quantity: Quantity) -> Option<String> {
    is_token_of_len(form_key, 32).then(|| format!("buy:{book_id}:{quantity}:{form_key}"))
}

async fn buy(
    me: SignedIn,
    Path(book_id): Path<String>,
    CsrfForm(form): CsrfForm<BuyForm>,
) -> AppResult<Response> {
    let book_id = parse_id(&book_id)?;
    let form = form.for_book(book_id);
    let quantity = match Quantity::parse(&form.quantity) {
        Ok(q) => q,
        Err(e) => {
            return refuse_quantity(
                &me.app,
                me.page,
                book_id,
                form.quantity,
                StatusCode::UNPROCESSABLE_ENTITY,
                t(e),
            )
            .await;
        }
    };
    let app = &me.app;
    let Some(key) = buy_checkout_key(form.buy_key.trim(), book_id, quantity) else {
        return Err(AppError::CrossSite("buy-now form without a valid buy_key"));
    };
    if quantity.get() > app.config.limits.held_per_title {
        let title = books::get(&app.db.pool(), book_id)
            .await?
            .ok_or(AppError::NotFound)?
            .title;
        let stock = i64::MAX;
        let why = over_the_most(app, &title, quantity.get(), stock, 0).unwrap_or_default();
        return refuse_quantity(
            app,
            me.page,
            book_id,
            form.quantity,
            StatusCode::CONFLICT,
            why,
        )
        .await;
    }
    match orders::create(
        &app.db.pool(),
        me.user.id,
        &[(book_id, quantity)],
        app.hold_policy().await?,
        Some(&key),
        &shown_price(book_id, &form.shown_price),
    )
    .await
    {
        Ok(created) => {
            if created.new {
                app.metrics.order_event(OrderEvent::Created);
                if !created.reserved {
                    app.metrics.order_event(OrderEvent::CreatedUnreserved);
                }
                app.catalog_changed().await;
            }
            Ok(Redirect::to(&format!("/delivery/{}", created.order_id)).into_response())
        }
        Err(OrderError::BookNotFound(_)) => Err(AppError::NotFound),
        Err(OrderError::Db(err)) => Err(err.into()),
        Err(err) => {
            let (status, message) = explain_order_error(&err);
            refuse_quantity(app, me.page, book_id, form.quantity, status, message).await
        }
    }
}

async fn own_order(app: &AppState, raw_id: &str, user_id: i64) -> AppResult<Order> {
    let id = parse_id(raw_id)?;
    orders::get_owned(&app.db.pool(), id, user_id)
        .await?
        .ok_or(AppError::NotFound)
}

/// A form posted on one of the shopper's own orders (the path's): checked
/// like every form (`CsrfForm`) before the order is read, which is 404 when it
/// is another's or none.
struct OrderForm<F, P = Page> {
    me: SignedIn<P>,
    order: Order,
    form: F,
}

impl<F: DeserializeOwned + Send, P: FromRequestParts<AppState, Rejection = AppError> + Send>
    FromRequest<AppState> for OrderForm<F, P>
{
    type Rejection = AppError;

    async fn from_request(req: Request, app: &AppState) -> AppResult<OrderForm<F, P>> {
        let (mut parts, body) = req.into_parts();
        let me = SignedIn::<P>::from_request_parts(&mut parts, app).await?;
        let Path(id) = Path::<String>::from_request_parts(&mut parts, app)
            .await
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        let CsrfForm(form) = CsrfForm::from_request(Request::from_parts(parts, body), app).await?;
        let order = own_order(app, &id, me.user.id).await?;
        Ok(OrderForm { me, order, form })
    }
}

/// The shopper's order for a step's page, or, when it has no steps left
/// (paid, cancelled, expired), the way to its own page.
async fn open_order(me: &SignedIn, raw_id: &str) -> AppResult<Result<Order, Response>> {
    let order = own_order(&me.app, raw_id, me.user.id).await?;
    if !order.is_open() {
        return Ok(Err(to_settled_order(&me.session, &order).await?));
    }
    Ok(Ok(order))
}

/// A step on an order that is no longer open (a second click on Pay or
/// Cancel, a page restored from the history, a checkout sent again): the
/// order's own page, saying calmly what it is now, rather than an error.
async fn to_settled_order(session: &Session, order: &Order) -> AppResult<Response> {
    let message = match order.status() {
        OrderStatus::Paid => "order-settled-paid",
        OrderStatus::Cancelled => "order-settled-cancelled",
        _ => "order-settled-expired",
    };
    flash(session, "info", t_args(message, &[("id", order.id.into())])).await?;
    Ok(Redirect::to(&format!("/orders/{}", order.id)).into_response())
}

/// [`to_settled_order`] after a step refused as no longer open, with the
/// order as it is now; any other refusal as [`step_refused`] says.
async fn refused_step(
    me: &SignedIn<impl Send>,
    order_id: i64,
    err: StepError,
) -> AppResult<Response> {
    if !matches!(err, StepError::NotOpen) {
        return Err(step_refused(err));
    }
    let order = orders::get_owned(&me.app.db.pool(), order_id, me.user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    to_settled_order(&me.session, &order).await
}

/// Refusals of a step, as the shopper should read them.
fn step_refused(err: StepError) -> AppError {
    match err {
        StepError::NotFound => AppError::NotFound,
        StepError::NotOpen => AppError::Conflict(t("order-not-open")),
        StepError::NoDelivery => AppError::Conflict(t("order-no-delivery")),
        StepError::UnknownProvider => AppError::BadRequest("unknown provider".into()),
        StepError::OutOfStock { title, available } => AppError::Conflict(t_args(
            "order-paid-too-late",
            &[
                ("title", title.as_str().into()),
                ("available", available.into()),
            ],
        )),
        StepError::Db(err) => err.into(),
    }
}

#[derive(Template)]
#[template(path = "orders/delivery.html")]
struct DeliveryPage {
    page: Page,
    order: Order,
    providers: Vec<Provider>,
    error: Option<String>,
}

/// The delivery step; with an `error`, refused (422).
async fn show_delivery(
    app: &AppState,
    page: Page,
    order: Order,
    error: Option<String>,
) -> AppResult<Response> {
    let providers = providers::list(&app.db.pool()).await?;
    let status = shown_as(&error);
    render_as(
        status,
        &DeliveryPage {
            page,
            order,
            providers,
            error,
        },
    )
}

async fn delivery_page(mut me: SignedIn, Path(id): Path<String>) -> AppResult<Response> {
    let order = match open_order(&me, &id).await? {
        Ok(order) => order,
        Err(settled) => return Ok(settled),
    };
    if order.is_unreserved() {
        address::note_unconfirmed(&me.app, &mut me.page).await?;
    }
    show_delivery(&me.app, me.page, order, None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeliveryForm {
    provider: String,
}

async fn choose_delivery(
    OrderForm { me, order, form }: OrderForm<DeliveryForm>,
) -> AppResult<Response> {
    let provider = form.provider.trim().parse::<i64>().ok();
    let pool = &me.app.db.pool();
    let outcome = match provider {
        Some(provider) => orders::choose_delivery(pool, order.id, me.user.id, provider).await,
        None => Err(StepError::UnknownProvider),
    };
    match outcome {
        Ok(()) => Ok(Redirect::to(&format!("/payment/{}", order.id)).into_response()),
        Err(StepError::UnknownProvider) => {
            show_delivery(&me.app, me.page, order, Some(t("delivery-choose-one"))).await
        }
        Err(err) => refused_step(&me, order.id, err).await,
    }
}

#[derive(Template)]
#[template(path = "orders/payment.html")]
struct PaymentPage {
    page: Page,
    order: Order,
    provider: Provider,
    methods: [PaymentMethod; 3],
    error: Option<String>,
}

/// The payment step; with an `error`, refused (422).
fn show_payment(
    page: Page,
    order: Order,
    provider: Provider,
    error: Option<String>,
) -> AppResult<Response> {
    render_as(
        shown_as(&error),
        &PaymentPage {
            page,
            order,
            provider,
            methods: PaymentMethod::ALL,
            error,
        },
    )
}

async fn payment_page(mut me: SignedIn, Path(id): Path<String>) -> AppResult<Response> {
    let order = match open_order(&me, &id).await? {
        Ok(order) => order,
        Err(settled) => return Ok(settled),
    };
    if order.is_unreserved() {
        address::note_unconfirmed(&me.app, &mut me.page).await?;
    }
    let Some(provider) = provider_of(&me.app, &order).await? else {
        flash(&me.session, "info", t("delivery-first")).await?;
        return Ok(Redirect::to(&format!("/delivery/{}", order.id)).into_response());
    };
    show_payment(me.page, order, provider, None)
}

async fn provider_of(app: &AppState, order: &Order) -> AppResult<Option<Provider>> {
    let all = providers::list(&app.db.pool()).await?;
    Ok(all.into_iter().find(|p| Some(p.id) == order.provider_id))
}

/// The original's form also sent `amount` (fixed at 100); it is accepted and ignored.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PaymentForm {
    method: String,
}

async fn pay(OrderForm { me, order, form }: OrderForm<PaymentForm>) -> AppResult<Response> {
    let app = &me.app;
    let Some(method) = PaymentMethod::parse(&form.method) else {
        let provider = provider_of(app, &order)
            .await?
            .ok_or_else(|| step_refused(StepError::NoDelivery))?;
        return show_payment(me.page, order, provider, Some(t("payment-choose")));
    };
    let payment = match orders::pay(&app.db.pool(), order.id, me.user.id, method, &app.mailer).await
    {
        Ok(payment) => payment,
        Err(err) => return refused_step(&me, order.id, err).await,
    };
    app.mailer.wake_sender();
    app.metrics.order_event(OrderEvent::Paid);
    if payment.took_copies {
        app.catalog_changed().await;
    }
    let amount = payment.amount;
    tracing::info!(
        order_id = order.id,
        amount_cents = amount.get(),
        "order paid"
    );
    let page = &me.page;
    flash(
        &me.session,
        "success",
        t_args(
            "payment-received",
            &[
                ("amount", page.money(amount).to_string().into()),
                ("method", page.t(method.message_id()).into_owned().into()),
            ],
        ),
    )
    .await?;
    Ok(Redirect::to(&format!("/orders/{}", order.id)).into_response())
}

#[derive(Template)]
#[template(path = "orders/list.html")]
struct OrdersPage {
    page: Page,
    rows: Vec<Order>,
}

async fn list(me: SignedIn) -> AppResult<Response> {
    let rows = orders::list_for_user(&me.app.db.pool(), me.user.id).await?;
    render(&OrdersPage {
        page: me.page,
        rows,
    })
}

#[derive(Template)]
#[template(path = "orders/detail.html")]
struct OrderPage {
    page: Page,
    order: Order,
    lines: Vec<OrderLine>,
    provider: Option<Provider>,
}

async fn detail(mut me: SignedIn, Path(id): Path<String>) -> AppResult<Response> {
    let app = &me.app;
    let order = own_order(app, &id, me.user.id).await?;
    if order.is_unreserved() {
        address::note_unconfirmed(app, &mut me.page).await?;
    }
    let lines = orders::lines(&app.db.pool(), order.id).await?;
    let provider = provider_of(app, &order).await?;
    render(&OrderPage {
        page: me.page,
        order,
        lines,
        provider,
    })
}

async fn cancel(OrderForm { me, order, .. }: OrderForm<IgnoredAny, NoPage>) -> AppResult<Response> {
    let app = &me.app;
    if !orders::cancel(&app.db.pool(), order.id, me.user.id)
        .await
        .map_err(step_refused)?
    {
        return refused_step(&me, order.id, StepError::NotOpen).await;
    }
    app.metrics.order_event(OrderEvent::Cancelled);
    app.catalog_changed().await;
    flash(
        &me.session,
        "success",
        t_args("order-cancelled", &[("id", order.id.into())]),
    )
    .await?;
    Ok(Redirect::to(&format!("/orders/{}", order.id)).into_response())
}
