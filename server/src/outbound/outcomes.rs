//! What came of an outbound call, recorded by the agent who holds its
//! ticket: reached, no answer (retried with backoff, a bounded number of
//! times), wrong number, refused (with a reason code, reported), or a
//! callback at a requested time. Retries and callbacks are new calls of the
//! same chain, planned under the contact policy like any other.

use super::policy::rule;
use super::store::{Decision, NewCall, decide};
use crate::desk::Desk;
use crate::error::{ApiError, ApiResult};
use crate::http::Check;
use callcenter_proto::http::{Outcome, Ticket};
use callcenter_proto::outbound::{CallOutcome, CallResult, CallStatus, OutcomeReport, ReasonCount};
use sqlx::Row;

/// How far ahead a customer may ask to be called back.
pub const MAX_CALLBACK_AHEAD_MS: i64 = 90 * super::policy::DAY_MS;

fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Desk {
    /// End the agent's outbound ticket with what came of the call.
    pub async fn record_call_outcome(
        &self,
        agent_id: i64,
        ticket_id: i64,
        outcome: &CallOutcome,
    ) -> ApiResult<Ticket> {
        let now = self.clock.now_ms();
        let mut check = Check::new();
        check.that(
            outcome.note.chars().count() <= 4000,
            "note",
            "must be at most 4000 characters",
        );
        match outcome.result {
            CallResult::Refused => check.that(
                outcome.reason_code.as_deref().is_some_and(is_code),
                "reason_code",
                "a refusal needs a reason code: 1 to 64 of a-z, 0-9, _",
            ),
            _ => check.that(
                outcome.reason_code.as_deref().is_none_or(is_code),
                "reason_code",
                "1 to 64 of a-z, 0-9, _",
            ),
        }
        match outcome.result {
            CallResult::CallbackRequested => check.that(
                outcome
                    .callback_at_ms
                    .is_some_and(|t| t > now && t <= now + MAX_CALLBACK_AHEAD_MS),
                "callback_at_ms",
                "a callback needs a time in the next 90 days",
            ),
            _ => check.that(
                outcome.callback_at_ms.is_none(),
                "callback_at_ms",
                "only for callback_requested",
            ),
        }
        check.that(
            outcome.confirmation.is_none() || outcome.result == CallResult::Reached,
            "confirmation",
            "only a reached customer confirms",
        );
        check.done()?;
        self.ticket_of(agent_id, ticket_id).await?;
        let call = self
            .db
            .call_of_ticket(ticket_id)
            .await?
            .ok_or(ApiError::Conflict(
                "this ticket is not an outbound call".into(),
            ))?;
        if call.status != CallStatus::Fired {
            return Err(ApiError::Conflict("this call's outcome is recorded".into()));
        }
        // The customer's word on the complaint the call follows (issue 7).
        let confirmed = match &outcome.confirmation {
            Some(c) => Some((self.check_call_confirmation(call.id, c).await?, c)),
            None => None,
        };
        let ticket = self
            .resolve(
                agent_id,
                ticket_id,
                &Outcome {
                    code: format!("call_{}", outcome.result.as_str()),
                    resolved: matches!(
                        outcome.result,
                        CallResult::Reached | CallResult::Refused | CallResult::CallbackRequested
                    ),
                    note: outcome.note.clone(),
                },
            )
            .await?;

        let p = self.loaded_policy().await?;
        let mut tx = crate::store::begin(self.db.pool()).await?;
        let done = sqlx::query(
            "UPDATE outbound_calls SET status = 'done', outcome = $1, reason_code = $2, \
                 updated_at_ms = $3 WHERE id = $4 AND status = 'fired'",
        )
        .bind(outcome.result.as_str())
        .bind(&outcome.reason_code)
        .bind(now)
        .bind(call.id)
        .execute(&mut *tx)
        .await
        .map_err(anyhow::Error::from)?;
        if done.rows_affected() != 1 {
            return Ok(ticket);
        }
        let next: Option<(NewCall, &str)> = match outcome.result {
            CallResult::NoAnswer => {
                let attempts = i64::from(p.policy.max_attempts.max(1));
                if call.attempt < attempts {
                    let backoff = &p.policy.retry_backoff_minutes;
                    let idx = (call.attempt as usize - 1).min(backoff.len().saturating_sub(1));
                    let wait_ms = i64::from(backoff.get(idx).copied().unwrap_or(60)) * 60_000;
                    Some((
                        NewCall {
                            dedupe_key: format!("retry:{}:{}", call.chain_id, call.attempt + 1),
                            attempt: call.attempt + 1,
                            due_at_ms: now + wait_ms,
                            ..follow_up(&call, "retry")
                        },
                        "retry",
                    ))
                } else {
                    let detail = format!("no answer after {} attempts", call.attempt);
                    let d = Decision {
                        phase: "outcome",
                        action: "stop",
                        rule: Some(rule::ATTEMPTS_EXHAUSTED),
                        until_ms: None,
                        detail: &detail,
                    };
                    decide(&mut tx, call.id, now, &d).await?;
                    None
                }
            }
            CallResult::CallbackRequested => Some((
                NewCall {
                    dedupe_key: format!("callback:{}", call.id),
                    attempt: 1,
                    due_at_ms: outcome.callback_at_ms.unwrap_or(now),
                    ..follow_up(&call, "callback")
                },
                "callback",
            )),
            CallResult::WrongNumber => {
                sqlx::query(
                    "INSERT INTO contact_profiles (customer_id, phone_invalid, updated_at_ms) \
                     VALUES ($1, 1, $2) \
                     ON CONFLICT (customer_id) DO UPDATE SET phone_invalid = 1, updated_at_ms = $2",
                )
                .bind(call.customer_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(anyhow::Error::from)?;
                None
            }
            CallResult::Reached | CallResult::Refused => None,
        };
        tx.commit().await.map_err(anyhow::Error::from)?;
        if let Some((complaint_id, c)) = confirmed {
            self.confirm_by_call(complaint_id, c, &outcome.note).await;
        }
        if let Some((new, action)) = next {
            let due = new.due_at_ms;
            if let Some(next_id) = self.plan_call(new).await? {
                let mut tx = crate::store::begin(self.db.pool()).await?;
                let detail = format!("call {next_id}");
                let d = Decision {
                    phase: "outcome",
                    action,
                    rule: None,
                    until_ms: Some(due),
                    detail: &detail,
                };
                decide(&mut tx, call.id, now, &d).await?;
                tx.commit().await.map_err(anyhow::Error::from)?;
            }
        }
        Ok(ticket)
    }

    /// Call results and refusal reasons of calls fired between two times.
    pub async fn outcome_report(&self, from_ms: i64, to_ms: i64) -> ApiResult<OutcomeReport> {
        let rows = sqlx::query(
            "SELECT journey_id, outcome, COALESCE(reason_code, '') AS reason, COUNT(*) AS n \
             FROM outbound_calls WHERE outcome IS NOT NULL AND fired_at_ms >= $1 AND fired_at_ms < $2 \
             GROUP BY journey_id, outcome, COALESCE(reason_code, '') \
             ORDER BY journey_id, outcome, reason",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.db.pool())
        .await
        .map_err(anyhow::Error::from)?;
        let mut reasons = Vec::new();
        for r in rows {
            let outcome: String = r.try_get("outcome").map_err(anyhow::Error::from)?;
            let Some(result) = CallResult::parse(&outcome) else {
                continue;
            };
            reasons.push(ReasonCount {
                journey_id: r.try_get("journey_id").map_err(anyhow::Error::from)?,
                result,
                reason_code: r.try_get("reason").map_err(anyhow::Error::from)?,
                count: r.try_get::<i64, _>("n").map_err(anyhow::Error::from)? as u64,
            });
        }
        Ok(OutcomeReport {
            from_ms,
            to_ms,
            reasons,
        })
    }
}

/// A new call of the same chain, for the same purposes.
fn follow_up(call: &super::store::CallRow, source_kind: &'static str) -> NewCall {
    NewCall {
        dedupe_key: String::new(),
        customer_id: call.customer_id,
        chain_id: Some(call.chain_id),
        journey_id: call.journey_id,
        journey_version: None,
        step_index: None,
        source_kind,
        source_id: call.id,
        purposes: call.purposes.clone(),
        category_id: call.category_id,
        restricted_category_id: call.restricted_category_id,
        complaint_ticket_id: call.complaint_ticket_id,
        attempt: call.attempt,
        due_at_ms: 0,
    }
}
