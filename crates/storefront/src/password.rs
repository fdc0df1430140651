//! argon2id with the OWASP minimum parameters (19 MiB, 2 passes, 1 lane),
//! which are the argon2 crate's defaults.
//!
//! Every hash needs 19 MiB of working memory. All hashing runs on one
//! dedicated thread that keeps one block buffer and reuses it, so a burst of
//! logins queues instead of multiplying memory: on tokio's blocking pool each
//! new thread took a fresh malloc arena and kept it (2.5 GB of RSS after 64
//! concurrent logins in the benchmark), and even one thread allocating 19 MiB
//! per hash left ~200 MB resident under glibc's moving mmap threshold.
//! That reuse is why the PHC string is assembled here rather than by
//! `PasswordHasher::hash_password`, which allocates on every call.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};

use crate::metrics::Metrics;

/// Verified against when the e-mail is unknown, so a login takes as long
/// whether or not the account exists. Computed on the hashing thread.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_blocking("not a real password").expect("argon2 hashes a constant"));

type Job = Box<dyn FnOnce() + Send>;

static HASHER: LazyLock<std::sync::mpsc::Sender<Job>> = LazyLock::new(|| {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("argon2".into())
        .spawn(move || queue.into_iter().for_each(|job| job()))
        .expect("the hashing thread starts");
    jobs
});

thread_local! {
    /// The working memory of every hash on this thread, allocated once.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Queues `work` on the hashing thread. The work is skipped if, by its turn,
/// nobody waits for its result any more (the client left or the request timed out).
async fn on_hasher<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    on_skip: impl FnOnce() + Send + 'static,
) -> anyhow::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    HASHER
        .send(Box::new(move || {
            if done.is_closed() {
                on_skip();
                return;
            }
            let _ = done.send(work());
        }))
        .map_err(|_| anyhow::anyhow!("the hashing thread stopped"))?;
    Ok(result.await?)
}

/// argon2id of `password` into `out`, in this thread's reused block buffer.
fn compute(
    password: &str,
    salt: &[u8],
    out: &mut [u8],
    params: Params,
    version: Version,
) -> argon2::Result<()> {
    let blocks_needed = params.block_count();
    let argon2 = Argon2::new(Algorithm::Argon2id, version, params);
    BLOCKS.with_borrow_mut(|blocks| {
        if blocks.len() != blocks_needed {
            blocks.resize(blocks_needed, Block::default());
        }
        argon2.hash_password_into_with_memory(password.as_bytes(), salt, out, blocks.as_mut_slice())
    })
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let params = Params::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(password, raw_salt, &mut out, params.clone(), Version::V0x13)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)
            .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("argon2 output: {e}"))?),
    };
    Ok(phc.to_string())
}

fn verify_blocking(stored: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    if parsed.algorithm != ARGON2ID_IDENT {
        return false;
    }
    let (Ok(params), Some(salt), Some(expected)) =
        (Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or(Version::V0x13);
    let mut salt_bytes = [0u8; 64];
    let Ok(raw_salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    // `Output`'s equality is constant-time.
    compute(password, raw_salt, &mut out, params, version).is_ok()
        && Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// Why a hash was not computed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The queue is full: answer at once and let the client retry, rather
    /// than queue work the client will have given up on by its turn.
    #[error("password hashing is at capacity")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// A replica's budget for password hashing: at most `capacity` hashes queued
/// or running; beyond it, callers are refused at once. A known device's login
/// (`web::device`) may also take one of a few reserved places, which a flood
/// of strangers' logins cannot fill. Counts what it did.
#[derive(Debug, Clone)]
pub struct Hasher {
    budget: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
    stats: Arc<HashStats>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
pub struct HashStats {
    /// Hashes computed (including verifications).
    pub computed: AtomicU64,
    /// Refused at once because the queue was full.
    pub shed: AtomicU64,
    /// Queued, then skipped because the request was gone by their turn.
    pub abandoned: AtomicU64,
}

impl Hasher {
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> Self {
        Hasher {
            budget: Arc::new(Semaphore::new(capacity.max(1))),
            reserve: Arc::new(Semaphore::new(RESERVED_FOR_KNOWN_DEVICES)),
            stats: Arc::default(),
            metrics,
        }
    }

    pub fn stats(&self) -> &HashStats {
        &self.stats
    }

    async fn run<T: Send + 'static>(
        &self,
        known_device: bool,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = self
            .budget
            .clone()
            .try_acquire_owned()
            .or_else(|full| match known_device {
                true => self.reserve.clone().try_acquire_owned(),
                false => Err(full),
            });
        let Ok(permit) = permit else {
            self.stats.shed.fetch_add(1, Ordering::Relaxed);
            self.metrics.password_hash("shed");
            return Err(HashError::Busy);
        };
        let (stats, skipped) = (self.stats.clone(), self.stats.clone());
        let (computed, abandoned) = (self.metrics.clone(), self.metrics.clone());
        let result = on_hasher(
            move || {
                let out = work();
                stats.computed.fetch_add(1, Ordering::Relaxed);
                computed.password_hash("computed");
                drop(permit);
                out
            },
            move || {
                skipped.abandoned.fetch_add(1, Ordering::Relaxed);
                abandoned.password_hash("abandoned");
            },
        )
        .await?;
        Ok(result)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        Ok(self.run(false, move || hash_blocking(&password)).await??)
    }

    /// Checks `password` against `hash`, or against a dummy hash when there is
    /// no account; a known device's check may use the reserve.
    pub async fn verify(
        &self,
        hash: Option<String>,
        password: String,
        known_device: bool,
    ) -> Result<bool, HashError> {
        let found = hash.is_some();
        let ok = self
            .run(known_device, move || {
                let hash = hash.as_deref().unwrap_or(DUMMY_HASH.as_str());
                verify_blocking(hash, &password)
            })
            .await?;
        Ok(found && ok)
    }
}

/// Places beyond the budget that only known devices' logins may take.
const RESERVED_FOR_KNOWN_DEVICES: usize = 4;

/// Computes the dummy hash at start-up (on the hashing thread, whose buffer it
/// then reuses), so the first unknown-user login is not slower.
pub async fn warm_up() {
    let _ = on_hasher(|| LazyLock::force(&DUMMY_HASH).len(), || {}).await;
}

/// A stored value no password can match: for accounts nobody logs in to (the demo seller).
pub const UNUSABLE_HASH: &str = "!unusable";

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher;
    use argon2::password_hash::PasswordVerifier;

    use super::*;

    async fn hash(password: String) -> Result<String, HashError> {
        Hasher::new(4, Metrics::new("test")).hash(password).await
    }

    async fn verify(hash: Option<String>, password: String) -> Result<bool, HashError> {
        Hasher::new(4, Metrics::new("test"))
            .verify(hash, password, false)
            .await
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_abandoned_work_is_not_hashed() {
        let hasher = Hasher::new(3, Metrics::new("test"));
        let started = std::time::Instant::now();
        let mut waiting: Vec<_> = (0..3)
            .map(|_| Box::pin(hasher.verify(None, "x".into(), false)))
            .collect();
        // Poll each once so it takes its place in the queue, then give up on them.
        for w in &mut waiting {
            let _ = futures::poll!(w.as_mut());
        }
        assert!(matches!(
            hasher.verify(None, "x".into(), false).await,
            Err(HashError::Busy)
        ));
        assert!(
            started.elapsed() < std::time::Duration::from_millis(50),
            "refused at once"
        );
        drop(waiting);
        // The queue drains without hashing for the dropped requests.
        for _ in 0..250 {
            if hasher.budget.available_permits() == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(hasher.budget.available_permits(), 3, "the budget came back");
        assert!(!hasher.verify(None, "x".into(), false).await.unwrap());
        let stats = hasher.stats();
        assert_eq!(stats.shed.load(Ordering::Relaxed), 1);
        let abandoned = stats.abandoned.load(Ordering::Relaxed);
        let computed = stats.computed.load(Ordering::Relaxed);
        assert!(
            abandoned >= 2,
            "dropped requests were skipped ({abandoned})"
        );
        assert_eq!(
            abandoned + computed,
            4,
            "every queued job either ran or was skipped once"
        );
    }

    #[tokio::test]
    async fn a_known_device_is_checked_when_strangers_fill_the_budget() {
        let hasher = Hasher::new(2, Metrics::new("test"));
        let mut strangers: Vec<_> = (0..2)
            .map(|_| Box::pin(hasher.verify(None, "x".into(), false)))
            .collect();
        for s in &mut strangers {
            let _ = futures::poll!(s.as_mut());
        }
        assert!(matches!(
            hasher.verify(None, "x".into(), false).await,
            Err(HashError::Busy)
        ));
        assert!(
            hasher.verify(None, "x".into(), true).await.is_ok(),
            "a reserved place"
        );
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hash = hash("correct horse".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            verify(Some(hash.clone()), "correct horse".into())
                .await
                .unwrap()
        );
        assert!(!verify(Some(hash), "wrong horse".into()).await.unwrap());
        assert!(!verify(None, "not a real password".into()).await.unwrap());
        assert!(!verify(Some(UNUSABLE_HASH.into()), "".into()).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_interoperate_with_the_argon2_crates_own_api() {
        let ours = hash("interop".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"interop", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"other", &parsed)
                .is_err()
        );

        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"interop", &salt)
            .unwrap()
            .to_string();
        assert!(
            verify(Some(theirs.clone()), "interop".into())
                .await
                .unwrap()
        );
        assert!(!verify(Some(theirs), "other".into()).await.unwrap());
    }
}
