//! Reopens: durations and reopen rates count the customer's problem, not the
//! ticket.
//!
//! - **Filed again.** A complaint filed by a customer within the reopen
//!   window (default 14 days) after an earlier complaint of theirs in the
//!   same category ended is that complaint's reopen: `tickets.reopen_of` is
//!   the most recently ended one, `origin_id`/`origin_started_ms` come from
//!   it (so a chain keeps its first start), and the earlier row is marked
//!   `reopened`, all in the filing transaction. It gets the queue's
//!   `reopen_head_start_seconds`. Every other complaint is its own origin
//!   (its origin columns stay empty: the ticket's own id and creation time).
//! - **Denied.** A customer's "no" (survey or call) marks the complaint
//!   `denied` and `reopened` and files its reopen with a head start (the
//!   queue's `reopen_head_start_seconds` or the settings'
//!   `denied_head_start_seconds`, whichever is larger), unless the customer
//!   already has an open complaint in that category. The reopen is first
//!   held for the agent who resolved the complaint: routing does not see it
//!   until that agent is available with room for it — then it is offered to
//!   them first — or until `same_agent_wait_seconds` pass, when it joins its
//!   queue at its boosted rank.

use super::{DAY_MS, settings};
use crate::desk::{Desk, FRONT_OF_QUEUE_RANK, head_start_ms};
use crate::error::ApiResult;
use crate::routing::{TicketKind, WaitingTicket};
use crate::store::{Db, StoreError, StoreResult};
use callcenter_proto::AgentState;
use callcenter_proto::http::Customer;
use sqlx::{Any, Row, Transaction};

/// A preference below any a queue strategy gives (they are small numbers:
/// minus skill levels, tickets taken today): the held reopen's agent is
/// picked first among the eligible ones.
const FIRST_CHOICE: i64 = -1_000_000_000;

/// The earlier complaint a new one reopens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReopenLink {
    pub of: i64,
    pub origin_id: i64,
    pub origin_started_ms: i64,
}

/// Append a step to a ticket's history inside a transaction.
pub(crate) async fn event(
    tx: &mut Transaction<'static, Any>,
    ticket_id: i64,
    at_ms: i64,
    actor: Option<i64>,
    kind: &str,
    data: serde_json::Value,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(ticket_id)
    .bind(at_ms)
    .bind(actor)
    .bind(kind)
    .bind(data.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The reopen window, in milliseconds (0: complaints never reopen).
pub async fn reopen_window_ms(db: &Db) -> StoreResult<i64> {
    Ok(i64::from(settings(db).await?.reopen_window_days) * DAY_MS)
}

/// The customer's card and the complaint a new one of theirs in this
/// category reopens (the latest that ended within the window), read in the
/// filing transaction with one statement.
pub async fn card_and_reopen_candidate_on(
    conn: &mut sqlx::AnyConnection,
    customer_id: i64,
    category_id: i64,
    window_ms: i64,
    now_ms: i64,
) -> StoreResult<(Customer, Option<ReopenLink>)> {
    use crate::store::customers::{CARD_COLUMNS, CARD_ORDER, PURCHASES_JOIN, card_from_rows};
    let since = reopen_since(window_ms, now_ms);
    let rows = sqlx::query(&format!(
        "SELECT {CARD_COLUMNS}, r.ticket_id AS r_ticket_id, r.origin_id AS r_origin_id, \
             r.origin_started_ms AS r_origin_started_ms, r.created_at_ms AS r_created_at_ms \
         FROM customers c {PURCHASES_JOIN} \
         LEFT JOIN (SELECT q.ticket_id, t.origin_id, t.origin_started_ms, t.created_at_ms \
             FROM ticket_quality q JOIN tickets t ON t.id = q.ticket_id \
             WHERE q.customer_id = $1 AND q.category_id = $2 AND q.ended_at_ms >= $3 \
                 AND q.ended_at_ms <= $4 \
             ORDER BY q.ended_at_ms DESC, q.ticket_id DESC LIMIT 1) r ON 1 = 1 \
         WHERE c.id = $1 {CARD_ORDER}"
    ))
    .bind(customer_id)
    .bind(category_id)
    .bind(since)
    .bind(now_ms)
    .fetch_all(conn)
    .await?;
    let customer = card_from_rows(&rows)?.ok_or(StoreError::NotFound("customer"))?;
    let reopen = match rows.first() {
        Some(r) if r.try_get::<Option<i64>, _>("r_ticket_id")?.is_some() => Some(link_to(r, "r_")?),
        _ => None,
    };
    Ok((customer, reopen))
}

/// Where the reopen window starts: a window of 0 (complaints never reopen)
/// is an empty time range.
fn reopen_since(window_ms: i64, now_ms: i64) -> i64 {
    if window_ms == 0 {
        now_ms.saturating_add(1)
    } else {
        now_ms - window_ms
    }
}

/// What [`card_and_reopen_candidate_on`] reads, for several filings in one
/// statement (PostgreSQL): each `(customer, category, window, now)` gets its
/// card and candidate, in order; a customer that does not exist fails them
/// all.
pub async fn cards_and_reopen_candidates_on(
    conn: &mut sqlx::AnyConnection,
    filings: &[(i64, i64, i64, i64)],
) -> StoreResult<Vec<(Customer, Option<ReopenLink>)>> {
    use crate::store::customers::{CARD_COLUMNS, PURCHASES_JOIN, card_from_rows};
    let values = crate::store::values_list(filings.len(), &["BIGINT"; 5]);
    let sql = format!(
        "SELECT v.ord AS v_ord, {CARD_COLUMNS}, r.ticket_id AS r_ticket_id, \
             r.origin_id AS r_origin_id, r.origin_started_ms AS r_origin_started_ms, \
             r.created_at_ms AS r_created_at_ms \
         FROM (VALUES {values}) AS v (ord, customer_id, category_id, since, until) \
         JOIN customers c ON c.id = v.customer_id {PURCHASES_JOIN} \
         LEFT JOIN LATERAL (SELECT q.ticket_id, t.origin_id, t.origin_started_ms, t.created_at_ms \
             FROM ticket_quality q JOIN tickets t ON t.id = q.ticket_id \
             WHERE q.customer_id = v.customer_id AND q.category_id = v.category_id \
                 AND q.ended_at_ms >= v.since AND q.ended_at_ms <= v.until \
             ORDER BY q.ended_at_ms DESC, q.ticket_id DESC LIMIT 1) r ON TRUE \
         ORDER BY v.ord, p.purchased_at_ms DESC, p.id DESC"
    );
    let mut query = sqlx::query(&sql);
    for (i, &(customer_id, category_id, window_ms, now_ms)) in filings.iter().enumerate() {
        query = query
            .bind(i as i64)
            .bind(customer_id)
            .bind(category_id)
            .bind(reopen_since(window_ms, now_ms))
            .bind(now_ms);
    }
    let rows = query.fetch_all(conn).await?;
    let mut found = Vec::with_capacity(filings.len());
    let mut rest = rows.as_slice();
    for i in 0..filings.len() as i64 {
        let n = rest
            .iter()
            .take_while(|r| r.try_get::<i64, _>("v_ord").ok() == Some(i))
            .count();
        let (own, after) = rest.split_at(n);
        rest = after;
        let customer = card_from_rows(own)?.ok_or(StoreError::NotFound("customer"))?;
        let reopen = match own.first() {
            Some(r) if r.try_get::<Option<i64>, _>("r_ticket_id")?.is_some() => {
                Some(link_to(r, "r_")?)
            }
            _ => None,
        };
        found.push((customer, reopen));
    }
    Ok(found)
}

/// A reopen link from a row's `{prefix}ticket_id`, `{prefix}origin_id`, ...
fn link_to(r: &sqlx::any::AnyRow, prefix: &str) -> StoreResult<ReopenLink> {
    let col = |name: &str| format!("{prefix}{name}");
    let of: i64 = r.try_get(col("ticket_id").as_str())?;
    Ok(ReopenLink {
        of,
        origin_id: r
            .try_get::<Option<i64>, _>(col("origin_id").as_str())?
            .unwrap_or(of),
        origin_started_ms: match r.try_get::<Option<i64>, _>(col("origin_started_ms").as_str())? {
            Some(ms) => ms,
            None => r.try_get(col("created_at_ms").as_str())?,
        },
    })
}

/// Where a new complaint's reopen chain starts, written with its row:
/// (`reopen_of`, `origin_id`, `origin_started_ms`). A complaint that is its
/// own origin leaves both origin columns empty (readers take the ticket's
/// own id and creation time).
pub fn chain_columns(link: Option<&ReopenLink>) -> (Option<i64>, Option<i64>, Option<i64>) {
    match link {
        Some(l) => (Some(l.of), Some(l.origin_id), Some(l.origin_started_ms)),
        None => (None, None, None),
    }
}

/// A new complaint reopens `link`, in its filing transaction: the earlier
/// row is marked reopened and both histories say so.
pub async fn link_in(
    tx: &mut Transaction<'static, Any>,
    ticket_id: i64,
    link: &ReopenLink,
    created_ms: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE ticket_quality SET reopened = 1 WHERE ticket_id = $1 AND reopened = 0")
        .bind(link.of)
        .execute(&mut **tx)
        .await?;
    event(
        tx,
        ticket_id,
        created_ms,
        None,
        "reopen_of",
        serde_json::json!({ "ticket_id": link.of, "origin_id": link.origin_id }),
    )
    .await?;
    event(
        tx,
        link.of,
        created_ms,
        None,
        "reopened",
        serde_json::json!({ "by_ticket_id": ticket_id }),
    )
    .await?;
    Ok(())
}

/// The reopen links of several filings in one statement (PostgreSQL, for a
/// group commit's filings): what [`link_in`] writes for each, in their
/// order. Each is (the new ticket, the link, when it was filed).
pub(crate) async fn links_in(
    tx: &mut Transaction<'static, Any>,
    links: &[(i64, &ReopenLink, i64)],
) -> StoreResult<()> {
    if links.is_empty() {
        return Ok(());
    }
    let values = crate::store::values_list(
        links.len(),
        &["BIGINT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "TEXT"],
    );
    let sql = format!(
        "WITH l (l_ord, l_ticket, l_of, l_at, l_reopen_of, l_reopened) AS (VALUES {values}), \
         q AS (UPDATE ticket_quality SET reopened = 1 \
               WHERE ticket_id IN (SELECT l_of FROM l) AND reopened = 0) \
         INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
         SELECT ticket_id, at_ms, CAST(NULL AS BIGINT), kind, data FROM ( \
             SELECT l_ord, 0 AS step, l_ticket AS ticket_id, l_at AS at_ms, \
                 'reopen_of' AS kind, l_reopen_of AS data FROM l \
             UNION ALL SELECT l_ord, 1, l_of, l_at, 'reopened', l_reopened FROM l) s \
         ORDER BY l_ord, step"
    );
    let mut query = sqlx::query(&sql);
    for (i, (ticket_id, link, at_ms)) in links.iter().enumerate() {
        query = query
            .bind(i as i64)
            .bind(*ticket_id)
            .bind(link.of)
            .bind(*at_ms)
            .bind(
                serde_json::json!({ "ticket_id": link.of, "origin_id": link.origin_id })
                    .to_string(),
            )
            .bind(serde_json::json!({ "by_ticket_id": ticket_id }).to_string());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Everything a "no" needs, read before its transaction (SQLite has one
/// connection: nothing may be read through the pool inside it).
pub(crate) struct DenialPlan {
    pub complaint_id: i64,
    pub customer_id: i64,
    pub category_id: i64,
    pub queue_id: i64,
    pub rank_ms: i64,
    pub hold: Option<(i64, i64)>,
    pub link: ReopenLink,
}

/// What an answer did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AnswerEffect {
    /// The new reopen ticket: (id, queue, rank, held for agent).
    pub reopen: Option<(i64, i64, i64, Option<i64>)>,
    /// The complaint is reopened (now or before).
    pub reopened: bool,
}

/// A customer's answer about a resolved complaint.
pub(crate) struct Answer<'a> {
    pub still_solved: bool,
    pub satisfaction: Option<u8>,
    /// `survey` or `call`.
    pub via: &'static str,
    pub comment: &'a str,
}

impl Desk {
    /// Read what reopening this complaint after a "no" takes.
    pub(crate) async fn denial_plan(&self, complaint_id: i64) -> ApiResult<DenialPlan> {
        let now = self.clock.now_ms();
        let ticket = self.db.ticket(complaint_id).await?;
        let category = self.db.category(ticket.category_id).await?;
        let queue = self.db.queue(category.spec.queue_id).await?;
        let customer = self.db.customer(ticket.customer_id).await?;
        let s = settings(&self.db).await?;
        let boost = i64::from(
            queue
                .spec
                .priority
                .reopen_head_start_seconds
                .max(s.denied_head_start_seconds),
        ) * 1000;
        let rank_ms = now
            - head_start_ms(&queue.spec.priority, category.spec.base_priority, &customer)
            - boost;
        let row = sqlx::query(
            "SELECT q.ticket_id, q.agent_id, t.origin_id, t.origin_started_ms, t.created_at_ms \
             FROM ticket_quality q JOIN tickets t ON t.id = q.ticket_id WHERE q.ticket_id = $1",
        )
        .bind(complaint_id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(StoreError::NotFound("quality record of this ticket"))?;
        let agent: Option<i64> = row.try_get("agent_id")?;
        let hold = match agent {
            Some(a) if s.same_agent_wait_seconds > 0 && self.db.agent_routing(a).await.is_ok() => {
                Some((a, now + i64::from(s.same_agent_wait_seconds) * 1000))
            }
            _ => None,
        };
        Ok(DenialPlan {
            complaint_id,
            customer_id: ticket.customer_id,
            category_id: ticket.category_id,
            queue_id: queue.id,
            rank_ms,
            hold,
            link: link_to(&row, "")?,
        })
    }

    /// After an answer's transaction committed: a new reopen goes to its
    /// agent (if free now) or stays held, or joins its queue.
    pub(crate) async fn after_answer(&self, effect: &AnswerEffect) -> anyhow::Result<()> {
        let Some((ticket_id, queue_id, rank_ms, held)) = effect.reopen else {
            return Ok(());
        };
        match held {
            Some(agent_id) => {
                self.offer_held(ticket_id, agent_id).await?;
            }
            None => {
                self.routing
                    .enqueue(WaitingTicket {
                        ticket_id,
                        queue_id,
                        kind: TicketKind::Inbound,
                        rank_ms,
                        entered_ms: self.clock.now_ms(),
                    })
                    .await?;
                self.dispatch(queue_id).await?;
            }
        }
        Ok(())
    }

    /// Offer the reopens held for this agent, now that they may be free
    /// (called when they become available and when they end a ticket).
    pub async fn offer_held_reopens(&self, agent_id: i64) {
        let held = sqlx::query(
            "SELECT id FROM tickets WHERE held_for_agent_id = $1 AND status = 'queued' \
             AND held_until_ms > $2 ORDER BY id",
        )
        .bind(agent_id)
        .bind(self.clock.now_ms())
        .fetch_all(self.db.pool())
        .await;
        let held = match held {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, agent_id, "could not read held reopens");
                return;
            }
        };
        let held: Vec<i64> = held
            .iter()
            .filter_map(|row| row.try_get::<i64, _>("id").ok())
            .collect();
        self.offer_these_held_reopens(agent_id, &held).await;
    }

    /// Offer these held reopens (read by the caller) to their agent.
    pub async fn offer_these_held_reopens(&self, agent_id: i64, held: &[i64]) {
        for &ticket_id in held {
            if let Err(e) = self.offer_held(ticket_id, agent_id).await {
                tracing::warn!(error = %e, ticket_id, "could not offer a held reopen");
            }
        }
    }

    /// Held reopens whose wait is over join their queue; the others are
    /// offered to their agent if that agent is free now. Every node runs
    /// this on its tick; a conditional update hands each ticket to one.
    pub(crate) async fn release_holds(&self) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        // Planned at every run (not a statement kept prepared on the
        // connection): a plan kept from the node's first ticks, when
        // `tickets` was nearly empty, is a sequential scan, and without
        // ANALYZE (PostgreSQL with autovacuum off) nothing remakes it as the
        // table grows; planned now, the partial index `tickets_held` is
        // used. Four times a second per node: the planning costs little.
        let held = sqlx::query(
            "SELECT id, status, queue_id, rank_ms, held_for_agent_id, held_until_ms FROM tickets \
             WHERE held_for_agent_id IS NOT NULL ORDER BY held_until_ms, id LIMIT 100",
        )
        .persistent(false)
        .fetch_all(self.db.pool())
        .await?;
        for r in held {
            let ticket_id: i64 = r.try_get("id")?;
            let agent_id: i64 = r.try_get("held_for_agent_id")?;
            let until: i64 = r.try_get("held_until_ms")?;
            let status: String = r.try_get("status")?;
            if status != "queued" {
                // Cancelled meanwhile: nothing to route.
                sqlx::query(
                    "UPDATE tickets SET held_for_agent_id = NULL, held_until_ms = NULL WHERE id = $1",
                )
                .bind(ticket_id)
                .execute(self.db.pool())
                .await?;
            } else if until <= now {
                self.release_to_queue(ticket_id, agent_id, "the agent was not free in time")
                    .await?;
            } else {
                self.offer_held(ticket_id, agent_id).await?;
            }
        }
        Ok(())
    }

    /// End a hold (once, across nodes): the ticket joins its queue's line
    /// at its rank. Returns false when the hold had already ended.
    async fn release_to_queue(
        &self,
        ticket_id: i64,
        agent_id: i64,
        why: &str,
    ) -> anyhow::Result<bool> {
        let Some((queue_id, rank_ms)) = self.end_hold(ticket_id, agent_id, why, false).await?
        else {
            return Ok(false);
        };
        self.routing
            .enqueue(WaitingTicket {
                ticket_id,
                queue_id,
                kind: TicketKind::Inbound,
                rank_ms,
                entered_ms: self.clock.now_ms(),
            })
            .await?;
        self.dispatch(queue_id).await?;
        Ok(true)
    }

    /// Clear the hold in the record if it is still this agent's; returns
    /// the ticket's queue and rank.
    async fn end_hold(
        &self,
        ticket_id: i64,
        agent_id: i64,
        why: &str,
        first_to_agent: bool,
    ) -> anyhow::Result<Option<(i64, i64)>> {
        let now = self.clock.now_ms();
        let mut tx = crate::store::begin(self.db.pool()).await?;
        let done = sqlx::query(
            "UPDATE tickets SET held_for_agent_id = NULL, held_until_ms = NULL, updated_at_ms = $1 \
             WHERE id = $2 AND held_for_agent_id = $3 AND status = 'queued'",
        )
        .bind(now)
        .bind(ticket_id)
        .bind(agent_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let r = sqlx::query("SELECT queue_id, rank_ms FROM tickets WHERE id = $1")
            .bind(ticket_id)
            .fetch_one(&mut *tx)
            .await?;
        let (queue_id, rank_ms): (i64, i64) = (r.try_get("queue_id")?, r.try_get("rank_ms")?);
        let data = if first_to_agent {
            serde_json::json!({ "queue_id": queue_id, "offered_first_to": agent_id })
        } else {
            serde_json::json!({ "queue_id": queue_id, "held_for": agent_id, "reason": why })
        };
        event(&mut tx, ticket_id, now, None, "queued", data).await?;
        tx.commit().await?;
        Ok(Some((queue_id, rank_ms)))
    }

    /// Whether the agent is available with room for one more inbound ticket
    /// (assigned in the record plus pending offers in the live state).
    async fn free_for_inbound(&self, agent_id: i64, queues: &[i64]) -> anyhow::Result<bool> {
        let agent = self.db.agent_routing(agent_id).await?;
        if agent.state != AgentState::Available {
            return Ok(false);
        }
        let assigned = self
            .db
            .assigned_tickets_with_kind(agent_id)
            .await?
            .iter()
            .filter(|(_, kind)| kind == "inbound")
            .count();
        let mut offered = 0;
        for q in queues {
            offered += self
                .routing
                .offers(*q)
                .await?
                .iter()
                .filter(|o| o.agent_id == agent_id && o.kind == TicketKind::Inbound)
                .count();
        }
        Ok(((assigned + offered) as u32) < agent.capacity_inbound)
    }

    /// Offer a held reopen to its agent if they are free now: the hold ends
    /// and, for this one dispatch, the ticket is at the front of its line
    /// and the agent first among the eligible ones. An agent who cannot
    /// serve the ticket's queue any more releases it to the queue at once.
    pub(crate) async fn offer_held(&self, ticket_id: i64, agent_id: i64) -> anyhow::Result<()> {
        let queues = self.agent_queues(agent_id).await?;
        let ticket = self.db.ticket(ticket_id).await?;
        let Some(seat) = queues
            .iter()
            .find(|q| q.queue_id == ticket.queue_id)
            .copied()
        else {
            self.release_to_queue(ticket_id, agent_id, "the agent does not serve this queue")
                .await?;
            return Ok(());
        };
        let queue_ids: Vec<i64> = queues.iter().map(|q| q.queue_id).collect();
        if !self.free_for_inbound(agent_id, &queue_ids).await? {
            return Ok(());
        }
        let Some((queue_id, rank_ms)) = self.end_hold(ticket_id, agent_id, "", true).await? else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        // The agent's ring in this queue must be open for the ticket.
        let queue = self.db.queue(queue_id).await?;
        let rings = crate::desk::ring_after_ms(&queue);
        let entered_ms = match seat.ring {
            0 => now,
            k => now - rings.get(usize::from(k) - 1).copied().unwrap_or(0),
        };
        self.routing
            .set_preference(agent_id, queue_id, FIRST_CHOICE)
            .await?;
        let offered = async {
            self.routing
                .enqueue(WaitingTicket {
                    ticket_id,
                    queue_id,
                    kind: TicketKind::Inbound,
                    rank_ms: FRONT_OF_QUEUE_RANK - 1,
                    entered_ms,
                })
                .await?;
            self.dispatch(queue_id).await
        }
        .await;
        self.routing
            .set_preference(agent_id, queue_id, seat.preference)
            .await?;
        offered?;
        // Not offered to anyone (the live state thought the agent full):
        // it waits at its own rank like any reopen.
        if self.routing.waiting(queue_id).await?.contains(&ticket_id) {
            self.routing
                .enqueue(WaitingTicket {
                    ticket_id,
                    queue_id,
                    kind: TicketKind::Inbound,
                    rank_ms,
                    entered_ms,
                })
                .await?;
            self.dispatch(queue_id).await?;
        }
        Ok(())
    }
}

/// Record a customer's answer about a resolved complaint, in the caller's
/// transaction. A "yes" confirms it (a complaint already denied stays
/// denied: its reopen carries the story on); a "no" denies it, marks it
/// reopened and files its reopen (`plan`), unless it was denied before or
/// the customer has an open complaint in the category already.
pub(crate) async fn apply_answer(
    tx: &mut Transaction<'static, Any>,
    plan: &DenialPlan,
    answer: &Answer<'_>,
    now_ms: i64,
) -> StoreResult<AnswerEffect> {
    let current: String =
        sqlx::query("SELECT confirmation FROM ticket_quality WHERE ticket_id = $1")
            .bind(plan.complaint_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound("quality record of this ticket"))?
            .try_get("confirmation")?;
    let satisfaction = answer.satisfaction.map(i64::from);
    let mut effect = AnswerEffect::default();
    let summary = serde_json::json!({
        "still_solved": answer.still_solved,
        "satisfaction": answer.satisfaction,
        "via": answer.via,
        // `note`: erased with the customer's other free text (`rights.rs`).
        "note": answer.comment,
    });
    if current == "denied" {
        // Already reopened: keep a late satisfaction, nothing else.
        sqlx::query(
            "UPDATE ticket_quality SET satisfaction = COALESCE($1, satisfaction) WHERE ticket_id = $2",
        )
        .bind(satisfaction)
        .bind(plan.complaint_id)
        .execute(&mut **tx)
        .await?;
        event(tx, plan.complaint_id, now_ms, None, "confirmation", summary).await?;
        effect.reopened = true;
        return Ok(effect);
    }
    sqlx::query(
        "UPDATE ticket_quality SET confirmation = $1, confirmed_at_ms = $2, confirmation_via = $3, \
             satisfaction = COALESCE($4, satisfaction), reopened = CASE WHEN $5 = 1 THEN 1 ELSE reopened END \
         WHERE ticket_id = $6",
    )
    .bind(if answer.still_solved { "confirmed" } else { "denied" })
    .bind(now_ms)
    .bind(answer.via)
    .bind(satisfaction)
    .bind(i64::from(!answer.still_solved))
    .bind(plan.complaint_id)
    .execute(&mut **tx)
    .await?;
    event(tx, plan.complaint_id, now_ms, None, "confirmation", summary).await?;
    if answer.still_solved {
        return Ok(effect);
    }
    effect.reopened = true;
    let open = sqlx::query(
        "SELECT id FROM tickets WHERE customer_id = $1 AND category_id = $2 AND kind = 'inbound' \
             AND status IN ('queued', 'offered', 'assigned') ORDER BY id LIMIT 1",
    )
    .bind(plan.customer_id)
    .bind(plan.category_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(open) = open {
        let id: i64 = open.try_get("id")?;
        event(
            tx,
            plan.complaint_id,
            now_ms,
            None,
            "reopened",
            serde_json::json!({ "by_ticket_id": id, "already_open": true }),
        )
        .await?;
        return Ok(effect);
    }
    let description = if answer.comment.trim().is_empty() {
        format!(
            "Reopened: the customer says the problem of ticket #{} is not solved.",
            plan.complaint_id
        )
    } else {
        format!(
            "Reopened: the customer says the problem of ticket #{} is not solved: {}",
            plan.complaint_id,
            answer.comment.trim()
        )
    };
    let (held_for, held_until) = match plan.hold {
        Some((a, until)) => (Some(a), Some(until)),
        None => (None, None),
    };
    let id: i64 = sqlx::query(
        "INSERT INTO tickets (kind, status, customer_id, category_id, queue_id, channel, description, \
             rank_ms, created_at_ms, updated_at_ms, reopen_of, origin_id, origin_started_ms, \
             held_for_agent_id, held_until_ms) \
         VALUES ('inbound', 'queued', $1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(plan.customer_id)
    .bind(plan.category_id)
    .bind(plan.queue_id)
    .bind(answer.via)
    .bind(&description)
    .bind(plan.rank_ms)
    .bind(now_ms)
    .bind(plan.complaint_id)
    .bind(plan.link.origin_id)
    .bind(plan.link.origin_started_ms)
    .bind(held_for)
    .bind(held_until)
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    event(
        tx,
        id,
        now_ms,
        None,
        "created",
        serde_json::json!({ "channel": answer.via, "category_id": plan.category_id,
                            "reopen_of": plan.complaint_id }),
    )
    .await?;
    event(
        tx,
        id,
        now_ms,
        None,
        "reopen_of",
        serde_json::json!({ "ticket_id": plan.complaint_id, "origin_id": plan.link.origin_id }),
    )
    .await?;
    match plan.hold {
        Some((agent_id, until_ms)) => {
            event(
                tx,
                id,
                now_ms,
                None,
                "held_for_agent",
                serde_json::json!({ "agent_id": agent_id, "until_ms": until_ms }),
            )
            .await?
        }
        None => {
            event(
                tx,
                id,
                now_ms,
                None,
                "queued",
                serde_json::json!({ "queue_id": plan.queue_id }),
            )
            .await?
        }
    }
    event(
        tx,
        plan.complaint_id,
        now_ms,
        None,
        "reopened",
        serde_json::json!({ "by_ticket_id": id }),
    )
    .await?;
    effect.reopen = Some((id, plan.queue_id, plan.rank_ms, held_for));
    Ok(effect)
}
