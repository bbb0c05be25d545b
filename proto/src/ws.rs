//! The live channel: WebSocket messages between the server and agent consoles
//! or supervisor boards. Every frame is one JSON object.
//!
//! The client opens the socket (its `Origin` must be allowed) and sends a
//! [`ClientFrame::Hello`] within a few seconds with its protocol version and
//! access token; a bad token closes the socket with code 1008, an unknown major
//! version with code 4400.
//!
//! **Sequence and resume.** Every event meant for a user (offers, rescinds,
//! state changes, ticket updates…) gets the next number of that user's stream,
//! shared by all of the user's consoles on every server node. A client that
//! reconnects sends the last `seq` it processed as `resume_from`: the server
//! replays every later event in order, or, when that is too far back, sends a
//! [`ServerEvent::Snapshot`] of the client's whole current state. Never a
//! silent gap. A fresh connection (no `resume_from`) starts with a snapshot.
//! Frames that are answers or views rather than stream events (`welcome`,
//! `reply`, `snapshot`, `board`, `error`) carry the stream position at the time
//! they were sent and do not advance it.
//!
//! **Commands.** After the hello, every client command carries a request id
//! and gets exactly one [`ServerEvent::Reply`]; a repeated request id (for
//! example after a reconnect) gets the first reply again and has no second
//! effect.
//!
//! **Liveness and limits.** The server pings every 15 s and closes a
//! connection it has heard nothing from (frames or pongs) for 30 s. A client
//! that does not read fast enough is closed (1008, it can resume). Commands
//! beyond the per-connection rate get a `rate_limited` reply; a client that
//! keeps going past it is closed.

use crate::http::{Customer, Outcome, Ticket};
use crate::{AgentState, Role};
use serde::{Deserialize, Serialize};

/// Close code for an unknown protocol major version.
pub const CLOSE_UNSUPPORTED_VERSION: u16 = 4400;
/// Close code for a policy violation (bad token, revoked session): RFC 6455's 1008.
pub const CLOSE_POLICY: u16 = 1008;
/// Close code when the server is going away (shutdown).
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// A frame sent by the client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The first frame: who the client is and which protocol it speaks.
    Hello {
        /// "major.minor", e.g. "1.0".
        protocol: String,
        /// The access JWT from `/api/auth/login` (never put it in the URL).
        token: String,
        /// The last `seq` this client processed, to resume after a reconnect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_from: Option<u64>,
    },
    /// A command; answered by exactly one `reply` with the same `request_id`.
    Command {
        /// Unique per user (a UUID, say): a repeated id is taken as a retry
        /// and answered with the first reply. At most 128 characters.
        request_id: String,
        #[serde(flatten)]
        command: Command,
    },
}

/// What a client asks the server to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Agents: go available, on break (with a reason) or offline.
    SetState {
        state: AgentState,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Agents: take the offered ticket. `version` is the offer's fencing token.
    Accept { ticket_id: i64, version: u64 },
    /// Agents: pass on the offered ticket; it goes to another agent.
    Decline { ticket_id: i64, version: u64 },
    /// Agents: end an assigned ticket with an outcome.
    Resolve { ticket_id: i64, outcome: Outcome },
    /// Agents: add a note to an assigned ticket's history.
    Note { ticket_id: i64, text: String },
    /// Agents: record what came of an outbound call you hold; ends its
    /// ticket and schedules a retry or callback under the contact policy.
    CallOutcome {
        ticket_id: i64,
        outcome: crate::outbound::CallOutcome,
    },
    /// Supervisors: approve or deny a pending compensation request.
    DecideCompensation {
        compensation_id: i64,
        approve: bool,
        #[serde(default)]
        note: String,
    },
    /// Agents: ask a supervisor of your team for help on an inbound ticket
    /// you hold (see `POST /api/tickets/{id}/escalate`).
    Escalate { ticket_id: i64, reason: String },
    /// Agents: schedule a callback to the customer of an inbound ticket you
    /// hold (see `POST /api/tickets/{id}/callback`).
    ScheduleCallback {
        ticket_id: i64,
        at_ms: i64,
        #[serde(default)]
        note: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_with: Option<Outcome>,
    },
    /// Supervisors of the escalating agent's team, and admins: take an
    /// escalated ticket over, hand it back, or put it back in its queue.
    DecideEscalation {
        ticket_id: i64,
        action: crate::desk::EscalationAction,
        #[serde(default)]
        note: String,
    },
    /// Supervisors and admins: watch queues (by id) and teams (by name) on
    /// this connection's board: a `board` snapshot now, then coalesced
    /// updates. Replaces the connection's earlier subscription.
    Subscribe {
        #[serde(default)]
        queues: Vec<i64>,
        #[serde(default)]
        teams: Vec<String>,
    },
}

/// A frame sent by the server: a sequence number and an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerFrame {
    /// Increases by one with every frame on this connection.
    pub seq: u64,
    #[serde(flatten)]
    pub event: ServerEvent,
}

/// What the server tells a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
// Events are built once and shared by reference (`Arc`) between the sockets
// they go to, so the size of the largest variant costs nothing per socket.
#[allow(clippy::large_enum_variant)]
pub enum ServerEvent {
    /// Answer to a valid hello. `resumed` tells whether the missed events
    /// follow (true) or a snapshot does (false).
    Welcome {
        protocol: String,
        user_id: i64,
        role: Role,
        resumed: bool,
    },
    /// The client's whole current state, replacing whatever it had: sent on a
    /// fresh connection and when a resume point is too far back.
    Snapshot(Box<Snapshot>),
    /// A supervisor board's figures for the subscribed queues and teams.
    Board(Board),
    /// The one answer to a command.
    Reply {
        request_id: String,
        #[serde(flatten)]
        result: ReplyResult,
    },
    /// A ticket proposed to this agent. Accept before `deadline_ms` with `version`.
    /// An offer whose `(ticket, version)` was already rescinded on this
    /// stream is void: the rescind can come first (the server writes it
    /// while the offer's delivery still reads the customer's card).
    Offer(OfferDetails),
    /// A pending offer was withdrawn (timeout, cancel, state change). It may
    /// arrive before the offer it withdraws (see `Offer`).
    OfferRescinded {
        ticket_id: i64,
        version: u64,
        reason: String,
        /// When the server began withdrawing it (Unix milliseconds, read
        /// before the ticket was free for another offer; 0 from a server
        /// that did not say). Frames to two agents may arrive in either
        /// order: a next offer of the ticket to someone else whose
        /// `sent_at_ms` is earlier than this was made while this one was
        /// still open.
        #[serde(default)]
        at_ms: i64,
    },
    /// The agent's state changed (by the agent, a supervisor, or routing).
    AgentStateChanged {
        state: AgentState,
        reason: Option<String>,
    },
    /// A ticket this user holds or watches changed.
    TicketUpdated { ticket: Ticket },
    /// Supervisors: a compensation request above its requester's authority
    /// waits for a decision.
    CompensationPending {
        request: Box<crate::compensation::CompensationRequest>,
    },
    /// A pending compensation request was approved, denied or expired (to the
    /// requester and to the supervisors who were asked).
    CompensationDecided {
        request: Box<crate::compensation::CompensationRequest>,
    },
    /// An escalation opened or changed (to the agent who escalated and to
    /// the supervisors who may decide it).
    EscalationChanged {
        escalation: Box<crate::desk::Escalation>,
    },
    /// A client frame could not be understood (no request id to reply to).
    Error(WsError),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Snapshot {
    /// The agent's routing state (agents only).
    pub state: Option<AgentState>,
    /// The offer waiting for this agent's answer, if any.
    pub pending_offers: Vec<OfferDetails>,
    /// Tickets this agent holds now.
    pub assigned: Vec<Ticket>,
    /// This connection's board subscription.
    pub queues: Vec<i64>,
    pub teams: Vec<String>,
}

/// Live figures of a board: a whole picture each time (small), sent at most
/// a few times a second however fast tickets change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Board {
    pub queues: Vec<QueueFigures>,
    pub teams: Vec<TeamFigures>,
    /// Today's quality figures (complaints ended today) of the watched
    /// queues and of the whole call center; refreshed every few seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<crate::quality::BoardQuality>,
    /// Unix milliseconds when the figures were taken.
    pub at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueueFigures {
    pub queue_id: i64,
    pub name: String,
    /// Tickets waiting for an agent (offered ones included).
    pub waiting: u64,
    /// When the oldest waiting ticket came in (Unix ms): its wait is
    /// `now - oldest_waiting_since_ms`, so the board ticks without messages.
    pub oldest_waiting_since_ms: Option<i64>,
    /// Share of today's answered tickets answered within the target, in
    /// per-mille (None before the first answer of the day).
    pub service_level_permille: Option<u32>,
    pub answered_today: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TeamFigures {
    pub team: String,
    pub agents: Vec<AgentFigure>,
    /// Compensation requests of the team's agents waiting for a supervisor.
    pub pending_approvals: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentFigure {
    pub agent_id: i64,
    pub name: String,
    pub state: AgentState,
    /// Tickets held now.
    pub tickets: u64,
    /// Available but at capacity: no further offers until a ticket ends.
    pub busy: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OfferDetails {
    pub ticket: Ticket,
    pub customer: Customer,
    pub version: u64,
    /// Unix milliseconds after which the offer goes to someone else.
    pub deadline_ms: i64,
    /// When the server sent this offer (Unix milliseconds, read after the
    /// offer was made; 0 from a server that did not say). With a rescind's
    /// `at_ms` it orders two agents' offers of one ticket: see
    /// `ServerEvent::OfferRescinded`.
    #[serde(default)]
    pub sent_at_ms: i64,
    /// For an outbound call: why the business calls and the script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<crate::outbound::OutboundBrief>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ReplyResult {
    Ok {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket: Option<Ticket>,
    },
    Error(WsError),
}

/// A typed error on the socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WsError {
    pub code: WsErrorCode,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WsErrorCode {
    /// The frame is not valid JSON of a known shape, or too large.
    BadFrame,
    /// A field is invalid.
    Validation,
    /// The user's role may not send this command, or the ticket is not theirs.
    Forbidden,
    /// The ticket does not exist.
    NotFound,
    /// The offer has expired, been rescinded, or the version is stale.
    OfferGone,
    /// The ticket is not in a state that allows this command.
    Conflict,
    /// Too many commands per second.
    RateLimited,
    /// The server failed; the command may be retried.
    Internal,
}

/// The JSON Schema of every socket message, published at `/api/ws-schema.json`.
pub fn json_schema() -> serde_json::Value {
    let client = schemars::schema_for!(ClientFrame);
    let server = schemars::schema_for!(ServerFrame);
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "callcenter live channel",
        "protocol": crate::PROTOCOL_VERSION,
        "client_to_server": client,
        "server_to_client": server,
    })
}
