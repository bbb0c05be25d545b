//! Policy documents: validation on save, and the evaluation of one request
//! against one version. Pure functions (no I/O), so every limit kind is
//! table-tested below.
//!
//! Evaluation order, each step naming the rule that decided:
//! 1. the ticket's category forbids compensation → refuse (`forbidden_category`);
//! 2. the customer's rolling 90-day cap would be passed → refuse
//!    (`customer_cap_90d.max_minor` / `customer_cap_90d.max_value_bp`);
//! 3. no approver role could grant this much → refuse (`roles.<approver>.per_grant…`);
//! 4. above the requester's per-grant limit, or past their day or month
//!    budget → a supervisor decides (`roles.<role>.per_grant…`, `…budget_per_day_minor`,
//!    `…budget_per_month_minor`; `roles.<role>.missing` when the role has no authority);
//! 5. otherwise granted at once (`roles.<role>.within_authority`).
//!
//! An approval ([`evaluate_approval`]) keeps steps 1 and 2, needs the
//! approver's own per-grant limit, and is charged to the requester's budget
//! counters; past them the approval itself is the authority
//! (`roles.<approver>.approval_over_requester_budget`, the excess in the inputs).

use callcenter_proto::Role;
use callcenter_proto::compensation::{
    BonusKind, DecisionInputs, DecisionOutcome, MoneyLimit, PolicyDocument, RoleAuthority,
};
use callcenter_proto::http::FieldError;

/// Basis points in one whole.
pub const BP_WHOLE: i64 = 10_000;
/// The per-customer cap looks back this far.
pub const CUSTOMER_WINDOW_MS: i64 = 90 * 24 * 3600 * 1000;

/// Why a request cannot be evaluated under a policy (bad input for it).
#[derive(Clone, Debug, PartialEq)]
pub struct Unfit {
    pub rule: String,
    pub field: &'static str,
    pub message: String,
}

impl Unfit {
    pub fn field_error(&self) -> FieldError {
        FieldError {
            field: self.field.into(),
            message: self.message.clone(),
        }
    }
}

/// The facts a decision is taken on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Situation {
    pub role: Option<Role>,
    pub category_id: i64,
    pub customer_value_minor: i64,
    pub cost_minor: i64,
    pub spent_day_minor: i64,
    pub spent_month_minor: i64,
    pub customer_spent_90d_minor: i64,
}

/// A decision and everything it was based on.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub outcome: DecisionOutcome,
    pub rule: String,
    pub inputs: DecisionInputs,
}

fn role_name(role: Option<Role>) -> &'static str {
    role.map(Role::as_str).unwrap_or("none")
}

/// `value × bp / 10 000`, rounded down, without overflow.
pub fn fraction(value_minor: i64, bp: i64) -> i64 {
    ((value_minor.max(0) as i128 * bp as i128) / BP_WHOLE as i128).min(i64::MAX as i128) as i64
}

/// The smaller of a limit's parts and the name of the part that binds;
/// None when the limit sets neither.
pub fn resolve(limit: &MoneyLimit, customer_value_minor: i64) -> Option<(i64, &'static str)> {
    let absolute = limit.max_minor.map(|m| (m, "max_minor"));
    let relative = limit
        .max_value_bp
        .map(|bp| (fraction(customer_value_minor, bp), "max_value_bp"));
    match (absolute, relative) {
        (Some(a), Some(r)) => Some(if r.0 < a.0 { r } else { a }),
        (a, r) => a.or(r),
    }
}

pub fn authority(policy: &PolicyDocument, role: Role) -> Option<&RoleAuthority> {
    policy.roles.iter().find(|r| r.role == role)
}

/// What a grant costs the business, in minor units, or why it does not fit
/// the policy (kind not offered, quantity too large, discount without order).
pub fn cost(
    policy: &PolicyDocument,
    kind: BonusKind,
    quantity: i64,
    order_amount_minor: Option<i64>,
) -> Result<i64, Unfit> {
    let unfit = |rule: String, field, message: String| Unfit {
        rule,
        field,
        message,
    };
    let Some(rule) = policy.bonus_kinds.iter().find(|k| k.kind == kind) else {
        return Err(unfit(
            format!("bonus_kinds.{}", kind.as_str()),
            "kind",
            format!("the policy does not offer {}", kind.as_str()),
        ));
    };
    if quantity <= 0 || quantity > rule.max_quantity {
        return Err(unfit(
            format!("bonus_kinds.{}.max_quantity", kind.as_str()),
            "quantity",
            format!("must be 1 to {}", rule.max_quantity),
        ));
    }
    let cost = match kind {
        BonusKind::AccountCredit => quantity as i128,
        BonusKind::FreeDays | BonusKind::Gift => {
            quantity as i128 * rule.unit_cost_minor.unwrap_or(0) as i128
        }
        BonusKind::PercentDiscount => {
            let Some(order) = order_amount_minor.filter(|o| *o > 0) else {
                return Err(unfit(
                    "bonus_kinds.percent_discount.order_amount".into(),
                    "order_amount_minor",
                    "a percentage discount needs the order amount (positive, minor units)".into(),
                ));
            };
            // Rounded up: the business never gives more than it counts.
            (order as u128 * quantity as u128).div_ceil(BP_WHOLE as u128) as i128
        }
    };
    i64::try_from(cost).map_err(|_| {
        unfit(
            format!("bonus_kinds.{}", kind.as_str()),
            "quantity",
            "too large".into(),
        )
    })
}

/// The request's reason and note against the policy.
pub fn check_reason(policy: &PolicyDocument, reason_code: &str, note: &str) -> Result<(), Unfit> {
    if !policy.reason_codes.iter().any(|r| r == reason_code) {
        return Err(Unfit {
            rule: "reason_codes".into(),
            field: "reason_code",
            message: format!("must be one of: {}", policy.reason_codes.join(", ")),
        });
    }
    if policy.note_required && note.trim().is_empty() {
        return Err(Unfit {
            rule: "note_required".into(),
            field: "note",
            message: "the policy requires a note".into(),
        });
    }
    Ok(())
}

fn inputs(policy: &PolicyDocument, s: &Situation) -> DecisionInputs {
    let own = s.role.and_then(|r| authority(policy, r));
    DecisionInputs {
        role: role_name(s.role).into(),
        category_id: s.category_id,
        customer_value_minor: s.customer_value_minor,
        cost_minor: s.cost_minor,
        per_grant_limit_minor: own
            .and_then(|a| resolve(&a.per_grant, s.customer_value_minor).map(|l| l.0)),
        budget_day_minor: own.map(|a| a.budget_per_day_minor).unwrap_or(0),
        spent_day_minor: s.spent_day_minor,
        budget_month_minor: own.map(|a| a.budget_per_month_minor).unwrap_or(0),
        spent_month_minor: s.spent_month_minor,
        customer_cap_minor: resolve(&policy.customer_cap_90d, s.customer_value_minor).map(|l| l.0),
        customer_spent_90d_minor: s.customer_spent_90d_minor,
        requester_role: None,
        over_budget_day_minor: 0,
        over_budget_month_minor: 0,
    }
}

fn verdict(outcome: DecisionOutcome, rule: String, inputs: DecisionInputs) -> Verdict {
    Verdict {
        outcome,
        rule,
        inputs,
    }
}

/// The refusals that hold whoever asks or approves: forbidden category and
/// the customer's 90-day cap.
fn hard_limits(policy: &PolicyDocument, s: &Situation) -> Option<String> {
    if policy.forbidden_category_ids.contains(&s.category_id) {
        return Some("forbidden_category".into());
    }
    if let Some((cap, part)) = resolve(&policy.customer_cap_90d, s.customer_value_minor)
        && s.customer_spent_90d_minor.saturating_add(s.cost_minor) > cap
    {
        return Some(format!("customer_cap_90d.{part}"));
    }
    None
}

/// Roles that approve requests above their requester's authority.
pub const APPROVER_ROLES: [Role; 2] = [Role::Supervisor, Role::Admin];

/// Decide a new request by its requester's authority.
pub fn evaluate(policy: &PolicyDocument, s: &Situation) -> Verdict {
    let inputs = inputs(policy, s);
    if let Some(rule) = hard_limits(policy, s) {
        return verdict(DecisionOutcome::Refuse, rule, inputs);
    }
    let role = role_name(s.role);
    let own = s.role.and_then(|r| authority(policy, r));
    let Some(own) = own else {
        return escalate(policy, s, format!("roles.{role}.missing"), inputs);
    };
    match resolve(&own.per_grant, s.customer_value_minor) {
        None => return escalate(policy, s, format!("roles.{role}.per_grant.missing"), inputs),
        Some((limit, part)) if s.cost_minor > limit => {
            return escalate(policy, s, format!("roles.{role}.per_grant.{part}"), inputs);
        }
        Some(_) => {}
    }
    if s.spent_day_minor.saturating_add(s.cost_minor) > own.budget_per_day_minor {
        return escalate(
            policy,
            s,
            format!("roles.{role}.budget_per_day_minor"),
            inputs,
        );
    }
    if s.spent_month_minor.saturating_add(s.cost_minor) > own.budget_per_month_minor {
        return escalate(
            policy,
            s,
            format!("roles.{role}.budget_per_month_minor"),
            inputs,
        );
    }
    verdict(
        DecisionOutcome::Grant,
        format!("roles.{role}.within_authority"),
        inputs,
    )
}

/// Above the requester's authority: a supervisor decides, unless no approver
/// role could grant this much at all.
fn escalate(
    policy: &PolicyDocument,
    s: &Situation,
    rule: String,
    inputs: DecisionInputs,
) -> Verdict {
    let best = APPROVER_ROLES
        .iter()
        .filter_map(|r| authority(policy, *r))
        .filter_map(|a| resolve(&a.per_grant, s.customer_value_minor).map(|l| (a.role, l)))
        .max_by_key(|(_, (limit, _))| *limit);
    match best {
        Some((_, (limit, _))) if s.cost_minor <= limit => {
            verdict(DecisionOutcome::NeedsApproval, rule, inputs)
        }
        Some((role, (_, part))) => verdict(
            DecisionOutcome::Refuse,
            format!("roles.{}.per_grant.{part}", role.as_str()),
            inputs,
        ),
        None => verdict(
            DecisionOutcome::Refuse,
            "roles.supervisor.missing".into(),
            inputs,
        ),
    }
}

/// Decide an approval by the approver's authority: the hard limits hold, and
/// the grant must be within the approver's per-grant limit.
///
/// `s` describes the requester (`role`) and their budget counters now. An
/// approved grant is charged to those counters like a grant within authority;
/// the approval is the authority to go past the requester's day or month
/// budget (that is what a budget escalation asks for), so the verdict then
/// names `roles.<approver>.approval_over_requester_budget` and the inputs
/// record by how much. The approver's own budgets are not charged.
pub fn evaluate_approval(policy: &PolicyDocument, approver: Role, s: &Situation) -> Verdict {
    let by_approver = Situation {
        role: Some(approver),
        ..s.clone()
    };
    let mut inputs = inputs(policy, &by_approver);
    let requester = s.role.and_then(|r| authority(policy, r));
    inputs.requester_role = Some(role_name(s.role).into());
    inputs.budget_day_minor = requester.map(|a| a.budget_per_day_minor).unwrap_or(0);
    inputs.budget_month_minor = requester.map(|a| a.budget_per_month_minor).unwrap_or(0);
    let over = |spent: i64, budget: i64| {
        spent
            .saturating_add(s.cost_minor)
            .saturating_sub(budget)
            .clamp(0, s.cost_minor)
    };
    inputs.over_budget_day_minor = over(s.spent_day_minor, inputs.budget_day_minor);
    inputs.over_budget_month_minor = over(s.spent_month_minor, inputs.budget_month_minor);
    if let Some(rule) = hard_limits(policy, &by_approver) {
        return verdict(DecisionOutcome::Refuse, rule, inputs);
    }
    let role = approver.as_str();
    match authority(policy, approver).and_then(|a| resolve(&a.per_grant, s.customer_value_minor)) {
        None => verdict(
            DecisionOutcome::Refuse,
            format!("roles.{role}.missing"),
            inputs,
        ),
        Some((limit, part)) if s.cost_minor > limit => verdict(
            DecisionOutcome::Refuse,
            format!("roles.{role}.per_grant.{part}"),
            inputs,
        ),
        Some(_) if inputs.over_budget_day_minor > 0 || inputs.over_budget_month_minor > 0 => {
            verdict(
                DecisionOutcome::Grant,
                format!("roles.{role}.approval_over_requester_budget"),
                inputs,
            )
        }
        Some(_) => verdict(
            DecisionOutcome::Grant,
            format!("roles.{role}.approval_within_authority"),
            inputs,
        ),
    }
}

/// How much more the requester could grant at once right now.
pub struct Headroom {
    pub per_grant_limit_minor: i64,
    pub budget_day_remaining_minor: i64,
    pub budget_month_remaining_minor: i64,
    pub customer_cap_remaining_minor: Option<i64>,
    pub may_grant_now_minor: i64,
}

pub fn headroom(policy: &PolicyDocument, s: &Situation) -> Headroom {
    let own = s.role.and_then(|r| authority(policy, r));
    let per_grant = own
        .and_then(|a| resolve(&a.per_grant, s.customer_value_minor))
        .map(|l| l.0)
        .unwrap_or(0)
        .max(0);
    let day = own
        .map(|a| a.budget_per_day_minor - s.spent_day_minor)
        .unwrap_or(0)
        .max(0);
    let month = own
        .map(|a| a.budget_per_month_minor - s.spent_month_minor)
        .unwrap_or(0)
        .max(0);
    let cap = resolve(&policy.customer_cap_90d, s.customer_value_minor)
        .map(|(c, _)| (c - s.customer_spent_90d_minor).max(0));
    let forbidden = policy.forbidden_category_ids.contains(&s.category_id);
    let now = if forbidden {
        0
    } else {
        per_grant.min(day).min(month).min(cap.unwrap_or(i64::MAX))
    };
    Headroom {
        per_grant_limit_minor: per_grant,
        budget_day_remaining_minor: day,
        budget_month_remaining_minor: month,
        customer_cap_remaining_minor: cap,
        may_grant_now_minor: now,
    }
}

/// Validate a document before it is published or dry-run.
pub fn validate(doc: &PolicyDocument) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut fail = |field: String, message: &str| {
        errors.push(FieldError {
            field,
            message: message.into(),
        })
    };
    let currency_ok =
        doc.currency.len() == 3 && doc.currency.chars().all(|c| c.is_ascii_uppercase());
    if !currency_ok {
        fail("currency".into(), "an ISO 4217 code, e.g. EUR");
    }
    if doc.bonus_kinds.is_empty() || doc.bonus_kinds.len() > 4 {
        fail("bonus_kinds".into(), "one to four bonus kinds");
    }
    for (i, k) in doc.bonus_kinds.iter().enumerate() {
        if doc.bonus_kinds[..i].iter().any(|o| o.kind == k.kind) {
            fail(format!("bonus_kinds[{i}].kind"), "listed twice");
        }
        if k.max_quantity <= 0 || k.max_quantity > 1_000_000_000 {
            fail(
                format!("bonus_kinds[{i}].max_quantity"),
                "must be 1 to 1000000000",
            );
        }
        match k.kind {
            BonusKind::FreeDays | BonusKind::Gift => {
                if !k
                    .unit_cost_minor
                    .is_some_and(|c| c > 0 && c <= 1_000_000_000)
                {
                    fail(
                        format!("bonus_kinds[{i}].unit_cost_minor"),
                        "free days and gifts need a unit cost of 1 to 1000000000",
                    );
                }
            }
            BonusKind::AccountCredit | BonusKind::PercentDiscount => {
                if k.unit_cost_minor.is_some() {
                    fail(
                        format!("bonus_kinds[{i}].unit_cost_minor"),
                        "only free days and gifts have a unit cost",
                    );
                }
                if k.kind == BonusKind::PercentDiscount && k.max_quantity > BP_WHOLE {
                    fail(
                        format!("bonus_kinds[{i}].max_quantity"),
                        "a discount is at most 10000 basis points",
                    );
                }
            }
        }
    }
    if doc.roles.is_empty() || doc.roles.len() > 4 {
        fail("roles".into(), "one to four roles");
    }
    for (i, r) in doc.roles.iter().enumerate() {
        if doc.roles[..i].iter().any(|o| o.role == r.role) {
            fail(format!("roles[{i}].role"), "listed twice");
        }
        if r.role == Role::Integration {
            fail(
                format!("roles[{i}].role"),
                "integrations cannot grant compensation",
            );
        }
        limit_errors(
            &mut fail,
            &format!("roles[{i}].per_grant"),
            &r.per_grant,
            true,
        );
        for (field, v) in [
            ("budget_per_day_minor", r.budget_per_day_minor),
            ("budget_per_month_minor", r.budget_per_month_minor),
        ] {
            if !(0..=1_000_000_000_000).contains(&v) {
                fail(format!("roles[{i}].{field}"), "must be 0 to 1000000000000");
            }
        }
    }
    limit_errors(&mut fail, "customer_cap_90d", &doc.customer_cap_90d, false);
    if doc.reason_codes.is_empty() || doc.reason_codes.len() > 100 {
        fail("reason_codes".into(), "one to 100 reason codes");
    }
    for (i, code) in doc.reason_codes.iter().enumerate() {
        let ok = !code.is_empty()
            && code.len() <= 64
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            fail(format!("reason_codes[{i}]"), "1 to 64 of a-z, 0-9 and _");
        }
        if doc.reason_codes[..i].contains(code) {
            fail(format!("reason_codes[{i}]"), "listed twice");
        }
    }
    if doc.forbidden_category_ids.len() > 1000 {
        fail("forbidden_category_ids".into(), "at most 1000 categories");
    }
    if !(1..=7 * 24 * 60).contains(&doc.approval_timeout_minutes) {
        fail(
            "approval_timeout_minutes".into(),
            "must be 1 to 10080 (a week)",
        );
    }
    errors
}

fn limit_errors(
    fail: &mut impl FnMut(String, &str),
    field: &str,
    limit: &MoneyLimit,
    required: bool,
) {
    if required && limit.max_minor.is_none() && limit.max_value_bp.is_none() {
        fail(field.into(), "set max_minor, max_value_bp or both");
    }
    if limit
        .max_minor
        .is_some_and(|m| !(0..=1_000_000_000_000).contains(&m))
    {
        fail(format!("{field}.max_minor"), "must be 0 to 1000000000000");
    }
    if limit
        .max_value_bp
        .is_some_and(|bp| !(0..=BP_WHOLE).contains(&bp))
    {
        fail(
            format!("{field}.max_value_bp"),
            "must be 0 to 10000 basis points",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callcenter_proto::compensation::BonusKindRule;

    fn policy() -> PolicyDocument {
        PolicyDocument {
            currency: "EUR".into(),
            bonus_kinds: vec![
                BonusKindRule {
                    kind: BonusKind::AccountCredit,
                    unit_cost_minor: None,
                    max_quantity: 100_000,
                },
                BonusKindRule {
                    kind: BonusKind::FreeDays,
                    unit_cost_minor: Some(300),
                    max_quantity: 30,
                },
                BonusKindRule {
                    kind: BonusKind::Gift,
                    unit_cost_minor: Some(1_500),
                    max_quantity: 2,
                },
                BonusKindRule {
                    kind: BonusKind::PercentDiscount,
                    unit_cost_minor: None,
                    max_quantity: 2_000,
                },
            ],
            roles: vec![
                RoleAuthority {
                    role: Role::Agent,
                    per_grant: MoneyLimit {
                        max_minor: Some(2_000),
                        max_value_bp: Some(500),
                    },
                    budget_per_day_minor: 5_000,
                    budget_per_month_minor: 40_000,
                },
                RoleAuthority {
                    role: Role::Supervisor,
                    per_grant: MoneyLimit {
                        max_minor: Some(20_000),
                        max_value_bp: None,
                    },
                    budget_per_day_minor: 50_000,
                    budget_per_month_minor: 500_000,
                },
            ],
            customer_cap_90d: MoneyLimit {
                max_minor: Some(30_000),
                max_value_bp: Some(2_000),
            },
            reason_codes: vec!["late_delivery".into(), "double_charge".into()],
            note_required: true,
            forbidden_category_ids: vec![7],
            approval_timeout_minutes: 15,
        }
    }

    fn agent(cost: i64) -> Situation {
        Situation {
            role: Some(Role::Agent),
            category_id: 1,
            customer_value_minor: 120_000,
            cost_minor: cost,
            ..Situation::default()
        }
    }

    /// Kind, quantity, order amount → cost or the rule that refuses.
    type CostCase = (BonusKind, i64, Option<i64>, Result<i64, &'static str>);

    #[test]
    fn costs_of_every_bonus_kind() {
        let p = policy();
        let table: &[CostCase] = &[
            (BonusKind::AccountCredit, 1_250, None, Ok(1_250)),
            (BonusKind::FreeDays, 7, None, Ok(2_100)),
            (BonusKind::Gift, 2, None, Ok(3_000)),
            (BonusKind::PercentDiscount, 1_000, Some(12_345), Ok(1_235)),
            (BonusKind::PercentDiscount, 1, Some(1), Ok(1)),
            (
                BonusKind::PercentDiscount,
                1_000,
                None,
                Err("bonus_kinds.percent_discount.order_amount"),
            ),
            (
                BonusKind::FreeDays,
                31,
                None,
                Err("bonus_kinds.free_days.max_quantity"),
            ),
            (
                BonusKind::Gift,
                0,
                None,
                Err("bonus_kinds.gift.max_quantity"),
            ),
            (
                BonusKind::AccountCredit,
                -5,
                None,
                Err("bonus_kinds.account_credit.max_quantity"),
            ),
        ];
        for (kind, quantity, order, expected) in table {
            let got = cost(&p, *kind, *quantity, *order).map_err(|u| u.rule);
            assert_eq!(
                got,
                expected.map_err(String::from),
                "{kind:?} × {quantity} on {order:?}"
            );
        }
        let mut credit_only = policy();
        credit_only.bonus_kinds.truncate(1);
        assert_eq!(
            cost(&credit_only, BonusKind::Gift, 1, None)
                .unwrap_err()
                .rule,
            "bonus_kinds.gift"
        );
    }

    #[test]
    fn reasons_and_notes() {
        let p = policy();
        assert!(check_reason(&p, "late_delivery", "parcel came a week late").is_ok());
        assert_eq!(
            check_reason(&p, "because", "x").unwrap_err().rule,
            "reason_codes"
        );
        assert_eq!(
            check_reason(&p, "late_delivery", "  ").unwrap_err().rule,
            "note_required"
        );
        let mut optional = policy();
        optional.note_required = false;
        assert!(check_reason(&optional, "late_delivery", "").is_ok());
    }

    #[test]
    fn every_limit_kind_decides_with_its_rule() {
        use DecisionOutcome::*;
        let p = policy();
        // Customer value 120 000: agent per grant = min(2 000, 5 % = 6 000) = 2 000;
        // customer cap = min(30 000, 20 % = 24 000) = 24 000.
        let table: &[(&str, Situation, DecisionOutcome, &str)] = &[
            (
                "small credit",
                agent(1_500),
                Grant,
                "roles.agent.within_authority",
            ),
            (
                "exactly the per-grant limit",
                agent(2_000),
                Grant,
                "roles.agent.within_authority",
            ),
            (
                "above the absolute per-grant limit",
                agent(2_001),
                NeedsApproval,
                "roles.agent.per_grant.max_minor",
            ),
            (
                "value fraction binds for a small customer",
                Situation {
                    customer_value_minor: 10_000,
                    ..agent(600)
                },
                NeedsApproval,
                "roles.agent.per_grant.max_value_bp",
            ),
            (
                "within the value fraction of a small customer",
                Situation {
                    customer_value_minor: 10_000,
                    ..agent(500)
                },
                Grant,
                "roles.agent.within_authority",
            ),
            (
                "day budget used up",
                Situation {
                    spent_day_minor: 4_000,
                    ..agent(1_001)
                },
                NeedsApproval,
                "roles.agent.budget_per_day_minor",
            ),
            (
                "day budget exactly met",
                Situation {
                    spent_day_minor: 4_000,
                    ..agent(1_000)
                },
                Grant,
                "roles.agent.within_authority",
            ),
            (
                "month budget used up",
                Situation {
                    spent_month_minor: 39_500,
                    ..agent(501)
                },
                NeedsApproval,
                "roles.agent.budget_per_month_minor",
            ),
            (
                "90-day cap by value fraction",
                Situation {
                    customer_spent_90d_minor: 23_000,
                    ..agent(1_001)
                },
                Refuse,
                "customer_cap_90d.max_value_bp",
            ),
            (
                "90-day cap by absolute amount for a big customer",
                Situation {
                    customer_value_minor: 1_000_000,
                    customer_spent_90d_minor: 29_500,
                    ..agent(501)
                },
                Refuse,
                "customer_cap_90d.max_minor",
            ),
            (
                "90-day cap exactly met",
                Situation {
                    customer_spent_90d_minor: 22_000,
                    ..agent(2_000)
                },
                Grant,
                "roles.agent.within_authority",
            ),
            (
                "forbidden category",
                Situation {
                    category_id: 7,
                    ..agent(1)
                },
                Refuse,
                "forbidden_category",
            ),
            (
                "above every approver",
                Situation {
                    customer_value_minor: 1_000_000,
                    ..agent(20_001)
                },
                Refuse,
                "roles.supervisor.per_grant.max_minor",
            ),
            (
                "a role without authority asks a supervisor",
                Situation {
                    role: Some(Role::Admin),
                    ..agent(100)
                },
                NeedsApproval,
                "roles.admin.missing",
            ),
            (
                "supervisor past their own day budget",
                Situation {
                    role: Some(Role::Supervisor),
                    spent_day_minor: 49_000,
                    ..agent(2_000)
                },
                NeedsApproval,
                "roles.supervisor.budget_per_day_minor",
            ),
        ];
        for (name, situation, outcome, rule) in table {
            let v = evaluate(&p, situation);
            assert_eq!((v.outcome, v.rule.as_str()), (*outcome, *rule), "{name}");
            assert_eq!(v.inputs.cost_minor, situation.cost_minor, "{name}");
        }
    }

    #[test]
    fn decisions_record_their_inputs() {
        let v = evaluate(
            &policy(),
            &Situation {
                spent_day_minor: 100,
                spent_month_minor: 900,
                customer_spent_90d_minor: 50,
                ..agent(700)
            },
        );
        assert_eq!(
            v.inputs,
            DecisionInputs {
                role: "agent".into(),
                category_id: 1,
                customer_value_minor: 120_000,
                cost_minor: 700,
                per_grant_limit_minor: Some(2_000),
                budget_day_minor: 5_000,
                spent_day_minor: 100,
                budget_month_minor: 40_000,
                spent_month_minor: 900,
                customer_cap_minor: Some(24_000),
                customer_spent_90d_minor: 50,
                requester_role: None,
                over_budget_day_minor: 0,
                over_budget_month_minor: 0,
            }
        );
    }

    #[test]
    fn approvals_use_the_approvers_authority_and_the_hard_limits() {
        use DecisionOutcome::*;
        let p = policy();
        let table: &[(Role, Situation, DecisionOutcome, &str)] = &[
            (
                Role::Supervisor,
                agent(4_000),
                Grant,
                "roles.supervisor.approval_within_authority",
            ),
            (
                Role::Supervisor,
                Situation {
                    customer_value_minor: 1_000_000,
                    ..agent(20_001)
                },
                Refuse,
                "roles.supervisor.per_grant.max_minor",
            ),
            (Role::Admin, agent(100), Refuse, "roles.admin.missing"),
            (
                Role::Supervisor,
                Situation {
                    customer_spent_90d_minor: 20_000,
                    ..agent(5_000)
                },
                Refuse,
                "customer_cap_90d.max_value_bp",
            ),
            (
                Role::Supervisor,
                Situation {
                    category_id: 7,
                    ..agent(10)
                },
                Refuse,
                "forbidden_category",
            ),
            // Above the requester's per-grant limit, within their budgets.
            (
                Role::Supervisor,
                Situation {
                    spent_day_minor: 1_000,
                    ..agent(3_000)
                },
                Grant,
                "roles.supervisor.approval_within_authority",
            ),
            // The approval is the authority to go past the requester's budget.
            (
                Role::Supervisor,
                Situation {
                    spent_day_minor: 4_000,
                    ..agent(1_500)
                },
                Grant,
                "roles.supervisor.approval_over_requester_budget",
            ),
            (
                Role::Supervisor,
                Situation {
                    spent_month_minor: 39_900,
                    ..agent(200)
                },
                Grant,
                "roles.supervisor.approval_over_requester_budget",
            ),
            // …but never past the customer's cap.
            (
                Role::Supervisor,
                Situation {
                    spent_day_minor: 4_000,
                    customer_spent_90d_minor: 23_000,
                    ..agent(1_500)
                },
                Refuse,
                "customer_cap_90d.max_value_bp",
            ),
        ];
        for (approver, s, outcome, rule) in table {
            let v = evaluate_approval(&p, *approver, s);
            assert_eq!(
                (v.outcome, v.rule.as_str()),
                (*outcome, *rule),
                "{approver:?} {s:?}"
            );
        }
    }

    #[test]
    fn approvals_record_the_requesters_budgets_and_the_excess() {
        let p = policy();
        let v = evaluate_approval(
            &p,
            Role::Supervisor,
            &Situation {
                spent_day_minor: 4_000,
                spent_month_minor: 39_000,
                ..agent(3_000)
            },
        );
        assert_eq!(v.rule, "roles.supervisor.approval_over_requester_budget");
        let i = v.inputs;
        // The approver's authority…
        assert_eq!(i.role, "supervisor");
        assert_eq!(i.per_grant_limit_minor, Some(20_000));
        // …and the requester's counters it is charged to.
        assert_eq!(i.requester_role.as_deref(), Some("agent"));
        assert_eq!((i.budget_day_minor, i.spent_day_minor), (5_000, 4_000));
        assert_eq!(
            (i.budget_month_minor, i.spent_month_minor),
            (40_000, 39_000)
        );
        assert_eq!(i.over_budget_day_minor, 2_000);
        assert_eq!(i.over_budget_month_minor, 2_000);
        // Already past the budget: the whole grant is over it, never more.
        let v = evaluate_approval(
            &p,
            Role::Supervisor,
            &Situation {
                spent_day_minor: 9_000,
                ..agent(2_500)
            },
        );
        assert_eq!(v.inputs.over_budget_day_minor, 2_500);
        assert_eq!(v.inputs.over_budget_month_minor, 0);
        // A requester whose role has no authority: everything is over budget.
        let v = evaluate_approval(
            &p,
            Role::Supervisor,
            &Situation {
                role: Some(Role::Admin),
                ..agent(100)
            },
        );
        assert_eq!(v.inputs.requester_role.as_deref(), Some("admin"));
        assert_eq!(v.inputs.over_budget_day_minor, 100);
        assert_eq!(v.rule, "roles.supervisor.approval_over_requester_budget");
    }

    #[test]
    fn headroom_is_the_tightest_limit() {
        let p = policy();
        let h = headroom(
            &p,
            &Situation {
                spent_day_minor: 4_200,
                ..agent(0)
            },
        );
        assert_eq!(h.per_grant_limit_minor, 2_000);
        assert_eq!(h.budget_day_remaining_minor, 800);
        assert_eq!(h.budget_month_remaining_minor, 40_000);
        assert_eq!(h.customer_cap_remaining_minor, Some(24_000));
        assert_eq!(h.may_grant_now_minor, 800);
        let h = headroom(
            &p,
            &Situation {
                customer_spent_90d_minor: 23_900,
                ..agent(0)
            },
        );
        assert_eq!(h.may_grant_now_minor, 100);
        let h = headroom(
            &p,
            &Situation {
                category_id: 7,
                ..agent(0)
            },
        );
        assert_eq!(h.may_grant_now_minor, 0);
        let mut uncapped = policy();
        uncapped.customer_cap_90d = MoneyLimit::default();
        assert_eq!(
            headroom(&uncapped, &agent(0)).customer_cap_remaining_minor,
            None
        );
    }

    #[test]
    fn fractions_are_exact_integers() {
        assert_eq!(fraction(120_000, 500), 6_000);
        assert_eq!(fraction(99, 5_000), 49);
        assert_eq!(fraction(i64::MAX, 10_000), i64::MAX);
        assert_eq!(fraction(-5, 100), 0);
    }

    #[test]
    fn validation_names_every_bad_field() {
        assert!(validate(&policy()).is_empty());
        let mut bad = policy();
        bad.currency = "euro".into();
        bad.bonus_kinds[1].unit_cost_minor = None;
        bad.bonus_kinds[3].max_quantity = 20_000;
        bad.roles[0].per_grant = MoneyLimit::default();
        bad.roles[1].budget_per_day_minor = -1;
        bad.customer_cap_90d.max_value_bp = Some(10_001);
        bad.reason_codes.push("Late Delivery".into());
        bad.reason_codes.push("late_delivery".into());
        bad.approval_timeout_minutes = 0;
        let fields: Vec<String> = validate(&bad).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "currency",
                "bonus_kinds[1].unit_cost_minor",
                "bonus_kinds[3].max_quantity",
                "roles[0].per_grant",
                "roles[1].budget_per_day_minor",
                "customer_cap_90d.max_value_bp",
                "reason_codes[2]",
                "reason_codes[3]",
                "approval_timeout_minutes",
            ]
        );
    }
}
