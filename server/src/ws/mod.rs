//! The live channel at `/ws`: agent consoles and supervisor boards.
//!
//! Upgrade: the `Origin` header, when present (browsers always send it), must
//! be on the exact allow list, else 403 before any upgrade. After the upgrade
//! the client has [`HELLO_TIMEOUT`] to send its hello with protocol version and
//! access token (never in the URL, where tokens end up in logs). Then one task
//! writes (events, replies, pings) and one reads (commands), joined by
//! `select!` so that either ending ends the connection.

pub mod hub;

use crate::app::AppState;
use crate::auth::{AuthUser, authenticate};
use crate::error::ApiError;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use callcenter_proto::ws::{
    CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_UNSUPPORTED_VERSION, ClientFrame, Command, ReplyResult,
    ServerEvent, WsError, WsErrorCode,
};
use callcenter_proto::{AgentState, PROTOCOL_MAJOR, PROTOCOL_VERSION, Role};
use futures::{SinkExt, StreamExt};
use hub::{CloseReason, Outgoing};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Largest frame a client may send.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
pub const PING_INTERVAL: Duration = Duration::from_secs(15);

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
    ws.max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| serve_socket(state, socket))
}

fn frame(seq: &mut u64, event: &ServerEvent) -> Message {
    *seq += 1;
    let text = serde_json::to_string(&FrameRef { seq: *seq, event }).unwrap_or_default();
    Message::Text(Utf8Bytes::from(text))
}

/// A [`callcenter_proto::ws::ServerFrame`] that borrows its event (same JSON).
#[derive(serde::Serialize)]
struct FrameRef<'a> {
    seq: u64,
    #[serde(flatten)]
    event: &'a ServerEvent,
}

fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_string()),
    }))
}

async fn serve_socket(state: AppState, mut socket: WebSocket) {
    let user = match hello(&state, &mut socket).await {
        Ok(user) => user,
        Err((code, reason)) => {
            let _ = socket.send(close_message(code, &reason)).await;
            return;
        }
    };
    let span = tracing::info_span!("socket", user_id = user.user_id, role = user.role.as_str());
    run(state, socket, user).instrument(span).await;
}

/// Wait for the hello; check the version and the token.
async fn hello(state: &AppState, socket: &mut WebSocket) -> Result<AuthUser, (u16, String)> {
    let first = tokio::time::timeout(HELLO_TIMEOUT, socket.recv())
        .await
        .map_err(|_| (CLOSE_POLICY, "no hello within 5 seconds".to_string()))?;
    let Some(Ok(Message::Text(text))) = first else {
        return Err((CLOSE_POLICY, "the first frame must be a hello".to_string()));
    };
    let Ok(ClientFrame::Hello { protocol, token }) = serde_json::from_str::<ClientFrame>(&text)
    else {
        return Err((CLOSE_POLICY, "the first frame must be a hello".to_string()));
    };
    let major = protocol
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    if major != Some(PROTOCOL_MAJOR) {
        return Err((
            CLOSE_UNSUPPORTED_VERSION,
            format!("unsupported protocol {protocol:?}; this server speaks {PROTOCOL_VERSION}"),
        ));
    }
    authenticate(state, &token)
        .await
        .map_err(|_| (CLOSE_POLICY, "invalid or expired token".to_string()))
}

async fn run(state: AppState, socket: WebSocket, user: AuthUser) {
    let registration = state
        .hub
        .register(user.user_id, user.role, &user.session_id);
    state.metrics.sockets_open.inc();
    state.metrics.sockets_total.inc();
    let (mut sink, mut stream) = socket.split();
    // Replies from the reader go through the writer, so that every frame on
    // the connection gets its sequence number in one place.
    let (reply_tx, mut reply_rx) = mpsc::channel::<ServerEvent>(64);
    let mut events = registration.rx;
    let close = registration.close.clone();
    let shutdown = state.shutdown.clone();

    let agent_state = if user.role == Role::Agent {
        state
            .db
            .agent_routing(user.user_id)
            .await
            .ok()
            .map(|a| a.state)
    } else {
        None
    };
    let welcome = ServerEvent::Welcome {
        protocol: PROTOCOL_VERSION.to_string(),
        user_id: user.user_id,
        role: user.role,
        state: agent_state,
    };

    let writer = async {
        let mut seq = 0u64;
        sink.send(frame(&mut seq, &welcome)).await?;
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        loop {
            tokio::select! {
                Some(Outgoing::Event(event)) = events.recv() => sink.send(frame(&mut seq, &event)).await?,
                Some(reply) = reply_rx.recv() => sink.send(frame(&mut seq, &reply)).await?,
                _ = ping.tick() => sink.send(Message::Ping(Default::default())).await?,
                _ = close.cancelled() => {
                    let reason = registration.reason.lock().unwrap_or_else(|p| p.into_inner()).clone()
                        .unwrap_or(CloseReason { code: CLOSE_POLICY, reason: "closed".into() });
                    let _ = sink.send(close_message(reason.code, &reason.reason)).await;
                    break;
                }
                _ = shutdown.cancelled() => {
                    let _ = sink.send(close_message(CLOSE_GOING_AWAY, "server shutting down")).await;
                    break;
                }
            }
        }
        Ok::<(), axum::Error>(())
    };

    let reader = async {
        while let Some(message) = stream.next().await {
            let text = match message {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(Message::Binary(_)) => {
                    let error = bad_frame("frames are JSON text");
                    if reply_tx.send(error).await.is_err() {
                        break;
                    }
                    continue;
                }
                Ok(_) => continue,
            };
            let reply = match serde_json::from_str::<ClientFrame>(&text) {
                Ok(ClientFrame::Command {
                    request_id,
                    command,
                }) => {
                    let span = tracing::info_span!("command", request_id = %request_id);
                    let result = handle(&state, &user, command).instrument(span).await;
                    ServerEvent::Reply { request_id, result }
                }
                Ok(ClientFrame::Hello { .. }) => bad_frame("hello was already received"),
                Err(e) => match request_id_of(&text) {
                    // A command we cannot read still gets its one reply.
                    Some(request_id) => ServerEvent::Reply {
                        request_id,
                        result: ReplyResult::Error(WsError {
                            code: WsErrorCode::BadFrame,
                            detail: format!("not a valid command: {e}"),
                        }),
                    },
                    None => bad_frame(&format!("not a valid frame: {e}")),
                },
            };
            if reply_tx.send(reply).await.is_err() {
                break;
            }
        }
    };

    tokio::select! {
        result = writer => if let Err(e) = result { tracing::debug!(error = %e, "socket write ended") },
        _ = reader => {}
    }

    state.metrics.sockets_open.dec();
    let remaining = state.hub.unregister(registration.id);
    if user.role == Role::Agent && remaining == 0 {
        state.desk.agent_disconnected(user.user_id).await;
    }
}

fn request_id_of(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let id = value.get("request_id")?.as_str()?;
    (!id.is_empty() && id.len() <= 128).then(|| id.to_string())
}

fn bad_frame(detail: &str) -> ServerEvent {
    ServerEvent::Error(WsError {
        code: WsErrorCode::BadFrame,
        detail: detail.to_string(),
    })
}

/// Run one command; every command is authorized here, not only at connect.
async fn handle(state: &AppState, user: &AuthUser, command: Command) -> ReplyResult {
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
        user.require(&[Role::Agent])?;
        let desk = &state.desk;
        match command {
            Command::SetState { state: s, reason } => {
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
                Ok(Some(desk.accept(user.user_id, ticket_id, version).await?))
            }
            Command::Decline { ticket_id, version } => {
                desk.decline(user.user_id, ticket_id, version).await?;
                Ok(None)
            }
            Command::Resolve { ticket_id, outcome } => {
                Ok(Some(desk.resolve(user.user_id, ticket_id, &outcome).await?))
            }
            Command::Note { ticket_id, text } => {
                desk.note(user.user_id, ticket_id, &text).await?;
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
