//! Waiting for the swarm: every wait has a deadline and names what it waited
//! for, so a scenario that times out says where.

use std::future::Future;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::time::{Instant, sleep, timeout_at};

/// How often a condition is asked again.
const POLL: Duration = Duration::from_millis(200);

/// Asks `check` until it answers true, for at most `limit`.
pub async fn until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until_found(limit, what, || {
        let checked = check();
        async { checked.await.then_some(()) }
    })
    .await
}

/// Asks `find` until it finds something, for at most `limit`; what it found.
pub async fn until_found<T, F, Fut>(limit: Duration, what: &str, mut find: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        // A question that never answers (an exec that hangs) ends at the
        // deadline too.
        if let Ok(Some(found)) = timeout_at(deadline, find()).await {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {}s waiting for {what}", limit.as_secs());
        }
        sleep(POLL).await;
    }
}
