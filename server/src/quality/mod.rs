//! The quality record (issue 7): what every quality figure is computed from.
//!
//! Speed is not the measure; whether the customer's problem stayed solved
//! is. This module fills one `ticket_quality` row per ended inbound
//! complaint (migrations `0012_quality.sql`, `0013_quality_record.sql`) and
//! keeps it up to date as the customer's story goes on:
//!
//! - [`codes`]: the administrators' list of resolution codes; an inbound
//!   outcome must carry an active one.
//! - [`outcomes`]: the row, written in the resolve's own transaction
//!   (agent, queue, category, customer, end, resolved, code, first contact,
//!   handle time, duration from the original start, compensation so far).
//! - [`reopen`]: a complaint filed within the reopen window after an earlier
//!   one of the same customer and category ended is linked to it (in the
//!   filing transaction); a customer's "no" reopens the complaint with a
//!   head start, held for the agent who resolved it for a short while.
//! - [`surveys`]: single-use, expiring survey links (only their SHA-256 is
//!   stored), made on demand by staff or by the system when a confirmation
//!   is due (delivered through the survey webhook), the public answer, and
//!   the confirmation a call brings back.
//! - [`retention`]: purchases and renewals after a complaint, and the
//!   compensation granted on it.
//! - [`http`]: the routes.
//!
//! Definitions (all windows in [`QualitySettings`], edited at
//! `/api/admin/quality-settings`):
//! - first contact: no other inbound ticket of the customer in the category
//!   was created in the first-contact window before this one, and it is not
//!   a reopen. First-contact *resolution* is `first_contact AND resolved AND
//!   confirmation = 'confirmed'` (the scorecards count it).
//! - reopen: see [`reopen`]; `duration_ms` always runs from the chain's
//!   original start (`tickets.origin_started_ms`).
//! - retention: a purchase or renewal at most 30 (90) days after the end.

pub mod board;
pub mod codes;
pub mod http;
pub mod outcomes;
pub mod reopen;
pub mod reports_http;
pub mod retention;
pub mod scorecards;
pub mod surveys;

use crate::store::{Db, StoreResult};
use callcenter_proto::outcomes::QualitySettings;
use sqlx::Row;

pub const DAY_MS: i64 = 86_400_000;

/// The quality settings in force (the defaults until an administrator saves some).
pub async fn settings(db: &Db) -> StoreResult<QualitySettings> {
    if let Some(document) = db.cache().settings() {
        return Ok(serde_json::from_str(&document).unwrap_or_default());
    }
    let generation = db.cache().generation();
    let row = sqlx::query("SELECT document FROM quality_settings WHERE id = 1")
        .fetch_optional(db.pool())
        .await?;
    let document = row
        .and_then(|r| r.try_get::<String, _>("document").ok())
        .unwrap_or_default();
    db.cache().put_settings(generation, &document);
    Ok(serde_json::from_str(&document).unwrap_or_default())
}

pub async fn save_settings(db: &Db, s: &QualitySettings, now_ms: i64) -> StoreResult<()> {
    let document = serde_json::to_string(s).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    sqlx::query(
        "INSERT INTO quality_settings (id, document, updated_at_ms) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET document = $1, updated_at_ms = $2",
    )
    .bind(document)
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    db.cache().invalidate(crate::store::cache::Scope::Directory);
    Ok(())
}

/// Field errors of a settings document.
pub fn validate_settings(s: &QualitySettings) -> crate::error::ApiResult<()> {
    let mut check = crate::http::Check::new();
    check.that(
        (1..=365).contains(&s.first_contact_window_days),
        "first_contact_window_days",
        "must be 1 to 365",
    );
    check.that(
        s.reopen_window_days <= 365,
        "reopen_window_days",
        "must be 0 to 365",
    );
    check.that(
        s.confirmation_delay_days <= 90,
        "confirmation_delay_days",
        "must be 0 to 90",
    );
    check.that(
        (1..=90).contains(&s.survey_ttl_days),
        "survey_ttl_days",
        "must be 1 to 90",
    );
    check.that(
        s.same_agent_wait_seconds <= 3600,
        "same_agent_wait_seconds",
        "must be 0 to 3600",
    );
    check.that(
        s.denied_head_start_seconds <= 86_400,
        "denied_head_start_seconds",
        "must be 0 to 86400",
    );
    check.done()
}

/// `Desk::tick`'s share: held reopens go to their agent or their queue.
/// Failures are logged, never returned. (Survey links expire in the survey
/// loop, `surveys::start`.)
impl crate::desk::Desk {
    pub async fn quality_tick(&self) {
        if let Err(e) = self.release_holds().await {
            tracing::warn!(error = %e, "could not release held reopens");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_are_valid_and_bounds_are_checked() {
        assert!(validate_settings(&QualitySettings::default()).is_ok());
        let bad = QualitySettings {
            first_contact_window_days: 0,
            survey_ttl_days: 91,
            ..QualitySettings::default()
        };
        let Err(crate::error::ApiError::Validation(errors)) = validate_settings(&bad) else {
            panic!("accepted")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["first_contact_window_days", "survey_ttl_days"]);
    }
}
