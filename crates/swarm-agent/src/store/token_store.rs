//! Where `init` publishes join tokens and `join` reads them: a directory of
//! files (tests, single-host setups) or AWS SSM Parameter Store SecureStrings
//! (fleets: the instance profile grants read to workers, write to managers).
//!
//! Writes compare first, so rerunning `init` after a reboot rewrites nothing.

use std::path::{Path, PathBuf};

use crate::cli::StoreArgs;
use crate::error::{Error, Result};

/// The values kept in a store, one entry (file or parameter) each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    WorkerToken,
    ManagerToken,
    /// Comma-separated `host:port` of the managers, so workers need no list of their own.
    Managers,
    /// Lets a joining node tell "this swarm" from "another swarm".
    ClusterId,
    /// Bearer secret of the agents' API on managers (made by `init`).
    ApiSecret,
    /// Which manager founds the swarm: written once, never overwritten, so
    /// of several managers booting at once exactly one runs `swarm init`.
    Founder,
}

impl Key {
    pub fn name(self) -> &'static str {
        match self {
            Key::WorkerToken => "worker-token",
            Key::ManagerToken => "manager-token",
            Key::Managers => "managers",
            Key::ClusterId => "cluster-id",
            Key::ApiSecret => "api-secret",
            Key::Founder => "founder",
        }
    }

    pub fn is_secret(self) -> bool {
        matches!(self, Key::WorkerToken | Key::ManagerToken | Key::ApiSecret)
    }
}

/// The outcome of [`TokenStore::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The entry was free and now holds our value (or held it already).
    Ours,
    /// Someone else's value was there first.
    Theirs(String),
}

pub enum TokenStore {
    File(FileStore),
    #[cfg(feature = "aws")]
    Ssm(ssm::SsmStore),
}

impl TokenStore {
    pub async fn open(args: &StoreArgs) -> Result<TokenStore> {
        let spec = args
            .token_store
            .as_deref()
            .ok_or_else(|| {
                Error::Config(
                    "no token store: give --token-store (SWARM_AGENT_TOKEN_STORE), \
                     e.g. ssm:/swarm/bookstore or file:/var/lib/swarm-agent/tokens"
                        .into(),
                )
            })?
            .trim();
        if let Some(dir) = spec.strip_prefix("file:") {
            let dir = dir.trim_start_matches("//");
            if dir.is_empty() {
                return Err(Error::Config(
                    "--token-store file: needs a directory".into(),
                ));
            }
            return Ok(TokenStore::File(FileStore::new(dir)));
        }
        if let Some(prefix) = spec.strip_prefix("ssm:") {
            return Self::open_ssm(prefix, args).await;
        }
        Err(Error::Config(format!(
            "--token-store `{spec}`: expected file:/dir or ssm:/parameter/prefix"
        )))
    }

    #[cfg(feature = "aws")]
    async fn open_ssm(prefix: &str, args: &StoreArgs) -> Result<TokenStore> {
        let store = ssm::SsmStore::new(
            prefix,
            args.ssm_endpoint.as_deref(),
            args.aws_region.as_deref(),
        )
        .await?;
        Ok(TokenStore::Ssm(store))
    }

    #[cfg(not(feature = "aws"))]
    async fn open_ssm(_prefix: &str, _args: &StoreArgs) -> Result<TokenStore> {
        Err(Error::Config(
            "this build has no SSM support (built without the `ssm` feature)".into(),
        ))
    }

    pub fn describe(&self) -> String {
        match self {
            TokenStore::File(f) => format!("file:{}", f.dir.display()),
            #[cfg(feature = "aws")]
            TokenStore::Ssm(s) => format!("ssm:{}", s.prefix()),
        }
    }

    pub async fn get(&self, key: Key) -> Result<Option<String>> {
        match self {
            TokenStore::File(f) => f.get(key),
            #[cfg(feature = "aws")]
            TokenStore::Ssm(s) => s.get(key).await,
        }
    }

    /// Like `get`, but a missing entry is an error that says how to fix it.
    pub async fn require(&self, key: Key) -> Result<String> {
        self.get(key).await?.ok_or_else(|| Error::TokenMissing {
            store: self.describe(),
            key: key.name().into(),
        })
    }

    /// Store `value` unless it is already there. Returns whether it wrote.
    pub async fn put(&self, key: Key, value: &str, dry_run: bool) -> Result<bool> {
        if self.get(key).await?.as_deref() == Some(value) {
            return Ok(false);
        }
        if dry_run {
            return Ok(true);
        }
        match self {
            TokenStore::File(f) => f.put(key, value)?,
            #[cfg(feature = "aws")]
            TokenStore::Ssm(s) => s.put(key, value).await?,
        }
        Ok(true)
    }

    /// Write `value` only if the entry does not exist yet, atomically (no two
    /// callers can both see it free): a create-only file, or an SSM parameter
    /// put without overwrite.
    pub async fn claim(&self, key: Key, value: &str) -> Result<Claim> {
        let created = match self {
            TokenStore::File(f) => f.create(key, value)?,
            #[cfg(feature = "aws")]
            TokenStore::Ssm(s) => s.create(key, value).await?,
        };
        if created {
            return Ok(Claim::Ours);
        }
        match self.get(key).await? {
            Some(held) if held != value => Ok(Claim::Theirs(held)),
            _ => Ok(Claim::Ours),
        }
    }
}

pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    pub fn new(dir: impl AsRef<Path>) -> Self {
        FileStore {
            dir: dir.as_ref().to_path_buf(),
        }
    }

    fn path(&self, key: Key) -> PathBuf {
        self.dir.join(key.name())
    }

    fn get(&self, key: Key) -> Result<Option<String>> {
        let path = self.path(key);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path.display().to_string())(e)),
        }
    }

    /// Write to a temporary file and rename, so a reader never sees half a token.
    fn put(&self, key: Key, value: &str) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io(self.dir.display().to_string()))?;
        let path = self.path(key);
        let tmp = self.dir.join(format!(".{}.tmp", key.name()));
        write_private(&tmp, value).map_err(Error::io(tmp.display().to_string()))?;
        std::fs::rename(&tmp, &path).map_err(Error::io(path.display().to_string()))
    }
}

impl FileStore {
    /// Create the entry unless it exists. Returns whether it was created.
    fn create(&self, key: Key, value: &str) -> Result<bool> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(&self.dir).map_err(Error::io(self.dir.display().to_string()))?;
        let path = self.path(key);
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match opened {
            Ok(mut file) => {
                writeln!(file, "{value}").map_err(Error::io(path.display().to_string()))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(path.display().to_string())(e)),
        }
    }
}

fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(value.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(feature = "aws")]
mod ssm {
    use aws_sdk_ssm::error::DisplayErrorContext;
    use aws_sdk_ssm::types::ParameterType;

    use super::Key;
    use crate::error::{Error, Result};

    pub struct SsmStore {
        client: aws_sdk_ssm::Client,
        prefix: String,
    }

    impl SsmStore {
        pub async fn new(
            prefix: &str,
            endpoint: Option<&str>,
            region: Option<&str>,
        ) -> Result<Self> {
            let prefix = prefix.trim_end_matches('/');
            if !prefix.starts_with('/') || prefix.len() < 2 {
                return Err(Error::Config(format!(
                    "ssm prefix `{prefix}` must be an absolute parameter path such as /swarm/prod"
                )));
            }
            let shared = crate::store::aws::sdk_config(region).await;
            let mut conf = aws_sdk_ssm::config::Builder::from(&shared);
            if let Some(url) = endpoint {
                conf = conf.endpoint_url(url);
            }
            Ok(SsmStore {
                client: aws_sdk_ssm::Client::from_conf(conf.build()),
                prefix: prefix.to_string(),
            })
        }

        pub fn prefix(&self) -> &str {
            &self.prefix
        }

        fn name(&self, key: Key) -> String {
            format!("{}/{}", self.prefix, key.name())
        }

        fn fail(&self, message: String) -> Error {
            Error::TokenStore {
                store: format!("ssm:{}", self.prefix),
                message,
            }
        }

        pub async fn get(&self, key: Key) -> Result<Option<String>> {
            let name = self.name(key);
            let out = self
                .client
                .get_parameter()
                .name(&name)
                .with_decryption(true)
                .send()
                .await;
            match out {
                Ok(out) => Ok(out.parameter.and_then(|p| p.value)),
                Err(e) => {
                    let service = e.as_service_error();
                    if service.is_some_and(|s| s.is_parameter_not_found()) {
                        Ok(None)
                    } else {
                        Err(self.fail(format!("reading {name}: {}", DisplayErrorContext(&e))))
                    }
                }
            }
        }

        pub async fn put(&self, key: Key, value: &str) -> Result<()> {
            let name = self.name(key);
            // Tokens are secrets; the manager list and cluster id are not, but
            // one type for all keeps IAM policies simple.
            self.client
                .put_parameter()
                .name(&name)
                .value(value)
                .r#type(ParameterType::SecureString)
                .overwrite(true)
                .send()
                .await
                .map_err(|e| self.fail(format!("writing {name}: {}", DisplayErrorContext(&e))))?;
            Ok(())
        }

        /// Put without overwrite: SSM refuses with ParameterAlreadyExists
        /// when the parameter exists. Returns whether it was created.
        pub async fn create(&self, key: Key, value: &str) -> Result<bool> {
            let name = self.name(key);
            let out = self
                .client
                .put_parameter()
                .name(&name)
                .value(value)
                .r#type(ParameterType::SecureString)
                .overwrite(false)
                .send()
                .await;
            match out {
                Ok(_) => Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_parameter_already_exists()) =>
                {
                    Ok(false)
                }
                Err(e) => Err(self.fail(format!("creating {name}: {}", DisplayErrorContext(&e)))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_store_roundtrip_is_idempotent_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::File(FileStore::new(dir.path()));
        assert_eq!(store.get(Key::WorkerToken).await.unwrap(), None);
        assert!(
            store
                .put(Key::WorkerToken, "SWMTKN-1-abc", false)
                .await
                .unwrap()
        );
        assert!(
            !store
                .put(Key::WorkerToken, "SWMTKN-1-abc", false)
                .await
                .unwrap(),
            "same value: no write"
        );
        assert_eq!(
            store.require(Key::WorkerToken).await.unwrap(),
            "SWMTKN-1-abc"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("worker-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "tokens must not be world-readable");
    }

    #[tokio::test]
    async fn a_claim_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::File(FileStore::new(dir.path()));
        assert_eq!(store.claim(Key::Founder, "m1").await.unwrap(), Claim::Ours);
        assert_eq!(
            store.claim(Key::Founder, "m1").await.unwrap(),
            Claim::Ours,
            "claiming again is harmless"
        );
        assert_eq!(
            store.claim(Key::Founder, "m2").await.unwrap(),
            Claim::Theirs("m1".into())
        );
        assert_eq!(store.require(Key::Founder).await.unwrap(), "m1");
    }

    #[tokio::test]
    async fn dry_run_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::File(FileStore::new(dir.path()));
        assert!(
            store
                .put(Key::Managers, "10.0.0.1:2377", true)
                .await
                .unwrap()
        );
        assert_eq!(store.get(Key::Managers).await.unwrap(), None);
    }

    #[tokio::test]
    async fn missing_token_says_how_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::File(FileStore::new(dir.path()));
        let err = store
            .require(Key::WorkerToken)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("worker-token") && err.contains("swarm-agent init"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn rejects_unknown_store_kinds() {
        let args = StoreArgs {
            token_store: Some("s3://bucket".into()),
            ssm_endpoint: None,
            aws_region: None,
        };
        assert!(matches!(
            TokenStore::open(&args).await,
            Err(Error::Config(_))
        ));
    }
}
