//! Scorecards and the compensation/retention comparison, read from rollups.
//!
//! Every write to `ticket_quality` appends signed deltas (database triggers,
//! `migrations/*/0015_quality_reports.sql`), in the writer's transaction.
//! [`fold`] moves them into daily rollups per agent, per queue and per
//! stratum; [`start`] folds every [`FOLD_INTERVAL`] on every node (on
//! PostgreSQL one node at a time, under an advisory lock). Reports read the
//! rollups *and* the deltas not folded yet in one statement, so they are
//! exact whenever they are asked; the fold only keeps them fast.
//!
//! Definitions (per group and period, complaints by the UTC day they ended):
//! - confirmed out of asked-and-answered (confirmed + denied), and out of
//!   resolved;
//! - first-contact resolution: first contact, resolved and confirmed by the
//!   customer, out of ended;
//! - reopen: reopened out of ended;
//! - satisfaction: the count of each score and their number;
//! - retention within 30 (90) days: retained out of the complaints retained
//!   or whose window has certainly passed, i.e. that ended on or before the
//!   UTC day 31 (91) days before today. A complaint still inside its window
//!   counts only once retained, so a fresh period does not look like churn;
//! - compensation per retained customer: net compensation on the complaints
//!   divided by those retained within 90 days;
//! - refusal reasons: outbound calls refused, by reason code, by the day
//!   they fired; churn reasons: those refused on renewal calls (journeys
//!   triggered by a membership's end).

use super::DAY_MS;
use crate::store::{Db, Dialect, StoreResult};
use callcenter_proto::quality::{
    CompensationComparison, CompensationRetention, CompensationStratum, ConfirmationCounts,
    QualityToday, Ratio, ReasonTally, Satisfaction, Scorecard, ScorecardGroup, ScorecardPeriod,
    ScorecardRow, StratumSide,
};
use chrono::{Datelike, NaiveDate};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How often every node folds deltas into the rollups.
pub const FOLD_INTERVAL: Duration = Duration::from_secs(2);
/// Deltas folded per transaction.
pub const FOLD_BATCH: i64 = 20_000;
/// Longest range a report covers, in days (both ends included).
pub const MAX_RANGE_DAYS: i64 = 731;
/// Longest range of a day-by-day scorecard.
pub const MAX_DAILY_DAYS: i64 = 93;
/// PostgreSQL advisory lock key serializing folds across nodes.
const FOLD_LOCK: i64 = 0x7175_616c_0015;

/// The figures each rollup row (and delta) carries, in table order.
const METRICS: [&str; 18] = [
    "ended",
    "resolved",
    "asked",
    "confirmed",
    "denied",
    "expired",
    "fcr",
    "reopened",
    "sat_1",
    "sat_2",
    "sat_3",
    "sat_4",
    "sat_5",
    "retained_30",
    "retained_90",
    "compensated",
    "compensation_minor",
    "handle_ms",
];
const STRATA_METRICS: [&str; 4] = ["ended", "retained_30", "retained_90", "compensation_minor"];

/// Each figure of one `ticket_quality` row `q` (the triggers' definitions,
/// used to rebuild the rollups from the fact table).
const ROW_METRICS: [&str; 18] = [
    "1",
    "q.resolved",
    "CASE WHEN q.confirmation = 'asked' THEN 1 ELSE 0 END",
    "CASE WHEN q.confirmation = 'confirmed' THEN 1 ELSE 0 END",
    "CASE WHEN q.confirmation = 'denied' THEN 1 ELSE 0 END",
    "CASE WHEN q.confirmation = 'expired' THEN 1 ELSE 0 END",
    "CASE WHEN q.first_contact = 1 AND q.resolved = 1 AND q.confirmation = 'confirmed' THEN 1 ELSE 0 END",
    "q.reopened",
    "CASE WHEN q.satisfaction = 1 THEN 1 ELSE 0 END",
    "CASE WHEN q.satisfaction = 2 THEN 1 ELSE 0 END",
    "CASE WHEN q.satisfaction = 3 THEN 1 ELSE 0 END",
    "CASE WHEN q.satisfaction = 4 THEN 1 ELSE 0 END",
    "CASE WHEN q.satisfaction = 5 THEN 1 ELSE 0 END",
    "q.retained_30",
    "q.retained_90",
    "CASE WHEN q.compensation_minor > 0 THEN 1 ELSE 0 END",
    "q.compensation_minor",
    "q.handle_ms",
];

const VALUE_BAND: &str = "CASE WHEN c.value_minor < 10000 THEN 0 WHEN c.value_minor < 100000 THEN 1 \
     WHEN c.value_minor < 1000000 THEN 2 ELSE 3 END";

fn list(names: &[&str], f: impl Fn(&str) -> String) -> String {
    names.iter().map(|m| f(m)).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------- folding

/// Start folding on this node (every [`FOLD_INTERVAL`]).
pub fn start(db: Db) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FOLD_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = fold_all(&db).await {
                tracing::warn!(error = %e, "could not fold quality deltas");
            }
        }
    })
}

/// Fold until no full batch is left; returns the deltas folded.
pub async fn fold_all(db: &Db) -> StoreResult<u64> {
    let mut total = 0;
    loop {
        let n = fold(db, FOLD_BATCH).await?;
        total += n;
        if n < FOLD_BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Move up to `batch` of the oldest deltas into the rollups, in one
/// transaction. 0 when there were none, or (PostgreSQL) when another
/// node is folding right now.
pub async fn fold(db: &Db, batch: i64) -> StoreResult<u64> {
    let metrics = METRICS.join(", ");
    let sums = list(&METRICS, |m| format!("SUM({m})"));
    let add = list(&METRICS, |m| {
        format!("{m} = quality_rollup.{m} + excluded.{m}")
    });
    let strata_metrics = STRATA_METRICS.join(", ");
    let strata_sums = list(&STRATA_METRICS, |m| format!("SUM({m})"));
    let strata_add = list(&STRATA_METRICS, |m| {
        format!("{m} = quality_strata_rollup.{m} + excluded.{m}")
    });
    let by = |dim: &str, column: &str, source: &str, filter: &str| {
        format!(
            "INSERT INTO quality_rollup (dim, key, ended_day, {metrics}) \
             SELECT '{dim}', {column}, ended_day, {sums} FROM {source} {filter} \
             GROUP BY {column}, ended_day \
             ON CONFLICT (dim, ended_day, key) DO UPDATE SET {add}"
        )
    };
    let strata = |source: &str, filter: &str| {
        format!(
            "INSERT INTO quality_strata_rollup (ended_day, category_id, tier, value_band, \
                 compensated, {strata_metrics}) \
             SELECT ended_day, category_id, tier, value_band, ABS(compensated), {strata_sums} \
             FROM {source} {filter} \
             GROUP BY ended_day, category_id, tier, value_band, ABS(compensated) \
             ON CONFLICT (ended_day, category_id, tier, value_band, compensated) \
             DO UPDATE SET {strata_add}"
        )
    };
    let mut tx = crate::store::begin(db.pool()).await?;
    let folded = match db.dialect() {
        Dialect::Postgres => {
            let locked: bool = sqlx::query("SELECT pg_try_advisory_xact_lock($1) AS locked")
                .bind(FOLD_LOCK)
                .fetch_one(&mut *tx)
                .await?
                .try_get("locked")?;
            if !locked {
                return Ok(0);
            }
            // One statement, one snapshot: exactly the deltas deleted are
            // added, whatever commits meanwhile. The batch's last id is an
            // init plan (computed once): the delete is a range scan whatever
            // the table's statistics say.
            let sql = format!(
                "WITH moved AS (DELETE FROM quality_deltas WHERE id <= \
                     (SELECT MAX(b.id) FROM (SELECT id FROM quality_deltas ORDER BY id LIMIT $1) b) \
                     RETURNING *), \
                 by_agent AS ({} RETURNING 1), by_queue AS ({} RETURNING 1), \
                 by_stratum AS ({} RETURNING 1) \
                 SELECT CAST(COUNT(*) AS BIGINT) AS n FROM moved",
                by("agent", "agent_id", "moved", ""),
                by("queue", "queue_id", "moved", ""),
                strata("moved", ""),
            );
            let n: i64 = sqlx::query(&sql)
                .bind(batch)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
            n as u64
        }
        Dialect::Sqlite => {
            // One connection: nothing else runs inside this transaction.
            let last: Option<i64> = sqlx::query(
                "SELECT MAX(id) AS last FROM (SELECT id FROM quality_deltas ORDER BY id LIMIT $1) b",
            )
            .bind(batch)
            .fetch_one(&mut *tx)
            .await?
            .try_get("last")?;
            let Some(last) = last else {
                return Ok(0);
            };
            let filter = "WHERE id <= $1";
            for sql in [
                by("agent", "agent_id", "quality_deltas", filter),
                by("queue", "queue_id", "quality_deltas", filter),
                strata("quality_deltas", filter),
            ] {
                sqlx::query(&sql).bind(last).execute(&mut *tx).await?;
            }
            sqlx::query("DELETE FROM quality_deltas WHERE id <= $1")
                .bind(last)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }
    };
    tx.commit().await?;
    Ok(folded)
}

/// Recompute every rollup from `ticket_quality` (after a bulk load that
/// bypassed the triggers, e.g. the benchmark's generator). Strata take the
/// customers' tiers and values as they are now. Writers wait meanwhile.
pub async fn rebuild(db: &Db) -> StoreResult<()> {
    let mut tx = crate::store::begin(db.pool()).await?;
    if db.dialect() == Dialect::Postgres {
        sqlx::query("LOCK TABLE ticket_quality IN SHARE MODE")
            .execute(&mut *tx)
            .await?;
    }
    for table in [
        "quality_deltas",
        "quality_rollup",
        "quality_strata_rollup",
        "quality_strata",
    ] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(&format!(
        "INSERT INTO quality_strata (ticket_id, tier, value_band) \
         SELECT q.ticket_id, c.tier, {VALUE_BAND} \
         FROM ticket_quality q JOIN customers c ON c.id = q.customer_id"
    ))
    .execute(&mut *tx)
    .await?;
    let metrics = METRICS.join(", ");
    let sums = ROW_METRICS
        .iter()
        .map(|e| format!("SUM({e})"))
        .collect::<Vec<_>>()
        .join(", ");
    for (dim, column) in [
        ("agent", "COALESCE(q.agent_id, 0)"),
        ("queue", "q.queue_id"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO quality_rollup (dim, key, ended_day, {metrics}) \
             SELECT '{dim}', {column}, q.ended_day, {sums} FROM ticket_quality q \
             GROUP BY {column}, q.ended_day"
        ))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(&format!(
        "INSERT INTO quality_strata_rollup (ended_day, category_id, tier, value_band, compensated, \
             ended, retained_30, retained_90, compensation_minor) \
         SELECT q.ended_day, q.category_id, s.tier, s.value_band, {comp}, \
             COUNT(*), SUM(q.retained_30), SUM(q.retained_90), SUM(q.compensation_minor) \
         FROM ticket_quality q JOIN quality_strata s ON s.ticket_id = q.ticket_id \
         GROUP BY q.ended_day, q.category_id, s.tier, s.value_band, {comp}",
        comp = ROW_METRICS[15],
    ))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------- periods

/// A UTC day number (days since 1970-01-01).
pub fn day_of(date: NaiveDate) -> i64 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days()
}

/// The date of a UTC day number.
pub fn date_of(day: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(day)
}

pub fn day_text(day: i64) -> String {
    date_of(day).format("%Y-%m-%d").to_string()
}

/// Today's UTC day number at `now_ms`.
pub fn today(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS)
}

/// The rows' periods: each period's first day, in order; a row's period
/// runs to the day before the next one's (the last to `to`).
fn period_starts(period: ScorecardPeriod, from: i64, to: i64) -> Vec<i64> {
    match period {
        ScorecardPeriod::Range => vec![from],
        ScorecardPeriod::Day => (from..=to).collect(),
        ScorecardPeriod::Week => {
            let mut starts = vec![from];
            let mut monday = from - (from + 3).rem_euclid(7) + 7;
            while monday <= to {
                starts.push(monday);
                monday += 7;
            }
            starts
        }
        ScorecardPeriod::Month => {
            let mut starts = vec![from];
            let mut date = date_of(from);
            loop {
                let (y, m) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                date = NaiveDate::from_ymd_opt(y, m, 1).expect("first of a month");
                let day = day_of(date);
                if day > to {
                    return starts;
                }
                starts.push(day);
            }
        }
    }
}

/// SQL mapping a day column to its period's first day (integers only,
/// computed here, never from input text).
fn bucket_sql(period: ScorecardPeriod, starts: &[i64], column: &str) -> String {
    match period {
        ScorecardPeriod::Day => column.to_string(),
        ScorecardPeriod::Range => starts[0].to_string(),
        // The Monday of the day's ISO week (day 0, 1970-01-01, was a
        // Thursday), or `from` for the first, partial week.
        ScorecardPeriod::Week => format!(
            "CASE WHEN {column} - (({column} + 3) % 7) < {from} THEN {from} \
             ELSE {column} - (({column} + 3) % 7) END",
            from = starts[0]
        ),
        ScorecardPeriod::Month => {
            let mut sql = String::from("CASE");
            for pair in starts.windows(2).rev() {
                sql.push_str(&format!(" WHEN {column} >= {} THEN {}", pair[1], pair[1]));
            }
            sql.push_str(&format!(" ELSE {} END", starts[0]));
            sql
        }
    }
}

/// What a report covers, validated by the caller.
#[derive(Clone, Debug)]
pub struct ScorecardQuery {
    pub group: ScorecardGroup,
    pub period: ScorecardPeriod,
    pub from: i64,
    pub to: i64,
    /// Only this agent's row (group `agent`).
    pub agent_id: Option<i64>,
}

fn u(row: &AnyRow, name: &str) -> StoreResult<u64> {
    Ok(row.try_get::<i64, _>(name)?.max(0) as u64)
}

fn ratio(count: u64, of: u64) -> Ratio {
    Ratio::new(count, of)
}

/// The grouped figures of one scorecard row.
#[derive(Default, Clone)]
struct Figures {
    m: [i64; 18],
    eligible_30: i64,
    eligible_90: i64,
}

impl Figures {
    fn read(row: &AnyRow) -> StoreResult<Figures> {
        let mut m = [0i64; 18];
        for (i, name) in METRICS.iter().enumerate() {
            m[i] = row.try_get(*name)?;
        }
        Ok(Figures {
            m,
            eligible_30: row.try_get("eligible_30")?,
            eligible_90: row.try_get("eligible_90")?,
        })
    }

    fn get(&self, name: &str) -> u64 {
        let i = METRICS.iter().position(|m| *m == name).expect("a metric");
        self.m[i].max(0) as u64
    }
}

/// `SUM`s of the metrics and the retention denominators as of `today`.
fn figure_sums(today: i64) -> String {
    let mut sql = list(&METRICS, |m| format!("CAST(SUM({m}) AS BIGINT) AS {m}"));
    sql.push_str(&format!(
        ", CAST(SUM(CASE WHEN d <= {} THEN ended ELSE retained_30 END) AS BIGINT) AS eligible_30, \
         CAST(SUM(CASE WHEN d <= {} THEN ended ELSE retained_90 END) AS BIGINT) AS eligible_90",
        today - 31,
        today - 91
    ));
    sql
}

/// The rollup rows of one dimension and the deltas not folded yet, as one
/// relation `(k, d, metrics…)` over `[$1, $2]`, optionally one key (`$3`).
fn facts_sql(dim: &str, one_key: bool) -> String {
    let metrics = METRICS.join(", ");
    let column = if dim == "agent" {
        "agent_id"
    } else {
        "queue_id"
    };
    let (rollup_key, delta_key) = if one_key {
        (" AND key = $3", format!(" AND {column} = $3"))
    } else {
        ("", String::new())
    };
    format!(
        "SELECT key AS k, ended_day AS d, {metrics} FROM quality_rollup \
         WHERE dim = '{dim}' AND ended_day >= $1 AND ended_day <= $2{rollup_key} \
         UNION ALL \
         SELECT {column} AS k, ended_day AS d, {metrics} FROM quality_deltas \
         WHERE ended_day >= $1 AND ended_day <= $2{delta_key}"
    )
}

/// Which row a group belongs to: (period start, id, team).
type RowKey = (i64, i64, String);

#[derive(Default)]
struct Reasons {
    refusals: BTreeMap<String, u64>,
    churn: BTreeMap<String, u64>,
}

/// A scorecard: figures per group and period.
pub async fn scorecard(db: &Db, q: &ScorecardQuery, today: i64) -> StoreResult<Scorecard> {
    let starts = period_starts(q.period, q.from, q.to);
    let bucket = bucket_sql(q.period, &starts, "d");
    let one_key = q.agent_id.is_some() && q.group == ScorecardGroup::Agent;
    let (dim, select_key, join) = match q.group {
        ScorecardGroup::Agent => ("agent", "x.k AS g_id, '' AS g_team", ""),
        ScorecardGroup::Queue => ("queue", "x.k AS g_id, '' AS g_team", ""),
        ScorecardGroup::All => ("queue", "0 AS g_id, '' AS g_team", ""),
        ScorecardGroup::Team => (
            "agent",
            "0 AS g_id, m.team AS g_team",
            "JOIN agent_teams m ON m.user_id = x.k",
        ),
    };
    let sql = format!(
        "SELECT {select_key}, {bucket} AS g_bucket, {sums} \
         FROM ({facts}) x {join} GROUP BY 1, 2, 3 HAVING SUM(ended) <> 0",
        sums = figure_sums(today),
        facts = facts_sql(dim, one_key),
    );
    let mut query = sqlx::query(&sql).bind(q.from).bind(q.to);
    if one_key {
        query = query.bind(q.agent_id.unwrap_or_default());
    }
    let mut figures: BTreeMap<RowKey, Figures> = BTreeMap::new();
    for row in query.fetch_all(db.pool()).await? {
        let key = (
            row.try_get::<i64, _>("g_bucket")?,
            row.try_get::<i64, _>("g_id")?,
            row.try_get::<String, _>("g_team")?,
        );
        figures.insert(key, Figures::read(&row)?);
    }
    let reasons = refusal_reasons(db, q, &starts).await?;

    let names = names(db, q.group).await?;
    let mut keys: Vec<RowKey> = figures.keys().chain(reasons.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    let name_of = |key: &RowKey| -> String {
        match q.group {
            ScorecardGroup::Team => key.2.clone(),
            ScorecardGroup::All => "all".to_string(),
            ScorecardGroup::Agent if key.1 == 0 => "(no agent)".to_string(),
            _ => names
                .get(&key.1)
                .cloned()
                .unwrap_or_else(|| format!("#{}", key.1)),
        }
    };
    let mut rows: Vec<ScorecardRow> = keys
        .iter()
        .map(|key| {
            let f = figures.get(key).cloned().unwrap_or_default();
            let r = reasons.get(key);
            let (start, end) = period_of(&starts, key.0, q.to);
            row_of(q.group, key, name_of(key), start, end, &f, r)
        })
        .collect();
    // Period order, then name: never a figure.
    rows.sort_by(|a, b| {
        (
            a.period_start.as_str(),
            a.name.as_str(),
            a.agent_id,
            a.queue_id,
        )
            .cmp(&(
                b.period_start.as_str(),
                b.name.as_str(),
                b.agent_id,
                b.queue_id,
            ))
    });
    Ok(Scorecard {
        group: q.group,
        period: q.period,
        from: day_text(q.from),
        to: day_text(q.to),
        as_of: day_text(today),
        rows,
    })
}

fn period_of(starts: &[i64], start: i64, to: i64) -> (i64, i64) {
    let end = starts
        .iter()
        .find(|s| **s > start)
        .map(|next| next - 1)
        .unwrap_or(to);
    (start, end)
}

fn row_of(
    group: ScorecardGroup,
    key: &RowKey,
    name: String,
    start: i64,
    end: i64,
    f: &Figures,
    reasons: Option<&Reasons>,
) -> ScorecardRow {
    let ended = f.get("ended");
    let resolved = f.get("resolved");
    let confirmed = f.get("confirmed");
    let denied = f.get("denied");
    let retained_90 = f.get("retained_90");
    let compensation_minor = f.m[16];
    let tallies = |m: Option<&BTreeMap<String, u64>>| -> Vec<ReasonTally> {
        m.map(|m| {
            m.iter()
                .map(|(reason_code, count)| ReasonTally {
                    reason_code: reason_code.clone(),
                    count: *count,
                })
                .collect()
        })
        .unwrap_or_default()
    };
    ScorecardRow {
        period_start: day_text(start),
        period_end: day_text(end),
        agent_id: (group == ScorecardGroup::Agent).then_some(key.1),
        team: (group == ScorecardGroup::Team).then(|| key.2.clone()),
        queue_id: (group == ScorecardGroup::Queue).then_some(key.1),
        name,
        ended,
        resolved,
        confirmations: ConfirmationCounts {
            awaiting: f.get("asked"),
            confirmed,
            denied,
            expired: f.get("expired"),
        },
        confirmed_of_answered: ratio(confirmed, confirmed + denied),
        confirmed_of_resolved: ratio(confirmed, resolved),
        first_contact_resolution: ratio(f.get("fcr"), ended),
        reopened: ratio(f.get("reopened"), ended),
        satisfaction: Satisfaction::from_counts([
            f.get("sat_1"),
            f.get("sat_2"),
            f.get("sat_3"),
            f.get("sat_4"),
            f.get("sat_5"),
        ]),
        retained_30: ratio(f.get("retained_30"), f.eligible_30.max(0) as u64),
        retained_90: ratio(retained_90, f.eligible_90.max(0) as u64),
        compensated: f.get("compensated"),
        compensation_minor,
        compensation_per_retained_minor: (retained_90 > 0)
            .then(|| compensation_minor.div_euclid(retained_90 as i64)),
        handle_ms_total: f.m[17],
        refusal_reasons: tallies(reasons.map(|r| &r.refusals)),
        churn_reasons: tallies(reasons.map(|r| &r.churn)),
    }
}

/// Refused outbound calls by group, period and reason (churn: on renewal calls).
async fn refusal_reasons(
    db: &Db,
    q: &ScorecardQuery,
    starts: &[i64],
) -> StoreResult<HashMap<RowKey, Reasons>> {
    let bucket = bucket_sql(q.period, starts, "x.d");
    // The call's agent and queue are its ticket's: looked up per refused
    // call (few), by primary key.
    let agent = "(SELECT t.assigned_agent_id FROM tickets t WHERE t.id = c.ticket_id)";
    let queue = "(SELECT t.queue_id FROM tickets t WHERE t.id = c.ticket_id)";
    let (who, select_key, join) = match q.group {
        ScorecardGroup::Agent => (agent, "COALESCE(x.g, 0) AS g_id, '' AS g_team", ""),
        ScorecardGroup::Queue => (queue, "x.g AS g_id, '' AS g_team", ""),
        ScorecardGroup::All => ("0", "0 AS g_id, '' AS g_team", ""),
        ScorecardGroup::Team => (
            agent,
            "0 AS g_id, m.team AS g_team",
            "JOIN agent_teams m ON m.user_id = x.g",
        ),
    };
    let one_agent = q.group == ScorecardGroup::Agent && q.agent_id.is_some();
    let sql = format!(
        "SELECT {select_key}, {bucket} AS g_bucket, x.reason, x.churn, CAST(COUNT(*) AS BIGINT) AS n \
         FROM (SELECT {who} AS g, c.fired_at_ms / {DAY_MS} AS d, \
                   COALESCE(c.reason_code, '') AS reason, \
                   CASE WHEN j.trigger_kind = 'membership_end' THEN 1 ELSE 0 END AS churn \
               FROM outbound_calls c LEFT JOIN journeys j ON j.id = c.journey_id \
               WHERE c.outcome = 'refused' AND c.fired_at_ms >= $1 AND c.fired_at_ms < $2) x \
         {join} {filter} GROUP BY 1, 2, 3, 4, 5",
        filter = if one_agent { "WHERE x.g = $3" } else { "" },
    );
    let mut query = sqlx::query(&sql)
        .bind(q.from * DAY_MS)
        .bind((q.to + 1) * DAY_MS);
    if one_agent {
        query = query.bind(q.agent_id.unwrap_or_default());
    }
    let mut out: HashMap<RowKey, Reasons> = HashMap::new();
    for row in query.fetch_all(db.pool()).await? {
        let key = (
            row.try_get::<i64, _>("g_bucket")?,
            row.try_get::<i64, _>("g_id")?,
            row.try_get::<String, _>("g_team")?,
        );
        let reason: String = row.try_get("reason")?;
        let n = u(&row, "n")?;
        let entry = out.entry(key).or_default();
        *entry.refusals.entry(reason.clone()).or_default() += n;
        if row.try_get::<i64, _>("churn")? == 1 {
            *entry.churn.entry(reason).or_default() += n;
        }
    }
    Ok(out)
}

async fn names(db: &Db, group: ScorecardGroup) -> StoreResult<HashMap<i64, String>> {
    let sql = match group {
        ScorecardGroup::Agent => {
            "SELECT u.id AS id, u.display_name AS name FROM users u JOIN agents a ON a.user_id = u.id"
        }
        ScorecardGroup::Queue => "SELECT id, name FROM queues",
        _ => return Ok(HashMap::new()),
    };
    sqlx::query(sql)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
        .collect()
}

// ------------------------------------------------ compensation and retention

pub fn value_band_label(band: u8) -> &'static str {
    match band {
        0 => "under 10,000",
        1 => "10,000 to 99,999",
        2 => "100,000 to 999,999",
        _ => "1,000,000 and above",
    }
}

/// Retention of compensated complaints against comparable uncompensated
/// ones, ended in `[from, to]` (days).
pub async fn compensation_retention(
    db: &Db,
    from: i64,
    to: i64,
    today: i64,
) -> StoreResult<CompensationRetention> {
    let metrics = STRATA_METRICS.join(", ");
    let sql = format!(
        "SELECT x.category_id, x.tier, x.value_band, x.comp, \
             CAST(SUM(x.ended) AS BIGINT) AS ended, \
             CAST(SUM(x.retained_30) AS BIGINT) AS retained_30, \
             CAST(SUM(x.retained_90) AS BIGINT) AS retained_90, \
             CAST(SUM(x.compensation_minor) AS BIGINT) AS compensation_minor, \
             CAST(SUM(CASE WHEN x.d <= {cut30} THEN x.ended ELSE x.retained_30 END) AS BIGINT) AS eligible_30, \
             CAST(SUM(CASE WHEN x.d <= {cut90} THEN x.ended ELSE x.retained_90 END) AS BIGINT) AS eligible_90 \
         FROM (SELECT ended_day AS d, category_id, tier, value_band, compensated AS comp, {metrics} \
               FROM quality_strata_rollup WHERE ended_day >= $1 AND ended_day <= $2 \
               UNION ALL \
               SELECT ended_day AS d, category_id, tier, value_band, ABS(compensated) AS comp, {metrics} \
               FROM quality_deltas WHERE ended_day >= $1 AND ended_day <= $2) x \
         GROUP BY x.category_id, x.tier, x.value_band, x.comp HAVING SUM(x.ended) <> 0",
        cut30 = today - 31,
        cut90 = today - 91,
    );
    let categories: HashMap<i64, String> = sqlx::query("SELECT id, name FROM categories")
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
        .collect::<StoreResult<_>>()?;
    let mut strata: BTreeMap<(String, i64, String, i64), CompensationStratum> = BTreeMap::new();
    for row in sqlx::query(&sql)
        .bind(from)
        .bind(to)
        .fetch_all(db.pool())
        .await?
    {
        let category_id: i64 = row.try_get("category_id")?;
        let tier: String = row.try_get("tier")?;
        let band = row.try_get::<i64, _>("value_band")?.clamp(0, 3) as u8;
        let category = categories
            .get(&category_id)
            .cloned()
            .unwrap_or_else(|| format!("#{category_id}"));
        let side = StratumSide {
            complaints: u(&row, "ended")?,
            compensation_minor: row.try_get("compensation_minor")?,
            retained_30: ratio(u(&row, "retained_30")?, u(&row, "eligible_30")?),
            retained_90: ratio(u(&row, "retained_90")?, u(&row, "eligible_90")?),
        };
        let stratum = strata
            .entry((category.clone(), category_id, tier.clone(), band as i64))
            .or_insert_with(|| CompensationStratum {
                category_id,
                category,
                tier,
                value_band: band,
                value_band_label: value_band_label(band).to_string(),
                compensated: StratumSide::default(),
                uncompensated: StratumSide::default(),
                comparable: false,
            });
        if row.try_get::<i64, _>("comp")? != 0 {
            stratum.compensated = side;
        } else {
            stratum.uncompensated = side;
        }
    }
    let mut strata: Vec<CompensationStratum> = strata.into_values().collect();
    let mut total_comp = Side::default();
    let mut total_uncomp = Side::default();
    let mut standardized = [(0f64, 0u64); 2];
    for s in &mut strata {
        s.comparable = s.compensated.complaints > 0 && s.uncompensated.complaints > 0;
        if !s.comparable {
            continue;
        }
        total_comp.add(&s.compensated);
        total_uncomp.add(&s.uncompensated);
        for (i, (c, n)) in [
            (s.compensated.retained_30, s.uncompensated.retained_30),
            (s.compensated.retained_90, s.uncompensated.retained_90),
        ]
        .into_iter()
        .enumerate()
        {
            if c.of > 0 && n.of > 0 {
                standardized[i].0 += c.of as f64 * n.count as f64 / n.of as f64;
                standardized[i].1 += c.of;
            }
        }
    }
    let permille = |(sum, weight): (f64, u64)| -> Option<u32> {
        (weight > 0).then(|| (sum * 1000.0 / weight as f64).floor() as u32)
    };
    Ok(CompensationRetention {
        from: day_text(from),
        to: day_text(to),
        as_of: day_text(today),
        strata,
        comparable: CompensationComparison {
            compensated: total_comp.side(),
            uncompensated: total_uncomp.side(),
            uncompensated_standardized_30_permille: permille(standardized[0]),
            uncompensated_standardized_90_permille: permille(standardized[1]),
        },
    })
}

#[derive(Default)]
struct Side {
    complaints: u64,
    compensation_minor: i64,
    r30: (u64, u64),
    r90: (u64, u64),
}

impl Side {
    fn add(&mut self, s: &StratumSide) {
        self.complaints += s.complaints;
        self.compensation_minor += s.compensation_minor;
        self.r30.0 += s.retained_30.count;
        self.r30.1 += s.retained_30.of;
        self.r90.0 += s.retained_90.count;
        self.r90.1 += s.retained_90.of;
    }
    fn side(&self) -> StratumSide {
        StratumSide {
            complaints: self.complaints,
            compensation_minor: self.compensation_minor,
            retained_30: ratio(self.r30.0, self.r30.1),
            retained_90: ratio(self.r90.0, self.r90.1),
        }
    }
}

// ---------------------------------------------------------------- today

/// Today's figures per queue (complaints ended on `day`), from the rollup
/// and the deltas of that one day.
pub async fn today_by_queue(db: &Db, day: i64) -> StoreResult<HashMap<i64, QualityToday>> {
    let metrics = METRICS.join(", ");
    let sums = list(&METRICS, |m| format!("CAST(SUM({m}) AS BIGINT) AS {m}"));
    let sql = format!(
        "SELECT x.k AS queue_id, {sums} FROM ( \
             SELECT key AS k, {metrics} FROM quality_rollup WHERE dim = 'queue' AND ended_day = $1 \
             UNION ALL \
             SELECT queue_id AS k, {metrics} FROM quality_deltas WHERE ended_day = $1) x \
         GROUP BY x.k HAVING SUM(ended) <> 0"
    );
    let mut out = HashMap::new();
    for row in sqlx::query(&sql).bind(day).fetch_all(db.reads()).await? {
        let g = |name: &str| u(&row, name);
        out.insert(
            row.try_get::<i64, _>("queue_id")?,
            QualityToday {
                ended: g("ended")?,
                resolved: g("resolved")?,
                confirmations: ConfirmationCounts {
                    awaiting: g("asked")?,
                    confirmed: g("confirmed")?,
                    denied: g("denied")?,
                    expired: g("expired")?,
                },
                first_contact_resolved: g("fcr")?,
                reopened: g("reopened")?,
                satisfaction: Satisfaction::from_counts([
                    g("sat_1")?,
                    g("sat_2")?,
                    g("sat_3")?,
                    g("sat_4")?,
                    g("sat_5")?,
                ]),
            },
        );
    }
    Ok(out)
}

/// The sum of several queues' figures.
pub fn sum_today<'a>(figures: impl Iterator<Item = &'a QualityToday>) -> QualityToday {
    let mut total = QualityToday::default();
    let mut sat = [0u64; 5];
    for f in figures {
        total.ended += f.ended;
        total.resolved += f.resolved;
        total.confirmations.awaiting += f.confirmations.awaiting;
        total.confirmations.confirmed += f.confirmations.confirmed;
        total.confirmations.denied += f.confirmations.denied;
        total.confirmations.expired += f.confirmations.expired;
        total.first_contact_resolved += f.first_contact_resolved;
        total.reopened += f.reopened;
        for (i, c) in f.satisfaction.counts.iter().enumerate() {
            sat[i] += c;
        }
    }
    total.satisfaction = Satisfaction::from_counts(sat);
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> i64 {
        day_of(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
    }

    #[test]
    fn days_round_trip() {
        assert_eq!(d("1970-01-01"), 0);
        assert_eq!(day_text(d("2026-11-23")), "2026-11-23");
        assert_eq!(today(d("2026-11-23") * DAY_MS + 5), d("2026-11-23"));
    }

    #[test]
    fn weeks_start_on_monday_and_are_cut_at_the_ends() {
        // 2026-11-04 is a Wednesday; the Mondays after it are the 9th and 16th.
        let starts = period_starts(ScorecardPeriod::Week, d("2026-11-04"), d("2026-11-18"));
        assert_eq!(
            starts,
            vec![d("2026-11-04"), d("2026-11-09"), d("2026-11-16")]
        );
        assert_eq!(
            period_of(&starts, d("2026-11-09"), d("2026-11-18")),
            (d("2026-11-09"), d("2026-11-15"))
        );
        assert_eq!(
            period_of(&starts, d("2026-11-16"), d("2026-11-18")),
            (d("2026-11-16"), d("2026-11-18"))
        );
    }

    #[test]
    fn months_follow_the_calendar_across_a_year_end() {
        let starts = period_starts(ScorecardPeriod::Month, d("2025-12-15"), d("2026-02-10"));
        assert_eq!(
            starts,
            vec![d("2025-12-15"), d("2026-01-01"), d("2026-02-01")]
        );
        assert_eq!(
            period_of(&starts, d("2026-01-01"), d("2026-02-10")),
            (d("2026-01-01"), d("2026-01-31"))
        );
    }

    #[test]
    fn bucket_sql_maps_each_day_to_its_period_start() {
        let starts = vec![10, 14, 21];
        assert_eq!(
            bucket_sql(ScorecardPeriod::Month, &starts, "d"),
            "CASE WHEN d >= 21 THEN 21 WHEN d >= 14 THEN 14 ELSE 10 END"
        );
        assert_eq!(bucket_sql(ScorecardPeriod::Range, &starts, "d"), "10");
        assert_eq!(bucket_sql(ScorecardPeriod::Day, &starts, "d"), "d");
    }

    #[test]
    fn ratios_round_down_and_have_no_rate_without_a_denominator() {
        assert_eq!(Ratio::new(2, 3).permille, Some(666));
        assert_eq!(Ratio::new(0, 0).permille, None);
    }
}
