//! A callback promised on a complaint: the agent holding an inbound ticket
//! schedules a call to the customer at a time agreed with them. It becomes
//! an outbound call of the complaint (`source_kind` `complaint_callback`,
//! `complaint_ticket_id` set, so the complaint itself never holds it back),
//! planned through the outbound scheduler like any other call: judged by
//! the contact policy now (a time the policy would refuse or move is
//! refused here, with the first allowed time, so the agent can agree
//! another one with the customer while still on the line) and again when
//! due, then offered as an outbound ticket in the complaint's queue.
//!
//! What happens to the complaint is the agent's choice, made in the same
//! request: usually the contact ends now (`end_with`, e.g. `not_resolved`:
//! the problem is not solved yet, the callback is new work and frees the
//! agent for the next customer); or the ticket stays with the agent, who
//! resolves it later. Every callback is a `callback_scheduled` step of the
//! complaint's history.

use super::{Desk, validate_outcome};
use crate::error::{ApiError, ApiResult};
use crate::http::Check;
use crate::outbound::policy::{DAY_MS, Phase, Verdict, zone};
use crate::outbound::store::{CallRow, NewCall};
use crate::store::StoreError;
use callcenter_proto::TicketStatus;
use callcenter_proto::desk::{CallbackRequest, CallbackScheduled};
use callcenter_proto::outbound::{CallPurpose, CallStatus};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// How far ahead a callback on a complaint may be promised.
pub const MAX_CALLBACK_AHEAD_MS: i64 = 30 * DAY_MS;
/// How soon, at the earliest (the agent is still on the line before that).
pub const MIN_CALLBACK_LEAD_MS: i64 = 60_000;
pub const MAX_CALLBACK_NOTE: usize = 2000;
/// The `source_kind` of these calls in `outbound_calls`.
pub const SOURCE_KIND: &str = "complaint_callback";

/// A moment in the customer's zone, as the agent tells the customer.
fn local_time(ms: i64, tz: chrono_tz::Tz) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&tz)
                .format("%a %Y-%m-%d %H:%M %Z")
                .to_string()
        })
        .unwrap_or_else(|| ms.to_string())
}

impl Desk {
    /// Schedule a callback on a complaint the agent holds (idempotent by
    /// ticket and time: asking again returns the same call).
    pub async fn schedule_callback(
        &self,
        agent_id: i64,
        ticket_id: i64,
        req: &CallbackRequest,
    ) -> ApiResult<CallbackScheduled> {
        let now = self.clock.now_ms();
        let mut check = Check::new();
        check.that(
            req.note.chars().count() <= MAX_CALLBACK_NOTE,
            "note",
            "must be at most 2000 characters",
        );
        check.that(
            req.at_ms >= now + MIN_CALLBACK_LEAD_MS,
            "at_ms",
            "must be in the future (at least a minute from now)",
        );
        check.that(
            req.at_ms <= now + MAX_CALLBACK_AHEAD_MS,
            "at_ms",
            "must be within the next 30 days",
        );
        check.done()?;
        if let Some(outcome) = &req.end_with {
            validate_outcome(outcome)?;
        }
        let ticket = self.ticket_of(agent_id, ticket_id).await?;
        if ticket.kind != "inbound" {
            return Err(ApiError::Conflict(
                "an outbound call takes a callback as its outcome (callback_requested)".into(),
            ));
        }
        if ticket.status != TicketStatus::Assigned {
            return Err(ApiError::Conflict(format!(
                "the ticket is {}",
                ticket.status.as_str()
            )));
        }
        if let Some(outcome) = &req.end_with {
            crate::quality::codes::check_active(&self.db, outcome.code.trim()).await?;
        }

        // The contact policy at the time asked for (the same judgement the
        // scheduler makes when it plans the call).
        let policy = self.loaded_policy().await?;
        let probe = CallRow {
            id: 0,
            customer_id: ticket.customer_id,
            chain_id: 0,
            journey_id: None,
            source_kind: SOURCE_KIND.into(),
            source_id: ticket_id,
            purposes: Vec::new(),
            category_id: ticket.category_id,
            restricted_category_id: None,
            complaint_ticket_id: Some(ticket_id),
            attempt: 1,
            status: CallStatus::Scheduled,
            due_at_ms: req.at_ms,
            stopped_by: None,
            stopped_until_ms: None,
            merged_into: None,
            ticket_id: None,
            fired_at_ms: None,
            outcome: None,
            reason_code: None,
        };
        match self
            .judge_call(&policy, &probe, Phase::Scheduled, req.at_ms)
            .await?
        {
            Verdict::Go { .. } => {}
            Verdict::Skip { rule, detail } => {
                return Err(ApiError::field(
                    "at_ms",
                    format!(
                        "the contact policy allows no call to this customer ({rule}: {detail})"
                    ),
                ));
            }
            Verdict::Defer {
                rule,
                until_ms,
                detail,
            } => {
                let customer = self.db.customer(ticket.customer_id).await?;
                let tz = zone(
                    customer.timezone.as_deref(),
                    &policy.policy.default_timezone,
                );
                return Err(ApiError::field(
                    "at_ms",
                    format!(
                        "the contact policy does not allow a call then ({rule}: {detail}); \
                         the first allowed time is {}",
                        local_time(until_ms, tz)
                    ),
                ));
            }
        }

        let dedupe_key = format!("{SOURCE_KIND}:{ticket_id}:{}", req.at_ms);
        let topic: String = ticket.description.chars().take(120).collect();
        let script = if req.note.trim().is_empty() {
            "Call back as promised: ask whether the problem is solved now.".to_string()
        } else {
            req.note.trim().to_string()
        };
        let new = NewCall {
            dedupe_key: dedupe_key.clone(),
            customer_id: ticket.customer_id,
            chain_id: None,
            journey_id: None,
            journey_version: None,
            step_index: None,
            source_kind: SOURCE_KIND,
            source_id: ticket_id,
            purposes: vec![CallPurpose {
                journey_id: None,
                journey_version: None,
                purpose: format!("Callback on complaint #{ticket_id}: {topic}"),
                script,
            }],
            category_id: ticket.category_id,
            restricted_category_id: None,
            complaint_ticket_id: Some(ticket_id),
            attempt: 1,
            due_at_ms: req.at_ms,
        };
        let call_id = match self.plan_call(new).await? {
            Some(id) => id,
            None => sqlx::query("SELECT id FROM outbound_calls WHERE dedupe_key = $1")
                .bind(&dedupe_key)
                .fetch_one(self.db.pool())
                .await?
                .try_get("id")?,
        };
        let call = self.db.call(call_id).await?;
        if call.status == CallStatus::Skipped {
            return Err(ApiError::Conflict(format!(
                "the contact policy stopped this callback ({})",
                call.stopped_by.as_deref().unwrap_or("policy")
            )));
        }
        self.record_callback(ticket_id, agent_id, call_id, call.due_at_ms, &req.note)
            .await?;

        let ticket = match &req.end_with {
            Some(outcome) => self.resolve(agent_id, ticket_id, outcome).await?,
            None => self.db.ticket(ticket_id).await?,
        };
        Ok(CallbackScheduled {
            call_id,
            due_at_ms: call.due_at_ms,
            ticket,
        })
    }

    /// The complaint's `callback_scheduled` step, once per call.
    async fn record_callback(
        &self,
        ticket_id: i64,
        agent_id: i64,
        call_id: i64,
        due_at_ms: i64,
        note: &str,
    ) -> ApiResult<()> {
        let mut tx = crate::store::begin(self.db.pool())
            .await
            .map_err(StoreError::from)?;
        let earlier = sqlx::query(
            "SELECT data FROM ticket_events WHERE ticket_id = $1 AND kind = 'callback_scheduled'",
        )
        .bind(ticket_id)
        .fetch_all(&mut *tx)
        .await?;
        for row in &earlier {
            let data: String = row.try_get("data")?;
            let data: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
            if data.get("call_id").and_then(|v| v.as_i64()) == Some(call_id) {
                return Ok(());
            }
        }
        sqlx::query(
            "INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) \
             VALUES ($1, $2, $3, 'callback_scheduled', $4)",
        )
        .bind(ticket_id)
        .bind(self.clock.now_ms())
        .bind(agent_id)
        .bind(
            serde_json::json!({ "call_id": call_id, "at_ms": due_at_ms, "note": note.trim() })
                .to_string(),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }
}
