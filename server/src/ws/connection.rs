//! One live-channel connection: the hello, then a resume (the missed events)
//! or a snapshot, then a writer and a reader joined by `select!`.
//!
//! The writer owns the socket's sink: stream events (numbered per user),
//! replies, boards and pings all go out through it. It keeps the last stream
//! number sent; a stream event that arrives out of turn (a Redis message lost
//! in a reconnect) makes it fetch what is missing from the user's stream, so a
//! connection never has a silent gap.

use super::hub::{CloseReason, Outgoing};
use super::{HELLO_TIMEOUT, handle, ws_error};
use crate::app::AppState;
use crate::auth::{AuthUser, authenticate};
use crate::bus::{Claim, Since};
use crate::error::ApiError;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use callcenter_proto::ws::{
    CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_UNSUPPORTED_VERSION, ClientFrame, Command, ReplyResult,
    ServerEvent, Snapshot, WsError, WsErrorCode,
};
use callcenter_proto::{PROTOCOL_MAJOR, PROTOCOL_VERSION, Role};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::Instrument;

/// Close code when a connection stayed silent past the idle limit.
pub const CLOSE_IDLE: u16 = 4408;
/// A frame the client's TCP window does not take within this is a dead peer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection waits for room to send its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long a repeated request waits for the first one to finish.
const DUPLICATE_WAIT: Duration = Duration::from_secs(5);

pub(super) async fn serve_socket(state: AppState, mut socket: WebSocket) {
    let (user, resume_from) = match hello(&state, &mut socket).await {
        Ok(hello) => hello,
        Err((code, reason)) => {
            let _ = socket.send(close_message(code, &reason)).await;
            return;
        }
    };
    let span = tracing::info_span!("socket", user_id = user.user_id, role = user.role.as_str());
    run(state, socket, user, resume_from).instrument(span).await;
}

/// Wait for the hello; check the version and the token.
async fn hello(
    state: &AppState,
    socket: &mut WebSocket,
) -> Result<(AuthUser, Option<u64>), (u16, String)> {
    let first = tokio::time::timeout(HELLO_TIMEOUT, socket.recv())
        .await
        .map_err(|_| (CLOSE_POLICY, "no hello within 5 seconds".to_string()))?;
    let Some(Ok(Message::Text(text))) = first else {
        return Err((CLOSE_POLICY, "the first frame must be a hello".to_string()));
    };
    let Ok(ClientFrame::Hello {
        protocol,
        token,
        resume_from,
    }) = serde_json::from_str::<ClientFrame>(&text)
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
    let user = authenticate(state, &token)
        .await
        .map_err(|_| (CLOSE_POLICY, "invalid or expired token".to_string()))?;
    Ok((user, resume_from))
}

fn text_frame(seq: u64, event: &ServerEvent) -> Message {
    /// A `ServerFrame` that borrows its event (same JSON).
    #[derive(serde::Serialize)]
    struct FrameRef<'a> {
        seq: u64,
        #[serde(flatten)]
        event: &'a ServerEvent,
    }
    let text = serde_json::to_string(&FrameRef { seq, event }).unwrap_or_default();
    Message::Text(Utf8Bytes::from(text))
}

fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_string()),
    }))
}

type Sink = SplitSink<WebSocket, Message>;

async fn send(sink: &mut Sink, message: Message) -> anyhow::Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, sink.send(message))
        .await
        .map_err(|_| anyhow::anyhow!("the client stopped reading"))??;
    Ok(())
}

/// What the client's current state is, for a fresh start or a resume from
/// too far back.
async fn snapshot(state: &AppState, user: &AuthUser, socket_id: u64) -> anyhow::Result<Snapshot> {
    let subscription = state.hub.subscription(socket_id).unwrap_or_default();
    let mut snapshot = Snapshot {
        state: None,
        pending_offers: Vec::new(),
        assigned: Vec::new(),
        queues: subscription.queues,
        teams: subscription.teams,
    };
    if user.role != Role::Agent {
        return Ok(snapshot);
    }
    let db = &state.db;
    snapshot.state = Some(db.agent_routing(user.user_id).await?.state);
    for id in db.assigned_tickets(user.user_id).await? {
        snapshot.assigned.push(db.ticket(id).await?);
    }
    for queue in db.queues_for_agent(user.user_id).await? {
        for offer in state.desk.routing.offers(queue).await? {
            if offer.agent_id != user.user_id {
                continue;
            }
            let ticket = db.ticket(offer.ticket_id).await?;
            snapshot
                .pending_offers
                .push(state.desk.offer_details(&offer, ticket).await?);
        }
    }
    Ok(snapshot)
}

/// The frames that open a connection and the stream number they reach.
struct Opening {
    frames: Vec<(u64, ServerEvent)>,
    last: u64,
}

async fn opening(
    state: &AppState,
    user: &AuthUser,
    socket_id: u64,
    resume_from: Option<u64>,
) -> anyhow::Result<Opening> {
    let welcome = |resumed| ServerEvent::Welcome {
        protocol: PROTOCOL_VERSION.to_string(),
        user_id: user.user_id,
        role: user.role,
        resumed,
    };
    if let Some(after) = resume_from
        && let Since::Events(missed) = state.bus.since(user.user_id, after).await?
    {
        let last = missed.last().map(|(seq, _)| *seq).unwrap_or(after);
        let mut frames = vec![(after, welcome(true))];
        frames.extend(missed);
        return Ok(Opening { frames, last });
    }
    // Where the stream is now: the snapshot covers everything up to here and
    // live events after it follow (the socket is registered already).
    let last = state.bus.position(user.user_id).await?;
    let snapshot = snapshot(state, user, socket_id).await?;
    Ok(Opening {
        frames: vec![
            (last, welcome(false)),
            (last, ServerEvent::Snapshot(Box::new(snapshot))),
        ],
        last,
    })
}

async fn run(state: AppState, socket: WebSocket, user: AuthUser, resume_from: Option<u64>) {
    // Registered first: events published from now on are buffered for this
    // socket while the opening is read, and the writer drops the ones the
    // opening already covers.
    let registration = state
        .hub
        .register(user.user_id, user.role, &user.session_id);
    if user.role == Role::Agent {
        state.desk.agent_connected(user.user_id).await;
    }
    let socket_id = registration.id;
    state.metrics.sockets_open.inc();
    state.metrics.sockets_total.inc();
    let (mut sink, mut stream) = socket.split();
    let (reply_tx, mut reply_rx) = mpsc::channel::<ToWriter>(64);
    let mut events = registration.rx;
    let close = registration.close.clone();
    let shutdown = state.shutdown.clone();
    let started = Instant::now();
    // Milliseconds since `started` when the client was last heard from.
    let heard = AtomicU64::new(0);
    let limits = state.live;

    let writer = async {
        let opening = opening(&state, &user, socket_id, resume_from).await?;
        let mut last = opening.last;
        for (seq, event) in &opening.frames {
            state.desk.offered_in.shown(event);
            send(&mut sink, text_frame(*seq, event)).await?;
        }
        let pump = async {
            let mut ping = tokio::time::interval(limits.ping);
            ping.tick().await;
            loop {
                tokio::select! {
                    Some(Outgoing::Event { seq, event }) = events.recv() => match seq {
                        Some(n) if n <= last => {}
                        Some(n) => {
                            // (A stream that did not exist when the connection
                            // opened starts wherever its first number is.)
                            if last != 0 && n > last + 1 {
                                catch_up(&state, &user, socket_id, &mut sink, last, n).await?;
                            }
                            send(&mut sink, text_frame(n, &event)).await?;
                            last = n;
                        }
                        None => send(&mut sink, text_frame(last, &event)).await?,
                    },
                    Some(to_writer) = reply_rx.recv() => match to_writer {
                        ToWriter::Frame(reply) => send(&mut sink, text_frame(last, &reply)).await?,
                        ToWriter::Close(code, reason) => return Ok::<_, anyhow::Error>((code, reason)),
                    },
                    _ = ping.tick() => {
                        let silent = started.elapsed().saturating_sub(Duration::from_millis(heard.load(Ordering::Relaxed)));
                        if silent >= limits.idle {
                            return Ok((CLOSE_IDLE, "no frame or pong within the idle limit".to_string()));
                        }
                        send(&mut sink, Message::Ping(Default::default())).await?;
                    }
                }
            }
        };
        // A close requested by the server (revoked session, a client too slow
        // to keep up, shutdown) interrupts whatever is being written.
        let (code, reason) = tokio::select! {
            biased;
            _ = close.cancelled() => {
                let reason = registration.reason.lock().unwrap_or_else(|p| p.into_inner()).clone()
                    .unwrap_or(CloseReason { code: CLOSE_POLICY, reason: "closed".into() });
                (reason.code, reason.reason)
            }
            _ = shutdown.cancelled() => (CLOSE_GOING_AWAY, "server shutting down".to_string()),
            ended = pump => ended?,
        };
        // The reason goes out once the client has room for it (a slow
        // client may still drain its buffer), or not at all.
        let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close_message(code, &reason))).await;
        Ok::<(), anyhow::Error>(())
    };

    let reader = async {
        let mut limiter = RateLimiter::new(limits.commands_per_second);
        let mut abusive = false;
        while let Some(message) = stream.next().await {
            heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            let text = match message {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(Message::Binary(_)) => {
                    if reply_tx
                        .send(ToWriter::Frame(Box::new(bad_frame("frames are JSON text"))))
                        .await
                        .is_err()
                    {
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
                }) => match limiter.check(Instant::now()) {
                    Verdict::Allow => {
                        answer_to_the_end(&state, &user, socket_id, request_id, command).await
                    }
                    Verdict::Limit => ServerEvent::Reply {
                        request_id,
                        result: ReplyResult::Error(WsError {
                            code: WsErrorCode::RateLimited,
                            detail: format!(
                                "more than {} commands a second; slow down",
                                limits.commands_per_second
                            ),
                        }),
                    },
                    Verdict::Abuse => {
                        let _ = reply_tx
                            .send(ToWriter::Close(CLOSE_POLICY, "too many commands".into()))
                            .await;
                        abusive = true;
                        break;
                    }
                },
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
            if reply_tx
                .send(ToWriter::Frame(Box::new(reply)))
                .await
                .is_err()
            {
                break;
            }
        }
        // After an abuse the writer sends the replies so far and the close.
        if abusive {
            std::future::pending::<()>().await;
        }
    };

    tokio::select! {
        result = writer => if let Err(e) = result { tracing::debug!(error = %e, "socket ended") },
        _ = reader => {}
    }

    let remaining = state.hub.unregister(socket_id);
    if user.role == Role::Agent && remaining == 0 {
        state
            .desk
            .agent_disconnected(user.user_id, || state.hub.has_socket_of(user.user_id))
            .await;
    }
    // Counted open until its agent's disconnection is handled.
    state.metrics.sockets_open.dec();
    // The socket is gone for the live channel; its TCP connection lingers: read (and drop) what the client still sends until
    // its close frame, for a moment, so that frames it sent before seeing
    // ours do not turn our close into a TCP reset it never reads.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// What the reader hands the writer: a frame, or the end of the connection.
enum ToWriter {
    Frame(Box<ServerEvent>),
    Close(u16, String),
}

/// Send the stream events between `last` and `upto` (exclusive) that did not
/// arrive live; a snapshot when they are no longer kept.
async fn catch_up(
    state: &AppState,
    user: &AuthUser,
    socket_id: u64,
    sink: &mut Sink,
    last: u64,
    upto: u64,
) -> anyhow::Result<()> {
    match state.bus.since(user.user_id, last).await? {
        Since::Events(events) => {
            for (seq, event) in events.iter().filter(|(seq, _)| *seq < upto) {
                send(sink, text_frame(*seq, event)).await?;
            }
        }
        Since::TooOld => {
            let snapshot = snapshot(state, user, socket_id).await?;
            send(
                sink,
                text_frame(upto - 1, &ServerEvent::Snapshot(Box::new(snapshot))),
            )
            .await?;
        }
    }
    Ok(())
}

/// Run a command once per request id: a repeat gets the first reply.
/// Run a command to its end even if the socket closes meanwhile: the
/// connection's tasks are dropped when it ends, and a command cut between
/// its live step and its record (an accept settled in routing but not yet
/// committed) would leave the two disagreeing. The reply goes nowhere then;
/// a reconnecting console asking again with the same request id gets it.
async fn answer_to_the_end(
    state: &AppState,
    user: &AuthUser,
    socket_id: u64,
    request_id: String,
    command: Command,
) -> ServerEvent {
    let (state, user) = (state.clone(), user.clone());
    let fallback = request_id.clone();
    match tokio::spawn(async move { answer(&state, &user, socket_id, request_id, command).await })
        .await
    {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(error = %e, "a command task failed");
            ServerEvent::Reply {
                request_id: fallback,
                result: ReplyResult::Error(WsError {
                    code: WsErrorCode::Internal,
                    detail: "the command failed".into(),
                }),
            }
        }
    }
}

async fn answer(
    state: &AppState,
    user: &AuthUser,
    socket_id: u64,
    request_id: String,
    command: Command,
) -> ServerEvent {
    if request_id.is_empty() || request_id.len() > 128 {
        return ServerEvent::Reply {
            request_id: request_id.chars().take(128).collect(),
            result: ReplyResult::Error(WsError {
                code: WsErrorCode::Validation,
                detail: "request_id must be 1 to 128 characters".into(),
            }),
        };
    }
    let span = tracing::info_span!("command", request_id = %request_id);
    let result = async {
        let started = Instant::now();
        loop {
            match state.bus.claim_request(user.user_id, &request_id).await? {
                Claim::New => {
                    let result = handle(state, user, socket_id, command).await;
                    let stored = serde_json::to_string(&result)?;
                    state
                        .bus
                        .finish_request(user.user_id, &request_id, &stored)
                        .await?;
                    return Ok(result);
                }
                Claim::Done(stored) => return Ok(serde_json::from_str(&stored)?),
                Claim::Running if started.elapsed() < DUPLICATE_WAIT => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Claim::Running => {
                    return Err(ApiError::Conflict(
                        "the first request with this id is still running".into(),
                    )
                    .into());
                }
            }
        }
    }
    .instrument(span)
    .await;
    let result = result.unwrap_or_else(|e: anyhow::Error| match e.downcast::<ApiError>() {
        Ok(api) => ReplyResult::Error(ws_error(&api)),
        Err(e) => ReplyResult::Error(ws_error(&ApiError::Internal(e))),
    });
    ServerEvent::Reply { request_id, result }
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

enum Verdict {
    Allow,
    /// Over the rate: answered with `rate_limited`.
    Limit,
    /// Far over the rate: the connection is closed.
    Abuse,
}

/// A token bucket: `rate` commands a second, bursts of twice that; a client
/// refused more than `2 × rate` times in a row is abusing the channel.
struct RateLimiter {
    rate: f64,
    tokens: f64,
    at: Instant,
    refused_in_a_row: u32,
}

impl RateLimiter {
    fn new(rate: u32) -> Self {
        RateLimiter {
            rate: f64::from(rate),
            tokens: f64::from(rate) * 2.0,
            at: Instant::now(),
            refused_in_a_row: 0,
        }
    }

    fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate * 2.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused_in_a_row = 0;
            Verdict::Allow
        } else {
            self.refused_in_a_row += 1;
            if f64::from(self.refused_in_a_row) > self.rate * 2.0 {
                Verdict::Abuse
            } else {
                Verdict::Limit
            }
        }
    }
}
