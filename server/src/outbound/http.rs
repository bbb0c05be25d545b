//! HTTP routes of outbound service calls: journeys and the contact policy
//! (admins), intake of memberships, shared dates and consent (the shop, CRM
//! or an agent), CSV import, the calls and their decisions (supervisors),
//! call outcomes (agents), and data rights (admins).

use super::import::{ImportKind, MAX_CSV_BYTES};
use super::journeys::{self, Trigger};
use super::policy::{CallingHours, parse_hhmm};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::http::Check;
use crate::http::csv::{Format, csv_error, report_response, text_cell};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post, put};
use callcenter_proto::Role;
use callcenter_proto::http::{Problem, Ticket};
use callcenter_proto::outbound::{
    CallOutcome, ContactPolicy, ContactProfile, ContactProfileUpdate, CustomerExport, ImportReport,
    Journey, JourneySpec, Membership, MembershipCreate, OutboundCall, OutcomeReport, SchedulerRun,
    SharedDate, SharedDateCreate,
};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/admin/journeys",
            get(list_journeys).post(create_journey),
        )
        .route("/api/admin/journeys/{id}", put(update_journey))
        .route(
            "/api/admin/contact-policy",
            get(get_contact_policy).put(put_contact_policy),
        )
        .route("/api/admin/outbound/run", post(run_scheduler))
        .route("/api/customers/{id}/memberships", post(add_membership))
        .route("/api/customers/{id}/dates", post(add_shared_date))
        .route(
            "/api/customers/{id}/contact",
            get(get_contact).put(put_contact),
        )
        .route("/api/customers/{id}/export", get(export_customer))
        .route("/api/customers/{id}/erase", post(erase_customer))
        .route(
            "/api/import/{kind}",
            post(import_csv).layer(DefaultBodyLimit::max(MAX_CSV_BYTES)),
        )
        .route("/api/outbound/calls", get(list_calls))
        .route("/api/outbound/tickets/{id}/outcome", post(call_outcome))
        .route("/api/outbound/reports/outcomes", get(outcome_report))
}

const INTAKE: &[Role] = &[Role::Integration, Role::Admin];
const WATCHERS: &[Role] = &[Role::Supervisor, Role::Admin];

/// A query string that does not parse, as problem+json.
fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::field("query", rejection.body_text())
}

fn created(new: bool) -> StatusCode {
    if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

#[utoipa::path(get, path = "/api/admin/journeys", tag = "outbound", security(("bearer" = [])),
    responses((status = 200, body = [Journey])))]
pub async fn list_journeys(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<Journey>>> {
    user.require(WATCHERS)?;
    Ok(ApiJson(state.db.journeys(None).await?))
}

/// Define a journey: a trigger and steps, each planning one outbound call.
#[utoipa::path(post, path = "/api/admin/journeys", tag = "outbound", security(("bearer" = [])),
    request_body = JourneySpec,
    responses((status = 201, body = Journey), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_journey(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(spec): ApiJson<JourneySpec>,
) -> ApiResult<(StatusCode, ApiJson<Journey>)> {
    user.require(&[Role::Admin])?;
    journeys::validate(&spec)?;
    state.desk.check_journey_categories(&spec).await?;
    let journey = state
        .db
        .create_journey(&spec, user.user_id, state.clock.now_ms())
        .await?;
    Ok((StatusCode::CREATED, ApiJson(journey)))
}

/// A new version of a journey. Calls already planned keep their version.
#[utoipa::path(put, path = "/api/admin/journeys/{id}", tag = "outbound", security(("bearer" = [])),
    request_body = JourneySpec, params(("id" = i64, Path)),
    responses((status = 200, body = Journey), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_journey(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(spec): ApiJson<JourneySpec>,
) -> ApiResult<ApiJson<Journey>> {
    user.require(&[Role::Admin])?;
    journeys::validate(&spec)?;
    state.desk.check_journey_categories(&spec).await?;
    Ok(ApiJson(
        state
            .db
            .update_journey(id, &spec, user.user_id, state.clock.now_ms())
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/admin/contact-policy", tag = "outbound", security(("bearer" = [])),
    responses((status = 200, body = ContactPolicy)))]
pub async fn get_contact_policy(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<ContactPolicy>> {
    user.require(WATCHERS)?;
    Ok(ApiJson(state.db.contact_policy().await?))
}

fn validate_policy(p: &ContactPolicy) -> ApiResult<()> {
    let mut check = Check::new();
    check.that(
        (1..=100).contains(&p.max_contacts),
        "max_contacts",
        "1 to 100",
    );
    check.that(
        (1..=365).contains(&p.window_days),
        "window_days",
        "1 to 365",
    );
    check.that(
        p.merge_window_hours <= 24 * 30,
        "merge_window_hours",
        "at most 720",
    );
    check.that(
        parse_hhmm(&p.call_from).is_some(),
        "call_from",
        "must be HH:MM",
    );
    check.that(
        parse_hhmm(&p.call_until).is_some(),
        "call_until",
        "must be HH:MM",
    );
    check.that(
        !p.weekdays.is_empty()
            && p.weekdays.len() <= 7
            && p.weekdays.iter().all(|d| (1..=7).contains(d)),
        "weekdays",
        "1 to 7 days, each 1 (Monday) to 7 (Sunday)",
    );
    check.that(
        CallingHours::of(p).is_some() || parse_hhmm(&p.call_from).is_none(),
        "call_until",
        "must be after call_from",
    );
    check.that(
        p.default_timezone.len() <= 64 && p.default_timezone.parse::<chrono_tz::Tz>().is_ok(),
        "default_timezone",
        "must be an IANA time zone",
    );
    check.that(
        p.retry_backoff_minutes.len() <= 10
            && p.retry_backoff_minutes
                .iter()
                .all(|m| (1..=10_080).contains(m)),
        "retry_backoff_minutes",
        "at most 10 waits, each 1 to 10080 minutes",
    );
    check.that(
        (1..=10).contains(&p.max_attempts),
        "max_attempts",
        "1 to 10",
    );
    check.that(
        p.outbound_rank_offset_seconds <= 30 * 86_400,
        "outbound_rank_offset_seconds",
        "at most 30 days",
    );
    check.that(
        (1..=10_080).contains(&p.open_complaint_recheck_minutes),
        "open_complaint_recheck_minutes",
        "1 to 10080",
    );
    check.done()
}

/// Replace the one contact policy (caps, calling hours, retries). It applies
/// to every call judged from now on, planned or due.
#[utoipa::path(put, path = "/api/admin/contact-policy", tag = "outbound", security(("bearer" = [])),
    request_body = ContactPolicy,
    responses((status = 200, body = ContactPolicy), (status = 422, body = Problem)))]
pub async fn put_contact_policy(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(policy): ApiJson<ContactPolicy>,
) -> ApiResult<ApiJson<ContactPolicy>> {
    user.require(&[Role::Admin])?;
    validate_policy(&policy)?;
    state
        .db
        .set_contact_policy(&policy, state.clock.now_ms())
        .await?;
    Ok(ApiJson(policy))
}

/// Run a scheduler pass now on this node (every node also runs one on its
/// background tick): overdue calls of the record are indexed again, then
/// due calls are decided. Each call still fires once.
#[utoipa::path(post, path = "/api/admin/outbound/run", tag = "outbound", security(("bearer" = [])),
    responses((status = 200, body = SchedulerRun)))]
pub async fn run_scheduler(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<SchedulerRun>> {
    user.require(&[Role::Admin])?;
    state.desk.rebuild_due_index(false).await?;
    let mut total = state.desk.run_due_calls().await;
    loop {
        let more = state.desk.run_due_calls().await;
        if more.fired + more.deferred + more.skipped == 0 {
            break;
        }
        total.fired += more.fired;
        total.deferred += more.deferred;
        total.skipped += more.skipped;
        total.merged += more.merged;
    }
    Ok(ApiJson(total))
}

/// Record a membership or renewal with its end date, idempotent by
/// `external_id`; plans the `membership_end` journeys' calls.
#[utoipa::path(post, path = "/api/customers/{id}/memberships", tag = "outbound", security(("bearer" = [])),
    request_body = MembershipCreate, params(("id" = i64, Path)),
    responses((status = 201, body = Membership), (status = 200, body = Membership), (status = 409, body = Problem)))]
pub async fn add_membership(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<MembershipCreate>,
) -> ApiResult<(StatusCode, ApiJson<Membership>)> {
    user.require(INTAKE)?;
    let mut check = Check::new();
    check.text("external_id", &req.external_id, 128);
    check.text("product", &req.product, 200);
    check.that(
        req.ends_at_ms > 0,
        "ends_at_ms",
        "must be Unix milliseconds",
    );
    check.done()?;
    state.db.customer(id).await?;
    let (m, new) = state
        .db
        .add_membership(
            id,
            req.external_id.trim(),
            req.product.trim(),
            req.ends_at_ms,
            state.clock.now_ms(),
        )
        .await?;
    // Planning is idempotent: a retry also completes one that failed before.
    state
        .desk
        .journeys_on(Trigger::MembershipEnd {
            customer_id: id,
            membership_id: m.id,
            ends_at_ms: m.ends_at_ms,
        })
        .await?;
    Ok((created(new), ApiJson(m)))
}

/// Record a date the customer chose to share, idempotent by `external_id`;
/// plans the `shared_date` journeys' greetings.
#[utoipa::path(post, path = "/api/customers/{id}/dates", tag = "outbound", security(("bearer" = [])),
    request_body = SharedDateCreate, params(("id" = i64, Path)),
    responses((status = 201, body = SharedDate), (status = 200, body = SharedDate), (status = 409, body = Problem)))]
pub async fn add_shared_date(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<SharedDateCreate>,
) -> ApiResult<(StatusCode, ApiJson<SharedDate>)> {
    user.require(&[Role::Integration, Role::Admin, Role::Agent])?;
    let mut check = Check::new();
    check.text("external_id", &req.external_id, 128);
    check.text("label", &req.label, 64);
    check.that(
        super::import::valid_month_day(req.month, req.day),
        "day",
        "month and day must name a day that exists",
    );
    check.done()?;
    state.db.customer(id).await?;
    let (d, new) = state
        .db
        .add_shared_date(
            id,
            req.external_id.trim(),
            req.label.trim(),
            req.month,
            req.day,
            state.clock.now_ms(),
        )
        .await?;
    // Planning is idempotent: a retry also completes one that failed before.
    state
        .desk
        .journeys_on(Trigger::SharedDate {
            customer_id: id,
            date_id: d.id,
            month: d.month,
            day: d.day,
            year: None,
        })
        .await?;
    Ok((created(new), ApiJson(d)))
}

#[utoipa::path(get, path = "/api/customers/{id}/contact", tag = "outbound", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = ContactProfile), (status = 404, body = Problem)))]
pub async fn get_contact(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<ContactProfile>> {
    user.require(&[
        Role::Integration,
        Role::Admin,
        Role::Supervisor,
        Role::Agent,
    ])?;
    state.db.customer(id).await?;
    Ok(ApiJson(state.db.contact_profile(id).await?))
}

/// Change consent to calls, do-not-call (recorded with time and source),
/// the account status (shop or CRM, admins) or mark the phone corrected.
#[utoipa::path(put, path = "/api/customers/{id}/contact", tag = "outbound", security(("bearer" = [])),
    request_body = ContactProfileUpdate, params(("id" = i64, Path)),
    responses((status = 200, body = ContactProfile), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_contact(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<ContactProfileUpdate>,
) -> ApiResult<ApiJson<ContactProfile>> {
    user.require(&[
        Role::Integration,
        Role::Admin,
        Role::Supervisor,
        Role::Agent,
    ])?;
    if req.account_status.is_some() {
        user.require(INTAKE)?;
    }
    let mut check = Check::new();
    check.text("source", &req.source, 64);
    check.done()?;
    Ok(ApiJson(
        state
            .desk
            .update_contact_profile(id, &req, user.user_id)
            .await?,
    ))
}

/// Everything stored about one customer, as JSON (data rights).
#[utoipa::path(get, path = "/api/customers/{id}/export", tag = "outbound", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = CustomerExport), (status = 404, body = Problem)))]
pub async fn export_customer(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<CustomerExport>> {
    user.require(&[Role::Admin])?;
    Ok(ApiJson(state.desk.export_customer(id).await?))
}

/// Erase one customer's personal data (data rights). Ids, amounts, outcomes
/// and the compensation ledger stay; planned calls stop.
#[utoipa::path(post, path = "/api/customers/{id}/erase", tag = "outbound", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn erase_customer(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    user.require(&[Role::Admin])?;
    state.desk.erase_customer(id, user.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Import a CSV file (`text/csv`, at most 2 MiB) of `customers`,
/// `purchases`, `memberships` or `dates`. The valid rows are stored in one
/// transaction; invalid rows are reported by line, column and reason.
#[utoipa::path(post, path = "/api/import/{kind}", tag = "outbound", security(("bearer" = [])),
    params(("kind" = String, Path, description = "customers, purchases, memberships or dates")),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn import_csv(
    State(state): State<AppState>,
    user: AuthUser,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<ApiJson<ImportReport>> {
    user.require(INTAKE)?;
    let kind = ImportKind::parse(&kind)
        .ok_or_else(|| ApiError::field("kind", "customers, purchases, memberships or dates"))?;
    let is_csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    if !is_csv {
        return Err(ApiError::BadRequest(
            "expected Content-Type: text/csv".into(),
        ));
    }
    Ok(ApiJson(
        state.desk.import_csv(kind, &body, user.user_id).await?,
    ))
}

#[derive(Deserialize)]
pub struct CallsQuery {
    pub customer_id: Option<i64>,
    pub limit: Option<i64>,
}

/// Outbound calls (newest first) with every policy decision: which rule
/// deferred or skipped a call, and until when.
#[utoipa::path(get, path = "/api/outbound/calls", tag = "outbound", security(("bearer" = [])),
    params(("customer_id" = Option<i64>, Query), ("limit" = Option<i64>, Query, description = "1 to 500, default 100")),
    responses((status = 200, body = [OutboundCall])))]
pub async fn list_calls(
    State(state): State<AppState>,
    user: AuthUser,
    q: Result<Query<CallsQuery>, QueryRejection>,
) -> ApiResult<ApiJson<Vec<OutboundCall>>> {
    user.require(WATCHERS)?;
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "1 to 500"));
    }
    Ok(ApiJson(
        state.db.outbound_calls(q.customer_id, limit).await?,
    ))
}

/// Record what came of an outbound call you hold (the same as the socket's
/// `call_outcome` command).
#[utoipa::path(post, path = "/api/outbound/tickets/{id}/outcome", tag = "outbound", security(("bearer" = [])),
    request_body = CallOutcome, params(("id" = i64, Path)),
    responses((status = 200, body = Ticket), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn call_outcome(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    ApiJson(outcome): ApiJson<CallOutcome>,
) -> ApiResult<ApiJson<Ticket>> {
    user.require(&[Role::Agent])?;
    Ok(ApiJson(
        state
            .desk
            .record_call_outcome(user.user_id, id, &outcome)
            .await?,
    ))
}

#[derive(Deserialize)]
pub struct ReportQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub format: Option<Format>,
}

/// Call results and refusal reasons by journey, for calls fired in [from, to).
#[utoipa::path(get, path = "/api/outbound/reports/outcomes", tag = "outbound", security(("bearer" = [])),
    params(("from_ms" = i64, Query), ("to_ms" = i64, Query),
        ("format" = Option<Format>, Query, description = "`json` (default) or `csv`; `Accept: text/csv` also gives CSV")),
    responses(
        (status = 200, description = "The report (JSON, or CSV with one line per journey, result and reason)",
            content((OutcomeReport = "application/json"), (String = "text/csv"))),
        (status = 422, body = Problem)))]
pub async fn outcome_report(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    user.require(WATCHERS)?;
    let Query(q) = q.map_err(bad_query)?;
    if q.to_ms <= q.from_ms {
        return Err(ApiError::field("to_ms", "must be after from_ms"));
    }
    report_response(
        q.format,
        &headers,
        state.desk.outcome_report(q.from_ms, q.to_ms).await?,
        |_| format!("outbound-outcomes-{}-{}.csv", q.from_ms, q.to_ms),
        outcomes_csv,
    )
}

/// `journey_id,result,reason_code,count`, a line per journey (empty: calls
/// of no journey), result and reason.
fn outcomes_csv(report: &OutcomeReport) -> ApiResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["journey_id", "result", "reason_code", "count"])
        .map_err(csv_error)?;
    for r in &report.reasons {
        w.write_record([
            r.journey_id.map(|j| j.to_string()).unwrap_or_default(),
            r.result.as_str().to_string(),
            text_cell(&r.reason_code),
            r.count.to_string(),
        ])
        .map_err(csv_error)?;
    }
    w.into_inner().map_err(csv_error)
}
