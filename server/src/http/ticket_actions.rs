//! What an agent does on a complaint besides notes and outcomes, over HTTP
//! (the console uses the socket's `escalate`, `schedule_callback` and
//! `decide_escalation` commands, which run the same desk methods):
//! escalations to supervisors, callbacks, and the customer card's history.

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::desk::customer_history::DEFAULT_HISTORY;
use crate::error::{ApiError, ApiJson, ApiResult};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use callcenter_proto::Role;
use callcenter_proto::desk::{
    CallbackRequest, CallbackScheduled, CustomerHistory, EscalateRequest, Escalation,
    EscalationDecision,
};
use callcenter_proto::http::{Outcome, Problem, Ticket};
use serde::Deserialize;
use sqlx::Row;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tickets/{id}/escalate", post(escalate))
        .route("/api/tickets/{id}/escalation", get(get_escalation))
        .route(
            "/api/tickets/{id}/escalation/decision",
            post(decide_escalation),
        )
        .route("/api/tickets/{id}/escalation/resolve", post(resolve_taken))
        .route("/api/escalations", get(list_escalations))
        .route("/api/tickets/{id}/callback", post(schedule_callback))
        .route("/api/customers/{id}/history", get(customer_history))
}

/// Escalate an inbound ticket you hold to the supervisors of your team (they
/// get an `escalation_changed` event). The ticket stays yours until one of
/// them acts; one open escalation per ticket.
#[utoipa::path(post, path = "/api/tickets/{id}/escalate", tag = "tickets", security(("bearer" = [])),
    request_body = EscalateRequest, params(("id" = i64, Path)),
    responses((status = 201, body = Escalation), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn escalate(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<EscalateRequest>,
) -> ApiResult<(StatusCode, ApiJson<Escalation>)> {
    user.require(&[Role::Agent])?;
    let escalation = state.desk.escalate(user.user_id, id, &req.reason).await?;
    Ok((StatusCode::CREATED, ApiJson(escalation)))
}

/// A ticket's latest escalation: for the agent holding the ticket, and for
/// supervisors and admins.
#[utoipa::path(get, path = "/api/tickets/{id}/escalation", tag = "tickets", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = Escalation), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_escalation(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<Escalation>> {
    match user.role {
        Role::Supervisor | Role::Admin => {}
        Role::Agent => {
            state.desk.ticket_of(user.user_id, id).await?;
        }
        Role::Integration => return Err(ApiError::Forbidden("your role may not read tickets")),
    }
    Ok(ApiJson(state.desk.escalation_of(id).await?))
}

/// The escalations waiting for you (supervisors of the escalating agent's
/// teams, admins) and the tickets you took over and still hold, oldest first.
#[utoipa::path(get, path = "/api/escalations", tag = "tickets", security(("bearer" = [])),
    responses((status = 200, body = [Escalation]), (status = 403, body = Problem)))]
pub async fn list_escalations(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<Escalation>>> {
    Ok(ApiJson(state.desk.escalations_for(&user).await?))
}

/// Take an escalated ticket over (it becomes yours and the agent is free),
/// hand it back to the agent with a note, or put it back at the front of
/// its queue for another agent (also a ticket you took over).
#[utoipa::path(post, path = "/api/tickets/{id}/escalation/decision", tag = "tickets", security(("bearer" = [])),
    request_body = EscalationDecision, params(("id" = i64, Path)),
    responses((status = 200, body = Escalation), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn decide_escalation(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<EscalationDecision>,
) -> ApiResult<ApiJson<Escalation>> {
    Ok(ApiJson(
        state
            .desk
            .decide_escalation(&user, id, req.action, &req.note)
            .await?,
    ))
}

/// End a ticket you took over with an outcome.
#[utoipa::path(post, path = "/api/tickets/{id}/escalation/resolve", tag = "tickets", security(("bearer" = [])),
    request_body = Outcome, params(("id" = i64, Path)),
    responses((status = 200, body = Ticket), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn resolve_taken(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(outcome): ApiJson<Outcome>,
) -> ApiResult<ApiJson<Ticket>> {
    Ok(ApiJson(
        state.desk.resolve_taken(&user, id, &outcome).await?,
    ))
}

/// Schedule a callback to the customer of an inbound ticket you hold: an
/// outbound call of the complaint due at `at_ms` (future, within 30 days,
/// allowed by the contact policy then; otherwise 422 naming the rule and the
/// first allowed time). With `end_with` the ticket ends with that outcome.
/// Requires an `Idempotency-Key`: a retry returns the first answer (200).
#[utoipa::path(post, path = "/api/tickets/{id}/callback", tag = "tickets", security(("bearer" = [])),
    request_body = CallbackRequest, params(("id" = i64, Path),
        ("Idempotency-Key" = String, Header, description = "unique per callback; retries reuse it")),
    responses((status = 201, body = CallbackScheduled), (status = 200, body = CallbackScheduled, description = "a retry"),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn schedule_callback(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CallbackRequest>,
) -> ApiResult<(StatusCode, ApiJson<CallbackScheduled>)> {
    user.require(&[Role::Agent])?;
    let key = super::idempotency_key(&headers)?;
    let hash = super::request_hash(&(id, &req))?;
    let scope = format!("callback:{}", user.user_id);
    let earlier = sqlx::query(
        "SELECT request_hash, resource_id FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(&scope)
    .bind(key)
    .fetch_optional(state.db.pool())
    .await?;
    if let Some(row) = earlier {
        if row.try_get::<String, _>("request_hash")? != hash {
            return Err(ApiError::IdempotencyMismatch);
        }
        let call = state.db.call(row.try_get("resource_id")?).await?;
        let ticket = state.db.ticket(id).await?;
        let answer = CallbackScheduled {
            call_id: call.id,
            due_at_ms: call.due_at_ms,
            ticket,
        };
        return Ok((StatusCode::OK, ApiJson(answer)));
    }
    let scheduled = state.desk.schedule_callback(user.user_id, id, &req).await?;
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(&scope)
    .bind(key)
    .bind(&hash)
    .bind(scheduled.call_id)
    .bind(state.clock.now_ms())
    .execute(state.db.pool())
    .await?;
    Ok((StatusCode::CREATED, ApiJson(scheduled)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct HistoryParams {
    /// How many of each (tickets, compensation, planned calls): 1 to 50,
    /// default 10.
    pub limit: Option<i64>,
}

/// The customer card's history: latest tickets with outcomes, compensation
/// with status, consent, planned calls. Agents: only for a customer whose
/// ticket they hold or are offered.
#[utoipa::path(get, path = "/api/customers/{id}/history", tag = "customers", security(("bearer" = [])),
    params(("id" = i64, Path), HistoryParams),
    responses((status = 200, body = CustomerHistory), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn customer_history(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    q: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<ApiJson<CustomerHistory>> {
    let q = q
        .map(|Query(q)| q)
        .map_err(|e| ApiError::field("limit", e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_HISTORY);
    if !(1..=crate::desk::customer_history::MAX_HISTORY).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 50"));
    }
    Ok(ApiJson(
        state.desk.customer_history(&user, id, limit).await?,
    ))
}
