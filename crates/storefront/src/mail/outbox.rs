//! The outbox table: mail is written here in the transaction of the event
//! that causes it, and senders take rows by lease, deliver them and mark
//! them. Every statement works on SQLite and MySQL alike.

use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use super::letters::Letter;
use crate::domain::now_epoch;

/// One row taken by a sender: what it must deliver.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: i64,
    pub message_id: String,
    pub recipient: String,
    pub kind: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub attempts: i32,
}

impl sqlx::FromRow<'_, AnyRow> for Outgoing {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Outgoing {
            id: row.try_get("id")?,
            message_id: row.try_get("message_id")?,
            recipient: row.try_get("recipient")?,
            kind: row.try_get("kind")?,
            subject: row.try_get("subject")?,
            body_text: long_text(row, "body_text")?,
            body_html: long_text(row, "body_html")?,
            attempts: row.try_get("attempts")?,
        })
    }
}

/// A TEXT column: SQLite gives text; MySQL's TEXT reaches sqlx's Any driver
/// as a BLOB (the protocol sends TEXT and BLOB as one type), so its bytes
/// are read and checked to be UTF-8.
fn long_text(row: &AnyRow, column: &str) -> sqlx::Result<String> {
    if let Ok(text) = row.try_get::<String, _>(column) {
        return Ok(text);
    }
    let bytes: Vec<u8> = row.try_get(column)?;
    String::from_utf8(bytes).map_err(|err| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(err),
    })
}

/// The mail's state in its `state` column.
pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const DEAD: &str = "dead";

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes `letter` on `conn`, inside the caller's transaction: it is sent
/// if and only if that transaction commits. Its Message-ID is fixed now, so
/// a resend after a sender died mid-delivery carries the same one.
pub async fn enqueue(conn: &mut AnyConnection, letter: &Letter, domain: &str) -> sqlx::Result<()> {
    let message_id = format!("<{}@{}>", uuid::Uuid::new_v4(), domain);
    sqlx::query(
        "INSERT INTO outbox (message_id, recipient, kind, subject, body_text, body_html, state, \
         attempts, next_attempt_ms, lease_until_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, 0, ?)",
    )
    .bind(message_id)
    .bind(&letter.recipient)
    .bind(letter.kind)
    .bind(&letter.subject)
    .bind(&letter.text)
    .bind(&letter.html)
    .bind(PENDING)
    .bind(now_ms())
    .bind(now_epoch())
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes up to `batch` due rows for `owner` until `lease` from now, in three
/// statements whatever the batch: the due ids, one conditional UPDATE over
/// them that only rows still free pass (so two senders never hold the same
/// row: the database re-checks the condition on each row it writes), and
/// the rows this claim won. A row whose holder died is due again once its
/// lease has passed.
pub async fn claim(
    pool: &AnyPool,
    owner: &str,
    lease: Duration,
    batch: i64,
) -> sqlx::Result<Vec<Outgoing>> {
    let now = now_ms();
    let due: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM outbox WHERE state = ? AND next_attempt_ms <= ? AND lease_until_ms <= ? \
         ORDER BY id LIMIT ?",
    )
    .bind(PENDING)
    .bind(now)
    .bind(now)
    .bind(batch)
    .fetch_all(pool)
    .await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let ids = vec!["?"; due.len()].join(", ");
    let until = now + lease.as_millis() as i64;
    let take = format!(
        "UPDATE outbox SET lease_owner = ?, lease_until_ms = ? \
         WHERE id IN ({ids}) AND state = ? AND next_attempt_ms <= ? AND lease_until_ms <= ?"
    );
    let mut update = sqlx::query(&take).bind(owner).bind(until);
    for id in &due {
        update = update.bind(id);
    }
    let won = update
        .bind(PENDING)
        .bind(now)
        .bind(now)
        .execute(pool)
        .await?;
    if won.rows_affected() == 0 {
        return Ok(Vec::new());
    }
    // The owner names this process and `until` this claim: the rows won now.
    let read = format!(
        "SELECT id, message_id, recipient, kind, subject, body_text, body_html, attempts \
         FROM outbox WHERE id IN ({ids}) AND lease_owner = ? AND lease_until_ms = ? ORDER BY id"
    );
    let mut select = sqlx::query_as(&read);
    for id in &due {
        select = select.bind(id);
    }
    select.bind(owner).bind(until).fetch_all(pool).await
}

/// Extends `owner`'s lease on a row to `lease` from now, as its delivery
/// starts. False when `owner` no longer holds it (the row is then left alone).
pub async fn renew(pool: &AnyPool, id: i64, owner: &str, lease: Duration) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE outbox SET lease_until_ms = ? WHERE id = ? AND lease_owner = ? AND state = ?",
    )
    .bind(now_ms() + lease.as_millis() as i64)
    .bind(id)
    .bind(owner)
    .bind(PENDING)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Delivered. False when `owner` no longer held the row (its lease ran out
/// and another sender took it): the caller logs it, as the mail may go twice.
pub async fn mark_sent(pool: &AnyPool, id: i64, owner: &str) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE outbox SET state = ?, sent_at = ?, attempts = attempts + 1, lease_owner = NULL, \
         lease_until_ms = 0, last_error = NULL WHERE id = ? AND lease_owner = ?",
    )
    .bind(SENT)
    .bind(now_epoch())
    .bind(id)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// What happens to a mail whose delivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Due again at this time (epoch ms).
    RetryAt(i64),
    /// No more tries.
    Dead,
}

/// Not delivered: released for a retry at `next`, or dead.
pub async fn mark_failed(
    pool: &AnyPool,
    id: i64,
    owner: &str,
    next: Next,
    error: &str,
) -> sqlx::Result<()> {
    let (state, due) = match next {
        Next::RetryAt(at) => (PENDING, at),
        Next::Dead => (DEAD, now_ms()),
    };
    let error: String = error.chars().take(480).collect();
    sqlx::query(
        "UPDATE outbox SET state = ?, attempts = attempts + 1, next_attempt_ms = ?, \
         lease_owner = NULL, lease_until_ms = 0, last_error = ? WHERE id = ? AND lease_owner = ?",
    )
    .bind(state)
    .bind(due)
    .bind(error)
    .bind(id)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes mail delivered more than `keep` ago (dead and pending rows stay);
/// returns how many went.
pub async fn prune_sent(pool: &AnyPool, keep: Duration) -> sqlx::Result<u64> {
    let result = sqlx::query("DELETE FROM outbox WHERE state = ? AND sent_at < ?")
        .bind(SENT)
        .bind(now_epoch() - keep.as_secs() as i64)
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}

/// Rows not yet delivered and rows given up, for the metrics.
pub async fn counts(pool: &AnyPool) -> sqlx::Result<(i64, i64)> {
    let count = |state: &'static str| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox WHERE state = ?")
            .bind(state)
            .fetch_one(pool)
    };
    Ok((count(PENDING).await?, count(DEAD).await?))
}
