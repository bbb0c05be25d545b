//! Telling the shop, billing and CRM about grants: every ledger entry has an
//! outbox row written in the same transaction. Each node runs a delivery
//! loop; a node takes a due row with a conditional update (a lease), POSTs it
//! signed with HMAC-SHA256, and records the attempt. Failures are retried
//! with exponential backoff (1 s, 2 s, 4 s … up to an hour) by the Clock.
//! Receivers deduplicate by `event_id` (a lost acknowledgement is resent).

use crate::clock::Clock;
use crate::config::ServeArgs;
use crate::store::Db;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "x-callcenter-signature";
pub const TIMESTAMP_HEADER: &str = "x-callcenter-timestamp";
pub const EVENT_ID_HEADER: &str = "x-callcenter-event-id";
/// How often each node looks for due deliveries.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long a node holds a row it is delivering.
pub const LEASE_MS: i64 = 60_000;
pub const MAX_BACKOFF_MS: i64 = 3_600_000;
const BATCH: i64 = 20;

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POST one signed event: the JSON body, its HMAC signature over the
/// timestamp and body, the timestamp and the event id (the receiver's
/// de-duplication key). Shared by every webhook the server sends.
pub async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    now_ms: i64,
    event_id: &str,
    payload: String,
) -> reqwest::Result<reqwest::Response> {
    let timestamp = now_ms.to_string();
    http.post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            SIGNATURE_HEADER,
            signature(secret, &timestamp, payload.as_bytes()),
        )
        .header(TIMESTAMP_HEADER, &timestamp)
        .header(EVENT_ID_HEADER, event_id)
        .body(payload)
        .send()
        .await
}

/// Delay before attempt `attempts + 1`, after `attempts` failures.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 30) - 1;
    (1000i64 << exp).min(MAX_BACKOFF_MS)
}

struct Target {
    url: String,
    secret: String,
}

/// Start this node's delivery loop when a webhook URL is configured.
pub fn start(
    db: Db,
    clock: Arc<dyn Clock>,
    serve: &ServeArgs,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(url) = serve.webhook_url.clone() else {
        return Ok(None);
    };
    let secret = serve
        .webhook_secret
        .clone()
        .filter(|s| s.len() >= 16)
        .ok_or_else(|| {
            anyhow::anyhow!("CALLCENTER_WEBHOOK_SECRET (16 characters or more) is required with CALLCENTER_WEBHOOK_URL")
        })?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let target = Target { url, secret };
    Ok(Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = deliver_due(&db, clock.as_ref(), &http, &target).await {
                tracing::warn!(error = %e, "webhook delivery round failed");
            }
        }
    })))
}

async fn deliver_due(
    db: &Db,
    clock: &dyn Clock,
    http: &reqwest::Client,
    target: &Target,
) -> anyhow::Result<()> {
    let now = clock.now_ms();
    let due = sqlx::query(
        "SELECT id FROM compensation_outbox WHERE delivered_at_ms IS NULL AND next_attempt_at_ms <= $1 \
         AND (lease_until_ms IS NULL OR lease_until_ms <= $1) ORDER BY id LIMIT $2",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(db.pool())
    .await?;
    for row in due {
        let id: i64 = row.try_get("id")?;
        let now = clock.now_ms();
        let taken = sqlx::query(
            "UPDATE compensation_outbox SET lease_until_ms = $1 WHERE id = $2 AND delivered_at_ms IS NULL \
             AND next_attempt_at_ms <= $3 AND (lease_until_ms IS NULL OR lease_until_ms <= $3)",
        )
        .bind(now + LEASE_MS)
        .bind(id)
        .bind(now)
        .execute(db.pool())
        .await?;
        if taken.rows_affected() == 1 {
            deliver_one(db, clock, http, target, id).await?;
        }
    }
    Ok(())
}

async fn deliver_one(
    db: &Db,
    clock: &dyn Clock,
    http: &reqwest::Client,
    target: &Target,
    id: i64,
) -> anyhow::Result<()> {
    let row =
        sqlx::query("SELECT event_id, payload, attempts FROM compensation_outbox WHERE id = $1")
            .bind(id)
            .fetch_one(db.pool())
            .await?;
    let event_id: String = row.try_get("event_id")?;
    let payload: String = row.try_get("payload")?;
    let attempt = row.try_get::<i64, _>("attempts")? + 1;
    let sent = post_signed(
        http,
        &target.url,
        &target.secret,
        clock.now_ms(),
        &event_id,
        payload,
    )
    .await;
    let (status, error) = match sent {
        Ok(r) if r.status().is_success() => (Some(r.status().as_u16() as i64), None),
        Ok(r) => (
            Some(r.status().as_u16() as i64),
            Some(format!("the receiver answered {}", r.status())),
        ),
        // The URL and the error's text never carry the secret.
        Err(e) => (None, Some(e.without_url().to_string())),
    };
    let ok = error.is_none();
    let now = clock.now_ms();
    let mut tx = crate::store::begin(db.pool()).await?;
    sqlx::query(
        "INSERT INTO compensation_deliveries (outbox_id, attempt, at_ms, status_code, ok, error) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(attempt)
    .bind(now)
    .bind(status)
    .bind(ok as i64)
    .bind(error.as_deref())
    .execute(&mut *tx)
    .await?;
    if ok {
        sqlx::query(
            "UPDATE compensation_outbox SET attempts = $1, delivered_at_ms = $2, lease_until_ms = NULL \
             WHERE id = $3",
        )
        .bind(attempt)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE compensation_outbox SET attempts = $1, next_attempt_at_ms = $2, lease_until_ms = NULL \
             WHERE id = $3",
        )
        .bind(attempt)
        .bind(now + backoff_ms(attempt))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tracing::info!(
            event_id,
            attempt,
            error = error.as_deref().unwrap_or(""),
            "webhook delivery failed; will retry"
        );
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let delays: Vec<i64> = (1..=4).map(backoff_ms).collect();
        assert_eq!(delays, [1000, 2000, 4000, 8000]);
        assert_eq!(backoff_ms(40), MAX_BACKOFF_MS);
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        let sig = signature("a webhook secret", "1700000000000", b"{\"a\":1}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"a webhook secret").unwrap();
        mac.update(b"1700000000000.{\"a\":1}");
        assert_eq!(
            sig,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(
            sig,
            signature("a webhook secret", "1700000000001", b"{\"a\":1}")
        );
        assert_ne!(
            sig,
            signature("another secret!!", "1700000000000", b"{\"a\":1}")
        );
    }
}
