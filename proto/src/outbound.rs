//! Outbound service calls: intake (memberships, shared dates, consent),
//! journeys, the contact policy, scheduled calls and their outcomes, CSV
//! import reports and a customer's data export.

use crate::http::{Customer, TicketHistory};
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
    /// What starts a journey.
    #[serde(rename_all = "snake_case")]
    pub enum JourneyTrigger {
        /// A purchase was recorded; steps run `days` after the purchase.
        Purchase,
        /// A membership or renewal ends; steps run `days` before the end.
        MembershipEnd,
        /// An inbound complaint was resolved; steps run `days` after.
        ComplaintResolved,
        /// A date the customer shared (month and day); steps run `days` after
        /// the date (0: on the date), every year.
        SharedDate,
    }

    /// One call a journey makes.
    #[serde(deny_unknown_fields)]
    pub struct JourneyStep {
        /// Days after the trigger (before it, for `membership_end`).
        pub days: u32,
        /// Why the business calls, shown to the agent, e.g. "Check-in after delivery".
        pub purpose: String,
        /// What the agent says: a service script, not a sales pitch.
        pub script: String,
    }

    /// What to do with a customer whose account is frozen or disputed.
    #[serde(tag = "action", rename_all = "snake_case")]
    pub enum RestrictedAccounts {
        /// Do not call (recorded with the rule `account_frozen` or `account_disputed`).
        Skip,
        /// Call through this category's queue instead (a special team).
        Route { category_id: i64 },
    }

    #[serde(deny_unknown_fields)]
    pub struct JourneySpec {
        pub name: String,
        pub trigger: JourneyTrigger,
        /// The category (and so the queue) the calls are routed through.
        pub category_id: i64,
        #[serde(default = "restricted_default")]
        pub restricted_accounts: RestrictedAccounts,
        /// 1 to 10 steps.
        pub steps: Vec<JourneyStep>,
        #[serde(default = "yes")]
        pub active: bool,
    }

    /// A journey at its current version. Calls already scheduled keep the
    /// version (purpose and script) they were scheduled with.
    pub struct Journey {
        pub id: i64,
        pub version: i64,
        #[serde(flatten)]
        pub spec: JourneySpec,
    }

    /// The one contact policy, across every journey, team and agent.
    #[serde(deny_unknown_fields)]
    pub struct ContactPolicy {
        /// At most this many outbound contacts per customer per window.
        pub max_contacts: u32,
        pub window_days: u32,
        /// Calls of one customer due within this many hours of each other
        /// become one call with every purpose.
        pub merge_window_hours: u32,
        /// Calling hours in the customer's own time zone, "HH:MM".
        pub call_from: String,
        pub call_until: String,
        /// Allowed weekdays, 1 = Monday … 7 = Sunday.
        pub weekdays: Vec<u8>,
        /// IANA zone for customers without a (valid) one.
        pub default_timezone: String,
        /// Waits before retrying an unanswered call, one per retry.
        pub retry_backoff_minutes: Vec<u32>,
        /// Attempts per call, the first included.
        pub max_attempts: u32,
        /// Outbound calls rank this much behind inbound tickets filed at the
        /// same moment (inbound outranks outbound).
        pub outbound_rank_offset_seconds: u32,
        /// How often a call held back by an open complaint is looked at again.
        pub open_complaint_recheck_minutes: u32,
    }

    /// A membership or renewal with its end date.
    #[serde(deny_unknown_fields)]
    pub struct MembershipCreate {
        /// Its id in the shop or CRM (idempotency: a repeat returns the stored one).
        pub external_id: String,
        pub product: String,
        /// Unix milliseconds.
        pub ends_at_ms: i64,
    }

    pub struct Membership {
        pub id: i64,
        pub customer_id: i64,
        pub external_id: String,
        pub product: String,
        pub ends_at_ms: i64,
    }

    /// A date the customer chose to share.
    #[serde(deny_unknown_fields)]
    pub struct SharedDateCreate {
        pub external_id: String,
        /// e.g. "birthday".
        pub label: String,
        pub month: u8,
        pub day: u8,
    }

    pub struct SharedDate {
        pub id: i64,
        pub customer_id: i64,
        pub external_id: String,
        pub label: String,
        pub month: u8,
        pub day: u8,
    }

    #[serde(rename_all = "snake_case")]
    pub enum AccountStatus {
        Active,
        Frozen,
        Disputed,
    }

    /// Change consent, do-not-call or the account status. `source` says where
    /// the change came from (e.g. `phone`, `web_form`, `crm`).
    #[serde(deny_unknown_fields)]
    pub struct ContactProfileUpdate {
        pub consent_calls: Option<bool>,
        pub do_not_call: Option<bool>,
        pub account_status: Option<AccountStatus>,
        /// Set to true once the customer's phone number has been corrected.
        pub phone_valid: Option<bool>,
        pub source: String,
    }

    pub struct ConsentChange {
        pub at_ms: i64,
        pub source: String,
        pub actor_user_id: Option<i64>,
        pub consent_calls: bool,
        pub do_not_call: bool,
    }

    pub struct ContactProfile {
        pub customer_id: i64,
        pub consent_calls: bool,
        pub do_not_call: bool,
        pub account_status: AccountStatus,
        /// The last call reached a wrong number; no calls until corrected.
        pub phone_invalid: bool,
        pub erased: bool,
        pub consent_history: Vec<ConsentChange>,
    }

    #[serde(rename_all = "snake_case")]
    pub enum CallStatus {
        /// Waiting for its due time.
        Scheduled,
        /// Due: an outbound ticket was filed.
        Fired,
        /// Stopped by a rule of the contact policy (see `stopped_by`).
        Skipped,
        /// Joined another call of the same customer (see `merged_into`).
        Merged,
        /// The agent recorded its outcome.
        Done,
    }

    /// What came of an outbound call.
    #[serde(rename_all = "snake_case")]
    pub enum CallResult {
        Reached,
        /// Retried with backoff, up to the policy's attempts.
        NoAnswer,
        WrongNumber,
        /// The customer declined; `reason_code` says why (reported).
        Refused,
        /// The customer asked to be called at `callback_at_ms`.
        CallbackRequested,
    }

    /// The agent's record of an outbound call; ends its ticket.
    #[serde(deny_unknown_fields)]
    pub struct CallOutcome {
        pub result: CallResult,
        /// Required for `refused`, e.g. `too_expensive`, `switched_provider`.
        pub reason_code: Option<String>,
        /// Required for `callback_requested`: Unix milliseconds.
        pub callback_at_ms: Option<i64>,
        #[serde(default)]
        pub note: String,
        /// Only with `reached`, on a call that follows a complaint: what the
        /// customer said about it ("no" reopens it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub confirmation: Option<crate::outcomes::ResolutionConfirmation>,
    }

    /// One reason for a call, with the script for it.
    pub struct CallPurpose {
        pub journey_id: Option<i64>,
        pub journey_version: Option<i64>,
        pub purpose: String,
        pub script: String,
    }

    /// One decision of the contact policy on a call.
    pub struct PolicyDecision {
        pub at_ms: i64,
        /// `scheduled` (when planned) or `due` (when it fell due).
        pub phase: String,
        /// `fire`, `defer`, `skip`, `merge`, `route`, `retry`, `callback`, `stop`.
        pub action: String,
        /// The rule that decided, e.g. `quiet_hours`, `frequency_cap`.
        pub rule: Option<String>,
        pub until_ms: Option<i64>,
        pub detail: String,
    }

    pub struct OutboundCall {
        pub id: i64,
        pub customer_id: i64,
        /// The first call of this call's retries and callbacks.
        pub chain_id: i64,
        pub attempt: u32,
        pub status: CallStatus,
        pub due_at_ms: i64,
        pub purposes: Vec<CallPurpose>,
        /// The rule that last deferred or skipped it, and until when.
        pub stopped_by: Option<String>,
        pub stopped_until_ms: Option<i64>,
        pub merged_into: Option<i64>,
        pub ticket_id: Option<i64>,
        pub fired_at_ms: Option<i64>,
        pub outcome: Option<CallResult>,
        pub reason_code: Option<String>,
        pub decisions: Vec<PolicyDecision>,
    }

    /// What an agent is shown with an outbound call's offer.
    pub struct OutboundBrief {
        pub call_id: i64,
        pub attempt: u32,
        pub purposes: Vec<CallPurpose>,
    }

    /// What a scheduler pass did.
    pub struct SchedulerRun {
        pub fired: u32,
        pub deferred: u32,
        pub skipped: u32,
        pub merged: u32,
    }

    /// One invalid CSV row: its line in the file, the column, the reason.
    pub struct ImportRowError {
        pub line: u64,
        pub field: Option<String>,
        pub message: String,
    }

    /// The valid rows were imported in one transaction; the invalid ones are
    /// listed and nothing of them was stored.
    pub struct ImportReport {
        pub kind: String,
        pub rows: u32,
        pub imported: u32,
        pub errors: Vec<ImportRowError>,
    }

    pub struct ReasonCount {
        pub journey_id: Option<i64>,
        pub result: CallResult,
        pub reason_code: String,
        pub count: u64,
    }

    /// Refusal reasons (and other call results) between two times, for analysis.
    pub struct OutcomeReport {
        pub from_ms: i64,
        pub to_ms: i64,
        pub reasons: Vec<ReasonCount>,
    }

    /// Everything stored about one customer (data rights: export).
    pub struct CustomerExport {
        pub exported_at_ms: i64,
        pub customer: Customer,
        pub contact: ContactProfile,
        pub memberships: Vec<Membership>,
        pub shared_dates: Vec<SharedDate>,
        pub tickets: Vec<TicketHistory>,
        pub outbound_calls: Vec<OutboundCall>,
        /// Compensation asked for or granted (the ledger's entries follow them).
        pub compensation_requests: Vec<crate::compensation::CompensationRequest>,
    }
}

fn restricted_default() -> RestrictedAccounts {
    RestrictedAccounts::Skip
}

fn yes() -> bool {
    true
}

impl Default for ContactPolicy {
    fn default() -> Self {
        ContactPolicy {
            max_contacts: 1,
            window_days: 7,
            merge_window_hours: 72,
            call_from: "09:00".into(),
            call_until: "20:00".into(),
            weekdays: vec![1, 2, 3, 4, 5, 6],
            default_timezone: "UTC".into(),
            retry_backoff_minutes: vec![120, 1440],
            max_attempts: 3,
            outbound_rank_offset_seconds: 86_400,
            open_complaint_recheck_minutes: 60,
        }
    }
}

impl CallStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            CallStatus::Scheduled => "scheduled",
            CallStatus::Fired => "fired",
            CallStatus::Skipped => "skipped",
            CallStatus::Merged => "merged",
            CallStatus::Done => "done",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "scheduled" => CallStatus::Scheduled,
            "fired" => CallStatus::Fired,
            "skipped" => CallStatus::Skipped,
            "merged" => CallStatus::Merged,
            "done" => CallStatus::Done,
            _ => return None,
        })
    }
}

impl CallResult {
    pub fn as_str(&self) -> &'static str {
        match self {
            CallResult::Reached => "reached",
            CallResult::NoAnswer => "no_answer",
            CallResult::WrongNumber => "wrong_number",
            CallResult::Refused => "refused",
            CallResult::CallbackRequested => "callback_requested",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "reached" => CallResult::Reached,
            "no_answer" => CallResult::NoAnswer,
            "wrong_number" => CallResult::WrongNumber,
            "refused" => CallResult::Refused,
            "callback_requested" => CallResult::CallbackRequested,
            _ => return None,
        })
    }
}

impl AccountStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Frozen => "frozen",
            AccountStatus::Disputed => "disputed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => AccountStatus::Active,
            "frozen" => AccountStatus::Frozen,
            "disputed" => AccountStatus::Disputed,
            _ => return None,
        })
    }
}

impl JourneyTrigger {
    pub fn as_str(&self) -> &'static str {
        match self {
            JourneyTrigger::Purchase => "purchase",
            JourneyTrigger::MembershipEnd => "membership_end",
            JourneyTrigger::ComplaintResolved => "complaint_resolved",
            JourneyTrigger::SharedDate => "shared_date",
        }
    }
}
