//! Reports as CSV: every report answers JSON, or CSV with `?format=csv` or
//! `Accept: text/csv`.

use crate::error::{ApiError, ApiJson, ApiResult};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Json,
    Csv,
}

/// Whether the caller asked for CSV: `format` if given, else the `Accept`
/// header.
fn wants_csv(format: Option<Format>, headers: &HeaderMap) -> bool {
    match format {
        Some(f) => f == Format::Csv,
        None => headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/csv")),
    }
}

/// A report as its caller asked for it: CSV (`to_csv`, offered for
/// download as `name`) when [`wants_csv`], else JSON.
pub fn report_response<T: serde::Serialize>(
    format: Option<Format>,
    headers: &HeaderMap,
    report: T,
    name: impl FnOnce(&T) -> String,
    to_csv: impl FnOnce(&T) -> ApiResult<Vec<u8>>,
) -> ApiResult<Response> {
    if wants_csv(format, headers) {
        return Ok(csv_response(name(&report), to_csv(&report)?));
    }
    Ok(ApiJson(report).into_response())
}

/// A CSV body, offered for download as `name`.
fn csv_response(name: String, body: Vec<u8>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// A name as a CSV cell; one a spreadsheet would take for a formula
/// (`=`, `+`, `-`, `@`, tab, return first) gets a leading `'`.
pub fn text_cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

pub fn csv_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("csv: {e}"))
}
