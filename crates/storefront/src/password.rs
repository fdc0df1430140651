//! argon2id with the OWASP minimum parameters (19 MiB, 2 passes, 1 lane),
//! which are the argon2 crate's defaults. Hashing runs on the blocking pool
//! so it never stalls the async workers.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

/// Verified against when the e-mail is unknown, so a login takes as long
/// whether or not the account exists.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_blocking("not a real password").expect("argon2 hashes a constant"));

/// Every argon2id run holds 19 MiB. They all run on one dedicated thread, so
/// a burst of logins queues instead of multiplying memory: on the blocking
/// pool, each new thread took a fresh malloc arena and kept its 19 MiB
/// (64 concurrent logins reached 600 MB of RSS in the benchmark).
type Job = Box<dyn FnOnce() + Send>;

static HASHER: LazyLock<std::sync::mpsc::Sender<Job>> = LazyLock::new(|| {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("argon2".into())
        .spawn(move || queue.into_iter().for_each(|job| job()))
        .expect("the hashing thread starts");
    jobs
});

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

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

fn verify_blocking(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
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

/// Warms the dummy hash at start-up, so the first unknown-user login is not slower.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

/// A stored value no password can match: for accounts nobody logs in to (the demo seller).
pub const UNUSABLE_HASH: &str = "!unusable";

#[cfg(test)]
mod tests {
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
}
