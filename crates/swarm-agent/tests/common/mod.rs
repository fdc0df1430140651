//! Harness for the real-engine tests. `scripts/test-swarm-agent` starts two
//! private dockerd instances (manager and worker, each in its own network
//! namespace) and passes their sockets and namespaces in SWA_TEST_* variables.
//! The agent binary runs inside those namespaces with `nsenter`, as it would
//! on the node itself; the test process watches through the engines' sockets.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::models::{
    HealthConfig, LocalNodeState, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    TaskSpec, TaskSpecContainerSpec,
};
use bollard::query_parameters::{DeleteNodeOptionsBuilder, LeaveSwarmOptionsBuilder};
use swarm_agent::engine::Engine;

/// Engine tests share two engines: one at a time.
pub static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const BIN: &str = env!("CARGO_BIN_EXE_swarm-agent");
pub const SECRET: &str = "test-shared-secret";

#[derive(Debug, Clone)]
pub struct Env {
    pub work: PathBuf,
    pub manager_sock: String,
    pub worker_sock: String,
    pub manager_ns: String,
    pub worker_ns: String,
    pub manager_ip: String,
    pub worker_ip: String,
    pub image: String,
    pub moto: Option<String>,
}

/// The engines, or None (test skipped) when the script did not set them up.
/// Under CI=true a missing engine fails instead: a skip must not look green.
pub fn env() -> Option<Env> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(work) = get("SWA_TEST_WORK") else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but no test engines: run through scripts/test-swarm-agent");
        }
        eprintln!("SKIPPED: no test engines (run scripts/test-swarm-agent)");
        return None;
    };
    let must = |k: &str| get(k).unwrap_or_else(|| panic!("{k} not set"));
    Some(Env {
        work: PathBuf::from(work),
        manager_sock: must("SWA_TEST_MANAGER_SOCK"),
        worker_sock: must("SWA_TEST_WORKER_SOCK"),
        manager_ns: must("SWA_TEST_MANAGER_NETNS"),
        worker_ns: must("SWA_TEST_WORKER_NETNS"),
        manager_ip: must("SWA_TEST_MANAGER_IP"),
        worker_ip: must("SWA_TEST_WORKER_IP"),
        image: must("SWA_TEST_IMAGE"),
        moto: get("SWA_TEST_MOTO_URL"),
    })
}

/// One engine test's hold on the two engines: the shared lock, the swarm
/// reset, and what most tests hand the agent (token store, API secret, the
/// manager's API address). It dereferences to the `Env`.
pub struct Fresh {
    pub env: Env,
    pub store: String,
    pub secret: String,
    pub api: String,
    _lock: tokio::sync::MutexGuard<'static, ()>,
}

/// The engines, locked and reset; `None` as `env()` says.
pub async fn fresh() -> Option<Fresh> {
    let env = env()?;
    let lock = LOCK.lock().await;
    env.reset().await;
    Some(Fresh {
        store: format!("file:{}", env.tokens_dir()),
        secret: env.secret_file(),
        api: format!("{}:9466", env.manager_ip),
        env,
        _lock: lock,
    })
}

impl Fresh {
    /// `swarm-agent serve` on the manager, with the API secret and address,
    /// metrics on 127.0.0.1:9465, and `extra` flags.
    pub fn serve(&self, extra: &[&str]) -> Guard {
        let mut args = vec![
            "serve",
            "--api-secret-file",
            &self.secret,
            "--api-addr",
            &self.api,
            "--metrics-addr",
            "127.0.0.1:9465",
        ];
        args.extend_from_slice(extra);
        self.env.spawn(On::Manager, &args)
    }
}

impl std::ops::Deref for Fresh {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "agent failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The agent's log says `text` (what operators read in the journal).
    pub fn says(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "expected {text:?} in the agent's log:\n{}",
            self.stderr
        );
        self
    }

    /// The agent failed with exit code 1 and said `text`.
    pub fn fails_saying(&self, text: &str) -> &Self {
        assert_eq!(self.code, 1, "exit code; log:\n{}", self.stderr);
        self.says(text)
    }
}

/// Which node the agent runs on.
#[derive(Debug, Clone, Copy)]
pub enum On {
    Manager,
    Worker,
}

impl Env {
    pub fn sock(&self, on: On) -> &str {
        match on {
            On::Manager => &self.manager_sock,
            On::Worker => &self.worker_sock,
        }
    }

    pub fn ns(&self, on: On) -> &str {
        match on {
            On::Manager => &self.manager_ns,
            On::Worker => &self.worker_ns,
        }
    }

    pub fn command(&self, on: On, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.ns(on)))
            .arg(BIN)
            .arg("--docker-host")
            .arg(format!("unix://{}", self.sock(on)))
            .args(args)
            .env("NO_COLOR", "1")
            .env("SWARM_AGENT_ENGINE_WAIT", "10s");
        c
    }

    /// Run the agent binary on a node, as its systemd unit would.
    pub fn agent(&self, on: On, args: &[&str]) -> Run {
        let started = Instant::now();
        let out = self.command(on, args).output().expect("run swarm-agent");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
            took: started.elapsed(),
        };
        eprintln!(
            "$ swarm-agent {} -> {} in {:?}\n{}",
            args.join(" "),
            run.code,
            run.took,
            run.stderr
        );
        run
    }

    pub fn spawn(&self, on: On, args: &[&str]) -> Guard {
        let log = std::fs::File::create(self.work.join(format!("agent-{}.log", args[0]))).unwrap();
        let child = self
            .command(on, args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn");
        Guard(child)
    }

    /// The fleet's EC2 metadata stand-in (scripts/lib/fleet/imds.py) inside
    /// the worker's namespace, on `port`, answering the worker's own
    /// requests (from 127.0.0.1) as a spot t3.small in zone eu-test-1b; its
    /// control API on the next port.
    pub fn spawn_imds(&self, port: u16) -> Guard {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/lib/fleet/imds.py"
        );
        let nodes = self.work.join("imds-nodes.json");
        let worker = r#"{"127.0.0.1": {"instance-id": "i-0123456789abcdef0", "zone": "eu-test-1b",
            "lifecycle": "spot", "instance-type": "t3.small"}}"#;
        std::fs::write(&nodes, worker).expect("write the stand-in's nodes");
        let (port, control) = (port.to_string(), (port + 1).to_string());
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.worker_ns))
            .args(["python3", script, "127.0.0.1", "127.0.0.1", &control])
            .arg(&nodes)
            .arg(&port)
            .spawn()
            .expect("spawn the metadata stand-in");
        Guard(child)
    }

    /// GET a URL from inside a node's namespace (the test process lives outside).
    pub fn http_get(&self, on: On, url: &str) -> String {
        let code = "import sys, urllib.request\n\
                    try:\n    r = urllib.request.urlopen(sys.argv[1])\n    body = r.read()\n\
                    except urllib.error.HTTPError as e:\n    body = e.read()\n\
                    sys.stdout.write(body.decode())";
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.ns(on)))
            .args(["python3", "-c", code, url])
            .output()
            .expect("python3");
        String::from_utf8_lossy(&out.stdout).into()
    }

    /// GET a URL from a node's namespace with an `Authorization` header;
    /// the status and the body, whatever the status.
    pub fn http_get_as(&self, on: On, url: &str, authorization: &str) -> (u16, String) {
        let code = "import sys, urllib.request\n\
                    req = urllib.request.Request(sys.argv[1], headers={'Authorization': sys.argv[2]})\n\
                    try:\n    r = urllib.request.urlopen(req)\n    status, body = r.status, r.read()\n\
                    except urllib.error.HTTPError as e:\n    status, body = e.code, e.read()\n\
                    sys.stdout.write(str(status) + '\\n' + body.decode())";
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.ns(on)))
            .args(["python3", "-c", code, url, authorization])
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (status, body) = text.split_once('\n').unwrap_or(("0", ""));
        (status.parse().unwrap_or(0), body.to_string())
    }

    /// POST `body` (JSON) with a bearer secret from a node's namespace; the answer's body.
    pub fn http_post(&self, on: On, url: &str, secret: &str, body: &str) -> String {
        let code = "import sys, urllib.request\n\
                    req = urllib.request.Request(sys.argv[1], data=sys.argv[3].encode(), method='POST',\n\
                        headers={'Authorization': 'Bearer ' + sys.argv[2], 'Content-Type': 'application/json'})\n\
                    try:\n    body = urllib.request.urlopen(req).read()\n\
                    except urllib.error.HTTPError as e:\n    body = e.read()\n\
                    sys.stdout.write(body.decode())";
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.ns(on)))
            .args(["python3", "-c", code, url, secret, body])
            .output()
            .expect("python3");
        String::from_utf8_lossy(&out.stdout).into()
    }

    pub async fn engine(&self, on: On) -> Engine {
        Engine::connect(
            &format!("unix://{}", self.sock(on)),
            Duration::from_secs(10),
        )
        .await
        .expect("test engine")
    }

    pub fn tokens_dir(&self) -> String {
        self.work.join("tokens").display().to_string()
    }

    pub fn secret_file(&self) -> String {
        let p = self.work.join("api-secret");
        std::fs::write(&p, format!("{SECRET}\n")).unwrap();
        p.display().to_string()
    }

    /// A swarm on the manager (made by `swarm-agent init`, which is
    /// idempotent), the worker out of it, no services, no other nodes.
    pub async fn reset(&self) {
        let worker = self.engine(On::Worker).await;
        if worker.local_swarm().await.unwrap().state != LocalNodeState::INACTIVE {
            let opts = LeaveSwarmOptionsBuilder::default().force(true).build();
            worker.docker().leave_swarm(Some(opts)).await.unwrap();
        }
        let store = format!("file:{}", self.tokens_dir());
        self.agent(
            On::Manager,
            &[
                "init",
                "--token-store",
                &store,
                "--advertise-addr",
                &self.manager_ip,
            ],
        )
        .ok();
        let manager = self.engine(On::Manager).await;
        for s in manager.services().await.unwrap() {
            manager
                .docker()
                .delete_service(s.id.as_deref().unwrap())
                .await
                .unwrap();
        }
        let me = manager.local_swarm().await.unwrap().node_id.unwrap();
        for n in manager.nodes().await.unwrap() {
            let id = n.id.unwrap();
            if id != me {
                let opts = DeleteNodeOptionsBuilder::default().force(true).build();
                manager.docker().delete_node(&id, Some(opts)).await.unwrap();
            }
        }
    }

    pub async fn create_service(
        &self,
        name: &str,
        replicas: u64,
        labels: &[(&str, &str)],
    ) -> String {
        let manager = self.engine(On::Manager).await;
        let spec = ServiceSpec {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<HashMap<_, _>>(),
            ),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(replicas as i64),
                }),
                ..Default::default()
            }),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(self.image.clone()),
                    command: Some(vec!["sleep".into(), "3600".into()]),
                    health_check: Some(HealthConfig {
                        test: Some(vec!["CMD".into(), "true".into()]),
                        interval: Some(1_000_000_000),
                        ..Default::default()
                    }),
                    // busybox `sleep` ignores SIGTERM; SIGKILL keeps drains fast.
                    stop_signal: Some("SIGKILL".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let resp = manager
            .docker()
            .create_service(spec, None)
            .await
            .expect("create service");
        resp.id.unwrap()
    }
}

/// Kills the child (serve, IMDS stub) when the test ends, pass or fail.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Poll `check` until it yields Some, or panic after `limit` saying what we waited for.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
