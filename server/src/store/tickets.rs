//! Tickets, their assignments and their history (one event row per change).

use super::group_commit::{Tx, Work};
use super::{Db, StoreError, StoreResult, is_unique_violation};
use crate::quality::reopen::ReopenLink;
use callcenter_proto::TicketStatus;
use callcenter_proto::http::{Customer, Outcome, Ticket, TicketEvent};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::sync::Arc;

pub(super) const TICKET_COLUMNS: &str = "id, kind, status, customer_id, category_id, queue_id, channel, \
     description, rank_ms, assigned_agent_id, created_at_ms, resolved_at_ms, outcome_code, \
     outcome_resolved, outcome_note";

use crate::quality::DAY_MS;

/// How many rows share a queue's count of answers per day (by agent id), so
/// that concurrent accepts in one queue rarely wait on one row.
const ANSWER_SHARDS: i64 = 16;

/// The statement counting an answer for the queue's board, from a row `t`
/// of the answered ticket and `q` of its queue (`from` names them), with the
/// placeholders of the answer's time, day and shard.
fn count_answer(from: &str, at: &str, day: &str, shard: &str) -> String {
    format!(
        "INSERT INTO queue_answers (queue_id, day, shard, answered, within_level) \
         SELECT t.queue_id, {day}, {shard}, 1, \
             CASE WHEN {at} - t.created_at_ms <= q.service_level_seconds * 1000 THEN 1 ELSE 0 END \
         {from} \
         ON CONFLICT (queue_id, day, shard) DO UPDATE SET \
             answered = queue_answers.answered + 1, \
             within_level = queue_answers.within_level + excluded.within_level"
    )
}

/// Where a complaint waits in its queue, from the customer's card and the
/// complaint it reopens (read in the filing transaction).
pub type Rank = Arc<dyn Fn(&Customer, Option<&ReopenLink>) -> i64 + Send + Sync>;

/// A new inbound ticket, validated by the caller.
pub struct NewComplaint {
    pub customer_id: i64,
    pub category_id: i64,
    pub queue_id: i64,
    pub channel: String,
    pub description: String,
    pub actor_user_id: i64,
    /// How far back an earlier complaint of the customer in this category
    /// is reopened by this one (see `quality::reopen`); 0: never.
    pub reopen_window_ms: i64,
    /// The ticket's rank, from the customer and the complaint it reopens.
    pub rank: Rank,
}

/// A complaint filed, or found filed under its idempotency key.
pub enum Filed {
    /// Filed now.
    New {
        ticket: Ticket,
        /// The customer's card, read in the filing transaction.
        customer: Customer,
        /// Where it waits in its queue.
        rank_ms: i64,
    },
    /// The key was seen before with the same body: the ticket it filed.
    Before(Ticket),
}

/// An idempotency key and the hash of the request body it came with.
pub struct IdempotencyKey<'a> {
    pub scope: &'a str,
    pub key: &'a str,
    pub request_hash: &'a str,
}

/// A live ticket and its place in line, for rebuilding the routing state.
#[derive(Clone, Copy, Debug)]
pub struct LiveTicket {
    pub id: i64,
    pub queue_id: i64,
    /// `inbound` or `outbound`.
    pub kind: &'static str,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub rank_ms: i64,
    pub status: TicketStatus,
    pub assigned_agent_id: Option<i64>,
}

pub(super) fn ticket_from_row(row: &AnyRow) -> StoreResult<Ticket> {
    let status: String = row.try_get("status")?;
    let outcome_code: Option<String> = row.try_get("outcome_code")?;
    let outcome = match outcome_code {
        Some(code) => Some(Outcome {
            code,
            resolved: row
                .try_get::<Option<i64>, _>("outcome_resolved")?
                .unwrap_or(0)
                != 0,
            note: row
                .try_get::<Option<String>, _>("outcome_note")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(Ticket {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        status: TicketStatus::parse(&status).ok_or(StoreError::NotFound("ticket status"))?,
        customer_id: row.try_get("customer_id")?,
        category_id: row.try_get("category_id")?,
        queue_id: row.try_get("queue_id")?,
        channel: row.try_get("channel")?,
        description: row.try_get("description")?,
        assigned_agent_id: row.try_get("assigned_agent_id")?,
        created_at_ms: row.try_get("created_at_ms")?,
        resolved_at_ms: row.try_get("resolved_at_ms")?,
        outcome,
    })
}

pub(super) async fn record(
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

/// An offer, recorded in the ticket's history when it ends (accepted,
/// declined, expired, rescinded): offers are live state (routing), so the
/// record is written once per offer, in the transaction that settles it,
/// and a ticket's status stays `queued` while it is offered.
#[derive(Clone, Copy, Debug)]
pub struct OfferStep {
    pub agent_id: i64,
    /// The queue the ticket was offered from.
    pub queue_id: i64,
    pub version: u64,
    pub deadline_ms: i64,
    /// When it was offered.
    pub at_ms: i64,
}

impl OfferStep {
    pub fn data(&self) -> serde_json::Value {
        serde_json::json!({
            "agent_id": self.agent_id,
            "version": self.version,
            "deadline_ms": self.deadline_ms,
        })
    }
}

/// A resolved ticket and what the desk needs next.
#[derive(Debug)]
pub struct Resolved {
    pub ticket: Ticket,
    /// Whether the ticket was ever escalated (an open escalation is closed).
    pub ever_escalated: bool,
    /// Reopened complaints held for this agent (offered to them first).
    pub held_reopens: Vec<i64>,
}

/// Record two steps with one statement.
pub(super) async fn record_two(
    tx: &mut Transaction<'static, Any>,
    ticket_id: i64,
    first: (i64, Option<i64>, &str, serde_json::Value),
    second: (i64, Option<i64>, &str, serde_json::Value),
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
         VALUES ($1, $2, $3, $4, $5), ($1, $6, $7, $8, $9)",
    )
    .bind(ticket_id)
    .bind(first.0)
    .bind(first.1)
    .bind(first.2)
    .bind(first.3.to_string())
    .bind(second.0)
    .bind(second.1)
    .bind(second.2)
    .bind(second.3.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// End the ticket's live assignment, if it has one.
pub(super) async fn end_assignment(
    tx: &mut Transaction<'static, Any>,
    ticket_id: i64,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE assignments SET ended_at_ms = $1 WHERE ticket_id = $2 AND ended_at_ms IS NULL",
    )
    .bind(now_ms)
    .bind(ticket_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn ticket_in(tx: &mut Transaction<'static, Any>, id: i64) -> StoreResult<Ticket> {
    let row = sqlx::query(&format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound("ticket"))?;
    ticket_from_row(&row)
}

/// The accept's update of the ticket ($1 agent, $2 time, $3 ticket), returning
/// it; nothing when it is no longer waiting.
fn assign_row() -> String {
    format!(
        "UPDATE tickets SET status = 'assigned', assigned_agent_id = $1, updated_at_ms = $2 \
         WHERE id = $3 AND status IN ('queued', 'offered') RETURNING {TICKET_COLUMNS}"
    )
}

/// The resolve's update of the ticket ($1 time, $2–$4 outcome, $5 ticket,
/// $6 agent), returning it; nothing unless the agent holds it.
fn resolve_row() -> String {
    format!(
        "UPDATE tickets SET status = 'resolved', resolved_at_ms = $1, updated_at_ms = $1, \
             outcome_code = $2, outcome_resolved = $3, outcome_note = $4 \
         WHERE id = $5 AND assigned_agent_id = $6 AND status = 'assigned' \
         RETURNING {TICKET_COLUMNS}"
    )
}

/// The complaint's row, its idempotency key (a key seen before is a unique
/// violation) and its first two steps: one statement on PostgreSQL, where
/// each is a round trip; step by step on SQLite.
async fn insert_complaint(
    tx: &mut Transaction<'static, Any>,
    dialect: super::Dialect,
    c: &NewComplaint,
    idem: &IdempotencyKey<'_>,
    reopen: Option<&ReopenLink>,
    rank_ms: i64,
    now_ms: i64,
) -> StoreResult<Ticket> {
    let postgres = dialect == super::Dialect::Postgres;
    let row_sql = format!(
        "INSERT INTO tickets (kind, status, customer_id, category_id, queue_id, channel, \
             description, rank_ms, created_at_ms, updated_at_ms, reopen_of, origin_id, \
             origin_started_ms) \
         VALUES ('inbound', 'queued', $1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10) \
         RETURNING {TICKET_COLUMNS}"
    );
    let sql = if postgres {
        format!(
            "WITH t AS ({row_sql}), \
             k AS ( \
                 INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at_ms) \
                 SELECT $11, $12, $13, id, $7 FROM t), \
             e AS ( \
                 INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
                 SELECT id, $7, $14, 'created', $15 FROM t \
                 UNION ALL SELECT id, $7, CAST(NULL AS BIGINT), 'queued', $16 FROM t) \
             SELECT * FROM t"
        )
    } else {
        row_sql
    };
    let (reopen_of, origin_id, origin_started_ms) = crate::quality::reopen::chain_columns(reopen);
    let mut query = sqlx::query(&sql)
        .bind(c.customer_id)
        .bind(c.category_id)
        .bind(c.queue_id)
        .bind(&c.channel)
        .bind(&c.description)
        .bind(rank_ms)
        .bind(now_ms)
        .bind(reopen_of)
        .bind(origin_id)
        .bind(origin_started_ms);
    if postgres {
        query = query
            .bind(idem.scope)
            .bind(idem.key)
            .bind(idem.request_hash)
            .bind(c.actor_user_id)
            .bind(created_data(c).to_string())
            .bind(queued_data(c).to_string());
    }
    let ticket = ticket_from_row(&query.fetch_one(&mut **tx).await?)?;
    if !postgres {
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(idem.scope)
        .bind(idem.key)
        .bind(idem.request_hash)
        .bind(ticket.id)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
        record_two(
            tx,
            ticket.id,
            (now_ms, Some(c.actor_user_id), "created", created_data(c)),
            (now_ms, None, "queued", queued_data(c)),
        )
        .await?;
    }
    Ok(ticket)
}

fn resolved_data(outcome: &Outcome) -> serde_json::Value {
    serde_json::json!({ "code": outcome.code, "resolved": outcome.resolved, "note": outcome.note })
}

fn created_data(c: &NewComplaint) -> serde_json::Value {
    serde_json::json!({ "channel": c.channel, "category_id": c.category_id })
}

fn queued_data(c: &NewComplaint) -> serde_json::Value {
    serde_json::json!({ "queue_id": c.queue_id })
}

impl Db {
    /// File a complaint once per idempotency key: [`Filed::New`] now, or
    /// [`Filed::Before`] when the key was seen before with the same body.
    /// The same key with another body is a conflict.
    pub async fn file_complaint(
        &self,
        c: NewComplaint,
        idem: &IdempotencyKey<'_>,
        now_ms: i64,
    ) -> StoreResult<Filed> {
        let filing = FileComplaint {
            dialect: self.dialect,
            complaint: c,
            scope: idem.scope.to_owned(),
            key: idem.key.to_owned(),
            request_hash: idem.request_hash.to_owned(),
            now_ms,
        };
        match self.commit_with_others(filing).await {
            Ok((ticket, customer, rank_ms)) => Ok(Filed::New {
                ticket,
                customer,
                rank_ms,
            }),
            // The key was seen before (a retry, or a concurrent one that won
            // the race): answer with the first.
            Err(StoreError::Database(e)) if is_unique_violation(&e) => Ok(Filed::Before(
                self.replay(idem)
                    .await?
                    .ok_or(StoreError::NotFound("ticket"))?,
            )),
            Err(e) => Err(e),
        }
    }

    async fn replay(&self, idem: &IdempotencyKey<'_>) -> StoreResult<Option<Ticket>> {
        let row = sqlx::query(
            "SELECT request_hash, resource_id FROM idempotency_keys WHERE scope = $1 AND key = $2",
        )
        .bind(idem.scope)
        .bind(idem.key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: String = row.try_get("request_hash")?;
        if hash != idem.request_hash {
            return Err(StoreError::IdempotencyMismatch);
        }
        Ok(Some(self.ticket(row.try_get("resource_id")?).await?))
    }

    pub async fn ticket(&self, id: i64) -> StoreResult<Ticket> {
        let row = sqlx::query(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("ticket"))?;
        ticket_from_row(&row)
    }

    pub async fn ticket_events(&self, ticket_id: i64) -> StoreResult<Vec<TicketEvent>> {
        sqlx::query(
            "SELECT id, ticket_id, at_ms, actor_user_id, kind, data FROM ticket_events \
             WHERE ticket_id = $1 ORDER BY at_ms, id",
        )
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let data: String = r.try_get("data")?;
            Ok(TicketEvent {
                id: r.try_get("id")?,
                ticket_id: r.try_get("ticket_id")?,
                at_ms: r.try_get("at_ms")?,
                actor_user_id: r.try_get("actor_user_id")?,
                kind: r.try_get("kind")?,
                data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
    }

    /// An offer ended without an accept (declined, expired, rescinded): it
    /// goes into the ticket's history, and a ticket still waiting waits in
    /// its queue again. An offer settled after its ticket moved on (an
    /// expiry recorded after another agent accepted, a cancel) is recorded
    /// all the same: the history shows every offer made.
    pub async fn mark_requeued(
        &self,
        ticket_id: i64,
        offer: &OfferStep,
        actor: Option<i64>,
        kind: &str,
        data: serde_json::Value,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = crate::store::begin(&self.pool).await?;
        // Only a ticket still waiting (not taken by another agent, not
        // cancelled meanwhile) changes.
        sqlx::query(
            "UPDATE tickets SET status = 'queued', updated_at_ms = $1 \
             WHERE id = $2 AND status IN ('queued', 'offered')",
        )
        .bind(now_ms)
        .bind(ticket_id)
        .execute(&mut *tx)
        .await?;
        record_two(
            &mut tx,
            ticket_id,
            (offer.at_ms, None, "offered", offer.data()),
            (now_ms, actor, kind, data),
        )
        .await?;
        if actor.is_some() {
            // A decline answers the offer: it ends a run of missed ones.
            sqlx::query(
                "UPDATE agents SET missed_in_row = 0 WHERE user_id = $1 AND missed_in_row <> 0",
            )
            .bind(offer.agent_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The agent accepted the offer: the ticket is theirs. The unique index on
    /// live assignments refuses a second holder whatever the live layer says.
    /// The answer is counted for the queue's board (`queue_answers`).
    pub async fn assign(
        &self,
        ticket_id: i64,
        offer: &OfferStep,
        now_ms: i64,
    ) -> StoreResult<Ticket> {
        let accept = Accept {
            dialect: self.dialect,
            ticket_id,
            offer: *offer,
            now_ms,
        };
        match self.commit_with_others(accept).await {
            Ok(answer) => answer,
            Err(StoreError::Database(e)) if is_unique_violation(&e) => Err(StoreError::Conflict(
                "the ticket is already assigned".into(),
            )),
            Err(e) => Err(e),
        }
    }

    /// End an assigned ticket with an outcome. Only its holder may.
    pub async fn resolve(
        &self,
        ticket_id: i64,
        agent_id: i64,
        outcome: &Outcome,
        now_ms: i64,
    ) -> StoreResult<Ticket> {
        Ok(self
            .resolve_reading_next(ticket_id, agent_id, outcome, now_ms)
            .await?
            .ticket)
    }

    /// Resolve, and read in the same transaction what the desk does next
    /// (so that those reads cost no transaction of their own).
    pub async fn resolve_reading_next(
        &self,
        ticket_id: i64,
        agent_id: i64,
        outcome: &Outcome,
        now_ms: i64,
    ) -> StoreResult<Resolved> {
        // The settings of the quality record, from the directory cache.
        let settings = crate::quality::settings(self).await?;
        self.commit_with_others(Resolve {
            dialect: self.dialect,
            ticket_id,
            agent_id,
            outcome: outcome.clone(),
            settings,
            now_ms,
        })
        .await?
    }

    /// A note on a ticket the agent holds (or held last): one statement.
    /// False: the agent does not hold it (or it does not exist).
    pub async fn add_note(
        &self,
        ticket_id: i64,
        agent_id: i64,
        text: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
             SELECT id, $2, $3, 'note', $4 FROM tickets WHERE id = $1 AND assigned_agent_id = $3",
        )
        .bind(ticket_id)
        .bind(now_ms)
        .bind(agent_id)
        .bind(serde_json::json!({ "text": text }).to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Tickets the agent holds now.
    pub async fn assigned_tickets(&self, agent_id: i64) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query(
            "SELECT id FROM tickets WHERE assigned_agent_id = $1 AND status = 'assigned' ORDER BY id",
        )
        .bind(agent_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?)
    }

    /// Tickets the agent holds now, with their kind (`inbound`/`outbound`).
    pub async fn assigned_tickets_with_kind(
        &self,
        agent_id: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        sqlx::query("SELECT id, kind FROM tickets WHERE assigned_agent_id = $1 AND status = 'assigned' ORDER BY id")
            .bind(agent_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("kind")?)))
            .collect()
    }

    /// How many tickets the agent has taken since a moment (for "fewest today").
    pub async fn taken_since(&self, agent_id: i64, since_ms: i64) -> StoreResult<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM assignments WHERE agent_id = $1 AND started_at_ms >= $2",
        )
        .bind(agent_id)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }

    /// Every ticket not yet ended, for rebuilding the live routing state
    /// (but reopens held for their agent, which `quality::reopen` routes).
    pub async fn live_tickets(&self) -> StoreResult<Vec<LiveTicket>> {
        sqlx::query(
            "SELECT id, queue_id, kind, created_at_ms, updated_at_ms, rank_ms, status, assigned_agent_id FROM tickets \
             WHERE status IN ('queued', 'offered', 'assigned') AND held_for_agent_id IS NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            let kind: String = r.try_get("kind")?;
            Ok(LiveTicket {
                id: r.try_get("id")?,
                queue_id: r.try_get("queue_id")?,
                kind: if kind == "outbound" { "outbound" } else { "inbound" },
                created_at_ms: r.try_get("created_at_ms")?,
                updated_at_ms: r.try_get("updated_at_ms")?,
                rank_ms: r.try_get("rank_ms")?,
                status: TicketStatus::parse(&status).ok_or(StoreError::NotFound("status"))?,
                assigned_agent_id: r.try_get("assigned_agent_id")?,
            })
        })
        .collect()
    }
}

/// The filing: the customer's card and the complaint it may reopen are read,
/// the ticket ranked and written with its key and first steps.
struct FileComplaint {
    dialect: super::Dialect,
    complaint: NewComplaint,
    scope: String,
    key: String,
    request_hash: String,
    now_ms: i64,
}

impl Work for FileComplaint {
    type Output = (Ticket, Customer, i64);

    async fn run(&self, tx: &mut Tx) -> StoreResult<Self::Output> {
        let c = &self.complaint;
        // No read of the key first: the insert refuses a key seen before
        // (unique index), and only then is the first answer read.
        let (customer, reopen) = crate::quality::reopen::card_and_reopen_candidate_on(
            tx,
            c.customer_id,
            c.category_id,
            c.reopen_window_ms,
            self.now_ms,
        )
        .await?;
        let rank_ms = (c.rank)(&customer, reopen.as_ref());
        let idem = IdempotencyKey {
            scope: &self.scope,
            key: &self.key,
            request_hash: &self.request_hash,
        };
        let ticket = insert_complaint(
            tx,
            self.dialect,
            c,
            &idem,
            reopen.as_ref(),
            rank_ms,
            self.now_ms,
        )
        .await?;
        if let Some(link) = reopen.as_ref() {
            crate::quality::reopen::link_in(tx, ticket.id, link, self.now_ms).await?;
        }
        Ok((ticket, customer, rank_ms))
    }

    /// On PostgreSQL the filings of a batch read their cards with one
    /// statement and are written with one more, their reopen links (if
    /// any) with a third (a key seen before fails them all: each then runs
    /// alone and the retry gets its first answer).
    async fn run_together(works: &[&Self], tx: &mut Tx) -> StoreResult<Vec<Self::Output>> {
        match works.first() {
            Some(first) if first.dialect == super::Dialect::Postgres && works.len() > 1 => {
                file_together(tx, works).await
            }
            _ => super::group_commit::one_after_another(works, tx).await,
        }
    }
}

async fn file_together(
    tx: &mut Tx,
    filings: &[&FileComplaint],
) -> StoreResult<Vec<(Ticket, Customer, i64)>> {
    let asked = filings
        .iter()
        .map(|f| {
            let c = &f.complaint;
            (c.customer_id, c.category_id, c.reopen_window_ms, f.now_ms)
        })
        .collect::<Vec<_>>();
    let found = crate::quality::reopen::cards_and_reopen_candidates_on(tx, &asked).await?;
    let ranks = filings
        .iter()
        .zip(&found)
        .map(|(f, (customer, reopen))| (f.complaint.rank)(customer, reopen.as_ref()))
        .collect::<Vec<_>>();
    let values = values_list(
        filings.len(),
        &[
            "BIGINT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT",
            "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "BIGINT", "TEXT", "TEXT",
        ],
    );
    // Each row gets its ticket id first, so that its key and history are
    // written with the id of its own ticket (the CTE with `nextval` runs
    // once).
    let sql = format!(
        "WITH v AS (SELECT nextval('tickets_id_seq') AS v_id, x.* FROM (VALUES {values}) AS x \
             (v_ord, v_customer, v_category, v_queue, v_channel, v_description, v_rank, v_now, \
              v_reopen_of, v_origin_id, v_origin_started, v_scope, v_key, v_hash, v_actor, \
              v_created, v_queued)), \
         t AS ( \
             INSERT INTO tickets (id, kind, status, customer_id, category_id, queue_id, channel, \
                 description, rank_ms, created_at_ms, updated_at_ms, reopen_of, origin_id, \
                 origin_started_ms) \
             SELECT v_id, 'inbound', 'queued', v_customer, v_category, v_queue, v_channel, \
                 v_description, v_rank, v_now, v_now, v_reopen_of, v_origin_id, v_origin_started \
             FROM v ORDER BY v_id \
             RETURNING {TICKET_COLUMNS}), \
         tv AS (SELECT * FROM t JOIN v ON v.v_id = t.id), \
         k AS ( \
             INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at_ms) \
             SELECT v_scope, v_key, v_hash, v_id, v_now FROM tv), \
         e AS ( \
             INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
             SELECT ticket_id, at_ms, actor, kind, data FROM ( \
                 SELECT v_id AS ticket_id, 0 AS step, v_now AS at_ms, v_actor AS actor, \
                     'created' AS kind, v_created AS data FROM tv \
                 UNION ALL SELECT v_id, 1, v_now, CAST(NULL AS BIGINT), 'queued', v_queued FROM tv) s \
             ORDER BY ticket_id, step) \
         SELECT * FROM tv ORDER BY v_ord"
    );
    let mut query = sqlx::query(&sql);
    for (i, (f, rank_ms)) in filings.iter().zip(&ranks).enumerate() {
        let c = &f.complaint;
        let reopen = found[i].1.as_ref();
        let (reopen_of, origin_id, origin_started_ms) =
            crate::quality::reopen::chain_columns(reopen);
        query = query
            .bind(i as i64)
            .bind(c.customer_id)
            .bind(c.category_id)
            .bind(c.queue_id)
            .bind(&c.channel)
            .bind(&c.description)
            .bind(*rank_ms)
            .bind(f.now_ms)
            .bind(reopen_of)
            .bind(origin_id)
            .bind(origin_started_ms)
            .bind(&f.scope)
            .bind(&f.key)
            .bind(&f.request_hash)
            .bind(c.actor_user_id)
            .bind(created_data(c).to_string())
            .bind(queued_data(c).to_string());
    }
    let rows = query.fetch_all(&mut **tx).await?;
    if rows.len() != filings.len() {
        return Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "{} complaints written of {}",
            rows.len(),
            filings.len()
        ))));
    }
    let tickets = rows
        .iter()
        .map(ticket_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    // The reopen links of the batch, one more statement for them all.
    let links = filings
        .iter()
        .zip(&tickets)
        .zip(&found)
        .filter_map(|((f, ticket), (_, reopen))| {
            reopen.as_ref().map(|link| (ticket.id, link, f.now_ms))
        })
        .collect::<Vec<_>>();
    crate::quality::reopen::links_in(tx, &links).await?;
    Ok(tickets
        .into_iter()
        .zip(found.into_iter().zip(ranks))
        .map(|(ticket, ((customer, _), rank_ms))| (ticket, customer, rank_ms))
        .collect())
}

/// The accept: the ticket becomes the agent's.
struct Accept {
    dialect: super::Dialect,
    ticket_id: i64,
    offer: OfferStep,
    now_ms: i64,
}

impl Work for Accept {
    /// A refusal (the ticket no longer waits) writes nothing and does not
    /// fail the transaction it shares.
    type Output = StoreResult<Ticket>;

    /// The queue's count of answers in the agent's shard.
    fn lock_key(&self) -> Option<(i64, i64)> {
        Some((
            self.offer.queue_id,
            self.offer.agent_id.rem_euclid(ANSWER_SHARDS),
        ))
    }

    async fn run(&self, tx: &mut Tx) -> StoreResult<Self::Output> {
        let (ticket_id, offer, now_ms) = (self.ticket_id, &self.offer, self.now_ms);
        match self.dialect {
            // One statement (one round trip): the accept is on every
            // lifecycle's path.
            super::Dialect::Postgres => assign_in_one_statement(tx, ticket_id, offer, now_ms).await,
            super::Dialect::Sqlite => assign_step_by_step(tx, ticket_id, offer, now_ms).await,
        }
    }

    /// On PostgreSQL the accepts of a batch are one statement (unless two
    /// are of one ticket: the first wins, as one after another).
    async fn run_together(works: &[&Self], tx: &mut Tx) -> StoreResult<Vec<Self::Output>> {
        if in_one_statement(
            works.first().map(|w| w.dialect),
            works.iter().map(|w| w.ticket_id),
        ) {
            assign_together(tx, works).await
        } else {
            super::group_commit::one_after_another(works, tx).await
        }
    }

    async fn run_alone(&self, pool: &sqlx::AnyPool) -> StoreResult<Self::Output> {
        match self.dialect {
            // Alone, the one statement is its own transaction.
            super::Dialect::Postgres => {
                let mut conn = pool.acquire().await?;
                assign_in_one_statement(&mut conn, self.ticket_id, &self.offer, self.now_ms).await
            }
            super::Dialect::Sqlite => super::group_commit::in_own_transaction(self, pool).await,
        }
    }
}

async fn assign_in_one_statement(
    conn: &mut sqlx::AnyConnection,
    ticket_id: i64,
    offer: &OfferStep,
    now_ms: i64,
) -> StoreResult<StoreResult<Ticket>> {
    let row = sqlx::query(&format!(
        "WITH t AS ({ticket}), \
         a AS ( \
             INSERT INTO assignments (ticket_id, agent_id, offer_version, started_at_ms) \
             SELECT id, $1, $4, $2 FROM t), \
         e AS ( \
             INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
             SELECT id, $5, CAST(NULL AS BIGINT), 'offered', $6 FROM t \
             UNION ALL SELECT id, $2, $1, 'accepted', $7 FROM t), \
         m AS ( \
             UPDATE agents SET missed_in_row = 0 \
             WHERE user_id = $1 AND missed_in_row <> 0 AND EXISTS (SELECT 1 FROM t)), \
         c AS ({count}) \
         SELECT * FROM t",
        ticket = assign_row(),
        count = count_answer(
            "FROM t JOIN queues q ON q.id = t.queue_id",
            "$2",
            "$8",
            "$9"
        ),
    ))
    .bind(offer.agent_id)
    .bind(now_ms)
    .bind(ticket_id)
    .bind(offer.version as i64)
    .bind(offer.at_ms)
    .bind(offer.data().to_string())
    .bind(serde_json::json!({ "version": offer.version }).to_string())
    .bind(now_ms.div_euclid(DAY_MS))
    .bind(offer.agent_id.rem_euclid(ANSWER_SHARDS))
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(Ok(ticket_from_row(&row)?)),
        None => Ok(Err(no_longer_waiting())),
    }
}

/// Accepts of distinct tickets in one statement: [`assign_in_one_statement`]
/// for each, over a list of values, the answers counted once per queue, day
/// and shard (rows locked in that order).
async fn assign_together(
    tx: &mut Tx,
    accepts: &[&Accept],
) -> StoreResult<Vec<StoreResult<Ticket>>> {
    let values = values_list(
        accepts.len(),
        &[
            "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "TEXT", "BIGINT", "BIGINT",
        ],
    );
    let returned = updated_ticket_columns();
    let sql = format!(
        "WITH v (v_ticket, v_agent, v_version, v_now, v_offered_ms, v_offered, v_accepted, v_day, v_shard) \
             AS (VALUES {values}), \
         t AS ( \
             UPDATE tickets SET status = 'assigned', assigned_agent_id = v.v_agent, updated_at_ms = v.v_now \
             FROM v WHERE tickets.id = v.v_ticket AND tickets.status IN ('queued', 'offered') \
             RETURNING {returned}), \
         tv AS (SELECT * FROM t JOIN v ON v.v_ticket = t.id), \
         a AS ( \
             INSERT INTO assignments (ticket_id, agent_id, offer_version, started_at_ms) \
             SELECT v_ticket, v_agent, v_version, v_now FROM tv), \
         e AS ( \
             INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
             SELECT ticket_id, at_ms, actor, kind, data FROM ( \
                 SELECT v_ticket AS ticket_id, 0 AS step, v_offered_ms AS at_ms, \
                     CAST(NULL AS BIGINT) AS actor, 'offered' AS kind, v_offered AS data FROM tv \
                 UNION ALL SELECT v_ticket, 1, v_now, v_agent, 'accepted', v_accepted FROM tv) s \
             ORDER BY ticket_id, step), \
         m AS ( \
             UPDATE agents SET missed_in_row = 0 \
             WHERE user_id IN (SELECT v_agent FROM tv) AND missed_in_row <> 0), \
         c AS ( \
             INSERT INTO queue_answers (queue_id, day, shard, answered, within_level) \
             SELECT tv.queue_id, v_day, v_shard, COUNT(*), \
                 SUM(CASE WHEN v_now - tv.created_at_ms <= q.service_level_seconds * 1000 THEN 1 ELSE 0 END) \
             FROM tv JOIN queues q ON q.id = tv.queue_id \
             GROUP BY tv.queue_id, v_day, v_shard ORDER BY 1, 2, 3 \
             ON CONFLICT (queue_id, day, shard) DO UPDATE SET \
                 answered = queue_answers.answered + excluded.answered, \
                 within_level = queue_answers.within_level + excluded.within_level) \
         SELECT * FROM t"
    );
    let mut query = sqlx::query(&sql);
    for accept in accepts {
        let (offer, now_ms) = (&accept.offer, accept.now_ms);
        query = query
            .bind(accept.ticket_id)
            .bind(offer.agent_id)
            .bind(offer.version as i64)
            .bind(now_ms)
            .bind(offer.at_ms)
            .bind(offer.data().to_string())
            .bind(serde_json::json!({ "version": offer.version }).to_string())
            .bind(now_ms.div_euclid(DAY_MS))
            .bind(offer.agent_id.rem_euclid(ANSWER_SHARDS));
    }
    let mut assigned = std::collections::HashMap::new();
    for row in query.fetch_all(&mut **tx).await? {
        let ticket = ticket_from_row(&row)?;
        assigned.insert(ticket.id, ticket);
    }
    Ok(accepts
        .iter()
        .map(|a| assigned.remove(&a.ticket_id).ok_or_else(no_longer_waiting))
        .collect())
}

async fn assign_step_by_step(
    tx: &mut Tx,
    ticket_id: i64,
    offer: &OfferStep,
    now_ms: i64,
) -> StoreResult<StoreResult<Ticket>> {
    let (agent_id, version) = (offer.agent_id, offer.version);
    let row = sqlx::query(&assign_row())
        .bind(agent_id)
        .bind(now_ms)
        .bind(ticket_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Ok(Err(no_longer_waiting()));
    };
    let ticket = ticket_from_row(&row)?;
    sqlx::query(
        "INSERT INTO assignments (ticket_id, agent_id, offer_version, started_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(ticket_id)
    .bind(agent_id)
    .bind(version as i64)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    record_two(
        tx,
        ticket_id,
        (offer.at_ms, None, "offered", offer.data()),
        (
            now_ms,
            Some(agent_id),
            "accepted",
            serde_json::json!({ "version": version }),
        ),
    )
    .await?;
    // An answered offer ends a run of missed ones (`desk::rules`).
    sqlx::query("UPDATE agents SET missed_in_row = 0 WHERE user_id = $1 AND missed_in_row <> 0")
        .bind(agent_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(&count_answer(
        "FROM tickets t JOIN queues q ON q.id = t.queue_id WHERE t.id = $1",
        "$2",
        "$3",
        "$4",
    ))
    .bind(ticket_id)
    .bind(now_ms)
    .bind(now_ms.div_euclid(DAY_MS))
    .bind(agent_id.rem_euclid(ANSWER_SHARDS))
    .execute(&mut **tx)
    .await?;
    Ok(Ok(ticket))
}

fn no_longer_waiting() -> StoreError {
    StoreError::Conflict("the ticket is no longer waiting".into())
}

/// The resolve, with the complaint's quality record and the reads of what
/// the desk does next.
struct Resolve {
    dialect: super::Dialect,
    ticket_id: i64,
    agent_id: i64,
    outcome: Outcome,
    settings: callcenter_proto::outcomes::QualitySettings,
    now_ms: i64,
}

impl Work for Resolve {
    /// A refusal (the agent does not hold the ticket, or it has ended)
    /// writes nothing and does not fail the transaction it shares.
    type Output = StoreResult<Resolved>;

    async fn run(&self, tx: &mut Tx) -> StoreResult<Self::Output> {
        let (ticket_id, agent_id, outcome, now_ms) =
            (self.ticket_id, self.agent_id, &self.outcome, self.now_ms);
        // Only the holder resolves: the update says whether they hold it.
        let postgres = self.dialect == super::Dialect::Postgres;
        let sql = if postgres {
            // The ticket, its assignment and its history in one statement.
            format!(
                "WITH t AS ({ticket}), \
                 a AS ( \
                     UPDATE assignments SET ended_at_ms = $1 \
                     WHERE ticket_id = $5 AND ended_at_ms IS NULL AND EXISTS (SELECT 1 FROM t)), \
                 e AS ( \
                     INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
                     SELECT id, $1, $6, 'resolved', $7 FROM t) \
                 SELECT * FROM t",
                ticket = resolve_row(),
            )
        } else {
            resolve_row()
        };
        let mut query = sqlx::query(&sql)
            .bind(now_ms)
            .bind(&outcome.code)
            .bind(outcome.resolved as i64)
            .bind(&outcome.note)
            .bind(ticket_id)
            .bind(agent_id);
        if postgres {
            query = query.bind(resolved_data(outcome).to_string());
        }
        let updated = query.fetch_optional(&mut **tx).await?;
        let Some(row) = updated else {
            return Ok(Err(resolve_refused(tx, ticket_id, agent_id).await?));
        };
        let ticket = ticket_from_row(&row)?;
        if !postgres {
            end_assignment(tx, ticket_id, now_ms).await?;
            record(
                tx,
                ticket_id,
                now_ms,
                Some(agent_id),
                "resolved",
                resolved_data(outcome),
            )
            .await?;
        }
        // The complaint's quality record, in the same transaction (issue 7),
        // then what follows: reopens held for the agent (0), whether the
        // ticket was ever escalated (1). On PostgreSQL one statement does
        // both (a `WITH` insert runs whatever its query reads). The held
        // ones are found by the agent alone (`tickets_held_for`) and their
        // status checked here: with the status in the query a plan made
        // without statistics also read the `tickets_live` entries of every
        // queued ticket, so every resolve slowed as a line grew.
        const FOLLOWING: &str = "SELECT 0 AS which, id, status FROM tickets \
                 WHERE held_for_agent_id = $2 AND held_until_ms > $3 \
             UNION ALL \
             SELECT 1 AS which, ticket_id AS id, '' AS status FROM \
                 (SELECT ticket_id FROM ticket_events WHERE ticket_id = $1 AND kind = 'escalated' LIMIT 1) e \
             ORDER BY 1, 2";
        let following = if postgres {
            use crate::quality::outcomes::{OutcomeInputs, bind_outcome, record_outcome_sql};
            let record = record_outcome_sql(&OutcomeInputs::PLACEHOLDERS);
            let sql = format!("WITH q AS ({record}) {FOLLOWING}");
            bind_outcome(
                sqlx::query(&sql),
                ticket_id,
                agent_id,
                now_ms,
                &self.settings,
            )
            .fetch_all(&mut **tx)
            .await?
        } else {
            crate::quality::outcomes::record_outcome(
                tx,
                ticket_id,
                agent_id,
                now_ms,
                &self.settings,
            )
            .await?;
            sqlx::query(FOLLOWING)
                .bind(ticket_id)
                .bind(agent_id)
                .bind(now_ms)
                .fetch_all(&mut **tx)
                .await?
        };
        Ok(Ok(what_follows(ticket, &following)?))
    }

    /// On PostgreSQL the resolves of a batch (of distinct tickets) are two
    /// statements, as one is: the tickets, assignments and histories, then
    /// the quality records with the reads of what follows.
    async fn run_together(works: &[&Self], tx: &mut Tx) -> StoreResult<Vec<Self::Output>> {
        if in_one_statement(
            works.first().map(|w| w.dialect),
            works.iter().map(|w| w.ticket_id),
        ) {
            resolve_together(tx, works).await
        } else {
            super::group_commit::one_after_another(works, tx).await
        }
    }
}

/// Why a resolve changed nothing: the agent holds the ticket but it is not
/// open, or they do not hold it.
async fn resolve_refused(tx: &mut Tx, ticket_id: i64, agent_id: i64) -> StoreResult<StoreError> {
    let current = ticket_in(tx, ticket_id).await?;
    Ok(if current.assigned_agent_id == Some(agent_id) {
        StoreError::Conflict(format!("the ticket is {}", current.status.as_str()))
    } else {
        StoreError::NotFound("assigned ticket")
    })
}

/// The resolved ticket with what follows, from the rows of the reads of
/// reopens held for the agent (`which` 0) and of an escalation (1).
fn what_follows<'r>(
    ticket: Ticket,
    rows: impl IntoIterator<Item = &'r AnyRow>,
) -> StoreResult<Resolved> {
    let mut held_reopens = Vec::new();
    let mut ever_escalated = false;
    for row in rows {
        match row.try_get::<i64, _>("which")? {
            0 => {
                if row.try_get::<String, _>("status")? == "queued" {
                    held_reopens.push(row.try_get("id")?);
                }
            }
            _ => ever_escalated = true,
        }
    }
    Ok(Resolved {
        ticket,
        ever_escalated,
        held_reopens,
    })
}

/// Whether a group of works on `tickets` runs as one statement: on
/// PostgreSQL, two or more, no ticket twice (works of a kind on one ticket
/// run one after another, each seeing what the one before it did).
fn in_one_statement(
    dialect: Option<super::Dialect>,
    tickets: impl ExactSizeIterator<Item = i64>,
) -> bool {
    let n = tickets.len();
    dialect == Some(super::Dialect::Postgres)
        && n > 1
        && tickets.collect::<std::collections::HashSet<_>>().len() == n
}

/// [`TICKET_COLUMNS`] of `tickets` in an `UPDATE … FROM` (whose other
/// table's columns would otherwise be in scope too).
fn updated_ticket_columns() -> String {
    TICKET_COLUMNS
        .split(", ")
        .map(|c| format!("tickets.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(VALUES …)` rows of `types`, numbered from `$1`, for `rows` rows.
pub(crate) fn values_list(rows: usize, types: &[&str]) -> String {
    (0..rows)
        .map(|i| {
            let row = types
                .iter()
                .enumerate()
                .map(|(k, ty)| format!("CAST(${} AS {ty})", i * types.len() + k + 1))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({row})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves of distinct tickets: what each would do alone, in two
/// statements for them all (and a read for each one refused).
async fn resolve_together(
    tx: &mut Tx,
    resolves: &[&Resolve],
) -> StoreResult<Vec<StoreResult<Resolved>>> {
    let values = values_list(
        resolves.len(),
        &[
            "BIGINT", "BIGINT", "BIGINT", "TEXT", "BIGINT", "TEXT", "TEXT",
        ],
    );
    let returned = updated_ticket_columns();
    let sql = format!(
        "WITH v (v_ticket, v_agent, v_now, v_code, v_resolved, v_note, v_data) AS (VALUES {values}), \
         t AS ( \
             UPDATE tickets SET status = 'resolved', resolved_at_ms = v.v_now, \
                 updated_at_ms = v.v_now, outcome_code = v.v_code, \
                 outcome_resolved = v.v_resolved, outcome_note = v.v_note \
             FROM v WHERE tickets.id = v.v_ticket AND tickets.assigned_agent_id = v.v_agent \
                 AND tickets.status = 'assigned' \
             RETURNING {returned}), \
         tv AS (SELECT * FROM t JOIN v ON v.v_ticket = t.id), \
         a AS ( \
             UPDATE assignments SET ended_at_ms = tv.v_now FROM tv \
             WHERE assignments.ticket_id = tv.v_ticket AND assignments.ended_at_ms IS NULL), \
         e AS ( \
             INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
             SELECT v_ticket, v_now, v_agent, 'resolved', v_data FROM tv ORDER BY v_ticket) \
         SELECT * FROM t"
    );
    let mut query = sqlx::query(&sql);
    for r in resolves {
        query = query
            .bind(r.ticket_id)
            .bind(r.agent_id)
            .bind(r.now_ms)
            .bind(&r.outcome.code)
            .bind(r.outcome.resolved as i64)
            .bind(&r.outcome.note)
            .bind(resolved_data(&r.outcome).to_string());
    }
    let mut ended = std::collections::HashMap::new();
    for row in query.fetch_all(&mut **tx).await? {
        let ticket = ticket_from_row(&row)?;
        ended.insert(ticket.id, ticket);
    }
    let done: Vec<&&Resolve> = resolves
        .iter()
        .filter(|r| ended.contains_key(&r.ticket_id))
        .collect();
    // The quality records of those resolved, and what follows each. The
    // reads of what follows are one small lookup per resolve (`LATERAL`,
    // kept from being flattened into a join: planned as a join over the
    // list, without statistics, they read every ticket and every history
    // row instead of the indexes `tickets_held_for` and `ticket_events_ticket`).
    let mut following: std::collections::HashMap<usize, Vec<AnyRow>> = Default::default();
    if !done.is_empty() {
        use crate::quality::outcomes::{OutcomeInputs, outcome_inputs, record_outcome_sql};
        let values = values_list(done.len(), &["BIGINT"; 8]);
        let record = record_outcome_sql(&OutcomeInputs {
            from: "w JOIN tickets t ON t.id = w.w_ticket WHERE",
            agent: "w.w_agent",
            now: "w.w_now",
            day: "w.w_day",
            window: "w.w_window",
            until_30: "w.w_until_30",
            until_90: "w.w_until_90",
        });
        let sql = format!(
            "WITH w (w_ord, w_ticket, w_agent, w_now, w_day, w_window, w_until_30, w_until_90) \
                 AS (VALUES {values}), \
             q AS ({record}) \
             SELECT 0 AS which, w.w_ord AS ord, h.id, h.status FROM w CROSS JOIN LATERAL \
                 (SELECT id, status FROM tickets \
                  WHERE held_for_agent_id = w.w_agent AND held_until_ms > w.w_now OFFSET 0) h \
             UNION ALL \
             SELECT 1 AS which, w.w_ord AS ord, w.w_ticket AS id, '' AS status FROM w CROSS JOIN LATERAL \
                 (SELECT 1 AS one FROM ticket_events e \
                  WHERE e.ticket_id = w.w_ticket AND e.kind = 'escalated' LIMIT 1) x \
             ORDER BY 1, 2, 3"
        );
        let mut query = sqlx::query(&sql);
        for (ord, r) in done.iter().enumerate() {
            let [day, window, until_30, until_90] = outcome_inputs(r.now_ms, &r.settings);
            query = query
                .bind(ord as i64)
                .bind(r.ticket_id)
                .bind(r.agent_id)
                .bind(r.now_ms)
                .bind(day)
                .bind(window)
                .bind(until_30)
                .bind(until_90);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let ord: i64 = row.try_get("ord")?;
            following.entry(ord as usize).or_default().push(row);
        }
    }
    let mut outputs = Vec::with_capacity(resolves.len());
    let mut ord = 0;
    for r in resolves {
        match ended.remove(&r.ticket_id) {
            Some(ticket) => {
                let rows = following.remove(&ord).unwrap_or_default();
                outputs.push(Ok(what_follows(ticket, &rows)?));
                ord += 1;
            }
            None => outputs.push(Err(resolve_refused(tx, r.ticket_id, r.agent_id).await?)),
        }
    }
    Ok(outputs)
}
