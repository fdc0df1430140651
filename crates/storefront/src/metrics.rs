//! Prometheus metrics, served on `METRICS_ADDR` only (never on the public port).
//!
//! Each `App` owns one [`Metrics`] with its own registry, handed to whatever
//! counts: the request middleware, the password hasher, the handlers. Nothing
//! here is a process global, so two shops in one test binary never read each
//! other's figures, and this module depends on no other part of the shop
//! (`after_response` is the shape of a layer, not a part).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use sqlx::AnyPool;

use crate::edge::after_response::{AfterResponseLayer, Finish, OnResponse};

/// Debug shows no figures: they are on the metrics page.
impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_in_flight: IntGauge,
    db_pool: IntGaugeVec,
    db_pools_replaced: IntCounter,
    redis_pool: IntGaugeVec,
    orders: IntCounterVec,
    session_store_errors: IntCounter,
    subscriptions_up: IntGaugeVec,
    subscriptions_ended: IntCounterVec,
    password_hashes: IntCounterVec,
    logins_throttled: IntCounterVec,
    registrations: IntCounterVec,
    searches: IntCounterVec,
    listings: IntCounterVec,
    search_index: IntGaugeVec,
    search_index_behind_seconds: Gauge,
    mails: IntCounterVec,
    outbox: IntGaugeVec,
    password_resets: IntCounterVec,
    address_confirmations: IntCounterVec,
}

/// Where the search index stands (`src/search/`), as `/metrics` shows it.
#[derive(Debug, Clone, Copy)]
pub struct SearchFigures {
    /// Searches are answered from the index (not building, not behind).
    pub serving: bool,
    pub books: u64,
    /// Changes in the feed the index has not applied.
    pub behind_changes: u64,
    /// Since the index last held every change the feed showed.
    pub behind_seconds: f64,
}

/// A state change of an order, as `storefront_orders_total` counts it.
#[derive(Debug, Clone, Copy)]
pub enum OrderEvent {
    Created,
    /// A new buyer's order placed beyond the new buyers' share (also `created`).
    CreatedUnreserved,
    Paid,
    Cancelled,
    Expired,
}

impl OrderEvent {
    fn label(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::CreatedUnreserved => "created_unreserved",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }
}

/// Marks a response whose request failed because the session store did; the
/// error layer counts it once, whichever way the failure surfaced.
#[derive(Debug, Clone, Copy)]
pub struct SessionStoreFailed;

fn register<T: Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once, under its own name");
    metric
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    register(registry, metric)
}

fn gauges(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    register(registry, metric)
}

impl Metrics {
    pub fn new(replica: &str) -> Arc<Metrics> {
        let registry = Registry::new();
        let r = &registry;
        let duration = HistogramOpts::new(
            "storefront_http_request_duration_seconds",
            "Time from request received to response headers ready, by method and matched route.",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]);
        let metrics = Metrics {
            http_requests: counters(
                r,
                "storefront_http_requests_total",
                "HTTP requests answered, by method, matched route and status code.",
                &["method", "route", "status"],
            ),
            http_duration: register(
                r,
                HistogramVec::new(duration, &["method", "route"]).expect("valid metric"),
            ),
            http_in_flight: register(
                r,
                IntGauge::new(
                    "storefront_http_requests_in_flight",
                    "HTTP requests being answered now.",
                )
                .expect("valid metric"),
            ),
            db_pool: gauges(
                r,
                "storefront_db_pool_connections",
                "Database pool connections by state (idle, in_use, max).",
                &["state"],
            ),
            db_pools_replaced: register(
                r,
                IntCounter::new(
                    "storefront_db_pools_replaced_total",
                    "Database pools replaced because every connection was held and none came back for 5 s (the database's host vanished).",
                )
                .expect("valid metric"),
            ),
            redis_pool: gauges(
                r,
                "storefront_redis_pool_connections",
                "Redis pool connections by state (idle, in_use, max).",
                &["state"],
            ),
            orders: counters(
                r,
                "storefront_orders_total",
                "Order state changes made by this replica: created (of which created_unreserved), paid, cancelled, expired.",
                &["event"],
            ),
            session_store_errors: register(
                r,
                IntCounter::new(
                    "storefront_session_store_errors_total",
                    "Requests that failed because the session store did (Redis unreachable or slow).",
                )
                .expect("valid metric"),
            ),
            subscriptions_up: gauges(
                r,
                "storefront_redis_subscriptions_up",
                "1 while this replica's subscription to a Redis channel (catalog:version, session:changed) is up; 0 while it is down and every read goes to Redis.",
                &["channel"],
            ),
            subscriptions_ended: counters(
                r,
                "storefront_redis_subscriptions_ended_total",
                "Subscriptions given up and started again, by channel and reason: closed (the connection failed), silent (Redis stopped answering its heartbeat: its host gone), listener (a message could not be acted on).",
                &["channel", "reason"],
            ),
            password_hashes: counters(
                r,
                "storefront_password_hashes_total",
                "Password hashes: computed, shed (queue full, refused at once), abandoned (request gone before its turn).",
                &["outcome"],
            ),
            logins_throttled: counters(
                r,
                "storefront_logins_throttled_total",
                "Login attempts refused before their password was checked, by the limit that refused them.",
                &["limit"],
            ),
            registrations: counters(
                r,
                "storefront_registrations_total",
                "Registrations by outcome: created, duplicate (the address had an account), throttled (its client address was past its limit).",
                &["outcome"],
            ),
            searches: counters(
                r,
                "storefront_catalog_searches_total",
                "Catalog searches by where they were answered: index, or database (index building, behind or off).",
                &["source"],
            ),
            listings: counters(
                r,
                "storefront_catalog_listings_total",
                "Catalog pages without a search by where their order came from: index (the listings kept beside it), or database (index building, behind or off).",
                &["source"],
            ),
            search_index: gauges(
                r,
                "storefront_search_index",
                "The search index: serving (1 when searches use it), books (indexed), behind_changes (feed rows not applied).",
                &["figure"],
            ),
            search_index_behind_seconds: register(
                r,
                Gauge::new(
                    "storefront_search_index_behind_seconds",
                    "Seconds since the search index last held every change the feed showed.",
                )
                .expect("valid metric"),
            ),
            mails: counters(
                r,
                "storefront_mails_total",
                "Mail delivery attempts by this replica's sender: sent, retry (the server refused or was unreachable; tried again later), dead (given up: a permanent refusal or MAIL_MAX_ATTEMPTS tries).",
                &["outcome"],
            ),
            outbox: gauges(
                r,
                "storefront_outbox_mails",
                "Mail in the outbox by state, counted by this replica's sender: pending (not yet delivered) and dead (given up, needs an operator).",
                &["state"],
            ),
            password_resets: counters(
                r,
                "storefront_password_resets_total",
                "Password resets: requested (a link was mailed), unknown (no such account; nothing sent), account_limited (no mail: the account's hourly limit), throttled (429: the client address's limit), completed (a new password set).",
                &["outcome"],
            ),
            address_confirmations: counters(
                r,
                "storefront_address_confirmations_total",
                "Address confirmation: sent (a link mailed again on request; registration's are counted as registrations), limited (none: the account's hourly limit), already_confirmed, confirmed (a link used).",
                &["outcome"],
            ),
            registry,
        };
        let build_info = gauges(
            &metrics.registry,
            "storefront_build_info",
            "Always 1; labels say which version and replica this is.",
            &["version", "replica"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), replica])
            .set(1);
        // Every outcome from the first scrape (a rule's rate of a series that
        // appears only with the first registration would miss it).
        for outcome in ["created", "duplicate", "throttled"] {
            metrics.registrations.with_label_values(&[outcome]);
        }
        for source in ["index", "database"] {
            metrics.searches.with_label_values(&[source]);
            metrics.listings.with_label_values(&[source]);
        }
        Arc::new(metrics)
    }

    pub fn order_event(&self, event: OrderEvent) {
        self.orders.with_label_values(&[event.label()]).inc();
    }

    pub fn orders_expired(&self, count: u64) {
        self.orders
            .with_label_values(&[OrderEvent::Expired.label()])
            .inc_by(count);
    }

    pub fn password_hash(&self, outcome: &str) {
        self.password_hashes.with_label_values(&[outcome]).inc();
    }

    pub fn login_throttled(&self, limit: &str) {
        self.logins_throttled.with_label_values(&[limit]).inc();
    }

    pub fn registration(&self, outcome: &str) {
        self.registrations.with_label_values(&[outcome]).inc();
    }

    pub fn mail(&self, outcome: &str) {
        self.mails.with_label_values(&[outcome]).inc();
    }

    pub fn outbox(&self, pending: i64, dead: i64) {
        self.outbox.with_label_values(&["pending"]).set(pending);
        self.outbox.with_label_values(&["dead"]).set(dead);
    }

    pub fn password_reset(&self, outcome: &str) {
        self.password_resets.with_label_values(&[outcome]).inc();
    }

    pub fn address_confirmation(&self, outcome: &str) {
        self.address_confirmations
            .with_label_values(&[outcome])
            .inc();
    }

    /// A catalog page answered by `source`: a listing (no search) or a search.
    pub fn catalog_page(&self, listing: bool, source: &str) {
        let counter = if listing {
            &self.listings
        } else {
            &self.searches
        };
        counter.with_label_values(&[source]).inc();
    }

    pub fn search_index(&self, figures: SearchFigures) {
        let set = |figure: &str, value: i64| {
            self.search_index.with_label_values(&[figure]).set(value);
        };
        set("serving", i64::from(figures.serving));
        set("books", figures.books as i64);
        set("behind_changes", figures.behind_changes as i64);
        self.search_index_behind_seconds.set(figures.behind_seconds);
    }

    pub fn session_store_error(&self) {
        self.session_store_errors.inc();
    }

    pub fn subscription_up(&self, channel: &str, up: bool) {
        self.subscriptions_up
            .with_label_values(&[channel])
            .set(i64::from(up));
    }

    /// `reason`: closed, silent or listener (`shared::redis::SubscriptionEnd`).
    pub fn subscription_ended(&self, channel: &str, reason: &str) {
        self.subscriptions_ended
            .with_label_values(&[channel, reason])
            .inc();
    }

    fn record_pools(&self, pools: &Pools) {
        let DbFigures { pool: db, replaced } = (pools.db)();
        let counted = self.db_pools_replaced.get();
        self.db_pools_replaced
            .inc_by(replaced.saturating_sub(counted));
        let idle = db.num_idle() as i64;
        let set = |gauge: &IntGaugeVec, state: &str, value: i64| {
            gauge.with_label_values(&[state]).set(value);
        };
        set(&self.db_pool, "idle", idle);
        set(&self.db_pool, "in_use", db.size() as i64 - idle);
        set(
            &self.db_pool,
            "max",
            db.options().get_max_connections() as i64,
        );
        if let Some(redis) = &pools.redis {
            let status = redis.status();
            set(&self.redis_pool, "idle", status.available as i64);
            set(
                &self.redis_pool,
                "in_use",
                status.size as i64 - status.available as i64,
            );
            set(&self.redis_pool, "max", status.max_size as i64);
        }
    }
}

/// Decrements the in-flight gauge even if the handler's future is dropped.
struct InFlight(IntGauge);

impl InFlight {
    fn start(gauge: &IntGauge) -> Self {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The layer that counts and times every request under its route pattern
/// (not its raw path, which would give every book its own series). Inside the
/// router, where the matched route is known.
pub fn track(metrics: Arc<Metrics>) -> AfterResponseLayer<TrackRequests> {
    AfterResponseLayer::new(TrackRequests(metrics))
}

#[derive(Debug, Clone)]
pub struct TrackRequests(Arc<Metrics>);

impl OnResponse for TrackRequests {
    type Pending = Measuring;

    fn on_request(&self, request: &Request) -> Measuring {
        let metrics = &self.0;
        Measuring {
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string()),
            method: request.method().to_string(),
            in_flight: InFlight::start(&metrics.http_in_flight),
            started: Instant::now(),
            metrics: Arc::clone(metrics),
        }
    }
}

/// A request being answered; dropped unfinished if the client goes away.
pub struct Measuring {
    route: String,
    method: String,
    in_flight: InFlight,
    started: Instant,
    metrics: Arc<Metrics>,
}

impl Finish for Measuring {
    fn finish(self, response: Response) -> Response {
        let Measuring {
            route,
            method,
            in_flight,
            started,
            metrics,
        } = self;
        metrics
            .http_duration
            .with_label_values(&[&method, &route])
            .observe(started.elapsed().as_secs_f64());
        metrics
            .http_requests
            .with_label_values(&[&method, &route, response.status().as_str()])
            .inc();
        drop(in_flight);
        response
    }
}

/// The database's figures: the pool in use (it is replaced when it stalls),
/// and how many times it was.
pub struct DbFigures {
    pub pool: AnyPool,
    pub replaced: u64,
}

/// What `/metrics` reads at each scrape: the pools' connections and where
/// the search index stands.
#[derive(Clone)]
pub struct Pools {
    pub db: Arc<dyn Fn() -> DbFigures + Send + Sync>,
    pub redis: Option<deadpool_redis::Pool>,
    pub search: Option<Arc<dyn Fn() -> SearchFigures + Send + Sync>>,
}

pub fn router(metrics: Arc<Metrics>, pools: Pools) -> Router {
    Router::new()
        .route("/metrics", get(serve))
        .with_state((metrics, pools))
}

async fn serve(State((metrics, pools)): State<(Arc<Metrics>, Pools)>) -> Response {
    metrics.record_pools(&pools);
    if let Some(figures) = &pools.search {
        metrics.search_index(figures());
    }
    let mut body = Vec::new();
    match TextEncoder::new().encode(&metrics.registry.gather(), &mut body) {
        Ok(()) => ([("content-type", prometheus::TEXT_FORMAT)], body).into_response(),
        Err(err) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            err.to_string(),
        )
            .into_response(),
    }
}
