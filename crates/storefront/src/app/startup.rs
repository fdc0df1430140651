//! Building and running the application: `main` and every test go through
//! [`Application::build`], so tests exercise exactly what production runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tower_sessions::session_store::ExpiredDeletion;

use crate::app::config::Config;
use crate::app::state::{App, AppState};
use crate::db::{Db, bounded};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::shared::redis::redis_pool;
use crate::shared::session_store::{MEMORY_SWEEP_INTERVAL, MemoryStore, RedisStore, Store};
use crate::store::orders;

pub struct Application {
    state: AppState,
    sessions: Store,
    listener: TcpListener,
    metrics_listener: TcpListener,
}

impl Application {
    /// Connects (waiting for the database if needed), migrates, seeds when
    /// configured, and binds both listeners. Nothing is served yet.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        crate::mail::check_settings(&config.mail)?;
        let db = Db::connect(
            &config.database_url,
            config.database_max_connections,
            config.database_wait,
        )
        .await?;
        db.migrate().await?;
        if config.seed_demo_if_empty {
            let added = crate::seed::seed_if_empty(&db.pool()).await?;
            if added > 0 {
                tracing::info!(books = added, "seeded the demo catalog into an empty shop");
            }
        }
        let redis = match &config.redis_url {
            Some(url) => Some(redis_pool(
                url,
                config.database_max_connections as usize * 2,
            )?),
            None => None,
        };
        let metrics = Metrics::new(&config.replica_id);
        let sessions = match (&redis, &config.redis_url) {
            (Some(pool), Some(url)) => {
                Store::Redis(RedisStore::new(pool.clone(), url, metrics.clone()))
            }
            _ => Store::Memory(MemoryStore::default()),
        };
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen_addr))?;
        let metrics_listener = TcpListener::bind(config.metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {} for metrics", config.metrics_addr))?;
        crate::password::warm_up().await;
        let csrf_key = csrf_key(&db).await?;
        let mailer = Mailer::new(&config.mail, link_origin(&config, &listener)?)?;
        let state = AppState(Arc::new(App::new(
            config,
            db,
            redis,
            csrf_key,
            sessions.clone(),
            mailer,
            metrics,
        )));
        Ok(Application {
            state,
            sessions,
            listener,
            metrics_listener,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then: readiness goes false, waits the
    /// configured drain time (so load balancers stop sending), stops accepting,
    /// and lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            state,
            sessions,
            listener,
            metrics_listener,
        } = self;
        let app = crate::web::app(state.clone(), sessions.clone());
        let pools = crate::metrics::Pools {
            db: {
                let db = state.db.clone();
                Arc::new(move || crate::metrics::DbFigures {
                    pool: db.pool(),
                    replaced: db.pools_replaced(),
                }) as Arc<dyn Fn() -> crate::metrics::DbFigures + Send + Sync>
            },
            redis: state.redis.clone(),
            search: state.search.clone().map(|search| {
                Arc::new(move || search.figures())
                    as Arc<dyn Fn() -> crate::metrics::SearchFigures + Send + Sync>
            }),
        };
        let metrics = crate::metrics::router(state.metrics.clone(), pools);
        let expiry = tokio::spawn(expire_orders_forever(state.clone()));
        let mail_sender = match state.config.mail.sender {
            true => Some(state.mailer.start_sender(
                state.db.clone(),
                &state.config.mail,
                &state.config.replica_id,
                state.metrics.clone(),
            )?),
            false => None,
        };
        let trusted = &state.config.trusted_proxies;
        if trusted.is_empty() {
            tracing::info!(
                "X-Forwarded-For is not believed from any peer (TRUSTED_PROXIES unset): each client is its TCP peer"
            );
        } else {
            tracing::info!(trusted = %trusted.describe(), "X-Forwarded-For is believed from these peers only (TRUSTED_PROXIES)");
        }
        let trusted_refresh = trusted.has_host_names().then(|| {
            tokio::spawn(crate::edge::trusted_proxies::refresh_trusted_forever(
                trusted.clone(),
            ))
        });
        let sweeper = match &sessions {
            Store::Memory(store) => Some(tokio::spawn(sweep_sessions_forever(store.clone()))),
            Store::Redis(_) => None,
        };
        let metrics_server =
            tokio::spawn(async move { axum::serve(metrics_listener, metrics).await });

        let drain_state = state.clone();
        let graceful = async move {
            shutdown.await;
            drain_state.begin_shutdown();
            tracing::info!(
                drain_ms = drain_state.config.shutdown_drain.as_millis() as u64,
                "shutting down: readiness is now false"
            );
            tokio::time::sleep(drain_state.config.shutdown_drain).await;
        };
        tracing::info!(addr = %listener.local_addr()?, replica = %state.config.replica_id, "storefront listening");
        crate::edge::serve::serve(
            listener,
            app,
            &state.config.http,
            &state.config.trusted_proxies,
            graceful,
        )
        .await;
        expiry.abort();
        if let Some(sender) = mail_sender {
            sender.abort();
        }
        if let Some(refresh) = trusted_refresh {
            refresh.abort();
        }
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        metrics_server.abort();
        tracing::info!("storefront stopped");
        Ok(())
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// What links in mail start with: PUBLIC_ORIGIN, else this listener as seen
/// from the same machine (the embedded default, `cargo run`).
fn link_origin(config: &Config, listener: &TcpListener) -> anyhow::Result<String> {
    if let Some(origin) = &config.public_origin {
        return Ok(origin.clone());
    }
    let addr = listener.local_addr()?;
    Ok(match addr.ip().is_unspecified() {
        true => format!("http://localhost:{}", addr.port()),
        false => format!("http://{addr}"),
    })
}

/// The key that signs anonymous CSRF cookies, shared by every replica through the database.
async fn csrf_key(db: &Db) -> anyhow::Result<tower_cookies::Key> {
    use crate::web::csrf;
    let stored =
        crate::store::secrets::get_or_create(&db.pool(), csrf::KEY_NAME, csrf::new_key_hex)
            .await
            .context("cannot read or create the CSRF signing key")?;
    csrf::key_from_hex(&stored)
}

/// The in-memory store's expired sessions are dropped here (Redis expires its own).
async fn sweep_sessions_forever(store: MemoryStore) {
    let mut tick = tokio::time::interval(MEMORY_SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        let _ = store.delete_expired().await;
    }
}

/// Every replica runs this: `orders::expire_due` is safe to run concurrently.
async fn expire_orders_forever(state: AppState) {
    let mut tick =
        tokio::time::interval(state.config.expiry_interval.max(Duration::from_millis(100)));
    loop {
        tick.tick().await;
        match bounded(orders::expire_due(&state.db.pool())).await {
            Ok(0) => {}
            Ok(n) => {
                state.metrics.orders_expired(n);
                state.catalog_changed().await;
                tracing::info!(orders = n, "expired unpaid orders and returned their stock");
            }
            Err(err) => tracing::warn!(error = %err, "could not expire orders this round"),
        }
    }
}

/// SIGTERM (Docker, systemd) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
