//! The HTTP API: one router per feature, merged in [`router`].

pub mod admin;
pub mod auth;
pub mod csv;
pub mod customers;
pub mod health;
pub mod openapi;
pub mod ticket_actions;
pub mod tickets;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use axum::Router;
use callcenter_proto::http::{FieldError, SkillLevel};

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(admin::router())
        .merge(customers::router())
        .merge(tickets::router())
        .merge(ticket_actions::router())
        .merge(health::router())
        .merge(crate::compensation::http::router())
        .merge(crate::outbound::http::router())
        .merge(crate::quality::http::router())
        .merge(crate::quality::reports_http::router())
        .merge(openapi::router())
}

/// The `Idempotency-Key` header of a retried write (1 to 200 characters).
pub(crate) fn idempotency_key(headers: &axum::http::HeaderMap) -> ApiResult<&str> {
    headers
        .get(tickets::IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .ok_or_else(|| {
            ApiError::field(
                "Idempotency-Key",
                "send an Idempotency-Key header of 1 to 200 characters",
            )
        })
}

/// A fingerprint of a request body, to refuse a reused key with another body.
pub(crate) fn request_hash(body: &impl serde::Serialize) -> ApiResult<String> {
    use sha2::{Digest, Sha256};
    let canonical = serde_json::to_vec(body).map_err(anyhow::Error::from)?;
    Ok(hex::encode(Sha256::digest(&canonical)))
}

/// Collects per-field validation errors for one problem response.
pub(crate) struct Check(Vec<FieldError>);

impl Check {
    pub(crate) fn new() -> Self {
        Check(Vec::new())
    }
    pub(crate) fn text(&mut self, field: &str, value: &str, max: usize) {
        let n = value.trim().chars().count();
        if n == 0 || n > max {
            self.0.push(FieldError {
                field: field.into(),
                message: format!("must be 1 to {max} characters"),
            });
        }
    }
    pub(crate) fn that(&mut self, ok: bool, field: &str, message: &str) {
        if !ok {
            self.0.push(FieldError {
                field: field.into(),
                message: message.into(),
            });
        }
    }
    pub(crate) fn skills(&mut self, field: &str, skills: &[SkillLevel]) {
        self.that(skills.len() <= 50, field, "at most 50 skills");
        for (i, s) in skills.iter().enumerate() {
            self.text(&format!("{field}[{i}].skill"), &s.skill, 64);
            self.that(
                (1..=10).contains(&s.level),
                &format!("{field}[{i}].level"),
                "must be 1 to 10",
            );
        }
    }
    pub(crate) fn done(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// An idempotent create answers 201 the first time and 200 on a retry that
/// found what the first one made.
pub fn created_or_ok(created: bool) -> axum::http::StatusCode {
    if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    }
}
