//! The leader's duty of keeping the registry auth stored in services fresh:
//! a token per ECR registry, stored in every service that is due (the rules
//! are in `cluster::registry_auth`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tracing::info;

use crate::cli::{RegistryAuthArgs, RegistryAuthSource};
use crate::cluster::model::ServiceView;
use crate::cluster::snapshot::Report;
use crate::engine::{Credential, Engine};
use crate::observe::actions::ActionLog;
use crate::observe::events::{Events, Kind};
use crate::observe::metrics::Metrics;

#[cfg(feature = "aws")]
use crate::cluster::registry_auth::decode_token;
use crate::cluster::registry_auth::{EcrRegistry, RENEWED_LABEL, due, label_value, leave_alone};

/// Tokens from ECR's `GetAuthorizationToken`, with the node's credentials
/// (the instance role: `ecr:GetAuthorizationToken` on `*`).
#[cfg(feature = "aws")]
pub struct Ecr {
    endpoint: Option<String>,
}

#[cfg(feature = "aws")]
impl Ecr {
    /// `endpoint` replaces ECR's API address (a test's stand-in).
    pub fn new(endpoint: Option<String>) -> Ecr {
        Ecr { endpoint }
    }

    /// A token for `registry`, valid for 12 hours on AWS.
    pub async fn token(&self, registry: &EcrRegistry) -> crate::Result<Credential> {
        let failed = |reason: String| crate::Error::Refused {
            action: "ecr get-authorization-token".into(),
            reason,
        };
        let sdk = crate::store::aws::sdk_config(Some(&registry.region)).await;
        let mut config = aws_sdk_ecr::config::Builder::from(&sdk);
        if let Some(url) = &self.endpoint {
            config = config.endpoint_url(url);
        }
        let client = aws_sdk_ecr::Client::from_conf(config.build());
        let answer = client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| failed(aws_sdk_ecr::error::DisplayErrorContext(e).to_string()))?;
        let data = answer
            .authorization_data()
            .first()
            .ok_or_else(|| failed("the answer holds no authorization data".into()))?;
        let token = data
            .authorization_token()
            .ok_or_else(|| failed("the answer holds no token".into()))?;
        let server = data
            .proxy_endpoint()
            .map(|p| p.trim_start_matches("https://").trim_end_matches('/'))
            .unwrap_or(&registry.host)
            .to_string();
        let (username, password) = decode_token(token)
            .ok_or_else(|| failed("the token is not base64 of \"user:password\"".into()))?;
        Ok(Credential {
            username,
            password,
            server,
        })
    }
}

/// The leader's duty: renews what [`due`] names, one token per registry.
pub struct Renewer {
    engine: Engine,
    source: Option<Arc<Source>>,
    max_age: Duration,
    /// Services renewed since this agent became leader (by id).
    done_this_term: HashSet<String>,
    /// Dry run: services already said to be due (said once per term).
    said: HashSet<String>,
    /// After a failed token request, wait before asking again.
    retry_at: Option<Instant>,
    events: Events,
    dry_run: bool,
}

/// Where tokens come from.
enum Source {
    #[cfg(feature = "aws")]
    Ecr(Ecr),
}

/// After a failed token request, ask again this much later.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

impl Renewer {
    pub fn new(
        engine: Engine,
        args: &RegistryAuthArgs,
        events: Events,
        dry_run: bool,
    ) -> crate::Result<Renewer> {
        let source = match args.source {
            RegistryAuthSource::Off => None,
            #[cfg(feature = "aws")]
            RegistryAuthSource::Ecr => {
                Some(Arc::new(Source::Ecr(Ecr::new(args.ecr_endpoint.clone()))))
            }
            #[cfg(not(feature = "aws"))]
            RegistryAuthSource::Ecr => {
                return Err(crate::Error::Config(
                    "--registry-auth ecr needs the `aws` feature (or set --registry-auth off)"
                        .into(),
                ));
            }
        };
        Ok(Renewer {
            engine,
            source,
            max_age: args.max_age,
            done_this_term: HashSet::new(),
            said: HashSet::new(),
            retry_at: None,
            events,
            dry_run,
        })
    }

    /// Renews nothing (tests, and `--registry-auth off`).
    pub fn off(engine: Engine, metrics: Metrics) -> Renewer {
        Renewer {
            engine,
            source: None,
            max_age: Duration::MAX,
            done_this_term: HashSet::new(),
            said: HashSet::new(),
            retry_at: None,
            events: Events::new(metrics, ActionLog::default()),
            dry_run: true,
        }
    }

    /// No longer the leader: whoever leads next renews everything once, and
    /// so does this agent if it leads again.
    pub fn step_down(&mut self) {
        self.done_this_term.clear();
        self.said.clear();
    }

    /// Renews the stored auth of every service that is due; returns the
    /// names of those renewed.
    pub async fn pass(&mut self, report: &Report) -> Vec<String> {
        let Some(source) = self.source.clone() else {
            return Vec::new();
        };
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return Vec::new();
        }
        let now = OffsetDateTime::now_utc();
        let due = due(&report.services, now, self.max_age, &self.done_this_term);
        let mut renewed = Vec::new();
        for (registry, services) in due {
            if self.dry_run {
                let names: Vec<&str> = services
                    .iter()
                    .filter(|s| self.said.insert(s.id.clone()))
                    .map(|s| s.name.as_str())
                    .collect();
                if !names.is_empty() {
                    info!(registry = %registry.host, services = ?names, "dry-run: would renew the stored registry auth");
                }
                continue;
            }
            let credential = match source.token(&registry).await {
                Ok(credential) => credential,
                Err(e) => {
                    self.token_failed(&registry, &e);
                    continue;
                }
            };
            for service in services {
                if self.renew(service, &credential, now).await {
                    renewed.push(service.name.clone());
                }
            }
        }
        renewed
    }

    fn token_failed(&mut self, registry: &EcrRegistry, e: &crate::Error) {
        self.retry_at = Some(Instant::now() + RETRY_AFTER_FAILURE);
        let next = "no registry token: the stored auth was not renewed (retrying in a minute)";
        self.events
            .failed(Kind::RegistryAuth, &registry.host, e, next);
    }

    async fn renew(
        &mut self,
        service: &ServiceView,
        credential: &Credential,
        now: OffsetDateTime,
    ) -> bool {
        let result = match self.engine.service(&service.id).await {
            // Changed since the pass's snapshot (this pass's rebalance or
            // scale, a deploy): not now, the next pass looks again.
            Ok(raw) if leave_alone(&ServiceView::from(&raw), now) => return false,
            Ok(raw) => {
                self.engine
                    .renew_registry_auth(&raw, credential, (RENEWED_LABEL, label_value(now)))
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                self.done_this_term.insert(service.id.clone());
                self.events.done(
                    Kind::RegistryAuth,
                    &service.name,
                    format!("renewed: a fresh token for {} stored", credential.server),
                );
                true
            }
            Err(e) => {
                // Another update in between (version conflict), or worse: a
                // minute from now, not every pass.
                self.retry_at = Some(Instant::now() + RETRY_AFTER_FAILURE);
                let next = "the stored registry auth was not renewed (retrying in a minute)";
                self.events
                    .failed(Kind::RegistryAuth, &service.name, &e, next);
                false
            }
        }
    }
}

impl Source {
    // Without the `aws` feature there is no source, so nothing reads `registry`.
    #[cfg_attr(not(feature = "aws"), allow(unused_variables))]
    async fn token(&self, registry: &EcrRegistry) -> crate::Result<Credential> {
        match *self {
            #[cfg(feature = "aws")]
            Source::Ecr(ref ecr) => ecr.token(registry).await,
        }
    }
}
