//! Complaints in, tickets and their history out.

use super::Check;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiResult};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use callcenter_proto::Role;
use callcenter_proto::http::{
    CancelRequest, ComplaintCreate, Outcome, Problem, Ticket, TicketHistory,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/complaints", post(file_complaint))
        .route("/api/tickets/{id}", get(get_ticket))
        .route("/api/tickets/{id}/history", get(history))
        .route("/api/tickets/{id}/resolve", post(resolve))
        .route("/api/tickets/{id}/cancel", post(cancel))
}

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// File a complaint. Requires an `Idempotency-Key` header (1-200 visible
/// characters): a retry with the same key and body returns the same ticket
/// (200), the same key with another body is refused (422).
#[utoipa::path(post, path = "/api/complaints", tag = "tickets", security(("bearer" = [])), request_body = ComplaintCreate,
    params(("Idempotency-Key" = String, Header, description = "unique per complaint; retries reuse it")),
    responses((status = 201, body = Ticket), (status = 200, body = Ticket, description = "a retry"),
        (status = 422, body = Problem)))]
pub async fn file_complaint(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ComplaintCreate>,
) -> ApiResult<(StatusCode, ApiJson<Ticket>)> {
    let key = crate::http::idempotency_key(&headers)?;
    let mut check = Check::new();
    check.text("description", &req.description, 4000);
    check.text("channel", &req.channel, 32);
    if let Some(ext) = &req.customer_external_id {
        check.text("customer_external_id", ext, 128);
    }
    check.done()?;
    let hash = crate::http::request_hash(&req)?;
    let (ticket, created) = state.desk.file_complaint(&user, &req, key, &hash).await?;
    let status = crate::http::created_or_ok(created);
    Ok((status, ApiJson(ticket)))
}

/// Agents see their own tickets; supervisors and admins see every ticket.
async fn visible_ticket(state: &AppState, user: &AuthUser, id: i64) -> ApiResult<Ticket> {
    Ok(visible_ticket_and_offer(state, user, id).await?.0)
}

/// The ticket as its reader may see it, and its open offer (live state) if
/// a supervisor or admin reads it.
async fn visible_ticket_and_offer(
    state: &AppState,
    user: &AuthUser,
    id: i64,
) -> ApiResult<(Ticket, Option<crate::store::OfferStep>)> {
    match user.role {
        Role::Supervisor | Role::Admin => {
            let ticket = state.db.ticket(id).await?;
            Ok(state.desk.with_live_offer(ticket).await?)
        }
        Role::Agent => Ok((state.desk.ticket_of(user.user_id, id).await?, None)),
        Role::Integration => Err(ApiError::Forbidden("your role may not read tickets")),
    }
}

#[utoipa::path(get, path = "/api/tickets/{id}", tag = "tickets", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = Ticket), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_ticket(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<Ticket>> {
    Ok(ApiJson(visible_ticket(&state, &user, id).await?))
}

/// The ticket with every step of its history: who did what, when.
#[utoipa::path(get, path = "/api/tickets/{id}/history", tag = "tickets", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = TicketHistory), (status = 403, body = Problem)))]
pub async fn history(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<TicketHistory>> {
    let (ticket, open_offer) = visible_ticket_and_offer(&state, &user, id).await?;
    let mut events = state.db.ticket_events(id).await?;
    // An offer still open is live state, not yet in the record: show it.
    if let Some(offer) = open_offer {
        events.push(callcenter_proto::http::TicketEvent {
            id: 0,
            ticket_id: id,
            at_ms: offer.at_ms,
            actor_user_id: None,
            kind: "offered".into(),
            data: offer.data(),
        });
    }
    Ok(ApiJson(TicketHistory { ticket, events }))
}

/// Resolve a ticket you hold (the same as the socket's `resolve` command).
#[utoipa::path(post, path = "/api/tickets/{id}/resolve", tag = "tickets", security(("bearer" = [])),
    request_body = Outcome, params(("id" = i64, Path)),
    responses((status = 200, body = Ticket), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn resolve(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(outcome): ApiJson<Outcome>,
) -> ApiResult<ApiJson<Ticket>> {
    user.require(&[Role::Agent])?;
    Ok(ApiJson(
        state.desk.resolve(user.user_id, id, &outcome).await?,
    ))
}

/// Withdraw a ticket that has not ended (a duplicate, a customer who called
/// back to say it is solved): a pending offer is rescinded, a holder freed.
#[utoipa::path(post, path = "/api/tickets/{id}/cancel", tag = "tickets", security(("bearer" = [])),
    request_body = CancelRequest, params(("id" = i64, Path)),
    responses((status = 200, body = Ticket), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<CancelRequest>,
) -> ApiResult<ApiJson<Ticket>> {
    user.require(&[Role::Supervisor, Role::Admin, Role::Integration])?;
    Ok(ApiJson(
        state.desk.cancel(user.user_id, id, &req.reason).await?,
    ))
}
