//! Grant requests, approvals, automatic expiry and reversals.
//!
//! Every decision runs in one transaction that first locks what it reads and
//! charges — the requester's budget counters and the customer's 90-day
//! spend (`ledger::lock_budgets`) — then reads them, decides under the
//! current policy version, stores the request with its rule and inputs,
//! charges the budget counters (checked by the table) and, last before its
//! commit, appends to the ledger and the outbox under the ledger head's row
//! lock. Parallel requests that share a requester or a customer, on any
//! number of nodes, are therefore decided one after another against fresh
//! numbers; others are decided side by side and only their appends wait for
//! each other (two statements and a commit each).
//!
//! Approvals take the same locks and charge the same counters (the requester's
//! day and month): a supervisor's approval may take the requester past their
//! budget, and the decision then says so (`approval_over_requester_budget`,
//! with the excess in its inputs). A reversal gives back to those counters
//! what the grant charged them, and the customer's 90-day cap stops counting
//! the grant; both are stored with the decision.

use super::ledger::{append, lock_budgets};
use super::policy::{self, CUSTOMER_WINDOW_MS, Situation};
use super::store::{
    NewRequest, budget_scopes, charge, customer_spent_since, insert_request, refund, request_in,
    spent,
};
use crate::auth::AuthUser;
use crate::desk::Desk;
use crate::error::{ApiError, ApiResult};
use crate::store::StoreError;
use callcenter_proto::Role;
use callcenter_proto::compensation::{
    Allowance, ApprovalDecision, CompensationRequest, CompensationStatus, DecisionOutcome,
    GrantRequest, LedgerEntry, LedgerEntryKind, PolicyVersion,
};
use callcenter_proto::http::{Customer, Ticket};
use callcenter_proto::ws::ServerEvent;
use sqlx::Row;

pub const MAX_NOTE: usize = 2000;

fn validate_request(req: &GrantRequest) -> ApiResult<()> {
    let mut errors = Vec::new();
    let mut push = |field: &str, message: &str| {
        errors.push(callcenter_proto::http::FieldError {
            field: field.into(),
            message: message.into(),
        })
    };
    let code = req.reason_code.trim();
    if code.is_empty() || code.len() > 64 {
        push("reason_code", "must be 1 to 64 characters");
    }
    if req.note.chars().count() > MAX_NOTE {
        push("note", "must be at most 2000 characters");
    }
    if req.quantity <= 0 {
        push("quantity", "must be positive");
    }
    if req.order_amount_minor.is_some_and(|o| o <= 0) {
        push("order_amount_minor", "must be positive");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn unfit(u: policy::Unfit) -> ApiError {
    ApiError::Validation(vec![u.field_error()])
}

impl Desk {
    /// The ticket a user may compensate on, with its customer's card (one
    /// read): agents their own assigned tickets, supervisors any ticket.
    async fn compensable_ticket(
        &self,
        actor: &AuthUser,
        ticket_id: i64,
    ) -> ApiResult<(Ticket, Customer)> {
        if !matches!(actor.role, Role::Agent | Role::Supervisor) {
            return Err(ApiError::Forbidden(
                "only agents and supervisors request compensation",
            ));
        }
        let (ticket, customer) = self.db.ticket_card(ticket_id).await?;
        if actor.role == Role::Agent && ticket.assigned_agent_id != Some(actor.user_id) {
            return Err(ApiError::Forbidden("this ticket is not assigned to you"));
        }
        Ok((ticket, customer))
    }

    async fn policy_in_force(&self) -> ApiResult<PolicyVersion> {
        self.db.current_policy().await?.ok_or_else(|| {
            ApiError::Conflict("no compensation policy has been published yet".into())
        })
    }

    /// What the caller may grant on this ticket's customer right now.
    pub async fn compensation_allowance(
        &self,
        actor: &AuthUser,
        ticket_id: i64,
    ) -> ApiResult<Allowance> {
        let (ticket, customer) = self.compensable_ticket(actor, ticket_id).await?;
        let policy = self.policy_in_force().await?;
        let now = self.clock.now_ms();
        let (day, month) = budget_scopes(actor.user_id, now);
        let mut tx = crate::store::begin(self.db.pool())
            .await
            .map_err(StoreError::from)?;
        let situation = Situation {
            role: Some(actor.role),
            category_id: ticket.category_id,
            customer_value_minor: customer.value_minor,
            cost_minor: 0,
            spent_day_minor: spent(&mut tx, &day).await?,
            spent_month_minor: spent(&mut tx, &month).await?,
            customer_spent_90d_minor: customer_spent_since(
                &mut tx,
                customer.id,
                now - CUSTOMER_WINDOW_MS,
            )
            .await?,
        };
        drop(tx);
        let room = policy::headroom(&policy.document, &situation);
        Ok(Allowance {
            policy_version: policy.version,
            ticket_id,
            customer_id: customer.id,
            customer_value_minor: customer.value_minor,
            category_forbidden: policy
                .document
                .forbidden_category_ids
                .contains(&ticket.category_id),
            per_grant_limit_minor: room.per_grant_limit_minor,
            budget_day_remaining_minor: room.budget_day_remaining_minor,
            budget_month_remaining_minor: room.budget_month_remaining_minor,
            customer_cap_remaining_minor: room.customer_cap_remaining_minor,
            may_grant_now_minor: room.may_grant_now_minor,
            bonus_kinds: policy.document.bonus_kinds.clone(),
            reason_codes: policy.document.reason_codes.clone(),
            note_required: policy.document.note_required,
        })
    }

    /// Ask for a grant (idempotent by key). Returns the decided request and
    /// whether it was created now.
    pub async fn request_compensation(
        &self,
        actor: &AuthUser,
        req: &GrantRequest,
        idempotency_key: &str,
        request_hash: &str,
    ) -> ApiResult<(CompensationRequest, bool)> {
        validate_request(req)?;
        let scope = format!("compensation:{}", actor.user_id);
        if let Some(done) = self
            .replay_compensation(&scope, idempotency_key, request_hash)
            .await?
        {
            return Ok((done, false));
        }
        let (ticket, customer) = self.compensable_ticket(actor, req.ticket_id).await?;
        let policy = self.policy_in_force().await?;
        let doc = &policy.document;
        let cost =
            policy::cost(doc, req.kind, req.quantity, req.order_amount_minor).map_err(unfit)?;
        policy::check_reason(doc, req.reason_code.trim(), &req.note).map_err(unfit)?;
        let now = self.clock.now_ms();
        let (day, month) = budget_scopes(actor.user_id, now);

        let dialect = self.db.dialect();
        // Waits for its locks (below): see `Db::begin_waiting_work`.
        let (_place, mut tx) = self.db.begin_waiting_work().await?;
        lock_budgets(&mut tx, dialect, actor.user_id, customer.id).await?;
        // A concurrent retry with the same key may have committed meanwhile.
        if let Some(id) = claimed_key(&mut tx, &scope, idempotency_key, request_hash).await? {
            drop(tx);
            return Ok((self.db.compensation_request(id).await?, false));
        }
        let situation = Situation {
            role: Some(actor.role),
            category_id: ticket.category_id,
            customer_value_minor: customer.value_minor,
            cost_minor: cost,
            spent_day_minor: spent(&mut tx, &day).await?,
            spent_month_minor: spent(&mut tx, &month).await?,
            customer_spent_90d_minor: customer_spent_since(
                &mut tx,
                customer.id,
                now - CUSTOMER_WINDOW_MS,
            )
            .await?,
        };
        let verdict = policy::evaluate(doc, &situation);
        let (status, expires) = match verdict.outcome {
            DecisionOutcome::Grant => (CompensationStatus::Granted, None),
            DecisionOutcome::NeedsApproval => (
                CompensationStatus::Pending,
                Some(now + doc.approval_timeout_minutes * 60_000),
            ),
            DecisionOutcome::Refuse => (CompensationStatus::Refused, None),
        };
        let request = insert_request(
            &mut tx,
            &NewRequest {
                ticket_id: ticket.id,
                customer_id: customer.id,
                requested_by: actor.user_id,
                kind: req.kind,
                quantity: req.quantity,
                order_amount_minor: req.order_amount_minor,
                cost_minor: cost,
                reason_code: req.reason_code.trim(),
                note: req.note.trim(),
                status,
                policy_version: policy.version,
                rule: &verdict.rule,
                inputs: &verdict.inputs,
                created_at_ms: now,
                expires_at_ms: expires,
                charged_to: (status == CompensationStatus::Granted)
                    .then_some((day.as_str(), month.as_str())),
            },
        )
        .await?;
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&scope)
        .bind(idempotency_key)
        .bind(request_hash)
        .bind(request.id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        ticket_event(
            &mut tx,
            &request,
            "compensation_requested",
            actor.user_id,
            now,
        )
        .await?;
        if status == CompensationStatus::Granted {
            charge(&mut tx, &day, cost, verdict.inputs.budget_day_minor).await?;
            charge(&mut tx, &month, cost, verdict.inputs.budget_month_minor).await?;
            append(&mut tx, dialect, ledger_entry(&request, None, now)).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        if status == CompensationStatus::Pending {
            let event = ServerEvent::CompensationPending {
                request: Box::new(request.clone()),
            };
            self.tell_approvers(&request, event).await;
        }
        Ok((request, true))
    }

    async fn replay_compensation(
        &self,
        scope: &str,
        key: &str,
        hash: &str,
    ) -> ApiResult<Option<CompensationRequest>> {
        let mut tx = crate::store::begin(self.db.pool())
            .await
            .map_err(StoreError::from)?;
        let id = claimed_key(&mut tx, scope, key, hash).await?;
        drop(tx);
        match id {
            Some(id) => Ok(Some(self.db.compensation_request(id).await?)),
            None => Ok(None),
        }
    }

    /// Who decides a user's requests: the supervisors of their teams (not the
    /// requester); when no supervisor is assigned to those teams, every supervisor.
    async fn approvers_of(&self, requester: i64) -> ApiResult<Option<Vec<i64>>> {
        let teams = self.db.teams_of(requester).await?;
        let ids: Vec<i64> = self
            .db
            .supervisors_of_teams(&teams)
            .await?
            .into_iter()
            .filter(|id| *id != requester)
            .collect();
        Ok((!ids.is_empty()).then_some(ids))
    }

    async fn tell_approvers(&self, request: &CompensationRequest, event: ServerEvent) {
        let approvers = match self.approvers_of(request.requested_by).await {
            Ok(Some(ids)) => Ok(ids),
            Ok(None) => self.db.all_supervisors().await.map_err(ApiError::from),
            Err(e) => Err(e),
        };
        match approvers {
            Ok(ids) => {
                for user_id in ids.into_iter().filter(|id| *id != request.requested_by) {
                    self.tell(user_id, event.clone()).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not find the approvers of a request"),
        }
    }

    async fn announce_decision(&self, request: &CompensationRequest) {
        let event = ServerEvent::CompensationDecided {
            request: Box::new(request.clone()),
        };
        self.tell(request.requested_by, event.clone()).await;
        self.tell_approvers(request, event).await;
    }

    /// May this user decide this request?
    async fn check_approver(
        &self,
        actor: &AuthUser,
        request: &CompensationRequest,
    ) -> ApiResult<()> {
        actor.require(&[Role::Supervisor, Role::Admin])?;
        if actor.user_id == request.requested_by {
            return Err(ApiError::Forbidden("you cannot decide your own request"));
        }
        if actor.role == Role::Admin {
            return Ok(());
        }
        match self.approvers_of(request.requested_by).await? {
            Some(ids) if !ids.contains(&actor.user_id) => Err(ApiError::Forbidden(
                "you do not supervise a team of the requester",
            )),
            _ => Ok(()),
        }
    }

    /// Whether this user may decide this request (for their approvals list).
    pub async fn may_decide(
        &self,
        actor: &AuthUser,
        request: &CompensationRequest,
    ) -> ApiResult<bool> {
        match self.check_approver(actor, request).await {
            Ok(()) => Ok(true),
            Err(ApiError::Forbidden(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Approve or deny a pending request. An approval must be within the
    /// approver's own authority under the version in force now.
    pub async fn decide_compensation(
        &self,
        actor: &AuthUser,
        request_id: i64,
        decision: &ApprovalDecision,
    ) -> ApiResult<CompensationRequest> {
        if decision.note.chars().count() > MAX_NOTE {
            return Err(ApiError::field("note", "must be at most 2000 characters"));
        }
        let request = self.db.compensation_request(request_id).await?;
        self.check_approver(actor, &request).await?;
        let now = self.clock.now_ms();
        let note = decision.note.trim();
        // Read before the transaction: SQLite has one connection, held by it.
        let approving = if decision.approve {
            let policy = self.policy_in_force().await?;
            let (ticket, customer) = self.db.ticket_card(request.ticket_id).await?;
            Some((policy, ticket.category_id, customer.value_minor))
        } else {
            None
        };
        let dialect = self.db.dialect();
        // Waits for its locks (below): see `Db::begin_waiting_work`.
        let (_place, mut tx) = self.db.begin_waiting_work().await?;
        // The requester and the customer never change: read before the lock.
        lock_budgets(&mut tx, dialect, request.requested_by, request.customer_id).await?;
        let current = request_in(&mut tx, request_id).await?;
        if current.status != CompensationStatus::Pending {
            return Err(ApiError::Conflict(format!(
                "this request is already {}",
                current.status.as_str()
            )));
        }
        if current.expires_at_ms.is_some_and(|e| e <= now) {
            return Err(ApiError::Conflict(
                "this request has expired and is denied".into(),
            ));
        }
        // An approval is charged to the requester's counters of today and
        // this month, like a grant within authority, under the same lock.
        let (day, month) = budget_scopes(current.requested_by, now);
        let mut approval = None;
        if let Some((policy, category_id, value)) = approving {
            let situation = Situation {
                role: Role::parse(&current.inputs.role),
                category_id,
                customer_value_minor: value,
                cost_minor: current.cost_minor,
                spent_day_minor: spent(&mut tx, &day).await?,
                spent_month_minor: spent(&mut tx, &month).await?,
                customer_spent_90d_minor: customer_spent_since(
                    &mut tx,
                    current.customer_id,
                    now - CUSTOMER_WINDOW_MS,
                )
                .await?,
            };
            let verdict = policy::evaluate_approval(&policy.document, actor.role, &situation);
            if verdict.outcome != DecisionOutcome::Grant {
                return Err(ApiError::Conflict(format!(
                    "policy version {} does not let you approve this ({}); deny it or ask someone with more authority",
                    policy.version, verdict.rule
                )));
            }
            approval = Some((policy.version, verdict, situation));
        }
        let status = if approval.is_some() {
            CompensationStatus::Approved
        } else {
            CompensationStatus::Denied
        };
        let inputs = approval
            .as_ref()
            .map(|(_, v, _)| serde_json::to_string(&v.inputs))
            .transpose()
            .map_err(anyhow::Error::from)?;
        let charged = approval.is_some();
        let updated = sqlx::query(
            "UPDATE compensation_requests SET status = $1, decided_by = $2, decision_note = $3, \
                 decision_policy_version = $4, decision_rule = $5, decided_at_ms = $6, \
                 decision_inputs = $7, charged_day_scope = $8, charged_month_scope = $9, \
                 charged_minor = $10 \
             WHERE id = $11 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(actor.user_id)
        .bind(note)
        .bind(approval.as_ref().map(|(version, _, _)| *version))
        .bind(approval.as_ref().map(|(_, v, _)| v.rule.clone()))
        .bind(now)
        .bind(inputs)
        .bind(charged.then_some(day.as_str()))
        .bind(charged.then_some(month.as_str()))
        .bind(charged.then_some(current.cost_minor))
        .bind(request_id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if updated.rows_affected() != 1 {
            return Err(ApiError::Conflict(
                "this request was decided meanwhile".into(),
            ));
        }
        if let Some((_, verdict, situation)) = &approval {
            // Past the requester's budget the approval raises that counter's
            // cap to the new total; the table's check still holds every grant
            // within authority to the budget.
            let cost = current.cost_minor;
            let day_cap = verdict
                .inputs
                .budget_day_minor
                .max(situation.spent_day_minor.saturating_add(cost));
            let month_cap = verdict
                .inputs
                .budget_month_minor
                .max(situation.spent_month_minor.saturating_add(cost));
            charge(&mut tx, &day, cost, day_cap).await?;
            charge(&mut tx, &month, cost, month_cap).await?;
        }
        let decided = request_in(&mut tx, request_id).await?;
        ticket_event(
            &mut tx,
            &decided,
            "compensation_decided",
            actor.user_id,
            now,
        )
        .await?;
        if charged {
            append(
                &mut tx,
                dialect,
                ledger_entry(&decided, Some(actor.user_id), now),
            )
            .await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.announce_decision(&decided).await;
        Ok(decided)
    }

    /// Deny pending requests past their deadline and tell everyone involved.
    /// Runs on every node's tick; the conditional update hands each expiry
    /// to exactly one node.
    pub async fn expire_compensation(&self) {
        match self
            .db
            .expire_compensation_requests(self.clock.now_ms())
            .await
        {
            Ok(expired) => {
                for request in expired {
                    self.announce_decision(&request).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not expire compensation approvals"),
        }
    }

    /// Reverse a grant: a new ledger entry with the negative amount. The
    /// counters the grant was charged to get it back (never below zero), the
    /// customer's 90-day cap no longer counts it, and the reversal is stored
    /// with the decision.
    pub async fn reverse_compensation(
        &self,
        actor: &AuthUser,
        request_id: i64,
        note: &str,
    ) -> ApiResult<LedgerEntry> {
        actor.require(&[Role::Supervisor, Role::Admin])?;
        let note = note.trim();
        if note.is_empty() || note.chars().count() > MAX_NOTE {
            return Err(ApiError::field("note", "must be 1 to 2000 characters"));
        }
        let now = self.clock.now_ms();
        // Whose budgets and which customer: they never change, so they are
        // read before the lock; the request itself is read again under it.
        let asked = self.db.compensation_request(request_id).await?;
        let dialect = self.db.dialect();
        // Waits for its locks (below): see `Db::begin_waiting_work`.
        let (_place, mut tx) = self.db.begin_waiting_work().await?;
        lock_budgets(&mut tx, dialect, asked.requested_by, asked.customer_id).await?;
        let request = request_in(&mut tx, request_id).await?;
        if !matches!(
            request.status,
            CompensationStatus::Granted | CompensationStatus::Approved
        ) {
            return Err(ApiError::Conflict(format!(
                "only granted requests can be reversed; this one is {}",
                request.status.as_str()
            )));
        }
        if request.reversal.is_some() {
            return Err(ApiError::Conflict("this grant is already reversed".into()));
        }
        let mut entry = ledger_entry(&request, request.decided_by, now);
        entry.kind = LedgerEntryKind::Reversal;
        entry.amount_minor = -request.cost_minor;
        entry.rule = format!("reversal by user {}", actor.user_id);
        entry.note = note.to_string();
        let entry = append(&mut tx, dialect, entry).await.map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::Conflict("this grant is already reversed".into()),
            other => other.into(),
        })?;
        let (back_day, back_month) = match &request.budget_charge {
            Some(c) => (
                refund(&mut tx, &c.day_scope, c.amount_minor).await?,
                refund(&mut tx, &c.month_scope, c.amount_minor).await?,
            ),
            None => (0, 0),
        };
        let stored = sqlx::query(
            "UPDATE compensation_requests SET reversed_by = $1, reversed_at_ms = $2, \
                 reversal_note = $3, reversal_seq = $4, refunded_day_minor = $5, \
                 refunded_month_minor = $6 \
             WHERE id = $7 AND reversed_at_ms IS NULL",
        )
        .bind(actor.user_id)
        .bind(now)
        .bind(note)
        .bind(entry.seq)
        .bind(back_day)
        .bind(back_month)
        .bind(request_id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if stored.rows_affected() != 1 {
            return Err(ApiError::Conflict("this grant is already reversed".into()));
        }
        let reversed = request_in(&mut tx, request_id).await?;
        ticket_event(
            &mut tx,
            &reversed,
            "compensation_reversed",
            actor.user_id,
            now,
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(entry)
    }
}

async fn claimed_key(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    scope: &str,
    key: &str,
    hash: &str,
) -> ApiResult<Option<i64>> {
    let row = sqlx::query(
        "SELECT request_hash, resource_id FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await
    .map_err(StoreError::from)?;
    let Some(row) = row else { return Ok(None) };
    let stored: String = row.try_get("request_hash").map_err(StoreError::from)?;
    if stored != hash {
        return Err(ApiError::IdempotencyMismatch);
    }
    Ok(Some(row.try_get("resource_id").map_err(StoreError::from)?))
}

fn ledger_entry(r: &CompensationRequest, approved_by: Option<i64>, now: i64) -> LedgerEntry {
    let (version, rule) = match (r.decision_policy_version, &r.decision_rule) {
        (Some(v), Some(rule)) => (v, rule.clone()),
        _ => (r.policy_version, r.rule.clone()),
    };
    LedgerEntry {
        seq: 0,
        kind: LedgerEntryKind::Grant,
        request_id: r.id,
        ticket_id: r.ticket_id,
        customer_id: r.customer_id,
        requested_by: r.requested_by,
        approved_by,
        bonus_kind: r.kind,
        quantity: r.quantity,
        amount_minor: r.cost_minor,
        reason_code: r.reason_code.clone(),
        policy_version: version,
        rule,
        note: r.note.clone(),
        created_at_ms: now,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// A step in the ticket's history, in the decision's transaction.
async fn ticket_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    r: &CompensationRequest,
    kind: &str,
    actor: i64,
    now: i64,
) -> ApiResult<()> {
    let mut data = serde_json::json!({
        "compensation_id": r.id,
        "status": r.status.as_str(),
        "kind": r.kind.as_str(),
        "cost_minor": r.cost_minor,
        "policy_version": r.decision_policy_version.unwrap_or(r.policy_version),
    });
    if let Some(reversal) = &r.reversal {
        data["ledger_seq"] = reversal.ledger_seq.into();
        data["refunded_day_minor"] = reversal.refunded_day_minor.into();
        data["refunded_month_minor"] = reversal.refunded_month_minor.into();
    }
    sqlx::query(
        "INSERT INTO ticket_events (ticket_id, at_ms, actor_user_id, kind, data) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(r.ticket_id)
    .bind(now)
    .bind(actor)
    .bind(kind)
    .bind(data.to_string())
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from)?;
    Ok(())
}
