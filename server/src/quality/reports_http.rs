//! HTTP routes of the quality reports: scorecards and the retention of
//! compensated customers against comparable uncompensated ones. Each answers
//! JSON, or CSV with `?format=csv` or `Accept: text/csv`.

use super::scorecards::{
    self, MAX_DAILY_DAYS, MAX_RANGE_DAYS, ScorecardQuery, day_of, day_text, today,
};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::http::csv::{Format, csv_error, report_response, text_cell};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use callcenter_proto::Role;
use callcenter_proto::http::Problem;
use callcenter_proto::quality::{
    CompensationRetention, Ratio, ReasonTally, Scorecard, ScorecardGroup, ScorecardPeriod,
    StratumSide,
};
use chrono::NaiveDate;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/reports/scorecard", get(scorecard))
        .route(
            "/api/reports/compensation-retention",
            get(compensation_retention),
        )
}

const WATCHERS: &[Role] = &[Role::Supervisor, Role::Admin];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ScorecardParams {
    /// `agent`, `team`, `queue` or `all` (default `all`; agents: `agent`).
    pub group: Option<ScorecardGroup>,
    /// First day, YYYY-MM-DD (UTC), inclusive.
    pub from: String,
    /// Last day, inclusive; at most 731 days after `from`.
    pub to: String,
    /// `day` (at most 93 days), `week`, `month` or `range` (default).
    pub period: Option<ScorecardPeriod>,
    /// Only this agent (group `agent`). Agents may ask only for themselves.
    pub agent_id: Option<i64>,
    /// `json` (default) or `csv`; `Accept: text/csv` also gives CSV.
    pub format: Option<Format>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RangeParams {
    /// First day, YYYY-MM-DD (UTC), inclusive.
    pub from: String,
    /// Last day, inclusive; at most 731 days after `from`.
    pub to: String,
    /// `json` (default) or `csv`; `Accept: text/csv` also gives CSV.
    pub format: Option<Format>,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(t)| t)
        .map_err(|r| ApiError::field("query", r.body_text()))
}

/// The validated day range `[from, to]`.
fn days(from: &str, to: &str, max_days: i64, period_name: &str) -> ApiResult<(i64, i64)> {
    let parse = |s: &str| {
        (s.len() == 10)
            .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .flatten()
            .map(day_of)
            .filter(|d| *d >= 0)
    };
    let mut check = crate::http::Check::new();
    let (f, t) = (parse(from), parse(to));
    check.that(
        f.is_some(),
        "from",
        "must be a date YYYY-MM-DD from 1970-01-01",
    );
    check.that(
        t.is_some(),
        "to",
        "must be a date YYYY-MM-DD from 1970-01-01",
    );
    if let (Some(f), Some(t)) = (f, t) {
        check.that(f <= t, "to", "must not be before from");
        check.that(
            t - f < max_days,
            "to",
            &format!("covers at most {max_days} days{period_name}"),
        );
    }
    check.done()?;
    Ok((f.unwrap_or_default(), t.unwrap_or_default()))
}

/// Quality scorecards per agent, team, queue or the whole call center and
/// period: confirmed resolution, first-contact resolution, reopens,
/// satisfaction counts, retention, compensation per retained customer,
/// refusal and churn reasons. Rates come as counts with their denominators.
/// Supervisors and administrators see every row; an agent only their own.
#[utoipa::path(get, path = "/api/reports/scorecard", tag = "quality", security(("bearer" = [])),
    params(ScorecardParams),
    responses(
        (status = 200, description = "The scorecard (JSON, or CSV with one row per line)",
            content((Scorecard = "application/json"), (String = "text/csv"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn scorecard(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    q: Result<Query<ScorecardParams>, QueryRejection>,
) -> ApiResult<Response> {
    user.require(&[Role::Agent, Role::Supervisor, Role::Admin])?;
    let p = query(q)?;
    let group = p.group.unwrap_or(if user.role == Role::Agent {
        ScorecardGroup::Agent
    } else {
        ScorecardGroup::All
    });
    let period = p.period.unwrap_or(ScorecardPeriod::Range);
    let mut agent_id = p.agent_id;
    if user.role == Role::Agent {
        if group != ScorecardGroup::Agent {
            return Err(ApiError::Forbidden(
                "agents may read only their own scorecard (group=agent)",
            ));
        }
        if agent_id.is_some_and(|id| id != user.user_id) {
            return Err(ApiError::Forbidden(
                "agents may read only their own scorecard",
            ));
        }
        agent_id = Some(user.user_id);
    }
    if agent_id.is_some() && group != ScorecardGroup::Agent {
        return Err(ApiError::field("agent_id", "only with group=agent"));
    }
    let (max, what) = if period == ScorecardPeriod::Day {
        (MAX_DAILY_DAYS, " with period=day")
    } else {
        (MAX_RANGE_DAYS, "")
    };
    let (from, to) = days(&p.from, &p.to, max, what)?;
    let q = ScorecardQuery {
        group,
        period,
        from,
        to,
        agent_id,
    };
    let card = scorecards::scorecard(&state.db, &q, today(state.clock.now_ms())).await?;
    report_response(
        p.format,
        &headers,
        card,
        |card| {
            format!(
                "scorecard-{}-{}-{}.csv",
                group_name(group),
                card.from,
                card.to
            )
        },
        scorecard_csv,
    )
}

/// The retention of compensated customers against comparable uncompensated
/// ones: complaints ended in the period by category, customer tier and
/// value band (as when the complaint ended), compensated or not, with their
/// 30- and 90-day retention; and both sides over the comparable strata.
#[utoipa::path(get, path = "/api/reports/compensation-retention", tag = "quality", security(("bearer" = [])),
    params(RangeParams),
    responses(
        (status = 200, description = "The comparison (JSON, or CSV with one line per stratum and side)",
            content((CompensationRetention = "application/json"), (String = "text/csv"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn compensation_retention(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    q: Result<Query<RangeParams>, QueryRejection>,
) -> ApiResult<Response> {
    user.require(WATCHERS)?;
    let p = query(q)?;
    let (from, to) = days(&p.from, &p.to, MAX_RANGE_DAYS, "")?;
    let report =
        scorecards::compensation_retention(&state.db, from, to, today(state.clock.now_ms()))
            .await?;
    report_response(
        p.format,
        &headers,
        report,
        |_| {
            format!(
                "compensation-retention-{}-{}.csv",
                day_text(from),
                day_text(to)
            )
        },
        compensation_csv,
    )
}

fn group_name(group: ScorecardGroup) -> &'static str {
    match group {
        ScorecardGroup::Agent => "agent",
        ScorecardGroup::Team => "team",
        ScorecardGroup::Queue => "queue",
        ScorecardGroup::All => "all",
    }
}

/// A rate as a decimal fraction with three places ("0.750"), empty without
/// a denominator.
fn rate(r: &Ratio) -> String {
    r.permille
        .map(|p| format!("{}.{:03}", p / 1000, p % 1000))
        .unwrap_or_default()
}

fn tallies(t: &[ReasonTally]) -> String {
    t.iter()
        .map(|t| format!("{}={}", t.reason_code, t.count))
        .collect::<Vec<_>>()
        .join(";")
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The scorecard CSV's header.
pub const SCORECARD_CSV_HEADER: [&str; 38] = [
    "group",
    "period_start",
    "period_end",
    "agent_id",
    "team",
    "queue_id",
    "name",
    "ended",
    "resolved",
    "confirmation_awaiting",
    "confirmed",
    "denied",
    "confirmation_expired",
    "answered",
    "confirmed_of_answered_rate",
    "confirmed_of_resolved_rate",
    "first_contact_resolved",
    "first_contact_resolution_rate",
    "reopened",
    "reopen_rate",
    "satisfaction_1",
    "satisfaction_2",
    "satisfaction_3",
    "satisfaction_4",
    "satisfaction_5",
    "satisfaction_n",
    "retained_30",
    "retention_30_of",
    "retention_30_rate",
    "retained_90",
    "retention_90_of",
    "retention_90_rate",
    "compensated",
    "compensation_minor",
    "compensation_per_retained_minor",
    "handle_ms_total",
    "refusal_reasons",
    "churn_reasons",
];

pub fn scorecard_csv(card: &Scorecard) -> ApiResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(SCORECARD_CSV_HEADER).map_err(csv_error)?;
    let group = group_name(card.group);
    for r in &card.rows {
        let s = &r.satisfaction;
        w.write_record([
            group.to_string(),
            r.period_start.clone(),
            r.period_end.clone(),
            opt(r.agent_id),
            text_cell(r.team.as_deref().unwrap_or_default()),
            opt(r.queue_id),
            text_cell(&r.name),
            r.ended.to_string(),
            r.resolved.to_string(),
            r.confirmations.awaiting.to_string(),
            r.confirmations.confirmed.to_string(),
            r.confirmations.denied.to_string(),
            r.confirmations.expired.to_string(),
            r.confirmed_of_answered.of.to_string(),
            rate(&r.confirmed_of_answered),
            rate(&r.confirmed_of_resolved),
            r.first_contact_resolution.count.to_string(),
            rate(&r.first_contact_resolution),
            r.reopened.count.to_string(),
            rate(&r.reopened),
            s.counts[0].to_string(),
            s.counts[1].to_string(),
            s.counts[2].to_string(),
            s.counts[3].to_string(),
            s.counts[4].to_string(),
            s.n.to_string(),
            r.retained_30.count.to_string(),
            r.retained_30.of.to_string(),
            rate(&r.retained_30),
            r.retained_90.count.to_string(),
            r.retained_90.of.to_string(),
            rate(&r.retained_90),
            r.compensated.to_string(),
            r.compensation_minor.to_string(),
            opt(r.compensation_per_retained_minor),
            r.handle_ms_total.to_string(),
            tallies(&r.refusal_reasons),
            tallies(&r.churn_reasons),
        ])
        .map_err(csv_error)?;
    }
    w.into_inner().map_err(csv_error)
}

/// The compensation/retention CSV's header.
pub const COMPENSATION_CSV_HEADER: [&str; 15] = [
    "category_id",
    "category",
    "tier",
    "value_band",
    "value_band_label",
    "side",
    "complaints",
    "compensation_minor",
    "retained_30",
    "retention_30_of",
    "retention_30_rate",
    "retained_90",
    "retention_90_of",
    "retention_90_rate",
    "comparable",
];

pub fn compensation_csv(report: &CompensationRetention) -> ApiResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COMPENSATION_CSV_HEADER).map_err(csv_error)?;
    for s in &report.strata {
        for (side, f) in [
            ("compensated", &s.compensated),
            ("uncompensated", &s.uncompensated),
        ] {
            let f: &StratumSide = f;
            w.write_record([
                s.category_id.to_string(),
                text_cell(&s.category),
                text_cell(&s.tier),
                s.value_band.to_string(),
                s.value_band_label.clone(),
                side.to_string(),
                f.complaints.to_string(),
                f.compensation_minor.to_string(),
                f.retained_30.count.to_string(),
                f.retained_30.of.to_string(),
                rate(&f.retained_30),
                f.retained_90.count.to_string(),
                f.retained_90.of.to_string(),
                rate(&f.retained_90),
                s.comparable.to_string(),
            ])
            .map_err(csv_error)?;
        }
    }
    w.into_inner().map_err(csv_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_decimal_fractions_and_formulas_are_defused() {
        assert_eq!(rate(&Ratio::new(3, 4)), "0.750");
        assert_eq!(rate(&Ratio::new(4, 4)), "1.000");
        assert_eq!(rate(&Ratio::new(0, 0)), "");
        assert_eq!(text_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(text_cell("-1"), "'-1");
        assert_eq!(text_cell("billing"), "billing");
    }
}
