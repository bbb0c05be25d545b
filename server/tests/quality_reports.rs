//! Quality reports (issue 7): scorecards, the compensation/retention
//! comparison and today's quality on the supervisor board.
//!
//! Figures are checked on hand-built histories: rows of `ticket_quality`
//! (and outbound calls) written straight into the record, as the quality
//! record would write them, so each definition can be pinned to exact days.
//! The reports only read that table (through the rollups its triggers
//! feed), so this tests them without depending on how the rows were made;
//! `scorecard_follows_the_quality_record_through_the_api` and the board
//! test make their rows through the real API instead.

mod support;

use callcenter::clock::Clock;
use callcenter::store::Db;
use callcenter_proto::http::Outcome;
use callcenter_proto::quality::{CompensationRetention, Ratio, Scorecard, ScorecardRow};
use callcenter_proto::ws::{Command, ReplyResult, ServerEvent};
use chrono::{Datelike, Weekday};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;
use support::{Live, Storage, TestApp, spawn_app};

const DAY: i64 = 86_400_000;

macro_rules! on_both_databases {
    ($($story:ident),* $(,)?) => {
        $(
            mod $story {
                use super::support::{Live, Storage, spawn_app};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(app) = spawn_app(Storage::Sqlite, Live::Memory).await { super::$story(app).await }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = spawn_app(Storage::Postgres, Live::Memory).await { super::$story(app).await }
                }
            }
        )*
    };
}

on_both_databases!(
    each_figure_follows_its_definition,
    rollups_agree_with_the_fact_table_before_and_after_folding,
    compensated_customers_are_compared_within_their_strata,
    agents_see_only_their_own_scorecard,
    every_report_exports_csv,
    scorecard_follows_the_quality_record_through_the_api,
);

// ------------------------------------------------------------ hand-built

/// The record, opened next to the server for hand-built rows.
async fn record(app: &TestApp) -> Db {
    Db::connect_only(&app.database_url).await.expect("database")
}

fn today(app: &TestApp) -> i64 {
    app.clock.now_ms().div_euclid(DAY)
}

fn date(day: i64) -> String {
    (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(day))
        .format("%Y-%m-%d")
        .to_string()
}

async fn customer(app: &TestApp, external_id: &str, tier: &str, value_minor: i64) -> i64 {
    let reply = app
        .post(
            "/api/customers",
            &app.admin_token,
            &json!({ "external_id": external_id, "name": "Customer", "tier": tier,
                     "value_minor": value_minor }),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.body);
    reply.body["id"].as_i64().unwrap()
}

/// An agent with display name `name` in `teams`.
async fn agent_in(app: &TestApp, username: &str, teams: &[&str]) -> (i64, String) {
    let (id, token) = app.agent(username, &[("care", 5)], 2).await;
    let reply = app
        .put(
            &format!("/api/admin/agents/{id}"),
            &app.admin_token,
            &json!({ "skills": [{ "skill": "care", "level": 5 }], "teams": teams,
                     "capacity_inbound": 2, "capacity_outbound": 1 }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (id, token)
}

/// One ended complaint as the quality record stores it.
#[derive(Clone, Debug)]
struct Fact {
    customer: i64,
    category: i64,
    queue: i64,
    agent: Option<i64>,
    /// Days before today it ended (0: today).
    days_ago: i64,
    resolved: bool,
    first_contact: bool,
    confirmation: &'static str,
    satisfaction: Option<i64>,
    reopened: bool,
    retained_30: bool,
    retained_90: bool,
    compensation_minor: i64,
    handle_ms: i64,
}

impl Fact {
    fn new(customer: i64, category: i64, queue: i64, agent: Option<i64>, days_ago: i64) -> Fact {
        Fact {
            customer,
            category,
            queue,
            agent,
            days_ago,
            resolved: true,
            first_contact: true,
            confirmation: "none",
            satisfaction: None,
            reopened: false,
            retained_30: false,
            retained_90: false,
            compensation_minor: 0,
            handle_ms: 60_000,
        }
    }
}

/// Write a ticket and its quality row; returns the ticket id.
async fn write(db: &Db, now_ms: i64, f: &Fact) -> i64 {
    let ended = now_ms - f.days_ago * DAY;
    let ticket: i64 = sqlx::query(
        "INSERT INTO tickets (kind, status, customer_id, category_id, queue_id, channel, description, \
             rank_ms, assigned_agent_id, created_at_ms, updated_at_ms, resolved_at_ms, outcome_code, \
             outcome_resolved) \
         VALUES ('inbound', 'resolved', $1, $2, $3, 'phone', 'hand-built', $4, $5, $4, $6, $6, 'fixed', $7) \
         RETURNING id",
    )
    .bind(f.customer)
    .bind(f.category)
    .bind(f.queue)
    .bind(ended - 600_000)
    .bind(f.agent)
    .bind(ended)
    .bind(f.resolved as i64)
    .fetch_one(db.pool())
    .await
    .expect("ticket")
    .try_get("id")
    .unwrap();
    sqlx::query(
        "INSERT INTO ticket_quality (ticket_id, customer_id, category_id, queue_id, agent_id, \
             ended_at_ms, ended_day, resolved, resolution_code, first_contact, confirmation, \
             satisfaction, reopened, retained_30, retained_90, compensation_minor, handle_ms, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'fixed', $9, $10, $11, $12, $13, $14, $15, $16, $16)",
    )
    .bind(ticket)
    .bind(f.customer)
    .bind(f.category)
    .bind(f.queue)
    .bind(f.agent)
    .bind(ended)
    .bind(ended.div_euclid(DAY))
    .bind(f.resolved as i64)
    .bind(f.first_contact as i64)
    .bind(f.confirmation)
    .bind(f.satisfaction)
    .bind(f.reopened as i64)
    .bind(f.retained_30 as i64)
    .bind(f.retained_90 as i64)
    .bind(f.compensation_minor)
    .bind(f.handle_ms)
    .execute(db.pool())
    .await
    .expect("quality row");
    ticket
}

/// A journey row (for refusal and churn reasons).
async fn journey(db: &Db, name: &str, trigger: &str) -> i64 {
    sqlx::query(
        "INSERT INTO journeys (name, trigger_kind, active, current_version, created_at_ms) \
         VALUES ($1, $2, 1, 1, 0) RETURNING id",
    )
    .bind(name)
    .bind(trigger)
    .fetch_one(db.pool())
    .await
    .expect("journey")
    .try_get("id")
    .unwrap()
}

/// An outbound call of `journey` that `agent` made `days_ago` and the
/// customer refused with `reason`.
#[allow(clippy::too_many_arguments)]
async fn refused_call(
    db: &Db,
    now_ms: i64,
    customer: i64,
    category: i64,
    queue: i64,
    agent: i64,
    journey: i64,
    days_ago: i64,
    reason: &str,
) {
    let at = now_ms - days_ago * DAY;
    let ticket: i64 = sqlx::query(
        "INSERT INTO tickets (kind, status, customer_id, category_id, queue_id, channel, description, \
             rank_ms, assigned_agent_id, created_at_ms, updated_at_ms, resolved_at_ms) \
         VALUES ('outbound', 'resolved', $1, $2, $3, 'phone', 'call', $4, $5, $4, $4, $4) RETURNING id",
    )
    .bind(customer)
    .bind(category)
    .bind(queue)
    .bind(at)
    .bind(agent)
    .fetch_one(db.pool())
    .await
    .expect("call ticket")
    .try_get("id")
    .unwrap();
    sqlx::query(
        "INSERT INTO outbound_calls (dedupe_key, customer_id, chain_id, journey_id, source_kind, \
             source_id, purposes, category_id, status, due_at_ms, ticket_id, fired_at_ms, outcome, \
             reason_code, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, NULL, $3, 'test', 0, '[]', $4, 'done', $5, $6, $5, 'refused', $7, $5, $5)",
    )
    .bind(format!("call-{ticket}"))
    .bind(customer)
    .bind(journey)
    .bind(category)
    .bind(at)
    .bind(ticket)
    .bind(reason)
    .execute(db.pool())
    .await
    .expect("outbound call");
}

async fn card(app: &TestApp, token: &str, query: &str) -> Scorecard {
    let reply = app
        .get(&format!("/api/reports/scorecard?{query}"), token)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
    reply.json()
}

fn ratio(count: u64, of: u64) -> Ratio {
    Ratio::new(count, of)
}

fn row<'a>(card: &'a Scorecard, name: &str) -> &'a ScorecardRow {
    card.rows
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no row {name} in {:?}", card.rows))
}

// ------------------------------------------------------------ definitions

async fn each_figure_follows_its_definition(app: TestApp) {
    let db = record(&app).await;
    let now = app.clock.now_ms();
    let t = today(&app);
    let (q1, c1) = app.queue("billing", &[("care", 1)], 30).await;
    let (q2, c2) = app.queue("delivery", &[("care", 1)], 30).await;
    let (a, _) = agent_in(&app, "anna", &["care", "night"]).await;
    let (b, _) = agent_in(&app, "boris", &["care"]).await;
    let x = customer(&app, "x", "gold", 120_000).await;
    let y = customer(&app, "y", "silver", 5_000).await;

    // 1: first contact, confirmed, satisfied; 40 days ago, not retained:
    //    its 30-day window has passed (counts), its 90-day one has not.
    let mut f1 = Fact::new(x, c1, q1, Some(a), 40);
    f1.confirmation = "confirmed";
    f1.satisfaction = Some(5);
    // 2: confirmed but not a first contact; retained, compensated.
    let mut f2 = Fact::new(x, c1, q1, Some(a), 40);
    f2.first_contact = false;
    f2.confirmation = "confirmed";
    f2.satisfaction = Some(4);
    f2.retained_30 = true;
    f2.retained_90 = true;
    f2.compensation_minor = 1500;
    // 3: denied and reopened, 100 days ago: both windows passed.
    let mut f3 = Fact::new(y, c2, q2, Some(a), 100);
    f3.confirmation = "denied";
    f3.satisfaction = Some(2);
    f3.reopened = true;
    // 4: not resolved, 10 days ago, not retained: in no retention denominator.
    let mut f4 = Fact::new(y, c1, q1, Some(b), 10);
    f4.resolved = false;
    // 5: asked, no answer yet; retained within the window: counts at once.
    let mut f5 = Fact::new(x, c1, q1, Some(b), 10);
    f5.confirmation = "asked";
    f5.retained_30 = true;
    f5.retained_90 = true;
    // 6: ended without an agent; the confirmation expired.
    let mut f6 = Fact::new(y, c2, q2, None, 1);
    f6.confirmation = "expired";
    // 7: today; confirmed later (an update of the row).
    let f7 = Fact::new(x, c2, q2, Some(b), 0);
    for f in [&f1, &f2, &f3, &f4, &f5, &f6] {
        write(&db, now, f).await;
    }
    let t7 = write(&db, now, &f7).await;
    sqlx::query(
        "UPDATE ticket_quality SET confirmation = 'confirmed', satisfaction = 3, \
             compensation_minor = 700 WHERE ticket_id = $1",
    )
    .bind(t7)
    .execute(db.pool())
    .await
    .unwrap();
    // Refusals: two on renewal calls (churn), one on a check-in call.
    let renewal = journey(&db, "renewal", "membership_end").await;
    let check_in = journey(&db, "check-in", "purchase").await;
    refused_call(&db, now, x, c1, q1, a, renewal, 3, "too_expensive").await;
    refused_call(&db, now, y, c1, q1, a, renewal, 4, "too_expensive").await;
    refused_call(&db, now, y, c1, q1, a, check_in, 4, "not_interested").await;
    refused_call(&db, now, x, c2, q2, b, renewal, 5, "moved_away").await;
    // Before the period: not counted.
    refused_call(&db, now, x, c2, q2, b, renewal, 200, "moved_away").await;

    let range = format!("from={}&to={}", date(t - 120), date(t));
    let all = card(&app, &app.admin_token, &format!("group=all&{range}")).await;
    assert_eq!(all.as_of, date(t));
    assert_eq!(all.rows.len(), 1, "{:?}", all.rows);
    let r = &all.rows[0];
    assert_eq!(
        (r.period_start.as_str(), r.period_end.as_str()),
        (date(t - 120).as_str(), date(t).as_str())
    );
    assert_eq!((r.ended, r.resolved), (7, 6));
    assert_eq!(
        (
            r.confirmations.awaiting,
            r.confirmations.confirmed,
            r.confirmations.denied,
            r.confirmations.expired
        ),
        (1, 3, 1, 1)
    );
    assert_eq!(r.confirmed_of_answered, ratio(3, 4));
    assert_eq!(r.confirmed_of_answered.permille, Some(750));
    assert_eq!(r.confirmed_of_resolved, ratio(3, 6));
    // First contact, resolved and confirmed: 1 and 7 (2 was no first contact).
    assert_eq!(r.first_contact_resolution, ratio(2, 7));
    assert_eq!(r.reopened, ratio(1, 7));
    assert_eq!(r.satisfaction.counts, [0, 1, 1, 1, 1]);
    assert_eq!(r.satisfaction.n, 4);
    // 30 days: 1, 2, 3 have had their 30 days; 5 is retained early.
    assert_eq!(r.retained_30, ratio(2, 4));
    // 90 days: only 3 has had its 90 days; 2 and 5 are retained.
    assert_eq!(r.retained_90, ratio(2, 3));
    assert_eq!((r.compensated, r.compensation_minor), (2, 2200));
    assert_eq!(r.compensation_per_retained_minor, Some(1100));
    assert_eq!(r.handle_ms_total, 7 * 60_000);
    fn reasons(t: &[callcenter_proto::quality::ReasonTally]) -> Vec<(&str, u64)> {
        t.iter()
            .map(|t| (t.reason_code.as_str(), t.count))
            .collect()
    }
    assert_eq!(
        reasons(&r.refusal_reasons),
        [
            ("moved_away", 1),
            ("not_interested", 1),
            ("too_expensive", 2)
        ]
    );
    assert_eq!(
        reasons(&r.churn_reasons),
        [("moved_away", 1), ("too_expensive", 2)]
    );

    // Per agent: the complaint without an agent has its own row.
    let agents = card(&app, &app.admin_token, &format!("group=agent&{range}")).await;
    let names: Vec<&str> = agents.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["(no agent)", "anna", "boris"]);
    let anna = row(&agents, "anna");
    assert_eq!(anna.agent_id, Some(a));
    assert_eq!((anna.ended, anna.confirmed_of_answered), (3, ratio(2, 3)));
    assert_eq!(anna.first_contact_resolution, ratio(1, 3));
    assert_eq!(anna.retained_90, ratio(1, 2));
    assert_eq!(reasons(&anna.churn_reasons), [("too_expensive", 2)]);
    let boris = row(&agents, "boris");
    assert_eq!((boris.ended, boris.resolved), (3, 2));
    assert_eq!(boris.satisfaction.counts, [0, 0, 1, 0, 0]);
    assert_eq!(reasons(&boris.refusal_reasons), [("moved_away", 1)]);
    assert_eq!(row(&agents, "(no agent)").agent_id, Some(0));

    // Per team: an agent in two teams counts in both.
    let teams = card(&app, &app.admin_token, &format!("group=team&{range}")).await;
    assert_eq!(row(&teams, "care").ended, 6);
    assert_eq!(row(&teams, "care").team.as_deref(), Some("care"));
    assert_eq!(row(&teams, "night").ended, 3);
    assert_eq!(reasons(&row(&teams, "night").refusal_reasons).len(), 2);

    // Per queue.
    let queues = card(&app, &app.admin_token, &format!("group=queue&{range}")).await;
    let billing = row(&queues, "billing");
    assert_eq!((billing.queue_id, billing.ended), (Some(q1), 4));
    assert_eq!(row(&queues, "delivery").ended, 3);
    assert_eq!(row(&queues, "delivery").reopened, ratio(1, 3));

    // Per day: each day with complaints has a row, in order.
    let days = card(
        &app,
        &app.admin_token,
        &format!("group=all&period=day&from={}&to={}", date(t - 45), date(t)),
    )
    .await;
    let per_day: Vec<(String, u64)> = days
        .rows
        .iter()
        .map(|r| (r.period_start.clone(), r.ended))
        .collect();
    let mut expected = vec![
        (date(t - 40), 2),
        (date(t - 10), 2),
        (date(t - 1), 1),
        (date(t), 1),
    ];
    // Refusal-only days have a row too, with no complaints.
    for d in [3, 4, 5] {
        expected.push((date(t - d), 0));
    }
    expected.sort();
    assert_eq!(per_day, expected);
    assert!(days.rows.iter().all(|r| r.period_start == r.period_end));

    // Per month and week: periods with figures, cut at calendar weeks
    // (Monday to Sunday) or months and at the range's ends, without
    // overlap, adding up to the whole.
    let parse = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    for period in ["week", "month"] {
        let cut = card(
            &app,
            &app.admin_token,
            &format!("group=all&period={period}&{range}"),
        )
        .await;
        assert_eq!(cut.rows.last().unwrap().period_end, date(t), "{period}");
        assert!(
            cut.rows
                .windows(2)
                .all(|w| w[0].period_end < w[1].period_start)
        );
        for r in &cut.rows {
            let (start, end) = (parse(&r.period_start), parse(&r.period_end));
            let next = end.succ_opt().unwrap();
            let (starts_cut, ends_cut) = if period == "week" {
                (
                    start.weekday() == Weekday::Mon,
                    next.weekday() == Weekday::Mon,
                )
            } else {
                (start.day() == 1, next.day() == 1)
            };
            assert!(
                starts_cut || r.period_start == date(t - 120),
                "{period} {r:?}"
            );
            assert!(ends_cut || r.period_end == date(t), "{period} {r:?}");
            assert!(start <= end);
        }
        assert_eq!(cut.rows.iter().map(|r| r.ended).sum::<u64>(), 7, "{period}");
        assert_eq!(
            cut.rows.iter().map(|r| r.retained_30.of).sum::<u64>(),
            4,
            "{period}"
        );
    }

    // A period without complaints has no rows; a narrower one only its own.
    let empty = card(
        &app,
        &app.admin_token,
        &format!("group=all&from={}&to={}", date(t - 300), date(t - 250)),
    )
    .await;
    assert!(empty.rows.is_empty());
    let recent = card(
        &app,
        &app.admin_token,
        &format!("group=all&from={}&to={}", date(t - 2), date(t)),
    )
    .await;
    assert_eq!(recent.rows[0].ended, 2);

    // Bad input is a problem naming the field.
    for (query, field) in [
        (format!("from={}&to={}", date(t), date(t - 1)), "to"),
        (format!("from=2026-13-01&to={}", date(t)), "from"),
        (format!("from={}&to={}", date(t - 800), date(t)), "to"),
        (
            format!("period=day&from={}&to={}", date(t - 100), date(t)),
            "to",
        ),
        (format!("group=queue&agent_id={a}&{range}"), "agent_id"),
        (format!("group=everyone&{range}"), "query"),
    ] {
        let reply = app
            .get(&format!("/api/reports/scorecard?{query}"), &app.admin_token)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            reply.body
        );
        assert_eq!(reply.content_type(), "application/problem+json");
        assert_eq!(
            reply.body["errors"][0]["field"], field,
            "{query}: {}",
            reply.body
        );
    }
}

// ------------------------------------------------------- rollups and folding

/// A deterministic spread of complaints over four months.
async fn spread(app: &TestApp, db: &Db) -> Vec<Fact> {
    let now = app.clock.now_ms();
    let (q1, c1) = app.queue("billing", &[("care", 1)], 30).await;
    let (q2, c2) = app.queue("delivery", &[("care", 1)], 30).await;
    let (a, _) = agent_in(app, "anna", &["care", "night"]).await;
    let (b, _) = agent_in(app, "boris", &["care"]).await;
    let (c, _) = agent_in(app, "clara", &["night"]).await;
    let customers = [
        customer(app, "x", "gold", 120_000).await,
        customer(app, "y", "silver", 5_000).await,
        customer(app, "z", "gold", 2_000_000).await,
    ];
    let mut seed: u64 = 0x5eed;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut facts = Vec::new();
    for _ in 0..240 {
        let (queue, category) = if next(2) == 0 { (q1, c1) } else { (q2, c2) };
        let agent = [Some(a), Some(b), Some(c), None][next(4) as usize];
        let mut f = Fact::new(
            customers[next(3) as usize],
            category,
            queue,
            agent,
            next(130) as i64,
        );
        f.resolved = next(10) < 8;
        f.first_contact = next(10) < 7;
        f.confirmation = ["none", "asked", "confirmed", "denied", "expired"][next(5) as usize];
        f.satisfaction = (next(3) > 0).then(|| 1 + next(5) as i64);
        f.reopened = next(10) == 0;
        f.retained_90 = next(2) == 0;
        f.retained_30 = f.retained_90 && next(2) == 0;
        f.compensation_minor = if next(4) == 0 {
            100 * (1 + next(30) as i64)
        } else {
            0
        };
        f.handle_ms = 1000 * next(900) as i64;
        write(db, now, &f).await;
        facts.push(f);
    }
    facts
}

/// Every group and period of a year around the data, as JSON.
async fn every_card(app: &TestApp) -> Vec<Value> {
    let t = today(app);
    let mut cards = Vec::new();
    for group in ["agent", "team", "queue", "all"] {
        for (period, from) in [
            ("range", t - 365),
            ("month", t - 365),
            ("week", t - 140),
            ("day", t - 60),
        ] {
            let reply = app
                .get(
                    &format!(
                        "/api/reports/scorecard?group={group}&period={period}&from={}&to={}",
                        date(from),
                        date(t)
                    ),
                    &app.admin_token,
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            cards.push(reply.body);
        }
    }
    let reply = app
        .get(
            &format!(
                "/api/reports/compensation-retention?from={}&to={}",
                date(t - 365),
                date(t)
            ),
            &app.admin_token,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    cards.push(reply.body);
    cards
}

async fn pending_deltas(db: &Db) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM quality_deltas")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

/// resolved, confirmation, first_contact, reopened, retained_30,
/// satisfaction, ended_day, retained_90.
type FactRow = (i64, String, i64, i64, i64, Option<i64>, i64, i64);

async fn rollups_agree_with_the_fact_table_before_and_after_folding(app: TestApp) {
    let db = record(&app).await;
    let facts = spread(&app, &db).await;
    // Some rows change after they were written (confirmations, retention).
    sqlx::query(
        "UPDATE ticket_quality SET confirmation = 'confirmed', satisfaction = 5, retained_90 = 1 \
         WHERE ticket_id % 7 = 0",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let before = every_card(&app).await;
    callcenter::quality::scorecards::fold_all(&db)
        .await
        .unwrap();
    assert_eq!(pending_deltas(&db).await, 0);
    let folded = every_card(&app).await;
    assert_eq!(before, folded, "folding changed a report");
    callcenter::quality::scorecards::rebuild(&db).await.unwrap();
    let rebuilt = every_card(&app).await;
    assert_eq!(
        folded, rebuilt,
        "the incremental rollups differ from a rebuild"
    );

    // And the whole-range figures match the fact table summed here.
    let t = today(&app);
    // group=all, period=range (see `every_card`).
    let all: Scorecard = serde_json::from_value(rebuilt[12].clone()).unwrap();
    let rows: Vec<FactRow> = sqlx::query(
        "SELECT resolved, confirmation, first_contact, reopened, retained_30, satisfaction, \
             ended_day, retained_90 FROM ticket_quality",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get("resolved").unwrap(),
            r.try_get("confirmation").unwrap(),
            r.try_get("first_contact").unwrap(),
            r.try_get("reopened").unwrap(),
            r.try_get("retained_30").unwrap(),
            r.try_get("satisfaction").unwrap(),
            r.try_get("ended_day").unwrap(),
            r.try_get("retained_90").unwrap(),
        )
    })
    .collect();
    assert_eq!(rows.len(), facts.len());
    let count = |f: &dyn Fn(&FactRow) -> bool| rows.iter().filter(|r| f(r)).count() as u64;
    let r = &all.rows[0];
    assert_eq!(r.ended, facts.len() as u64);
    assert_eq!(r.resolved, count(&|r| r.0 == 1));
    assert_eq!(r.confirmations.confirmed, count(&|r| r.1 == "confirmed"));
    assert_eq!(
        r.first_contact_resolution.count,
        count(&|r| r.2 == 1 && r.0 == 1 && r.1 == "confirmed")
    );
    assert_eq!(r.reopened.count, count(&|r| r.3 == 1));
    for s in 1..=5 {
        assert_eq!(
            r.satisfaction.counts[s - 1],
            count(&|r| r.5 == Some(s as i64))
        );
    }
    assert_eq!(
        r.retained_30,
        ratio(count(&|r| r.4 == 1), count(&|r| r.4 == 1 || r.6 <= t - 31))
    );
    assert_eq!(
        r.retained_90,
        ratio(count(&|r| r.7 == 1), count(&|r| r.7 == 1 || r.6 <= t - 91))
    );
}

/// The same hand-built data gives the same reports on SQLite and PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_give_identical_reports() {
    let Some(lite) = spawn_app(Storage::Sqlite, Live::Memory).await else {
        return;
    };
    let Some(pg) = spawn_app(Storage::Postgres, Live::Memory).await else {
        return;
    };
    // One clock moment for both (the later one), so "today" is the same.
    lite.clock
        .advance_ms(pg.clock.now_ms() - lite.clock.now_ms());
    let mut cards = Vec::new();
    for app in [&lite, &pg] {
        let db = record(app).await;
        spread(app, &db).await;
        let mut reports = every_card(app).await;
        // Ids are the databases' own; names identify the rows.
        for report in &mut reports {
            if let Some(rows) = report["rows"].as_array_mut() {
                for row in rows {
                    row.as_object_mut().unwrap().remove("agent_id");
                    row.as_object_mut().unwrap().remove("queue_id");
                }
            }
            if let Some(strata) = report["strata"].as_array_mut() {
                for s in strata {
                    s.as_object_mut().unwrap().remove("category_id");
                }
            }
        }
        cards.push(reports);
    }
    assert!(
        cards[0]
            .iter()
            .any(|c| c["rows"].as_array().is_some_and(|r| r.len() > 3))
    );
    assert_eq!(cards[0], cards[1]);
}

// ------------------------------------------------- compensation / retention

async fn compensated_customers_are_compared_within_their_strata(app: TestApp) {
    let db = record(&app).await;
    let now = app.clock.now_ms();
    let t = today(&app);
    let (q1, c1) = app.queue("billing", &[("care", 1)], 30).await;
    let (q2, c2) = app.queue("delivery", &[("care", 1)], 30).await;
    let gold = customer(&app, "gold-1", "gold", 150_000).await;
    let gold_small = customer(&app, "gold-2", "gold", 5_000).await;
    // Billing, gold, 100,000 to 999,999: 2 compensated (1 kept within 30
    // days), 4 not (1 kept) — all 100 days ago, so every window has passed.
    for (comp, kept) in [
        (500, true),
        (800, false),
        (0, true),
        (0, false),
        (0, false),
        (0, false),
    ] {
        let mut f = Fact::new(gold, c1, q1, None, 100);
        f.compensation_minor = comp;
        f.retained_30 = kept;
        f.retained_90 = kept;
        write(&db, now, &f).await;
    }
    // Billing, gold, under 10,000: 1 compensated and kept, 1 not, not kept.
    for (comp, kept) in [(300, true), (0, false)] {
        let mut f = Fact::new(gold_small, c1, q1, None, 100);
        f.compensation_minor = comp;
        f.retained_30 = kept;
        f.retained_90 = kept;
        write(&db, now, &f).await;
    }
    // Delivery: only uncompensated complaints: nothing to compare with.
    write(&db, now, &Fact::new(gold, c2, q2, None, 100)).await;
    // A compensation granted later moves a complaint to the compensated side.
    let mut later = Fact::new(gold, c2, q2, None, 100);
    later.retained_30 = true;
    later.retained_90 = true;
    let moved = write(&db, now, &later).await;

    let query = format!("from={}&to={}", date(t - 120), date(t));
    let reply = app
        .get(
            &format!("/api/reports/compensation-retention?{query}"),
            &app.admin_token,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let report: CompensationRetention = reply.json();
    let key: Vec<(&str, &str, u8, bool)> = report
        .strata
        .iter()
        .map(|s| {
            (
                s.category.as_str(),
                s.tier.as_str(),
                s.value_band,
                s.comparable,
            )
        })
        .collect();
    assert_eq!(
        key,
        [
            ("billing problems", "gold", 0, true),
            ("billing problems", "gold", 2, true),
            ("delivery problems", "gold", 2, false)
        ]
    );
    let big = &report.strata[1];
    assert_eq!(big.value_band_label, "100,000 to 999,999");
    assert_eq!(
        (
            big.compensated.complaints,
            big.compensated.compensation_minor
        ),
        (2, 1300)
    );
    assert_eq!(big.compensated.retained_30, ratio(1, 2));
    assert_eq!(big.uncompensated.retained_90, ratio(1, 4));
    let c = &report.comparable;
    assert_eq!(c.compensated.complaints, 3);
    assert_eq!(c.compensated.retained_30, ratio(2, 3));
    assert_eq!(c.uncompensated.complaints, 5);
    assert_eq!(c.uncompensated.retained_30, ratio(1, 5));
    // Standardized: (2 × 1/4 + 1 × 0/1) / 3 compensated complaints = 0.1666…
    assert_eq!(c.uncompensated_standardized_30_permille, Some(166));

    sqlx::query("UPDATE ticket_quality SET compensation_minor = 1000 WHERE ticket_id = $1")
        .bind(moved)
        .execute(db.pool())
        .await
        .unwrap();
    let report: CompensationRetention = app
        .get(
            &format!("/api/reports/compensation-retention?{query}"),
            &app.admin_token,
        )
        .await
        .json();
    let delivery = &report.strata[2];
    assert!(delivery.comparable);
    assert_eq!(delivery.compensated.complaints, 1);
    assert_eq!(delivery.compensated.retained_90, ratio(1, 1));
    assert_eq!(delivery.uncompensated.complaints, 1);

    // Supervisors may read it; agents may not.
    let (_, agent) = app.agent("olga", &[("care", 1)], 1).await;
    let (_, supervisor) = app.user("sam", "supervisor").await;
    let path = format!("/api/reports/compensation-retention?{query}");
    assert_eq!(app.get(&path, &supervisor).await.status, StatusCode::OK);
    assert_eq!(app.get(&path, &agent).await.status, StatusCode::FORBIDDEN);
}

// ------------------------------------------------------------ authorization

async fn agents_see_only_their_own_scorecard(app: TestApp) {
    let db = record(&app).await;
    let now = app.clock.now_ms();
    let t = today(&app);
    let (q, c) = app.queue("billing", &[("care", 1)], 30).await;
    let (a, anna) = agent_in(&app, "anna", &["care"]).await;
    let (b, _boris) = agent_in(&app, "boris", &["care"]).await;
    let x = customer(&app, "x", "gold", 120_000).await;
    write(&db, now, &Fact::new(x, c, q, Some(a), 2)).await;
    write(&db, now, &Fact::new(x, c, q, Some(b), 2)).await;
    write(&db, now, &Fact::new(x, c, q, Some(b), 3)).await;
    let range = format!("from={}&to={}", date(t - 10), date(t));

    // Anna's own card, with or without naming herself.
    for query in [
        range.clone(),
        format!("group=agent&{range}"),
        format!("group=agent&agent_id={a}&{range}"),
    ] {
        let own = card(&app, &anna, &query).await;
        assert_eq!(own.rows.len(), 1, "{query}");
        assert_eq!((own.rows[0].agent_id, own.rows[0].ended), (Some(a), 1));
    }
    // Anyone else's, or a wider view: 403.
    for query in [
        format!("group=agent&agent_id={b}&{range}"),
        format!("group=team&{range}"),
        format!("group=queue&{range}"),
        format!("group=all&{range}"),
    ] {
        let reply = app
            .get(&format!("/api/reports/scorecard?{query}"), &anna)
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{query}");
        assert_eq!(reply.content_type(), "application/problem+json");
    }
    // Supervisors see every agent, or one.
    let (_, supervisor) = app.user("sam", "supervisor").await;
    assert_eq!(
        card(&app, &supervisor, &format!("group=agent&{range}"))
            .await
            .rows
            .len(),
        2
    );
    let one = card(
        &app,
        &supervisor,
        &format!("group=agent&agent_id={b}&{range}"),
    )
    .await;
    assert_eq!((one.rows.len(), one.rows[0].ended), (1, 2));
    // Other systems and strangers: no.
    let (_, shop) = app.user("shop", "integration").await;
    let path = format!("/api/reports/scorecard?{range}");
    assert_eq!(app.get(&path, &shop).await.status, StatusCode::FORBIDDEN);
    let anonymous = app.send(app.http.get(app.url(&path))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

// ------------------------------------------------------------------- CSV

async fn every_report_exports_csv(app: TestApp) {
    let db = record(&app).await;
    let now = app.clock.now_ms();
    let t = today(&app);
    let (q, c) = app.queue("billing, \"east\"", &[("care", 1)], 30).await;
    let (a, _) = agent_in(&app, "anna", &["care"]).await;
    let x = customer(&app, "x", "gold", 120_000).await;
    let mut f = Fact::new(x, c, q, Some(a), 40);
    f.confirmation = "confirmed";
    f.satisfaction = Some(4);
    f.retained_30 = true;
    f.retained_90 = true;
    f.compensation_minor = 900;
    write(&db, now, &f).await;
    write(&db, now, &Fact::new(x, c, q, Some(a), 35)).await;
    let range = format!("from={}&to={}", date(t - 60), date(t));

    let parse = |body: &str| -> Vec<csv::StringRecord> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(body.as_bytes());
        reader.records().map(|r| r.expect("a CSV record")).collect()
    };
    let as_text = |reply: &support::Reply| -> String {
        reply
            .body
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| reply.body.to_string())
    };
    // By parameter and by Accept header: the same file.
    let by_param = app
        .get(
            &format!("/api/reports/scorecard?group=queue&period=week&{range}&format=csv"),
            &app.admin_token,
        )
        .await;
    let by_accept = app
        .send(
            app.http
                .get(app.url(&format!(
                    "/api/reports/scorecard?group=queue&period=week&{range}"
                )))
                .bearer_auth(&app.admin_token)
                .header("Accept", "text/csv"),
        )
        .await;
    for reply in [&by_param, &by_accept] {
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.content_type(), "text/csv; charset=utf-8");
        assert!(
            reply.headers["content-disposition"]
                .to_str()
                .unwrap()
                .contains("scorecard-queue-")
        );
    }
    assert_eq!(as_text(&by_param), as_text(&by_accept));
    let records = parse(&as_text(&by_param));
    let header: Vec<&str> = records[0].iter().collect();
    assert_eq!(
        header,
        callcenter::quality::reports_http::SCORECARD_CSV_HEADER
    );
    let json = card(
        &app,
        &app.admin_token,
        &format!("group=queue&period=week&{range}"),
    )
    .await;
    assert_eq!(records.len() - 1, json.rows.len());
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let first = &records[1];
    assert_eq!(&first[col("name")], "billing, \"east\"");
    assert_eq!(&first[col("period_start")], json.rows[0].period_start);
    let total: u64 = records[1..]
        .iter()
        .map(|r| r[col("ended")].parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 2);
    let confirmed_row = records[1..]
        .iter()
        .find(|r| &r[col("confirmed")] == "1")
        .unwrap();
    assert_eq!(&confirmed_row[col("confirmed_of_answered_rate")], "1.000");
    assert_eq!(&confirmed_row[col("satisfaction_4")], "1");
    assert_eq!(
        &confirmed_row[col("compensation_per_retained_minor")],
        "900"
    );

    let comp = app
        .get(
            &format!("/api/reports/compensation-retention?{range}&format=csv"),
            &app.admin_token,
        )
        .await;
    assert_eq!(comp.status, StatusCode::OK);
    assert_eq!(comp.content_type(), "text/csv; charset=utf-8");
    let records = parse(&as_text(&comp));
    let header: Vec<&str> = records[0].iter().collect();
    assert_eq!(
        header,
        callcenter::quality::reports_http::COMPENSATION_CSV_HEADER
    );
    // One stratum, two sides.
    assert_eq!(records.len(), 3);
    assert_eq!(&records[1][5], "compensated");
    assert_eq!(&records[2][5], "uncompensated");
    assert_eq!(
        &records[1][header
            .iter()
            .position(|h| *h == "retention_30_rate")
            .unwrap()],
        "1.000"
    );
}

// ------------------------------------------------ through the real API

/// Resolve one complaint of `customer` through the live channel.
async fn complaint_resolved(
    app: &TestApp,
    desk: &mut support::ws::Socket,
    key: &str,
    customer: i64,
    category: i64,
) -> i64 {
    let filed = app
        .complain(&app.admin_token, key, customer, category, "It broke")
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.body);
    let ticket_id = filed.body["id"].as_i64().unwrap();
    let offer = desk.next_offer().await;
    assert_eq!(offer.ticket.id, ticket_id);
    let accepted = desk
        .command(Command::Accept {
            ticket_id,
            version: offer.version,
        })
        .await;
    assert!(matches!(accepted, ReplyResult::Ok { .. }), "{accepted:?}");
    let resolved = desk
        .command(Command::Resolve {
            ticket_id,
            outcome: Outcome {
                code: "fixed".into(),
                resolved: true,
                note: "Replaced".into(),
            },
        })
        .await;
    assert!(matches!(resolved, ReplyResult::Ok { .. }), "{resolved:?}");
    ticket_id
}

/// The customer answers the survey of a complaint.
async fn answer(app: &TestApp, ticket_id: i64, still_solved: bool, satisfaction: u8) {
    let link = app
        .post(
            &format!("/api/tickets/{ticket_id}/survey"),
            &app.admin_token,
            &json!({}),
        )
        .await;
    assert_eq!(link.status, StatusCode::CREATED, "{}", link.body);
    let token = link.body["token"].as_str().unwrap();
    // The customer has no account: no Authorization header.
    let answered = app
        .send(app.http.post(app.url("/api/surveys/answer")).json(
            &json!({ "token": token, "still_solved": still_solved, "satisfaction": satisfaction }),
        ))
        .await;
    assert!(answered.status.is_success(), "{}", answered.body);
}

async fn scorecard_follows_the_quality_record_through_the_api(app: TestApp) {
    let t = today(&app);
    let (_q, category) = app.queue("billing", &[("care", 1)], 30).await;
    let (agent_id, agent) = agent_in(&app, "anna", &["care"]).await;
    let x = customer(&app, "x", "gold", 120_000).await;
    let y = customer(&app, "y", "silver", 5_000).await;
    let mut desk = app.socket(&agent).await;
    desk.go_available().await;
    let first = complaint_resolved(&app, &mut desk, "c-1", x, category).await;
    let second = complaint_resolved(&app, &mut desk, "c-2", y, category).await;
    answer(&app, first, true, 5).await;
    answer(&app, second, false, 2).await;
    let bought = app
        .post(
            &format!("/api/customers/{x}/purchases"),
            &app.admin_token,
            &json!({ "external_id": "order-9", "product": "Kettle", "amount_minor": 4900, "currency": "EUR" }),
        )
        .await;
    assert!(bought.status.is_success(), "{}", bought.body);

    // The agent's own card counts what the quality record says.
    let own = card(&app, &agent, &format!("from={}&to={}", date(t), date(t))).await;
    assert_eq!(own.rows.len(), 1, "{:?}", own.rows);
    let r = &own.rows[0];
    assert_eq!(r.agent_id, Some(agent_id));
    assert_eq!((r.ended, r.resolved), (2, 2));
    assert_eq!((r.confirmations.confirmed, r.confirmations.denied), (1, 1));
    assert_eq!(r.confirmed_of_answered, ratio(1, 2));
    assert_eq!(r.first_contact_resolution, ratio(1, 2));
    assert_eq!(r.satisfaction.counts, [0, 1, 0, 0, 1]);
    // Bought again within 30 days: retained, though the window is still open.
    assert_eq!(r.retained_30, ratio(1, 1));
    let records: Vec<Value> = app
        .get(
            &format!(
                "/api/quality/tickets?from_ms={}&to_ms={}",
                t * DAY,
                (t + 1) * DAY
            ),
            &app.admin_token,
        )
        .await
        .json();
    let reopened = records
        .iter()
        .filter(|q| q["reopened"] == json!(true))
        .count() as u64;
    assert_eq!(r.reopened, ratio(reopened, 2));
}

// ------------------------------------------------------------ the board

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_carries_todays_quality_over_the_live_channel() {
    let Some(app) = spawn_app(Storage::Sqlite, Live::Memory).await else {
        return;
    };
    let (queue, category) = app.queue("billing", &[("care", 1)], 30).await;
    let (other_queue, _) = app.queue("delivery", &[("care", 1)], 30).await;
    let (_, agent) = agent_in(&app, "anna", &["care"]).await;
    let (_, supervisor) = app.user("sam", "supervisor").await;
    let x = customer(&app, "x", "gold", 120_000).await;

    let mut board = app.socket(&supervisor).await;
    let reply = board
        .command(Command::Subscribe {
            queues: vec![queue, other_queue],
            teams: vec![],
        })
        .await;
    assert_eq!(reply, ReplyResult::Ok { ticket: None });
    let first = board
        .until(|e| match e {
            ServerEvent::Board(b) => b.quality.clone(),
            _ => None,
        })
        .await;
    assert_eq!(first.day, date(today(&app)));
    assert_eq!(
        first.queues.iter().map(|q| q.queue_id).collect::<Vec<_>>(),
        [queue, other_queue]
    );
    assert_eq!(first.overall.ended, 0);

    let mut desk = app.socket(&agent).await;
    desk.go_available().await;
    let ticket = complaint_resolved(&app, &mut desk, "c-1", x, category).await;
    // Figures are read at most every 5 s (by the server's clock).
    app.clock.advance_ms(callcenter::quality::board::REFRESH_MS);
    let ended = board
        .until(|e| match e {
            ServerEvent::Board(b) => b.quality.clone().filter(|q| q.overall.ended == 1),
            _ => None,
        })
        .await;
    assert_eq!(ended.queues[0].today.ended, 1);
    assert_eq!(ended.queues[0].today.resolved, 1);
    assert_eq!(ended.queues[1].today.ended, 0);

    answer(&app, ticket, true, 5).await;
    app.clock.advance_ms(callcenter::quality::board::REFRESH_MS);
    let confirmed = board
        .until(|e| match e {
            ServerEvent::Board(b) => b
                .quality
                .clone()
                .filter(|q| q.overall.confirmations.confirmed == 1),
            _ => None,
        })
        .await;
    let today = &confirmed.queues[0].today;
    assert_eq!(today.first_contact_resolved, 1);
    assert_eq!(today.satisfaction.counts, [0, 0, 0, 0, 1]);
    assert_eq!(today.satisfaction.n, 1);
    assert_eq!(confirmed.overall, *today);
}

// ------------------------------------------------------------ descriptions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_described_in_the_published_schemas() {
    let Some(app) = spawn_app(Storage::Sqlite, Live::Memory).await else {
        return;
    };
    let openapi = app.send(app.http.get(app.url("/api/openapi.json"))).await;
    assert_eq!(openapi.status, StatusCode::OK);
    for path in [
        "/api/reports/scorecard",
        "/api/reports/compensation-retention",
    ] {
        let get = &openapi.body["paths"][path]["get"];
        assert!(get.is_object(), "{path} missing from the OpenAPI document");
        let content = &get["responses"]["200"]["content"];
        assert!(
            content.get("application/json").is_some(),
            "{path}: {content}"
        );
        assert!(content.get("text/csv").is_some(), "{path}: {content}");
    }
    for schema in [
        "Scorecard",
        "ScorecardRow",
        "Ratio",
        "Satisfaction",
        "CompensationRetention",
    ] {
        assert!(
            openapi.body["components"]["schemas"].get(schema).is_some(),
            "{schema} missing from the OpenAPI document"
        );
    }
    let ws = app.send(app.http.get(app.url("/api/ws-schema.json"))).await;
    let text = ws.body.to_string();
    for name in ["BoardQuality", "QualityToday", "first_contact_resolved"] {
        assert!(text.contains(name), "{name} missing from the socket schema");
    }
}
