//! Did the customer stay? A purchase or renewal at most 30 (90) days after
//! a complaint ended marks its row `retained_30` (`retained_90`) and links
//! the first such purchase (renewal). And what did keeping them cost? Every
//! compensation ledger entry on a complaint (grants, approvals, reversals)
//! sets its row's `compensation_minor` to the ticket's net ledger sum.

use super::outcomes::{RETAINED_30_MS, RETAINED_90_MS};
use crate::desk::Desk;
use crate::outbound::journeys::Trigger;
use crate::store::{Db, StoreResult};
use sqlx::{Any, Row, Transaction};

/// The net compensation (grants minus reversals) on a ticket, in minor units
/// (the resolve's quality record sums it the same way, in its one statement).
async fn compensation_of(tx: &mut Transaction<'static, Any>, ticket_id: i64) -> StoreResult<i64> {
    Ok(sqlx::query(
        "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS total FROM compensation_ledger \
         WHERE ticket_id = $1",
    )
    .bind(ticket_id)
    .fetch_one(&mut **tx)
    .await?
    .try_get("total")?)
}

/// A ledger entry of `amount_minor` on `ticket_id` is being appended in this
/// transaction (next, so the ledger's lock is not held for this): bring the
/// complaint's quality row (if it has ended) up to date. The ticket row is
/// locked first, so a resolve running at the same time either sees this
/// entry when it writes the row or is seen by this update, and two entries
/// on one ticket are counted one after the other.
pub async fn compensation_entered(
    tx: &mut Transaction<'static, Any>,
    ticket_id: i64,
    amount_minor: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE tickets SET updated_at_ms = updated_at_ms WHERE id = $1")
        .bind(ticket_id)
        .execute(&mut **tx)
        .await?;
    let total = compensation_of(tx, ticket_id).await? + amount_minor;
    sqlx::query(
        "UPDATE ticket_quality SET compensation_minor = $1 WHERE ticket_id = $2 \
         AND compensation_minor <> $1",
    )
    .bind(total)
    .bind(ticket_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A purchase at `at_ms`: the customer's complaints that ended in the 90
/// days before it are retained (30 days: `retained_30` too), linked to the
/// earliest purchase that does it. Idempotent: rows it would not change are
/// not written.
pub async fn purchase_recorded(
    db: &Db,
    customer_id: i64,
    purchase_id: i64,
    at_ms: i64,
) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE ticket_quality SET retained_90 = 1, \
             retained_30 = CASE WHEN $1 - ended_at_ms <= $2 THEN 1 ELSE retained_30 END, \
             retention_purchase_id = CASE WHEN retention_purchase_id IS NULL \
                 OR (SELECT p.purchased_at_ms FROM purchases p WHERE p.id = retention_purchase_id) > $1 \
                 THEN $3 ELSE retention_purchase_id END \
         WHERE customer_id = $4 AND ended_at_ms <= $1 AND ended_at_ms >= $1 - $5 \
             AND (retained_90 = 0 OR (retained_30 = 0 AND $1 - ended_at_ms <= $2) \
                 OR retention_purchase_id IS NULL \
                 OR (SELECT p.purchased_at_ms FROM purchases p WHERE p.id = retention_purchase_id) > $1)",
    )
    .bind(at_ms)
    .bind(RETAINED_30_MS)
    .bind(purchase_id)
    .bind(customer_id)
    .bind(RETAINED_90_MS)
    .execute(db.pool())
    .await?
    .rows_affected())
}

/// A membership or renewal recorded now: the same, linked to the renewal.
pub async fn membership_recorded(
    db: &Db,
    customer_id: i64,
    membership_id: i64,
) -> StoreResult<u64> {
    let Some(row) =
        sqlx::query("SELECT created_at_ms FROM memberships WHERE id = $1 AND customer_id = $2")
            .bind(membership_id)
            .bind(customer_id)
            .fetch_optional(db.pool())
            .await?
    else {
        return Ok(0);
    };
    let at_ms: i64 = row.try_get("created_at_ms")?;
    Ok(sqlx::query(
        "UPDATE ticket_quality SET retained_90 = 1, \
             retained_30 = CASE WHEN $1 - ended_at_ms <= $2 THEN 1 ELSE retained_30 END, \
             retention_membership_id = CASE WHEN retention_membership_id IS NULL \
                 OR (SELECT m.created_at_ms FROM memberships m WHERE m.id = retention_membership_id) > $1 \
                 THEN $3 ELSE retention_membership_id END \
         WHERE customer_id = $4 AND ended_at_ms <= $1 AND ended_at_ms >= $1 - $5 \
             AND (retained_90 = 0 OR (retained_30 = 0 AND $1 - ended_at_ms <= $2) \
                 OR retention_membership_id IS NULL \
                 OR (SELECT m.created_at_ms FROM memberships m WHERE m.id = retention_membership_id) > $1)",
    )
    .bind(at_ms)
    .bind(RETAINED_30_MS)
    .bind(membership_id)
    .bind(customer_id)
    .bind(RETAINED_90_MS)
    .execute(db.pool())
    .await?
    .rows_affected())
}

impl Desk {
    /// Every purchase and membership event (HTTP intake and CSV import)
    /// passes through `journeys_on`, which calls this first. Failures are
    /// logged, never returned: the event itself is already recorded.
    pub async fn retention_on(&self, trigger: &Trigger) {
        let done = match *trigger {
            Trigger::Purchase {
                customer_id,
                purchase_id,
                at_ms,
            } => purchase_recorded(&self.db, customer_id, purchase_id, at_ms).await,
            Trigger::MembershipEnd {
                customer_id,
                membership_id,
                ..
            } => membership_recorded(&self.db, customer_id, membership_id).await,
            _ => return,
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "could not record retention after complaints");
        }
    }
}
