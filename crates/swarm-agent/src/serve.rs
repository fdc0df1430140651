//! `swarm-agent serve`, on every node: wiring only. It starts `/metrics` and
//! `/status` on one port (`observe::routes`), the termination watcher
//! (`node::lifecycle`) and, on a booting node of an Auto Scaling group, the
//! launch gate (`node::readiness`). On managers it also answers the agent API
//! (`agent_api`), and runs the leader's reconciler (`cluster::reconcile`),
//! woken by engine events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt;
use tokio::sync::Notify;
use tracing::{debug, error, info, warn};

use crate::agent_api::client::Peers;
use crate::agent_api::fleet;
use crate::agent_api::{self, ApiState};
use crate::backoff::Backoff;
use crate::cli::ServeArgs;
use crate::cluster::reconcile::{Policy, Reconciler, reconcile_loop};
use crate::cluster::renew_auth::Renewer;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::node::lifecycle;
use crate::observe::actions::ActionLog;
use crate::observe::events::{Events, Kind};
use crate::observe::metrics::Metrics;
use crate::observe::routes::{self, Observe};
use crate::store::token_store::TokenStore;

/// Starts every duty and server of `serve`; the handle is the reconciler's
/// loop (the servers stop with the process).
async fn start(
    engine: Engine,
    args: &ServeArgs,
    dry_run: bool,
) -> Result<tokio::task::JoinHandle<()>> {
    let store = match args.cluster.store.token_store {
        Some(_) => Some(Arc::new(TokenStore::open(&args.cluster.store).await?)),
        None => None,
    };
    // Without a secret the API refuses every call (workers ask managers only).
    let secret = crate::store::secret::resolve_secret(&args.cluster.secret, store.as_deref())
        .await?
        .unwrap_or_default();
    if secret.is_empty() {
        warn!(
            "no agent API secret (flags or token store): this node's agent API refuses every call"
        );
    }
    let metrics = Metrics::new();
    let events = Events::new(metrics.clone(), ActionLog::default());
    events.done(
        Kind::Start,
        &crate::node::hostname(),
        if dry_run {
            "agent serving (dry-run: it changes nothing)"
        } else {
            "agent serving"
        },
    );
    let policy = Policy {
        down_grace: args.down_grace,
        rebalance_label: args.rebalance_label.clone(),
        rebalance_interval: args.rebalance_interval,
        reschedule_after: args.reschedule_after,
        dry_run,
    };
    let metrics_listener = bind(&args.metrics_addr).await?;
    let api_listener = bind(&args.api_addr).await?;
    let metrics_addr = metrics_listener
        .local_addr()
        .map_err(Error::io(args.metrics_addr.clone()))?;
    let api_addr = api_listener
        .local_addr()
        .map_err(Error::io(args.api_addr.clone()))?;

    let api_state = Arc::new(ApiState {
        engine: engine.clone(),
        secret,
        dry_run,
        worker_label_keys: args.worker_label_keys.clone(),
        events: events.clone(),
    });
    let leaving = Arc::new(AtomicBool::new(false));
    let observe = Arc::new(Observe {
        engine: engine.clone(),
        metrics: metrics.clone(),
        leaving: leaving.clone(),
        lb_check: args.lb_check_url.clone(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))?,
    });
    tokio::spawn(serve_http(metrics_listener, routes::router(observe)));
    let relay = crate::node::credentials_relay::RelayState::new(
        engine.clone(),
        &args.backup_credentials,
        args.cluster.store.aws_region.as_deref(),
        events.clone(),
    )
    .await?;
    let api_app = agent_api::router(api_state.clone())
        .merge(fleet::router(api_state.clone()))
        .merge(crate::node::credentials_relay::router(Arc::new(relay)));
    tokio::spawn(serve_api(api_listener, api_app));
    if args.lifecycle.imds.enabled() {
        tokio::spawn(
            lifecycle::Watcher {
                engine: engine.clone(),
                leaving: leaving.clone(),
                args: args.lifecycle.clone(),
                cluster: args.cluster.clone(),
                metrics: metrics.clone(),
                events: events.clone(),
                dry_run,
            }
            .run(),
        );
    }

    tokio::spawn(
        crate::cluster::image_prune::Pruner {
            engine: engine.clone(),
            every: args.image_prune_interval,
            older_than: args.image_prune_age,
            metrics: metrics.clone(),
            events: events.clone(),
            dry_run,
        }
        .run(),
    );

    if args.lifecycle.imds.enabled() && args.lifecycle.launch_hook.is_some() {
        tokio::spawn(
            crate::node::readiness::LaunchGate {
                engine: engine.clone(),
                args: args.lifecycle.clone(),
                cluster: args.cluster.clone(),
                events: events.clone(),
                dry_run,
            }
            .run(),
        );
    }

    if args.lifecycle.imds.enabled() && args.lifecycle.asg_name.is_some() {
        tokio::spawn(crate::node::health::watch(
            engine.clone(),
            args.lifecycle.clone(),
            args.cluster.store.aws_region.clone(),
            leaving.clone(),
            metrics.clone(),
            events.clone(),
            dry_run,
        ));
    }

    let wake = Arc::new(Notify::new());
    tokio::spawn(watch_events(engine.clone(), wake.clone()));
    // Every node's agent listens on the same API port: the leader asks the
    // others there for their replicas' CPU.
    let peers = (!api_state.secret.is_empty())
        .then(|| Peers::new(api_state.secret.clone(), api_addr.port()))
        .transpose()?;
    let renewer = Renewer::new(engine.clone(), &args.registry_auth, events.clone(), dry_run)?;
    let reconciler = Reconciler::new(engine, policy, metrics)
        .renewing_registry_auth(renewer)
        .publishing_to(store)
        .recording_to(events)
        .asking_peers(peers);
    let task = tokio::spawn(reconcile_loop(reconciler, args.interval, wake));
    info!(%metrics_addr, %api_addr, "serving: reconciler, /metrics, /status, agent API, /fleet");
    Ok(task)
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(Error::io(format!("listening on {addr}")))
}

async fn serve_http(listener: tokio::net::TcpListener, app: Router) {
    if let Err(e) = axum::serve(listener, app).await {
        error!(error = %e, "HTTP server stopped");
    }
}

/// The API needs each caller's address: a node may act on itself only.
async fn serve_api(listener: tokio::net::TcpListener, app: Router) {
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        error!(error = %e, "agent API server stopped");
    }
}

/// `serve` until SIGINT/SIGTERM.
pub async fn run(engine: Engine, args: &ServeArgs, dry_run: bool) -> Result<()> {
    let reconciling = start(engine, args, dry_run).await?;
    shutdown_signal().await;
    info!("stopping on signal");
    reconciling.abort();
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Wake the reconciler on node and service events; reconnect with backoff
/// when the stream breaks (engine restart).
async fn watch_events(engine: Engine, wake: Arc<Notify>) {
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut failures = 0;
    loop {
        let filters = std::collections::HashMap::from([("type", vec!["node", "service"])]);
        let opts = EventsOptionsBuilder::default().filters(&filters).build();
        let mut stream = engine.docker().events(Some(opts));
        while let Some(event) = stream.next().await {
            match event {
                Ok(ev) => {
                    failures = 0;
                    debug!(kind = ?ev.typ, action = ?ev.action, "engine event");
                    wake.notify_one();
                }
                Err(e) => {
                    warn!(error = %e, "engine event stream broke");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff.delay(failures)).await;
        failures += 1;
    }
}
