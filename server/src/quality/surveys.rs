//! Customer-confirmed resolution: "is it still solved?" asked a few days
//! after a resolved complaint, answered without an account.
//!
//! A survey link carries a token of 256 random bits (base64url); only its
//! SHA-256 is stored. A token is single-use (the first answer closes it and
//! every other open link of the complaint) and expires (`survey_ttl_days`).
//! Unknown tokens are 404, used or expired ones 410 (problem+json).
//!
//! Links are made two ways: staff ask for one (`POST
//! /api/tickets/{id}/survey`, shown once), or, when a survey webhook is
//! configured (`CALLCENTER_SURVEY_WEBHOOK_URL`), the system makes one for
//! every resolved complaint `confirmation_delay_days` after it ended and
//! POSTs it there (HMAC-signed like the compensation webhook, with the
//! customer's contact details) for the shop or CRM to send. A failed
//! delivery is retried with backoff, each attempt with a fresh token (the
//! undelivered one dies with it), so no token is ever kept.
//!
//! Answers also come from confirmation calls (`call_outcome` with a
//! `confirmation`); both go through [`super::reopen::apply_answer`].

use super::reopen::{Answer, apply_answer, event};
use super::{DAY_MS, settings};
use crate::auth::AuthUser;
use crate::clock::Clock;
use crate::config::ServeArgs;
use crate::desk::Desk;
use crate::error::{ApiError, ApiResult};
use crate::store::{Db, StoreError};
use base64::Engine;
use callcenter_proto::Role;
use callcenter_proto::outcomes::{ResolutionConfirmation, SurveyAnswer, SurveyLink, SurveyView};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

pub const MAX_COMMENT: usize = 1000;
pub const MAX_TOKEN: usize = 100;
/// How often each node looks for due confirmations and deliveries.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a node holds a delivery it is making.
pub const LEASE_MS: i64 = 60_000;
/// Expired links are looked for at most this often (by the clock).
pub const EXPIRY_EVERY_MS: i64 = 60_000;
const BATCH: i64 = 50;

/// A new survey token: 256 random bits, base64url without padding.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Why a survey token cannot be used.
#[derive(Debug)]
pub enum SurveyError {
    /// No such link (404).
    Unknown,
    /// Already answered (410).
    Used,
    /// Past its time (410).
    Expired,
    Api(ApiError),
}

impl From<ApiError> for SurveyError {
    fn from(e: ApiError) -> Self {
        SurveyError::Api(e)
    }
}

impl From<StoreError> for SurveyError {
    fn from(e: StoreError) -> Self {
        SurveyError::Api(e.into())
    }
}

struct Open {
    id: i64,
    ticket_id: i64,
    expires_at_ms: i64,
}

/// The open survey a token names.
async fn open_survey(db: &Db, token: &str, now_ms: i64) -> Result<Open, SurveyError> {
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Err(SurveyError::Unknown);
    }
    let row = sqlx::query(
        "SELECT id, ticket_id, expires_at_ms, answered_at_ms FROM surveys WHERE token_hash = $1",
    )
    .bind(token_hash(token))
    .fetch_optional(db.pool())
    .await
    .map_err(StoreError::from)?
    .ok_or(SurveyError::Unknown)?;
    if row
        .try_get::<Option<i64>, _>("answered_at_ms")
        .map_err(StoreError::from)?
        .is_some()
    {
        return Err(SurveyError::Used);
    }
    let expires_at_ms: i64 = row.try_get("expires_at_ms").map_err(StoreError::from)?;
    if expires_at_ms <= now_ms {
        return Err(SurveyError::Expired);
    }
    Ok(Open {
        id: row.try_get("id").map_err(StoreError::from)?,
        ticket_id: row.try_get("ticket_id").map_err(StoreError::from)?,
        expires_at_ms,
    })
}

/// What the public page shows for a token.
pub async fn view(db: &Db, token: &str, now_ms: i64) -> Result<SurveyView, SurveyError> {
    let open = open_survey(db, token, now_ms).await?;
    let row = sqlx::query(
        "SELECT c.name, q.ended_at_ms FROM ticket_quality q JOIN categories c ON c.id = q.category_id \
         WHERE q.ticket_id = $1",
    )
    .bind(open.ticket_id)
    .fetch_one(db.pool())
    .await
    .map_err(StoreError::from)?;
    Ok(SurveyView {
        category: row.try_get("name").map_err(StoreError::from)?,
        resolved_at_ms: row.try_get("ended_at_ms").map_err(StoreError::from)?,
        expires_at_ms: open.expires_at_ms,
    })
}

/// Field errors of an answer.
pub fn validate_answer(a: &SurveyAnswer) -> ApiResult<()> {
    let mut check = crate::http::Check::new();
    check.that(
        a.satisfaction.is_none_or(|s| (1..=5).contains(&s)),
        "satisfaction",
        "must be 1 to 5",
    );
    check.that(
        a.comment.chars().count() <= MAX_COMMENT,
        "comment",
        "must be at most 1000 characters",
    );
    check.done()
}

impl Desk {
    /// A survey link for a resolved complaint, made on demand by staff and
    /// shown once: agents for complaints they handled, supervisors and
    /// administrators for any.
    pub async fn survey_link(&self, actor: &AuthUser, ticket_id: i64) -> ApiResult<SurveyLink> {
        match actor.role {
            Role::Agent => {
                self.ticket_of(actor.user_id, ticket_id).await?;
            }
            Role::Supervisor | Role::Admin => {
                self.db.ticket(ticket_id).await?;
            }
            Role::Integration => {
                return Err(ApiError::Forbidden("your role may not make survey links"));
            }
        }
        let row =
            sqlx::query("SELECT resolved, confirmation FROM ticket_quality WHERE ticket_id = $1")
                .bind(ticket_id)
                .fetch_optional(self.db.pool())
                .await?
                .ok_or_else(|| {
                    ApiError::Conflict("this ticket is not an ended complaint".into())
                })?;
        if row.try_get::<i64, _>("resolved")? == 0 {
            return Err(ApiError::Conflict(
                "this complaint ended unresolved: there is nothing to confirm".into(),
            ));
        }
        let confirmation: String = row.try_get("confirmation")?;
        if matches!(confirmation.as_str(), "confirmed" | "denied") {
            return Err(ApiError::Conflict(format!(
                "the customer has already answered ({confirmation})"
            )));
        }
        let ttl = i64::from(settings(&self.db).await?.survey_ttl_days) * DAY_MS;
        let now = self.clock.now_ms();
        let token = new_token();
        let mut tx = crate::store::begin(self.db.pool()).await?;
        let id = insert_survey(
            &mut tx,
            ticket_id,
            &token,
            "staff",
            Some(actor.user_id),
            now,
            now + ttl,
        )
        .await?;
        tx.commit().await?;
        Ok(SurveyLink {
            survey_id: id,
            ticket_id,
            path: format!("/survey#{token}"),
            token,
            expires_at_ms: now + ttl,
        })
    }

    /// The customer's answer on the public page.
    pub async fn answer_survey(&self, a: &SurveyAnswer) -> Result<bool, SurveyError> {
        validate_answer(a)?;
        let now = self.clock.now_ms();
        let open = open_survey(&self.db, &a.token, now).await?;
        let plan = self.denial_plan(open.ticket_id).await?;
        let mut tx = crate::store::begin(self.db.pool())
            .await
            .map_err(StoreError::from)?;
        let taken = sqlx::query(
            "UPDATE surveys SET answered_at_ms = $1, still_solved = $2, satisfaction = $3, comment = $4 \
             WHERE id = $5 AND answered_at_ms IS NULL AND expires_at_ms > $1",
        )
        .bind(now)
        .bind(a.still_solved as i64)
        .bind(a.satisfaction.map(i64::from))
        .bind(a.comment.trim())
        .bind(open.id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if taken.rows_affected() != 1 {
            return Err(SurveyError::Used);
        }
        // One answer per complaint: its other links close.
        sqlx::query(
            "UPDATE surveys SET expires_at_ms = $1 WHERE ticket_id = $2 AND answered_at_ms IS NULL AND id <> $3",
        )
        .bind(now)
        .bind(open.ticket_id)
        .bind(open.id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let answer = Answer {
            still_solved: a.still_solved,
            satisfaction: a.satisfaction,
            via: "survey",
            comment: a.comment.trim(),
        };
        let effect = apply_answer(&mut tx, &plan, &answer, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        if let Err(e) = self.after_answer(&effect).await {
            tracing::warn!(error = %e, "could not route a reopened complaint; reconcile will");
        }
        Ok(effect.reopened)
    }

    /// Check a confirmation given on an outbound call (before anything of
    /// the call is recorded): only with `reached`, satisfaction 1 to 5, on
    /// a call that follows a resolved complaint. Returns the complaint.
    pub async fn check_call_confirmation(
        &self,
        call_id: i64,
        c: &ResolutionConfirmation,
    ) -> ApiResult<i64> {
        if c.satisfaction.is_some_and(|s| !(1..=5).contains(&s)) {
            return Err(ApiError::field(
                "confirmation.satisfaction",
                "must be 1 to 5",
            ));
        }
        // The call, or a call merged into it, follows the complaint.
        let complaint: Option<i64> = sqlx::query(
            "SELECT complaint_ticket_id FROM outbound_calls WHERE (id = $1 OR merged_into = $1) \
             AND complaint_ticket_id IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(call_id)
        .fetch_optional(self.db.pool())
        .await?
        .map(|r| r.try_get("complaint_ticket_id"))
        .transpose()?;
        let Some(complaint) = complaint else {
            return Err(ApiError::field(
                "confirmation",
                "this call follows no complaint: there is nothing to confirm",
            ));
        };
        let resolved = sqlx::query("SELECT resolved FROM ticket_quality WHERE ticket_id = $1")
            .bind(complaint)
            .fetch_optional(self.db.pool())
            .await?
            .map(|r| r.try_get::<i64, _>("resolved"))
            .transpose()?;
        if resolved != Some(1) {
            return Err(ApiError::field(
                "confirmation",
                "the complaint this call follows did not end resolved",
            ));
        }
        Ok(complaint)
    }

    /// Record a confirmation given on a call (after the call's outcome is
    /// recorded). Failures are logged: the call itself is already recorded.
    pub async fn confirm_by_call(&self, complaint_id: i64, c: &ResolutionConfirmation, note: &str) {
        let result = async {
            let now = self.clock.now_ms();
            let plan = self.denial_plan(complaint_id).await?;
            let mut tx = crate::store::begin(self.db.pool()).await?;
            let answer = Answer {
                still_solved: c.still_solved,
                satisfaction: c.satisfaction,
                via: "call",
                comment: note,
            };
            let effect = apply_answer(&mut tx, &plan, &answer, now).await?;
            // The complaint's open links are answered by the call.
            sqlx::query(
                "UPDATE surveys SET expires_at_ms = $1 WHERE ticket_id = $2 AND answered_at_ms IS NULL",
            )
            .bind(now)
            .bind(complaint_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            self.after_answer(&effect).await?;
            Ok::<_, ApiError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, complaint_id, "could not record a confirmation given on a call");
        }
    }
}

/// Store a survey (only the token's hash); the complaint is now `asked`.
async fn insert_survey(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ticket_id: i64,
    token: &str,
    source: &str,
    created_by: Option<i64>,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query(
        "INSERT INTO surveys (token_hash, ticket_id, created_at_ms, expires_at_ms, source, created_by, \
             next_attempt_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(token_hash(token))
    .bind(ticket_id)
    .bind(now_ms)
    .bind(expires_at_ms)
    .bind(source)
    .bind(created_by)
    .bind((source == "system").then_some(now_ms))
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    sqlx::query(
        "UPDATE ticket_quality SET confirmation = 'asked' WHERE ticket_id = $1 \
         AND confirmation IN ('none', 'expired')",
    )
    .bind(ticket_id)
    .execute(&mut **tx)
    .await?;
    event(
        tx,
        ticket_id,
        now_ms,
        created_by,
        "survey_created",
        serde_json::json!({ "survey_id": id, "source": source, "expires_at_ms": expires_at_ms }),
    )
    .await?;
    Ok(id)
}

/// Complaints asked for a confirmation whose every link expired unanswered
/// are `expired` (a later link asks again). Run by each node's survey loop
/// every [`EXPIRY_EVERY_MS`] of the clock; idempotent across nodes. Only
/// complaints with a link that expired in `(since_ms, now_ms]` can change:
/// the loop passes the time of its last round (`i64::MIN` on its first), so
/// a round costs what expired since the last one, not every open link.
pub async fn expire(db: &Db, since_ms: i64, now_ms: i64) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE ticket_quality SET confirmation = 'expired' WHERE confirmation = 'asked' \
         AND ticket_id IN (SELECT ticket_id FROM surveys WHERE answered_at_ms IS NULL \
             AND expires_at_ms > $2 AND expires_at_ms <= $1) \
         AND NOT EXISTS (SELECT 1 FROM surveys s WHERE s.ticket_id = ticket_quality.ticket_id \
             AND s.answered_at_ms IS NULL AND s.expires_at_ms > $1)",
    )
    .bind(now_ms)
    .bind(since_ms)
    .execute(db.pool())
    .await?
    .rows_affected())
}

/// Where system-made links go.
struct Target {
    url: String,
    secret: String,
    public_url: String,
}

/// Start this node's survey loop: it expires unanswered links and, when a
/// survey webhook is configured, makes the links of confirmations that are
/// due and delivers them.
pub fn start(
    db: Db,
    clock: Arc<dyn Clock>,
    serve: &ServeArgs,
    local: std::net::SocketAddr,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let target = match serve.survey_webhook_url.clone() {
        None => None,
        Some(url) => {
            let secret = serve
                .webhook_secret
                .clone()
                .filter(|s| s.len() >= 16)
                .ok_or_else(|| {
                    anyhow::anyhow!("CALLCENTER_WEBHOOK_SECRET (16 characters or more) is required with CALLCENTER_SURVEY_WEBHOOK_URL")
                })?;
            let public_url = serve
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{local}"))
                .trim_end_matches('/')
                .to_string();
            Some(Target {
                url,
                secret,
                public_url,
            })
        }
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When the last expiry round was tried, and up to when links were
        // looked at by the last one that completed.
        let mut tried_at: Option<i64> = None;
        let mut done_until = i64::MIN;
        loop {
            tick.tick().await;
            let now = clock.now_ms();
            if tried_at.is_none_or(|at| now < at || now - at >= EXPIRY_EVERY_MS) {
                tried_at = Some(now);
                if now < done_until {
                    // A clock set back looks at every open link again.
                    done_until = i64::MIN;
                }
                match expire(&db, done_until, now).await {
                    Ok(_) => done_until = now,
                    Err(e) => tracing::warn!(error = %e, "could not expire survey links"),
                }
            }
            let Some(target) = &target else { continue };
            if let Err(e) = ask_due(&db, clock.as_ref()).await {
                tracing::warn!(error = %e, "could not make due survey links");
            }
            if let Err(e) = deliver_due(&db, clock.as_ref(), &http, target).await {
                tracing::warn!(error = %e, "survey delivery round failed");
            }
        }
    }))
}

/// Make a system survey for every resolved complaint whose confirmation is
/// due and not asked yet (nor reopened meanwhile). The conditional update
/// to `asked` hands each complaint to one node.
async fn ask_due(db: &Db, clock: &dyn Clock) -> anyhow::Result<()> {
    let s = settings(db).await?;
    let now = clock.now_ms();
    let due = sqlx::query(
        "SELECT ticket_id FROM ticket_quality WHERE confirmation = 'none' AND ended_at_ms <= $1 \
             AND resolved = 1 AND reopened = 0 ORDER BY ended_at_ms, ticket_id LIMIT $2",
    )
    .bind(now - i64::from(s.confirmation_delay_days) * DAY_MS)
    .bind(BATCH)
    .fetch_all(db.pool())
    .await?;
    for r in due {
        let ticket_id: i64 = r.try_get("ticket_id")?;
        let mut tx = crate::store::begin(db.pool()).await?;
        let claimed = sqlx::query(
            "UPDATE ticket_quality SET confirmation = 'asked' WHERE ticket_id = $1 AND confirmation = 'none'",
        )
        .bind(ticket_id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            continue;
        }
        // A placeholder token: each delivery attempt makes the real one.
        let ttl = i64::from(s.survey_ttl_days) * DAY_MS;
        insert_survey(
            &mut tx,
            ticket_id,
            &new_token(),
            "system",
            None,
            now,
            now + ttl,
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

async fn deliver_due(
    db: &Db,
    clock: &dyn Clock,
    http: &reqwest::Client,
    target: &Target,
) -> anyhow::Result<()> {
    let now = clock.now_ms();
    let due = sqlx::query(
        "SELECT id FROM surveys WHERE delivered_at_ms IS NULL AND source = 'system' \
             AND next_attempt_at_ms <= $1 AND answered_at_ms IS NULL AND expires_at_ms > $1 \
         ORDER BY next_attempt_at_ms, id LIMIT $2",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(db.pool())
    .await?;
    for r in due {
        let id: i64 = r.try_get("id")?;
        let now = clock.now_ms();
        // Take it (a lease) and give it a fresh token, in one update.
        let token = new_token();
        let taken = sqlx::query(
            "UPDATE surveys SET next_attempt_at_ms = $1, token_hash = $2 WHERE id = $3 \
             AND delivered_at_ms IS NULL AND next_attempt_at_ms <= $4",
        )
        .bind(now + LEASE_MS)
        .bind(token_hash(&token))
        .bind(id)
        .bind(now)
        .execute(db.pool())
        .await?;
        if taken.rows_affected() == 1 {
            deliver_one(db, clock, http, target, id, &token).await?;
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
    token: &str,
) -> anyhow::Result<()> {
    use crate::compensation::outbox::{backoff_ms, post_signed};
    let r = sqlx::query(
        "SELECT s.ticket_id, s.expires_at_ms, s.attempts, c.id AS customer_id, c.external_id, c.name, \
             c.email, c.phone, k.name AS category FROM surveys s \
         JOIN tickets t ON t.id = s.ticket_id JOIN customers c ON c.id = t.customer_id \
         JOIN categories k ON k.id = t.category_id WHERE s.id = $1",
    )
    .bind(id)
    .fetch_one(db.pool())
    .await?;
    let attempt = r.try_get::<i64, _>("attempts")? + 1;
    let event_id = format!("survey-{id}-{attempt}");
    let payload = serde_json::json!({
        "event_id": event_id,
        "kind": "survey_link",
        "survey_id": id,
        "ticket_id": r.try_get::<i64, _>("ticket_id")?,
        "category": r.try_get::<String, _>("category")?,
        "customer": {
            "id": r.try_get::<i64, _>("customer_id")?,
            "external_id": r.try_get::<String, _>("external_id")?,
            "name": r.try_get::<String, _>("name")?,
            "email": r.try_get::<Option<String>, _>("email")?,
            "phone": r.try_get::<Option<String>, _>("phone")?,
        },
        "url": format!("{}/survey#{token}", target.public_url),
        "expires_at_ms": r.try_get::<i64, _>("expires_at_ms")?,
    })
    .to_string();
    let sent = post_signed(
        http,
        &target.url,
        &target.secret,
        clock.now_ms(),
        &event_id,
        payload,
    )
    .await;
    let error = match sent {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("the receiver answered {}", r.status())),
        Err(e) => Some(e.without_url().to_string()),
    };
    let now = clock.now_ms();
    match error {
        None => {
            sqlx::query("UPDATE surveys SET attempts = $1, delivered_at_ms = $2 WHERE id = $3")
                .bind(attempt)
                .bind(now)
                .bind(id)
                .execute(db.pool())
                .await?;
        }
        Some(error) => {
            sqlx::query("UPDATE surveys SET attempts = $1, next_attempt_at_ms = $2 WHERE id = $3")
                .bind(attempt)
                .bind(now + backoff_ms(attempt))
                .bind(id)
                .execute(db.pool())
                .await?;
            tracing::info!(
                survey_id = id,
                attempt,
                error,
                "survey delivery failed; will retry"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_only_as_hashes() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        // 256 bits in base64url without padding.
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let h = token_hash(&a);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&a));
        assert_eq!(h, token_hash(&a));
        assert_ne!(h, token_hash(&b));
    }

    #[test]
    fn answers_are_bounded() {
        let ok = SurveyAnswer {
            token: "t".into(),
            still_solved: true,
            satisfaction: Some(5),
            comment: "fine".into(),
        };
        assert!(validate_answer(&ok).is_ok());
        for bad in [
            SurveyAnswer {
                satisfaction: Some(0),
                ..ok.clone()
            },
            SurveyAnswer {
                satisfaction: Some(6),
                ..ok.clone()
            },
            SurveyAnswer {
                comment: "x".repeat(MAX_COMMENT + 1),
                ..ok.clone()
            },
        ] {
            assert!(validate_answer(&bad).is_err(), "{bad:?}");
        }
    }
}
