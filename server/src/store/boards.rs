//! The figures supervisor boards show, read straight from the record.

use super::{Db, StoreResult};
use callcenter_proto::AgentState;
use callcenter_proto::ws::{AgentFigure, QueueFigures, TeamFigures};
use sqlx::Row;

impl Db {
    /// Live figures of the queues (in the order given, unknown ones left
    /// out); `today` (a Unix day, UTC) is the day of the answers and the
    /// service level. One statement for them all: a board reads it every
    /// tick.
    pub async fn queue_figures(
        &self,
        queue_ids: &[i64],
        today: i64,
    ) -> StoreResult<Vec<QueueFigures>> {
        if queue_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Answers are counted by the accepts themselves (`queue_answers`,
        // by day and shard), so the cost of a reading does not grow with the day.
        let ids = (0..queue_ids.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        // The second `status IN (…)` repeats the condition of the partial
        // index `tickets_live`, which SQLite uses only then (otherwise every
        // reading went through every ticket ever filed).
        let sql = format!(
            "SELECT q.id, COALESCE(w.waiting, 0) AS waiting, w.oldest, \
                 CAST(COALESCE(a.answered, 0) AS BIGINT) AS answered, \
                 CAST(COALESCE(a.within, 0) AS BIGINT) AS within \
             FROM queues q \
             LEFT JOIN (SELECT queue_id, COUNT(*) AS waiting, MIN(created_at_ms) AS oldest \
                 FROM tickets WHERE queue_id IN ({ids}) AND status IN ('queued', 'offered') \
                 AND status IN ('queued', 'offered', 'assigned') \
                 GROUP BY queue_id) w ON w.queue_id = q.id \
             LEFT JOIN (SELECT queue_id, SUM(answered) AS answered, SUM(within_level) AS within \
                 FROM queue_answers WHERE queue_id IN ({ids}) AND day = $1 \
                 GROUP BY queue_id) a ON a.queue_id = q.id \
             WHERE q.id IN ({ids})"
        );
        let mut query = sqlx::query(&sql).bind(today);
        for id in queue_ids {
            query = query.bind(*id);
        }
        let mut figures = std::collections::HashMap::new();
        for row in query.fetch_all(self.reads()).await? {
            figures.insert(row.try_get::<i64, _>("id")?, row);
        }
        let mut out = Vec::with_capacity(queue_ids.len());
        for &queue_id in queue_ids {
            let Some(row) = figures.get(&queue_id) else {
                continue;
            };
            // The name from the directory cache (a queue's definition never
            // changes once created).
            let queue = self.queue(queue_id).await?;
            let answered_today: i64 = row.try_get("answered")?;
            let within: i64 = row.try_get("within")?;
            out.push(QueueFigures {
                queue_id,
                name: queue.spec.name.clone(),
                waiting: row.try_get::<i64, _>("waiting")? as u64,
                oldest_waiting_since_ms: row.try_get("oldest")?,
                service_level_permille: (answered_today > 0)
                    .then(|| (within * 1000 / answered_today) as u32),
                answered_today: answered_today as u64,
            });
        }
        Ok(out)
    }

    /// A team's agents, their states and how many tickets each holds.
    pub async fn team_figures(&self, team: &str) -> StoreResult<TeamFigures> {
        // One statement: the pending approvals ride along on every row (a
        // team with no members has none).
        let rows = sqlx::query(
            "SELECT u.id, u.display_name, a.state, a.capacity_inbound, \
                 (SELECT COUNT(*) FROM tickets t WHERE t.assigned_agent_id = u.id AND t.status = 'assigned') AS tickets, \
                 (SELECT COUNT(*) FROM compensation_requests r \
                     JOIN agent_teams p ON p.user_id = r.requested_by \
                     WHERE p.team = $1 AND r.status = 'pending') AS pending \
             FROM agent_teams m JOIN agents a ON a.user_id = m.user_id JOIN users u ON u.id = m.user_id \
             WHERE m.team = $1 ORDER BY u.display_name, u.id",
        )
        .bind(team)
        .fetch_all(self.reads())
        .await?;
        let pending = match rows.first() {
            Some(row) => row.try_get::<i64, _>("pending")? as u64,
            None => 0,
        };
        let agents = rows
            .iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                let tickets = r.try_get::<i64, _>("tickets")?;
                let state = AgentState::parse(&state);
                Ok(AgentFigure {
                    agent_id: r.try_get("id")?,
                    name: r.try_get("display_name")?,
                    busy: state == AgentState::Available
                        && tickets >= r.try_get::<i64, _>("capacity_inbound")?,
                    state,
                    tickets: tickets as u64,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(TeamFigures {
            team: team.to_string(),
            agents,
            pending_approvals: pending,
        })
    }
}
