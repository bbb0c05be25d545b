//! Authentication (who is calling) and authorization (may they).

pub mod password;
pub mod tokens;

use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use callcenter_proto::Role;

/// The authenticated caller of an HTTP request: a verified access token
/// whose session is live and whose user is not disabled.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user_id: i64,
    pub role: Role,
    pub session_id: String,
}

impl AuthUser {
    /// Refuse with 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden("your role may not do this"))
        }
    }

    pub fn is_supervisor(&self) -> bool {
        matches!(self.role, Role::Supervisor | Role::Admin)
    }
}

/// Check an access token and its session.
pub async fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let claims = state
        .tokens
        .verify(token)
        .map_err(|_| ApiError::Unauthorized("the access token is invalid or expired"))?;
    let user_id: i64 = claims
        .sub
        .parse()
        .map_err(|_| ApiError::Unauthorized("the access token is invalid or expired"))?;
    let user = state
        .db
        .session_user(&claims.sid, user_id)
        .await?
        .ok_or(ApiError::Unauthorized("the session has ended"))?;
    Ok(AuthUser {
        user_id,
        role: user.role,
        session_id: claims.sid,
    })
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(
                "send Authorization: Bearer <access token>",
            ))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized(
                "send Authorization: Bearer <access token>",
            ))?;
        authenticate(state, token.trim()).await
    }
}
