//! Real-engine tests: two dockerd instances in network namespaces (see
//! scripts/test-swarm-agent). Each test takes the shared lock and resets the
//! swarm to "manager alone, worker outside, no services" first.

mod common;

use std::time::Duration;

use base64::Engine as _;
use bollard::models::{LocalNodeState, TaskState};
use bollard::query_parameters::{LeaveSwarmOptionsBuilder, ListTasksOptionsBuilder};
use common::{Env, On, wait_for};
use swarm_agent::cluster::model::{Availability, NodeView};
use swarm_agent::cluster::reconcile::{Policy, Reconciler};
use swarm_agent::engine::Engine;
use swarm_agent::observe::metrics::Metrics;

fn read(dir: &str, key: &str) -> String {
    std::fs::read_to_string(format!("{dir}/{key}"))
        .unwrap()
        .trim()
        .to_string()
}

async fn worker_state(env: &Env) -> LocalNodeState {
    env.engine(On::Worker)
        .await
        .local_swarm()
        .await
        .unwrap()
        .state
}

/// The tasks of `service` that the swarm wants running.
async fn wanted_tasks(env: &Env, service: &str) -> Vec<bollard::models::Task> {
    let manager = env.engine(On::Manager).await;
    let filters = std::collections::HashMap::from([
        ("service", vec![service]),
        ("desired-state", vec!["running"]),
    ]);
    let opts = ListTasksOptionsBuilder::default().filters(&filters).build();
    manager.docker().list_tasks(Some(opts)).await.unwrap()
}

/// Node ids running a task of `service` right now.
async fn running_nodes(env: &Env, service: &str) -> Vec<String> {
    wanted_tasks(env, service)
        .await
        .into_iter()
        .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        .filter_map(|t| t.node_id)
        .collect()
}

/// What the swarm says of each of `service`'s tasks that it wants running.
async fn task_errors(env: &Env, service: &str) -> Vec<String> {
    let tasks = wanted_tasks(env, service).await;
    tasks.into_iter().filter_map(|t| t.status?.err).collect()
}

/// `join` with tokens from `store`, no instance metadata, 30 s to finish, and `extra`.
fn join_args<'a>(store: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    join_within(store, "30s", extra)
}

fn join_within<'a>(store: &'a str, deadline: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "join",
        "--token-store",
        store,
        "--imds",
        "off",
        "--deadline",
        deadline,
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
async fn init_is_idempotent_publishes_tokens_and_rotates_the_worker_token() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let dir = env.tokens_dir();
    let store = format!("file:{dir}");
    let manager = env.engine(On::Manager).await;
    let swarm = manager.inspect_swarm().await.unwrap();
    let tokens = swarm.join_tokens.clone().unwrap();

    assert_eq!(read(&dir, "worker-token"), tokens.worker.clone().unwrap());
    assert_eq!(read(&dir, "manager-token"), tokens.manager.clone().unwrap());
    assert_eq!(read(&dir, "managers"), format!("{}:2377", env.manager_ip));
    assert_eq!(read(&dir, "cluster-id"), swarm.id.clone().unwrap());

    let again = env.agent(On::Manager, &["init", "--token-store", &store]);
    again.ok();
    again.says("swarm already initialised");
    again.says("already published, unchanged");
    assert_eq!(
        manager.inspect_swarm().await.unwrap().id,
        swarm.id,
        "the same swarm"
    );

    let dry = env.agent(
        On::Manager,
        &[
            "--dry-run",
            "init",
            "--token-store",
            &store,
            "--rotate-worker-token",
        ],
    );
    dry.ok();
    assert_eq!(
        read(&dir, "worker-token"),
        tokens.worker.clone().unwrap(),
        "dry-run rotates nothing"
    );

    env.agent(
        On::Manager,
        &["init", "--token-store", &store, "--rotate-worker-token"],
    )
    .ok();
    let rotated = manager.inspect_swarm().await.unwrap().join_tokens.unwrap();
    assert_ne!(rotated.worker, tokens.worker, "worker token rotated");
    assert_eq!(rotated.manager, tokens.manager, "manager token untouched");
    assert_eq!(
        read(&dir, "worker-token"),
        rotated.worker.unwrap(),
        "new token republished"
    );

    // init on a fresh engine in dry-run mode creates nothing.
    let dry_init = env.agent(
        On::Worker,
        &[
            "--dry-run",
            "init",
            "--token-store",
            &format!("file:{}/unused", env.work.display()),
        ],
    );
    dry_init.ok();
    dry_init.says("would initialise");
    assert_eq!(worker_state(&env).await, LocalNodeState::INACTIVE);
}

#[tokio::test]
async fn join_stops_at_once_on_an_invalid_token() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let bad = env.work.join("bad-tokens");
    std::fs::create_dir_all(&bad).unwrap();
    let good = read(&env.tokens_dir(), "worker-token");
    // Same cluster CA digest, wrong secret: what a stale token looks like.
    let wrong = format!(
        "{}{}",
        &good[..good.len() - 6],
        if good.ends_with("aaaaaa") {
            "bbbbbb"
        } else {
            "aaaaaa"
        }
    );
    std::fs::write(bad.join("worker-token"), wrong).unwrap();
    std::fs::write(bad.join("managers"), format!("{}:2377", env.manager_ip)).unwrap();
    let store = format!("file:{}", bad.display());

    let run = env.agent(
        On::Worker,
        &join_within(&store, "5m", &["--token-wait", "5s"]),
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("waiting for the managers to publish a new one"),
        "a rejected token is re-read from the store for --token-wait: {}",
        run.stderr
    );
    run.says("rejected the join token");
    assert!(
        run.took < Duration::from_secs(60),
        "must not retry a bad token until the 5m deadline: {:?}",
        run.took
    );
    assert_eq!(worker_state(&env).await, LocalNodeState::INACTIVE);
}

#[tokio::test]
async fn join_fails_clearly_when_no_manager_answers() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let store = env.store.clone();
    // .77 and .78 exist on no namespace: nothing answers there.
    let run = env.agent(
        On::Worker,
        &join_within(
            &store,
            "4s",
            &[
                "--manager",
                "10.231.0.77,10.231.0.78:2377",
                "--connect-timeout",
                "500ms",
            ],
        ),
    );
    run.fails_saying("no swarm manager could be joined");
    assert!(
        run.stderr.contains("10.231.0.77") && run.stderr.contains("10.231.0.78"),
        "{}",
        run.stderr
    );
    assert!(
        run.took < Duration::from_secs(20),
        "deadline respected: {:?}",
        run.took
    );
    assert_eq!(worker_state(&env).await, LocalNodeState::INACTIVE);
}

#[tokio::test]
async fn join_with_an_empty_store_says_to_run_init() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let empty = format!("file:{}/empty-store", env.work.display());
    let run = env.agent(
        On::Worker,
        &join_args(&empty, &["--manager", &env.manager_ip]),
    );
    run.fails_saying("swarm-agent init");
}

#[tokio::test]
async fn worker_life_join_label_rebalance_status_leave_and_removal() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let _serve = env.serve(&[
        "--interval",
        "1s",
        "--rebalance-interval",
        "1s",
        "--down-grace",
        "1h",
    ]);
    let _imds = env.spawn_imds(18080);
    let web = env
        .create_service("web", 2, &[("swarm-agent.rebalance", "true")])
        .await;
    let manager = env.engine(On::Manager).await;
    let manager_id = manager.local_swarm().await.unwrap().node_id.unwrap();
    wait_for("web on the manager", Duration::from_secs(120), || async {
        (running_nodes(&env, &web).await.len() == 2).then_some(())
    })
    .await;

    let worker_id = joins_at_boot_with_its_labels(&env, &manager).await;
    acts_on_itself_only(&env, &manager, &worker_id).await;
    a_reboot_repeats_nothing(&env, &manager, &worker_id).await;
    readiness_follows_its_tasks(&env, &worker_id).await;

    // The reconciler sees the new node and rebalances the opted-in service onto it.
    wait_for(
        "web rebalanced onto the worker",
        Duration::from_secs(90),
        || async {
            let nodes = running_nodes(&env, &web).await;
            (nodes.len() == 2 && nodes.contains(&worker_id) && nodes.contains(&manager_id))
                .then_some(())
        },
    )
    .await;

    status_and_metrics_show_the_fleet(&env).await;
    the_fleet_page_shows_it_behind_the_secret(&env, &worker_id);
    leaves_at_scale_in_and_is_removed(&env, &manager, &manager_id, &worker_id, &web).await;
}

/// The join as a node's boot runs it: token and manager list from the store,
/// labels from IMDS and flags.
fn boot_join(env: &common::Fresh) -> [&str; 10] {
    [
        "join",
        "--token-store",
        &env.store,
        "--imds",
        "http://127.0.0.1:18080",
        "--require-imds",
        "--label",
        "pool=web",
        "--api-secret-file",
        &env.secret,
    ]
}

/// A dry run changes nothing; the real join makes a labelled worker. Its id.
async fn joins_at_boot_with_its_labels(env: &common::Fresh, manager: &Engine) -> String {
    let dry = env.agent(
        On::Worker,
        &[
            "--dry-run",
            "join",
            "--token-store",
            &env.store,
            "--imds",
            "off",
            "--api-secret-file",
            &env.secret,
        ],
    );
    dry.ok();
    dry.says("would join");
    assert_eq!(worker_state(env).await, LocalNodeState::INACTIVE);

    env.agent(On::Worker, &boot_join(env)).ok();
    let worker = env.engine(On::Worker).await.local_swarm().await.unwrap();
    assert_eq!(worker.state, LocalNodeState::ACTIVE);
    assert!(!worker.is_manager);
    let worker_id = worker.node_id.unwrap();
    let node = NodeView::from(&manager.node(&worker_id).await.unwrap());
    assert_eq!(
        node.addr, env.worker_ip,
        "advertise address detected from the route to the manager"
    );
    for (label, value) in [
        ("zone", "eu-test-1b"),
        ("instance-id", "i-0123456789abcdef0"),
        ("instance-type", "t3.small"),
        ("lifecycle", "spot"),
        ("pool", "web"),
    ] {
        assert_eq!(
            node.labels.get(label).map(String::as_str),
            Some(value),
            "label {label}"
        );
    }
    worker_id
}

fn secret_value(env: &common::Fresh) -> String {
    std::fs::read_to_string(&env.secret)
        .unwrap()
        .trim()
        .to_string()
}

/// A worker acts on itself only, and sets only the labels workers may set.
async fn acts_on_itself_only(env: &common::Fresh, manager: &Engine, worker_id: &str) {
    let api = &env.api;
    let foreign = env.http_post(
        On::Manager,
        &format!("http://{api}/v1/nodes/{worker_id}/drain"),
        &secret_value(env),
        "",
    );
    assert!(foreign.contains("act on itself only"), "{foreign}");
    let pinned = env.http_post(
        On::Worker,
        &format!("http://{api}/v1/nodes/{worker_id}/labels"),
        &secret_value(env),
        r#"{"labels": {"bookstore.mysql": "true"}}"#,
    );
    assert!(pinned.contains("refused"), "{pinned}");
    let labels = NodeView::from(&manager.node(worker_id).await.unwrap()).labels;
    assert_eq!(labels.get("bookstore.mysql"), None);
}

/// What a booting worker's launch gate asks a manager's agent: ready once
/// joined, not while a task the swarm wants on it cannot start (its image
/// cannot be pulled), ready again once that task is gone.
async fn readiness_follows_its_tasks(env: &common::Fresh, worker_id: &str) {
    let url = format!("http://{}/v1/nodes/{worker_id}/ready", env.api);
    let bearer = format!("Bearer {}", secret_value(env));
    let look = || {
        let (status, body) = env.http_get_as(On::Worker, &url, &bearer);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let ready = |want: bool| {
        let look = &look;
        move || async move {
            let seen = look();
            (seen["ready"] == want).then_some(seen)
        }
    };
    wait_for(
        "the joined worker ready",
        Duration::from_secs(60),
        ready(true),
    )
    .await;
    docker(
        env,
        On::Manager,
        &[
            "service",
            "create",
            "--detach",
            "--quiet",
            "--mode",
            "global",
            "--name",
            "on-every-worker",
            "--constraint",
            "node.role==worker",
            "swarm-agent-test/never-published:1",
        ],
    );
    let waiting = wait_for(
        "the worker not ready while its task cannot start",
        Duration::from_secs(60),
        ready(false),
    )
    .await;
    assert!(
        waiting["waiting_for"]
            .to_string()
            .contains("on-every-worker is "),
        "{waiting}"
    );
    docker(env, On::Manager, &["service", "rm", "on-every-worker"]);
    wait_for(
        "the worker ready again without that task",
        Duration::from_secs(60),
        ready(true),
    )
    .await;
}

/// A reboot runs join again: nothing is repeated.
async fn a_reboot_repeats_nothing(env: &common::Fresh, manager: &Engine, worker_id: &str) {
    let second = env.agent(On::Worker, &boot_join(env));
    second.ok();
    for said in ["already a member of this swarm", "already labelled"] {
        second.says(said);
    }
    let local = env.engine(On::Worker).await.local_swarm().await.unwrap();
    assert_eq!(local.node_id.as_deref(), Some(worker_id));
    assert_eq!(manager.nodes().await.unwrap().len(), 2, "no duplicate node");
}

/// `status` for people and scripts, and the serve process's metrics and /status.
async fn status_and_metrics_show_the_fleet(env: &common::Fresh) {
    let status = env.agent(On::Manager, &["status", "--json"]);
    let report: serde_json::Value =
        serde_json::from_str(&status.stdout).expect("status --json is JSON");
    assert_eq!(report["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(report["managers"]["margin"], 0);
    let table = env.agent(On::Manager, &["status"]);
    assert!(
        table.stdout.contains("zone=eu-test-1b") && table.stdout.contains("web"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("stop-first"),
        "default update order is warned about: {}",
        table.stdout
    );

    let metrics = wait_for(
        "rebalance counted in metrics",
        Duration::from_secs(30),
        || async {
            let m = env.http_get(On::Manager, "http://127.0.0.1:9465/metrics");
            m.contains("swarm_agent_actions_total{action=\"rebalance\"} 1")
                .then_some(m)
        },
    )
    .await;
    for expected in [
        "swarm_agent_nodes{availability=\"active\",role=\"worker\",state=\"ready\"} 1",
        "swarm_agent_quorum_margin 0",
        "swarm_agent_service_desired_tasks{service=\"web\"} 2",
        "swarm_agent_actions_total{action=\"label\"} 1",
    ] {
        assert!(metrics.contains(expected), "{expected} not in {metrics}");
    }
    let live: serde_json::Value =
        serde_json::from_str(&env.http_get(On::Manager, "http://127.0.0.1:9465/status")).unwrap();
    assert_eq!(live["nodes"].as_array().unwrap().len(), 2);
}

/// The secret as a Basic password opens the fleet page: the nodes, the quorum
/// margin, the service per node and what the agent did. Nothing else opens it,
/// and the API refuses callers without the secret.
fn the_fleet_page_shows_it_behind_the_secret(env: &common::Fresh, worker_id: &str) {
    let api = &env.api;
    let fleet = format!("http://{api}/fleet");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("operator:{}", secret_value(env)))
    );
    let (status, page) = env.http_get_as(On::Manager, &fleet, &basic);
    assert_eq!(status, 200, "{page}");
    for expected in [
        "manager (leader)",
        "eu-test-1b",
        "margin 0",
        "web",
        "2/2",
        "join",
        "label",
        "rebalance",
    ] {
        assert!(
            page.contains(expected),
            "fleet page lacks {expected:?}:\n{page}"
        );
    }
    let (status, _) = env.http_get_as(On::Manager, &fleet, "Basic b3BlcmF0b3I6Z3Vlc3M=");
    assert_eq!(status, 401, "a wrong password is refused");
    let denied = env.http_get(
        On::Worker,
        &format!("http://{api}/v1/nodes/{worker_id}/drain"),
    );
    assert!(denied.contains("bearer secret"), "{denied}");
}

/// Scale-in: a dry run changes nothing, the real leave drains the node and a
/// manager removes it, and shutdown running leave again finds nothing to do.
async fn leaves_at_scale_in_and_is_removed(
    env: &common::Fresh,
    manager: &Engine,
    manager_id: &str,
    worker_id: &str,
    web: &str,
) {
    let leave = [
        "leave",
        "--manager",
        &env.manager_ip,
        "--api-secret-file",
        &env.secret,
        "--deadline",
        "2m",
        "--poll",
        "500ms",
    ];
    let mut dry_leave = vec!["--dry-run"];
    dry_leave.extend_from_slice(&leave);
    env.agent(On::Worker, &dry_leave).ok();
    assert_eq!(
        NodeView::from(&manager.node(worker_id).await.unwrap()).availability,
        Availability::Active
    );
    assert_eq!(worker_state(env).await, LocalNodeState::ACTIVE);

    let gone = env.agent(On::Worker, &leave);
    gone.ok();
    for said in ["drain complete", "a manager removed this node"] {
        gone.says(said);
    }
    assert_eq!(worker_state(env).await, LocalNodeState::INACTIVE);
    let ids: Vec<String> = manager
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|n| n.id)
        .collect();
    assert_eq!(
        ids,
        vec![manager_id.to_string()],
        "the manager removed the node"
    );
    assert_eq!(
        running_nodes(env, web).await,
        vec![manager_id.to_string(), manager_id.to_string()],
        "all replicas run on"
    );

    let again = env.agent(On::Worker, &leave);
    again.ok();
    again.says("nothing to leave");
}

#[tokio::test]
async fn reconciler_removes_a_node_down_past_its_grace_period() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let store = env.store.clone();
    env.agent(On::Worker, &join_args(&store, &[])).ok();
    let worker = env.engine(On::Worker).await;
    let worker_id = worker.local_swarm().await.unwrap().node_id.unwrap();
    // The node vanishes without a word (crash, spot reclaim): the manager marks it Down.
    let opts = LeaveSwarmOptionsBuilder::default().force(true).build();
    worker.docker().leave_swarm(Some(opts)).await.unwrap();
    let manager = env.engine(On::Manager).await;
    wait_for(
        "the worker marked Down",
        Duration::from_secs(60),
        || async {
            NodeView::from(&manager.node(&worker_id).await.unwrap())
                .is_down()
                .then_some(())
        },
    )
    .await;

    let policy = |grace: u64, dry_run: bool| Policy {
        down_grace: Duration::from_secs(grace),
        rebalance_label: "swarm-agent.rebalance".into(),
        rebalance_interval: Duration::from_secs(60),
        reschedule_after: Duration::from_secs(3600),
        dry_run,
    };
    let mut patient = Reconciler::new(manager.clone(), policy(3600, false), Metrics::new());
    assert!(
        patient.pass().await.unwrap().removed.is_empty(),
        "within grace: kept"
    );
    let mut dry = Reconciler::new(manager.clone(), policy(0, true), Metrics::new());
    assert!(
        dry.pass().await.unwrap().removed.is_empty(),
        "dry-run: kept"
    );
    assert!(manager.node(&worker_id).await.is_ok());

    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = Metrics::new();
    let mut strict = Reconciler::new(manager.clone(), policy(1, false), metrics.clone());
    let outcome = strict.pass().await.unwrap();
    assert_eq!(outcome.removed, vec![worker_id.clone()]);
    assert!(manager.node(&worker_id).await.is_err(), "node removed");
    assert!(
        metrics
            .render()
            .contains("swarm_agent_actions_total{action=\"remove\"} 1")
    );
}

/// A service whose only task no node takes is forced once it has waited
/// `reschedule_after`, and not again before the same wait; a service with a
/// task running is never forced for this.
#[tokio::test]
async fn the_leader_forces_a_service_whose_only_task_no_node_takes() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let manager = env.engine(On::Manager).await;
    env.create_service("web", 1, &[]).await;
    let spec = bollard::models::ServiceSpec {
        name: Some("waiting".into()),
        task_template: Some(bollard::models::TaskSpec {
            container_spec: Some(bollard::models::TaskSpecContainerSpec {
                image: Some(env.image.clone()),
                command: Some(vec!["sleep".into(), "3600".into()]),
                ..Default::default()
            }),
            placement: Some(bollard::models::TaskSpecPlacement {
                constraints: Some(vec!["node.labels.nowhere == true".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    manager.docker().create_service(spec, None).await.unwrap();
    wait_for(
        "the scheduler to find no node for it",
        Duration::from_secs(30),
        || async {
            let web_runs = running_nodes(&env, "web").await.len() == 1;
            let no_node = task_errors(&env, "waiting").await;
            (web_runs && no_node.iter().any(|e| e.starts_with("no suitable node"))).then_some(())
        },
    )
    .await;

    let metrics = Metrics::new();
    let policy = Policy {
        down_grace: Duration::from_secs(3600),
        rebalance_label: "swarm-agent.rebalance".into(),
        rebalance_interval: Duration::from_secs(60),
        reschedule_after: Duration::from_secs(2),
        dry_run: false,
    };
    let mut reconciler = Reconciler::new(manager.clone(), policy, metrics.clone());
    assert_eq!(
        reconciler.pass().await.unwrap().rescheduled,
        None,
        "not waited yet"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let forced = reconciler.pass().await.unwrap().rescheduled;
    assert_eq!(forced.as_deref(), Some("waiting"));
    assert_eq!(
        reconciler.pass().await.unwrap().rescheduled,
        None,
        "once per wait"
    );
    let force_count = |name: &'static str| {
        let manager = manager.clone();
        async move {
            let services = manager.services().await.unwrap();
            let service = services
                .iter()
                .find(|s| s.spec.as_ref().unwrap().name.as_deref() == Some(name))
                .unwrap();
            service
                .spec
                .as_ref()
                .unwrap()
                .task_template
                .as_ref()
                .unwrap()
                .force_update
                .unwrap_or(0)
        }
    };
    assert_eq!(force_count("waiting").await, 1);
    assert_eq!(force_count("web").await, 0, "what runs is left alone");
    assert!(
        metrics
            .render()
            .contains("swarm_agent_actions_total{action=\"reschedule\"} 1")
    );
}

#[tokio::test]
async fn status_exit_code_tells_health() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let healthy = env.agent(On::Manager, &["status"]);
    assert_eq!(healthy.code, 0, "{}", healthy.stdout);
    assert!(healthy.stdout.contains("health: Healthy"));

    // A service whose image exists nowhere can never run: degraded.
    let manager = env.engine(On::Manager).await;
    let spec = bollard::models::ServiceSpec {
        name: Some("broken".into()),
        task_template: Some(bollard::models::TaskSpec {
            container_spec: Some(bollard::models::TaskSpecContainerSpec {
                image: Some("swarm-agent-test/does-not-exist:1".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    manager.docker().create_service(spec, None).await.unwrap();
    let degraded = env.agent(On::Manager, &["status", "--json"]);
    assert_eq!(degraded.code, 1, "{}", degraded.stdout);
    let report: serde_json::Value = serde_json::from_str(&degraded.stdout).unwrap();
    assert_eq!(report["health"], "degraded");
    assert!(report["warnings"].to_string().contains("no healthcheck"));

    // Not a manager / not in a swarm: the report cannot be made, exit says down.
    let outside = env.agent(On::Worker, &["status"]);
    assert_eq!(outside.code, 3);
    outside.says("not part of a swarm");
}

#[cfg(feature = "ssm")]
#[tokio::test]
async fn init_publishes_tokens_to_ssm_secure_strings() {
    let Some(env) = common::env() else { return };
    let Some(moto) = env.moto.clone() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true needs moto for the SSM tests"
        );
        eprintln!("SKIPPED: no moto server");
        return;
    };
    let _lock = common::LOCK.lock().await;
    env.reset().await;
    let prefix = format!("/swarm-agent-test/{}", std::process::id());
    let store = format!("ssm:{prefix}");
    let args = [
        "init",
        "--token-store",
        &store,
        "--ssm-endpoint",
        &moto,
        "--aws-region",
        "us-east-1",
    ];
    // The manager's namespace cannot reach moto on the host's loopback, so
    // this init runs in the test's namespace (it still drives the manager engine).
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::BIN)
            .arg("--docker-host")
            .arg(format!("unix://{}", env.manager_sock))
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(run(&args).0, Some(0));
    let (code, log) = run(&args);
    assert_eq!(code, Some(0));
    assert!(log.contains("already published, unchanged"), "{log}");

    let conf = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new("us-east-1"))
        .endpoint_url(&moto)
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    let ssm = aws_sdk_ssm::Client::from_conf(conf);
    let param = ssm
        .get_parameter()
        .name(format!("{prefix}/worker-token"))
        .with_decryption(true)
        .send()
        .await
        .unwrap()
        .parameter
        .unwrap();
    assert_eq!(
        param.r#type,
        Some(aws_sdk_ssm::types::ParameterType::SecureString)
    );
    let swarm = env.engine(On::Manager).await.inspect_swarm().await.unwrap();
    assert_eq!(param.value, swarm.join_tokens.unwrap().worker);
}

/// The worker's engine made the first manager of a swarm of its own.
async fn swarm_of_its_own(env: &Env) -> Engine {
    let worker = env.engine(On::Worker).await;
    let req = bollard::models::SwarmInitRequest {
        listen_addr: Some("0.0.0.0:2377".into()),
        advertise_addr: Some(env.worker_ip.clone()),
        ..Default::default()
    };
    worker.init_swarm(req).await.unwrap();
    worker
}

#[tokio::test]
async fn join_refuses_a_node_that_belongs_to_another_swarm() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let worker = swarm_of_its_own(&env).await;
    let store = env.store.clone();
    let run = env.agent(On::Worker, &join_args(&store, &[]));
    run.fails_saying("another swarm");
    assert!(
        worker.local_swarm().await.unwrap().is_manager,
        "left untouched"
    );
}

/// Managers that boot together (the managers' Auto Scaling group): the one
/// whose claim on the store's `founder` entry lands first creates the swarm.
/// A manager that finds the claim taken, even before the founder published
/// anything, creates no swarm of its own and says so with exit code 4 (its
/// boot script then joins as a manager).
#[tokio::test]
async fn a_manager_that_finds_the_founding_claimed_creates_no_swarm() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let dir = format!("{}/claimed-store", env.work.display());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(format!("{dir}/founder"), "ip-10-0-1-5\n").unwrap();
    let run = env.agent(
        On::Worker,
        &["init", "--token-store", &format!("file:{dir}")],
    );
    assert_eq!(run.code, 4, "exit code 4: founded elsewhere, join instead");
    run.says("the swarm that ip-10-0-1-5 is founding");
    assert_eq!(worker_state(&env).await, LocalNodeState::INACTIVE);
    assert!(
        !std::path::Path::new(&format!("{dir}/cluster-id")).exists(),
        "nothing published"
    );
    // The founder's own store (made by `init` on the manager) names it.
    let founder = read(&env.tokens_dir(), "founder");
    assert!(
        !founder.is_empty(),
        "init claims the founding before `swarm init`"
    );
}

#[tokio::test]
async fn a_second_swarm_never_publishes_over_the_first_ones_store() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let dir = env.tokens_dir();
    let first = read(&dir, "cluster-id");
    // A fresh engine given the first swarm's store does not start a swarm.
    let run = env.agent(On::Worker, &["init", "--token-store", &env.store]);
    assert_eq!(run.code, 4, "a manager booting there joins instead");
    run.says("already belongs to the swarm");
    assert_eq!(worker_state(&env).await, LocalNodeState::INACTIVE);
    // A second swarm's agent (the worker's engine, made a swarm of its own)
    // refuses to publish over the store; the first swarm's entries stay.
    swarm_of_its_own(&env).await;
    let run = env.agent(On::Worker, &["init", "--token-store", &env.store]);
    run.fails_saying("belongs to another swarm");
    assert_eq!(
        read(&dir, "cluster-id"),
        first,
        "the first swarm's id stays"
    );
    let tokens = env.engine(On::Manager).await.inspect_swarm().await.unwrap();
    assert_eq!(
        read(&dir, "worker-token"),
        tokens.join_tokens.unwrap().worker.unwrap(),
        "the first swarm's worker token stays"
    );
}

#[tokio::test]
async fn the_last_manager_refuses_to_leave() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let run = env.agent(On::Manager, &["leave"]);
    run.fails_saying("last manager");
    assert!(
        env.engine(On::Manager)
            .await
            .local_swarm()
            .await
            .unwrap()
            .is_manager
    );
}

#[tokio::test]
async fn a_manager_joins_with_the_manager_token_and_steps_down_before_leaving() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let store = env.store.clone();
    let secret = env.secret.clone();
    let api = env.api.clone();
    let _serve = env.serve(&["--down-grace", "1h"]);
    env.agent(
        On::Worker,
        &join_args(&store, &["--role", "manager", "--label", "tier=control"]),
    )
    .ok();
    let second = env.engine(On::Worker).await;
    let local = second.local_swarm().await.unwrap();
    assert!(local.is_manager, "joined as a manager");
    let id = local.node_id.unwrap();
    let manager = env.engine(On::Manager).await;
    let node = NodeView::from(&manager.node(&id).await.unwrap());
    assert_eq!(
        node.labels.get("tier").map(String::as_str),
        Some("control"),
        "a manager labels itself"
    );

    let run = env.agent(
        On::Worker,
        &[
            "leave",
            "--agent-url",
            &format!("http://{api}"),
            "--api-secret-file",
            &secret,
            "--deadline",
            "1m",
            "--poll",
            "500ms",
        ],
    );
    run.ok();
    run.says("demoted this manager");
    assert_eq!(worker_state(&env).await, LocalNodeState::INACTIVE);
    wait_for(
        "the former manager removed",
        Duration::from_secs(30),
        || async { (manager.nodes().await.unwrap().len() == 1).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_wrong_api_secret_is_reported_and_a_rerun_finishes_the_job() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let store = env.store.clone();
    let secret = env.secret.clone();
    let wrong = env.work.join("wrong-secret");
    std::fs::write(&wrong, "not-the-secret").unwrap();
    let wrong = wrong.display().to_string();
    let _serve = env.serve(&[]);
    let first = env.agent(
        On::Worker,
        &join_args(
            &store,
            &["--label", "pool=batch", "--api-secret-file", &wrong],
        ),
    );
    first.fails_saying("refused the bearer secret");

    // The node did join; the rerun (fixed secret) only adds the labels.
    let second = env.agent(
        On::Worker,
        &join_args(
            &store,
            &["--label", "pool=batch", "--api-secret-file", &secret],
        ),
    );
    second.ok();
    second.says("already a member of this swarm");
    let id = env
        .engine(On::Worker)
        .await
        .local_swarm()
        .await
        .unwrap()
        .node_id
        .unwrap();
    let node = NodeView::from(&env.engine(On::Manager).await.node(&id).await.unwrap());
    assert_eq!(node.labels.get("pool").map(String::as_str), Some("batch"));
}

/// `docker …` on one of the test engines; its stdout, or a panic with stderr.
fn docker(env: &Env, on: On, args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", env.sock(on)))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn image_exists(env: &Env, on: On, image: &str) -> bool {
    std::process::Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", env.sock(on)))
        .args(["image", "inspect", image])
        .output()
        .unwrap()
        .status
        .success()
}

/// Every node's agent removes the images no container uses once they are
/// older than `--image-prune-age`; an image a container uses (even a stopped
/// one) stays.
#[tokio::test]
async fn serve_removes_unused_images_and_keeps_the_ones_in_use() {
    let Some(env) = common::fresh().await else {
        return;
    };
    let unused = "swarm-agent-test/unused:1";
    let empty = env.work.join("empty.tar");
    let made = std::process::Command::new("tar")
        .args([
            "cf",
            &empty.display().to_string(),
            "--files-from",
            "/dev/null",
        ])
        .status()
        .unwrap();
    assert!(made.success());
    docker(
        &env,
        On::Manager,
        &["import", &empty.display().to_string(), unused],
    );
    // The suite's image stays in use (the other tests run it), by a stopped
    // container named for this run (a failed run may have left its own).
    let keeper = format!("keeps-the-image-{}", std::process::id());
    docker(
        &env,
        On::Manager,
        &["create", "--name", &keeper, &env.image, "true"],
    );
    // The engine's `until` filter counts whole seconds: an image made this
    // second is not yet older than "0s".
    tokio::time::sleep(Duration::from_secs(2)).await;
    let serve = env.serve(&["--image-prune-interval", "1h", "--image-prune-age", "0s"]);
    let pruned = wait_for(
        "the unused image removed and counted",
        Duration::from_secs(30),
        || async {
            let m = env.http_get(On::Manager, "http://127.0.0.1:9465/metrics");
            let counted: u64 = m
                .lines()
                .find_map(|l| l.strip_prefix("swarm_agent_images_pruned_total "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            (!image_exists(&env, On::Manager, unused) && counted >= 1).then_some(counted)
        },
    )
    .await;
    drop(serve);
    docker(&env, On::Manager, &["rm", &keeper]);
    assert!(
        image_exists(&env, On::Manager, &env.image),
        "an image in use stays"
    );
    assert!(pruned >= 1);
}
