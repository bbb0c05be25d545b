//! HTTP routes of the quality record: resolution codes (administrators; the
//! active list for staff), the quality settings, a complaint's quality row,
//! survey links for staff, and the public survey (page and API, no account:
//! the token is the authorization).

use super::surveys::SurveyError;
use super::{codes, outcomes, surveys};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiResult};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use callcenter_proto::Role;
use callcenter_proto::http::Problem;
use callcenter_proto::outcomes::{
    QualitySettings, ResolutionCode, ResolutionCodeCreate, ResolutionCodeUpdate, SurveyAnswer,
    SurveyLink, SurveyReceipt, SurveyToken, SurveyView, TicketQuality,
};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/resolution-codes", get(active_codes))
        .route(
            "/api/admin/resolution-codes",
            get(all_codes).post(create_code),
        )
        .route("/api/admin/resolution-codes/{code}", patch(update_code))
        .route(
            "/api/admin/quality-settings",
            get(get_settings).put(put_settings),
        )
        .route("/api/tickets/{id}/quality", get(ticket_quality))
        .route("/api/quality/tickets", get(quality_rows))
        .route("/api/tickets/{id}/survey", post(create_survey_link))
        .route("/api/surveys/view", post(view_survey))
        .route("/api/surveys/answer", post(answer_survey))
        .route("/survey", get(survey_page))
        .route("/survey/{token}", get(survey_page))
}

const STAFF: &[Role] = &[Role::Agent, Role::Supervisor, Role::Admin];
const WATCHERS: &[Role] = &[Role::Supervisor, Role::Admin];

/// Active resolution codes, for the agent's outcome form.
#[utoipa::path(get, path = "/api/resolution-codes", tag = "quality", security(("bearer" = [])),
    responses((status = 200, body = [ResolutionCode]), (status = 403, body = Problem)))]
pub async fn active_codes(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<ResolutionCode>>> {
    user.require(STAFF)?;
    Ok(ApiJson(codes::list(&state.db, true).await?))
}

/// Every resolution code, retired ones included.
#[utoipa::path(get, path = "/api/admin/resolution-codes", tag = "quality", security(("bearer" = [])),
    responses((status = 200, body = [ResolutionCode]), (status = 403, body = Problem)))]
pub async fn all_codes(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<ResolutionCode>>> {
    user.require(&[Role::Admin])?;
    Ok(ApiJson(codes::list(&state.db, false).await?))
}

/// Add a resolution code (409 when the code exists).
#[utoipa::path(post, path = "/api/admin/resolution-codes", tag = "quality", security(("bearer" = [])),
    request_body = ResolutionCodeCreate,
    responses((status = 201, body = ResolutionCode), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_code(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<ResolutionCodeCreate>,
) -> ApiResult<(StatusCode, ApiJson<ResolutionCode>)> {
    user.require(&[Role::Admin])?;
    let code = codes::create(&state.db, &req, state.clock.now_ms()).await?;
    Ok((StatusCode::CREATED, ApiJson(code)))
}

/// Rename, retire (`active: false`) or bring back a resolution code.
#[utoipa::path(patch, path = "/api/admin/resolution-codes/{code}", tag = "quality", security(("bearer" = [])),
    request_body = ResolutionCodeUpdate, params(("code" = String, Path)),
    responses((status = 200, body = ResolutionCode), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_code(
    State(state): State<AppState>,
    user: AuthUser,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<ResolutionCodeUpdate>,
) -> ApiResult<ApiJson<ResolutionCode>> {
    user.require(&[Role::Admin])?;
    Ok(ApiJson(codes::update(&state.db, &code, &req).await?))
}

/// The definitions behind the quality figures (windows, delays, waits).
#[utoipa::path(get, path = "/api/admin/quality-settings", tag = "quality", security(("bearer" = [])),
    responses((status = 200, body = QualitySettings), (status = 403, body = Problem)))]
pub async fn get_settings(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<QualitySettings>> {
    user.require(WATCHERS)?;
    Ok(ApiJson(super::settings(&state.db).await?))
}

/// Replace the quality settings; they apply to what happens from now on
/// (rows already written keep the definitions they were written under).
#[utoipa::path(put, path = "/api/admin/quality-settings", tag = "quality", security(("bearer" = [])),
    request_body = QualitySettings,
    responses((status = 200, body = QualitySettings), (status = 422, body = Problem)))]
pub async fn put_settings(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<QualitySettings>,
) -> ApiResult<ApiJson<QualitySettings>> {
    user.require(&[Role::Admin])?;
    super::validate_settings(&req)?;
    super::save_settings(&state.db, &req, state.clock.now_ms()).await?;
    Ok(ApiJson(req))
}

/// The quality record of an ended complaint: agents for their own tickets,
/// supervisors and administrators for any.
#[utoipa::path(get, path = "/api/tickets/{id}/quality", tag = "quality", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = TicketQuality), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn ticket_quality(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<TicketQuality>> {
    match user.role {
        Role::Supervisor | Role::Admin => {}
        Role::Agent => {
            state.desk.ticket_of(user.user_id, id).await?;
        }
        Role::Integration => return Err(ApiError::Forbidden("your role may not read tickets")),
    }
    Ok(ApiJson(outcomes::ticket_quality(&state.db, id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct Period {
    /// Complaints that ended at or after this time (Unix milliseconds).
    pub from_ms: i64,
    /// ...and before this one.
    pub to_ms: i64,
    /// At most this many rows (1 to 1000, default 1000).
    pub limit: Option<i64>,
}

/// Quality records of complaints ended in a period, in order of end.
#[utoipa::path(get, path = "/api/quality/tickets", tag = "quality", security(("bearer" = [])),
    params(Period),
    responses((status = 200, body = [TicketQuality]), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn quality_rows(
    State(state): State<AppState>,
    user: AuthUser,
    q: Result<Query<Period>, QueryRejection>,
) -> ApiResult<ApiJson<Vec<TicketQuality>>> {
    user.require(WATCHERS)?;
    let Query(p) = q.map_err(|r| ApiError::field("query", r.body_text()))?;
    let limit = p.limit.unwrap_or(1000);
    let mut check = crate::http::Check::new();
    check.that(p.from_ms <= p.to_ms, "to_ms", "must not be before from_ms");
    check.that((1..=1000).contains(&limit), "limit", "must be 1 to 1000");
    check.done()?;
    Ok(ApiJson(
        outcomes::ended_between(&state.db, p.from_ms, p.to_ms, limit).await?,
    ))
}

/// A survey link for a resolved complaint ("is it still solved?"), shown
/// once: only its hash is kept. Agents for complaints they handled.
#[utoipa::path(post, path = "/api/tickets/{id}/survey", tag = "quality", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 201, body = SurveyLink), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn create_survey_link(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    user.require(STAFF)?;
    let link = state.desk.survey_link(&user, id).await?;
    let mut response = (StatusCode::CREATED, ApiJson(link)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A survey problem as problem+json: 404 unknown, 410 used or expired.
fn survey_problem(e: SurveyError) -> Response {
    let (status, slug, title, detail) = match e {
        SurveyError::Api(e) => return e.into_response(),
        SurveyError::Unknown => (
            StatusCode::NOT_FOUND,
            "survey-unknown",
            "Unknown survey link",
            "this survey link is not known: check that it was copied whole",
        ),
        SurveyError::Used => (
            StatusCode::GONE,
            "survey-used",
            "Survey already answered",
            "this survey has already been answered; thank you",
        ),
        SurveyError::Expired => (
            StatusCode::GONE,
            "survey-expired",
            "Survey link expired",
            "this survey link has expired",
        ),
    };
    let problem = Problem {
        kind: format!("/problems/{slug}"),
        title: title.into(),
        status: status.as_u16(),
        detail: detail.into(),
        errors: Vec::new(),
    };
    let mut response = (status, axum::Json(problem)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// Public: what the survey page shows for a token (no account).
#[utoipa::path(post, path = "/api/surveys/view", tag = "quality", request_body = SurveyToken,
    responses((status = 200, body = SurveyView), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn view_survey(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SurveyToken>,
) -> Response {
    match surveys::view(&state.db, req.token.trim(), state.clock.now_ms()).await {
        Ok(view) => ApiJson(view).into_response(),
        Err(e) => survey_problem(e),
    }
}

/// Public: the customer's answer (no account; the token is single-use).
/// A "no" reopens the complaint.
#[utoipa::path(post, path = "/api/surveys/answer", tag = "quality", request_body = SurveyAnswer,
    responses((status = 200, body = SurveyReceipt), (status = 404, body = Problem), (status = 410, body = Problem),
        (status = 422, body = Problem)))]
pub async fn answer_survey(
    State(state): State<AppState>,
    ApiJson(mut req): ApiJson<SurveyAnswer>,
) -> Response {
    req.token = req.token.trim().to_string();
    match state.desk.answer_survey(&req).await {
        Ok(reopened) => ApiJson(SurveyReceipt { reopened }).into_response(),
        Err(e) => survey_problem(e),
    }
}

/// The public survey page (`/survey#<token>`; `/survey/<token>` works too).
async fn survey_page() -> Response {
    let Some(asset) = callcenter_console::asset("/survey") else {
        return ApiError::NotFound("page").into_response();
    };
    let mut response = Response::new(axum::body::Body::from(asset.body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
