//! The live channel: WebSocket messages between the server and agent consoles
//! or supervisor boards. Every frame is one JSON object.
//!
//! The client opens the socket (its `Origin` must be allowed) and sends a
//! [`ClientFrame::Hello`] within a few seconds with its protocol version and
//! access token; a bad token closes the socket with code 1008, an unknown major
//! version with code 4400. After the hello, every client command carries a
//! request id and gets exactly one [`ServerEvent::Reply`]. Every server frame
//! carries a sequence number.

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
    },
    /// A command; answered by exactly one `reply` with the same `request_id`.
    Command {
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
pub enum ServerEvent {
    /// Answer to a valid hello.
    Welcome {
        protocol: String,
        user_id: i64,
        role: Role,
        /// The agent's current state (agents only).
        state: Option<AgentState>,
    },
    /// The one answer to a command.
    Reply {
        request_id: String,
        #[serde(flatten)]
        result: ReplyResult,
    },
    /// A ticket proposed to this agent. Accept before `deadline_ms` with `version`.
    Offer(OfferDetails),
    /// A pending offer was withdrawn (timeout, cancel, state change).
    OfferRescinded {
        ticket_id: i64,
        version: u64,
        reason: String,
    },
    /// The agent's state changed (by the agent, a supervisor, or routing).
    AgentStateChanged {
        state: AgentState,
        reason: Option<String>,
    },
    /// A ticket this user holds or watches changed.
    TicketUpdated { ticket: Ticket },
    /// A client frame could not be understood (no request id to reply to).
    Error(WsError),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OfferDetails {
    pub ticket: Ticket,
    pub customer: Customer,
    pub version: u64,
    /// Unix milliseconds after which the offer goes to someone else.
    pub deadline_ms: i64,
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
