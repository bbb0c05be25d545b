//! Login, token refresh, logout and "who am I".

use crate::app::AppState;
use crate::auth::{AuthUser, password, tokens};
use crate::bus::BusMessage;
use crate::error::{ApiError, ApiJson, ApiResult};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use callcenter_proto::http::{LoginRequest, Problem, RefreshRequest, TokenPair, User};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/me", get(me))
}

/// A hash to verify against when the user does not exist, so that a wrong
/// username takes as long as a wrong password.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| password::hash("not a real password at all").unwrap_or_default());

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<ApiJson<TokenPair>> {
    if req.username.len() > 64 || req.password.len() > password::MAX_PASSWORD_LEN * 4 {
        return Err(ApiError::Unauthorized("wrong username or password"));
    }
    let found = state.db.credentials(&req.username).await.ok();
    let stored = found
        .as_ref()
        .map(|c| c.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.clone());
    let ok = password::verify_async(req.password, stored).await;
    let Some(credentials) = found.filter(|c| ok && !c.user.disabled) else {
        return Err(ApiError::Unauthorized("wrong username or password"));
    };
    let user = credentials.user;
    let session_id = tokens::new_session_id();
    let (refresh_token, refresh_hash) = tokens::new_refresh_token();
    let now = state.clock.now_ms();
    state
        .db
        .create_session(
            &session_id,
            user.id,
            &refresh_hash,
            now,
            now + state.refresh_ttl_ms(),
        )
        .await?;
    let access_token = state.tokens.issue(user.id, user.role, &session_id)?;
    Ok(ApiJson(TokenPair {
        access_token,
        expires_in: state.tokens.access_ttl_seconds(),
        refresh_token,
        user,
    }))
}

#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<ApiJson<TokenPair>> {
    let (refresh_token, new_hash) = tokens::new_refresh_token();
    let now = state.clock.now_ms();
    let (session_id, user) = state
        .db
        .rotate_refresh(
            &tokens::refresh_hash(&req.refresh_token),
            &new_hash,
            now,
            now + state.refresh_ttl_ms(),
        )
        .await?
        .ok_or(ApiError::Unauthorized(
            "the refresh token is invalid, used or expired",
        ))?;
    let access_token = state.tokens.issue(user.id, user.role, &session_id)?;
    Ok(ApiJson(TokenPair {
        access_token,
        expires_in: state.tokens.access_ttl_seconds(),
        refresh_token,
        user,
    }))
}

/// End this session: its access and refresh tokens stop working and its
/// sockets are closed.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(State(state): State<AppState>, user: AuthUser) -> ApiResult<StatusCode> {
    state
        .db
        .revoke_session(&user.session_id, state.clock.now_ms())
        .await?;
    state
        .bus
        .publish(BusMessage::Revoke {
            user_id: user.user_id,
            session_id: Some(user.session_id.clone()),
            reason: "logged out".into(),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = Problem)))]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<ApiJson<User>> {
    Ok(ApiJson(state.db.user(user.user_id).await?))
}
