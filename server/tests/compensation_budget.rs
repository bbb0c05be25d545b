//! Fifty grants at once against one budget, from several agents on two
//! nodes, never spend past it: on PostgreSQL and on SQLite, over several
//! randomized rounds (the seed is printed for a rerun with
//! `COMPENSATION_SEED=<seed>`).
//!
//! Each round publishes a policy with a random cap and fires 50 requests of
//! random amounts in parallel, first against the customer's 90-day cap (three
//! agents), then against one agent's day budget. The clock then moves on 91
//! days, so the next round starts with fresh budgets.

mod compensation_fixtures;
mod support;

use callcenter_proto::compensation::{
    CompensationRequest, CompensationStatus, LedgerEntry, LedgerVerification,
};
use compensation_fixtures::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Live, Storage, TestApp, spawn_app};

const ROUNDS: usize = 5;
const PARALLEL: usize = 50;
const DAY_MS: i64 = 24 * 3600 * 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_grants_never_overspend_on_sqlite() {
    if let Some(app) = spawn_app(Storage::Sqlite, Live::Memory).await {
        parallel_grants_never_overspend(app).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_grants_never_overspend_on_postgres() {
    if let Some(app) = spawn_app(Storage::Postgres, Live::Memory).await {
        parallel_grants_never_overspend(app).await
    }
}

fn seeded() -> StdRng {
    let seed = std::env::var("COMPENSATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("COMPENSATION_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// A policy where only `cap` binds: the customer's 90-day cap, or the agents' day budget.
fn only(limit: &str, amount: i64) -> Value {
    let mut doc = policy();
    doc["roles"][0]["per_grant"] = json!({ "max_minor": 1_000_000 });
    doc["roles"][0]["budget_per_month_minor"] = json!(1_000_000_000);
    match limit {
        "customer" => {
            doc["roles"][0]["budget_per_day_minor"] = json!(1_000_000_000);
            doc["customer_cap_90d"] = json!({ "max_minor": amount });
        }
        _ => {
            doc["roles"][0]["budget_per_day_minor"] = json!(amount);
            doc["customer_cap_90d"] = json!({});
        }
    }
    doc
}

/// Fire one request per (node, token, ticket, amount) at once; return the decisions.
async fn burst(
    nodes: &[&TestApp],
    askers: &[(String, i64)],
    amounts: &[i64],
    round: usize,
    label: &str,
) -> Vec<CompensationRequest> {
    let tasks: Vec<_> = amounts
        .iter()
        .enumerate()
        .map(|(i, amount)| {
            let node = nodes[i % nodes.len()];
            let (token, ticket) = askers[i % askers.len()].clone();
            let http = node.http.clone();
            let url = node.url("/api/compensation/requests");
            let body = credit(ticket, *amount);
            let key = format!("{label}-{round}-{i}");
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .bearer_auth(token)
                    .header("Idempotency-Key", key)
                    .json(&body)
                    .send()
                    .await
                    .expect("request");
                let status = r.status();
                let body: Value = r.json().await.expect("json");
                assert_eq!(status, StatusCode::CREATED, "{body}");
                serde_json::from_value::<CompensationRequest>(body).expect("decision")
            })
        })
        .collect();
    let mut decisions = Vec::new();
    for t in tasks {
        decisions.push(t.await.expect("task"));
    }
    decisions
}

fn granted_total(decisions: &[CompensationRequest]) -> i64 {
    decisions
        .iter()
        .filter(|d| d.status == CompensationStatus::Granted)
        .map(|d| d.cost_minor)
        .sum()
}

async fn parallel_grants_never_overspend(app: TestApp) {
    let mut rng = seeded();
    let node2 = app.another_node().await;
    let nodes = [&app, &node2];
    let (category, customer) = care_desk(&app).await;
    // Olga spends her day budget; Ivan, Petr and Anna share the customer's cap.
    let mut holders = Vec::new();
    for name in ["olga", "ivan", "petr", "anna"] {
        holders.push(agent_holding_ticket(&app, name, customer, category).await);
    }
    let mut ledger_total = 0;

    for round in 0..ROUNDS {
        let admin = relogin(&app, "admin").await;
        let mut askers = Vec::new();
        for holder in &holders {
            askers.push((relogin(&app, &holder.name).await, holder.ticket_id));
        }

        // The customer's 90-day cap, from three agents on two nodes.
        let cap = rng.random_range(2_000..10_000);
        publish(&app, &admin, &only("customer", cap)).await;
        let amounts: Vec<i64> = (0..PARALLEL)
            .map(|_| rng.random_range(100..1_000))
            .collect();
        let decisions = burst(&nodes, &askers[1..], &amounts, round, "cap").await;
        let spent = granted_total(&decisions);
        assert!(
            spent <= cap,
            "round {round}: granted {spent} past the cap {cap}"
        );
        for d in decisions
            .iter()
            .filter(|d| d.status != CompensationStatus::Granted)
        {
            assert_eq!(d.status, CompensationStatus::Refused, "{d:?}");
            assert_eq!(d.rule, "customer_cap_90d.max_minor");
            // Refused only when it did not fit what had been granted before it
            // (and so not what was granted in the end).
            assert!(
                d.inputs.customer_spent_90d_minor + d.cost_minor > cap,
                "{d:?}"
            );
            assert!(spent + d.cost_minor > cap, "round {round}: {d:?} fitted");
        }
        ledger_total += spent;

        // One agent's day budget, from that agent on two nodes.
        let budget = rng.random_range(2_000..10_000);
        publish(&app, &admin, &only("budget", budget)).await;
        let amounts: Vec<i64> = (0..PARALLEL)
            .map(|_| rng.random_range(100..1_000))
            .collect();
        let decisions = burst(&nodes, &askers[..1], &amounts, round, "budget").await;
        let spent = granted_total(&decisions);
        assert!(
            spent <= budget,
            "round {round}: granted {spent} past the budget {budget}"
        );
        for d in decisions
            .iter()
            .filter(|d| d.status != CompensationStatus::Granted)
        {
            assert_eq!(d.status, CompensationStatus::Pending, "{d:?}");
            assert_eq!(d.rule, "roles.agent.budget_per_day_minor");
            assert!(d.inputs.spent_day_minor + d.cost_minor > budget, "{d:?}");
            assert!(spent + d.cost_minor > budget, "round {round}: {d:?} fitted");
        }
        let allowance = app
            .get(
                &format!("/api/compensation/allowance?ticket_id={}", askers[0].1),
                &askers[0].0,
            )
            .await;
        assert_eq!(
            allowance.body["budget_day_remaining_minor"],
            budget - spent,
            "{}",
            allowance.body
        );
        ledger_total += spent;

        // Pending approvals expire; a fresh day and a fresh 90 days begin.
        app.clock.advance_ms(91 * DAY_MS);
    }

    let admin = relogin(&app, "admin").await;
    let mut entries: Vec<LedgerEntry> = Vec::new();
    loop {
        let after = entries.last().map(|e| e.seq).unwrap_or(0);
        let page: Vec<LedgerEntry> = app
            .get(
                &format!("/api/admin/compensation/ledger?after_seq={after}&limit=500"),
                &admin,
            )
            .await
            .json();
        if page.is_empty() {
            break;
        }
        entries.extend(page);
    }
    assert_eq!(
        entries.iter().map(|e| e.amount_minor).sum::<i64>(),
        ledger_total
    );
    let verified: LedgerVerification = app
        .get("/api/admin/compensation/ledger/verify", &admin)
        .await
        .json();
    assert!(verified.ok, "{verified:?}");
    assert_eq!(verified.entries_checked, entries.len() as i64);
    node2.stop().await;
    drop(holders);
}
