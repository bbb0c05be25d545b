//! The figures supervisor boards show, read straight from the record.

use super::{Db, StoreResult};
use callcenter_proto::AgentState;
use callcenter_proto::ws::{AgentFigure, QueueFigures, TeamFigures};
use sqlx::Row;

impl Db {
    /// A queue's live figures; `today` (a Unix day, UTC) is the day of the
    /// answers and the service level.
    pub async fn queue_figures(
        &self,
        queue_id: i64,
        today: i64,
    ) -> StoreResult<Option<QueueFigures>> {
        // The definition from the directory cache; the figures in one statement.
        let queue = match self.queue(queue_id).await {
            Ok(queue) => queue,
            Err(super::StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        // Answers are counted by the accepts themselves (`queue_answers`,
        // by day and shard), so the cost of a reading does not grow with the day.
        let figures = sqlx::query(
            "SELECT w.waiting, w.oldest, a.answered, a.within FROM \
                 (SELECT COUNT(*) AS waiting, MIN(created_at_ms) AS oldest FROM tickets \
                  WHERE queue_id = $1 AND status IN ('queued', 'offered')) w \
             CROSS JOIN \
                 (SELECT CAST(COALESCE(SUM(answered), 0) AS BIGINT) AS answered, \
                      CAST(COALESCE(SUM(within_level), 0) AS BIGINT) AS within \
                  FROM queue_answers WHERE queue_id = $1 AND day = $2) a",
        )
        .bind(queue_id)
        .bind(today)
        .fetch_one(&self.pool)
        .await?;
        let answered_today: i64 = figures.try_get("answered")?;
        let within: i64 = figures.try_get("within")?;
        Ok(Some(QueueFigures {
            queue_id,
            name: queue.spec.name.clone(),
            waiting: figures.try_get::<i64, _>("waiting")? as u64,
            oldest_waiting_since_ms: figures.try_get("oldest")?,
            service_level_permille: (answered_today > 0)
                .then(|| (within * 1000 / answered_today) as u32),
            answered_today: answered_today as u64,
        }))
    }

    /// A team's agents, their states and how many tickets each holds.
    pub async fn team_figures(&self, team: &str) -> StoreResult<TeamFigures> {
        let agents = sqlx::query(
            "SELECT u.id, u.display_name, a.state, a.capacity_inbound, \
                 (SELECT COUNT(*) FROM tickets t WHERE t.assigned_agent_id = u.id AND t.status = 'assigned') AS tickets \
             FROM agent_teams m JOIN agents a ON a.user_id = m.user_id JOIN users u ON u.id = m.user_id \
             WHERE m.team = $1 ORDER BY u.display_name, u.id",
        )
        .bind(team)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let state: String = r.try_get("state")?;
            let tickets = r.try_get::<i64, _>("tickets")?;
            let state = AgentState::parse(&state);
            Ok(AgentFigure {
                agent_id: r.try_get("id")?,
                name: r.try_get("display_name")?,
                busy: state == AgentState::Available && tickets >= r.try_get::<i64, _>("capacity_inbound")?,
                state,
                tickets: tickets as u64,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
        let pending = sqlx::query(
            "SELECT COUNT(*) AS n FROM compensation_requests r \
             JOIN agent_teams m ON m.user_id = r.requested_by \
             WHERE m.team = $1 AND r.status = 'pending'",
        )
        .bind(team)
        .fetch_one(&self.pool)
        .await?;
        Ok(TeamFigures {
            team: team.to_string(),
            agents,
            pending_approvals: pending.try_get::<i64, _>("n")? as u64,
        })
    }
}
