//! A short harness run in the test suite: the real `loadtest` command, a few
//! seconds with a few agents, on the embedded default and on PostgreSQL +
//! Redis (two nodes), must create and resolve tickets with no violation.
//! The figures themselves are benchmarks, not tests.
//!
//! The PostgreSQL + Redis run skips with a message when a service is
//! unreachable, unless REQUIRE_SERVICES=1 (then it fails).

use loadtest::summary::Summary;
use std::process::Command;

fn require_services() -> bool {
    std::env::var("REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn reachable(what: &str, url: &str) -> bool {
    let address = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .map(|host| host.rsplit('@').next().unwrap_or(host).to_string())
        .unwrap_or_default();
    match std::net::TcpStream::connect(&address) {
        Ok(_) => true,
        Err(e) if require_services() => {
            panic!("{what} is required (REQUIRE_SERVICES=1) but unreachable at {address}: {e}")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED: {what} unreachable at {address} ({e}); set REQUIRE_SERVICES=1 to make this a failure"
            );
            false
        }
    }
}

/// Run the harness with `extra` arguments; returns its summary and exit code.
fn harness(name: &str, extra: &[&str]) -> (Summary, Option<i32>) {
    let dir = std::env::temp_dir().join(format!("loadtest-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("summary.json");
    let report = dir.join("report.html");
    let output = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "--agents",
            "6",
            "--supervisors",
            "1",
            "--rate",
            "15",
            "--duration",
            "4",
            "--customers",
            "10",
            "--think-ms",
            "50",
            "--handle-ms",
            "150",
            "--decline-fraction",
            "0.1",
            "--miss-fraction",
            "0.05",
            "--reconnect-fraction",
            "0.34",
            "--seed",
            "7",
            "--stats-settle-seconds",
            "0",
            "--quiet",
            "--json",
        ])
        .arg(&json)
        .arg("--report")
        .arg(&report)
        .args(extra)
        .output()
        .expect("run loadtest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no summary ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    let summary: Summary = serde_json::from_str(&text).expect("summary JSON");
    let html = std::fs::read_to_string(&report).expect("report");
    assert!(html.contains("<svg"), "the report has charts");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{stdout}");
    (summary, output.status.code())
}

fn assert_clean(summary: &Summary, code: Option<i32>) {
    assert!(summary.tickets_created > 20, "{summary:#?}");
    assert_eq!(
        summary.tickets_resolved, summary.tickets_created,
        "{summary:#?}"
    );
    assert_eq!(summary.lost, 0, "{:?}", summary.violation_examples);
    assert_eq!(summary.double_offers, 0, "{:?}", summary.violation_examples);
    assert_eq!(
        summary.capacity_violations, 0,
        "{:?}",
        summary.violation_examples
    );
    assert_eq!(summary.resume_gaps, 0, "{:?}", summary.violation_examples);
    assert!(
        summary.reconnects >= 2,
        "two of six agents dropped and came back"
    );
    assert!(summary.offer_latency_ms.count > 0 && summary.offer_latency_ms.p99 > 0.0);
    assert!(summary.throughput_per_s > 0.0);
    assert!(summary.passed);
    assert_eq!(code, Some(0), "a clean run exits 0");
}

/// The summary says where the time went: every complaint filed in the
/// window went through the nodes' record and routing steps (read from their
/// metrics), and the CPU of each part of the system was read.
fn assert_limits_measured(summary: &Summary, postgres_and_redis: bool) {
    let phases = &summary.filing_phases_ms;
    for step in ["record", "routing"] {
        let p = phases
            .get(step)
            .unwrap_or_else(|| panic!("no {step} step in {phases:?}"));
        assert_eq!(p.count, summary.tickets_created, "{step}: {phases:?}");
        assert!(p.p50 > 0.0 && p.p50 <= p.p99, "{step}: {p:?}");
    }
    let delivered = phases.get("delivery").map(|p| p.count).unwrap_or(0);
    assert!(
        delivered > 0 && delivered <= summary.tickets_created,
        "{phases:?}"
    );
    let cpu = summary.cpu_seconds.as_ref().expect("CPU measured");
    assert!(cpu.window_s > 0.0 && cpu.cores > 0, "{cpu:?}");
    assert!(cpu.nodes.is_some_and(|s| s > 0.0), "{cpu:?}");
    assert!(cpu.harness.is_some_and(|s| s > 0.0), "{cpu:?}");
    assert!(
        cpu.machine_busy.is_some_and(|b| b > 0.0 && b <= 1.0),
        "{cpu:?}"
    );
    if postgres_and_redis {
        assert!(cpu.postgres.is_some_and(|s| s > 0.0), "{cpu:?}");
        assert!(cpu.redis.is_some_and(|s| s > 0.0), "{cpu:?}");
    } else {
        assert_eq!((cpu.postgres, cpu.redis), (None, None), "{cpu:?}");
    }
}

#[test]
fn embedded_default_runs_clean() {
    let (summary, code) = harness("embedded", &[]);
    assert_eq!(summary.backend.database, "sqlite");
    assert_eq!(summary.backend.live, "memory");
    assert!(summary.server_rss_bytes.is_some_and(|b| b > 0));
    assert_clean(&summary, code);
    assert_limits_measured(&summary, false);
}

#[test]
fn postgres_and_redis_with_two_nodes_run_clean() {
    let (pg, redis) = (postgres_url(), redis_url());
    if !reachable("PostgreSQL", &pg) || !reachable("Redis", &redis) {
        return;
    }
    let (summary, code) = harness(
        "shared",
        &[
            "--spawn-nodes",
            "2",
            "--database-url",
            &pg,
            "--redis-url",
            &redis,
        ],
    );
    assert_eq!(summary.backend.database, "postgres");
    assert_eq!(summary.backend.live, "redis");
    assert_eq!(summary.backend.nodes, 2);
    assert!(summary.db_xacts_per_ticket.is_some_and(|x| x > 0.0));
    assert!(summary.redis_cmds_per_ticket.is_some_and(|x| x > 0.0));
    assert_clean(&summary, code);
    assert_limits_measured(&summary, true);
}

/// The comparison mode for a second: jobs flow enqueue → offer delivered →
/// claimed → completed, with no claim refused.
fn bare_routing(name: &str, extra: &[&str]) -> Summary {
    let dir = std::env::temp_dir().join(format!("loadtest-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("summary.json");
    let status = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "--mode",
            "routing",
            "--duration",
            "1",
            "--routing-agents",
            "8",
            "--quiet",
            "--json",
        ])
        .arg(&json)
        .args(extra)
        .status()
        .expect("run loadtest");
    assert!(status.success());
    let summary: Summary =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("summary")).expect("JSON");
    let _ = std::fs::remove_dir_all(&dir);
    let routing = summary.routing.as_ref().expect("routing figures");
    assert!(routing.completed > 100, "{routing:?}");
    assert!(routing.delivery_latency_ms.count > 0);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    summary
}

#[test]
fn the_bare_routing_path_completes_jobs_in_memory() {
    bare_routing("routing-memory", &[]);
}

#[test]
fn the_bare_routing_path_completes_jobs_on_redis() {
    let redis = redis_url();
    if !reachable("Redis", &redis) {
        return;
    }
    let summary = bare_routing("routing-redis", &["--redis-url", &redis]);
    assert_eq!(summary.routing.expect("routing figures").backend, "redis");
    // The bench's two parts: the harness (the routing's client) and Redis.
    let cpu = summary.cpu_seconds.expect("CPU measured");
    assert!(cpu.harness.is_some_and(|s| s > 0.0), "{cpu:?}");
    assert!(cpu.redis.is_some_and(|s| s > 0.0), "{cpu:?}");
}
