//! The compensation API: policies (admin), allowance, requests and decisions
//! (agents and supervisors), the ledger and its verification, deliveries and
//! reports.

use super::policy;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::http::csv::{Format, csv_error, report_response, text_cell};
use crate::store::IdempotencyKey;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use callcenter_proto::Role;
use callcenter_proto::compensation::{
    Allowance, ApprovalDecision, CompensationRequest, DraftDryRun, DryRunReport, DryRunRequest,
    GrantRequest, LedgerEntry, LedgerVerification, NewPolicyDraft, PolicyDocument, PolicyDraft,
    PolicyDraftEdit, PolicyVersion, PublishDraft, ReversalRequest, SpendReport, SupervisorTeams,
    WebhookDelivery,
};
use callcenter_proto::http::{FieldError, Problem};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/admin/compensation/policies",
            get(list_policies).post(publish_policy),
        )
        .route(
            "/api/admin/compensation/policies/{version}",
            get(get_policy),
        )
        .route("/api/admin/compensation/dry-run", post(dry_run))
        .route(
            "/api/admin/compensation/drafts",
            get(list_drafts).post(create_draft),
        )
        .route(
            "/api/admin/compensation/drafts/{id}",
            get(get_draft).put(save_draft),
        )
        .route(
            "/api/admin/compensation/drafts/{id}/dry-run",
            post(dry_run_draft),
        )
        .route(
            "/api/admin/compensation/drafts/{id}/publish",
            post(publish_draft),
        )
        .route("/api/admin/compensation/ledger", get(ledger))
        .route("/api/admin/compensation/ledger/verify", get(verify_ledger))
        .route("/api/admin/compensation/deliveries", get(deliveries))
        .route(
            "/api/admin/supervisors/{id}/teams",
            get(get_supervisor_teams).put(put_supervisor_teams),
        )
        .route("/api/compensation/allowance", get(allowance))
        .route("/api/compensation/requests", post(request_grant))
        .route("/api/compensation/requests/{id}", get(get_request))
        .route("/api/compensation/requests/{id}/decision", post(decide))
        .route("/api/compensation/requests/{id}/reversal", post(reverse))
        .route("/api/compensation/approvals", get(approvals))
        .route("/api/compensation/reports/spend", get(spend_report))
}

/// A query string, or a problem+json 400 naming what is wrong with it.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn admin(user: &AuthUser) -> ApiResult<()> {
    user.require(&[Role::Admin])
}

fn staff(user: &AuthUser) -> ApiResult<()> {
    user.require(&[Role::Admin, Role::Supervisor])
}

fn checked(doc: &PolicyDocument) -> ApiResult<()> {
    let errors = policy::validate(doc);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Publish a policy document directly: validated, then stored as a new
/// immutable version that is in force from now on. Earlier versions stay
/// readable. (The console publishes stored drafts instead:
/// `/api/admin/compensation/drafts/{id}/publish`.)
#[utoipa::path(post, path = "/api/admin/compensation/policies", tag = "compensation", security(("bearer" = [])),
    request_body = PolicyDocument,
    responses((status = 201, body = PolicyVersion), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn publish_policy(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(doc): ApiJson<PolicyDocument>,
) -> ApiResult<(StatusCode, ApiJson<PolicyVersion>)> {
    admin(&user)?;
    checked(&doc)?;
    let version = state
        .db
        .publish_policy(&doc, user.user_id, state.clock.now_ms())
        .await?;
    Ok((StatusCode::CREATED, ApiJson(version)))
}

/// Every published version, newest first.
#[utoipa::path(get, path = "/api/admin/compensation/policies", tag = "compensation", security(("bearer" = [])),
    responses((status = 200, body = [PolicyVersion]), (status = 403, body = Problem)))]
pub async fn list_policies(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<PolicyVersion>>> {
    staff(&user)?;
    Ok(ApiJson(state.db.policy_versions().await?))
}

#[utoipa::path(get, path = "/api/admin/compensation/policies/{version}", tag = "compensation", security(("bearer" = [])),
    params(("version" = i64, Path)),
    responses((status = 200, body = PolicyVersion), (status = 404, body = Problem)))]
pub async fn get_policy(
    State(state): State<AppState>,
    user: AuthUser,
    Path(version): Path<i64>,
) -> ApiResult<ApiJson<PolicyVersion>> {
    staff(&user)?;
    Ok(ApiJson(state.db.policy_version(version).await?))
}

fn last_in_range(last: u32) -> ApiResult<()> {
    if (1..=1000).contains(&last) {
        Ok(())
    } else {
        Err(ApiError::field("last", "must be 1 to 1000"))
    }
}

/// Evaluate a document (not stored) against the last N requests, with the
/// inputs stored with each decision, and list the requests whose decision or
/// rule would change. Stored drafts have their own dry run.
#[utoipa::path(post, path = "/api/admin/compensation/dry-run", tag = "compensation", security(("bearer" = [])),
    request_body = DryRunRequest,
    responses((status = 200, body = DryRunReport), (status = 422, body = Problem)))]
pub async fn dry_run(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<DryRunRequest>,
) -> ApiResult<ApiJson<DryRunReport>> {
    admin(&user)?;
    last_in_range(req.last)?;
    checked(&req.document)?;
    Ok(ApiJson(state.db.dry_run(&req.document, req.last).await?))
}

pub const MAX_DRAFT_NAME: usize = 100;

/// A draft's name and document, validated on every save: each bad field is
/// named (`name`, `document.<field>`).
fn checked_draft(name: Option<&str>, doc: &PolicyDocument) -> ApiResult<()> {
    let mut errors = Vec::new();
    if let Some(name) = name {
        let n = name.trim().chars().count();
        if n == 0 || n > MAX_DRAFT_NAME {
            errors.push(FieldError {
                field: "name".into(),
                message: format!("must be 1 to {MAX_DRAFT_NAME} characters"),
            });
        }
    }
    errors.extend(policy::validate(doc).into_iter().map(|e| FieldError {
        field: format!("document.{}", e.field),
        message: e.message,
    }));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Store a new policy draft (validated; nothing is in force until it is
/// published). Requires an `Idempotency-Key`; a retry answers 200 with the draft.
#[utoipa::path(post, path = "/api/admin/compensation/drafts", tag = "compensation", security(("bearer" = [])),
    request_body = NewPolicyDraft,
    params(("Idempotency-Key" = String, Header, description = "unique per draft; retries reuse it")),
    responses((status = 201, body = PolicyDraft), (status = 200, body = PolicyDraft, description = "a retry"),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_draft(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(req): ApiJson<NewPolicyDraft>,
) -> ApiResult<(StatusCode, ApiJson<PolicyDraft>)> {
    admin(&user)?;
    let key = crate::http::idempotency_key(&headers)?;
    checked_draft(Some(&req.name), &req.document)?;
    if let Some(v) = req.based_on_version {
        match state.db.policy_version(v).await {
            Ok(_) => {}
            Err(crate::store::StoreError::NotFound(_)) => {
                return Err(ApiError::field("based_on_version", "no such version"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let hash = crate::http::request_hash(&req)?;
    let scope = format!("compensation_draft:{}", user.user_id);
    let (draft, created) = state
        .db
        .create_policy_draft(
            req.name.trim(),
            &req.document,
            req.based_on_version,
            user.user_id,
            state.clock.now_ms(),
            &IdempotencyKey {
                scope: &scope,
                key,
                request_hash: &hash,
            },
        )
        .await?;
    let status = crate::http::created_or_ok(created);
    Ok((status, ApiJson(draft)))
}

/// Every draft (the latest 500), newest first; published ones name their version.
#[utoipa::path(get, path = "/api/admin/compensation/drafts", tag = "compensation", security(("bearer" = [])),
    responses((status = 200, body = [PolicyDraft]), (status = 403, body = Problem)))]
pub async fn list_drafts(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<PolicyDraft>>> {
    admin(&user)?;
    Ok(ApiJson(state.db.policy_drafts().await?))
}

#[utoipa::path(get, path = "/api/admin/compensation/drafts/{id}", tag = "compensation", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = PolicyDraft), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_draft(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<PolicyDraft>> {
    admin(&user)?;
    Ok(ApiJson(state.db.policy_draft(id).await?))
}

/// Save an edited draft: validated (422 naming each bad field, nothing
/// stored); 409 when it was saved meanwhile (`revision`) or is published.
#[utoipa::path(put, path = "/api/admin/compensation/drafts/{id}", tag = "compensation", security(("bearer" = [])),
    request_body = PolicyDraftEdit, params(("id" = i64, Path)),
    responses((status = 200, body = PolicyDraft), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn save_draft(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<PolicyDraftEdit>,
) -> ApiResult<ApiJson<PolicyDraft>> {
    admin(&user)?;
    checked_draft(req.name.as_deref(), &req.document)?;
    Ok(ApiJson(
        state
            .db
            .update_policy_draft(
                id,
                req.revision,
                req.name.as_deref().map(str::trim),
                &req.document,
                user.user_id,
                state.clock.now_ms(),
            )
            .await?,
    ))
}

/// Dry-run a stored draft against the last N requests.
#[utoipa::path(post, path = "/api/admin/compensation/drafts/{id}/dry-run", tag = "compensation", security(("bearer" = [])),
    request_body = DraftDryRun, params(("id" = i64, Path)),
    responses((status = 200, body = DryRunReport), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn dry_run_draft(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<DraftDryRun>,
) -> ApiResult<ApiJson<DryRunReport>> {
    admin(&user)?;
    last_in_range(req.last)?;
    let draft = state.db.policy_draft(id).await?;
    Ok(ApiJson(state.db.dry_run(&draft.document, req.last).await?))
}

/// Publish a draft seen at `revision` as the next immutable version, in
/// force from now on; the draft can no longer be edited. Requires an
/// `Idempotency-Key`; a retry answers 200 with the same version.
#[utoipa::path(post, path = "/api/admin/compensation/drafts/{id}/publish", tag = "compensation", security(("bearer" = [])),
    request_body = PublishDraft, params(("id" = i64, Path),
        ("Idempotency-Key" = String, Header, description = "unique per publication; retries reuse it")),
    responses((status = 201, body = PolicyVersion), (status = 200, body = PolicyVersion, description = "a retry"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn publish_draft(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<PublishDraft>,
) -> ApiResult<(StatusCode, ApiJson<PolicyVersion>)> {
    admin(&user)?;
    let key = crate::http::idempotency_key(&headers)?;
    let hash = crate::http::request_hash(&(id, &req))?;
    let scope = format!("compensation_publish:{}", user.user_id);
    let (version, created) = state
        .db
        .publish_policy_draft(
            id,
            req.revision,
            user.user_id,
            state.clock.now_ms(),
            &IdempotencyKey {
                scope: &scope,
                key,
                request_hash: &hash,
            },
        )
        .await?;
    let status = crate::http::created_or_ok(created);
    Ok((status, ApiJson(version)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct TicketParam {
    pub ticket_id: i64,
}

/// What the caller may grant on the ticket's customer right now: the
/// remaining per-grant limit, budgets and customer cap.
#[utoipa::path(get, path = "/api/compensation/allowance", tag = "compensation", security(("bearer" = [])),
    params(TicketParam),
    responses((status = 200, body = Allowance), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn allowance(
    State(state): State<AppState>,
    user: AuthUser,
    q: Result<Query<TicketParam>, QueryRejection>,
) -> ApiResult<ApiJson<Allowance>> {
    let q = query(q)?;
    Ok(ApiJson(
        state
            .desk
            .compensation_allowance(&user, q.ticket_id)
            .await?,
    ))
}

/// Ask for a grant on a ticket. Within the caller's authority it is granted
/// at once (201, status `granted`); above it a supervisor decides (status
/// `pending`); outside the policy it is refused (status `refused`). Every
/// decision names its policy version and rule. Requires an `Idempotency-Key`.
#[utoipa::path(post, path = "/api/compensation/requests", tag = "compensation", security(("bearer" = [])),
    request_body = GrantRequest,
    params(("Idempotency-Key" = String, Header, description = "unique per grant; retries reuse it")),
    responses((status = 201, body = CompensationRequest), (status = 200, body = CompensationRequest, description = "a retry"),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn request_grant(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(req): ApiJson<GrantRequest>,
) -> ApiResult<(StatusCode, ApiJson<CompensationRequest>)> {
    let key = crate::http::idempotency_key(&headers)?;
    let hash = crate::http::request_hash(&req)?;
    let (request, created) = state
        .desk
        .request_compensation(&user, &req, key, &hash)
        .await?;
    let status = crate::http::created_or_ok(created);
    Ok((status, ApiJson(request)))
}

/// A request and its decision: its requester, supervisors and admins.
#[utoipa::path(get, path = "/api/compensation/requests/{id}", tag = "compensation", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = CompensationRequest), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_request(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<CompensationRequest>> {
    let request = state.db.compensation_request(id).await?;
    if request.requested_by != user.user_id && !user.is_supervisor() {
        return Err(ApiError::Forbidden("this request is not yours"));
    }
    Ok(ApiJson(request))
}

/// Approve or deny a pending request (the same as the socket's
/// `decide_compensation`). Nobody decides their own request.
#[utoipa::path(post, path = "/api/compensation/requests/{id}/decision", tag = "compensation", security(("bearer" = [])),
    request_body = ApprovalDecision, params(("id" = i64, Path)),
    responses((status = 200, body = CompensationRequest), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn decide(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(decision): ApiJson<ApprovalDecision>,
) -> ApiResult<ApiJson<CompensationRequest>> {
    Ok(ApiJson(
        state.desk.decide_compensation(&user, id, &decision).await?,
    ))
}

/// Reverse a granted request: a new ledger entry with the negative amount.
#[utoipa::path(post, path = "/api/compensation/requests/{id}/reversal", tag = "compensation", security(("bearer" = [])),
    request_body = ReversalRequest, params(("id" = i64, Path)),
    responses((status = 201, body = LedgerEntry), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn reverse(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<ReversalRequest>,
) -> ApiResult<(StatusCode, ApiJson<LedgerEntry>)> {
    let entry = state
        .desk
        .reverse_compensation(&user, id, &req.note)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(entry)))
}

/// Pending requests the caller may decide (a board after a reconnect).
#[utoipa::path(get, path = "/api/compensation/approvals", tag = "compensation", security(("bearer" = [])),
    responses((status = 200, body = [CompensationRequest]), (status = 403, body = Problem)))]
pub async fn approvals(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<CompensationRequest>>> {
    staff(&user)?;
    let mut mine = Vec::new();
    for r in state.db.pending_compensation_requests().await? {
        if state.desk.may_decide(&user, &r).await? {
            mine.push(r);
        }
    }
    Ok(ApiJson(mine))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LedgerParams {
    pub customer_id: Option<i64>,
    /// Entries after this sequence number (0: from the start).
    #[serde(default)]
    pub after_seq: i64,
    /// 1 to 500 (default 100).
    pub limit: Option<i64>,
}

/// Ledger entries, oldest first.
#[utoipa::path(get, path = "/api/admin/compensation/ledger", tag = "compensation", security(("bearer" = [])),
    params(LedgerParams),
    responses((status = 200, body = [LedgerEntry]), (status = 403, body = Problem)))]
pub async fn ledger(
    State(state): State<AppState>,
    user: AuthUser,
    q: Result<Query<LedgerParams>, QueryRejection>,
) -> ApiResult<ApiJson<Vec<LedgerEntry>>> {
    staff(&user)?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 500"));
    }
    Ok(ApiJson(
        state
            .db
            .ledger_entries(q.customer_id, q.after_seq, limit)
            .await?,
    ))
}

/// Recompute the ledger's hash chain and name the first broken entry.
#[utoipa::path(get, path = "/api/admin/compensation/ledger/verify", tag = "compensation", security(("bearer" = [])),
    responses((status = 200, body = LedgerVerification), (status = 403, body = Problem)))]
pub async fn verify_ledger(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<LedgerVerification>> {
    admin(&user)?;
    Ok(ApiJson(state.db.verify_ledger().await?))
}

/// The webhook delivery log, newest first (the last 500 attempts).
#[utoipa::path(get, path = "/api/admin/compensation/deliveries", tag = "compensation", security(("bearer" = [])),
    responses((status = 200, body = [WebhookDelivery]), (status = 403, body = Problem)))]
pub async fn deliveries(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<WebhookDelivery>>> {
    admin(&user)?;
    Ok(ApiJson(state.db.webhook_deliveries(500).await?))
}

#[utoipa::path(get, path = "/api/admin/supervisors/{id}/teams", tag = "compensation", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = SupervisorTeams), (status = 403, body = Problem)))]
pub async fn get_supervisor_teams(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<SupervisorTeams>> {
    staff(&user)?;
    Ok(ApiJson(SupervisorTeams {
        teams: state.db.supervisor_teams(id).await?,
    }))
}

/// Set the teams whose compensation approvals a supervisor decides.
#[utoipa::path(put, path = "/api/admin/supervisors/{id}/teams", tag = "compensation", security(("bearer" = [])),
    request_body = SupervisorTeams, params(("id" = i64, Path)),
    responses((status = 200, body = SupervisorTeams), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn put_supervisor_teams(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(mut req): ApiJson<SupervisorTeams>,
) -> ApiResult<ApiJson<SupervisorTeams>> {
    admin(&user)?;
    let mut check = crate::http::Check::new();
    check.that(req.teams.len() <= 50, "teams", "at most 50 teams");
    for (i, t) in req.teams.iter().enumerate() {
        check.text(&format!("teams[{i}]"), t, 64);
    }
    check.done()?;
    req.teams.iter_mut().for_each(|t| *t = t.trim().to_string());
    req.teams.sort();
    req.teams.dedup();
    state.db.set_supervisor_teams(id, &req.teams).await?;
    Ok(ApiJson(req))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SpendParams {
    /// Unix milliseconds, inclusive.
    pub from_ms: i64,
    /// Unix milliseconds, exclusive.
    pub to_ms: i64,
    /// `json` (default) or `csv`; `Accept: text/csv` also gives CSV.
    pub format: Option<Format>,
}

/// Net compensation spent by reason, agent, team and policy version.
#[utoipa::path(get, path = "/api/compensation/reports/spend", tag = "compensation", security(("bearer" = [])),
    params(SpendParams),
    responses(
        (status = 200, description = "The report (JSON, or CSV with one line per reason, agent, team and policy version, then the total)",
            content((SpendReport = "application/json"), (String = "text/csv"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn spend_report(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    q: Result<Query<SpendParams>, QueryRejection>,
) -> ApiResult<Response> {
    staff(&user)?;
    let q = query(q)?;
    if q.to_ms <= q.from_ms {
        return Err(ApiError::field("to_ms", "must be after from_ms"));
    }
    report_response(
        q.format,
        &headers,
        state.db.spend_report(q.from_ms, q.to_ms).await?,
        |_| format!("compensation-spend-{}-{}.csv", q.from_ms, q.to_ms),
        spend_csv,
    )
}

/// `dimension,key,amount_minor,grants`: a line per reason, agent (user
/// id), team and policy version, then `total`.
fn spend_csv(report: &SpendReport) -> ApiResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["dimension", "key", "amount_minor", "grants"])
        .map_err(csv_error)?;
    let dimensions = [
        ("reason", &report.by_reason),
        ("agent", &report.by_agent),
        ("team", &report.by_team),
        ("policy_version", &report.by_policy_version),
    ];
    for (dimension, lines) in dimensions {
        for line in lines {
            w.write_record([
                dimension.to_string(),
                text_cell(&line.key),
                line.amount_minor.to_string(),
                line.grants.to_string(),
            ])
            .map_err(csv_error)?;
        }
    }
    let grants: i64 = report.by_reason.iter().map(|l| l.grants).sum();
    w.write_record([
        "total".to_string(),
        String::new(),
        report.total_minor.to_string(),
        grants.to_string(),
    ])
    .map_err(csv_error)?;
    w.into_inner().map_err(csv_error)
}
