//! The scheduler: planned calls fall due, are judged again by the contact
//! policy and, when allowed, become outbound tickets in their queue.
//!
//! The database is the record (`outbound_calls`, status `scheduled`); the
//! [`DueIndex`] is a fast, rebuildable index of due times: a Redis sorted set
//! shared by every node, or its in-process twin for the embedded default.
//! Every node runs the scheduler on its background tick. A due call fires
//! exactly once across nodes: a node first claims it from the index
//! atomically (a Lua script pops due members, so two nodes never get the
//! same one), then the database's conditional update `scheduled → fired`
//! decides, whatever the index says (after a rebuild it may hand a call out
//! again). A call claimed by a node that died before deciding is put back
//! by the sweep of overdue calls (`Desk::reconcile`, every 30 s, and the
//! admin's `POST /api/admin/outbound/run`), and the whole index is rebuilt
//! from the record when a node starts.

use super::policy::{self, CallingHours, Phase, Verdict};
use super::store::{CallRow, Decision, NewCall, decide, purposes_json};
use crate::desk::Desk;
use crate::redis_conn::RedisConn;
use crate::routing::{TicketKind, WaitingTicket};
use async_trait::async_trait;
use callcenter_proto::http::Ticket;
use callcenter_proto::outbound::{CallPurpose, ContactPolicy, OutboundBrief, SchedulerRun};
use redis::Script;
use sqlx::Row;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Due calls claimed per pass.
const CLAIM_BATCH: usize = 100;

/// Due times of scheduled calls, by call id.
#[async_trait]
pub trait DueIndex: Send + Sync + 'static {
    /// Index (or move) a call at its due time.
    async fn add(&self, call_id: i64, due_ms: i64) -> anyhow::Result<()>;
    async fn remove(&self, call_id: i64) -> anyhow::Result<()>;
    /// Atomically take up to `limit` calls due by `now_ms` out of the index:
    /// each is handed to exactly one caller.
    async fn claim_due(&self, now_ms: i64, limit: usize) -> anyhow::Result<Vec<i64>>;
}

/// (due ms, call id) in due order, and each call's due time.
type DueTimes = (BTreeSet<(i64, i64)>, HashMap<i64, i64>);

/// The in-process twin (one node).
#[derive(Default)]
pub struct MemoryDueIndex {
    inner: Mutex<DueTimes>,
}

#[async_trait]
impl DueIndex for MemoryDueIndex {
    async fn add(&self, call_id: i64, due_ms: i64) -> anyhow::Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (set, by_id) = &mut *g;
        if let Some(old) = by_id.insert(call_id, due_ms) {
            set.remove(&(old, call_id));
        }
        set.insert((due_ms, call_id));
        Ok(())
    }

    async fn remove(&self, call_id: i64) -> anyhow::Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (set, by_id) = &mut *g;
        if let Some(old) = by_id.remove(&call_id) {
            set.remove(&(old, call_id));
        }
        Ok(())
    }

    async fn claim_due(&self, now_ms: i64, limit: usize) -> anyhow::Result<Vec<i64>> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (set, by_id) = &mut *g;
        let due: Vec<(i64, i64)> = set
            .iter()
            .take_while(|(due, _)| *due <= now_ms)
            .take(limit)
            .copied()
            .collect();
        for entry in &due {
            set.remove(entry);
            by_id.remove(&entry.1);
        }
        Ok(due.into_iter().map(|(_, id)| id).collect())
    }
}

/// Pops due members of the sorted set in one atomic step.
const CLAIM_LUA: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('ZREM', KEYS[1], id) end
return ids
";

/// A Redis sorted set `<prefix>:outbound:due` (call id → due ms), shared by
/// every node. One key, so it works on a Redis Cluster too.
pub struct RedisDueIndex {
    conn: RedisConn,
    key: String,
    claim: Script,
}

impl RedisDueIndex {
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        RedisDueIndex {
            conn,
            key: format!("{prefix}:outbound:due"),
            claim: Script::new(CLAIM_LUA),
        }
    }
}

#[async_trait]
impl DueIndex for RedisDueIndex {
    async fn add(&self, call_id: i64, due_ms: i64) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("ZADD")
            .arg(&self.key)
            .arg(due_ms)
            .arg(call_id)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn remove(&self, call_id: i64) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("ZREM")
            .arg(&self.key)
            .arg(call_id)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn claim_due(&self, now_ms: i64, limit: usize) -> anyhow::Result<Vec<i64>> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = self
            .claim
            .key(&self.key)
            .arg(now_ms)
            .arg(limit)
            .invoke_async(&mut conn)
            .await?;
        Ok(ids.iter().filter_map(|s| s.parse().ok()).collect())
    }
}

/// The due index of a node: Redis when configured, else in-process.
pub async fn connect(redis_url: Option<&str>, prefix: &str) -> anyhow::Result<Arc<dyn DueIndex>> {
    Ok(match redis_url {
        Some(url) => Arc::new(RedisDueIndex::new(
            crate::redis_conn::connect(url).await?,
            prefix,
        )),
        None => Arc::new(MemoryDueIndex::default()),
    })
}

/// The policy with its calling hours parsed (validated when stored).
pub(crate) struct LoadedPolicy {
    pub policy: ContactPolicy,
    pub hours: CallingHours,
}

impl Desk {
    pub(crate) async fn loaded_policy(&self) -> anyhow::Result<LoadedPolicy> {
        let policy = self.db.contact_policy().await?;
        let hours = CallingHours::of(&policy)
            .or_else(|| CallingHours::of(&ContactPolicy::default()))
            .ok_or_else(|| anyhow::anyhow!("the default contact policy is invalid"))?;
        Ok(LoadedPolicy { policy, hours })
    }

    /// The contact policy's verdict on a call at `at_ms`.
    pub(crate) async fn judge_call(
        &self,
        p: &LoadedPolicy,
        call: &CallRow,
        phase: Phase,
        at_ms: i64,
    ) -> anyhow::Result<Verdict> {
        let now = self.clock.now_ms();
        let facts = self.db.customer_facts(call.customer_id).await?;
        let window = i64::from(p.policy.window_days) * policy::DAY_MS;
        let contacts_ms = self
            .db
            .contacts_since(call.customer_id, call.chain_id, at_ms.max(now) - window)
            .await?;
        let customer = policy::Customer {
            consent_calls: facts.profile.consent_calls,
            do_not_call: facts.profile.do_not_call,
            phone_invalid: facts.profile.phone_invalid,
            erased: facts.profile.erased,
            account_status: facts.profile.account_status,
            timezone: policy::zone(facts.timezone.as_deref(), &p.policy.default_timezone),
            open_complaints: facts.open_complaints,
            contacts_ms,
        };
        let facts = policy::Call {
            complaint_ticket_id: call.complaint_ticket_id,
            restricted_category_id: call.restricted_category_id,
        };
        Ok(policy::judge(
            &p.policy, &p.hours, phase, now, at_ms, &customer, &facts,
        ))
    }

    /// Plan a call (idempotent by its dedupe key): recorded, judged once now
    /// (it may be skipped or moved into calling hours), and indexed.
    pub(crate) async fn plan_call(&self, new: NewCall) -> anyhow::Result<Option<i64>> {
        let now = self.clock.now_ms();
        let Some(id) = self.db.insert_call(&new, now).await? else {
            return Ok(None);
        };
        if new.chain_id.is_none() {
            sqlx::query("UPDATE outbound_calls SET chain_id = id WHERE id = $1")
                .bind(id)
                .execute(self.db.pool())
                .await?;
        }
        let call = self.db.call(id).await?;
        let p = self.loaded_policy().await?;
        let phase = Phase::Scheduled;
        let due = match self.judge_call(&p, &call, phase, call.due_at_ms).await? {
            Verdict::Skip { rule, detail } => {
                self.db
                    .settle_call(&call, &Decision::skip(phase, rule, &detail), now)
                    .await?;
                return Ok(Some(id));
            }
            Verdict::Defer {
                rule,
                until_ms,
                detail,
            } if until_ms != call.due_at_ms => {
                self.db
                    .settle_call(&call, &Decision::defer(phase, rule, until_ms, &detail), now)
                    .await?;
                until_ms
            }
            _ => call.due_at_ms,
        };
        self.due_index.add(id, due).await?;
        Ok(Some(id))
    }

    /// One scheduler pass on this node: claim due calls and decide each.
    /// Called from the background tick; errors are logged, and a call that
    /// failed goes back into the index to be tried again.
    pub async fn run_due_calls(&self) -> SchedulerRun {
        let mut run = SchedulerRun {
            fired: 0,
            deferred: 0,
            skipped: 0,
            merged: 0,
        };
        let now = self.clock.now_ms();
        let claimed = match self.due_index.claim_due(now, CLAIM_BATCH).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim due calls");
                return run;
            }
        };
        if claimed.is_empty() {
            return run;
        }
        let p = match self.loaded_policy().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the contact policy");
                for id in claimed {
                    let _ = self.due_index.add(id, now).await;
                }
                return run;
            }
        };
        for id in claimed {
            if let Err(e) = self.decide_due_call(&p, id, &mut run).await {
                tracing::warn!(error = %e, call_id = id, "a due call failed; it will be retried");
                let _ = self.due_index.add(id, now).await;
            }
        }
        run
    }

    /// Put overdue scheduled calls of the record back in the index (a node
    /// died holding them, or Redis lost them). `all`: every scheduled call.
    pub async fn rebuild_due_index(&self, all: bool) -> anyhow::Result<usize> {
        let now = self.clock.now_ms();
        let calls = self
            .db
            .scheduled_calls(if all { None } else { Some(now) })
            .await?;
        for (id, due) in &calls {
            self.due_index.add(*id, *due).await?;
        }
        Ok(calls.len())
    }

    async fn decide_due_call(
        &self,
        p: &LoadedPolicy,
        id: i64,
        run: &mut SchedulerRun,
    ) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        let call = self.db.call(id).await?;
        if call.status != callcenter_proto::outbound::CallStatus::Scheduled {
            return Ok(());
        }
        if call.due_at_ms > now {
            // Moved later since it was indexed: index it at its time.
            self.due_index.add(id, call.due_at_ms).await?;
            return Ok(());
        }
        if call.source_kind == "shared_date" {
            // Next year's greeting, whatever becomes of this one (planning
            // is idempotent, so a node that loses the race does no harm).
            self.plan_next_greeting(&call).await?;
        }
        let phase = Phase::Due;
        match self.judge_call(p, &call, phase, now).await? {
            Verdict::Skip { rule, detail } => {
                if self
                    .db
                    .settle_call(&call, &Decision::skip(phase, rule, &detail), now)
                    .await?
                {
                    run.skipped += 1;
                }
            }
            Verdict::Defer {
                rule,
                until_ms,
                detail,
            } => {
                if self
                    .db
                    .settle_call(&call, &Decision::defer(phase, rule, until_ms, &detail), now)
                    .await?
                {
                    run.deferred += 1;
                    self.due_index.add(id, until_ms).await?;
                }
            }
            Verdict::Go {
                route_category_id,
                rule,
                ..
            } => {
                if let Some(merged) = self.fire(p, &call, route_category_id, rule, now).await? {
                    run.fired += 1;
                    run.merged += merged;
                }
            }
        }
        Ok(())
    }

    /// File the call's outbound ticket, absorbing the customer's other calls
    /// due within the merge window: one transaction, only if the call is
    /// still scheduled. Returns how many calls were merged in, or None when
    /// another node fired it first.
    async fn fire(
        &self,
        p: &LoadedPolicy,
        call: &CallRow,
        route_category_id: Option<i64>,
        route_rule: Option<&'static str>,
        now: i64,
    ) -> anyhow::Result<Option<u32>> {
        let category_id = route_category_id.unwrap_or(call.category_id);
        let category = self.db.category(category_id).await?;
        let queue_id = category.spec.queue_id;
        let rank_ms = now + i64::from(p.policy.outbound_rank_offset_seconds) * 1000
            - i64::from(category.spec.base_priority) * 1000;
        let merge_until = now + i64::from(p.policy.merge_window_hours) * 3_600_000;

        let mut tx = crate::store::begin(self.db.pool()).await?;
        let claimed = sqlx::query(
            "UPDATE outbound_calls SET status = 'fired', fired_at_ms = $1, updated_at_ms = $1, \
                 stopped_by = NULL, stopped_until_ms = NULL \
             WHERE id = $2 AND status = 'scheduled'",
        )
        .bind(now)
        .bind(call.id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(None);
        }
        let mut purposes: Vec<CallPurpose> = call.purposes.clone();
        let others = sqlx::query(
            "SELECT id, purposes FROM outbound_calls WHERE customer_id = $1 AND id <> $2 \
             AND status = 'scheduled' AND due_at_ms <= $3 ORDER BY due_at_ms, id",
        )
        .bind(call.customer_id)
        .bind(call.id)
        .bind(merge_until)
        .fetch_all(&mut *tx)
        .await?;
        let mut merged = Vec::new();
        for other in &others {
            let other_id: i64 = other.try_get("id")?;
            let absorbed = sqlx::query(
                "UPDATE outbound_calls SET status = 'merged', merged_into = $1, updated_at_ms = $2 \
                 WHERE id = $3 AND status = 'scheduled'",
            )
            .bind(call.id)
            .bind(now)
            .bind(other_id)
            .execute(&mut *tx)
            .await?;
            if absorbed.rows_affected() == 1 {
                let theirs: String = other.try_get("purposes")?;
                let theirs: Vec<CallPurpose> = serde_json::from_str(&theirs).unwrap_or_default();
                for purpose in theirs {
                    if !purposes.contains(&purpose) {
                        purposes.push(purpose);
                    }
                }
                let detail = format!("joined call {} for the same customer", call.id);
                let d = Decision {
                    phase: "due",
                    action: "merge",
                    rule: None,
                    until_ms: None,
                    detail: &detail,
                };
                decide(&mut tx, other_id, now, &d).await?;
                merged.push(other_id);
            }
        }
        let description = describe(&purposes, call.attempt);
        let row = sqlx::query(
            "INSERT INTO tickets (kind, status, customer_id, category_id, queue_id, channel, description, \
                 rank_ms, created_at_ms, updated_at_ms) \
             VALUES ('outbound', 'queued', $1, $2, $3, 'phone', $4, $5, $6, $6) RETURNING id",
        )
        .bind(call.customer_id)
        .bind(category_id)
        .bind(queue_id)
        .bind(&description)
        .bind(rank_ms)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let ticket_id: i64 = row.try_get("id")?;
        for (kind, data) in [
            (
                "created",
                serde_json::json!({ "channel": "phone", "category_id": category_id,
                    "outbound_call_id": call.id, "attempt": call.attempt, "merged_calls": merged }),
            ),
            ("queued", serde_json::json!({ "queue_id": queue_id })),
        ] {
            sqlx::query(
                "INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
                 VALUES ($1, $2, NULL, $3, $4)",
            )
            .bind(ticket_id)
            .bind(now)
            .bind(kind)
            .bind(data.to_string())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE outbound_calls SET ticket_id = $1, purposes = $2 WHERE id = $3")
            .bind(ticket_id)
            .bind(purposes_json(&purposes))
            .bind(call.id)
            .execute(&mut *tx)
            .await?;
        let (action, detail) = match route_rule {
            Some(_) => (
                "route",
                format!("ticket {ticket_id} in the restricted accounts' queue"),
            ),
            None => ("fire", format!("ticket {ticket_id}")),
        };
        let d = Decision {
            phase: "due",
            action,
            rule: route_rule,
            until_ms: None,
            detail: &detail,
        };
        decide(&mut tx, call.id, now, &d).await?;
        tx.commit().await?;

        self.metrics.tickets_created.inc();
        for id in &merged {
            self.due_index.remove(*id).await?;
        }
        self.routing
            .enqueue(WaitingTicket {
                ticket_id,
                queue_id,
                kind: TicketKind::Outbound,
                rank_ms,
                entered_ms: now,
            })
            .await?;
        self.dispatch(queue_id).await?;
        Ok(Some(merged.len() as u32))
    }

    /// What the agent is shown with an outbound ticket's offer.
    pub async fn outbound_brief(&self, ticket: &Ticket) -> anyhow::Result<Option<OutboundBrief>> {
        if ticket.kind != "outbound" {
            return Ok(None);
        }
        Ok(self
            .db
            .call_of_ticket(ticket.id)
            .await?
            .map(|c| OutboundBrief {
                call_id: c.id,
                attempt: c.attempt as u32,
                purposes: c.purposes,
            }))
    }
}

/// The ticket's description: every purpose, then the attempt.
fn describe(purposes: &[CallPurpose], attempt: i64) -> String {
    let mut text = purposes
        .iter()
        .map(|p| p.purpose.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if attempt > 1 {
        text.push_str(&format!(" (attempt {attempt})"));
    }
    text.chars().take(4000).collect()
}

impl<'a> Decision<'a> {
    fn skip(phase: Phase, rule: &'a str, detail: &'a str) -> Self {
        Decision {
            phase: phase.as_str(),
            action: "skip",
            rule: Some(rule),
            until_ms: None,
            detail,
        }
    }

    fn defer(phase: Phase, rule: &'a str, until_ms: i64, detail: &'a str) -> Self {
        Decision {
            phase: phase.as_str(),
            action: "defer",
            rule: Some(rule),
            until_ms: Some(until_ms),
            detail,
        }
    }
}
