//! Command line. Every flag can also come from a `SWARM_AGENT_*` variable so
//! the same binary is configured by a systemd `EnvironmentFile`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "swarm-agent",
    version,
    about = "Docker Swarm node companion: join at boot, drain and leave at scale-in, reconcile, report",
    long_about = "Runs on every node of a Docker Swarm fleet (e.g. an AWS Auto Scaling Group).\n\
                  `init` on the first manager, `join` at boot, `leave` at shutdown, `serve` on managers, \
                  `status` for people and scripts. Every flag can also be set with the SWARM_AGENT_* \
                  variable shown in its help."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Docker engine endpoint: unix:///path/to.sock or tcp://host:port.
    #[arg(
        long,
        global = true,
        env = "SWARM_AGENT_DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,

    /// How long to wait for the local engine to answer before failing (e.g. 90s, 2m).
    #[arg(long, global = true, env = "SWARM_AGENT_ENGINE_WAIT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub engine_wait: Duration,

    /// Log and report what would be done, change nothing.
    #[arg(long, global = true, env = "SWARM_AGENT_DRY_RUN")]
    pub dry_run: bool,

    /// Log format for the journal: text for people, json for log shippers.
    #[arg(
        long,
        global = true,
        env = "SWARM_AGENT_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// First manager: initialise the swarm if needed and publish join tokens to the token store.
    /// Exit code 4: another manager claimed the founding first (join it instead).
    Init(InitArgs),
    /// At boot: join the swarm (idempotent) with a token from the store, and label the node.
    Join(JoinArgs),
    /// At shutdown / scale-in: drain this node, wait for its tasks to move, leave, get removed.
    Leave(LeaveArgs),
    /// One-shot report of nodes and services. Exit code: 0 healthy, 1 degraded, 3 down.
    Status(StatusArgs),
    /// Every node, long-running: watch for termination notices and hand work over first;
    /// managers also serve the agent API and republish tokens; the leader reconciles.
    Serve(Box<ServeArgs>),
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Where join tokens, manager addresses and the API secret live:
    /// `file:/dir` or `ssm:/parameter/prefix` (AWS SSM SecureStrings).
    #[arg(long, env = "SWARM_AGENT_TOKEN_STORE")]
    pub token_store: Option<String>,

    /// Custom SSM endpoint URL (tests, VPC endpoints). Default: the AWS regional endpoint.
    #[arg(long, env = "SWARM_AGENT_SSM_ENDPOINT")]
    pub ssm_endpoint: Option<String>,

    /// AWS region for SSM and Auto Scaling. Default: from the AWS environment / instance metadata.
    #[arg(long, env = "SWARM_AGENT_AWS_REGION")]
    pub aws_region: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    /// File holding the bearer secret of the agents' API. Default: the token
    /// store's `api-secret` (published by `init`).
    #[arg(long, env = "SWARM_AGENT_API_SECRET_FILE")]
    pub api_secret_file: Option<PathBuf>,

    /// The shared bearer secret itself (prefer --api-secret-file: env values leak into `ps e`).
    #[arg(long, env = "SWARM_AGENT_API_SECRET", hide_env_values = true)]
    pub api_secret: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// Address other nodes use to reach this manager (default: engine's choice).
    #[arg(long, env = "SWARM_AGENT_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,

    /// Address the swarm listens on.
    #[arg(long, env = "SWARM_AGENT_LISTEN_ADDR", default_value = "0.0.0.0:2377")]
    pub listen_addr: String,

    /// Rotate the worker join token and republish it (old token stops working at once).
    #[arg(long, env = "SWARM_AGENT_ROTATE_WORKER_TOKEN")]
    pub rotate_worker_token: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JoinRole {
    Worker,
    Manager,
}

/// How a node finds the managers and their agents (join, leave, serve).
#[derive(Debug, Clone, Default, Args)]
pub struct ManagersArgs {
    /// Manager addresses (host or host:port, comma separated). A DNS name may resolve to
    /// several managers; each is tried. Default: the list published in the token store.
    #[arg(long = "manager", env = "SWARM_AGENT_MANAGERS", value_delimiter = ',')]
    pub hosts: Vec<String>,

    /// Agent API URLs on managers, which label, drain and remove workers
    /// (default: http://<each manager host>:9466).
    #[arg(
        long = "agent-url",
        env = "SWARM_AGENT_AGENT_URLS",
        value_delimiter = ','
    )]
    pub agent_urls: Vec<String>,
}

/// What a node needs to reach the managers and their agents: the token
/// store, the agents' API secret and the managers' addresses (join, leave, serve).
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub secret: SecretArgs,

    #[command(flatten)]
    pub managers: ManagersArgs,
}

/// EC2 instance metadata: `join` reads the node's zone and instance labels
/// there, `serve` the termination notices.
#[derive(Debug, Clone, Args)]
pub struct ImdsArgs {
    /// EC2 instance metadata (IMDSv2) base URL, or `off` when not on EC2. Gives
    /// `join` its zone/instance labels; without it `serve` sees no termination
    /// notice, and only a plain systemd stop ends the node.
    #[arg(
        long = "imds",
        env = "SWARM_AGENT_IMDS",
        default_value = "http://169.254.169.254"
    )]
    pub url: String,
}

impl ImdsArgs {
    pub fn enabled(&self) -> bool {
        self.url != "off"
    }
}

#[derive(Debug, Clone, Args)]
pub struct JoinArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Address this node advertises (default: the local address that routes to the manager).
    #[arg(long, env = "SWARM_AGENT_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,

    /// Join as a worker (default) or as a manager (uses the manager token).
    #[arg(long, env = "SWARM_AGENT_ROLE", value_enum, default_value = "worker")]
    pub role: JoinRole,

    /// Node label KEY=VALUE (repeatable, or comma separated in the variable).
    #[arg(long = "label", env = "SWARM_AGENT_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,

    #[command(flatten)]
    pub imds: ImdsArgs,

    /// Fail when instance metadata cannot be read (default: warn and join without it).
    #[arg(long, env = "SWARM_AGENT_REQUIRE_IMDS")]
    pub require_imds: bool,

    /// Give up joining (and labelling) after this long.
    #[arg(long, env = "SWARM_AGENT_JOIN_DEADLINE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub deadline: Duration,

    /// After a manager rejects the stored token, wait this long for the managers
    /// to republish a new one (a rotation in progress) before failing.
    #[arg(long, env = "SWARM_AGENT_TOKEN_WAIT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub token_wait: Duration,

    /// Timeout for checking that a manager's swarm port answers before joining through it.
    #[arg(long, env = "SWARM_AGENT_CONNECT_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct LeaveArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Give up waiting for tasks to move and services to converge after this long
    /// (the node then stays in the swarm, drained; fix and rerun).
    #[arg(long, env = "SWARM_AGENT_LEAVE_DEADLINE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub deadline: Duration,

    /// How often to check drain progress.
    #[arg(long, env = "SWARM_AGENT_POLL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub poll: Duration,

    /// Wait this long before draining, so the load balancer has marked this
    /// node unhealthy and sends it no new request (its health check is the
    /// agent's /lb-health, which stops answering 200 when the node leaves).
    #[arg(long, env = "SWARM_AGENT_LB_DRAIN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub lb_drain_delay: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Machine-readable JSON instead of tables.
    #[arg(long, env = "SWARM_AGENT_JSON")]
    pub json: bool,

    /// With the agent API secret, autoscaled services' CPU includes the
    /// replicas on other nodes (asked from their agents); without it, only
    /// this node's replicas are measured.
    #[command(flatten)]
    pub secret: SecretArgs,

    /// Port of the other nodes' agent API (their `--api-addr`).
    #[arg(long, env = "SWARM_AGENT_AGENT_PORT", default_value_t = 9466)]
    pub agent_port: u16,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub lifecycle: LifecycleArgs,

    /// Where /metrics and /status listen (keep it off public interfaces).
    #[arg(
        long,
        env = "SWARM_AGENT_METRICS_ADDR",
        default_value = "127.0.0.1:9465"
    )]
    pub metrics_addr: String,

    /// Where the authenticated agent API (drain-me, labels, remove) listens.
    #[arg(long, env = "SWARM_AGENT_API_ADDR", default_value = "0.0.0.0:9466")]
    pub api_addr: String,

    /// Remove nodes that stay Down longer than this.
    #[arg(long, env = "SWARM_AGENT_DOWN_GRACE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub down_grace: Duration,

    /// Services whose label KEY is `true` are rebalanced (forced update) after a node joins.
    #[arg(
        long,
        env = "SWARM_AGENT_REBALANCE_LABEL",
        default_value = "swarm-agent.rebalance"
    )]
    pub rebalance_label: String,

    /// At most one forced rebalance per this interval, across all services.
    #[arg(long, env = "SWARM_AGENT_REBALANCE_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub rebalance_interval: Duration,

    /// A replicated service with no task running and one no node was found
    /// for is force-updated after this long, so the scheduler places a new
    /// task (Swarm can stop retrying a pending task; docs/operations.md).
    #[arg(long, env = "SWARM_AGENT_RESCHEDULE_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    pub reschedule_after: Duration,

    /// Reconcile at least this often (engine events trigger earlier passes).
    #[arg(long, env = "SWARM_AGENT_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub interval: Duration,

    /// What /lb-health (the load balancer's health check of this node) asks
    /// besides "not leaving": e.g. the node's proxy, http://127.0.0.1:8080/healthz.
    #[arg(long, env = "SWARM_AGENT_LB_CHECK_URL")]
    pub lb_check_url: Option<String>,

    /// Label keys a worker may set on itself through the agent API (anything
    /// else, e.g. `bookstore.mysql`, would let a worker attract pinned services).
    #[arg(
        long = "worker-label-key",
        env = "SWARM_AGENT_WORKER_LABEL_KEYS",
        value_delimiter = ',',
        default_value = "zone,instance-id,instance-type,lifecycle,pool"
    )]
    pub worker_label_keys: Vec<String>,

    #[command(flatten)]
    pub registry_auth: RegistryAuthArgs,

    #[command(flatten)]
    pub backup_credentials: BackupCredentialsArgs,

    /// Remove the images no container uses this often (0s: never), on every node.
    #[arg(long, env = "SWARM_AGENT_IMAGE_PRUNE_INTERVAL", default_value = "6h", value_parser = humantime::parse_duration)]
    pub image_prune_interval: Duration,

    /// Only images created longer ago than this (the previous release's stay
    /// for a rollback without a pull).
    #[arg(long, env = "SWARM_AGENT_IMAGE_PRUNE_AGE", default_value = "24h", value_parser = humantime::parse_duration)]
    pub image_prune_age: Duration,
}

/// Short-lived credentials of the backup role for the backup service's
/// containers on this node (credentials_relay.rs).
#[derive(Debug, Clone, Args)]
pub struct BackupCredentialsArgs {
    /// The role the backup job's credentials come from (the template's
    /// BackupRole); unset: this node relays no credentials.
    #[arg(long, env = "SWARM_AGENT_BACKUP_ROLE_ARN")]
    pub backup_role_arn: Option<String>,

    /// The only swarm service whose containers get them.
    #[arg(
        long,
        env = "SWARM_AGENT_BACKUP_SERVICE",
        default_value = "bookstore_backup"
    )]
    pub backup_service: String,

    /// Custom STS endpoint URL (tests, VPC endpoints).
    #[arg(long, env = "SWARM_AGENT_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
}

/// The leader keeps the registry auth stored in services on ECR fresh
/// (`cluster::renew_auth`).
#[derive(Debug, Clone, Args)]
pub struct RegistryAuthArgs {
    /// `ecr`: renew the stored auth of services whose image is on ECR with a
    /// token from ECR (the node's instance role); `off`: never (tasks are then
    /// pulled with the auth of the last deploy, dead after 12 hours on ECR).
    #[arg(
        long = "registry-auth",
        env = "SWARM_AGENT_REGISTRY_AUTH",
        value_enum,
        default_value = "ecr"
    )]
    pub source: RegistryAuthSource,

    /// Renew a service's stored auth when it is this old (an ECR token lives 12 h).
    #[arg(long = "registry-auth-max-age", env = "SWARM_AGENT_REGISTRY_AUTH_MAX_AGE", default_value = "6h", value_parser = humantime::parse_duration)]
    pub max_age: Duration,

    /// ECR's API endpoint (default: the region's, from the registry's host).
    #[arg(long, env = "SWARM_AGENT_ECR_ENDPOINT")]
    pub ecr_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RegistryAuthSource {
    Ecr,
    Off,
}

/// How a node notices its own end of life and hands its work over first.
#[derive(Debug, Clone, Args)]
pub struct LifecycleArgs {
    #[command(flatten)]
    pub imds: ImdsArgs,

    /// How often to read the termination notices from instance metadata.
    #[arg(long, env = "SWARM_AGENT_LIFECYCLE_POLL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub lifecycle_poll: Duration,

    /// Auto Scaling group of this instance, for the termination lifecycle hook.
    #[arg(long, env = "SWARM_AGENT_ASG_NAME")]
    pub asg_name: Option<String>,

    /// Name of the group's `autoscaling:EC2_INSTANCE_TERMINATING` lifecycle hook.
    #[arg(long, env = "SWARM_AGENT_LIFECYCLE_HOOK")]
    pub lifecycle_hook: Option<String>,

    /// Name of the group's `autoscaling:EC2_INSTANCE_LAUNCHING` lifecycle hook,
    /// completed once this node is ready (joined, and every global service's
    /// task the swarm wants on it running): the group puts it in service only then.
    #[arg(long, env = "SWARM_AGENT_LAUNCH_HOOK")]
    pub launch_hook: Option<String>,

    /// Stop waiting for this node to be ready after this long and leave the
    /// launch hook to time out (keep it under the hook's heartbeat timeout).
    #[arg(long, env = "SWARM_AGENT_LAUNCH_READY_TIMEOUT", default_value = "14m", value_parser = humantime::parse_duration)]
    pub launch_ready_timeout: Duration,

    /// Custom Auto Scaling endpoint URL (tests, VPC endpoints).
    #[arg(long, env = "SWARM_AGENT_AUTOSCALING_ENDPOINT")]
    pub autoscaling_endpoint: Option<String>,

    /// How often to extend the lifecycle hook while the node drains.
    #[arg(long, env = "SWARM_AGENT_HEARTBEAT_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,

    /// Give up waiting for tasks to move after this long on a scale-in (as `leave --deadline`).
    #[arg(long, env = "SWARM_AGENT_LEAVE_DEADLINE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub leave_deadline: Duration,

    /// Before draining, wait this long for the load balancer to see /lb-health
    /// fail (its interval times its unhealthy threshold, plus a margin).
    #[arg(long, env = "SWARM_AGENT_LB_DRAIN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub lb_drain_delay: Duration,

    /// The same for a spot interruption, which gives two minutes in all.
    #[arg(long, env = "SWARM_AGENT_SPOT_LEAVE_DEADLINE", default_value = "90s", value_parser = humantime::parse_duration)]
    pub spot_leave_deadline: Duration,

    /// With --asg-name (and instance metadata on): report this instance
    /// unhealthy to its group (SetInstanceHealth) once its engine has not
    /// answered, or it has not been an active swarm member, for this long.
    #[arg(long, env = "SWARM_AGENT_NODE_UNHEALTHY_AFTER", default_value = "5m", value_parser = humantime::parse_duration)]
    pub node_unhealthy_after: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The groups `join`, `leave` and `serve` share keep each flag's name.
    #[test]
    fn shared_flag_groups_keep_their_names() {
        let cli = Cli::try_parse_from([
            "swarm-agent",
            "serve",
            "--imds",
            "off",
            "--manager",
            "m1,m2",
            "--token-store",
            "file:/tokens",
            "--api-secret",
            "s",
        ])
        .unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("not serve: {:?}", cli.command)
        };
        assert!(!serve.lifecycle.imds.enabled());
        assert_eq!(serve.cluster.managers.hosts, ["m1", "m2"]);
        assert_eq!(
            serve.cluster.store.token_store.as_deref(),
            Some("file:/tokens")
        );
        assert_eq!(serve.cluster.secret.api_secret.as_deref(), Some("s"));

        let cli = Cli::try_parse_from([
            "swarm-agent",
            "join",
            "--imds",
            "http://127.0.0.1:18080",
            "--agent-url",
            "http://m1:9466",
        ])
        .unwrap();
        let Command::Join(join) = cli.command else {
            panic!("not join: {:?}", cli.command)
        };
        assert!(join.imds.enabled());
        assert_eq!(join.imds.url, "http://127.0.0.1:18080");
        assert_eq!(join.cluster.managers.agent_urls, ["http://m1:9466"]);

        let cli = Cli::try_parse_from(["swarm-agent", "leave", "--manager", "m1"]).unwrap();
        let Command::Leave(leave) = cli.command else {
            panic!("not leave: {:?}", cli.command)
        };
        assert_eq!(leave.cluster.managers.hosts, ["m1"]);
    }
}
