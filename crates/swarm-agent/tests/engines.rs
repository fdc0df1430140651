//! Real-engine tests: two dockerd instances in network namespaces (see
//! scripts/test-swarm-agent). Each test takes the shared lock and resets the
//! swarm to "manager alone, worker outside, no services" first.

mod common;

use std::time::Duration;

use base64::Engine as _;
use bollard::models::{LocalNodeState, TaskState};
use bollard::query_parameters::{LeaveSwarmOptionsBuilder, ListTasksOptionsBuilder};
use common::{Env, LOCK, On, wait_for};
use swarm_agent::metrics::Metrics;
use swarm_agent::model::NodeView;
use swarm_agent::serve::{Policy, Reconciler};

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

/// Node ids running a task of `service` right now.
async fn running_nodes(env: &Env, service: &str) -> Vec<String> {
    let manager = env.engine(On::Manager).await;
    let filters = std::collections::HashMap::from([
        ("service", vec![service]),
        ("desired-state", vec!["running"]),
    ]);
    let opts = ListTasksOptionsBuilder::default().filters(&filters).build();
    let tasks = manager.docker().list_tasks(Some(opts)).await.unwrap();
    tasks
        .into_iter()
        .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        .filter_map(|t| t.node_id)
        .collect()
}

fn join_args<'a>(env: &'a Env, store: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "join",
        "--token-store",
        store,
        "--imds",
        "off",
        "--deadline",
        "30s",
    ];
    args.extend_from_slice(extra);
    let _ = env;
    args
}

#[tokio::test]
async fn init_is_idempotent_publishes_tokens_and_rotates_the_worker_token() {
    let Some(env) = common::env() else { return };
    let _lock = LOCK.lock().await;
    env.reset().await;
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
    assert!(
        again.stderr.contains("swarm already initialised"),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("already published, unchanged"),
        "{}",
        again.stderr
    );
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
    assert!(
        dry_init.stderr.contains("would initialise"),
        "{}",
        dry_init.stderr
    );
    assert_eq!(worker_state(&env).await, LocalNodeState::INACTIVE);
}

#[tokio::test]
async fn join_stops_at_once_on_an_invalid_token() {
    let Some(env) = common::env() else { return };
    let _lock = LOCK.lock().await;
    env.reset().await;
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
        &[
            "join",
            "--token-store",
            &store,
            "--imds",
            "off",
            "--deadline",
            "5m",
            "--token-wait",
            "5s",
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("waiting for the managers to publish a new one"),
        "a rejected token is re-read from the store for --token-wait: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("rejected the join token"),
        "{}",
        run.stderr
    );
    assert!(
        run.took < Duration::from_secs(60),
        "must not retry a bad token until the 5m deadline: {:?}",
        run.took
    );
    assert_eq!(worker_state(&env).await, LocalNodeState::INACTIVE);
}

#[tokio::test]
async fn join_fails_clearly_when_no_manager_answers() {
    let Some(env) = common::env() else { return };
    let _lock = LOCK.lock().await;
    env.reset().await;
    let store = format!("file:{}", env.tokens_dir());
    // .77 and .78 exist on no namespace: nothing answers there.
    let run = env.agent(
        On::Worker,
        &[
            "join",
            "--token-store",
            &store,
            "--imds",
            "off",
            "--manager",
            "10.231.0.77,10.231.0.78:2377",
            "--deadline",
            "4s",
            "--connect-timeout",
            "500ms",
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no swarm manager could be joined"),
        "{}",
        run.stderr
    );
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
    let Some(env) = common::env() else { return };
    let _lock = LOCK.lock().await;
    env.reset().await;
    let empty = format!("file:{}/empty-store", env.work.display());
    let run = env.agent(
        On::Worker,
        &[
            "join",
            "--token-store",
            &empty,
            "--imds",
            "off",
            "--manager",
            &env.manager_ip,
        ],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("swarm-agent init"), "{}", run.stderr);
}

#[tokio::test]
async fn worker_life_join_label_rebalance_status_leave_and_removal() {
    let Some(env) = common::env() else { return };
    let _lock = LOCK.lock().await;
    env.reset().await;
    let store = format!("file:{}", env.tokens_dir());
    let secret = env.secret_file();
    let api = format!("{}:9466", env.manager_ip);
    let _serve = env.spawn(
        On::Manager,
        &[
            "serve",
            "--api-secret-file",
            &secret,
            "--api-addr",
            &api,
            "--metrics-addr",
            "127.0.0.1:9465",
            "--interval",
            "1s",
            "--rebalance-interval",
            "1s",
            "--down-grace",
            "1h",
        ],
    );
    let _imds = env.spawn_imds(18080);
    let web = env
        .create_service("web", 2, &[("swarm-agent.rebalance", "true")])
        .await;
    let manager = env.engine(On::Manager).await;
    let manager_id = manager.local_swarm().await.unwrap().node_id.unwrap();
    wait_for("web on the manager", Duration::from_secs(60), || async {
        (running_nodes(&env, &web).await.len() == 2).then_some(())
    })
    .await;

    // Dry run first: nothing changes.
    let dry = env.agent(
        On::Worker,
        &[
            "--dry-run",
            "join",
            "--token-store",
            &store,
            "--imds",
            "off",
            "--api-secret-file",
            &secret,
        ],
    );
    dry.ok();
    assert!(dry.stderr.contains("would join"), "{}", dry.stderr);
    assert_eq!(worker_state(&env).await, LocalNodeState::INACTIVE);

    // Join at boot: token and manager list from the store, labels from IMDS and flags.
    let join = [
        "join",
        "--token-store",
        &store,
        "--imds",
        "http://127.0.0.1:18080",
        "--require-imds",
        "--label",
        "pool=web",
        "--api-secret-file",
        &secret,
    ];
    let first = env.agent(On::Worker, &join);
    first.ok();
    let worker = env.engine(On::Worker).await.local_swarm().await.unwrap();
    assert_eq!(worker.state, LocalNodeState::ACTIVE);
    assert!(!worker.is_manager);
    let worker_id = worker.node_id.unwrap();
    let node = NodeView::from(&manager.node(&worker_id).await.unwrap());
    assert_eq!(
        node.addr, env.worker_ip,
        "advertise address detected from the route to the manager"
    );
    assert_eq!(
        node.labels.get("zone").map(String::as_str),
        Some("eu-test-1b")
    );
    assert_eq!(
        node.labels.get("instance-id").map(String::as_str),
        Some("i-0123456789abcdef0")
    );
    assert_eq!(
        node.labels.get("instance-type").map(String::as_str),
        Some("t3.small")
    );
    assert_eq!(
        node.labels.get("lifecycle").map(String::as_str),
        Some("spot")
    );
    assert_eq!(node.labels.get("pool").map(String::as_str), Some("web"));

    // A worker acts on itself only, and sets only the labels workers may set.
    let secret_value = std::fs::read_to_string(&secret).unwrap();
    let secret_value = secret_value.trim();
    let foreign = env.http_post(
        On::Manager,
        &format!("http://{api}/v1/nodes/{worker_id}/drain"),
        secret_value,
        "",
    );
    assert!(foreign.contains("act on itself only"), "{foreign}");
    let pinned = env.http_post(
        On::Worker,
        &format!("http://{api}/v1/nodes/{worker_id}/labels"),
        secret_value,
        r#"{"labels": {"bookstore.mysql": "true"}}"#,
    );
    assert!(pinned.contains("refused"), "{pinned}");
    assert_eq!(
        NodeView::from(&manager.node(&worker_id).await.unwrap())
            .labels
            .get("bookstore.mysql"),
        None
    );

    // A reboot runs join again: nothing is repeated.
    let second = env.agent(On::Worker, &join);
    second.ok();
    assert!(
        second.stderr.contains("already a member of this swarm"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("already labelled"),
        "{}",
        second.stderr
    );
    assert_eq!(
        env.engine(On::Worker)
            .await
            .local_swarm()
            .await
            .unwrap()
            .node_id
            .as_deref(),
        Some(worker_id.as_str())
    );
    assert_eq!(manager.nodes().await.unwrap().len(), 2, "no duplicate node");

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

    // Status for people and scripts.
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

    // Metrics and /status from the serve process.
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
    assert!(
        metrics.contains(
            "swarm_agent_nodes{availability=\"active\",role=\"worker\",state=\"ready\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("swarm_agent_quorum_margin 0"), "{metrics}");
    assert!(
        metrics.contains("swarm_agent_service_desired_tasks{service=\"web\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("swarm_agent_actions_total{action=\"label\"} 1"),
        "{metrics}"
    );
    let live: serde_json::Value =
        serde_json::from_str(&env.http_get(On::Manager, "http://127.0.0.1:9465/status")).unwrap();
    assert_eq!(live["nodes"].as_array().unwrap().len(), 2);

    // The fleet page: the secret as a Basic password opens it; it shows the
    // nodes, the quorum margin, the service per node and what the agent did.
    let fleet = format!("http://{api}/fleet");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("operator:{secret_value}"))
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

    // The API refuses callers without the secret.
    let denied = env.http_get(
        On::Worker,
        &format!("http://{api}/v1/nodes/{worker_id}/drain"),
    );
    assert!(denied.contains("bearer secret"), "{denied}");

    // Scale-in: dry run changes nothing, then the real leave.
    let leave = [
        "leave",
        "--manager",
        &env.manager_ip,
        "--api-secret-file",
        &secret,
        "--deadline",
        "2m",
        "--poll",
        "500ms",
    ];
    let mut dry_leave = vec!["--dry-run"];
    dry_leave.extend_from_slice(&leave);
    env.agent(On::Worker, &dry_leave).ok();
    assert_eq!(
        NodeView::from(&manager.node(&worker_id).await.unwrap()).availability,
        "active"
    );
    assert_eq!(worker_state(&env).await, LocalNodeState::ACTIVE);

    let gone = env.agent(On::Worker, &leave);
    gone.ok();
    assert!(gone.stderr.contains("drain complete"), "{}", gone.stderr);
    assert!(
        gone.stderr.contains("a manager removed this node"),
        "{}",
        gone.stderr
    );
    assert_eq!(worker_state(&env).await, LocalNodeState::INACTIVE);
    let ids: Vec<String> = manager
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|n| n.id)
        .collect();
    assert_eq!(
        ids,
        vec![manager_id.clone()],
        "the manager removed the node"
    );
    assert_eq!(
        running_nodes(&env, &web).await,
        vec![manager_id.clone(), manager_id.clone()],
        "all replicas run on"
    );

    // Shutdown runs leave again: nothing to do.
    let again = env.agent(On::Worker, &leave);
    again.ok();
    assert!(
        again.stderr.contains("nothing to leave"),
        "{}",
        again.stderr
    );
}

#[tokio::test]
async fn reconciler_removes_a_node_down_past_its_grace_period() {
    let Some(env) = common::env() else { return };
    let _lock = LOCK.lock().await;
    env.reset().await;
    let store = format!("file:{}", env.tokens_dir());
    env.agent(On::Worker, &join_args(&env, &store, &[])).ok();
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

#[tokio::test]
async fn status_exit_code_tells_health() {
    let Some(env) = common::env() else { return };
    let _lock = LOCK.lock().await;
    env.reset().await;
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
    assert!(
        outside.stderr.contains("not part of a swarm"),
        "{}",
        outside.stderr
    );
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
    let _lock = LOCK.lock().await;
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

#[tokio::test]
async fn join_refuses_a_node_that_belongs_to_another_swarm() {
    let Some(env) = common::env() else { return };
    let _lock = LOCK.lock().await;
    env.reset().await;
    let worker = env.engine(On::Worker).await;
    let req = bollard::models::SwarmInitRequest {
        listen_addr: Some("0.0.0.0:2377".into()),
        advertise_addr: Some(env.worker_ip.clone()),
        ..Default::default()
    };
    worker.init_swarm(req).await.unwrap();
    let store = format!("file:{}", env.tokens_dir());
    let run = env.agent(On::Worker, &join_args(&env, &store, &[]));
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("another swarm"), "{}", run.stderr);
    assert!(
        worker.local_swarm().await.unwrap().is_manager,
        "left untouched"
    );
}

#[tokio::test]
async fn the_last_manager_refuses_to_leave() {
    let Some(env) = common::env() else { return };
    let _lock = LOCK.lock().await;
    env.reset().await;
    let run = env.agent(On::Manager, &["leave"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("last manager"), "{}", run.stderr);
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
    let Some(env) = common::env() else { return };
    let _lock = LOCK.lock().await;
    env.reset().await;
    let store = format!("file:{}", env.tokens_dir());
    let secret = env.secret_file();
    let api = format!("{}:9466", env.manager_ip);
    let _serve = env.spawn(
        On::Manager,
        &[
            "serve",
            "--api-secret-file",
            &secret,
            "--api-addr",
            &api,
            "--metrics-addr",
            "127.0.0.1:9465",
            "--down-grace",
            "1h",
        ],
    );
    env.agent(
        On::Worker,
        &join_args(
            &env,
            &store,
            &["--role", "manager", "--label", "tier=control"],
        ),
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
    assert!(
        run.stderr.contains("demoted this manager"),
        "{}",
        run.stderr
    );
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
    let Some(env) = common::env() else { return };
    let _lock = LOCK.lock().await;
    env.reset().await;
    let store = format!("file:{}", env.tokens_dir());
    let secret = env.secret_file();
    let wrong = env.work.join("wrong-secret");
    std::fs::write(&wrong, "not-the-secret").unwrap();
    let wrong = wrong.display().to_string();
    let api = format!("{}:9466", env.manager_ip);
    let _serve = env.spawn(
        On::Manager,
        &[
            "serve",
            "--api-secret-file",
            &secret,
            "--api-addr",
            &api,
            "--metrics-addr",
            "127.0.0.1:9465",
        ],
    );
    let first = env.agent(
        On::Worker,
        &join_args(
            &env,
            &store,
            &["--label", "pool=batch", "--api-secret-file", &wrong],
        ),
    );
    assert_eq!(first.code, 1);
    assert!(
        first.stderr.contains("refused the bearer secret"),
        "{}",
        first.stderr
    );

    // The node did join; the rerun (fixed secret) only adds the labels.
    let second = env.agent(
        On::Worker,
        &join_args(
            &env,
            &store,
            &["--label", "pool=batch", "--api-secret-file", &secret],
        ),
    );
    second.ok();
    assert!(
        second.stderr.contains("already a member of this swarm"),
        "{}",
        second.stderr
    );
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

/// A replica spinning at its CPU limit: the leader measures it through the
/// engine's stats, decides to scale out, and the count and the last decision
/// land on the service; `status` shows it; a dry-run changes nothing.
#[tokio::test]
async fn the_leader_scales_out_a_busy_service_and_status_shows_it() {
    let Some(env) = common::env() else { return };
    let _lock = LOCK.lock().await;
    env.reset().await;
    let manager = env.engine(On::Manager).await;
    let labels = [
        ("swarm-agent.autoscale.min", "1"),
        ("swarm-agent.autoscale.max", "2"),
        ("swarm-agent.autoscale.window", "4s"),
        ("swarm-agent.autoscale.warmup", "0s"),
        ("swarm-agent.autoscale.cooldown-out", "0s"),
    ];
    // A tenth of a CPU, spent entirely by a shell loop: 100 % of its limit.
    let spec = bollard::models::ServiceSpec {
        name: Some("busy".into()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        mode: Some(bollard::models::ServiceSpecMode {
            replicated: Some(bollard::models::ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        task_template: Some(bollard::models::TaskSpec {
            container_spec: Some(bollard::models::TaskSpecContainerSpec {
                image: Some(env.image.clone()),
                command: Some(vec!["sh".into(), "-c".into(), "while :; do :; done".into()]),
                stop_signal: Some("SIGKILL".into()),
                ..Default::default()
            }),
            resources: Some(bollard::models::TaskSpecResources {
                limits: Some(bollard::models::Limit {
                    nano_cpus: Some(100_000_000),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    manager.docker().create_service(spec, None).await.unwrap();
    wait_for("the busy replica", Duration::from_secs(60), || async {
        (running_nodes(&env, "busy").await.len() == 1).then_some(())
    })
    .await;

    let measured = swarm_agent::cpu::measure_local(&manager).await.unwrap();
    assert_eq!(measured.len(), 1, "{measured:?}");
    assert!(
        (0.07..0.13).contains(&measured[0].cores),
        "a tenth of a core: {measured:?}"
    );

    let policy = |dry_run| Policy {
        down_grace: Duration::from_secs(3600),
        rebalance_label: "swarm-agent.rebalance".into(),
        rebalance_interval: Duration::from_secs(60),
        dry_run,
    };
    let desired = || async {
        let services = env.engine(On::Manager).await.services().await.unwrap();
        let s = services
            .iter()
            .map(swarm_agent::model::ServiceView::from)
            .find(|s| s.name == "busy")
            .unwrap();
        (s.desired, s.labels)
    };
    // Passes a second apart until the window has enough samples to act on.
    async fn until_scaled(r: &mut Reconciler) -> swarm_agent::autoscale::Evaluation {
        for _ in 0..10 {
            let outcome = r.pass().await.unwrap();
            let (_, eval) = outcome
                .autoscaled
                .into_iter()
                .next()
                .expect("busy is autoscaled");
            if matches!(
                eval.decision,
                swarm_agent::autoscale::Decision::Scale { .. }
            ) {
                return eval;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("no scale decision within 10 passes");
    }

    let dry_metrics = Metrics::new();
    let mut dry = Reconciler::new(manager.clone(), policy(true), dry_metrics.clone());
    let eval = until_scaled(&mut dry).await;
    assert!(eval.cpu.unwrap() > 70.0, "{eval:?}");
    assert_eq!(desired().await.0, 1, "dry-run: the count is unchanged");
    let decided = dry_metrics.render();
    assert!(
        decided
            .lines()
            .any(|l| l.starts_with("swarm_agent_autoscale_decisions_total{")
                && l.contains("direction=\"out\"")
                && l.contains("service=\"busy\"")
                && l.ends_with(" 1")),
        "{decided}"
    );

    let metrics = Metrics::new();
    let mut leader = Reconciler::new(manager.clone(), policy(false), metrics.clone());
    let eval = until_scaled(&mut leader).await;
    let (count, labels) = desired().await;
    assert_eq!(count, 2, "{eval:?}");
    let last = &labels["swarm-agent.autoscale.last-decision"];
    assert!(last.starts_with("out 1 → 2: CPU"), "{last}");
    assert!(labels.contains_key("swarm-agent.autoscale.last-at"));
    let text = metrics.render();
    assert!(
        text.contains("swarm_agent_actions_total{action=\"autoscale\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("swarm_agent_autoscale_replicas{service=\"busy\"} 2"),
        "{text}"
    );

    let status = env.agent(On::Manager, &["status"]);
    assert!(status.stdout.contains("AUTOSCALED"), "{}", status.stdout);
    assert!(status.stdout.contains("out 1 → 2"), "{}", status.stdout);
    let json = env.agent(On::Manager, &["status", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        report["autoscale"][0]["policy"]["max"], 2,
        "{}",
        json.stdout
    );
}
