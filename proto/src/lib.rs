//! Every type that crosses the wire between the call-center server and its
//! clients: HTTP request and response bodies ([`http`]) and WebSocket messages
//! ([`ws`]). Nothing else is serialized to clients.
//!
//! Each type derives `utoipa::ToSchema` (for `/api/openapi.json`) and
//! `schemars::JsonSchema` (for the published socket schema).

pub mod compensation;
pub mod desk;
pub mod http;
pub mod outbound;
pub mod outcomes;
pub mod quality;
pub mod ws;

/// The version of the live-channel protocol this build speaks ("major.minor").
/// A client states its version in its `hello`; an unknown major is refused.
pub const PROTOCOL_VERSION: &str = "1.0";
pub const PROTOCOL_MAJOR: u32 = 1;

/// Roles a user can have. Integration users are other systems (a shop, a CRM,
/// a phone system) that post customers, purchases and complaints.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    Supervisor,
    Admin,
    Integration,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
            Role::Integration => "integration",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "agent" => Role::Agent,
            "supervisor" => Role::Supervisor,
            "admin" => Role::Admin,
            "integration" => Role::Integration,
            _ => return None,
        })
    }
}

/// Where a ticket is in its life.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Waiting in its queue for an agent.
    Queued,
    /// Proposed to one agent, waiting for accept or decline.
    Offered,
    /// Held by an agent.
    Assigned,
    /// Ended with an outcome.
    Resolved,
    /// Withdrawn before it was resolved.
    Cancelled,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Queued => "queued",
            TicketStatus::Offered => "offered",
            TicketStatus::Assigned => "assigned",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<TicketStatus> {
        Some(match s {
            "queued" => TicketStatus::Queued,
            "offered" => TicketStatus::Offered,
            "assigned" => TicketStatus::Assigned,
            "resolved" => TicketStatus::Resolved,
            "cancelled" => TicketStatus::Cancelled,
            _ => return None,
        })
    }
}

/// An agent's routing state, as the agent sets it and as boards show it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Offline,
    Available,
    Break,
    /// The pause after a ticket ends; available again when it is over.
    WrapUp,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Offline => "offline",
            AgentState::Available => "available",
            AgentState::Break => "break",
            AgentState::WrapUp => "wrap_up",
        }
    }

    pub fn parse(s: &str) -> AgentState {
        match s {
            "available" => AgentState::Available,
            "break" => AgentState::Break,
            "wrap_up" => AgentState::WrapUp,
            _ => AgentState::Offline,
        }
    }
}
