//! Escalation: the agent holding a complaint asks a supervisor of their team
//! for help; the supervisor takes the ticket over, hands it back with
//! guidance, or puts it back at the front of its queue for another agent.
//!
//! The record is the ticket's own history: `escalated` (reason, the agent's
//! teams), then at most one decision per escalation (`escalation_taken`,
//! `escalation_handed_back`, `escalation_requeued`, or `escalation_closed`
//! when the ticket ended first); a taken ticket may still be requeued by the
//! supervisor holding it. A take-over hands the ticket's live assignment to
//! the supervisor (it is not a new answer from the queue, which boards count
//! from assignments); the history keeps who held it before. Each step is written in one transaction that first
//! locks the ticket row with a conditional update on its holder, so two
//! supervisors acting at once cannot both succeed, and an escalation cannot
//! be opened twice. Who decides: the supervisors of the escalating agent's
//! teams (every supervisor when those teams have none), and admins.
//! Everyone concerned is told over the live channel (`escalation_changed`).

use super::{Desk, FRONT_OF_QUEUE_RANK, validate_outcome};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::routing::{TicketKind, WaitingTicket};
use crate::store::StoreError;
use callcenter_proto::desk::{Escalation, EscalationAction, EscalationStatus};
use callcenter_proto::http::{Outcome, Ticket};
use callcenter_proto::ws::ServerEvent;
use callcenter_proto::{Role, TicketStatus};
use sqlx::{Any, Row, Transaction};
use std::collections::BTreeMap;

/// Longest reason or decision note.
pub const MAX_ESCALATION_TEXT: usize = 1000;
/// Most escalations one list returns.
const MAX_LISTED: usize = 200;

const ESCALATED: &str = "escalated";
const TAKEN: &str = "escalation_taken";
const HANDED_BACK: &str = "escalation_handed_back";
const REQUEUED: &str = "escalation_requeued";
const CLOSED: &str = "escalation_closed";
const STEP_KINDS: &str = "('escalated', 'escalation_taken', 'escalation_handed_back', \
     'escalation_requeued', 'escalation_closed')";

/// One escalation step of a ticket's history.
struct Step {
    kind: String,
    at_ms: i64,
    actor: Option<i64>,
    data: serde_json::Value,
}

/// The ticket's latest escalation, as its steps tell it.
#[derive(Clone, Debug)]
struct State {
    escalated_by: i64,
    reason: String,
    teams: Vec<String>,
    escalated_at_ms: i64,
    status: EscalationStatus,
    decided_by: Option<i64>,
    decided_at_ms: Option<i64>,
    note: Option<String>,
}

fn text(data: &serde_json::Value, key: &str) -> Option<String> {
    data.get(key).and_then(|v| v.as_str()).map(str::to_string)
}

/// The latest escalation of a ticket from its escalation steps, in order.
fn current(steps: &[Step]) -> Option<State> {
    let start = steps.iter().rposition(|s| s.kind == ESCALATED)?;
    let first = &steps[start];
    let mut state = State {
        escalated_by: first.actor?,
        reason: text(&first.data, "reason").unwrap_or_default(),
        teams: first
            .data
            .get("teams")
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default(),
        escalated_at_ms: first.at_ms,
        status: EscalationStatus::Open,
        decided_by: None,
        decided_at_ms: None,
        note: None,
    };
    for step in &steps[start + 1..] {
        state.status = match step.kind.as_str() {
            TAKEN => EscalationStatus::Taken,
            HANDED_BACK => EscalationStatus::HandedBack,
            REQUEUED => EscalationStatus::Requeued,
            CLOSED => EscalationStatus::Closed,
            _ => continue,
        };
        if step.kind != CLOSED {
            state.decided_by = step.actor;
            state.note = text(&step.data, "note").filter(|n| !n.is_empty());
        }
        state.decided_at_ms = Some(step.at_ms);
    }
    Some(state)
}

fn step_from_row(r: &sqlx::any::AnyRow) -> Result<Step, sqlx::Error> {
    let data: String = r.try_get("data")?;
    Ok(Step {
        kind: r.try_get("kind")?,
        at_ms: r.try_get("at_ms")?,
        actor: r.try_get("actor_user_id")?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
    })
}

/// The ticket's escalation steps, read in a transaction (`&mut *tx`) or
/// straight from the pool.
async fn steps_in<'e, E>(executor: E, ticket_id: i64) -> ApiResult<Vec<Step>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let rows = sqlx::query(&format!(
        "SELECT kind, at_ms, actor_user_id, data FROM ticket_events \
         WHERE ticket_id = $1 AND kind IN {STEP_KINDS} ORDER BY id"
    ))
    .bind(ticket_id)
    .fetch_all(executor)
    .await?;
    Ok(rows.iter().map(step_from_row).collect::<Result<_, _>>()?)
}

async fn record(
    tx: &mut Transaction<'static, Any>,
    ticket_id: i64,
    at_ms: i64,
    actor: Option<i64>,
    kind: &str,
    data: serde_json::Value,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
         VALUES ($1, $2, $3, $4, $5)",
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

/// Lock the ticket row while `holder` holds it (a no-op update that takes
/// the row lock on PostgreSQL and the write lock on SQLite).
async fn lock_held(
    tx: &mut Transaction<'static, Any>,
    ticket_id: i64,
    holder: i64,
    now_ms: i64,
) -> ApiResult<()> {
    let locked = sqlx::query(
        "UPDATE tickets SET updated_at_ms = $1 \
         WHERE id = $2 AND status = 'assigned' AND assigned_agent_id = $3",
    )
    .bind(now_ms)
    .bind(ticket_id)
    .bind(holder)
    .execute(&mut **tx)
    .await?;
    if locked.rows_affected() != 1 {
        return Err(ApiError::Conflict(
            "the ticket is no longer held by the same person".into(),
        ));
    }
    Ok(())
}

fn checked_text(field: &str, value: &str, required: bool) -> ApiResult<String> {
    let value = value.trim();
    let n = value.chars().count();
    if (required && n == 0) || n > MAX_ESCALATION_TEXT {
        let message = if required {
            format!("must be 1 to {MAX_ESCALATION_TEXT} characters")
        } else {
            format!("must be at most {MAX_ESCALATION_TEXT} characters")
        };
        return Err(ApiError::field(field, message));
    }
    Ok(value.to_string())
}

fn status_word(s: &EscalationStatus) -> &'static str {
    match s {
        EscalationStatus::Open => "open",
        EscalationStatus::Taken => "taken over",
        EscalationStatus::HandedBack => "handed back",
        EscalationStatus::Requeued => "back in the queue",
        EscalationStatus::Closed => "closed",
    }
}

impl Desk {
    /// The agent holding an inbound ticket escalates it to a supervisor.
    pub async fn escalate(
        &self,
        agent_id: i64,
        ticket_id: i64,
        reason: &str,
    ) -> ApiResult<Escalation> {
        let reason = checked_text("reason", reason, true)?;
        let ticket = self.ticket_of(agent_id, ticket_id).await?;
        if ticket.status != TicketStatus::Assigned {
            return Err(ApiError::Conflict(format!(
                "the ticket is {}",
                ticket.status.as_str()
            )));
        }
        if ticket.kind != "inbound" {
            return Err(ApiError::Conflict(
                "only complaints (inbound tickets) are escalated; an outbound call ends with its outcome"
                    .into(),
            ));
        }
        let teams = self.db.teams_of(agent_id).await?;
        let now = self.clock.now_ms();
        let mut tx = crate::store::begin(self.db.pool())
            .await
            .map_err(StoreError::from)?;
        lock_held(&mut tx, ticket_id, agent_id, now).await?;
        if current(&steps_in(&mut *tx, ticket_id).await?)
            .is_some_and(|s| s.status == EscalationStatus::Open)
        {
            return Err(ApiError::Conflict(
                "this ticket is already escalated; a supervisor will answer".into(),
            ));
        }
        record(
            &mut tx,
            ticket_id,
            now,
            Some(agent_id),
            ESCALATED,
            serde_json::json!({ "reason": reason, "teams": teams }),
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        let escalation = self.escalation_of(ticket_id).await?;
        self.announce_escalation(&escalation).await;
        Ok(escalation)
    }

    /// Who may decide an agent's escalation: the supervisors of the teams
    /// the agent was in when escalating (every supervisor when none is).
    async fn escalation_deciders(&self, state: &State) -> ApiResult<Vec<i64>> {
        let ids: Vec<i64> = self
            .db
            .supervisors_of_teams(&state.teams)
            .await?
            .into_iter()
            .filter(|id| *id != state.escalated_by)
            .collect();
        if !ids.is_empty() {
            return Ok(ids);
        }
        Ok(self.db.all_supervisors().await?)
    }

    async fn may_decide_escalation(&self, actor: &AuthUser, state: &State) -> ApiResult<bool> {
        Ok(match actor.role {
            Role::Admin => true,
            Role::Supervisor => self
                .escalation_deciders(state)
                .await?
                .contains(&actor.user_id),
            _ => false,
        })
    }

    /// A supervisor (of the agent's team) or an admin acts on an escalation.
    pub async fn decide_escalation(
        &self,
        actor: &AuthUser,
        ticket_id: i64,
        action: EscalationAction,
        note: &str,
    ) -> ApiResult<Escalation> {
        actor.require(&[Role::Supervisor, Role::Admin])?;
        let note = checked_text("note", note, false)?;
        let ticket = self.db.ticket(ticket_id).await?;
        let state = current(&steps_in(self.db.pool(), ticket_id).await?)
            .ok_or(ApiError::NotFound("escalation"))?;
        // Who holds the ticket for this decision to be possible.
        let holder = match (&state.status, &action) {
            (EscalationStatus::Open, _) => {
                if !self.may_decide_escalation(actor, &state).await? {
                    return Err(ApiError::Forbidden(
                        "you do not supervise a team of the agent who escalated",
                    ));
                }
                state.escalated_by
            }
            (EscalationStatus::Taken, EscalationAction::Requeue) => {
                let holder = state.decided_by.unwrap_or_default();
                if holder != actor.user_id && actor.role != Role::Admin {
                    return Err(ApiError::Forbidden(
                        "another supervisor took this ticket over",
                    ));
                }
                holder
            }
            (status, _) => {
                return Err(ApiError::Conflict(format!(
                    "the escalation is {}",
                    status_word(status)
                )));
            }
        };
        if ticket.status != TicketStatus::Assigned || ticket.assigned_agent_id != Some(holder) {
            return Err(ApiError::Conflict(format!(
                "the ticket is {} and no longer held by the same person",
                ticket.status.as_str()
            )));
        }

        let now = self.clock.now_ms();
        let mut tx = crate::store::begin(self.db.pool())
            .await
            .map_err(StoreError::from)?;
        lock_held(&mut tx, ticket_id, holder, now).await?;
        // Decided meanwhile by someone else?
        let again = current(&steps_in(&mut *tx, ticket_id).await?);
        if again.as_ref().map(|s| (&s.status, s.decided_by))
            != Some((&state.status, state.decided_by))
        {
            return Err(ApiError::Conflict(
                "another supervisor acted on this escalation first".into(),
            ));
        }
        match action {
            EscalationAction::Take => {
                // The live assignment changes hands: a take-over is not a
                // new answer from the queue (boards count assignments as
                // answers, from when the agent accepted).
                sqlx::query(
                    "UPDATE assignments SET agent_id = $1 WHERE ticket_id = $2 AND ended_at_ms IS NULL",
                )
                .bind(actor.user_id)
                .bind(ticket_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE tickets SET assigned_agent_id = $1 WHERE id = $2 AND status = 'assigned'",
                )
                .bind(actor.user_id)
                .bind(ticket_id)
                .execute(&mut *tx)
                .await?;
                record(
                    &mut tx,
                    ticket_id,
                    now,
                    Some(actor.user_id),
                    TAKEN,
                    serde_json::json!({ "from_user_id": holder, "note": note }),
                )
                .await?;
            }
            EscalationAction::HandBack => {
                record(
                    &mut tx,
                    ticket_id,
                    now,
                    Some(actor.user_id),
                    HANDED_BACK,
                    serde_json::json!({ "to_user_id": holder, "note": note }),
                )
                .await?;
            }
            EscalationAction::Requeue => {
                sqlx::query(
                    "UPDATE tickets SET status = 'queued', assigned_agent_id = NULL, rank_ms = $1 \
                     WHERE id = $2 AND status = 'assigned'",
                )
                .bind(FRONT_OF_QUEUE_RANK)
                .bind(ticket_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE assignments SET ended_at_ms = $1 WHERE ticket_id = $2 AND ended_at_ms IS NULL",
                )
                .bind(now)
                .bind(ticket_id)
                .execute(&mut *tx)
                .await?;
                record(
                    &mut tx,
                    ticket_id,
                    now,
                    Some(actor.user_id),
                    REQUEUED,
                    serde_json::json!({ "from_user_id": holder, "note": note,
                        "queue_id": ticket.queue_id }),
                )
                .await?;
            }
        }
        tx.commit().await.map_err(StoreError::from)?;

        // Live state after the record: the agent's slot, the queue.
        let from_agent = state.status == EscalationStatus::Open;
        if from_agent && action != EscalationAction::HandBack {
            self.routing.release(holder, ticket_id, now).await?;
        }
        if action == EscalationAction::Requeue {
            self.routing
                .enqueue(WaitingTicket {
                    ticket_id,
                    queue_id: ticket.queue_id,
                    kind: TicketKind::Inbound,
                    rank_ms: FRONT_OF_QUEUE_RANK,
                    entered_ms: now,
                })
                .await?;
            self.dispatch(ticket.queue_id).await?;
        }
        let after = self.db.ticket(ticket_id).await?;
        if from_agent && action != EscalationAction::HandBack {
            self.tell(
                holder,
                ServerEvent::TicketUpdated {
                    ticket: after.clone(),
                },
            )
            .await;
            // The agent has room for the next ticket.
            for q in self.db.queues_for_agent(holder).await? {
                self.dispatch(q).await?;
            }
        }
        let escalation = self.escalation_of(ticket_id).await?;
        self.announce_escalation(&escalation).await;
        Ok(escalation)
    }

    /// The supervisor who took a ticket over ends it with an outcome.
    pub async fn resolve_taken(
        &self,
        actor: &AuthUser,
        ticket_id: i64,
        outcome: &Outcome,
    ) -> ApiResult<Ticket> {
        actor.require(&[Role::Supervisor, Role::Admin])?;
        validate_outcome(outcome)?;
        let ticket = self.db.ticket(ticket_id).await?;
        let state = current(&steps_in(self.db.pool(), ticket_id).await?);
        let taken_by_actor = state.is_some_and(|s| {
            s.status == EscalationStatus::Taken && s.decided_by == Some(actor.user_id)
        });
        if !taken_by_actor || ticket.assigned_agent_id != Some(actor.user_id) {
            return Err(ApiError::Forbidden("you have not taken this ticket over"));
        }
        crate::quality::codes::check_active(&self.db, outcome.code.trim()).await?;
        let now = self.clock.now_ms();
        let ticket = self
            .db
            .resolve(ticket_id, actor.user_id, outcome, now)
            .await?;
        self.metrics.tickets_resolved.inc();
        self.ticket_resolved(&ticket).await;
        Ok(ticket)
    }

    /// A ticket ended (resolved or cancelled): an escalation still open on
    /// it is closed, and its supervisors are told. Never fails the caller.
    pub async fn escalation_ended(&self, ticket: &Ticket) {
        if ticket.kind != "inbound" {
            return;
        }
        let closed = async {
            // Most tickets never escalate: one indexed read, no transaction.
            let open = current(&steps_in(self.db.pool(), ticket.id).await?)
                .is_some_and(|s| s.status == EscalationStatus::Open);
            if !open {
                return Ok::<bool, ApiError>(false);
            }
            let now = self.clock.now_ms();
            let mut tx = crate::store::begin(self.db.pool())
                .await
                .map_err(StoreError::from)?;
            let open = current(&steps_in(&mut *tx, ticket.id).await?)
                .is_some_and(|s| s.status == EscalationStatus::Open);
            if !open {
                return Ok::<bool, ApiError>(false);
            }
            record(
                &mut tx,
                ticket.id,
                now,
                None,
                CLOSED,
                serde_json::json!({ "why": ticket.status.as_str() }),
            )
            .await?;
            tx.commit().await.map_err(StoreError::from)?;
            Ok(true)
        }
        .await;
        match closed {
            Ok(true) => match self.escalation_of(ticket.id).await {
                Ok(e) => self.announce_escalation(&e).await,
                Err(e) => {
                    tracing::warn!(error = %e, ticket_id = ticket.id, "could not read a closed escalation")
                }
            },
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, ticket_id = ticket.id, "could not close an escalation")
            }
        }
    }

    /// A ticket's latest escalation, as clients see it.
    pub async fn escalation_of(&self, ticket_id: i64) -> ApiResult<Escalation> {
        let ticket = self.db.ticket(ticket_id).await?;
        let state = current(&steps_in(self.db.pool(), ticket_id).await?)
            .ok_or(ApiError::NotFound("escalation"))?;
        self.escalation_view(ticket, state).await
    }

    async fn escalation_view(&self, ticket: Ticket, state: State) -> ApiResult<Escalation> {
        let customer_name = self.db.customer(ticket.customer_id).await?.name;
        let escalated_by_name = self.db.user(state.escalated_by).await?.display_name;
        let decided_by_name = match state.decided_by {
            Some(id) => Some(self.db.user(id).await?.display_name),
            None => None,
        };
        Ok(Escalation {
            ticket,
            customer_name,
            escalated_by: state.escalated_by,
            escalated_by_name,
            reason: state.reason,
            teams: state.teams,
            escalated_at_ms: state.escalated_at_ms,
            status: state.status,
            decided_by: state.decided_by,
            decided_by_name,
            decided_at_ms: state.decided_at_ms,
            note: state.note,
        })
    }

    /// To the agent who escalated, the supervisors who may decide, and the
    /// one who acted.
    async fn announce_escalation(&self, escalation: &Escalation) {
        let state = State {
            escalated_by: escalation.escalated_by,
            reason: String::new(),
            teams: escalation.teams.clone(),
            escalated_at_ms: escalation.escalated_at_ms,
            status: escalation.status,
            decided_by: escalation.decided_by,
            decided_at_ms: escalation.decided_at_ms,
            note: None,
        };
        let mut to = match self.escalation_deciders(&state).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "could not find the supervisors of an escalation");
                Vec::new()
            }
        };
        to.push(escalation.escalated_by);
        to.extend(escalation.decided_by);
        to.sort_unstable();
        to.dedup();
        let event = ServerEvent::EscalationChanged {
            escalation: Box::new(escalation.clone()),
        };
        for user_id in to {
            self.tell(user_id, event.clone()).await;
        }
    }

    /// The escalations a supervisor or admin has to act on: open ones they
    /// may decide, and tickets they took over and still hold. Oldest first.
    pub async fn escalations_for(&self, actor: &AuthUser) -> ApiResult<Vec<Escalation>> {
        actor.require(&[Role::Supervisor, Role::Admin])?;
        // Only held tickets can have a live escalation: the partial index on
        // assigned tickets keeps this small.
        let rows = sqlx::query(&format!(
            "SELECT e.ticket_id, e.kind, e.at_ms, e.actor_user_id, e.data, t.assigned_agent_id \
             FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id \
             WHERE t.status = 'assigned' AND e.kind IN {STEP_KINDS} ORDER BY e.ticket_id, e.id"
        ))
        .fetch_all(self.db.pool())
        .await?;
        let mut by_ticket: BTreeMap<i64, (Option<i64>, Vec<Step>)> = BTreeMap::new();
        for r in &rows {
            let ticket_id: i64 = r.try_get("ticket_id")?;
            let holder: Option<i64> = r.try_get("assigned_agent_id")?;
            by_ticket
                .entry(ticket_id)
                .or_insert_with(|| (holder, Vec::new()))
                .1
                .push(step_from_row(r)?);
        }
        let mut out = Vec::new();
        for (ticket_id, (holder, steps)) in by_ticket {
            let Some(state) = current(&steps) else {
                continue;
            };
            let wanted = match state.status {
                EscalationStatus::Open => {
                    holder == Some(state.escalated_by)
                        && self.may_decide_escalation(actor, &state).await?
                }
                EscalationStatus::Taken => {
                    holder == Some(actor.user_id) && state.decided_by == Some(actor.user_id)
                }
                _ => false,
            };
            if wanted {
                let ticket = self.db.ticket(ticket_id).await?;
                out.push(self.escalation_view(ticket, state).await?);
            }
            if out.len() >= MAX_LISTED {
                break;
            }
        }
        out.sort_by_key(|e| (e.escalated_at_ms, e.ticket.id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: &str, at_ms: i64, actor: i64, data: serde_json::Value) -> Step {
        Step {
            kind: kind.into(),
            at_ms,
            actor: Some(actor),
            data,
        }
    }

    #[test]
    fn the_latest_escalation_and_its_decision_are_read_from_the_history() {
        assert!(current(&[]).is_none());
        let opened = step(
            ESCALATED,
            10,
            7,
            serde_json::json!({ "reason": "angry", "teams": ["care"] }),
        );
        let s = current(std::slice::from_ref(&opened)).unwrap();
        assert_eq!(s.status, EscalationStatus::Open);
        assert_eq!((s.escalated_by, s.reason.as_str()), (7, "angry"));
        assert_eq!(s.teams, vec!["care".to_string()]);

        let back = step(
            HANDED_BACK,
            20,
            3,
            serde_json::json!({ "note": "offer a repair" }),
        );
        let s = current(&[opened, back]).unwrap();
        assert_eq!(s.status, EscalationStatus::HandedBack);
        assert_eq!(s.decided_by, Some(3));
        assert_eq!(s.note.as_deref(), Some("offer a repair"));

        // Escalated again after the hand-back, then taken and requeued.
        let steps = [
            step(ESCALATED, 10, 7, serde_json::json!({ "reason": "a" })),
            step(HANDED_BACK, 20, 3, serde_json::json!({})),
            step(ESCALATED, 30, 7, serde_json::json!({ "reason": "b" })),
            step(TAKEN, 40, 4, serde_json::json!({ "note": "" })),
            step(
                REQUEUED,
                50,
                4,
                serde_json::json!({ "note": "needs billing" }),
            ),
        ];
        let s = current(&steps).unwrap();
        assert_eq!(s.reason, "b");
        assert_eq!(s.status, EscalationStatus::Requeued);
        assert_eq!((s.decided_by, s.decided_at_ms), (Some(4), Some(50)));
        assert_eq!(s.note.as_deref(), Some("needs billing"));
    }

    #[test]
    fn a_closed_escalation_keeps_no_decider() {
        let steps = [
            step(ESCALATED, 10, 7, serde_json::json!({ "reason": "a" })),
            Step {
                kind: CLOSED.into(),
                at_ms: 11,
                actor: None,
                data: serde_json::json!({ "why": "resolved" }),
            },
        ];
        let s = current(&steps).unwrap();
        assert_eq!(s.status, EscalationStatus::Closed);
        assert_eq!(s.decided_by, None);
    }
}
