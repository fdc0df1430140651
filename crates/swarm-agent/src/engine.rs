//! The local Docker engine: connecting (and waiting for it at boot) plus the
//! few swarm calls the agent makes, each mapped into our error type.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{
    LocalNodeState, Node, NodeSpec, Service, ServiceSpec, Swarm, SwarmInitRequest,
    SwarmJoinRequest, Task,
};
use bollard::query_parameters::{
    DeleteNodeOptionsBuilder, LeaveSwarmOptionsBuilder, ListNodesOptions, ListTasksOptionsBuilder,
    PruneImagesOptionsBuilder, UpdateNodeOptionsBuilder, UpdateServiceOptionsBuilder,
    UpdateSwarmOptionsBuilder,
};
use tracing::{debug, info};

use crate::backoff::{Backoff, Deadline};
use crate::error::{ConnectError, Error, RawError, Result};

/// Per-request timeout towards the engine (seconds). Swarm join alone can
/// take ~20 s inside the engine, so this must stay well above that.
const REQUEST_TIMEOUT_SECS: u64 = 60;

/// A registry login, as a token from the registry's API gives it.
#[derive(Clone)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// The registry's address as the token names it (ECR's proxy endpoint).
    pub server: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    endpoint: String,
}

/// What the local engine says about its own swarm membership.
#[derive(Debug, Clone, Default)]
pub struct LocalSwarm {
    pub state: LocalNodeState,
    pub node_id: Option<String>,
    pub node_addr: Option<String>,
    pub is_manager: bool,
    pub cluster_id: Option<String>,
    /// `ip:port` of the managers this node talks to.
    pub remote_managers: Vec<String>,
    pub error: Option<String>,
    /// The engine's host name (what `docker node ls` shows for this node).
    pub hostname: Option<String>,
}

impl Engine {
    /// Connect and negotiate the API version, retrying with backoff until
    /// `wait` runs out: at boot the agent may start before dockerd.
    pub async fn connect(endpoint: &str, wait: Duration) -> Result<Engine> {
        let deadline = Deadline::after(wait);
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        let mut attempt = 0;
        loop {
            match Self::try_connect(endpoint).await {
                Ok(docker) => {
                    return Ok(Engine {
                        docker,
                        endpoint: endpoint.to_string(),
                    });
                }
                Err(reason) => {
                    debug!(%endpoint, %reason, "engine not ready yet");
                    if !deadline.sleep(backoff.delay(attempt)).await {
                        return Err(Error::EngineUnavailable {
                            endpoint: endpoint.to_string(),
                            waited: deadline.elapsed(),
                            reason,
                        });
                    }
                    attempt += 1;
                }
            }
        }
    }

    async fn try_connect(endpoint: &str) -> std::result::Result<Docker, ConnectError> {
        let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
            Docker::connect_with_socket(path, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
            let url = endpoint.replacen("tcp://", "http://", 1);
            Docker::connect_with_http(&url, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else {
            return Err(ConnectError::Unsupported(endpoint.to_string()));
        }?;
        // The engine may be older than bollard's default API version (20.10 speaks 1.41).
        Ok(docker.negotiate_version().await?)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub async fn local_swarm(&self) -> Result<LocalSwarm> {
        let info = self.docker.info().await.map_err(Error::engine("info"))?;
        let swarm = info.swarm.unwrap_or_default();
        Ok(LocalSwarm {
            state: swarm.local_node_state.unwrap_or_default(),
            node_id: swarm.node_id.filter(|s| !s.is_empty()),
            node_addr: swarm.node_addr.filter(|s| !s.is_empty()),
            is_manager: swarm.control_available.unwrap_or(false),
            cluster_id: swarm.cluster.and_then(|c| c.id),
            remote_managers: swarm
                .remote_managers
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.addr)
                .collect(),
            error: swarm.error.filter(|s| !s.is_empty()),
            hostname: info.name.filter(|s| !s.is_empty()),
        })
    }

    pub async fn init_swarm(&self, req: SwarmInitRequest) -> Result<String> {
        self.docker
            .init_swarm(req)
            .await
            .map_err(Error::engine("swarm init"))
    }

    pub async fn join_swarm(
        &self,
        req: SwarmJoinRequest,
    ) -> std::result::Result<(), bollard::errors::Error> {
        self.docker.join_swarm(req).await
    }

    pub async fn leave_swarm(&self, force: bool) -> Result<()> {
        let opts = LeaveSwarmOptionsBuilder::default().force(force).build();
        self.docker
            .leave_swarm(Some(opts))
            .await
            .map_err(Error::engine("swarm leave"))
    }

    pub async fn inspect_swarm(&self) -> Result<Swarm> {
        self.docker
            .inspect_swarm()
            .await
            .map_err(Error::engine("swarm inspect"))
    }

    pub async fn rotate_worker_token(&self) -> Result<()> {
        let swarm = self.inspect_swarm().await?;
        let version = swarm.version.and_then(|v| v.index).unwrap_or_default();
        let opts = UpdateSwarmOptionsBuilder::default()
            .version(version as i64)
            .rotate_worker_token(true)
            .build();
        self.docker
            .update_swarm(swarm.spec.unwrap_or_default(), opts)
            .await
            .map_err(Error::engine("swarm update (rotate worker token)"))
    }

    pub async fn nodes(&self) -> Result<Vec<Node>> {
        self.docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(Error::engine("node ls"))
    }

    pub async fn node(&self, id: &str) -> Result<Node> {
        self.docker
            .inspect_node(id)
            .await
            .map_err(Error::engine("node inspect"))
    }

    /// Read-modify-write of a node spec. Swarm rejects stale versions, so a
    /// concurrent change (another manager's agent, an operator) makes us retry.
    pub async fn update_node(&self, id: &str, change: impl Fn(&mut NodeSpec)) -> Result<()> {
        let mut last = None;
        for _ in 0..3 {
            let node = self.node(id).await?;
            let mut spec = node.spec.unwrap_or_default();
            change(&mut spec);
            let version = node.version.and_then(|v| v.index).unwrap_or_default();
            let opts = UpdateNodeOptionsBuilder::default()
                .version(version as i64)
                .build();
            match self.docker.update_node(id, spec, opts).await {
                Ok(()) => return Ok(()),
                Err(e) if e.to_string().contains("out of sequence") => last = Some(e),
                Err(e) => {
                    return Err(Error::Engine {
                        call: "node update",
                        source: e,
                    });
                }
            }
        }
        Err(Error::Engine {
            call: "node update",
            source: last.expect("loop ran"),
        })
    }

    pub async fn remove_node(&self, id: &str, force: bool) -> Result<()> {
        let opts = DeleteNodeOptionsBuilder::default().force(force).build();
        self.docker
            .delete_node(id, Some(opts))
            .await
            .map_err(Error::engine("node rm"))
    }

    /// Services with their running/desired counts (`status=true`, API >= 1.41).
    ///
    /// Read as raw JSON, not through bollard's `list_services`: the engine
    /// names a container's healthcheck `Healthcheck` while bollard's model
    /// expects `HealthCheck`, so the typed read silently drops it, `status`
    /// then warns about a missing healthcheck, and a forced update built from
    /// that spec would strip the healthcheck from the service.
    pub async fn services(&self) -> Result<Vec<Service>> {
        let mut raw = raw::get_json(&self.endpoint, &self.api_path("/services?status=true"))
            .await
            .map_err(|source| Error::EngineRaw {
                call: "service ls",
                source,
            })?;
        if let Some(list) = raw.as_array_mut() {
            list.iter_mut().for_each(raw::normalise_healthcheck_key);
        }
        serde_json::from_value(raw).map_err(|e| Error::EngineRaw {
            call: "service ls",
            source: RawError::Unexpected(e),
        })
    }

    fn api_path(&self, path: &str) -> String {
        format!("/v{}{path}", self.docker.client_version())
    }

    /// Remove every image no container uses that was created more than
    /// `older_than` ago (`docker image prune --all --filter until=…`).
    /// Returns how many images and layers were deleted, and the bytes freed.
    pub async fn prune_unused_images(&self, older_than: Duration) -> Result<(usize, u64)> {
        let until = format!("{}s", older_than.as_secs());
        let filters = HashMap::from([("dangling", vec!["false"]), ("until", vec![until.as_str()])]);
        let opts = PruneImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let pruned = self
            .docker
            .prune_images(Some(opts))
            .await
            .map_err(Error::engine("image prune"))?;
        Ok((
            pruned
                .images_deleted
                .unwrap_or_default()
                .iter()
                .filter(|d| d.deleted.is_some())
                .count(),
            pruned.space_reclaimed.unwrap_or(0).max(0) as u64,
        ))
    }

    pub async fn tasks_on_node(&self, node_id: &str) -> Result<Vec<Task>> {
        let filters = HashMap::from([("node", vec![node_id])]);
        let opts = ListTasksOptionsBuilder::default().filters(&filters).build();
        self.docker
            .list_tasks(Some(opts))
            .await
            .map_err(Error::engine("task ls"))
    }

    /// The ids of the tasks the swarm wants running: not those it is
    /// stopping (a scale-in's surplus during its grace period) or replacing.
    pub async fn tasks_wanted_running(&self) -> Result<Vec<String>> {
        let filters = HashMap::from([("desired-state", vec!["running"])]);
        let opts = ListTasksOptionsBuilder::default().filters(&filters).build();
        let tasks = self
            .docker
            .list_tasks(Some(opts))
            .await
            .map_err(Error::engine("task ls"))?;
        Ok(tasks.into_iter().filter_map(|t| t.id).collect())
    }

    /// One service, as the engine holds it (with its spec version).
    /// Read raw, as [`Engine::services`] does, so an update built from it
    /// keeps the healthcheck.
    pub async fn service(&self, id: &str) -> Result<Service> {
        let mut raw = raw::get_json(&self.endpoint, &self.api_path(&format!("/services/{id}")))
            .await
            .map_err(|source| Error::EngineRaw {
                call: "service inspect",
                source,
            })?;
        raw::normalise_healthcheck_key(&mut raw);
        serde_json::from_value(raw).map_err(|e| Error::EngineRaw {
            call: "service inspect",
            source: RawError::Unexpected(e),
        })
    }

    /// Every task the swarm keeps, for replicas per node on the fleet page.
    pub async fn tasks(&self) -> Result<Vec<Task>> {
        self.docker
            .list_tasks(None::<bollard::query_parameters::ListTasksOptions>)
            .await
            .map_err(Error::engine("task ls"))
    }

    /// A forced update restarts every task of the service, letting the
    /// scheduler place them again, now including freshly joined nodes.
    pub async fn force_update_service(&self, service: &Service) -> Result<()> {
        let id = service.id.as_deref().unwrap_or_default();
        let mut spec: ServiceSpec = service.spec.clone().unwrap_or_default();
        let task = spec.task_template.get_or_insert_with(Default::default);
        task.force_update = Some(task.force_update.unwrap_or(0) + 1);
        self.update_service(service, spec, "service update --force")
            .await?;
        info!(service = id, "forced service update submitted");
        Ok(())
    }

    /// Submits `spec` as the next version of `service` (the engine refuses it
    /// if someone else updated the service in between).
    async fn update_service(
        &self,
        service: &Service,
        spec: ServiceSpec,
        what: &'static str,
    ) -> Result<()> {
        self.update_service_with_auth(service, spec, None, what)
            .await
    }

    /// The same, storing `auth` as the registry auth tasks are pulled with
    /// (None: the engine keeps the one the spec holds).
    async fn update_service_with_auth(
        &self,
        service: &Service,
        spec: ServiceSpec,
        auth: Option<DockerCredentials>,
        what: &'static str,
    ) -> Result<()> {
        let id = service.id.as_deref().unwrap_or_default();
        let version = service
            .version
            .as_ref()
            .and_then(|v| v.index)
            .unwrap_or_default();
        let opts = UpdateServiceOptionsBuilder::default()
            .version(version as i32)
            .build();
        self.docker
            .update_service(id, spec, opts, auth)
            .await
            .map_err(Error::engine(what))?;
        Ok(())
    }

    /// Set a replicated service's replica count, and `labels` on the service
    /// in the same update (one spec version: the label records the scale).
    /// Only the count changes, so Swarm starts or stops tasks and restarts
    /// none; a stopped task gets the stack's stop grace period.
    pub async fn scale_service(
        &self,
        service: &Service,
        replicas: u64,
        labels: &[(&str, String)],
    ) -> Result<()> {
        let mut spec: ServiceSpec = service.spec.clone().unwrap_or_default();
        let mode = spec.mode.get_or_insert_with(Default::default);
        let replicated = mode.replicated.get_or_insert_with(Default::default);
        replicated.replicas = Some(replicas as i64);
        let spec_labels = spec.labels.get_or_insert_with(Default::default);
        for (k, v) in labels {
            spec_labels.insert((*k).to_string(), v.clone());
        }
        self.update_service(service, spec, "service scale").await
    }

    /// Sets the order of the service's updates and rollbacks, and `label`
    /// (Some: set, None: removed) in the same spec version. The task
    /// template is untouched, so no task restarts; an update in progress is
    /// taken up again by the engine under the new order.
    pub async fn set_update_order(
        &self,
        service: &Service,
        start_first: bool,
        label: (&str, Option<&str>),
    ) -> Result<()> {
        use bollard::models::{
            ServiceSpecRollbackConfigOrderEnum as RollbackOrder,
            ServiceSpecUpdateConfigOrderEnum as UpdateOrder,
        };
        let mut spec: ServiceSpec = service.spec.clone().unwrap_or_default();
        let update = spec.update_config.get_or_insert_with(Default::default);
        update.order = Some(if start_first {
            UpdateOrder::START_FIRST
        } else {
            UpdateOrder::STOP_FIRST
        });
        let rollback = spec.rollback_config.get_or_insert_with(Default::default);
        rollback.order = Some(if start_first {
            RollbackOrder::START_FIRST
        } else {
            RollbackOrder::STOP_FIRST
        });
        let labels = spec.labels.get_or_insert_with(Default::default);
        match label {
            (key, Some(value)) => labels.insert(key.to_string(), value.to_string()),
            (key, None) => labels.remove(key),
        };
        self.update_service(service, spec, "service update --update-order")
            .await
    }

    /// Stores `credential` as the registry auth the service's tasks are
    /// pulled with, and `label` on the service, in one spec version. The
    /// task template is untouched: running tasks keep running (Swarm ignores
    /// a running task's pull options), new ones pull with the new auth.
    pub async fn renew_registry_auth(
        &self,
        service: &Service,
        credential: &Credential,
        label: (&str, String),
    ) -> Result<()> {
        let mut spec: ServiceSpec = service.spec.clone().unwrap_or_default();
        spec.labels
            .get_or_insert_with(Default::default)
            .insert(label.0.to_string(), label.1);
        let auth = DockerCredentials {
            username: Some(credential.username.clone()),
            password: Some(credential.password.clone()),
            serveraddress: Some(credential.server.clone()),
            ..Default::default()
        };
        self.update_service_with_auth(
            service,
            spec,
            Some(auth),
            "service update --with-registry-auth",
        )
        .await
    }

    /// Running containers of swarm tasks on this engine (raw read: only the
    /// labels and creation time are needed).
    pub async fn task_containers(&self) -> Result<Vec<TaskContainer>> {
        // filters={"label":["com.docker.swarm.task.id"],"status":["running"]}
        const FILTERS: &str = "%7B%22label%22%3A%5B%22com.docker.swarm.task.id%22%5D%2C%22status%22%3A%5B%22running%22%5D%7D";
        let raw = raw::get_json(
            &self.endpoint,
            &self.api_path(&format!("/containers/json?filters={FILTERS}")),
        )
        .await
        .map_err(|source| Error::EngineRaw {
            call: "container ls",
            source,
        })?;
        Ok(raw
            .as_array()
            .map(|list| list.iter().filter_map(TaskContainer::from_json).collect())
            .unwrap_or_default())
    }

    /// The swarm service of the running container on this engine that holds
    /// address `ip` (None: no such container, or not a swarm task). A swarm
    /// task reaches its own node through `docker_gwbridge`, whose endpoints
    /// `docker inspect` of the container does not list, so that network is
    /// asked first; then every container's own networks (a plain bridge).
    /// The label is the engine's, not the container's to set.
    pub async fn service_of_container_at(&self, ip: std::net::IpAddr) -> Result<Option<String>> {
        let wanted = ip.to_string();
        let holds = |address: &serde_json::Value| {
            address
                .as_str()
                .is_some_and(|a| a.split('/').next() == Some(wanted.as_str()))
        };
        let gwbridge = self
            .raw_get("network inspect", "/networks/docker_gwbridge")
            .await;
        if let Ok(net) = gwbridge
            && let Some(id) = net["Containers"]
                .as_object()
                .and_then(|cs| cs.iter().find(|(_, c)| holds(&c["IPv4Address"])))
                .map(|(id, _)| id.clone())
        {
            let container = self
                .raw_get("container inspect", &format!("/containers/{id}/json"))
                .await?;
            return Ok(
                container["Config"]["Labels"]["com.docker.swarm.service.name"]
                    .as_str()
                    .map(String::from),
            );
        }
        let listed = self.raw_get("container ls", "/containers/json").await?;
        let holder = listed.as_array().into_iter().flatten().find(|c| {
            c["NetworkSettings"]["Networks"]
                .as_object()
                .is_some_and(|nets| nets.values().any(|n| holds(&n["IPAddress"])))
        });
        Ok(holder
            .and_then(|c| c["Labels"]["com.docker.swarm.service.name"].as_str())
            .map(String::from))
    }

    async fn raw_get(&self, call: &'static str, path: &str) -> Result<serde_json::Value> {
        raw::get_json(&self.endpoint, &self.api_path(path))
            .await
            .map_err(|source| Error::EngineRaw { call, source })
    }

    /// One stats answer with two readings (`precpu_stats` is the earlier):
    /// the engine waits for its next collection, about a second.
    pub async fn container_stats(&self, id: &str) -> Result<serde_json::Value> {
        raw::get_json(
            &self.endpoint,
            &self.api_path(&format!("/containers/{id}/stats?stream=false")),
        )
        .await
        .map_err(|source| Error::EngineRaw {
            call: "container stats",
            source,
        })
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// An engine at a path nobody listens on: every call fails, as when
    /// dockerd is down. For tests of what callers show then. The path must
    /// exist (bollard checks that when it builds the client), so it is
    /// /dev/null, which no connect can succeed on.
    #[cfg(test)]
    pub(crate) fn unreachable() -> Engine {
        let path = "/dev/null";
        Engine {
            docker: Docker::connect_with_socket(path, 1, bollard::API_DEFAULT_VERSION)
                .expect("a socket client is built without connecting"),
            endpoint: format!("unix://{path}"),
        }
    }
}

/// A running container of a swarm task, as `container ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskContainer {
    pub id: String,
    pub service_id: String,
    pub task_id: String,
    /// Unix seconds.
    pub created: i64,
}

impl TaskContainer {
    fn from_json(c: &serde_json::Value) -> Option<TaskContainer> {
        let label = |k: &str| {
            c.pointer("/Labels")
                .and_then(|l| l.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        Some(TaskContainer {
            id: c.get("Id")?.as_str()?.to_string(),
            service_id: label("com.docker.swarm.service.id")?,
            task_id: label("com.docker.swarm.task.id")?,
            created: c.get("Created").and_then(|v| v.as_i64()).unwrap_or(0),
        })
    }
}

/// The few engine reads bollard's typed model cannot do faithfully.
mod raw {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;

    use crate::error::RawError;

    /// GET `path` from the engine at `endpoint` (unix:// or tcp://) as JSON.
    pub async fn get_json(endpoint: &str, path: &str) -> Result<serde_json::Value, RawError> {
        let timeout = std::time::Duration::from_secs(super::REQUEST_TIMEOUT_SECS);
        tokio::time::timeout(timeout, fetch(endpoint, path))
            .await
            .map_err(|_| RawError::Timeout(timeout))?
    }

    async fn fetch(endpoint: &str, path: &str) -> Result<serde_json::Value, RawError> {
        let connect_failed = |at: &str| {
            let at = at.to_string();
            move |source| RawError::Connect { at, source }
        };
        let body = if let Some(socket) = endpoint.strip_prefix("unix://") {
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .map_err(connect_failed(socket))?;
            send(TokioIo::new(stream), path).await?
        } else {
            let host = endpoint
                .trim_start_matches("tcp://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            let stream = tokio::net::TcpStream::connect(host)
                .await
                .map_err(connect_failed(host))?;
            send(TokioIo::new(stream), path).await?
        };
        Ok(serde_json::from_slice(&body)?)
    }

    async fn send<T>(io: TokioIo<T>, path: &str) -> Result<Bytes, RawError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, "docker")
            .body(Empty::<Bytes>::new())
            .expect("a path and a constant header make a valid request");
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            let body = String::from_utf8_lossy(&body).into_owned();
            return Err(RawError::Status { status, body });
        }
        Ok(body)
    }

    /// Rename `Spec.TaskTemplate.ContainerSpec.Healthcheck` to the key bollard reads.
    pub fn normalise_healthcheck_key(service: &mut serde_json::Value) {
        let container = service
            .pointer_mut("/Spec/TaskTemplate/ContainerSpec")
            .and_then(|c| c.as_object_mut());
        if let Some(container) = container
            && let Some(check) = container.remove("Healthcheck")
        {
            container.insert("HealthCheck".into(), check);
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn engine_healthcheck_key_becomes_bollards() {
            let mut service = serde_json::json!({
                "ID": "x",
                "Spec": {"TaskTemplate": {"ContainerSpec": {
                    "Image": "shop", "Healthcheck": {"Test": ["CMD", "storefront", "healthcheck"]}
                }}}
            });
            super::normalise_healthcheck_key(&mut service);
            let typed: bollard::models::Service = serde_json::from_value(service).unwrap();
            let check = typed
                .spec
                .unwrap()
                .task_template
                .unwrap()
                .container_spec
                .unwrap()
                .health_check;
            assert_eq!(check.unwrap().test.unwrap()[1], "storefront");
        }
    }
}
