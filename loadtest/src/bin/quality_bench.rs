//! Quality reports at scale (issue 7): a data generator and a benchmark.
//!
//! ```sh
//! cargo run --release -p callcenter-loadtest --bin quality_bench -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! Creates a fresh PostgreSQL database next to `--database-url`, migrates it
//! with the server's own migrations, generates `--tickets` ended complaints
//! (default 1,000,000) over the last `--days` days with their customers,
//! queues, categories, agents, teams and quality rows, plus outbound calls
//! with refusal reasons, then starts a server node on it and times the
//! scorecards over HTTP (each group, a month and a year, whole range and by
//! month), the compensation/retention report and the board's reading of
//! today. Prints the figures; drops the database unless `--keep`.
//!
//! The bulk load bypasses the triggers that feed the rollups (it is one
//! `INSERT … SELECT` per table) and then rebuilds the rollups from the fact
//! table, as `callcenter::quality::scorecards::rebuild` does; a day's worth
//! of later changes (confirmations, satisfaction, retention) then goes
//! through the triggers and the fold, as in production, and is timed too.

use anyhow::Context;
use callcenter::app::{Config, run};
use callcenter::config::ServeArgs;
use callcenter::quality::scorecards;
use callcenter::store::Db;
use clap::Parser;
use sqlx::{Connection, Executor};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Generate a million ended complaints and time the quality reports")]
struct Args {
    /// A PostgreSQL database to connect to first; the benchmark's own
    /// database is created next to it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    database_url: String,
    /// Ended complaints to generate.
    #[arg(long, default_value_t = 1_000_000)]
    tickets: i64,
    /// Over this many days before today.
    #[arg(long, default_value_t = 365)]
    days: i64,
    #[arg(long, default_value_t = 200_000)]
    customers: i64,
    #[arg(long, default_value_t = 200)]
    agents: i64,
    #[arg(long, default_value_t = 10)]
    queues: i64,
    /// Outbound calls (15 % refused, with reasons).
    #[arg(long, default_value_t = 100_000)]
    calls: i64,
    /// Quality rows changed after the load through the triggers (half
    /// confirmations answered, half purchases after recent complaints).
    #[arg(long, default_value_t = 20_000)]
    updates: i64,
    /// Times each report is asked.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Keep the database afterwards (its name is printed).
    #[arg(long)]
    keep: bool,
}

const PASSWORD: &str = "quality bench password";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.database_url.starts_with("postgres"),
        "the benchmark runs on PostgreSQL"
    );
    sqlx::any::install_default_drivers();
    let name = format!(
        "quality_bench_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
    );
    let base = args
        .database_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .context("a database URL ends with /<database>")?;
    let url = format!("{base}/{name}");
    let mut admin = sqlx::AnyConnection::connect(&args.database_url).await?;
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    println!("database {name}");
    let outcome = bench(&args, &url).await;
    if !args.keep {
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await?;
    }
    outcome
}

async fn step<T>(
    what: &str,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let out = f.await.with_context(|| what.to_string())?;
    println!("  {what}: {:.1} s", start.elapsed().as_secs_f64());
    Ok(out)
}

async fn bench(args: &Args, url: &str) -> anyhow::Result<()> {
    println!(
        "generating {} complaints over {} days",
        args.tickets, args.days
    );
    let db = step("migrate", Db::connect(url)).await?;
    let serve = ServeArgs {
        admin_password: Some(PASSWORD.into()),
        ..ServeArgs::default()
    };
    callcenter::app::ensure_first_admin(&db, &serve, &callcenter::clock::SystemClock).await?;
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    generate(args, &mut conn).await?;
    step("rebuild rollups", async {
        Ok(scorecards::rebuild(&db).await?)
    })
    .await?;
    let figures = sqlx::query_as::<_, (i64, i64)>(
        "SELECT (SELECT COUNT(*) FROM ticket_quality), (SELECT COUNT(*) FROM quality_rollup)",
    )
    .fetch_one(&mut conn)
    .await?;
    println!(
        "  ticket_quality rows: {}, rollup rows: {}",
        figures.0, figures.1
    );

    // Later changes through the triggers, then the fold.
    step(&format!("{} updates through the triggers", args.updates), async {
        let today = scorecards::today(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64,
        );
        sqlx::query(
            "UPDATE ticket_quality SET confirmation = 'confirmed', satisfaction = 4 WHERE ticket_id IN \
                 (SELECT ticket_id FROM ticket_quality WHERE confirmation = 'asked' LIMIT $1)",
        )
        .bind(args.updates / 2)
        .execute(&mut conn)
        .await?;
        sqlx::query(
            "UPDATE ticket_quality SET retained_30 = 1, retained_90 = 1 WHERE ticket_id IN \
                 (SELECT ticket_id FROM ticket_quality WHERE ended_day >= $1 AND retained_90 = 0 LIMIT $2)",
        )
        .bind(today - 30)
        .bind(args.updates - args.updates / 2)
        .execute(&mut conn)
        .await?;
        Ok(())
    })
    .await?;
    let pending = sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM quality_deltas")
        .fetch_one(&mut conn)
        .await?
        .0;
    let start = Instant::now();
    let folded = scorecards::fold_all(&db).await?;
    println!(
        "  fold {pending} pending deltas: {folded} folded in {:.0} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    sqlx::query("ANALYZE").execute(&mut conn).await?;

    // A real node on the database; the reports over HTTP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let serve = ServeArgs {
        listen: addr,
        admin_password: Some(PASSWORD.into()),
        ..ServeArgs::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, Config::new(url, serve), async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let mut ready = false;
    for _ in 0..400 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(ready, "the server did not start");
    let login: serde_json::Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .context("a token")?
        .to_string();

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let today = scorecards::today(now_ms);
    let day = scorecards::day_text;
    println!(
        "\nreport timings over HTTP (ms; min / median / max of {}):",
        args.repeat
    );
    println!("| report | range | rows | min | median | max |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut worst: f64 = 0.0;
    let mut cases: Vec<(String, String, String)> = Vec::new();
    for group in ["agent", "team", "queue", "all"] {
        for (label, from, period) in [
            ("month (30 days)", today - 29, "range"),
            ("year (365 days)", today - 364, "range"),
            ("year by month", today - 364, "month"),
        ] {
            cases.push((
                format!("scorecard group={group}"),
                label.to_string(),
                format!(
                    "/api/reports/scorecard?group={group}&period={period}&from={}&to={}",
                    day(from),
                    day(today)
                ),
            ));
        }
    }
    cases.push((
        "scorecard group=agent, period=week".into(),
        "year (365 days)".into(),
        format!(
            "/api/reports/scorecard?group=agent&period=week&from={}&to={}",
            day(today - 364),
            day(today)
        ),
    ));
    cases.push((
        "scorecard group=agent, CSV".into(),
        "year by month".into(),
        format!(
            "/api/reports/scorecard?group=agent&period=month&from={}&to={}&format=csv",
            day(today - 364),
            day(today)
        ),
    ));
    for (label, from) in [
        ("month (30 days)", today - 29),
        ("year (365 days)", today - 364),
    ] {
        cases.push((
            "compensation-retention".into(),
            label.into(),
            format!(
                "/api/reports/compensation-retention?from={}&to={}",
                day(from),
                day(today)
            ),
        ));
    }
    for (report, label, path) in &cases {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..args.repeat.max(1) {
            let start = Instant::now();
            let response = http
                .get(format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            let body = response.text().await?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            rows = match serde_json::from_str::<serde_json::Value>(&body) {
                Ok(v) => v["rows"]
                    .as_array()
                    .or(v["strata"].as_array())
                    .map(|a| a.len())
                    .unwrap_or(0),
                Err(_) => body.lines().count().saturating_sub(1),
            };
        }
        times.sort_by(f64::total_cmp);
        worst = worst.max(times[times.len() - 1]);
        println!(
            "| {report} | {label} | {rows} | {:.0} | {:.0} | {:.0} |",
            times[0],
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
    let mut board = Vec::new();
    for _ in 0..args.repeat.max(1) {
        let start = Instant::now();
        let figures = scorecards::today_by_queue(&db, today).await?;
        board.push((start.elapsed().as_secs_f64() * 1000.0, figures.len()));
    }
    board.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "| board: today's quality, every queue (one read per node per 5 s) | today | {} | {:.1} | {:.1} | {:.1} |",
        board[0].1,
        board[0].0,
        board[board.len() / 2].0,
        board[board.len() - 1].0
    );
    println!("\nslowest report answer: {worst:.0} ms");
    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// The bulk load: one statement per table, deterministic (`setseed`).
async fn generate(args: &Args, conn: &mut sqlx::AnyConnection) -> anyhow::Result<()> {
    // Bulk load without per-row triggers (foreign keys and the rollup
    // triggers): the rollups are rebuilt afterwards.
    conn.execute("SET session_replication_role = replica")
        .await?;
    conn.execute("SELECT setseed(0.42)").await?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let (queues, agents, customers, tickets, days, calls) = (
        args.queues,
        args.agents,
        args.customers,
        args.tickets,
        args.days,
        args.calls,
    );
    let per_queue = (agents / queues).max(1);
    let statements = [
        (
            "queues, categories, agents and teams".to_string(),
            format!(
                "INSERT INTO queues (id, name, service_level_seconds, offer_timeout_seconds) \
                 SELECT q, 'queue ' || q, 60, 20 FROM generate_series(1, {queues}) q; \
             INSERT INTO categories (id, name, queue_id, base_priority) \
                 SELECT c, 'category ' || c, 1 + (c - 1) / 4, 0 FROM generate_series(1, {queues} * 4) c; \
             INSERT INTO users (id, username, display_name, role, password_hash, created_at_ms) \
                 SELECT 1000 + a, 'agent' || a, 'Agent ' || a, 'agent', 'x', 0 FROM generate_series(1, {agents}) a; \
             INSERT INTO agents (user_id, capacity_inbound, capacity_outbound) \
                 SELECT 1000 + a, 2, 1 FROM generate_series(1, {agents}) a; \
             INSERT INTO agent_teams (user_id, team) \
                 SELECT 1000 + a, 'team ' || (1 + (a - 1) % 10) FROM generate_series(1, {agents}) a; \
             INSERT INTO agent_teams (user_id, team) \
                 SELECT 1000 + a, 'night' FROM generate_series(1, {agents}) a WHERE a % 7 = 0; \
             INSERT INTO journeys (id, name, trigger_kind, active, current_version, created_at_ms) VALUES \
                 (1, 'renewal', 'membership_end', 1, 1, 0), (2, 'check-in', 'purchase', 1, 1, 0)"
            ),
        ),
        (
            "customers".to_string(),
            format!(
                "INSERT INTO customers (id, external_id, name, tier, value_minor, created_at_ms, updated_at_ms) \
             SELECT c, 'c' || c, 'Customer ' || c, \
                 (ARRAY['bronze', 'silver', 'gold', 'platinum'])[1 + floor(random() ^ 2 * 4)::int], \
                 floor(exp(random() * 15))::bigint, 0, 0 \
             FROM generate_series(1, {customers}) c"
            ),
        ),
        (
            "complaints (tickets)".to_string(),
            format!(
                "CREATE TEMP TABLE gen AS SELECT s.*, 1 + (category_id - 1) / 4 AS queue_id, \
                 CASE WHEN ra < 0.03 THEN NULL \
                     WHEN ra < 0.9 THEN 1001 + ((category_id - 1) / 4) * {per_queue} \
                         + floor(r7 * {per_queue})::bigint % {per_queue} \
                     ELSE 1001 + floor(r7 * {agents})::bigint % {agents} END AS agent_id \
             FROM (SELECT i, \
                 1 + floor(random() * {customers})::bigint AS customer_id, \
                 1 + floor(random() * {queues} * 4)::bigint AS category_id, \
                 random() AS ra, random() AS r1, random() AS r2, random() AS r3, random() AS r4, \
                 random() AS r5, random() AS r6, random() AS r7, \
                 {now_ms} - floor(random() * {days} * 86400000)::bigint AS ended_at_ms \
             FROM generate_series(1, {tickets}) i) s; \
             ALTER TABLE gen ADD COLUMN confirmation TEXT; \
             UPDATE gen SET confirmation = CASE \
                 WHEN r1 >= 0.85 OR ended_at_ms > {now_ms} - 5 * 86400000 THEN 'none' \
                 WHEN ended_at_ms > {now_ms} - 19 * 86400000 THEN CASE WHEN r3 < 0.5 THEN 'asked' ELSE \
                     CASE WHEN r3 < 0.85 THEN 'confirmed' ELSE 'denied' END END \
                 WHEN r3 < 0.25 THEN 'none' WHEN r3 < 0.75 THEN 'confirmed' \
                 WHEN r3 < 0.9 THEN 'denied' ELSE 'expired' END; \
             INSERT INTO tickets (id, kind, status, customer_id, category_id, queue_id, channel, description, \
                 rank_ms, assigned_agent_id, created_at_ms, updated_at_ms, resolved_at_ms, outcome_code, \
                 outcome_resolved) \
             SELECT i, 'inbound', 'resolved', customer_id, category_id, queue_id, 'phone', 'generated', \
                 ended_at_ms - 1800000, agent_id, ended_at_ms - 1800000, ended_at_ms, ended_at_ms, \
                 CASE WHEN r1 < 0.85 THEN 'fixed' ELSE 'not_resolved' END, CASE WHEN r1 < 0.85 THEN 1 ELSE 0 END \
             FROM gen"
            ),
        ),
        (
            "quality rows".to_string(),
            String::from(
                "INSERT INTO ticket_quality (ticket_id, customer_id, category_id, queue_id, agent_id, ended_at_ms, \
                 ended_day, resolved, resolution_code, first_contact, confirmation, confirmed_at_ms, \
                 satisfaction, reopened, retained_30, retained_90, compensation_minor, handle_ms, duration_ms) \
             SELECT i, customer_id, category_id, queue_id, agent_id, ended_at_ms, ended_at_ms / 86400000, \
                 CASE WHEN r1 < 0.85 THEN 1 ELSE 0 END, \
                 CASE WHEN r1 < 0.85 THEN 'fixed' ELSE 'not_resolved' END, \
                 CASE WHEN r2 < 0.7 THEN 1 ELSE 0 END, \
                 confirmation, \
                 CASE WHEN confirmation IN ('confirmed', 'denied') THEN ended_at_ms + 6 * 86400000 END, \
                 CASE WHEN confirmation IN ('confirmed', 'denied') AND r4 < 0.8 \
                      THEN 1 + floor(r5 * 5)::int END, \
                 CASE WHEN r6 < 0.08 THEN 1 ELSE 0 END, \
                 CASE WHEN r4 < 0.4 THEN 1 ELSE 0 END, \
                 CASE WHEN r4 < 0.6 THEN 1 ELSE 0 END, \
                 CASE WHEN r6 > 0.9 THEN 500 + floor(r5 * 4500)::bigint ELSE 0 END, \
                 60000 + floor(r2 * 900000)::bigint, 900000 + floor(r2 * 900000)::bigint \
             FROM gen; \
             INSERT INTO surveys (token_hash, ticket_id, created_at_ms, expires_at_ms, source) \
             SELECT md5('bench' || i), i, ended_at_ms + 5 * 86400000, ended_at_ms + 19 * 86400000, 'staff' \
             FROM gen WHERE confirmation = 'asked'; \
             DROP TABLE gen",
            ),
        ),
        (
            "outbound calls".to_string(),
            format!(
                "INSERT INTO tickets (id, kind, status, customer_id, category_id, queue_id, channel, description, \
                 rank_ms, assigned_agent_id, created_at_ms, updated_at_ms, resolved_at_ms) \
             SELECT {tickets} + i, 'outbound', 'resolved', 1 + i % {customers}, 1 + i % ({queues} * 4), \
                 1 + (i % ({queues} * 4)) / 4, 'phone', 'call', t, 1001 + i % {agents}, t, t, t \
             FROM (SELECT i, {now_ms} - floor(random() * {days} * 86400000)::bigint AS t \
                   FROM generate_series(1, {calls}) i) c; \
             INSERT INTO outbound_calls (id, dedupe_key, customer_id, journey_id, source_kind, source_id, purposes, \
                 category_id, status, due_at_ms, ticket_id, fired_at_ms, outcome, reason_code, \
                 created_at_ms, updated_at_ms) \
             SELECT t.id - {tickets}, 'bench-' || t.id, t.customer_id, 1 + t.id % 2, 'bench', 0, '[]', \
                 t.category_id, 'done', t.created_at_ms, t.id, t.created_at_ms, \
                 CASE WHEN r < 0.15 THEN 'refused' ELSE 'reached' END, \
                 CASE WHEN r < 0.15 THEN (ARRAY['too_expensive', 'not_interested', 'moved_away', \
                     'bad_experience'])[1 + floor(r * 1000)::int % 4] END, \
                 t.created_at_ms, t.created_at_ms \
             FROM (SELECT id, customer_id, category_id, created_at_ms, random() AS r FROM tickets \
                   WHERE kind = 'outbound') t"
            ),
        ),
    ];
    for (what, sql) in statements {
        step(&format!("load {what}"), async {
            conn.execute(sql.as_str()).await?;
            Ok(())
        })
        .await?;
    }
    conn.execute("SET session_replication_role = DEFAULT")
        .await?;
    for (table, column) in [
        ("queues", "id"),
        ("categories", "id"),
        ("users", "id"),
        ("customers", "id"),
        ("tickets", "id"),
        ("journeys", "id"),
        ("outbound_calls", "id"),
    ] {
        conn.execute(
            format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), (SELECT MAX({column}) FROM {table}))"
            )
            .as_str(),
        )
        .await?;
    }
    step("analyze", async {
        conn.execute("ANALYZE").await?;
        Ok(())
    })
    .await?;
    Ok(())
}
