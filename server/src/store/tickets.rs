//! Tickets, their assignments and their history (one event row per change).

use super::{Db, StoreError, StoreResult, is_unique_violation};
use callcenter_proto::TicketStatus;
use callcenter_proto::http::{Outcome, Ticket, TicketEvent};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

const TICKET_COLUMNS: &str = "id, kind, status, customer_id, category_id, queue_id, channel, \
     description, rank_ms, assigned_agent_id, created_at_ms, resolved_at_ms, outcome_code, \
     outcome_resolved, outcome_note";

/// A new inbound ticket, validated by the caller.
pub struct NewComplaint<'a> {
    pub customer_id: i64,
    pub category_id: i64,
    pub queue_id: i64,
    pub channel: &'a str,
    pub description: &'a str,
    pub rank_ms: i64,
    pub actor_user_id: i64,
    /// The earlier complaint this one reopens (see `quality::reopen`).
    pub reopen: Option<crate::quality::reopen::ReopenLink>,
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

fn ticket_from_row(row: &AnyRow) -> StoreResult<Ticket> {
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

impl Db {
    /// File a complaint once per idempotency key. Returns the ticket and
    /// whether it was created now (false: the key was seen before with the
    /// same body). The same key with another body is a conflict.
    pub async fn file_complaint(
        &self,
        c: &NewComplaint<'_>,
        idem: &IdempotencyKey<'_>,
        now_ms: i64,
    ) -> StoreResult<(Ticket, bool)> {
        if let Some(ticket) = self.replay(idem).await? {
            return Ok((ticket, false));
        }
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO tickets (kind, status, customer_id, category_id, queue_id, channel, description, \
                 rank_ms, created_at_ms, updated_at_ms) \
             VALUES ('inbound', 'queued', $1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(c.customer_id)
        .bind(c.category_id)
        .bind(c.queue_id)
        .bind(c.channel)
        .bind(c.description)
        .bind(c.rank_ms)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(idem.scope)
        .bind(idem.key)
        .bind(idem.request_hash)
        .bind(id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await;
        match claimed {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                // A concurrent retry won the race: drop ours, answer with theirs.
                drop(tx);
                let ticket = self
                    .replay(idem)
                    .await?
                    .ok_or(StoreError::NotFound("ticket"))?;
                return Ok((ticket, false));
            }
            Err(e) => return Err(e.into()),
        }
        record(
            &mut tx,
            id,
            now_ms,
            Some(c.actor_user_id),
            "created",
            serde_json::json!({ "channel": c.channel, "category_id": c.category_id }),
        )
        .await?;
        record(
            &mut tx,
            id,
            now_ms,
            None,
            "queued",
            serde_json::json!({ "queue_id": c.queue_id }),
        )
        .await?;
        crate::quality::reopen::link_in(&mut tx, id, c.reopen.as_ref(), now_ms).await?;
        let ticket = ticket_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok((ticket, true))
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
             WHERE ticket_id = $1 ORDER BY id",
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

    /// Routing offered the ticket to an agent.
    pub async fn mark_offered(
        &self,
        ticket_id: i64,
        agent_id: i64,
        version: u64,
        deadline_ms: i64,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tickets SET status = 'offered', updated_at_ms = $1 \
             WHERE id = $2 AND status IN ('queued', 'offered')",
        )
        .bind(now_ms)
        .bind(ticket_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            record(
                &mut tx,
                ticket_id,
                now_ms,
                None,
                "offered",
                serde_json::json!({ "agent_id": agent_id, "version": version, "deadline_ms": deadline_ms }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// An offer ended without an accept (declined, expired, rescinded): the
    /// ticket waits in its queue again.
    pub async fn mark_requeued(
        &self,
        ticket_id: i64,
        actor: Option<i64>,
        kind: &str,
        data: serde_json::Value,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tickets SET status = 'queued', updated_at_ms = $1 \
             WHERE id = $2 AND status IN ('queued', 'offered')",
        )
        .bind(now_ms)
        .bind(ticket_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            record(&mut tx, ticket_id, now_ms, actor, kind, data).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The agent accepted the offer: the ticket is theirs. The unique index on
    /// live assignments refuses a second holder whatever the live layer says.
    pub async fn assign(
        &self,
        ticket_id: i64,
        agent_id: i64,
        version: u64,
        now_ms: i64,
    ) -> StoreResult<Ticket> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tickets SET status = 'assigned', assigned_agent_id = $1, updated_at_ms = $2 \
             WHERE id = $3 AND status IN ('queued', 'offered')",
        )
        .bind(agent_id)
        .bind(now_ms)
        .bind(ticket_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "the ticket is no longer waiting".into(),
            ));
        }
        sqlx::query(
            "INSERT INTO assignments (ticket_id, agent_id, offer_version, started_at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(ticket_id)
        .bind(agent_id)
        .bind(version as i64)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("the ticket is already assigned".into())
            } else {
                e.into()
            }
        })?;
        record(
            &mut tx,
            ticket_id,
            now_ms,
            Some(agent_id),
            "accepted",
            serde_json::json!({ "version": version }),
        )
        .await?;
        let ticket = ticket_in(&mut tx, ticket_id).await?;
        tx.commit().await?;
        Ok(ticket)
    }

    /// End an assigned ticket with an outcome. Only its holder may.
    pub async fn resolve(
        &self,
        ticket_id: i64,
        agent_id: i64,
        outcome: &Outcome,
        now_ms: i64,
    ) -> StoreResult<Ticket> {
        let mut tx = self.pool.begin().await?;
        let current = ticket_in(&mut tx, ticket_id).await?;
        if current.assigned_agent_id != Some(agent_id) || current.status != TicketStatus::Assigned {
            return Err(if current.assigned_agent_id == Some(agent_id) {
                StoreError::Conflict(format!("the ticket is {}", current.status.as_str()))
            } else {
                StoreError::NotFound("assigned ticket")
            });
        }
        sqlx::query(
            "UPDATE tickets SET status = 'resolved', resolved_at_ms = $1, updated_at_ms = $1, \
                 outcome_code = $2, outcome_resolved = $3, outcome_note = $4 \
             WHERE id = $5",
        )
        .bind(now_ms)
        .bind(&outcome.code)
        .bind(outcome.resolved as i64)
        .bind(&outcome.note)
        .bind(ticket_id)
        .execute(&mut *tx)
        .await?;
        end_assignment(&mut tx, ticket_id, now_ms).await?;
        record(
            &mut tx,
            ticket_id,
            now_ms,
            Some(agent_id),
            "resolved",
            serde_json::json!({ "code": outcome.code, "resolved": outcome.resolved, "note": outcome.note }),
        )
        .await?;
        // The complaint's quality record, in the same transaction (issue 7).
        crate::quality::outcomes::record_outcome(&mut tx, ticket_id, agent_id, now_ms).await?;
        let ticket = ticket_in(&mut tx, ticket_id).await?;
        tx.commit().await?;
        Ok(ticket)
    }

    /// A note on a ticket the agent holds.
    pub async fn add_note(
        &self,
        ticket_id: i64,
        agent_id: i64,
        text: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let current = ticket_in(&mut tx, ticket_id).await?;
        if current.assigned_agent_id != Some(agent_id) {
            return Err(StoreError::NotFound("assigned ticket"));
        }
        record(
            &mut tx,
            ticket_id,
            now_ms,
            Some(agent_id),
            "note",
            serde_json::json!({ "text": text }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
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
