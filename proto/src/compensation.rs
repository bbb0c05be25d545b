//! Compensation authority: what front-line staff may grant a customer, under
//! which published policy version, and the ledger of every grant.
//!
//! Money is in minor currency units (`i64`); fractions are basis points
//! (1 bp = 0.01 %, 10 000 bp = 100 %), never floats.

use crate::Role;
use serde::{Deserialize, Serialize};

/// What a grant gives the customer.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BonusKind {
    /// A credit on the customer's account; `quantity` is the amount in minor units.
    AccountCredit,
    /// Free days of a subscription; `quantity` is the number of days.
    FreeDays,
    /// A gift; `quantity` is the number of items.
    Gift,
    /// A discount on an order; `quantity` is the discount in basis points,
    /// applied to the request's `order_amount_minor`.
    PercentDiscount,
}

impl BonusKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BonusKind::AccountCredit => "account_credit",
            BonusKind::FreeDays => "free_days",
            BonusKind::Gift => "gift",
            BonusKind::PercentDiscount => "percent_discount",
        }
    }

    pub fn parse(s: &str) -> Option<BonusKind> {
        Some(match s {
            "account_credit" => BonusKind::AccountCredit,
            "free_days" => BonusKind::FreeDays,
            "gift" => BonusKind::Gift,
            "percent_discount" => BonusKind::PercentDiscount,
            _ => return None,
        })
    }
}

/// One bonus kind the policy allows, and what one unit of it costs.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct BonusKindRule {
    pub kind: BonusKind,
    /// Cost of one day (free days) or one item (gift) in minor units.
    /// Required for those kinds; absent for credits and discounts.
    #[serde(default)]
    pub unit_cost_minor: Option<i64>,
    /// Largest `quantity` one grant may carry.
    pub max_quantity: i64,
}

/// A limit in money: an absolute amount, a fraction of the customer's
/// yearly value, or both (the smaller one applies).
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct MoneyLimit {
    #[serde(default)]
    pub max_minor: Option<i64>,
    /// Basis points of the customer's yearly value (`value_minor`).
    #[serde(default)]
    pub max_value_bp: Option<i64>,
}

/// What one role may grant on its own authority.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct RoleAuthority {
    pub role: Role,
    /// Largest single grant.
    pub per_grant: MoneyLimit,
    /// What one person of this role may grant per UTC day, in minor units.
    pub budget_per_day_minor: i64,
    /// What one person of this role may grant per UTC calendar month.
    pub budget_per_month_minor: i64,
}

/// An administrator-edited compensation policy. Published versions are immutable.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct PolicyDocument {
    /// ISO 4217 code of every amount in the document.
    pub currency: String,
    pub bonus_kinds: Vec<BonusKindRule>,
    /// Authority per role. Agents and supervisors request grants; supervisors
    /// (and admins) approve requests above the requester's authority, within
    /// their own role's per-grant limit.
    pub roles: Vec<RoleAuthority>,
    /// What one customer may receive over any rolling 90 days, whoever grants it.
    pub customer_cap_90d: MoneyLimit,
    /// Every grant names one of these reasons.
    pub reason_codes: Vec<String>,
    /// Whether every grant needs a note.
    #[serde(default)]
    pub note_required: bool,
    /// Ticket categories where no compensation may be granted.
    #[serde(default)]
    pub forbidden_category_ids: Vec<i64>,
    /// A pending approval not decided within this many minutes is denied.
    pub approval_timeout_minutes: i64,
}

/// A published policy version.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct PolicyVersion {
    pub version: i64,
    pub document: PolicyDocument,
    pub published_by: i64,
    pub published_at_ms: i64,
}

/// A stored, editable draft of a compensation policy. Every save is
/// validated; publishing it creates a new immutable version and freezes the
/// draft.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyDraft {
    pub id: i64,
    pub name: String,
    pub document: PolicyDocument,
    /// The version this draft started from, if any.
    pub based_on_version: Option<i64>,
    /// Bumped by every edit; edits and publishing name the revision they saw.
    pub revision: i64,
    pub created_by: i64,
    pub created_at_ms: i64,
    pub updated_by: i64,
    pub updated_at_ms: i64,
    /// Set once published: the version it became (the draft is then frozen).
    pub published_version: Option<i64>,
    pub published_by: Option<i64>,
    pub published_at_ms: Option<i64>,
}

/// Create a draft (`POST /api/admin/compensation/drafts`, with an `Idempotency-Key`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewPolicyDraft {
    /// 1 to 100 characters.
    pub name: String,
    pub document: PolicyDocument,
    #[serde(default)]
    pub based_on_version: Option<i64>,
}

/// Save an edited draft: refused (409) when `revision` is not the draft's
/// current one (someone saved meanwhile) or the draft is published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyDraftEdit {
    pub revision: i64,
    /// 1 to 100 characters; unchanged when absent.
    #[serde(default)]
    pub name: Option<String>,
    pub document: PolicyDocument,
}

/// Publish a draft as the next version (with an `Idempotency-Key`); refused
/// (409) when the draft changed since `revision` or is already published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublishDraft {
    pub revision: i64,
}

/// Dry-run a stored draft against the last `last` requests (1 to 1000).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DraftDryRun {
    pub last: u32,
}

/// Evaluate a draft against the last `last` decided requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DryRunRequest {
    pub document: PolicyDocument,
    /// How many of the most recent requests to replay (1 to 1000).
    pub last: u32,
}

/// A request whose decision would differ under the draft.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DryRunChange {
    pub request_id: i64,
    pub cost_minor: i64,
    pub was_status: CompensationStatus,
    pub was_rule: String,
    pub would_be: DecisionOutcome,
    pub would_rule: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DryRunReport {
    pub evaluated: u32,
    pub unchanged: u32,
    pub changes: Vec<DryRunChange>,
}

/// What a policy says about one request.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// Within the requester's authority.
    Grant,
    /// Above the requester's authority: a supervisor decides.
    NeedsApproval,
    /// Not allowed by the policy at all.
    Refuse,
}

/// An agent's (or supervisor's) request for a grant on a ticket.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct GrantRequest {
    pub ticket_id: i64,
    pub kind: BonusKind,
    /// Minor units (credit), days, items, or basis points (discount).
    pub quantity: i64,
    /// The order a percentage discount applies to, in minor units.
    #[serde(default)]
    pub order_amount_minor: Option<i64>,
    pub reason_code: String,
    #[serde(default)]
    pub note: String,
}

/// Where a request stands.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CompensationStatus {
    /// Granted at once, within the requester's authority.
    Granted,
    /// Waiting for a supervisor.
    Pending,
    /// Granted by a supervisor.
    Approved,
    /// Refused by a supervisor.
    Denied,
    /// Not decided in time: denied automatically.
    Expired,
    /// Not allowed by the policy.
    Refused,
}

impl CompensationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CompensationStatus::Granted => "granted",
            CompensationStatus::Pending => "pending",
            CompensationStatus::Approved => "approved",
            CompensationStatus::Denied => "denied",
            CompensationStatus::Expired => "expired",
            CompensationStatus::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<CompensationStatus> {
        Some(match s {
            "granted" => CompensationStatus::Granted,
            "pending" => CompensationStatus::Pending,
            "approved" => CompensationStatus::Approved,
            "denied" => CompensationStatus::Denied,
            "expired" => CompensationStatus::Expired,
            "refused" => CompensationStatus::Refused,
            _ => return None,
        })
    }
}

/// Everything a decision was based on, stored with it.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct DecisionInputs {
    pub role: String,
    pub category_id: i64,
    pub customer_value_minor: i64,
    pub cost_minor: i64,
    /// The role's per-grant limit for this customer (None: the role has no authority).
    pub per_grant_limit_minor: Option<i64>,
    pub budget_day_minor: i64,
    pub spent_day_minor: i64,
    pub budget_month_minor: i64,
    pub spent_month_minor: i64,
    /// The customer's 90-day cap (None: no cap).
    pub customer_cap_minor: Option<i64>,
    pub customer_spent_90d_minor: i64,
    /// Approvals only: the requester's role. In an approval's inputs `role`
    /// and `per_grant_limit_minor` are the approver's, while the budget and
    /// spent fields are the requester's counters the grant is charged to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_role: Option<String>,
    /// Approvals only: how far this grant takes the requester past their day
    /// budget, on the approver's authority (0: within it).
    #[serde(default)]
    pub over_budget_day_minor: i64,
    /// Approvals only: the same for the month budget.
    #[serde(default)]
    pub over_budget_month_minor: i64,
}

/// The requester's budget counters a grant was charged to.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct BudgetCharge {
    /// `user:<id>:day:<days since 1970-01-01 UTC>`.
    pub day_scope: String,
    /// `user:<id>:month:<YYYY-MM>` (UTC).
    pub month_scope: String,
    pub amount_minor: i64,
}

/// A reversal of a grant, stored with its decision.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct ReversalRecord {
    /// None for reversals made before refunds were recorded.
    pub reversed_by: Option<i64>,
    pub reversed_at_ms: i64,
    pub note: String,
    /// The reversal's ledger entry.
    pub ledger_seq: i64,
    /// Given back to the requester's day and month counters (never more than
    /// they held, so they never go below zero).
    pub refunded_day_minor: i64,
    pub refunded_month_minor: i64,
}

/// A grant request and its decision.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct CompensationRequest {
    pub id: i64,
    pub ticket_id: i64,
    pub customer_id: i64,
    pub requested_by: i64,
    pub kind: BonusKind,
    pub quantity: i64,
    pub order_amount_minor: Option<i64>,
    /// What the grant costs the business, in minor units.
    pub cost_minor: i64,
    pub reason_code: String,
    pub note: String,
    pub status: CompensationStatus,
    /// The policy version and rule of the request-time decision.
    pub policy_version: i64,
    pub rule: String,
    pub inputs: DecisionInputs,
    /// The supervisor who approved or denied.
    pub decided_by: Option<i64>,
    pub decision_note: Option<String>,
    /// For approvals: the version and rule under which the approver's authority held.
    pub decision_policy_version: Option<i64>,
    pub decision_rule: Option<String>,
    /// For approvals: what the approval was decided on.
    #[serde(default)]
    pub decision_inputs: Option<DecisionInputs>,
    pub created_at_ms: i64,
    pub decided_at_ms: Option<i64>,
    /// Pending requests are denied automatically at this time.
    pub expires_at_ms: Option<i64>,
    /// Granted and approved requests: the requester's budget counters charged.
    #[serde(default)]
    pub budget_charge: Option<BudgetCharge>,
    /// Set once the grant has been reversed.
    #[serde(default)]
    pub reversal: Option<ReversalRecord>,
}

/// A supervisor's decision on a pending request.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct ApprovalDecision {
    pub approve: bool,
    #[serde(default)]
    pub note: String,
}

/// What the caller may grant on a ticket's customer right now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Allowance {
    pub policy_version: i64,
    pub ticket_id: i64,
    pub customer_id: i64,
    pub customer_value_minor: i64,
    /// The ticket's category forbids compensation.
    pub category_forbidden: bool,
    pub per_grant_limit_minor: i64,
    pub budget_day_remaining_minor: i64,
    pub budget_month_remaining_minor: i64,
    /// None: the policy sets no customer cap.
    pub customer_cap_remaining_minor: Option<i64>,
    /// The largest grant that would be granted at once.
    pub may_grant_now_minor: i64,
    pub bonus_kinds: Vec<BonusKindRule>,
    pub reason_codes: Vec<String>,
    pub note_required: bool,
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LedgerEntryKind {
    Grant,
    Reversal,
}

/// One entry of the append-only ledger.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct LedgerEntry {
    pub seq: i64,
    pub kind: LedgerEntryKind,
    pub request_id: i64,
    pub ticket_id: i64,
    pub customer_id: i64,
    pub requested_by: i64,
    pub approved_by: Option<i64>,
    pub bonus_kind: BonusKind,
    pub quantity: i64,
    /// Positive for grants, negative for reversals.
    pub amount_minor: i64,
    pub reason_code: String,
    pub policy_version: i64,
    pub rule: String,
    pub note: String,
    pub created_at_ms: i64,
    /// SHA-256 (hex) of the previous entry; 64 zeros for the first.
    pub prev_hash: String,
    /// SHA-256 (hex) over `prev_hash` and this entry's canonical JSON.
    pub hash: String,
}

/// The result of recomputing the ledger's chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerVerification {
    pub ok: bool,
    pub entries_checked: i64,
    /// The first entry whose hash or link does not match.
    pub first_broken_seq: Option<i64>,
    pub detail: Option<String>,
}

/// Reverse a grant (a new ledger entry; the grant stays).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReversalRequest {
    pub note: String,
}

/// The teams whose approvals a supervisor decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SupervisorTeams {
    pub teams: Vec<String>,
}

/// The body POSTed to the configured webhook for every ledger entry, signed
/// with `X-Callcenter-Signature: sha256=<hex HMAC-SHA256 of
/// "<X-Callcenter-Timestamp>.<body>">`. Receivers deduplicate by `event_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookEvent {
    pub event_id: String,
    /// "compensation.granted" or "compensation.reversed".
    #[serde(rename = "type")]
    pub kind: String,
    pub entry: LedgerEntry,
}

/// One delivery attempt of a webhook event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookDelivery {
    pub event_id: String,
    pub ledger_seq: i64,
    pub attempt: i64,
    pub at_ms: i64,
    pub status_code: Option<i64>,
    pub ok: bool,
    pub error: Option<String>,
}

/// One line of a spend report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SpendLine {
    pub key: String,
    /// Net amount (grants minus reversals), minor units.
    pub amount_minor: i64,
    /// Number of grants (reversals not counted).
    pub grants: i64,
}

/// Spent by reason, agent, team and policy version over `[from_ms, to_ms)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SpendReport {
    pub from_ms: i64,
    pub to_ms: i64,
    pub total_minor: i64,
    pub by_reason: Vec<SpendLine>,
    /// Keyed by the requester's user id.
    pub by_agent: Vec<SpendLine>,
    /// A requester in several teams counts in each of them.
    pub by_team: Vec<SpendLine>,
    pub by_policy_version: Vec<SpendLine>,
}
