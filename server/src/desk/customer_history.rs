//! The customer card's history: the latest tickets with their outcomes,
//! the latest compensation with its status, consent and account status, and
//! the calls still planned. Bounded (the latest `limit` of each), read
//! through the indexes by customer (`tickets_customer`,
//! `compensation_ledger_customer`, `outbound_calls_customer`).
//!
//! Agents read it only for a customer whose ticket they hold or are being
//! offered; supervisors and admins for any customer.

use super::Desk;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use callcenter_proto::compensation::{BonusKind, CompensationStatus};
use callcenter_proto::desk::{CustomerHistory, PastCompensation, PastTicket, PlannedCall};
use callcenter_proto::http::Outcome;
use callcenter_proto::outbound::CallPurpose;
use callcenter_proto::{Role, TicketStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

pub const DEFAULT_HISTORY: i64 = 10;
pub const MAX_HISTORY: i64 = 50;
/// Consent changes shown on the card (the export has them all).
const CONSENT_CHANGES: usize = 5;

fn past_compensation(r: &AnyRow) -> ApiResult<PastCompensation> {
    let kind: String = r.try_get("kind")?;
    let status: String = r.try_get("status")?;
    Ok(PastCompensation {
        request_id: r.try_get("id")?,
        ticket_id: r.try_get("ticket_id")?,
        kind: BonusKind::parse(&kind).ok_or(ApiError::NotFound("bonus kind"))?,
        quantity: r.try_get("quantity")?,
        cost_minor: r.try_get("cost_minor")?,
        reason_code: r.try_get("reason_code")?,
        status: CompensationStatus::parse(&status)
            .ok_or(ApiError::NotFound("compensation status"))?,
        reversed: r.try_get::<i64, _>("reversed")? != 0,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

impl Desk {
    /// May this agent see this customer's history: do they hold, or are
    /// they being offered, one of the customer's tickets?
    pub(crate) async fn agent_serves_customer(
        &self,
        agent_id: i64,
        customer_id: i64,
    ) -> ApiResult<bool> {
        let live = sqlx::query(
            "SELECT id, status, queue_id, assigned_agent_id FROM tickets \
             WHERE customer_id = $1 AND status IN ('queued', 'offered', 'assigned')",
        )
        .bind(customer_id)
        .fetch_all(self.db.pool())
        .await?;
        for t in &live {
            let status: String = t.try_get("status")?;
            if status == "assigned" {
                if t.try_get::<Option<i64>, _>("assigned_agent_id")? == Some(agent_id) {
                    return Ok(true);
                }
                continue;
            }
            // Offers are live state (routing), not in the record.
            let ticket_id: i64 = t.try_get("id")?;
            let offered_to_agent = self
                .routing
                .offers(t.try_get("queue_id")?)
                .await?
                .iter()
                .any(|o| o.ticket_id == ticket_id && o.agent_id == agent_id);
            if offered_to_agent {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub async fn customer_history(
        &self,
        actor: &AuthUser,
        customer_id: i64,
        limit: i64,
    ) -> ApiResult<CustomerHistory> {
        actor.require(&[Role::Agent, Role::Supervisor, Role::Admin])?;
        self.db.customer(customer_id).await?;
        if actor.role == Role::Agent
            && !self
                .agent_serves_customer(actor.user_id, customer_id)
                .await?
        {
            return Err(ApiError::Forbidden(
                "you hold no ticket of this customer and are offered none",
            ));
        }
        let limit = limit.clamp(1, MAX_HISTORY);

        let tickets = sqlx::query(
            "SELECT t.id, t.kind, t.status, c.name AS category, t.description, t.created_at_ms, \
                 t.resolved_at_ms, t.outcome_code, t.outcome_resolved, t.outcome_note \
             FROM tickets t JOIN categories c ON c.id = t.category_id \
             WHERE t.customer_id = $1 ORDER BY t.created_at_ms DESC, t.id DESC LIMIT $2",
        )
        .bind(customer_id)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            let description: String = r.try_get("description")?;
            let code: Option<String> = r.try_get("outcome_code")?;
            Ok(PastTicket {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                status: TicketStatus::parse(&status).ok_or(ApiError::NotFound("status"))?,
                category: r.try_get("category")?,
                description: description.chars().take(200).collect(),
                created_at_ms: r.try_get("created_at_ms")?,
                resolved_at_ms: r.try_get("resolved_at_ms")?,
                outcome: match code {
                    Some(code) => Some(Outcome {
                        code,
                        resolved: r
                            .try_get::<Option<i64>, _>("outcome_resolved")?
                            .unwrap_or(0)
                            != 0,
                        note: r
                            .try_get::<Option<String>, _>("outcome_note")?
                            .unwrap_or_default(),
                    }),
                    None => None,
                },
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;

        // Requests still waiting for a supervisor (the partial index on
        // pending requests), then grants from the ledger (by customer).
        const COLUMNS: &str = "r.id, r.ticket_id, r.kind, r.quantity, r.cost_minor, \
             r.reason_code, r.status, r.created_at_ms, \
             CAST(CASE WHEN EXISTS (SELECT 1 FROM compensation_ledger x \
                 WHERE x.request_id = r.id AND x.kind = 'reversal') THEN 1 ELSE 0 END AS BIGINT) AS reversed";
        let mut compensation = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM compensation_requests r \
             WHERE r.status = 'pending' AND r.customer_id = $1 ORDER BY r.id DESC LIMIT $2"
        ))
        .bind(customer_id)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(past_compensation)
        .collect::<ApiResult<Vec<_>>>()?;
        let grants = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM compensation_ledger l \
             JOIN compensation_requests r ON r.id = l.request_id \
             WHERE l.customer_id = $1 AND l.kind = 'grant' \
             ORDER BY l.created_at_ms DESC, l.seq DESC LIMIT $2"
        ))
        .bind(customer_id)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        for r in &grants {
            compensation.push(past_compensation(r)?);
        }
        compensation.sort_by_key(|g| std::cmp::Reverse((g.created_at_ms, g.request_id)));
        compensation.truncate(limit as usize);

        let mut contact = self.db.contact_profile(customer_id).await?;
        let skip = contact
            .consent_history
            .len()
            .saturating_sub(CONSENT_CHANGES);
        contact.consent_history.drain(..skip);

        let scheduled_calls = sqlx::query(
            "SELECT id, due_at_ms, purposes, complaint_ticket_id FROM outbound_calls \
             WHERE customer_id = $1 AND status = 'scheduled' ORDER BY due_at_ms, id LIMIT $2",
        )
        .bind(customer_id)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(|r| {
            let purposes: String = r.try_get("purposes")?;
            let purposes: Vec<CallPurpose> = serde_json::from_str(&purposes).unwrap_or_default();
            Ok(PlannedCall {
                call_id: r.try_get("id")?,
                due_at_ms: r.try_get("due_at_ms")?,
                purpose: purposes
                    .iter()
                    .map(|p| p.purpose.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                complaint_ticket_id: r.try_get("complaint_ticket_id")?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;

        Ok(CustomerHistory {
            customer_id,
            tickets,
            compensation,
            contact,
            scheduled_calls,
        })
    }
}
