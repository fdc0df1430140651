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
use std::sync::LazyLock;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};

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

async fn on_hasher<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    HASHER
        .send(Box::new(move || {
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

pub async fn hash(password: String) -> anyhow::Result<String> {
    on_hasher(move || hash_blocking(&password)).await?
}

/// Checks `password` against `hash`, or against a dummy hash when there is no account.
pub async fn verify(hash: Option<String>, password: String) -> anyhow::Result<bool> {
    let found = hash.is_some();
    let ok = on_hasher(move || {
        let hash = hash.as_deref().unwrap_or(DUMMY_HASH.as_str());
        verify_blocking(hash, &password)
    })
    .await?;
    Ok(found && ok)
}

/// Computes the dummy hash at start-up (on the hashing thread, whose buffer it
/// then reuses), so the first unknown-user login is not slower.
pub async fn warm_up() {
    let _ = on_hasher(|| LazyLock::force(&DUMMY_HASH).len()).await;
}

/// A stored value no password can match: for accounts nobody logs in to (the demo seller).
pub const UNUSABLE_HASH: &str = "!unusable";

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher;
    use argon2::password_hash::PasswordVerifier;

    use super::*;

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
