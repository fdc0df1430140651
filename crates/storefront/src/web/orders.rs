//! Buying: buy now, then delivery, then payment (amount = books + delivery,
//! computed here), the shopper's orders, and cancelling an unpaid order.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use super::catalog::refuse_quantity;
use super::page::{CsrfForm, CurrentUser, Page, flash, parse_id, render};
use crate::domain::{PaymentMethod, Quantity};
use crate::error::{AppError, AppResult};
use crate::i18n::{t, t_args};
use crate::metrics::OrderEvent;
use crate::state::AppState;
use crate::store::orders::{self, Order, OrderError, OrderLine, StepError};
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
        OrderError::Db(_) => (StatusCode::SERVICE_UNAVAILABLE, t("order-try-again")),
    }
}

/// The original's buy form also sent `price`; it is accepted and ignored.
#[derive(Deserialize, Default)]
#[serde(default)]
struct BuyForm {
    quantity: String,
}

async fn buy(
    State(app): State<AppState>,
    CurrentUser(user): CurrentUser,
    page: Page,
    Path(book_id): Path<String>,
    CsrfForm(form): CsrfForm<BuyForm>,
) -> AppResult<Response> {
    let book_id = parse_id(&book_id)?;
    let quantity = match Quantity::parse(&form.quantity) {
        Ok(q) => q,
        Err(e) => {
            return refuse_quantity(
                &app,
                page,
                book_id,
                form.quantity,
                StatusCode::UNPROCESSABLE_ENTITY,
                t(e),
            )
            .await;
        }
    };
    match orders::create(
        &app.db.pool,
        user.id,
        &[(book_id, quantity)],
        app.hold_policy(),
    )
    .await
    {
        Ok(order_id) => {
            app.metrics.order_event(OrderEvent::Created);
            app.catalog_changed().await;
            Ok(Redirect::to(&format!("/delivery/{order_id}")).into_response())
        }
        Err(OrderError::BookNotFound(_)) => Err(AppError::NotFound),
        Err(OrderError::Db(err)) => Err(err.into()),
        Err(err) => {
            let (status, message) = explain_order_error(&err);
            refuse_quantity(&app, page, book_id, form.quantity, status, message).await
        }
    }
}

async fn own_order(app: &AppState, raw_id: &str, user_id: i64) -> AppResult<Order> {
    let id = parse_id(raw_id)?;
    orders::get_owned(&app.db.pool, id, user_id)
        .await?
        .ok_or(AppError::NotFound)
}

/// Refusals of a step, as the shopper should read them.
fn step_refused(err: StepError) -> AppError {
    match err {
        StepError::NotFound => AppError::NotFound,
        StepError::NotOpen => AppError::Conflict(t("order-not-open")),
        StepError::NoDelivery => AppError::Conflict(t("order-no-delivery")),
        StepError::UnknownProvider => AppError::BadRequest("unknown provider".into()),
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

async fn delivery_page(
    State(app): State<AppState>,
    CurrentUser(user): CurrentUser,
    page: Page,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let order = own_order(&app, &id, user.id).await?;
    if !order.is_open() {
        return Err(step_refused(StepError::NotOpen));
    }
    let providers = providers::list(&app.db.pool).await?;
    render(&DeliveryPage {
        page,
        order,
        providers,
        error: None,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeliveryForm {
    provider: String,
}

async fn choose_delivery(
    State(app): State<AppState>,
    CurrentUser(user): CurrentUser,
    page: Page,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<DeliveryForm>,
) -> AppResult<Response> {
    let order = own_order(&app, &id, user.id).await?;
    let provider = form.provider.trim().parse::<i64>().ok();
    let outcome = match provider {
        Some(provider) => orders::choose_delivery(&app.db.pool, order.id, user.id, provider).await,
        None => Err(StepError::UnknownProvider),
    };
    match outcome {
        Ok(()) => Ok(Redirect::to(&format!("/payment/{}", order.id)).into_response()),
        Err(StepError::UnknownProvider) => {
            let providers = providers::list(&app.db.pool).await?;
            let body = render(&DeliveryPage {
                page,
                order,
                providers,
                error: Some(t("delivery-choose-one")),
            })?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, body).into_response())
        }
        Err(err) => Err(step_refused(err)),
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

async fn payment_page(
    State(app): State<AppState>,
    CurrentUser(user): CurrentUser,
    page: Page,
    session: Session,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let order = own_order(&app, &id, user.id).await?;
    if !order.is_open() {
        return Err(step_refused(StepError::NotOpen));
    }
    let Some(provider) = provider_of(&app, &order).await? else {
        flash(&session, "info", t("delivery-first")).await?;
        return Ok(Redirect::to(&format!("/delivery/{}", order.id)).into_response());
    };
    render(&PaymentPage {
        page,
        order,
        provider,
        methods: PaymentMethod::ALL,
        error: None,
    })
}

async fn provider_of(app: &AppState, order: &Order) -> AppResult<Option<Provider>> {
    let all = providers::list(&app.db.pool).await?;
    Ok(all.into_iter().find(|p| Some(p.id) == order.provider_id))
}

/// The original's form also sent `amount` (fixed at 100); it is accepted and ignored.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PaymentForm {
    method: String,
}

async fn pay(
    State(app): State<AppState>,
    CurrentUser(user): CurrentUser,
    page: Page,
    session: Session,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<PaymentForm>,
) -> AppResult<Response> {
    let order = own_order(&app, &id, user.id).await?;
    let Some(method) = PaymentMethod::parse(&form.method) else {
        let provider = provider_of(&app, &order)
            .await?
            .ok_or_else(|| step_refused(StepError::NoDelivery))?;
        let error = Some(t("payment-choose"));
        let body = render(&PaymentPage {
            page,
            order,
            provider,
            methods: PaymentMethod::ALL,
            error,
        })?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, body).into_response());
    };
    let amount = orders::pay(&app.db.pool, order.id, user.id, method)
        .await
        .map_err(step_refused)?;
    app.metrics.order_event(OrderEvent::Paid);
    tracing::info!(
        order_id = order.id,
        amount_cents = amount.get(),
        "order paid"
    );
    flash(
        &session,
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
    orders: Vec<Order>,
}

async fn list(
    State(app): State<AppState>,
    CurrentUser(user): CurrentUser,
    page: Page,
) -> AppResult<Response> {
    let orders = orders::list_for_user(&app.db.pool, user.id).await?;
    render(&OrdersPage { page, orders })
}

#[derive(Template)]
#[template(path = "orders/detail.html")]
struct OrderPage {
    page: Page,
    order: Order,
    lines: Vec<OrderLine>,
    provider: Option<Provider>,
}

async fn detail(
    State(app): State<AppState>,
    CurrentUser(user): CurrentUser,
    page: Page,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let order = own_order(&app, &id, user.id).await?;
    let lines = orders::lines(&app.db.pool, order.id).await?;
    let provider = provider_of(&app, &order).await?;
    render(&OrderPage {
        page,
        order,
        lines,
        provider,
    })
}

async fn cancel(
    State(app): State<AppState>,
    CurrentUser(user): CurrentUser,
    session: Session,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> AppResult<Response> {
    let order = own_order(&app, &id, user.id).await?;
    if !orders::cancel(&app.db.pool, order.id, user.id)
        .await
        .map_err(step_refused)?
    {
        return Err(step_refused(StepError::NotOpen));
    }
    app.metrics.order_event(OrderEvent::Cancelled);
    app.catalog_changed().await;
    flash(
        &session,
        "success",
        t_args("order-cancelled", &[("id", order.id.into())]),
    )
    .await?;
    Ok(Redirect::to(&format!("/orders/{}", order.id)).into_response())
}
