//! The quality row of an ended inbound complaint, written in the resolve's
//! own transaction (`Db::resolve` calls [`record_outcome`]), and read back.

use super::{DAY_MS, settings_in};
use crate::store::{Db, StoreError, StoreResult};
use callcenter_proto::outcomes::{Confirmation, TicketQuality};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// Retention windows after a complaint ends.
pub const RETAINED_30_MS: i64 = 30 * DAY_MS;
pub const RETAINED_90_MS: i64 = 90 * DAY_MS;

/// Write the quality row of a ticket that has just ended, inside the
/// transaction that ended it (the ticket row is already updated and locked
/// by it, its live assignment ended). Outbound tickets have none.
pub async fn record_outcome(
    tx: &mut Transaction<'static, Any>,
    ticket_id: i64,
    agent_id: i64,
    now_ms: i64,
) -> StoreResult<()> {
    let t = sqlx::query(
        "SELECT kind, customer_id, category_id, queue_id, created_at_ms, outcome_code, \
             outcome_resolved, reopen_of, origin_started_ms FROM tickets WHERE id = $1",
    )
    .bind(ticket_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound("ticket"))?;
    if t.try_get::<String, _>("kind")? != "inbound" {
        return Ok(());
    }
    let customer_id: i64 = t.try_get("customer_id")?;
    let category_id: i64 = t.try_get("category_id")?;
    let created: i64 = t.try_get("created_at_ms")?;
    let reopen_of: Option<i64> = t.try_get("reopen_of")?;
    let started = t
        .try_get::<Option<i64>, _>("origin_started_ms")?
        .unwrap_or(created);
    let settings = settings_in(tx).await?;
    let window_ms = i64::from(settings.first_contact_window_days) * DAY_MS;

    // First contact: no other complaint of the customer in the category
    // created in the window before this one (same moment: lower id first),
    // and not itself a reopen.
    let earlier = sqlx::query(
        "SELECT 1 AS one FROM tickets WHERE customer_id = $1 AND category_id = $2 \
             AND kind = 'inbound' AND id <> $3 AND created_at_ms >= $4 \
             AND (created_at_ms < $5 OR (created_at_ms = $5 AND id < $3)) LIMIT 1",
    )
    .bind(customer_id)
    .bind(category_id)
    .bind(ticket_id)
    .bind(created - window_ms)
    .bind(created)
    .fetch_optional(&mut **tx)
    .await?
    .is_some();
    let first_contact = reopen_of.is_none() && !earlier;

    let handle_ms: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(COALESCE(ended_at_ms, $2) - started_at_ms), 0) AS BIGINT) AS ms \
         FROM assignments WHERE ticket_id = $1",
    )
    .bind(ticket_id)
    .bind(now_ms)
    .fetch_one(&mut **tx)
    .await?
    .try_get("ms")?;
    let compensation = super::retention::compensation_of(tx, ticket_id).await?;
    // A purchase already recorded with a later date (rare: the shop posts
    // future-dated orders) counts as well, so the row does not depend on
    // the order in which events arrive.
    let later_purchase = sqlx::query(
        "SELECT id, purchased_at_ms FROM purchases WHERE customer_id = $1 \
             AND purchased_at_ms >= $2 AND purchased_at_ms <= $3 \
         ORDER BY purchased_at_ms, id LIMIT 1",
    )
    .bind(customer_id)
    .bind(now_ms)
    .bind(now_ms + RETAINED_90_MS)
    .fetch_optional(&mut **tx)
    .await?;
    let (retained_30, retained_90, purchase_id) = match later_purchase {
        Some(p) => {
            let at: i64 = p.try_get("purchased_at_ms")?;
            (
                at - now_ms <= RETAINED_30_MS,
                true,
                Some(p.try_get::<i64, _>("id")?),
            )
        }
        None => (false, false, None),
    };

    sqlx::query(
        "INSERT INTO ticket_quality (ticket_id, customer_id, category_id, queue_id, agent_id, \
             ended_at_ms, ended_day, resolved, resolution_code, first_contact, retained_30, \
             retained_90, retention_purchase_id, compensation_minor, handle_ms, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(ticket_id)
    .bind(customer_id)
    .bind(category_id)
    .bind(t.try_get::<i64, _>("queue_id")?)
    .bind(agent_id)
    .bind(now_ms)
    .bind(now_ms.div_euclid(DAY_MS))
    .bind(
        t.try_get::<Option<i64>, _>("outcome_resolved")?
            .unwrap_or(0)
            .min(1),
    )
    .bind(t.try_get::<Option<String>, _>("outcome_code")?)
    .bind(first_contact as i64)
    .bind(retained_30 as i64)
    .bind(retained_90 as i64)
    .bind(purchase_id)
    .bind(compensation)
    .bind(handle_ms.max(0))
    .bind((now_ms - started).max(0))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const QUALITY_COLUMNS: &str = "q.ticket_id, q.customer_id, q.category_id, q.queue_id, q.agent_id, \
     q.ended_at_ms, q.ended_day, q.resolved, q.resolution_code, q.first_contact, q.confirmation, \
     q.confirmed_at_ms, q.confirmation_via, q.satisfaction, q.reopened, q.retained_30, \
     q.retained_90, q.retention_purchase_id, q.retention_membership_id, q.compensation_minor, \
     q.handle_ms, q.duration_ms, t.reopen_of, t.origin_id, t.origin_started_ms, t.created_at_ms";

fn from_row(r: &AnyRow) -> StoreResult<TicketQuality> {
    let flag = |name: &str| -> StoreResult<bool> { Ok(r.try_get::<i64, _>(name)? != 0) };
    let ticket_id: i64 = r.try_get("ticket_id")?;
    let confirmation: String = r.try_get("confirmation")?;
    Ok(TicketQuality {
        ticket_id,
        customer_id: r.try_get("customer_id")?,
        category_id: r.try_get("category_id")?,
        queue_id: r.try_get("queue_id")?,
        agent_id: r.try_get("agent_id")?,
        ended_at_ms: r.try_get("ended_at_ms")?,
        ended_day: r.try_get("ended_day")?,
        resolved: flag("resolved")?,
        resolution_code: r.try_get("resolution_code")?,
        first_contact: flag("first_contact")?,
        confirmation: Confirmation::parse(&confirmation)
            .ok_or(StoreError::NotFound("confirmation state"))?,
        confirmed_at_ms: r.try_get("confirmed_at_ms")?,
        confirmation_via: r.try_get("confirmation_via")?,
        satisfaction: r
            .try_get::<Option<i64>, _>("satisfaction")?
            .map(|s| s as u8),
        reopened: flag("reopened")?,
        retained_30: flag("retained_30")?,
        retained_90: flag("retained_90")?,
        retention_purchase_id: r.try_get("retention_purchase_id")?,
        retention_membership_id: r.try_get("retention_membership_id")?,
        compensation_minor: r.try_get("compensation_minor")?,
        handle_ms: r.try_get("handle_ms")?,
        duration_ms: r.try_get("duration_ms")?,
        reopen_of: r.try_get("reopen_of")?,
        origin_id: r
            .try_get::<Option<i64>, _>("origin_id")?
            .unwrap_or(ticket_id),
        origin_started_ms: match r.try_get::<Option<i64>, _>("origin_started_ms")? {
            Some(ms) => ms,
            None => r.try_get("created_at_ms")?,
        },
    })
}

/// The quality row of one ended complaint.
pub async fn ticket_quality(db: &Db, ticket_id: i64) -> StoreResult<TicketQuality> {
    let row = sqlx::query(&format!(
        "SELECT {QUALITY_COLUMNS} FROM ticket_quality q JOIN tickets t ON t.id = q.ticket_id \
         WHERE q.ticket_id = $1"
    ))
    .bind(ticket_id)
    .fetch_optional(db.pool())
    .await?
    .ok_or(StoreError::NotFound("quality record of this ticket"))?;
    from_row(&row)
}

/// Quality rows of complaints ended in `[from_ms, to_ms)`, in order of end
/// (then ticket id), at most `limit`.
pub async fn ended_between(
    db: &Db,
    from_ms: i64,
    to_ms: i64,
    limit: i64,
) -> StoreResult<Vec<TicketQuality>> {
    sqlx::query(&format!(
        "SELECT {QUALITY_COLUMNS} FROM ticket_quality q JOIN tickets t ON t.id = q.ticket_id \
         WHERE q.ended_at_ms >= $1 AND q.ended_at_ms < $2 ORDER BY q.ended_at_ms, q.ticket_id LIMIT $3"
    ))
    .bind(from_ms)
    .bind(to_ms)
    .bind(limit)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(from_row)
    .collect()
}
