//! The scheduler on several nodes: two nodes on PostgreSQL + Redis share
//! the due index; every due call fires exactly once, however the nodes race
//! (background ticks and explicit passes on both at once). And planned calls
//! survive a restart: a node started later rebuilds the index from the
//! record.

mod outbound_support;
mod support;

use callcenter_proto::outbound::CallStatus;
use outbound_support::*;
use serde_json::json;
use std::collections::HashSet;
use support::{Live, Storage};

const CUSTOMERS: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_due_call_fires_once_across_nodes() {
    let Some(mut c) = center(Storage::Postgres, Live::Redis, monday_morning()).await else {
        return;
    };
    c.journey("check-in", "purchase", &[(1, "Check-in")]).await;
    c.journey("follow-up", "purchase", &[(9, "How is it going?")])
        .await;
    let mut customers = Vec::new();
    for i in 0..CUSTOMERS {
        let id = c.customer(&format!("cust-{i}"), "Europe/Moscow").await;
        c.purchase(id, &format!("order-{i}")).await;
        customers.push(id);
    }
    let mut other = c.app.another_node().await;
    c.advance(DAY).await;
    other.admin_token = c.app.admin_token.clone();

    // Both nodes' background ticks are running; add explicit passes on both
    // at the same moment, several times.
    let empty = json!({});
    for _ in 0..3 {
        let (a, b) = tokio::join!(
            c.app
                .post("/api/admin/outbound/run", &c.app.admin_token, &empty),
            other.post("/api/admin/outbound/run", &other.admin_token, &empty),
        );
        assert!(a.status.is_success() && b.status.is_success());
    }

    let mut tickets = HashSet::new();
    for customer in &customers {
        let calls = c.calls(*customer).await;
        assert_eq!(calls.len(), 2, "{calls:#?}");
        let check_in = &calls[0];
        assert_eq!(check_in.status, CallStatus::Fired, "{check_in:#?}");
        let fires = check_in
            .decisions
            .iter()
            .filter(|d| d.action == "fire")
            .count();
        assert_eq!(fires, 1, "{check_in:#?}");
        assert!(tickets.insert(check_in.ticket_id.expect("a ticket")));
        // The follow-up, eight days later, is not touched.
        assert_eq!(calls[1].status, CallStatus::Scheduled);
        assert!(calls[1].decisions.iter().all(|d| d.phase == "scheduled"));
    }
    let outbound_tickets = count(
        &c.app.database_url,
        "SELECT COUNT(*) AS n FROM tickets WHERE kind = 'outbound'",
    )
    .await;
    assert_eq!(outbound_tickets, CUSTOMERS as i64);

    // The first node goes away; the other fires the follow-ups when due.
    c.app.stop().await;
    other.clock.advance_ms(8 * DAY);
    other.admin_token = other.login("admin", support::ADMIN_PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let run = other
        .post("/api/admin/outbound/run", &other.admin_token, &json!({}))
        .await;
    assert!(run.status.is_success(), "{}", run.body);
    // The node's background tick may have claimed some of them just before
    // the explicit pass and still be firing them: wait for it.
    let fired_calls = async || {
        count(
            &other.database_url,
            "SELECT COUNT(*) AS n FROM outbound_calls WHERE status = 'fired'",
        )
        .await
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fired_calls().await < 2 * CUSTOMERS as i64 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(fired_calls().await, 2 * CUSTOMERS as i64);
    let tickets = count(
        &other.database_url,
        "SELECT COUNT(*) AS n FROM tickets WHERE kind = 'outbound'",
    )
    .await;
    assert_eq!(tickets, 2 * CUSTOMERS as i64);
}

/// The embedded default: the in-process index is rebuilt from the database
/// when a node starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_calls_survive_a_restart() {
    let Some(c) = center(Storage::Sqlite, Live::Memory, monday_morning()).await else {
        return;
    };
    c.journey("check-in", "purchase", &[(2, "Check-in")]).await;
    let anna = c.customer("anna", "Europe/Moscow").await;
    c.purchase(anna, "order-1").await;
    let database_url = c.app.database_url.clone();
    let clock = c.app.clock.clone();
    c.app.stop().await;

    let mut options = support::Options::new(Storage::Sqlite, Live::Memory);
    options.join = Some((database_url.clone(), None));
    options.clock = Some(clock.clone());
    clock.advance_ms(2 * DAY);
    let restarted = support::spawn_with(options).await.expect("restarted node");
    // No explicit pass: the background tick of the new node finds the call
    // in its rebuilt index.
    let mut status = String::new();
    for _ in 0..200 {
        status = text(
            &database_url,
            "SELECT status AS s FROM outbound_calls ORDER BY id LIMIT 1",
        )
        .await;
        if status == "fired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "fired");
    restarted.stop().await;
}

async fn count(database_url: &str, sql: &str) -> i64 {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(database_url)
        .await
        .expect("connect");
    sqlx::query(sql)
        .fetch_one(&mut conn)
        .await
        .expect("query")
        .try_get("n")
        .expect("n")
}

async fn text(database_url: &str, sql: &str) -> String {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(database_url)
        .await
        .expect("connect");
    sqlx::query(sql)
        .fetch_one(&mut conn)
        .await
        .expect("query")
        .try_get("s")
        .expect("s")
}
