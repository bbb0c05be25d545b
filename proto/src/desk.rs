//! What an agent does on a complaint besides notes and outcomes (issue 8):
//! escalate it to a supervisor of their team, schedule a callback to the
//! customer, and read the customer's history (past tickets and outcomes,
//! past compensation, consent) on the ticket view's customer card.

use crate::TicketStatus;
use crate::compensation::{BonusKind, CompensationStatus};
use crate::http::{Outcome, Ticket};
use crate::outbound::ContactProfile;
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
    /// The agent holding an inbound ticket asks a supervisor of their team
    /// for help. The ticket stays with the agent until a supervisor acts.
    #[serde(deny_unknown_fields)]
    pub struct EscalateRequest {
        /// Why (1 to 1000 characters), shown to the supervisors.
        pub reason: String,
    }

    /// Where an escalation is.
    #[derive(Copy, Eq)]
    #[serde(rename_all = "snake_case")]
    pub enum EscalationStatus {
        /// Waiting for a supervisor; the agent still holds the ticket.
        Open,
        /// A supervisor took the ticket over and holds it now.
        Taken,
        /// A supervisor handed it back to the agent (with guidance).
        HandedBack,
        /// A supervisor put the ticket back at the front of its queue, for
        /// the next free agent.
        Requeued,
        /// The ticket ended (resolved or cancelled) before a supervisor acted.
        Closed,
    }

    /// What a supervisor does with an escalation.
    #[derive(Copy, Eq)]
    #[serde(rename_all = "snake_case")]
    pub enum EscalationAction {
        /// Take the ticket over: it is assigned to the supervisor, the agent
        /// is free for the next ticket.
        Take,
        /// Give it back to the agent who escalated, with a note.
        HandBack,
        /// Back to the front of its queue for another agent (from an open
        /// escalation, or from a ticket the supervisor took over).
        Requeue,
    }

    #[serde(deny_unknown_fields)]
    pub struct EscalationDecision {
        pub action: EscalationAction,
        /// Guidance for the agent, or why (at most 1000 characters).
        #[serde(default)]
        pub note: String,
    }

    /// An escalation and where it is now (derived from the ticket's history).
    pub struct Escalation {
        pub ticket: Ticket,
        pub customer_name: String,
        /// The agent who escalated.
        pub escalated_by: i64,
        pub escalated_by_name: String,
        pub reason: String,
        /// The agent's teams when they escalated: their supervisors decide.
        pub teams: Vec<String>,
        pub escalated_at_ms: i64,
        pub status: EscalationStatus,
        /// The supervisor who acted, when, and their note.
        pub decided_by: Option<i64>,
        pub decided_by_name: Option<String>,
        pub decided_at_ms: Option<i64>,
        pub note: Option<String>,
    }

    /// A callback to the customer of an inbound ticket the agent holds. It
    /// becomes an outbound call of the complaint, due at `at_ms`, judged by
    /// the contact policy now and again when due.
    #[serde(deny_unknown_fields)]
    pub struct CallbackRequest {
        /// Unix milliseconds: in the future, at most 30 days ahead, inside
        /// the contact policy's calling hours in the customer's time zone.
        pub at_ms: i64,
        /// What to call back about (at most 2000 characters): the script the
        /// agent who makes the call reads.
        #[serde(default)]
        pub note: String,
        /// End the ticket now with this outcome (what a call center usually
        /// does: the contact ends, the callback is new work). Absent: the
        /// ticket stays with the agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub end_with: Option<Outcome>,
    }

    pub struct CallbackScheduled {
        /// The outbound call (see `GET /api/outbound/calls?customer_id=`).
        pub call_id: i64,
        pub due_at_ms: i64,
        /// The ticket after the request: resolved when `end_with` was given.
        pub ticket: Ticket,
    }

    /// The customer card's history: the latest tickets with outcomes, the
    /// latest compensation with status, consent, and calls still planned.
    pub struct CustomerHistory {
        pub customer_id: i64,
        /// Newest first, at most `limit`.
        pub tickets: Vec<PastTicket>,
        /// Grants (newest first, at most `limit`) and requests still pending.
        pub compensation: Vec<PastCompensation>,
        /// Consent and account status; `consent_history` holds the latest
        /// five changes only.
        pub contact: ContactProfile,
        /// Outbound calls still scheduled (callbacks included), soonest first.
        pub scheduled_calls: Vec<PlannedCall>,
    }

    pub struct PastTicket {
        pub id: i64,
        /// `inbound` or `outbound`.
        pub kind: String,
        pub status: TicketStatus,
        pub category: String,
        /// The first 200 characters.
        pub description: String,
        pub created_at_ms: i64,
        pub resolved_at_ms: Option<i64>,
        pub outcome: Option<Outcome>,
    }

    pub struct PastCompensation {
        pub request_id: i64,
        pub ticket_id: i64,
        pub kind: BonusKind,
        pub quantity: i64,
        pub cost_minor: i64,
        pub reason_code: String,
        /// `granted`, `approved` or `pending`.
        pub status: CompensationStatus,
        /// A granted or approved grant that was reversed since.
        pub reversed: bool,
        pub created_at_ms: i64,
    }

    pub struct PlannedCall {
        pub call_id: i64,
        pub due_at_ms: i64,
        pub purpose: String,
        /// The complaint a callback follows up.
        pub complaint_ticket_id: Option<i64>,
    }
}
