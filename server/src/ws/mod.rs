//! The live channel at `/ws`: agent consoles and supervisor boards.
//!
//! Upgrade: the `Origin` header, when present (browsers always send it), must
//! be on the exact allow list, else 403 before any upgrade. After the upgrade
//! the client has [`HELLO_TIMEOUT`] to send its hello with protocol version and
//! access token (never in the URL, where tokens end up in logs). Then one task
//! writes (events, replies, pings) and one reads (commands), joined by
//! `select!` so that either ending ends the connection.

mod board;
mod connection;
pub mod hub;

pub use board::{BOARD_INTERVAL, publish_boards};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use callcenter_proto::ws::{Command, ReplyResult, WsError, WsErrorCode};
use callcenter_proto::{AgentState, Role};
use std::time::Duration;

/// Largest frame a client may send.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .map(|o| state.allowed_origins.iter().any(|a| a == o))
            .unwrap_or(false);
        if !allowed {
            return (
                StatusCode::FORBIDDEN,
                ApiError::Forbidden("this Origin may not open the live channel"),
            )
                .into_response();
        }
    }
    // Small socket buffers: a console's frames are a few KiB at most, and
    // tungstenite's 128 KiB defaults would make each idle console cost
    // a quarter of a MiB (the loadtest's connections mode measures this).
    ws.max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            let connections = state.connections.clone();
            connections.track_future(connection::serve_socket(state, socket))
        })
}

/// Read buffer of a live-channel socket (it grows for a larger frame).
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

/// Run one command; every command is authorized here, not only at connect.
async fn handle(
    state: &AppState,
    user: &AuthUser,
    socket_id: u64,
    command: Command,
) -> ReplyResult {
    let result = async {
        // The session may have been revoked since the socket opened.
        if state
            .db
            .session_user(&user.session_id, user.user_id)
            .await?
            .is_none()
        {
            return Err(ApiError::Unauthorized("the session has ended"));
        }
        let agent = || user.require(&[Role::Agent]);
        let desk = &state.desk;
        match command {
            Command::SetState { state: s, reason } => {
                agent()?;
                if s == AgentState::WrapUp {
                    return Err(ApiError::field(
                        "state",
                        "wrap-up starts by itself when a ticket ends",
                    ));
                }
                if s == AgentState::Break && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                    return Err(ApiError::field("reason", "a break needs a reason"));
                }
                if reason.as_ref().is_some_and(|r| r.len() > 200) {
                    return Err(ApiError::field("reason", "must be at most 200 characters"));
                }
                desk.set_state(user.user_id, s, reason.as_deref()).await?;
                Ok(None)
            }
            Command::Accept { ticket_id, version } => {
                agent()?;
                Ok(Some(desk.accept(user.user_id, ticket_id, version).await?))
            }
            Command::Decline { ticket_id, version } => {
                agent()?;
                desk.decline(user.user_id, ticket_id, version).await?;
                Ok(None)
            }
            Command::Resolve { ticket_id, outcome } => {
                agent()?;
                Ok(Some(desk.resolve(user.user_id, ticket_id, &outcome).await?))
            }
            Command::Note { ticket_id, text } => {
                agent()?;
                desk.note(user.user_id, ticket_id, &text).await?;
                Ok(None)
            }
            Command::CallOutcome { ticket_id, outcome } => {
                agent()?;
                Ok(Some(
                    desk.record_call_outcome(user.user_id, ticket_id, &outcome)
                        .await?,
                ))
            }
            Command::Escalate { ticket_id, reason } => {
                agent()?;
                Ok(Some(
                    desk.escalate(user.user_id, ticket_id, &reason)
                        .await?
                        .ticket,
                ))
            }
            Command::ScheduleCallback {
                ticket_id,
                at_ms,
                note,
                end_with,
            } => {
                agent()?;
                let req = callcenter_proto::desk::CallbackRequest {
                    at_ms,
                    note,
                    end_with,
                };
                Ok(Some(
                    desk.schedule_callback(user.user_id, ticket_id, &req)
                        .await?
                        .ticket,
                ))
            }
            Command::DecideEscalation {
                ticket_id,
                action,
                note,
            } => Ok(Some(
                desk.decide_escalation(user, ticket_id, action, &note)
                    .await?
                    .ticket,
            )),
            Command::Subscribe { queues, teams } => {
                user.require(&[Role::Supervisor, Role::Admin])?;
                board::subscribe(state, socket_id, queues, teams).await?;
                Ok(None)
            }
            Command::DecideCompensation {
                compensation_id,
                approve,
                note,
            } => {
                crate::compensation::decide_on_socket(state, user, compensation_id, approve, note)
                    .await?;
                Ok(None)
            }
        }
    }
    .await;
    match result {
        Ok(ticket) => ReplyResult::Ok { ticket },
        Err(e) => ReplyResult::Error(ws_error(&e)),
    }
}

fn ws_error(e: &ApiError) -> WsError {
    let code = match e {
        ApiError::Validation(_) | ApiError::BadRequest(_) | ApiError::PayloadTooLarge => {
            WsErrorCode::Validation
        }
        ApiError::Unauthorized(_) | ApiError::Forbidden(_) => WsErrorCode::Forbidden,
        ApiError::NotFound(_) => WsErrorCode::NotFound,
        ApiError::OfferGone(_) => WsErrorCode::OfferGone,
        ApiError::Conflict(_) | ApiError::IdempotencyMismatch => WsErrorCode::Conflict,
        ApiError::Unavailable(_) | ApiError::Internal(_) => WsErrorCode::Internal,
    };
    if let ApiError::Internal(cause) = e {
        tracing::error!(error = ?cause, "command failed");
    }
    let problem = e.problem();
    let detail = match &e {
        ApiError::Validation(errors) => errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => problem.detail,
    };
    WsError { code, detail }
}
