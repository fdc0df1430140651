//! The stack under test: `scripts/e2e-swarm` deploys the real stack.yml
//! (its images built from the real Dockerfiles) under one name, and a
//! scenario reads and changes it here, through the engine's API.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::{
    ExecConfig, HealthConfig, NetworkAttachmentConfig, Service, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicatedJob, TaskSpec, TaskSpecContainerSpec, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListTasksOptionsBuilder, LogsOptionsBuilder,
    UpdateServiceOptionsBuilder,
};
use futures::StreamExt;

use crate::wait;

/// The replicas stack.yml starts with, on the one-node swarm of the tests.
pub const REPLICAS: usize = 3;

/// A deployed stack: its name, the shop's published port, the engine.
pub struct Stack {
    name: String,
    base: String,
    docker: Docker,
}

impl Stack {
    /// The stack `scripts/e2e-swarm` deployed (`E2E_STACK`, `E2E_PORT`),
    /// with every storefront replica healthy and the demo catalog in it:
    /// the state each scenario starts from.
    pub async fn established() -> Result<Stack> {
        let stack = Stack::from_env()?;
        stack.require_deployed().await?;
        stack
            .wait_healthy(REPLICAS, Duration::from_secs(240))
            .await?;
        stack.seed_demo().await?;
        Ok(stack)
    }

    fn from_env() -> Result<Stack> {
        let name = std::env::var("E2E_STACK").unwrap_or_else(|_| "bookstore-e2e".into());
        let port = std::env::var("E2E_PORT").unwrap_or_else(|_| "18080".into());
        let docker = Docker::connect_with_local_defaults()
            .context("connecting to the Docker engine (is it running?)")?;
        Ok(Stack {
            name,
            base: format!("http://127.0.0.1:{port}"),
            docker,
        })
    }

    async fn require_deployed(&self) -> Result<()> {
        let service = self.service_name("storefront");
        if self.service("storefront").await.is_err() {
            bail!(
                "no service {service} on this engine: these scenarios run on the stack \
                 scripts/e2e-swarm deploys (`scripts/e2e-swarm NAME` deploys one and runs \
                 the scenario NAME on it)"
            );
        }
        Ok(())
    }

    /// The shop's address, as the load balancer reaches the node proxy.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn service_name(&self, service: &str) -> String {
        format!("{}_{service}", self.name)
    }

    /// One of the stack's services, as the engine holds it now.
    async fn service(&self, service: &str) -> Result<Service> {
        let name = self.service_name(service);
        let current = self.docker.inspect_service(&name, None).await;
        current.with_context(|| format!("reading the service {name}"))
    }

    /// The running containers of one of the stack's services.
    pub async fn containers_of(&self, service: &str) -> Result<Vec<String>> {
        self.containers_where(service, None).await
    }

    async fn containers_where(&self, service: &str, health: Option<&str>) -> Result<Vec<String>> {
        let mut filters = HashMap::from([(
            "label",
            vec![format!(
                "com.docker.swarm.service.name={}",
                self.service_name(service)
            )],
        )]);
        if let Some(health) = health {
            filters.insert("health", vec![health.to_string()]);
        }
        let options = ListContainersOptionsBuilder::new()
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .with_context(|| format!("listing the containers of {service}"))?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }

    /// The container of one task, by the task's name (`X-Served-By`).
    pub async fn container_of_task(&self, task: &str) -> Result<String> {
        let filters =
            HashMap::from([("label", vec![format!("com.docker.swarm.task.name={task}")])]);
        let options = ListContainersOptionsBuilder::new()
            .filters(&filters)
            .build();
        let containers = self.docker.list_containers(Some(options)).await?;
        let container = containers.into_iter().find_map(|c| c.id);
        container.with_context(|| format!("no running container of the task {task}"))
    }

    /// Kills a container, as a crashed replica or a lost node would end it.
    pub async fn kill(&self, container: &str) -> Result<()> {
        self.docker
            .kill_container(container, None)
            .await
            .with_context(|| format!("killing {container}"))
    }

    /// Waits until `replicas` storefront containers are healthy and the
    /// published port answers (the routing mesh adds new tasks a moment
    /// after they turn healthy).
    pub async fn wait_healthy(&self, replicas: usize, limit: Duration) -> Result<()> {
        let what = format!("{replicas} healthy storefront replicas");
        wait::until(limit, &what, || async {
            self.containers_where("storefront", Some("healthy"))
                .await
                .is_ok_and(|healthy| healthy.len() >= replicas)
        })
        .await?;
        let readyz = format!("{}/readyz", self.base);
        let client = reqwest::Client::new();
        wait::until(Duration::from_secs(30), "the published port", || async {
            client
                .get(&readyz)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|answer| answer.status().is_success())
        })
        .await
    }

    /// Sets a replicated service's replica count (what `docker service
    /// scale --detach` does): the engine starts or stops tasks meanwhile.
    pub async fn scale(&self, service: &str, replicas: u64) -> Result<()> {
        let name = self.service_name(service);
        let current = self.service(service).await?;
        let mut spec = current.spec.clone().unwrap_or_default();
        let mode = spec.mode.get_or_insert_with(Default::default);
        mode.replicated
            .get_or_insert_with(Default::default)
            .replicas = Some(replicas as i64);
        let version = current.version.and_then(|v| v.index).unwrap_or_default();
        let options = UpdateServiceOptionsBuilder::default()
            .version(version as i32)
            .build();
        self.docker
            .update_service(&name, spec, options, None)
            .await
            .with_context(|| format!("scaling {name} to {replicas}"))?;
        Ok(())
    }

    /// Runs `command` inside `container`.
    pub async fn exec(&self, container: &str, command: &[&str]) -> Result<Ran> {
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(command.iter().map(|c| c.to_string()).collect()),
            ..Default::default()
        };
        let exec = self.docker.create_exec(container, config).await?;
        let mut ran = Ran::default();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await?
        {
            while let Some(chunk) = output.next().await {
                match chunk? {
                    LogOutput::StdErr { message } => ran.stderr.push_str(&lossy(&message)),
                    other => ran.stdout.push_str(&lossy(&other.into_bytes())),
                }
            }
        }
        ran.code = self.docker.inspect_exec(&exec.id).await?.exit_code;
        Ok(ran)
    }

    /// Runs `command` in the (first) container of one of the stack's
    /// services; what it printed, or an error naming its exit code.
    pub async fn exec_in(&self, service: &str, command: &[&str]) -> Result<String> {
        let containers = self.containers_of(service).await?;
        let container = containers
            .first()
            .with_context(|| format!("no running container of {service}"))?;
        let ran = self.exec(container, command).await?;
        if ran.code != Some(0) {
            bail!(
                "{command:?} in {service} exited with {:?}: {}",
                ran.code,
                ran.stderr
            );
        }
        Ok(ran.stdout)
    }

    /// One SQL statement as MySQL's root, inside the mysql task, on the
    /// shop's database; its rows, tab-separated, without a header.
    pub async fn sql(&self, statement: &str) -> Result<String> {
        const AS_ROOT: &str =
            r#"mariadb -uroot -p"$(cat /run/secrets/mysql_root_password)" -N bookstore -e "$1""#;
        self.exec_in("mysql", &["sh", "-c", AS_ROOT, "sh", statement])
            .await
    }

    /// The image a service of the stack runs.
    pub async fn image_of(&self, service: &str) -> Result<String> {
        let name = self.service_name(service);
        let image = self
            .service(service)
            .await?
            .spec
            .and_then(|spec| spec.task_template)
            .and_then(|task| task.container_spec)
            .and_then(|container| container.image);
        image.with_context(|| format!("{name} names no image"))
    }

    /// Runs `script` with bash once, as a job on the stack's backend network
    /// in `image` (a client inside the swarm, with a task address of its
    /// own), and returns what it printed. The job is removed afterwards.
    pub async fn run_job(&self, job: &str, image: &str, script: &str) -> Result<String> {
        let name = self.service_name(job);
        let _ = self.docker.delete_service(&name).await;
        let spec = job_spec(&name, image, script, &self.service_name("backend"));
        self.docker
            .create_service(spec, None)
            .await
            .with_context(|| format!("creating the job {name}"))?;
        let ended = self.wait_job_ended(&name).await;
        let printed = match &ended {
            Ok(container) => self.stdout_of(container).await,
            Err(_) => Ok(String::new()),
        };
        let _ = self.docker.delete_service(&name).await;
        ended?;
        printed
    }

    /// The container of the job's task, once the task has ended.
    async fn wait_job_ended(&self, name: &str) -> Result<String> {
        let filters = HashMap::from([("service", vec![name.to_string()])]);
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        let what = format!("the job {name} to end");
        wait::until_found(Duration::from_secs(180), &what, || async {
            let tasks = self.docker.list_tasks(Some(options.clone())).await.ok()?;
            let status = tasks.into_iter().find_map(|task| task.status)?;
            let ended = matches!(
                status.state,
                Some(
                    TaskState::COMPLETE
                        | TaskState::FAILED
                        | TaskState::REJECTED
                        | TaskState::SHUTDOWN
                        | TaskState::ORPHANED
                )
            );
            // An ended task without a container never ran: the engine's
            // reason, rather than waiting out the deadline.
            let container = status.container_status.and_then(|c| c.container_id);
            ended.then(|| container.ok_or_else(|| status.err.unwrap_or_default()))
        })
        .await?
        .map_err(|why| anyhow::anyhow!("the job {name} ended without running: {why}"))
    }

    async fn stdout_of(&self, container: &str) -> Result<String> {
        let options = LogsOptionsBuilder::new().stdout(true).build();
        let mut logs = self.docker.logs(container, Some(options));
        let mut printed = String::new();
        while let Some(chunk) = logs.next().await {
            printed.push_str(&lossy(&chunk?.into_bytes()));
        }
        Ok(printed)
    }

    /// A replica's own readiness, asked inside its container (the image
    /// has bash, not curl), not through the proxy that picks one.
    pub async fn replica_ready(&self, container: &str) -> bool {
        const ASK: &str = "exec 3<>/dev/tcp/127.0.0.1/8080 && \
             printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 head -1 <&3";
        self.exec(container, &["bash", "-c", ASK])
            .await
            .is_ok_and(|ran| ran.stdout.contains(" 200 "))
    }

    /// Every storefront replica ready (and there is at least one).
    pub async fn every_replica_ready(&self) -> bool {
        let Ok(replicas) = self.containers_of("storefront").await else {
            return false;
        };
        for replica in &replicas {
            if !self.replica_ready(replica).await {
                return false;
            }
        }
        !replicas.is_empty()
    }

    /// The demo catalog, as operators fill a new shop (a no-op when the
    /// shop has books).
    async fn seed_demo(&self) -> Result<()> {
        self.exec_in("storefront", &["storefront", "seed-demo"])
            .await
            .map(drop)
    }

    /// Stops every task of `service` until the returned guard restarts it
    /// (or is dropped, when a scenario fails half-way: the scenarios after
    /// it find the stack whole).
    pub async fn stop(&self, service: &str) -> Result<Stopped> {
        let replicas = self.replicas_of(service).await?;
        if replicas == 0 {
            bail!("{service} is already stopped (a run interrupted before it was restarted?)");
        }
        self.scale(service, 0).await?;
        Ok(Stopped {
            service: service.to_string(),
            full_name: self.service_name(service),
            replicas,
            restarted: false,
        })
    }

    /// Starts a service [`Stack::stop`] stopped, with the replicas it had.
    pub async fn restart(&self, mut stopped: Stopped) -> Result<()> {
        self.scale(&stopped.service, stopped.replicas).await?;
        stopped.restarted = true;
        Ok(())
    }

    async fn replicas_of(&self, service: &str) -> Result<u64> {
        let name = self.service_name(service);
        let replicas = self
            .service(service)
            .await?
            .spec
            .and_then(|spec| spec.mode)
            .and_then(|mode| mode.replicated)
            .and_then(|replicated| replicated.replicas);
        replicas
            .map(|n| n as u64)
            .with_context(|| format!("{name} is not a replicated service"))
    }
}

/// A one-off job (`docker service create --mode replicated-job
/// --restart-condition none --no-healthcheck --entrypoint bash`).
fn job_spec(name: &str, image: &str, script: &str, network: &str) -> ServiceSpec {
    let container = TaskSpecContainerSpec {
        image: Some(image.to_string()),
        command: Some(vec!["bash".into()]),
        args: Some(vec!["-c".into(), script.to_string()]),
        health_check: Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let task = TaskSpec {
        container_spec: Some(container),
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
            ..Default::default()
        }),
        networks: Some(vec![NetworkAttachmentConfig {
            target: Some(network.to_string()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let once = ServiceSpecModeReplicatedJob {
        max_concurrent: Some(1),
        total_completions: Some(1),
    };
    ServiceSpec {
        name: Some(name.to_string()),
        mode: Some(ServiceSpecMode {
            replicated_job: Some(once),
            ..Default::default()
        }),
        task_template: Some(task),
        ..Default::default()
    }
}

/// What a command run in a container left.
#[derive(Default)]
pub struct Ran {
    /// None when the engine did not say (the command is still running).
    pub code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A service stopped by [`Stack::stop`]; started again with the replicas it
/// had when dropped without [`Stack::restart`].
#[must_use = "the service stays stopped until restarted"]
pub struct Stopped {
    service: String,
    full_name: String,
    replicas: u64,
    restarted: bool,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.restarted {
            // Drop cannot await the engine's API: the CLI makes the same update.
            let restarted = std::process::Command::new("docker")
                .args(["service", "scale", "--detach"])
                .arg(format!("{}={}", self.full_name, self.replicas))
                .status();
            if !restarted.as_ref().is_ok_and(|status| status.success()) {
                eprintln!("could not start {} again: {restarted:?}", self.full_name);
            }
        }
    }
}
