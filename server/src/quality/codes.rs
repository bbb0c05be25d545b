//! Resolution codes: the administrators' list an outcome's code comes from.
//! Codes are never deleted (past outcomes keep theirs); a retired code is
//! refused on new outcomes.

use crate::error::{ApiError, ApiResult};
use crate::http::Check;
use crate::store::cache::Scope;
use crate::store::{Db, StoreError, StoreResult};
use callcenter_proto::outcomes::{ResolutionCode, ResolutionCodeCreate, ResolutionCodeUpdate};
use sqlx::Row;
use sqlx::any::AnyRow;

/// 1 to 64 of a-z, 0-9, _.
pub fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn from_row(r: &AnyRow) -> StoreResult<ResolutionCode> {
    Ok(ResolutionCode {
        code: r.try_get("code")?,
        label: r.try_get("label")?,
        active: r.try_get::<i64, _>("active")? != 0,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

/// Every code (`active_only`: the ones an outcome may carry now), by code.
pub async fn list(db: &Db, active_only: bool) -> StoreResult<Vec<ResolutionCode>> {
    let sql = if active_only {
        "SELECT code, label, active, created_at_ms FROM resolution_codes WHERE active = 1 ORDER BY code"
    } else {
        "SELECT code, label, active, created_at_ms FROM resolution_codes ORDER BY code"
    };
    sqlx::query(sql)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub async fn get(db: &Db, code: &str) -> StoreResult<ResolutionCode> {
    let row = sqlx::query(
        "SELECT code, label, active, created_at_ms FROM resolution_codes WHERE code = $1",
    )
    .bind(code)
    .fetch_optional(db.pool())
    .await?
    .ok_or(StoreError::NotFound("resolution code"))?;
    from_row(&row)
}

/// Refuse an inbound outcome whose code is not an active resolution code.
pub async fn check_active(db: &Db, code: &str) -> ApiResult<()> {
    if is_active(db, code).await? {
        Ok(())
    } else {
        Err(ApiError::field(
            "outcome.code",
            format!("{code:?} is not an active resolution code (see /api/resolution-codes)"),
        ))
    }
}

/// Whether `code` is an active resolution code (read through the cache).
pub async fn is_active(db: &Db, code: &str) -> StoreResult<bool> {
    Ok(match db.cache().code_active(code) {
        Some(active) => active,
        None => {
            let generation = db.cache().generation();
            let active =
                sqlx::query("SELECT 1 AS one FROM resolution_codes WHERE code = $1 AND active = 1")
                    .bind(code)
                    .fetch_optional(db.pool())
                    .await?
                    .is_some();
            db.cache().put_code_active(generation, code, active);
            active
        }
    })
}

pub async fn create(db: &Db, req: &ResolutionCodeCreate, now_ms: i64) -> ApiResult<ResolutionCode> {
    let mut check = Check::new();
    check.that(is_code(&req.code), "code", "1 to 64 of a-z, 0-9, _");
    check.text("label", &req.label, 200);
    check.done()?;
    let inserted = sqlx::query(
        "INSERT INTO resolution_codes (code, label, active, created_at_ms) VALUES ($1, $2, 1, $3)",
    )
    .bind(&req.code)
    .bind(req.label.trim())
    .bind(now_ms)
    .execute(db.pool())
    .await;
    match inserted {
        Ok(_) => {
            db.cache().invalidate(Scope::Directory);
            Ok(get(db, &req.code).await?)
        }
        Err(e) if crate::store::is_unique_violation(&e) => Err(ApiError::Conflict(format!(
            "the resolution code {:?} already exists",
            req.code
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn update(db: &Db, code: &str, req: &ResolutionCodeUpdate) -> ApiResult<ResolutionCode> {
    let mut check = Check::new();
    if let Some(label) = &req.label {
        check.text("label", label, 200);
    }
    check.done()?;
    let current = get(db, code).await?;
    sqlx::query("UPDATE resolution_codes SET label = $1, active = $2 WHERE code = $3")
        .bind(
            req.label
                .as_deref()
                .map(str::trim)
                .unwrap_or(&current.label),
        )
        .bind(req.active.unwrap_or(current.active) as i64)
        .bind(code)
        .execute(db.pool())
        .await?;
    db.cache().invalidate(Scope::Directory);
    Ok(get(db, code).await?)
}

#[cfg(test)]
mod tests {
    use super::is_code;

    #[test]
    fn codes_are_lowercase_words() {
        assert!(is_code("refund_issued"));
        assert!(is_code("a1"));
        assert!(!is_code(""));
        assert!(!is_code("Refund"));
        assert!(!is_code("refund issued"));
        assert!(!is_code(&"a".repeat(65)));
    }
}
