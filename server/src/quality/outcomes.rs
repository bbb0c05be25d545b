//! The quality row of an ended inbound complaint, written in the resolve's
//! own transaction (`Db::resolve` runs [`record_outcome_sql`]: on PostgreSQL in
//! one statement with its next read, elsewhere by [`record_outcome`]), and
//! read back.

use super::DAY_MS;
use crate::store::{Db, StoreError, StoreResult};
use callcenter_proto::outcomes::{Confirmation, QualitySettings, TicketQuality};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// Retention windows after a complaint ends.
pub const RETAINED_30_MS: i64 = 30 * DAY_MS;
pub const RETAINED_90_MS: i64 = 90 * DAY_MS;

/// Write the quality row of a ticket that has just ended, inside the
/// transaction that ended it (the ticket row is already updated and locked
/// by it, its live assignment ended). Outbound tickets have none. One
/// statement: it is on every complaint's path.
///
/// - first contact: no other complaint of the customer in the category
///   created in the window before this one (same moment: lower id first),
///   and not itself a reopen;
/// - retained: the customer's first purchase from the end on, within 30 and
///   90 days (one already recorded with a later date counts too, so the row
///   does not depend on the order in which events arrive);
/// - handle time: the time agents held it; duration: from the first
///   complaint of its journey (a reopen continues its origin's).
pub async fn record_outcome(
    tx: &mut Transaction<'static, Any>,
    ticket_id: i64,
    agent_id: i64,
    now_ms: i64,
    settings: &QualitySettings,
) -> StoreResult<()> {
    bind_outcome(
        sqlx::query(&record_outcome_sql(&OutcomeInputs::PLACEHOLDERS)),
        ticket_id,
        agent_id,
        now_ms,
        settings,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Where [`record_outcome_sql`] finds its inputs: the ended tickets `t`
/// (`from`, which names `tickets t` and whatever gives the other inputs)
/// and, as expressions over them, the agent, now, today, the first-contact
/// window and the ends of the 30 and 90 days of retention.
pub(crate) struct OutcomeInputs<'a> {
    pub from: &'a str,
    pub agent: &'a str,
    pub now: &'a str,
    pub day: &'a str,
    pub window: &'a str,
    pub until_30: &'a str,
    pub until_90: &'a str,
}

impl OutcomeInputs<'static> {
    /// One ticket: `$1` the ticket, `$2` the agent, `$3` now, `$4` to `$7`
    /// what [`bind_outcome`] binds.
    pub(crate) const PLACEHOLDERS: OutcomeInputs<'static> = OutcomeInputs {
        from: "tickets t WHERE t.id = $1 AND",
        agent: "$2",
        now: "$3",
        day: "$4",
        window: "$5",
        until_30: "$6",
        until_90: "$7",
    };
}

/// [`record_outcome`]'s statement, for a caller that runs it with more (a
/// `WITH` of the resolve's next read on PostgreSQL) or for several tickets
/// at once (`inputs` from a list of values).
pub(crate) fn record_outcome_sql(inputs: &OutcomeInputs<'_>) -> String {
    let OutcomeInputs {
        from,
        agent,
        now,
        day,
        window,
        until_30,
        until_90,
    } = inputs;
    format!(
        "INSERT INTO ticket_quality (ticket_id, customer_id, category_id, queue_id, agent_id, \
             ended_at_ms, ended_day, resolved, resolution_code, first_contact, retained_30, \
             retained_90, retention_purchase_id, compensation_minor, handle_ms, duration_ms) \
         SELECT id, customer_id, category_id, queue_id, o_agent, o_now, o_day, resolved, outcome_code, \
             CASE WHEN reopen_of IS NULL AND earlier = 0 THEN 1 ELSE 0 END, \
             retained_30, CASE WHEN purchase_id IS NULL THEN 0 ELSE 1 END, purchase_id, \
             compensation, CASE WHEN handle > 0 THEN handle ELSE 0 END, \
             CASE WHEN o_now - started > 0 THEN o_now - started ELSE 0 END \
         FROM (SELECT t.id, t.customer_id, t.category_id, t.queue_id, t.outcome_code, t.reopen_of, \
                 {agent} AS o_agent, {now} AS o_now, {day} AS o_day, \
                 CASE WHEN COALESCE(t.outcome_resolved, 0) > 0 THEN 1 ELSE 0 END AS resolved, \
                 COALESCE(t.origin_started_ms, t.created_at_ms) AS started, \
                 CASE WHEN EXISTS (SELECT 1 FROM tickets e WHERE e.customer_id = t.customer_id \
                     AND e.category_id = t.category_id AND e.kind = 'inbound' AND e.id <> t.id \
                     AND e.created_at_ms >= t.created_at_ms - {window} \
                     AND (e.created_at_ms < t.created_at_ms \
                          OR (e.created_at_ms = t.created_at_ms AND e.id < t.id))) \
                     THEN 1 ELSE 0 END AS earlier, \
                 CASE WHEN EXISTS (SELECT 1 FROM purchases p WHERE p.customer_id = t.customer_id \
                     AND p.purchased_at_ms >= {now} AND p.purchased_at_ms <= {until_30}) \
                     THEN 1 ELSE 0 END AS retained_30, \
                 (SELECT p.id FROM purchases p WHERE p.customer_id = t.customer_id \
                     AND p.purchased_at_ms >= {now} AND p.purchased_at_ms <= {until_90} \
                     ORDER BY p.purchased_at_ms, p.id LIMIT 1) AS purchase_id, \
                 (SELECT CAST(COALESCE(SUM(l.amount_minor), 0) AS BIGINT) \
                     FROM compensation_ledger l WHERE l.ticket_id = t.id) AS compensation, \
                 (SELECT CAST(COALESCE(SUM(COALESCE(a.ended_at_ms, {now}) - a.started_at_ms), 0) AS BIGINT) \
                     FROM assignments a WHERE a.ticket_id = t.id) AS handle \
             FROM {from} t.kind = 'inbound') q"
    )
}

/// The quality settings' inputs of [`record_outcome_sql`] for a ticket
/// ended at `now_ms`: today, the first-contact window, the ends of the 30
/// and 90 days of retention.
pub(crate) fn outcome_inputs(now_ms: i64, settings: &QualitySettings) -> [i64; 4] {
    [
        now_ms.div_euclid(DAY_MS),
        i64::from(settings.first_contact_window_days) * DAY_MS,
        now_ms + RETAINED_30_MS,
        now_ms + RETAINED_90_MS,
    ]
}

/// Bind the parameters of [`record_outcome_sql`] with
/// [`OutcomeInputs::PLACEHOLDERS`].
pub(crate) fn bind_outcome<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ticket_id: i64,
    agent_id: i64,
    now_ms: i64,
    settings: &QualitySettings,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    let [day, window, until_30, until_90] = outcome_inputs(now_ms, settings);
    query
        .bind(ticket_id)
        .bind(agent_id)
        .bind(now_ms)
        .bind(day)
        .bind(window)
        .bind(until_30)
        .bind(until_90)
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
