//! HTTP request and response bodies.

use crate::{AgentState, Role, TicketStatus};
use serde::{Deserialize, Serialize};

macro_rules! wire {
    ($($item:item)*) => {
        $(
            #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
            $item
        )*
    };
}

wire! {
    /// RFC 9457 problem details, served as `application/problem+json`.
    pub struct Problem {
        /// A stable identifier of the kind of problem, e.g. `/problems/validation`.
        #[serde(rename = "type")]
        pub kind: String,
        pub title: String,
        pub status: u16,
        /// A human explanation of this occurrence.
        pub detail: String,
        /// Per-field validation errors, when the problem is a validation failure.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub errors: Vec<FieldError>,
    }

    pub struct FieldError {
        /// JSON pointer-ish path of the offending field, e.g. `description`.
        pub field: String,
        pub message: String,
    }

    #[serde(deny_unknown_fields)]
    pub struct LoginRequest {
        pub username: String,
        pub password: String,
    }

    #[serde(deny_unknown_fields)]
    pub struct RefreshRequest {
        pub refresh_token: String,
    }

    pub struct TokenPair {
        /// Short-lived JWT for `Authorization: Bearer` and the socket `hello`.
        pub access_token: String,
        /// Seconds until the access token expires.
        pub expires_in: u64,
        /// Opaque, single-use token to obtain a new pair.
        pub refresh_token: String,
        pub user: User,
    }

    pub struct User {
        pub id: i64,
        pub username: String,
        pub display_name: String,
        pub role: Role,
        pub disabled: bool,
    }

    #[serde(deny_unknown_fields)]
    pub struct CreateUser {
        pub username: String,
        pub display_name: Option<String>,
        pub role: Role,
        /// At least 12 characters.
        pub password: String,
    }

    #[serde(deny_unknown_fields)]
    pub struct UpdateUser {
        pub display_name: Option<String>,
        pub disabled: Option<bool>,
        pub password: Option<String>,
    }

    pub struct SkillLevel {
        pub skill: String,
        /// 1 (novice) to 10 (expert).
        pub level: u8,
    }

    /// The routing profile of a user with the agent role.
    #[serde(deny_unknown_fields)]
    pub struct AgentProfile {
        #[serde(default)]
        pub skills: Vec<SkillLevel>,
        #[serde(default)]
        pub teams: Vec<String>,
        /// Concurrent inbound tickets.
        pub capacity_inbound: u32,
        /// Concurrent outbound calls.
        pub capacity_outbound: u32,
    }

    pub struct Agent {
        pub user: User,
        pub profile: AgentProfile,
    }

    #[serde(deny_unknown_fields)]
    pub struct QueueSpec {
        pub name: String,
        #[serde(default)]
        pub required_skills: Vec<SkillLevel>,
        /// Answer within this many seconds (the service-level target).
        pub service_level_seconds: u32,
        /// How long an agent has to accept an offer.
        pub offer_timeout_seconds: u32,
        /// A pause after an agent ends a ticket before their next offer.
        #[serde(default)]
        pub wrap_up_seconds: u32,
        /// How the agent is chosen among the free, eligible ones.
        #[serde(default)]
        pub strategy: Strategy,
        /// How waiting tickets are ordered (besides their waiting time).
        #[serde(default)]
        pub priority: PriorityRule,
        /// Bullseye steps: after waiting so long, a ticket accepts agents with
        /// fewer skills, or moves to another queue.
        #[serde(default)]
        pub overflow: Vec<OverflowStep>,
        /// Offers an agent may let expire in a row before being put on break.
        #[serde(default = "default_missed_offers")]
        pub missed_offers_limit: u32,
        /// How long a disconnected agent's tickets wait for them to come back
        /// before returning to the front of the queue.
        #[serde(default = "default_reconnect_grace")]
        pub reconnect_grace_seconds: u32,
    }

    /// A waiting ticket's head start, in seconds of waiting time: a ticket with
    /// 60 s head start is served as if it had waited 60 s longer. Every ticket
    /// still rises as it waits, so nothing starves.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct PriorityRule {
        /// Per customer tier, e.g. {"gold": 120, "silver": 60}.
        #[serde(default)]
        pub tier_head_start_seconds: std::collections::BTreeMap<String, u32>,
        /// Seconds per 1,000 minor units of the customer's yearly value...
        #[serde(default)]
        pub value_head_start_seconds_per_1000: u32,
        /// ...up to this many seconds.
        #[serde(default)]
        pub max_value_head_start_seconds: u32,
        /// For a ticket that reopens an earlier one.
        #[serde(default)]
        pub reopen_head_start_seconds: u32,
        /// For a ticket escalated by an agent or supervisor.
        #[serde(default)]
        pub escalation_head_start_seconds: u32,
    }

    #[serde(deny_unknown_fields)]
    pub struct OverflowStep {
        /// Seconds of waiting after which this step applies.
        pub after_seconds: u32,
        /// The relaxed ring: agents with these skills may take the ticket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub required_skills: Option<Vec<SkillLevel>>,
        /// Or: move the ticket to this queue (keeping its place by waiting time).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub overflow_queue_id: Option<i64>,
    }

    pub struct Queue {
        pub id: i64,
        #[serde(flatten)]
        pub spec: QueueSpec,
    }

    #[serde(deny_unknown_fields)]
    pub struct CategorySpec {
        pub name: String,
        pub queue_id: i64,
        /// Head start in the queue, in seconds of waiting time (0 = none).
        #[serde(default)]
        pub base_priority: u32,
    }

    pub struct Category {
        pub id: i64,
        #[serde(flatten)]
        pub spec: CategorySpec,
    }

    /// Create or update a customer, idempotent by `external_id`.
    #[serde(deny_unknown_fields)]
    pub struct CustomerUpsert {
        /// The customer's id in the shop or CRM.
        pub external_id: String,
        pub name: String,
        pub email: Option<String>,
        pub phone: Option<String>,
        /// e.g. `standard`, `silver`, `gold`.
        #[serde(default = "default_tier")]
        pub tier: String,
        /// Yearly value in minor currency units.
        #[serde(default)]
        pub value_minor: i64,
        /// IANA time zone, e.g. `Europe/Moscow`.
        pub timezone: Option<String>,
    }

    pub struct Customer {
        pub id: i64,
        pub external_id: String,
        pub name: String,
        pub email: Option<String>,
        pub phone: Option<String>,
        pub tier: String,
        pub value_minor: i64,
        pub timezone: Option<String>,
        #[serde(default)]
        pub purchases: Vec<Purchase>,
    }

    #[serde(deny_unknown_fields)]
    pub struct PurchaseCreate {
        pub external_id: String,
        pub product: String,
        pub amount_minor: i64,
        pub currency: String,
        /// Unix milliseconds; defaults to now.
        pub purchased_at_ms: Option<i64>,
    }

    pub struct Purchase {
        pub id: i64,
        pub external_id: String,
        pub product: String,
        pub amount_minor: i64,
        pub currency: String,
        pub purchased_at_ms: i64,
    }

    /// A complaint or incoming call from a phone system, web form or agent.
    /// Send with an `Idempotency-Key` header: a retry returns the same ticket.
    #[serde(deny_unknown_fields)]
    pub struct ComplaintCreate {
        /// The customer's internal id, or give `customer_external_id`.
        pub customer_id: Option<i64>,
        pub customer_external_id: Option<String>,
        pub category_id: i64,
        pub description: String,
        /// e.g. `phone`, `web`, `email`.
        pub channel: String,
    }

    #[serde(deny_unknown_fields)]
    pub struct CancelRequest {
        /// Why the ticket is withdrawn (1 to 200 characters).
        pub reason: String,
    }

    pub struct Outcome {
        /// A resolution code, e.g. `refund_issued`, `explained`.
        pub code: String,
        /// Whether the customer's problem was solved.
        pub resolved: bool,
        #[serde(default)]
        pub note: String,
    }

    pub struct Ticket {
        pub id: i64,
        /// `inbound` or `outbound`.
        pub kind: String,
        pub status: TicketStatus,
        pub customer_id: i64,
        pub category_id: i64,
        pub queue_id: i64,
        pub channel: String,
        pub description: String,
        pub assigned_agent_id: Option<i64>,
        pub created_at_ms: i64,
        pub resolved_at_ms: Option<i64>,
        pub outcome: Option<Outcome>,
    }

    /// One step of a ticket's history: who did what, when.
    pub struct TicketEvent {
        pub id: i64,
        pub ticket_id: i64,
        pub at_ms: i64,
        /// The user who acted; absent for the system (routing, timers).
        pub actor_user_id: Option<i64>,
        /// e.g. `created`, `queued`, `offered`, `accepted`, `declined`, `resolved`.
        pub kind: String,
        pub data: serde_json::Value,
    }

    pub struct TicketHistory {
        pub ticket: Ticket,
        pub events: Vec<TicketEvent>,
    }

    pub struct AgentStatus {
        pub agent_id: i64,
        pub state: AgentState,
    }

    pub struct Health {
        pub status: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub checks: Vec<HealthCheck>,
    }

    pub struct HealthCheck {
        pub name: String,
        pub ok: bool,
        pub detail: Option<String>,
    }
}

/// How a queue chooses among free, eligible agents.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The agent who has waited longest since their last ticket.
    #[default]
    LongestIdle,
    /// The agent with the highest level in the queue's skills (ties: longest idle).
    BestSkill,
    /// The agent who has taken the fewest tickets today (ties: longest idle).
    FewestToday,
}

fn default_missed_offers() -> u32 {
    3
}

fn default_reconnect_grace() -> u32 {
    120
}

fn default_tier() -> String {
    "standard".to_string()
}
