//! Agents (skills, teams, capacity, state), queues and categories.

use super::{Db, StoreError, StoreResult, is_unique_violation};
use callcenter_proto::AgentState;
use callcenter_proto::http::{
    AgentProfile, Category, CategorySpec, OverflowStep, PriorityRule, Queue, QueueSpec, SkillLevel,
    Strategy,
};
use sqlx::Row;
use sqlx::any::AnyRow;

/// An agent's routing view: state, capacity and the queues they can serve.
#[derive(Clone, Debug)]
pub struct AgentRouting {
    pub user_id: i64,
    pub state: AgentState,
    pub capacity_inbound: u32,
    pub capacity_outbound: u32,
    pub state_since_ms: i64,
}

fn conflict(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(format!("{what} already exists"))
        } else {
            e.into()
        }
    }
}

fn parse_state(s: &str) -> AgentState {
    AgentState::parse(s)
}

/// The routing rules of a queue, kept as one JSON document.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct RoutingRules {
    #[serde(default)]
    wrap_up_seconds: u32,
    #[serde(default)]
    strategy: Strategy,
    #[serde(default)]
    priority: PriorityRule,
    #[serde(default)]
    overflow: Vec<OverflowStep>,
    #[serde(default = "three")]
    missed_offers_limit: u32,
    #[serde(default = "two_minutes")]
    reconnect_grace_seconds: u32,
}

fn three() -> u32 {
    3
}

fn two_minutes() -> u32 {
    120
}

impl RoutingRules {
    fn of(spec: &QueueSpec) -> Self {
        RoutingRules {
            wrap_up_seconds: spec.wrap_up_seconds,
            strategy: spec.strategy,
            priority: spec.priority.clone(),
            overflow: spec.overflow.clone(),
            missed_offers_limit: spec.missed_offers_limit,
            reconnect_grace_seconds: spec.reconnect_grace_seconds,
        }
    }
}

const QUEUE_COLUMNS: &str = "id, name, service_level_seconds, offer_timeout_seconds, routing";

fn queue_from_row(row: &AnyRow, required_skills: Vec<SkillLevel>) -> StoreResult<Queue> {
    let routing: String = row.try_get("routing")?;
    let rules: RoutingRules = serde_json::from_str(&routing).unwrap_or_default();
    Ok(Queue {
        id: row.try_get("id")?,
        spec: QueueSpec {
            name: row.try_get("name")?,
            required_skills,
            service_level_seconds: row.try_get::<i64, _>("service_level_seconds")? as u32,
            offer_timeout_seconds: row.try_get::<i64, _>("offer_timeout_seconds")? as u32,
            wrap_up_seconds: rules.wrap_up_seconds,
            strategy: rules.strategy,
            priority: rules.priority,
            overflow: rules.overflow,
            missed_offers_limit: rules.missed_offers_limit,
            reconnect_grace_seconds: rules.reconnect_grace_seconds,
        },
    })
}

fn category_from_row(row: &AnyRow) -> StoreResult<Category> {
    Ok(Category {
        id: row.try_get("id")?,
        spec: CategorySpec {
            name: row.try_get("name")?,
            queue_id: row.try_get("queue_id")?,
            base_priority: row.try_get::<i64, _>("base_priority")? as u32,
        },
    })
}

impl Db {
    /// Create or replace the routing profile of a user (who must have the agent role).
    pub async fn put_agent_profile(&self, user_id: i64, p: &AgentProfile) -> StoreResult<()> {
        let mut tx = crate::store::begin(&self.pool).await?;
        let role: Option<String> = sqlx::query("SELECT role FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("role"))
            .transpose()?;
        match role.as_deref() {
            None => return Err(StoreError::NotFound("user")),
            Some("agent") => {}
            Some(_) => {
                return Err(StoreError::Conflict(
                    "only users with the agent role have an agent profile".into(),
                ));
            }
        }
        sqlx::query(
            "INSERT INTO agents (user_id, capacity_inbound, capacity_outbound) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET capacity_inbound = $2, capacity_outbound = $3",
        )
        .bind(user_id)
        .bind(p.capacity_inbound as i64)
        .bind(p.capacity_outbound as i64)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM agent_skills WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for s in &p.skills {
            sqlx::query("INSERT INTO agent_skills (user_id, skill, level) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(&s.skill)
                .bind(s.level as i64)
                .execute(&mut *tx)
                .await
                .map_err(conflict("that skill"))?;
        }
        sqlx::query("DELETE FROM agent_teams WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for t in &p.teams {
            sqlx::query("INSERT INTO agent_teams (user_id, team) VALUES ($1, $2)")
                .bind(user_id)
                .bind(t)
                .execute(&mut *tx)
                .await
                .map_err(conflict("that team membership"))?;
        }
        tx.commit().await?;
        self.cache.invalidate(super::cache::Scope::Directory);
        Ok(())
    }

    pub async fn agent_profile(&self, user_id: i64) -> StoreResult<AgentProfile> {
        if let Some(profile) = self.cache.profile(user_id) {
            return Ok(profile);
        }
        let generation = self.cache.generation();
        let profile = self.agent_profile_uncached(user_id).await?;
        self.cache.put_profile(generation, user_id, &profile);
        Ok(profile)
    }

    async fn agent_profile_uncached(&self, user_id: i64) -> StoreResult<AgentProfile> {
        let row = sqlx::query(
            "SELECT capacity_inbound, capacity_outbound FROM agents WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("agent"))?;
        let skills =
            sqlx::query("SELECT skill, level FROM agent_skills WHERE user_id = $1 ORDER BY skill")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    Ok(SkillLevel {
                        skill: r.try_get("skill")?,
                        level: r.try_get::<i64, _>("level")? as u8,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
        let teams = sqlx::query("SELECT team FROM agent_teams WHERE user_id = $1 ORDER BY team")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("team"))
            .collect::<Result<Vec<String>, _>>()?;
        Ok(AgentProfile {
            skills,
            teams,
            capacity_inbound: row.try_get::<i64, _>("capacity_inbound")? as u32,
            capacity_outbound: row.try_get::<i64, _>("capacity_outbound")? as u32,
        })
    }

    pub async fn agent_ids(&self) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query("SELECT user_id FROM agents ORDER BY user_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("user_id"))
            .collect::<Result<_, _>>()?)
    }

    pub async fn agent_routing(&self, user_id: i64) -> StoreResult<AgentRouting> {
        let row = sqlx::query(
            "SELECT user_id, state, capacity_inbound, capacity_outbound, state_since_ms FROM agents WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("agent"))?;
        Ok(AgentRouting {
            user_id,
            state: parse_state(&row.try_get::<String, _>("state")?),
            capacity_inbound: row.try_get::<i64, _>("capacity_inbound")? as u32,
            capacity_outbound: row.try_get::<i64, _>("capacity_outbound")? as u32,
            state_since_ms: row.try_get("state_since_ms")?,
        })
    }

    /// Record an agent state change (and its log entry).
    pub async fn set_agent_state(
        &self,
        user_id: i64,
        state: AgentState,
        reason: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = crate::store::begin(&self.pool).await?;
        let done = sqlx::query(
            "UPDATE agents SET state = $1, state_reason = $2, state_since_ms = $3 WHERE user_id = $4",
        )
        .bind(state.as_str())
        .bind(reason)
        .bind(now_ms)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("agent"));
        }
        sqlx::query(
            "INSERT INTO agent_state_log (user_id, state, reason, at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(user_id)
        .bind(state.as_str())
        .bind(reason)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The queues whose every required skill the agent has at the minimum level.
    pub async fn queues_for_agent(&self, user_id: i64) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query(
            "SELECT q.id FROM queues q WHERE NOT EXISTS ( \
                 SELECT 1 FROM queue_skills qs WHERE qs.queue_id = q.id AND NOT EXISTS ( \
                     SELECT 1 FROM agent_skills s WHERE s.user_id = $1 AND s.skill = qs.skill \
                     AND s.level >= qs.min_level)) \
             ORDER BY q.id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?)
    }

    pub async fn create_queue(&self, spec: &QueueSpec) -> StoreResult<Queue> {
        let mut tx = crate::store::begin(&self.pool).await?;
        let row = sqlx::query(
            "INSERT INTO queues (name, service_level_seconds, offer_timeout_seconds, routing) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(&spec.name)
        .bind(spec.service_level_seconds as i64)
        .bind(spec.offer_timeout_seconds as i64)
        .bind(
            serde_json::to_string(&RoutingRules::of(spec))
                .map_err(|e| StoreError::Conflict(e.to_string()))?,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict("a queue with that name"))?;
        let id: i64 = row.try_get("id")?;
        for s in &spec.required_skills {
            sqlx::query(
                "INSERT INTO queue_skills (queue_id, skill, min_level) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(&s.skill)
            .bind(s.level as i64)
            .execute(&mut *tx)
            .await
            .map_err(conflict("that required skill"))?;
        }
        tx.commit().await?;
        self.cache.invalidate(super::cache::Scope::Directory);
        Ok(Queue {
            id,
            spec: spec.clone(),
        })
    }

    /// A queue's definition never changes once created (there is no update),
    /// so a cached one is never stale.
    pub async fn queue(&self, id: i64) -> StoreResult<Queue> {
        if let Some(queue) = self.cache.queue(id) {
            return Ok(queue);
        }
        let row = sqlx::query(&format!("SELECT {QUEUE_COLUMNS} FROM queues WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("queue"))?;
        let skills = self.queue_skills(id).await?;
        let queue = queue_from_row(&row, skills)?;
        self.cache.put_queue(&queue);
        Ok(queue)
    }

    async fn queue_skills(&self, id: i64) -> StoreResult<Vec<SkillLevel>> {
        sqlx::query("SELECT skill, min_level FROM queue_skills WHERE queue_id = $1 ORDER BY skill")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(SkillLevel {
                    skill: r.try_get("skill")?,
                    level: r.try_get::<i64, _>("min_level")? as u8,
                })
            })
            .collect()
    }

    pub async fn queues(&self) -> StoreResult<Vec<Queue>> {
        if let Some(queues) = self.cache.queues() {
            return Ok(queues);
        }
        let generation = self.cache.generation();
        let queues = self.queues_uncached().await?;
        self.cache.put_queues(generation, &queues);
        Ok(queues)
    }

    async fn queues_uncached(&self) -> StoreResult<Vec<Queue>> {
        let rows = sqlx::query(&format!("SELECT {QUEUE_COLUMNS} FROM queues ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        let mut queues = Vec::with_capacity(rows.len());
        for row in &rows {
            let skills = self.queue_skills(row.try_get("id")?).await?;
            queues.push(queue_from_row(row, skills)?);
        }
        Ok(queues)
    }

    pub async fn create_category(&self, spec: &CategorySpec) -> StoreResult<Category> {
        self.queue(spec.queue_id).await?;
        let row = sqlx::query(
            "INSERT INTO categories (name, queue_id, base_priority) VALUES ($1, $2, $3) \
             RETURNING id, name, queue_id, base_priority",
        )
        .bind(&spec.name)
        .bind(spec.queue_id)
        .bind(spec.base_priority as i64)
        .fetch_one(&self.pool)
        .await
        .map_err(conflict("a category with that name"))?;
        category_from_row(&row)
    }

    /// Like queues, a category never changes once created.
    pub async fn category(&self, id: i64) -> StoreResult<Category> {
        if let Some(category) = self.cache.category(id) {
            return Ok(category);
        }
        let row =
            sqlx::query("SELECT id, name, queue_id, base_priority FROM categories WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound("category"))?;
        let category = category_from_row(&row)?;
        self.cache.put_category(&category);
        Ok(category)
    }

    pub async fn categories(&self) -> StoreResult<Vec<Category>> {
        sqlx::query("SELECT id, name, queue_id, base_priority FROM categories ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(category_from_row)
            .collect()
    }
}
