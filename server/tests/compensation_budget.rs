//! Fifty grants at once against one budget, from several agents on two
//! nodes, never spend past it: on PostgreSQL and on SQLite, over several
//! randomized rounds (the seed is printed for a rerun with
//! `COMPENSATION_SEED=<seed>`).
//!
//! Each round publishes a policy with a random cap and fires 50 requests of
//! random amounts in parallel, first against the customer's 90-day cap (three
//! agents), then against one agent's day budget. The clock then moves on 91
//! days, so the next round starts with fresh budgets.
//!
//! The second story races supervisors' approvals against direct grants on
//! one budget: approvals are charged to the requester's budget and the
//! customer's cap under the same lock, so in the ledger's order every direct
//! grant fitted what had been charged before it (approvals may go past the
//! requester's budget, saying so, but never past the customer's cap).
//!
//! The third shows what is not serialized: a grant that shares neither the
//! requester nor the customer of one in progress is decided meanwhile.

mod compensation_fixtures;
mod support;

use callcenter_proto::compensation::{
    CompensationRequest, CompensationStatus, LedgerEntry, LedgerVerification,
};
use compensation_fixtures::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvals_racing_grants_never_overspend_on_sqlite() {
    if let Some(app) = spawn_app(Storage::Sqlite, Live::Memory).await {
        approvals_racing_grants_never_overspend(app).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvals_racing_grants_never_overspend_on_postgres() {
    if let Some(app) = spawn_app(Storage::Postgres, Live::Memory).await {
        approvals_racing_grants_never_overspend(app).await
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
            let (token, ticket) = &askers[i % askers.len()];
            let key = format!("{label}-{round}-{i}");
            ask_meanwhile(
                nodes[i % nodes.len()],
                token,
                &key,
                &credit(*ticket, *amount),
            )
        })
        .collect();
    let mut decisions = Vec::new();
    for t in tasks {
        let (status, body) = t.await.expect("task");
        assert_eq!(status, StatusCode::CREATED, "{body}");
        decisions.push(serde_json::from_value::<CompensationRequest>(body).expect("decision"));
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

/// Pending requests raced by approvals: how many, and the direct grants beside them.
const PENDING: usize = 10;
const DIRECT: usize = 40;

/// One call of a race: a direct grant or one supervisor's approval.
enum Call {
    Grant {
        token: String,
        ticket: i64,
        amount: i64,
        key: String,
    },
    Approve {
        token: String,
        request: i64,
    },
}

enum Answer {
    Decided(CompensationRequest),
    Approved(CompensationRequest),
    Refused { request: i64, detail: String },
}

/// Fire every call at once, spread over the nodes, in a random order.
async fn race(nodes: &[&TestApp], calls: Vec<Call>) -> Vec<Answer> {
    let tasks: Vec<_> = calls
        .into_iter()
        .enumerate()
        .map(|(i, call)| {
            let node = nodes[i % nodes.len()];
            let http = node.http.clone();
            let base = node.base.clone();
            tokio::spawn(async move {
                match call {
                    Call::Grant {
                        token,
                        ticket,
                        amount,
                        key,
                    } => {
                        let r = http
                            .post(format!("{base}/api/compensation/requests"))
                            .bearer_auth(token)
                            .header("Idempotency-Key", key)
                            .json(&credit(ticket, amount))
                            .send()
                            .await
                            .expect("request");
                        let status = r.status();
                        let body: Value = r.json().await.expect("json");
                        assert_eq!(status, StatusCode::CREATED, "{body}");
                        Answer::Decided(serde_json::from_value(body).expect("decision"))
                    }
                    Call::Approve { token, request } => {
                        let r = http
                            .post(format!(
                                "{base}/api/compensation/requests/{request}/decision"
                            ))
                            .bearer_auth(token)
                            .json(&json!({ "approve": true, "note": "go ahead" }))
                            .send()
                            .await
                            .expect("decision");
                        let status = r.status();
                        let body: Value = r.json().await.expect("json");
                        match status {
                            StatusCode::OK => {
                                Answer::Approved(serde_json::from_value(body).expect("request"))
                            }
                            StatusCode::CONFLICT => Answer::Refused {
                                request,
                                detail: body["detail"].as_str().unwrap_or("").to_string(),
                            },
                            other => panic!("approval answered {other}: {body}"),
                        }
                    }
                }
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("task"));
    }
    answers
}

/// Ledger entries after `after_seq`, in the ledger's order.
async fn ledger_after(app: &TestApp, admin: &str, after_seq: i64) -> Vec<LedgerEntry> {
    let mut entries: Vec<LedgerEntry> = Vec::new();
    loop {
        let after = entries.last().map(|e| e.seq).unwrap_or(after_seq);
        let page: Vec<LedgerEntry> = app
            .get(
                &format!("/api/admin/compensation/ledger?after_seq={after}&limit=500"),
                admin,
            )
            .await
            .json();
        if page.is_empty() {
            return entries;
        }
        entries.extend(page);
    }
}

/// Pending requests (above the agents' 10.00 per-grant limit), asked one by one.
async fn pending_requests(
    app: &TestApp,
    askers: &[(String, i64)],
    rng: &mut StdRng,
    label: &str,
) -> Vec<CompensationRequest> {
    let mut pending = Vec::new();
    for i in 0..PENDING {
        let (token, ticket) = &askers[i % askers.len()];
        let amount = rng.random_range(1_001..2_000);
        let r = app
            .send(
                app.http
                    .post(app.url("/api/compensation/requests"))
                    .bearer_auth(token)
                    .header("Idempotency-Key", format!("{label}-pending-{i}"))
                    .json(&credit(*ticket, amount)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let r: CompensationRequest = r.json();
        assert_eq!(r.status, CompensationStatus::Pending, "{r:?}");
        assert_eq!(r.rule, "roles.agent.per_grant.max_minor");
        pending.push(r);
    }
    pending
}

/// Direct grants and two supervisors approving every pending request, shuffled.
fn calls(
    askers: &[(String, i64)],
    approvers: &[String],
    pending: &[CompensationRequest],
    rng: &mut StdRng,
    label: &str,
) -> Vec<Call> {
    let mut calls: Vec<Call> = (0..DIRECT)
        .map(|i| {
            let (token, ticket) = askers[i % askers.len()].clone();
            Call::Grant {
                token,
                ticket,
                amount: rng.random_range(100..1_000),
                key: format!("{label}-direct-{i}"),
            }
        })
        .collect();
    for p in pending {
        for token in approvers {
            calls.push(Call::Approve {
                token: token.clone(),
                request: p.id,
            });
        }
    }
    calls.shuffle(rng);
    calls
}

async fn approvals_racing_grants_never_overspend(app: TestApp) {
    let mut rng = seeded();
    let node2 = app.another_node().await;
    let nodes = [&app, &node2];
    let (category, customer) = care_desk(&app).await;
    // Olga's grants go to one customer, the cap is raced on another's.
    let capped = app.customer("shop-43").await;
    supervisor(&app, "sam").await;
    supervisor(&app, "sue").await;
    let mut holders = vec![agent_holding_ticket(&app, "olga", customer, category).await];
    for name in ["ivan", "petr", "anna"] {
        holders.push(agent_holding_ticket(&app, name, capped, category).await);
    }
    let olga_id = holders[0].id;

    for round in 0..ROUNDS {
        let admin = relogin(&app, "admin").await;
        let approvers = vec![relogin(&app, "sam").await, relogin(&app, "sue").await];
        let mut askers = Vec::new();
        for holder in &holders {
            askers.push((relogin(&app, &holder.name).await, holder.ticket_id));
        }

        // Olga's day budget: her direct grants against approvals of her requests.
        let budget = rng.random_range(3_000..10_000);
        let mut doc = only("budget", budget);
        doc["roles"][0]["per_grant"] = json!({ "max_minor": 1_000 });
        publish(&app, &admin, &doc).await;
        let label = format!("budget-{round}");
        let pending = pending_requests(&app, &askers[..1], &mut rng, &label).await;
        let mark = ledger_after(&app, &admin, 0)
            .await
            .last()
            .map_or(0, |e| e.seq);
        let answers = race(
            &nodes,
            calls(&askers[..1], &approvers, &pending, &mut rng, &label),
        )
        .await;
        let mut decisions = std::collections::HashMap::new();
        let mut approvals = 0;
        for answer in &answers {
            match answer {
                Answer::Decided(d) => {
                    decisions.insert(d.id, d.clone());
                }
                Answer::Approved(d) => {
                    approvals += 1;
                    decisions.insert(d.id, d.clone());
                }
                Answer::Refused { detail, .. } => {
                    // The other supervisor had approved it already.
                    assert!(detail.contains("already approved"), "{detail}");
                }
            }
        }
        assert_eq!(
            approvals, PENDING,
            "round {round}: each approved exactly once"
        );
        let entries = ledger_after(&app, &admin, mark).await;
        assert_eq!(entries.len(), PENDING + granted_count(&decisions));
        // In the ledger's order, every direct grant fitted what had been
        // charged before it, approvals included; approvals went past the
        // budget only on the approver's authority, and said so.
        let mut charged = 0;
        for e in &entries {
            assert_eq!(e.requested_by, olga_id);
            let d = &decisions[&e.request_id];
            match d.status {
                CompensationStatus::Granted => {
                    assert_eq!(e.approved_by, None);
                    assert_eq!(d.inputs.spent_day_minor, charged, "round {round}: {d:?}");
                    assert!(charged + e.amount_minor <= budget, "round {round}: {d:?}");
                }
                CompensationStatus::Approved => {
                    let i = d.decision_inputs.as_ref().expect("approval inputs");
                    assert_eq!(i.spent_day_minor, charged, "round {round}: {d:?}");
                    let over = (charged + e.amount_minor - budget).clamp(0, e.amount_minor);
                    assert_eq!(i.over_budget_day_minor, over, "round {round}: {d:?}");
                    let rule = if over > 0 {
                        "roles.supervisor.approval_over_requester_budget"
                    } else {
                        "roles.supervisor.approval_within_authority"
                    };
                    assert_eq!(e.rule, rule, "round {round}: {d:?}");
                }
                other => panic!("round {round}: a ledger entry for a {other:?} request"),
            }
            charged += e.amount_minor;
        }
        // Direct requests that were not granted did not fit what had been charged.
        for d in decisions
            .values()
            .filter(|d| d.status == CompensationStatus::Pending)
        {
            assert_eq!(d.rule, "roles.agent.budget_per_day_minor", "{d:?}");
            assert!(d.inputs.spent_day_minor + d.cost_minor > budget, "{d:?}");
        }
        let allowance = app
            .get(
                &format!("/api/compensation/allowance?ticket_id={}", askers[0].1),
                &askers[0].0,
            )
            .await;
        assert_eq!(
            allowance.body["budget_day_remaining_minor"],
            (budget - charged).max(0),
            "round {round}: {}",
            allowance.body
        );
        // A new day (pending requests expire meanwhile).
        app.clock.advance_ms(DAY_MS + 1);

        // The customer's 90-day cap: three agents' grants against approvals.
        let admin = relogin(&app, "admin").await;
        let approvers = vec![relogin(&app, "sam").await, relogin(&app, "sue").await];
        let mut askers = Vec::new();
        for holder in &holders[1..] {
            askers.push((relogin(&app, &holder.name).await, holder.ticket_id));
        }
        let cap = rng.random_range(3_000..10_000);
        let mut doc = only("customer", cap);
        doc["roles"][0]["per_grant"] = json!({ "max_minor": 1_000 });
        publish(&app, &admin, &doc).await;
        let label = format!("cap-{round}");
        let pending = pending_requests(&app, &askers, &mut rng, &label).await;
        let mark = ledger_after(&app, &admin, 0)
            .await
            .last()
            .map_or(0, |e| e.seq);
        let answers = race(
            &nodes,
            calls(&askers, &approvers, &pending, &mut rng, &label),
        )
        .await;
        let mut decisions = std::collections::HashMap::new();
        let mut refusals: std::collections::HashMap<i64, Vec<String>> = Default::default();
        for answer in answers {
            match answer {
                Answer::Decided(d) | Answer::Approved(d) => {
                    decisions.insert(d.id, d);
                }
                Answer::Refused { request, detail } => {
                    refusals.entry(request).or_default().push(detail)
                }
            }
        }
        let entries = ledger_after(&app, &admin, mark).await;
        let mut given = 0;
        for e in &entries {
            assert!(
                given + e.amount_minor <= cap,
                "round {round}: {e:?} passed the cap {cap}"
            );
            given += e.amount_minor;
        }
        for d in decisions
            .values()
            .filter(|d| d.status == CompensationStatus::Refused)
        {
            assert_eq!(d.rule, "customer_cap_90d.max_minor");
            assert!(
                d.inputs.customer_spent_90d_minor + d.cost_minor > cap,
                "{d:?}"
            );
        }
        for p in &pending {
            let approved = decisions
                .get(&p.id)
                .is_some_and(|d| d.status == CompensationStatus::Approved);
            let refused = refusals.get(&p.id).map_or(0, Vec::len);
            if approved {
                assert_eq!(refused, 1, "round {round}: approved twice? {p:?}");
            } else {
                // Both approvers were refused: it did not fit the cap.
                assert_eq!(refused, 2, "round {round}: {p:?}");
                for detail in &refusals[&p.id] {
                    assert!(detail.contains("customer_cap_90d"), "{detail}");
                }
                assert!(given + p.cost_minor > cap, "round {round}: {p:?} fitted");
            }
        }
        let allowance = app
            .get(
                &format!("/api/compensation/allowance?ticket_id={}", askers[0].1),
                &askers[0].0,
            )
            .await;
        assert_eq!(
            allowance.body["customer_cap_remaining_minor"],
            cap - given,
            "round {round}: {}",
            allowance.body
        );
        app.clock.advance_ms(91 * DAY_MS);
    }

    let admin = relogin(&app, "admin").await;
    let verified: LedgerVerification = app
        .get("/api/admin/compensation/ledger/verify", &admin)
        .await
        .json();
    assert!(verified.ok, "{verified:?}");
    node2.stop().await;
    drop(holders);
}

fn granted_count(decisions: &std::collections::HashMap<i64, CompensationRequest>) -> usize {
    decisions
        .values()
        .filter(|d| d.status == CompensationStatus::Granted)
        .count()
}

/// Decisions that share neither a requester's budget nor a customer do not
/// wait for each other: while Olga's grant is stopped inside its
/// transaction (another session holds her ticket's row), Ivan's grant for
/// another customer is decided and enters the ledger first; Olga's is
/// decided once the row is let go, and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grant_for_another_customer_does_not_wait_for_one_in_progress() {
    let Some(app) = spawn_app(Storage::Postgres, Live::Memory).await else {
        return;
    };
    let (category, customer) = care_desk(&app).await;
    let other_customer = app.customer("shop-43").await;
    let olga = agent_holding_ticket(&app, "olga", customer, category).await;
    let ivan = agent_holding_ticket(&app, "ivan", other_customer, category).await;
    let admin = relogin(&app, "admin").await;
    publish(&app, &admin, &policy()).await;

    let held_row = app.hold_ticket_row(olga.ticket_id).await;
    let olgas = ask_meanwhile(&app, &olga.token, "olga-1", &credit(olga.ticket_id, 800));
    app.until_a_session_waits_for_a_lock().await;

    let ivans = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        asked(&app, &ivan.token, "ivan-1", &credit(ivan.ticket_id, 600)),
    )
    .await
    .expect("Ivan's grant waited for Olga's");
    assert_eq!(ivans.status, CompensationStatus::Granted, "{ivans:?}");

    held_row.let_go().await;
    let (status, olgas) = olgas.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{olgas}");
    let olgas: CompensationRequest = serde_json::from_value(olgas).unwrap();
    assert_eq!(olgas.status, CompensationStatus::Granted, "{olgas:?}");
    let ledger = ledger_after(&app, &admin, 0).await;
    assert_eq!(
        ledger
            .iter()
            .map(|e| (e.seq, e.request_id, e.amount_minor))
            .collect::<Vec<_>>(),
        [(1, ivans.id, 600), (2, olgas.id, 800)]
    );
    let verified: LedgerVerification = app
        .get("/api/admin/compensation/ledger/verify", &admin)
        .await
        .json();
    assert!(verified.ok, "{verified:?}");
    drop((olga, ivan));
}

/// Grants that wait their turn (here behind one stuck on its ticket's row,
/// each after the one before on the same agent's budget) hold at most half
/// of a node's shared connections: the node still reads, and once the row
/// is let go every grant is decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_waiting_their_turn_leave_the_node_connections_to_read() {
    let Some(app) = spawn_app(Storage::Postgres, Live::Memory).await else {
        return;
    };
    let (category, customer) = care_desk(&app).await;
    let olga = agent_holding_ticket(&app, "olga", customer, category).await;
    let admin = relogin(&app, "admin").await;
    publish(&app, &admin, &policy()).await;

    let held_row = app.hold_ticket_row(olga.ticket_id).await;
    // Twice as many grants as the node has shared connections (sixteen in
    // all, four of them the writers').
    let grants: Vec<_> = (0..24)
        .map(|n| {
            let key = format!("olga-{n}");
            ask_meanwhile(&app, &olga.token, &key, &credit(olga.ticket_id, 100))
        })
        .collect();
    app.until_a_session_waits_for_a_lock().await;

    let reading = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        app.get(&format!("/api/tickets/{}", olga.ticket_id), &admin),
    )
    .await
    .expect("reading a ticket waited for a connection held by waiting grants");
    assert_eq!(reading.status, StatusCode::OK, "{}", reading.body);
    assert_eq!(reading.body["assigned_agent_id"], olga.id);

    held_row.let_go().await;
    let mut decided = Vec::new();
    for grant in grants {
        let (status, body) = grant.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let request: CompensationRequest = serde_json::from_value(body).unwrap();
        decided.push(request.status);
    }
    // Her day's budget (50.00) holds fifty credits of 1.00; each was decided.
    assert!(
        decided.iter().all(|s| *s == CompensationStatus::Granted),
        "{decided:?}"
    );
    let ledger = ledger_after(&app, &admin, 0).await;
    assert_eq!(ledger.len(), 24);
    let verified: LedgerVerification = app
        .get("/api/admin/compensation/ledger/verify", &admin)
        .await
        .json();
    assert!(verified.ok, "{verified:?}");
}
