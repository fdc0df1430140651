//! Credentials for the backup job, which runs in a container.
//!
//! The instance metadata's hop limit of 1 keeps every container away from
//! the instance role, rightly: a proxy or a database must not act as the
//! node. The backup job must still write to the backup bucket. So the node's
//! agent (on the host, where the role is) relays short-lived credentials of
//! one narrow role, the template's BackupRole (read and write the backup
//! bucket, nothing else), to one kind of caller: a container of the backup
//! service on this node.
//!
//! The caller is known by its address, as an EC2 task role is: the engine
//! says which local container holds it, and that container's swarm service
//! label (the engine's, not anything a process inside can change) must name
//! the backup service. A container reaches its own node at its default
//! gateway (docker/backup/s3-copy). docs/decisions.md, "Backups leave the node".

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::Mutex;
use tracing::info;

use crate::cli::BackupCredentialsArgs;
use crate::engine::Engine;
use crate::error::Result;
use crate::observe::events::{Events, Kind};

/// Relayed credentials are reused until this close to their expiry.
const RENEW_BEFORE: time::Duration = time::Duration::minutes(15);

/// What the caller gets: the shape of an ECS task role's credentials.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Relayed {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    /// RFC 3339.
    pub expiration: String,
    #[serde(skip)]
    pub expires_at: Option<time::OffsetDateTime>,
}

pub struct RelayState {
    engine: Engine,
    service: String,
    role: Option<role::Role>,
    cache: Mutex<Option<Relayed>>,
    events: Events,
}

impl RelayState {
    pub async fn new(
        engine: Engine,
        args: &BackupCredentialsArgs,
        region: Option<&str>,
        events: Events,
    ) -> Result<Self> {
        let role = match &args.backup_role_arn {
            Some(arn) => Some(role::Role::new(arn, region, args.sts_endpoint.as_deref()).await?),
            None => None,
        };
        Ok(RelayState {
            engine,
            service: args.backup_service.clone(),
            role,
            cache: Mutex::new(None),
            events,
        })
    }

    /// The cached credentials while they have time left, else fresh ones.
    async fn credentials(&self, role: &role::Role) -> Result<Relayed> {
        let mut cache = self.cache.lock().await;
        let now = time::OffsetDateTime::now_utc();
        if let Some(c) = cache.as_ref()
            && c.expires_at.is_some_and(|at| at - now > RENEW_BEFORE)
        {
            return Ok(c.clone());
        }
        let fresh = role.assume().await?;
        info!(expiration = %fresh.expiration, "assumed the backup role for the backup service");
        *cache = Some(fresh.clone());
        Ok(fresh)
    }
}

pub fn router(state: Arc<RelayState>) -> Router {
    Router::new()
        .route("/v1/credentials/backup", get(backup_credentials))
        .with_state(state)
}

async fn backup_credentials(
    State(s): State<Arc<RelayState>>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
) -> std::result::Result<Json<Relayed>, (StatusCode, String)> {
    let Some(role) = &s.role else {
        return Err((
            StatusCode::NOT_FOUND,
            "this node relays no credentials (its agent has no --backup-role-arn)".into(),
        ));
    };
    let subject = caller.to_string();
    let service = s
        .engine
        .service_of_container_at(caller.ip())
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    if service.as_deref() != Some(s.service.as_str()) {
        let refused = format!(
            "backup credentials go to containers of {} on this node only; {} is {}",
            s.service,
            caller.ip(),
            service.map_or("no swarm task here".into(), |n| format!("a task of {n}"))
        );
        s.events
            .failed(Kind::BackupCredentials, &subject, &refused, "refused");
        return Err((StatusCode::FORBIDDEN, refused));
    }
    let relayed = s.credentials(role).await.map_err(|e| {
        let next = "the backup asks again";
        s.events.failed(Kind::BackupCredentials, &subject, &e, next);
        (StatusCode::BAD_GATEWAY, e.to_string())
    })?;
    s.events
        .done(Kind::BackupCredentials, &subject, "relayed to the backup");
    Ok(Json(relayed))
}

#[cfg(feature = "aws")]
mod role {
    use aws_sdk_sts::error::DisplayErrorContext;

    use super::Relayed;
    use crate::error::{Error, Result};

    /// How long relayed credentials live (STS's default; the job runs minutes).
    const LIFETIME_SECONDS: i32 = 3600;

    pub struct Role {
        client: aws_sdk_sts::Client,
        arn: String,
    }

    impl Role {
        pub async fn new(arn: &str, region: Option<&str>, endpoint: Option<&str>) -> Result<Role> {
            Ok(Role {
                client: crate::store::aws::sts_client(region, endpoint).await,
                arn: arn.into(),
            })
        }

        pub async fn assume(&self) -> Result<Relayed> {
            let out = self
                .client
                .assume_role()
                .role_arn(&self.arn)
                .role_session_name(session_name())
                .duration_seconds(LIFETIME_SECONDS)
                .send()
                .await
                .map_err(|e| Error::Api {
                    url: format!("sts AssumeRole ({})", self.arn),
                    message: DisplayErrorContext(e).to_string(),
                })?;
            let c = out.credentials.ok_or_else(|| Error::Api {
                url: "sts AssumeRole".into(),
                message: "no credentials in the answer".into(),
            })?;
            let expires_at = time::OffsetDateTime::from_unix_timestamp(c.expiration.secs()).ok();
            Ok(Relayed {
                access_key_id: c.access_key_id,
                secret_access_key: c.secret_access_key,
                token: c.session_token,
                expiration: expires_at
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default(),
                expires_at,
            })
        }
    }

    /// `backup-HOSTNAME`, in the characters and length STS accepts: CloudTrail
    /// then says which node's backup wrote what.
    fn session_name() -> String {
        let host = crate::node::hostname();
        let cleaned: String = format!("backup-{host}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        cleaned.chars().take(64).collect()
    }
}

#[cfg(not(feature = "aws"))]
mod role {
    use super::Relayed;
    use crate::error::{Error, Result};

    pub struct Role;

    impl Role {
        pub async fn new(_: &str, _: Option<&str>, _: Option<&str>) -> Result<Role> {
            Err(Error::Config(
                "--backup-role-arn needs AWS support (built without the `aws` feature)".into(),
            ))
        }
        pub async fn assume(&self) -> Result<Relayed> {
            unreachable!("no Role exists without the aws feature")
        }
    }
}
