//! The record behind routing rules: missed offers, disconnections, wrap-up,
//! tickets returned to or moved between queues, cancellations.

use super::{Db, StoreError, StoreResult};
use callcenter_proto::TicketStatus;
use callcenter_proto::http::Ticket;
use sqlx::Row;

/// A ticket held by an agent whose consoles are all gone.
#[derive(Clone, Copy, Debug)]
pub struct HeldByAbsent {
    pub ticket_id: i64,
    pub agent_id: i64,
    pub queue_id: i64,
    pub disconnected_at_ms: i64,
}

impl Db {
    /// One more offer the agent let expire; returns how many in a row.
    pub async fn offer_missed(&self, agent_id: i64) -> StoreResult<u32> {
        let row = sqlx::query(
            "UPDATE agents SET missed_in_row = missed_in_row + 1 WHERE user_id = $1 RETURNING missed_in_row",
        )
        .bind(agent_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>("missed_in_row")? as u32,
            None => 0,
        })
    }

    /// The agent answered an offer: the run of missed ones ends.
    pub async fn offer_answered(&self, agent_id: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE agents SET missed_in_row = 0 WHERE user_id = $1 AND missed_in_row <> 0",
        )
        .bind(agent_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The agent's last console on `node` closed: they are absent from now
    /// unless a console of theirs is connected on another node (a second
    /// tab, or a console that reconnected elsewhere before this node noticed
    /// the drop). Returns whether they are absent.
    pub async fn mark_disconnected(
        &self,
        agent_id: i64,
        node: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut tx = super::begin(&self.pool).await?;
        sqlx::query("DELETE FROM agent_sockets WHERE agent_id = $1 AND node = $2")
            .bind(agent_id)
            .bind(node)
            .execute(&mut *tx)
            .await?;
        let absent = mark_absent_if_nowhere(&mut tx, agent_id, now_ms).await?;
        tx.commit().await?;
        Ok(absent)
    }

    /// A console of the agent connected to `node`: they are not absent.
    pub async fn mark_connected(&self, agent_id: i64, node: &str) -> StoreResult<()> {
        let mut tx = super::begin(&self.pool).await?;
        let found = sqlx::query("UPDATE agents SET disconnected_at_ms = NULL WHERE user_id = $1")
            .bind(agent_id)
            .execute(&mut *tx)
            .await?;
        if found.rows_affected() == 0 {
            return Err(StoreError::NotFound("agent"));
        }
        sqlx::query(
            "INSERT INTO agent_sockets (agent_id, node) VALUES ($1, $2) \
             ON CONFLICT (agent_id, node) DO NOTHING",
        )
        .bind(agent_id)
        .bind(node)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The agents whose consoles the record says `node` serves.
    pub async fn agents_connected_on(&self, node: &str) -> StoreResult<Vec<i64>> {
        Ok(
            sqlx::query("SELECT agent_id FROM agent_sockets WHERE node = $1")
                .bind(node)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get("agent_id"))
                .collect::<Result<_, _>>()?,
        )
    }

    /// The nodes that hold a console connection of some agent.
    pub async fn nodes_with_connected_agents(&self) -> StoreResult<Vec<String>> {
        Ok(
            sqlx::query("SELECT DISTINCT node FROM agent_sockets ORDER BY node")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get("node"))
                .collect::<Result<_, _>>()?,
        )
    }

    /// `node` is gone without saying its consoles closed: its connections
    /// are forgotten, and the agents left with none on any other node are
    /// absent from now. Returns them.
    pub async fn mark_node_lost(&self, node: &str, now_ms: i64) -> StoreResult<Vec<i64>> {
        let mut tx = super::begin(&self.pool).await?;
        let agents: Vec<i64> =
            sqlx::query("DELETE FROM agent_sockets WHERE node = $1 RETURNING agent_id")
                .bind(node)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("agent_id"))
                .collect::<Result<_, _>>()?;
        let mut absent = Vec::new();
        for agent_id in agents {
            if mark_absent_if_nowhere(&mut tx, agent_id, now_ms).await? {
                absent.push(agent_id);
            }
        }
        tx.commit().await?;
        absent.sort_unstable();
        Ok(absent)
    }

    pub async fn set_wrap_up_until(&self, agent_id: i64, until_ms: Option<i64>) -> StoreResult<()> {
        sqlx::query("UPDATE agents SET wrap_up_until_ms = $1 WHERE user_id = $2")
            .bind(until_ms)
            .bind(agent_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Agents whose wrap-up is over.
    pub async fn wrap_ups_over(&self, now_ms: i64) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query(
            "SELECT user_id FROM agents WHERE state = 'wrap_up' AND wrap_up_until_ms <= $1 ORDER BY user_id",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("user_id"))
        .collect::<Result<_, _>>()?)
    }

    /// Tickets held by agents whose consoles all went away. Every tick: the
    /// absent agents are looked up first and their tickets through
    /// `tickets_agent` (SQLite, left to itself, read every ticket ever
    /// filed, on the connection that carries the writes).
    pub async fn held_by_absent_agents(&self) -> StoreResult<Vec<HeldByAbsent>> {
        sqlx::query(
            "SELECT t.id, t.assigned_agent_id, t.queue_id, a.disconnected_at_ms FROM tickets t \
             JOIN agents a ON a.user_id = t.assigned_agent_id \
             WHERE t.status = 'assigned' AND a.disconnected_at_ms IS NOT NULL \
             AND t.assigned_agent_id IN (SELECT user_id FROM agents WHERE disconnected_at_ms IS NOT NULL) \
             ORDER BY t.id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(HeldByAbsent {
                ticket_id: r.try_get("id")?,
                agent_id: r.try_get("assigned_agent_id")?,
                queue_id: r.try_get("queue_id")?,
                disconnected_at_ms: r.try_get("disconnected_at_ms")?,
            })
        })
        .collect()
    }

    /// An assigned ticket goes back to its queue at `rank_ms` (its holder
    /// did not come back). Returns false if it was no longer assigned to them.
    pub async fn return_to_queue(
        &self,
        ticket_id: i64,
        agent_id: i64,
        rank_ms: i64,
        reason: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut tx = crate::store::begin(&self.pool).await?;
        let done = sqlx::query(
            "UPDATE tickets SET status = 'queued', assigned_agent_id = NULL, rank_ms = $1, updated_at_ms = $2 \
             WHERE id = $3 AND status = 'assigned' AND assigned_agent_id = $4",
        )
        .bind(rank_ms)
        .bind(now_ms)
        .bind(ticket_id)
        .bind(agent_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        super::tickets::end_assignment(&mut tx, ticket_id, now_ms).await?;
        super::tickets::record(
            &mut tx,
            ticket_id,
            now_ms,
            None,
            "returned_to_queue",
            serde_json::json!({ "agent_id": agent_id, "reason": reason }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Withdraw a ticket that has not ended. Returns it as it was before.
    pub async fn cancel_ticket(
        &self,
        ticket_id: i64,
        actor: i64,
        reason: &str,
        now_ms: i64,
    ) -> StoreResult<Ticket> {
        let mut tx = crate::store::begin(&self.pool).await?;
        let before = super::tickets::ticket_in(&mut tx, ticket_id).await?;
        if matches!(
            before.status,
            TicketStatus::Resolved | TicketStatus::Cancelled
        ) {
            return Err(StoreError::Conflict(format!(
                "the ticket is already {}",
                before.status.as_str()
            )));
        }
        sqlx::query("UPDATE tickets SET status = 'cancelled', updated_at_ms = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(ticket_id)
            .execute(&mut *tx)
            .await?;
        super::tickets::end_assignment(&mut tx, ticket_id, now_ms).await?;
        super::tickets::record(
            &mut tx,
            ticket_id,
            now_ms,
            Some(actor),
            "cancelled",
            serde_json::json!({ "reason": reason }),
        )
        .await?;
        tx.commit().await?;
        Ok(before)
    }

    /// Waiting tickets of a queue that came in before `created_before_ms`.
    pub async fn waiting_since(
        &self,
        queue_id: i64,
        created_before_ms: i64,
    ) -> StoreResult<Vec<(i64, i64)>> {
        // The `status IN (…)` term is the one of the partial index
        // `tickets_live`: SQLite uses a partial index only for a query that
        // repeats its condition (otherwise it reads every ticket ever filed).
        Ok(sqlx::query(
            "SELECT id, rank_ms FROM tickets WHERE queue_id = $1 AND status = 'queued' \
             AND status IN ('queued', 'offered', 'assigned') AND created_at_ms <= $2 \
             AND held_for_agent_id IS NULL ORDER BY id LIMIT 500",
        )
        .bind(queue_id)
        .bind(created_before_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("rank_ms")?)))
        .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Move a waiting ticket to another queue (overflow).
    pub async fn move_to_queue(
        &self,
        ticket_id: i64,
        from: i64,
        to: i64,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut tx = crate::store::begin(&self.pool).await?;
        let done = sqlx::query(
            "UPDATE tickets SET queue_id = $1, updated_at_ms = $2 WHERE id = $3 AND queue_id = $4 AND status = 'queued'",
        )
        .bind(to)
        .bind(now_ms)
        .bind(ticket_id)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        super::tickets::record(
            &mut tx,
            ticket_id,
            now_ms,
            None,
            "overflowed",
            serde_json::json!({ "from_queue_id": from, "to_queue_id": to }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// The agent is absent from `now_ms` if no node holds a console of theirs
/// (and they were not absent already). Returns whether they became absent.
async fn mark_absent_if_nowhere(
    tx: &mut super::group_commit::Tx,
    agent_id: i64,
    now_ms: i64,
) -> StoreResult<bool> {
    let marked = sqlx::query(
        "UPDATE agents SET disconnected_at_ms = $1 WHERE user_id = $2 AND disconnected_at_ms IS NULL \
         AND NOT EXISTS (SELECT 1 FROM agent_sockets s WHERE s.agent_id = $2)",
    )
    .bind(now_ms)
    .bind(agent_id)
    .execute(&mut **tx)
    .await?;
    Ok(marked.rows_affected() > 0)
}
