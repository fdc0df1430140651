//! `swarm-agent serve`, on every node: `/metrics` + `/status` on one port,
//! the termination watcher (lifecycle.rs) and, on a booting node of an Auto
//! Scaling group, the launch gate (readiness.rs). On managers it also answers the
//! agent API; and on the raft leader only (one actor, so one join triggers
//! one rebalance) it republishes tokens and managers to the store, removes
//! long-Down nodes, rebalances and autoscales opted-in services' replicas
//! (autoscaler.rs), and renews the registry auth stored in services on ECR
//! (registry_auth.rs). Passes run on a timer and on engine events;
//! leadership is checked on every pass, so a new leader takes over by itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tracing::{debug, error, info, warn};

use crate::actions::ActionLog;
use crate::api::{self, ApiState};
use crate::autoscale::Evaluation;
use crate::autoscaler::Autoscaler;
use crate::backoff::Backoff;
use crate::cli::ServeArgs;
use crate::cpu::{self, Peers};
use crate::decide::{self, RebalanceState, Removal, UpdateOrder};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::fleet;
use crate::lifecycle;
use crate::metrics::Metrics;
use crate::publish;
use crate::registry_auth::Renewer;
use crate::status::{self, Report};
use crate::token_store::TokenStore;
use bollard::models::NodeSpecRoleEnum as NodeRole;

/// Settings of the reconciler, separate from the CLI so tests can build one.
#[derive(Debug, Clone)]
pub struct Policy {
    pub down_grace: Duration,
    pub rebalance_label: String,
    pub rebalance_interval: Duration,
    pub dry_run: bool,
}

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone)]
pub struct PassOutcome {
    pub removed: Vec<String>,
    pub rebalanced: Option<String>,
    pub joined: Vec<String>,
    /// Each autoscaled service's evaluation (and what was done about it).
    pub autoscaled: Vec<(String, Evaluation)>,
    /// Services whose update order changed, with the new order.
    pub reordered: Vec<(String, &'static str)>,
    /// Services whose stored registry auth was renewed.
    pub registry_auth_renewed: Vec<String>,
}

pub struct Reconciler {
    engine: Engine,
    policy: Policy,
    metrics: Metrics,
    rebalance: RebalanceState,
    store: Option<Arc<TokenStore>>,
    actions: ActionLog,
    autoscaler: Autoscaler,
    registry_auth: Renewer,
}

impl Reconciler {
    pub fn new(engine: Engine, policy: Policy, metrics: Metrics) -> Self {
        let actions = ActionLog::default();
        Reconciler {
            autoscaler: Autoscaler::new(
                engine.clone(),
                None,
                metrics.clone(),
                actions.clone(),
                policy.dry_run,
            ),
            registry_auth: Renewer::off(engine.clone(), metrics.clone()),
            engine,
            policy,
            metrics,
            rebalance: RebalanceState::default(),
            store: None,
            actions,
        }
    }

    /// Actions are recorded here, for the fleet page.
    pub fn recording_to(mut self, actions: ActionLog) -> Self {
        self.autoscaler.record_to(actions.clone());
        self.actions = actions;
        self
    }

    /// The autoscaler asks other nodes' agents for their replicas' CPU with
    /// these; without, only this node's replicas are measured.
    pub fn asking_peers(mut self, peers: Option<Peers>) -> Self {
        self.autoscaler.ask_peers(peers);
        self
    }

    /// The leader keeps the registry auth stored in services fresh with this.
    pub fn renewing_registry_auth(mut self, renewer: Renewer) -> Self {
        self.registry_auth = renewer;
        self
    }

    /// The leader republishes tokens and managers to this store.
    pub fn publishing_to(mut self, store: Option<Arc<TokenStore>>) -> Self {
        self.store = store;
        self
    }

    /// Look once, act at most a little, and only as the leader: republish,
    /// remove long-Down nodes, rebalance one service if a node joined.
    /// Errors of single actions are logged and counted, not fatal: the next
    /// pass tries again. Workers and followers only observe.
    pub async fn pass(&mut self) -> Result<PassOutcome> {
        let local = self.engine.local_swarm().await?;
        if !local.is_manager {
            self.metrics.role(false, false);
            self.registry_auth.step_down();
            return Ok(PassOutcome::default());
        }
        let report = status::snapshot(&self.engine).await?;
        self.metrics.observe(&report);
        let leader = report
            .nodes
            .iter()
            .any(|n| n.id == report.node_id && n.leader);
        self.metrics.role(true, leader);
        let mut outcome = PassOutcome {
            joined: self.rebalance.observe_ready(&report.nodes, Instant::now()),
            ..Default::default()
        };
        if !leader {
            self.registry_auth.step_down();
            return Ok(outcome);
        }
        for id in &outcome.joined {
            info!(node = %id, "node became ready: opted-in services will be rebalanced");
            self.actions.record(
                "join",
                &hostname_of(&report, id),
                "became ready: opted-in services will be rebalanced",
            );
        }
        self.republish().await;
        outcome.removed = self.remove_down_nodes(&report).await;
        outcome.rebalanced = self.rebalance_one(&report).await;
        outcome.autoscaled = self.autoscaler.pass(&report).await;
        outcome.reordered = self.keep_updates_moving(&report).await;
        outcome.registry_auth_renewed = self.registry_auth.pass(&report).await;
        Ok(outcome)
    }

    /// Keep what joining and leaving nodes read current: a replaced manager
    /// or a token rotated by hand reaches the store within one pass.
    async fn republish(&self) {
        let Some(store) = &self.store else { return };
        let quiet = publish::Report::ChangesOnly;
        match publish::swarm_facts(&self.engine, store, self.policy.dry_run, quiet).await {
            Ok(changed) if !changed.is_empty() => {
                self.metrics.action("publish");
                let keys: Vec<&str> = changed.iter().map(|k| k.name()).collect();
                self.actions
                    .record("republish", "token store", keys.join(", "));
                info!(keys = ?changed.iter().map(|k| k.name()).collect::<Vec<_>>(), "republished to the token store");
            }
            Ok(_) => {}
            Err(e) => {
                self.metrics.failure("publish");
                self.actions
                    .record("republish failed", "token store", e.to_string());
                warn!(error = %e, "could not republish to the token store");
            }
        }
    }

    async fn remove_down_nodes(&self, report: &Report) -> Vec<String> {
        let now = OffsetDateTime::now_utc();
        let mut removed = Vec::new();
        for node in &report.nodes {
            match decide::removal(
                node,
                &report.nodes,
                &report.node_id,
                now,
                self.policy.down_grace,
            ) {
                Removal::Remove { demote_first } => {
                    if self
                        .remove_node(&node.id, &node.hostname, demote_first)
                        .await
                    {
                        removed.push(node.id.clone());
                    }
                }
                Removal::WithinGrace { remaining } => {
                    debug!(node = %node.id, ?remaining, "node is Down; within grace period")
                }
                Removal::WouldLoseQuorum => {
                    warn!(node = %node.id, "Down manager kept: removing it needs a quorum the swarm does not have")
                }
                Removal::NotDown | Removal::IsSelfOrLeader => {}
            }
        }
        removed
    }

    async fn remove_node(&self, id: &str, hostname: &str, demote_first: bool) -> bool {
        let why = format!("Down for longer than {:?}", self.policy.down_grace);
        if self.policy.dry_run {
            info!(node = %id, %hostname, reason = %why, demote_first, "dry-run: would remove node");
            return false;
        }
        let result = async {
            if demote_first {
                self.engine
                    .update_node(id, |s| s.role = Some(NodeRole::WORKER))
                    .await?;
            }
            self.engine.remove_node(id, true).await
        }
        .await;
        match result {
            Ok(()) => {
                self.metrics.action("remove");
                self.actions.record("remove", hostname, &why);
                info!(node = %id, %hostname, reason = %why, "removed node");
                true
            }
            Err(e) => {
                self.metrics.failure("remove");
                self.actions
                    .record("remove failed", hostname, e.to_string());
                error!(node = %id, error = %e, "could not remove Down node");
                false
            }
        }
    }

    async fn rebalance_one(&mut self, report: &Report) -> Option<String> {
        let now = Instant::now();
        let svc = decide::next_rebalance(
            &report.services,
            &self.policy.rebalance_label,
            &self.rebalance,
            now,
            self.policy.rebalance_interval,
        )?;
        let name = svc.name.clone();
        // Recorded even on failure or dry-run, so a broken service cannot
        // monopolise the rate limit or spam the log every pass.
        self.rebalance.record(&svc.id, now);
        if self.policy.dry_run {
            info!(service = %name, "dry-run: would force-update service to spread it onto the new node");
            return None;
        }
        let result = async {
            let raw = self.engine.services().await?;
            let service = raw
                .iter()
                .find(|s| s.id.as_deref() == Some(svc.id.as_str()))
                .ok_or(Error::Refused {
                    action: "rebalance".into(),
                    reason: format!("service {name} vanished"),
                })?;
            self.engine.force_update_service(service).await
        }
        .await;
        match result {
            Ok(()) => {
                self.metrics.action("rebalance");
                self.actions
                    .record("rebalance", &name, "forced update after a node joined");
                info!(service = %name, "rebalancing: forced update after a node joined, tasks spread onto it");
                Some(name)
            }
            Err(e) => {
                self.metrics.failure("rebalance");
                self.actions
                    .record("rebalance failed", &name, e.to_string());
                error!(service = %name, error = %e, "rebalance failed");
                None
            }
        }
    }
}

impl Reconciler {
    /// Gives each capped service the update order that can make progress
    /// with the nodes' free slots (decide::update_order): stop-first, marked
    /// with the agent's label, while every slot is taken; start-first again
    /// once a slot is free. A stalled start-first update resumes.
    async fn keep_updates_moving(&self, report: &Report) -> Vec<(String, &'static str)> {
        let mut changed = Vec::new();
        for svc in &report.services {
            let Some(order) = decide::update_order(svc, &report.nodes) else {
                continue;
            };
            if svc.update_order == order.as_str() {
                continue;
            }
            let why = match order {
                UpdateOrder::StopFirst => "no node has a free slot below max_replicas_per_node",
                UpdateOrder::StartFirst => "a node has a free slot again",
            };
            if self.policy.dry_run {
                info!(service = %svc.name, order = order.as_str(), why, "dry-run: would change the update order");
                continue;
            }
            let start_first = order == UpdateOrder::StartFirst;
            let label = (decide::ORDER_LABEL, (!start_first).then_some("stop-first"));
            let result = match self.raw_service(&svc.id).await {
                Ok(service) => {
                    self.engine
                        .set_update_order(&service, start_first, label)
                        .await
                }
                Err(e) => Err(e),
            };
            let detail = format!("updates {}: {why}", order.as_str());
            match result {
                Ok(()) => {
                    self.metrics.action("update-order");
                    self.actions.record("update order", &svc.name, detail);
                    info!(service = %svc.name, order = order.as_str(), why, "update order changed");
                    changed.push((svc.name.clone(), order.as_str()));
                }
                Err(e) => {
                    self.metrics.failure("update-order");
                    self.actions
                        .record("update order failed", &svc.name, e.to_string());
                    error!(service = %svc.name, error = %e, "changing the update order failed");
                }
            }
        }
        changed
    }

    async fn raw_service(&self, id: &str) -> Result<bollard::models::Service> {
        self.engine
            .services()
            .await?
            .into_iter()
            .find(|s| s.id.as_deref() == Some(id))
            .ok_or(Error::Refused {
                action: "update order".into(),
                reason: format!("service {id} vanished"),
            })
    }
}

/// Handles to a running `serve`, mainly for tests.
pub struct Running {
    pub metrics_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

pub async fn start(engine: Engine, args: &ServeArgs, dry_run: bool) -> Result<Running> {
    let store = match args.cluster.store.token_store {
        Some(_) => Some(Arc::new(TokenStore::open(&args.cluster.store).await?)),
        None => None,
    };
    // Without a secret the API refuses every call (workers ask managers only).
    let secret = api::resolve_secret(&args.cluster.secret, store.as_deref())
        .await?
        .unwrap_or_default();
    if secret.is_empty() {
        warn!(
            "no agent API secret (flags or token store): this node's agent API refuses every call"
        );
    }
    let metrics = Metrics::new();
    let actions = ActionLog::default();
    actions.record(
        "start",
        &hostname(),
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
        metrics: metrics.clone(),
        dry_run,
        worker_label_keys: args.worker_label_keys.clone(),
        actions: actions.clone(),
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
    tokio::spawn(serve_http(metrics_listener, observe_router(observe)));
    let relay = crate::credentials_relay::RelayState::new(
        engine.clone(),
        &args.backup_credentials,
        args.cluster.store.aws_region.as_deref(),
        metrics.clone(),
    )
    .await?;
    let api_app = api::router(api_state.clone())
        .merge(cpu::router(api_state.clone()))
        .merge(fleet::router(api_state.clone()))
        .merge(crate::credentials_relay::router(Arc::new(relay)));
    tokio::spawn(serve_api(api_listener, api_app));
    if args.lifecycle.imds.enabled() {
        tokio::spawn(
            lifecycle::Watcher {
                engine: engine.clone(),
                leaving: leaving.clone(),
                args: args.lifecycle.clone(),
                cluster: args.cluster.clone(),
                metrics: metrics.clone(),
                actions: actions.clone(),
                dry_run,
            }
            .run(),
        );
    }

    tokio::spawn(
        crate::image_prune::Pruner {
            engine: engine.clone(),
            every: args.image_prune_interval,
            older_than: args.image_prune_age,
            metrics: metrics.clone(),
            actions: actions.clone(),
            dry_run,
        }
        .run(),
    );

    if args.lifecycle.imds.enabled() && args.lifecycle.launch_hook.is_some() {
        tokio::spawn(
            crate::readiness::LaunchGate {
                engine: engine.clone(),
                args: args.lifecycle.clone(),
                cluster: args.cluster.clone(),
                metrics: metrics.clone(),
                actions: actions.clone(),
                dry_run,
            }
            .run(),
        );
    }

    if args.lifecycle.imds.enabled() && args.lifecycle.asg_name.is_some() {
        tokio::spawn(crate::node_health::watch(
            engine.clone(),
            args.lifecycle.clone(),
            args.cluster.store.aws_region.clone(),
            leaving.clone(),
            metrics.clone(),
            actions.clone(),
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
    let renewer = Renewer::new(
        engine.clone(),
        &args.registry_auth,
        metrics.clone(),
        actions.clone(),
        dry_run,
    )?;
    let reconciler = Reconciler::new(engine, policy, metrics)
        .renewing_registry_auth(renewer)
        .publishing_to(store)
        .recording_to(actions)
        .asking_peers(peers);
    let task = tokio::spawn(reconcile_loop(reconciler, args.interval, wake));
    info!(%metrics_addr, %api_addr, "serving: reconciler, /metrics, /status, agent API, /fleet");
    Ok(Running {
        metrics_addr,
        api_addr,
        task,
    })
}

/// A node's name as the swarm shows it, for the action list.
fn hostname_of(report: &Report, id: &str) -> String {
    report
        .nodes
        .iter()
        .find(|n| n.id == id && !n.hostname.is_empty())
        .map_or_else(|| id.to_string(), |n| n.hostname.clone())
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this node".into())
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
    let running = start(engine, args, dry_run).await?;
    shutdown_signal().await;
    info!("stopping on signal");
    running.task.abort();
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

async fn reconcile_loop(mut r: Reconciler, interval: Duration, wake: Arc<Notify>) {
    loop {
        match r.pass().await {
            Ok(o) => debug!(?o, "reconcile pass done"),
            Err(e) => {
                r.metrics.failure("reconcile");
                warn!(error = %e, "reconcile pass failed");
            }
        }
        // Events come in bursts (a node update fires several); a short
        // settle time turns a burst into one pass.
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = wake.notified() => tokio::time::sleep(Duration::from_millis(500)).await,
        }
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

struct Observe {
    engine: Engine,
    metrics: Metrics,
    leaving: Arc<AtomicBool>,
    lb_check: Option<String>,
    http: reqwest::Client,
}

fn observe_router(state: Arc<Observe>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status_json))
        .route("/healthz", get(|| async { "ok" }))
        .route("/lb-health", get(lb_health))
        .with_state(state)
}

/// The load balancer's health check of this node: 503 from the moment the
/// node starts leaving (so the balancer stops sending before anything here
/// stops), and otherwise whatever --lb-check-url answers (the node's proxy).
/// Never the database: its outage must not take nodes out of the balancer.
async fn lb_health(State(s): State<Arc<Observe>>) -> (StatusCode, &'static str) {
    if s.leaving.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "leaving\n");
    }
    let Some(url) = &s.lb_check else {
        return (StatusCode::OK, "in service\n");
    };
    match s.http.get(url).send().await {
        Ok(r) if r.status().is_success() => (StatusCode::OK, "in service\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "local check failing\n"),
    }
}

async fn metrics(State(s): State<Arc<Observe>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// Fresh snapshot per request: the answer is never older than the call.
async fn status_json(State(s): State<Arc<Observe>>) -> impl IntoResponse {
    match status::snapshot(&s.engine).await {
        Ok(report) => {
            s.metrics.observe(&report);
            let code = if report.health == decide::Health::Down {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            (
                code,
                Json(serde_json::to_value(&report).expect("report serialises")),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "health": "down", "error": e.to_string() })),
        )
            .into_response(),
    }
}
