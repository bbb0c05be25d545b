//! Group commit: the writes of concurrent requests that queue up behind a
//! node's writer share one transaction and one commit; a write that fails
//! among them costs the others nothing (the batch is rolled back and each
//! runs again alone), and a refusal (an accept too late, a resolve by
//! someone else) does not fail the batch at all.
//!
//! The stories hold the writer of a node (a second `Db` on the test's
//! database, as a second server node would have) while the writes queue up,
//! then let it go.

mod support;

use callcenter::clock::Clock;
use callcenter::store::{Db, Filed, IdempotencyKey, NewComplaint, OfferStep, StoreError};
use callcenter_proto::http::{Outcome, Ticket};
use reqwest::StatusCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{Live, Storage, TestApp, spawn_app};
use tokio::task::JoinHandle;

on_every_backend!(
    complaints_filed_together_share_one_commit,
    a_failing_write_does_not_take_its_batch_down,
    accepts_and_resolves_share_commits_too,
    several_tickets_accepted_and_resolved_in_one_commit_each_count,
    a_complaint_filed_in_a_shared_commit_reopens_the_last_one,
);

/// A second node's store on the test's database, filing complaints of one
/// customer in one category.
struct Node {
    db: Db,
    customer: i64,
    category: i64,
    queue: i64,
    now: i64,
}

impl Node {
    async fn start(app: &TestApp) -> Node {
        let (queue, category) = app.queue("billing", &[], 30).await;
        Node {
            db: Db::connect(&app.database_url).await.unwrap(),
            customer: app.customer("shop-1").await,
            category,
            queue,
            now: app.clock.now_ms(),
        }
    }

    /// Send a complaint to the writer (under `key`); its answer comes later.
    fn send(&self, key: &str, text: &str) -> JoinHandle<Result<Filed, StoreError>> {
        self.send_for(self.customer, key, text)
    }

    fn send_for(
        &self,
        customer_id: i64,
        key: &str,
        text: &str,
    ) -> JoinHandle<Result<Filed, StoreError>> {
        self.send_reopening(customer_id, 0, key, text)
    }

    /// Send a complaint that reopens the customer's last one in the
    /// category if it ended within `reopen_window_ms`.
    fn send_reopening(
        &self,
        customer_id: i64,
        reopen_window_ms: i64,
        key: &str,
        text: &str,
    ) -> JoinHandle<Result<Filed, StoreError>> {
        let (db, key, text, now) = (self.db.clone(), key.to_string(), text.to_string(), self.now);
        let complaint = NewComplaint {
            customer_id,
            category_id: self.category,
            queue_id: self.queue,
            channel: "phone".into(),
            description: text.clone(),
            actor_user_id: 1,
            reopen_window_ms,
            rank: Arc::new(move |_, _| now),
        };
        tokio::spawn(async move {
            let key = IdempotencyKey {
                scope: "complaint:1",
                key: &key,
                request_hash: &text,
            };
            db.file_complaint(complaint, &key, now).await
        })
    }

    /// File a complaint and wait for it.
    async fn file(&self, key: &str, text: &str) -> Ticket {
        filed_now(self.send(key, text).await.unwrap())
    }

    /// Let works queue up behind the writer until `n` wait, then run.
    async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.db.group_commit().hold().await
    }

    async fn until_waiting(&self, n: i64) {
        self.db.group_commit().until_waiting(n).await
    }

    /// Transactions and works the writer has committed so far.
    fn committed(&self) -> (u64, u64) {
        let stats = self.db.group_commit().stats();
        (
            stats.transactions.load(Ordering::Relaxed),
            stats.works.load(Ordering::Relaxed),
        )
    }

    /// Works timed waiting for the writer, and batches timed, so far (the
    /// histograms of `/metrics`).
    fn timed(&self) -> (u64, u64) {
        let stats = self.db.group_commit().stats();
        (stats.wait.count(), stats.batch.count())
    }

    /// Batches rolled back and rerun alone so far.
    fn reruns(&self) -> u64 {
        self.db
            .group_commit()
            .stats()
            .batches_rerun
            .load(Ordering::Relaxed)
    }
}

fn filed_now(filed: Result<Filed, StoreError>) -> Ticket {
    match filed {
        Ok(Filed::New { ticket, .. }) => ticket,
        Ok(Filed::Before(ticket)) => panic!("ticket {} was filed before", ticket.id),
        Err(e) => panic!("not filed: {e}"),
    }
}

async fn description_on_record(app: &TestApp, ticket_id: i64) -> String {
    let reply = app
        .get(&format!("/api/tickets/{ticket_id}"), &app.admin_token)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["description"].as_str().unwrap().to_string()
}

async fn complaints_filed_together_share_one_commit(app: TestApp) {
    let node = Node::start(&app).await;
    let before = node.committed();
    let timed_before = node.timed();

    let held = node.hold().await;
    let filings: Vec<_> = (0..5)
        .map(|i| node.send(&format!("call-{i}"), &format!("Kettle {i} leaks")))
        .collect();
    node.until_waiting(5).await;
    drop(held);
    let mut tickets = Vec::new();
    for filing in filings {
        tickets.push(filed_now(filing.await.unwrap()));
    }

    let after = node.committed();
    assert_eq!(after.0 - before.0, 1, "one transaction for the five");
    assert_eq!(after.1 - before.1, 5);
    let timed = node.timed();
    assert_eq!(
        (timed.0 - timed_before.0, timed.1 - timed_before.1),
        (5, 1),
        "five waits and one batch timed"
    );
    for (i, ticket) in tickets.iter().enumerate() {
        assert_eq!(
            description_on_record(&app, ticket.id).await,
            format!("Kettle {i} leaks")
        );
    }
    // Each key answers with its own ticket, each history starts as filed.
    match node.send("call-3", "Kettle 3 leaks").await.unwrap() {
        Ok(Filed::Before(ticket)) => assert_eq!(ticket.id, tickets[3].id),
        Ok(Filed::New { ticket, .. }) => panic!("the retry filed ticket {}", ticket.id),
        Err(e) => panic!("the retry failed: {e}"),
    }
    for ticket in &tickets {
        assert_eq!(app.history_steps(ticket.id).await, ["created", "queued"]);
    }
}

async fn a_failing_write_does_not_take_its_batch_down(app: TestApp) {
    let node = Node::start(&app).await;
    let first = node.file("call-1", "Kettle leaks").await;
    let reruns_before = node.reruns();

    let held = node.hold().await;
    let good = node.send("call-2", "Toaster smokes");
    // A retry of the first complaint: its key is taken (a unique violation
    // inside the batch); the answer is the first ticket.
    let retry = node.send("call-1", "Kettle leaks");
    // A complaint about a customer that does not exist.
    let unknown = node.send_for(999_999, "call-3", "Who am I");
    let also_good = node.send("call-4", "Fridge hums");
    node.until_waiting(4).await;
    drop(held);

    let good = filed_now(good.await.unwrap());
    let also_good = filed_now(also_good.await.unwrap());
    match retry.await.unwrap() {
        Ok(Filed::Before(ticket)) => assert_eq!(ticket.id, first.id),
        Ok(Filed::New { ticket, .. }) => panic!("the retry filed ticket {}", ticket.id),
        Err(e) => panic!("the retry failed: {e}"),
    }
    assert!(
        matches!(
            unknown.await.unwrap(),
            Err(StoreError::NotFound("customer"))
        ),
        "a complaint about nobody is refused"
    );
    assert_eq!(
        node.reruns() - reruns_before,
        1,
        "the batch ran again, alone"
    );
    assert_eq!(description_on_record(&app, good.id).await, "Toaster smokes");
    assert_eq!(
        description_on_record(&app, also_good.id).await,
        "Fridge hums"
    );
    // Nothing of the refused complaint was kept: its key is free for the
    // corrected one.
    let corrected = node.file("call-3", "Who am I, fixed").await;
    assert_eq!(
        description_on_record(&app, corrected.id).await,
        "Who am I, fixed"
    );
}

async fn accepts_and_resolves_share_commits_too(app: TestApp) {
    let node = Node::start(&app).await;
    let (olga, _) = app.agent("olga", &[], 1).await;
    let (ivan, _) = app.agent("ivan", &[], 1).await;
    let kettle = node.file("call-1", "Kettle leaks").await;
    let toaster = node.file("call-2", "Toaster smokes").await;
    let (now, queue) = (node.now, node.queue);
    let offer = move |agent_id| OfferStep {
        agent_id,
        queue_id: queue,
        version: 1,
        deadline_ms: now + 30_000,
        at_ms: now,
    };

    // Both accept at once; an accept of a ticket already taken (olga's,
    // resent) is refused without failing the others' commit.
    let (before, reruns_before) = (node.committed(), node.reruns());
    let held = node.hold().await;
    let accept = |ticket_id: i64, agent_id: i64| {
        let db = node.db.clone();
        tokio::spawn(async move { db.assign(ticket_id, &offer(agent_id), now).await })
    };
    let olga_takes = accept(kettle.id, olga);
    let ivan_takes = accept(toaster.id, ivan);
    node.until_waiting(2).await;
    let late = accept(kettle.id, olga);
    node.until_waiting(3).await;
    drop(held);
    assert_eq!(
        olga_takes.await.unwrap().unwrap().assigned_agent_id,
        Some(olga)
    );
    assert_eq!(
        ivan_takes.await.unwrap().unwrap().assigned_agent_id,
        Some(ivan)
    );
    assert!(matches!(late.await.unwrap(), Err(StoreError::Conflict(_))));
    assert_eq!(node.committed().0 - before.0, 1, "one commit for three");

    // Both resolve at once; a resolve by someone who does not hold the
    // ticket is refused, again without failing the others' commit.
    let before = node.committed();
    let held = node.hold().await;
    let resolve = |ticket_id: i64, agent_id: i64, code: &str| {
        let db = node.db.clone();
        let outcome = Outcome {
            code: code.to_string(),
            resolved: true,
            note: String::new(),
        };
        tokio::spawn(async move {
            db.resolve(ticket_id, agent_id, &outcome, now + 60_000)
                .await
        })
    };
    let olga_ends = resolve(kettle.id, olga, "refund_issued");
    let ivan_ends = resolve(toaster.id, ivan, "explained");
    let stranger = resolve(toaster.id, olga, "explained");
    node.until_waiting(3).await;
    drop(held);
    let code = |ticket: Ticket| ticket.outcome.map(|o| o.code);
    assert_eq!(
        code(olga_ends.await.unwrap().unwrap()).as_deref(),
        Some("refund_issued")
    );
    assert_eq!(
        code(ivan_ends.await.unwrap().unwrap()).as_deref(),
        Some("explained")
    );
    assert!(matches!(
        stranger.await.unwrap(),
        Err(StoreError::NotFound(_)) | Err(StoreError::Conflict(_))
    ));
    assert_eq!(node.committed().0 - before.0, 1, "one commit for three");
    assert_eq!(
        node.reruns(),
        reruns_before,
        "refusals did not roll anything back"
    );

    // The history of each shows it offered, accepted and resolved.
    for ticket_id in [kettle.id, toaster.id] {
        assert_eq!(
            app.history_steps(ticket_id).await,
            ["created", "queued", "offered", "accepted", "resolved"]
        );
    }
}

/// An offer of `queue`'s ticket to `agent_id`, made at `now`.
fn offer_of(queue: i64, now: i64, agent_id: i64) -> OfferStep {
    OfferStep {
        agent_id,
        queue_id: queue,
        version: 1,
        deadline_ms: now + 30_000,
        at_ms: now,
    }
}

async fn several_tickets_accepted_and_resolved_in_one_commit_each_count(app: TestApp) {
    let node = Node::start(&app).await;
    let (olga, _) = app.agent("olga", &[], 1).await;
    let (ivan, _) = app.agent("ivan", &[], 1).await;
    let (anna, _) = app.agent("anna", &[], 1).await;
    let kettle = node.file("call-1", "Kettle leaks").await;
    let toaster = node.file("call-2", "Toaster smokes").await;
    let fridge = node.file("call-3", "Fridge hums").await;
    let (now, queue) = (node.now, node.queue);
    let accept = |ticket_id: i64, agent_id: i64| {
        let db = node.db.clone();
        tokio::spawn(async move {
            db.assign(ticket_id, &offer_of(queue, now, agent_id), now + 1_000)
                .await
        })
    };
    // Anna took the fridge before.
    accept(fridge.id, anna).await.unwrap().unwrap();

    // Olga and Ivan accept at once; Olga's accept of the fridge, too late,
    // is refused in the same commit without failing theirs.
    let (before, reruns_before) = (node.committed(), node.reruns());
    let held = node.hold().await;
    let olga_takes = accept(kettle.id, olga);
    let ivan_takes = accept(toaster.id, ivan);
    let too_late = accept(fridge.id, olga);
    node.until_waiting(3).await;
    drop(held);
    assert_eq!(
        olga_takes.await.unwrap().unwrap().assigned_agent_id,
        Some(olga)
    );
    assert_eq!(
        ivan_takes.await.unwrap().unwrap().assigned_agent_id,
        Some(ivan)
    );
    assert!(matches!(
        too_late.await.unwrap(),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(node.committed().0 - before.0, 1, "one commit for three");
    assert_eq!(
        node.reruns(),
        reruns_before,
        "the refusal rolled nothing back"
    );

    // The board counts three answers today, each within the service level.
    let today = (now + 1_000).div_euclid(86_400_000);
    let figures = node.db.queue_figures(&[queue], today).await.unwrap();
    assert_eq!(figures[0].answered_today, 3);
    assert_eq!(figures[0].service_level_permille, Some(1000));
    for (ticket, holder) in [(kettle.id, olga), (toaster.id, ivan), (fridge.id, anna)] {
        assert_eq!(
            app.history_steps(ticket).await,
            ["created", "queued", "offered", "accepted"]
        );
        let reply = app
            .get(&format!("/api/tickets/{ticket}"), &app.admin_token)
            .await;
        assert_eq!(reply.body["assigned_agent_id"], holder, "{}", reply.body);
    }

    // Olga and Ivan resolve at once, Olga also the fridge she does not hold
    // (refused, nothing rolled back); Anna's stays hers.
    let (before, reruns_before) = (node.committed(), node.reruns());
    let ended_at = now + 120_000;
    let held = node.hold().await;
    let resolve = |ticket_id: i64, agent_id: i64, code: &str, resolved: bool| {
        let db = node.db.clone();
        let outcome = Outcome {
            code: code.to_string(),
            resolved,
            note: format!("{code} by {agent_id}"),
        };
        tokio::spawn(async move { db.resolve(ticket_id, agent_id, &outcome, ended_at).await })
    };
    let olga_ends = resolve(kettle.id, olga, "refund_issued", true);
    let ivan_ends = resolve(toaster.id, ivan, "callback_needed", false);
    let not_hers = resolve(fridge.id, olga, "explained", true);
    node.until_waiting(3).await;
    drop(held);
    let olga_ends = olga_ends.await.unwrap().unwrap();
    let ivan_ends = ivan_ends.await.unwrap().unwrap();
    assert!(matches!(
        not_hers.await.unwrap(),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(node.committed().0 - before.0, 1, "one commit for three");
    assert_eq!(
        node.reruns(),
        reruns_before,
        "the refusal rolled nothing back"
    );
    for (ended, ticket, code, resolved, agent) in [
        (olga_ends, kettle.id, "refund_issued", true, olga),
        (ivan_ends, toaster.id, "callback_needed", false, ivan),
    ] {
        let outcome = ended.outcome.expect("an outcome");
        assert_eq!((ended.id, outcome.code.as_str()), (ticket, code));
        assert_eq!(outcome.note, format!("{code} by {agent}"));
        assert_eq!(
            app.history_steps(ticket).await,
            ["created", "queued", "offered", "accepted", "resolved"]
        );
        // Each has its own quality record: who, when, how it ended, and the
        // two minutes the agent held it.
        let quality = callcenter::quality::outcomes::ticket_quality(&node.db, ticket)
            .await
            .unwrap();
        assert_eq!(
            (quality.agent_id, quality.ended_at_ms, quality.resolved),
            (Some(agent), ended_at, resolved)
        );
        assert_eq!(quality.resolution_code.as_deref(), Some(code));
        assert_eq!(quality.handle_ms, 119_000);
    }
    let reply = app
        .get(&format!("/api/tickets/{}", fridge.id), &app.admin_token)
        .await;
    assert_eq!(reply.body["status"], "assigned", "{}", reply.body);
    assert_eq!(reply.body["assigned_agent_id"], anna);
}

async fn a_complaint_filed_in_a_shared_commit_reopens_the_last_one(app: TestApp) {
    let node = Node::start(&app).await;
    let (olga, _) = app.agent("olga", &[], 1).await;
    let other = app.customer("shop-2").await;
    let third = app.customer("shop-3").await;
    let now = node.now;
    let outcome = Outcome {
        code: "explained".into(),
        resolved: true,
        note: String::new(),
    };
    // The customer's kettle complaint and the third customer's fridge
    // complaint, taken and resolved (ended at the moment the next
    // complaints are filed: within the window).
    let kettle = node.file("call-1", "Kettle leaks").await;
    let fridge = filed_now(
        node.send_reopening(third, 0, "call-0", "Fridge hums")
            .await
            .unwrap(),
    );
    for ticket in [kettle.id, fridge.id] {
        node.db
            .assign(ticket, &offer_of(node.queue, now, olga), now)
            .await
            .unwrap();
        node.db.resolve(ticket, olga, &outcome, now).await.unwrap();
    }

    // Both complain again within the window, in one commit with another
    // customer's first complaint.
    let week_ms = 7 * 86_400_000;
    let held = node.hold().await;
    let again = node.send_reopening(node.customer, week_ms, "call-2", "Kettle leaks again");
    let first = node.send_reopening(other, week_ms, "call-3", "Toaster smokes");
    let fridge_again = node.send_reopening(third, week_ms, "call-4", "Fridge hums again");
    node.until_waiting(3).await;
    drop(held);
    let again = filed_now(again.await.unwrap());
    let first = filed_now(first.await.unwrap());
    let fridge_again = filed_now(fridge_again.await.unwrap());

    assert_eq!(app.history_steps(first.id).await, ["created", "queued"]);
    for (reopen, of) in [(again.id, kettle.id), (fridge_again.id, fridge.id)] {
        assert_eq!(
            app.history_steps(reopen).await,
            ["created", "queued", "reopen_of"]
        );
        assert_eq!(step_data(&app, reopen, "reopen_of").await["ticket_id"], of);
        assert_eq!(
            app.history_steps(of).await,
            [
                "created", "queued", "offered", "accepted", "resolved", "reopened"
            ]
        );
        assert_eq!(
            step_data(&app, of, "reopened").await["by_ticket_id"],
            reopen
        );
        let quality = callcenter::quality::outcomes::ticket_quality(&node.db, of)
            .await
            .unwrap();
        assert!(quality.reopened, "ticket {of} counts as reopened");
    }
    assert_eq!(
        description_on_record(&app, again.id).await,
        "Kettle leaks again"
    );
    assert_eq!(
        description_on_record(&app, first.id).await,
        "Toaster smokes"
    );
}

/// What the ticket's history step of this kind says.
async fn step_data(app: &TestApp, ticket_id: i64, kind: &str) -> serde_json::Value {
    let reply = app
        .get(
            &format!("/api/tickets/{ticket_id}/history"),
            &app.admin_token,
        )
        .await;
    let history: callcenter_proto::http::TicketHistory = reply.json();
    history
        .events
        .into_iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("ticket {ticket_id} has no {kind} step"))
        .data
}

/// On PostgreSQL the writers have connections of their own: a complaint is
/// filed while other work holds every shared connection (compensation
/// decisions queued on the ledger's lock did, at a thousand lifecycles a
/// second, and the line stopped draining).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_is_filed_while_other_work_holds_every_shared_connection() {
    let Some(app) = spawn_app(Storage::Postgres, Live::Memory).await else {
        return;
    };
    let node = Node::start(&app).await;
    let shared = node.db.pool();
    let mut held = Vec::new();
    while held.len() < shared.options().get_max_connections() as usize {
        held.push(shared.acquire().await.unwrap());
    }

    let filing = node.send("call-1", "Kettle leaks");
    let filed = tokio::time::timeout(Duration::from_secs(5), filing)
        .await
        .expect("the writer waited for a shared connection")
        .unwrap();
    let ticket = filed_now(filed);

    drop(held);
    assert_eq!(description_on_record(&app, ticket.id).await, "Kettle leaks");
}

/// Asked for more writers than the node's usual 16 connections, a node
/// keeps its shared pool (eight connections) beside their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writers_leave_the_shared_pool_its_connections() {
    let Some(app) = spawn_app(Storage::Postgres, Live::Memory).await else {
        return;
    };
    let db = Db::connect_with_writers(&app.database_url, 20)
        .await
        .unwrap();
    assert_eq!(db.pool().options().get_max_connections(), 8);
    let node = Node {
        db,
        ..Node::start(&app).await
    };
    let ticket = filed_now(node.send("call-1", "Kettle leaks").await.unwrap());
    assert_eq!(description_on_record(&app, ticket.id).await, "Kettle leaks");
}

/// An accept counts its answer in a row that every accept of the queue (in
/// the agent's shard) updates, whichever node it is on. The batch holding
/// one locks that row last, just before its commit: a batch held up by
/// other work (here a resolve waiting for its ticket's row) does not hold
/// up another node's accepts. (The order of kinds in a batch was the order
/// of their type ids, which put accepts last only by chance; with accepts
/// first, this story fails.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_held_up_does_not_hold_up_another_nodes_accepts() {
    let Some(app) = spawn_app(Storage::Postgres, Live::Memory).await else {
        return;
    };
    let node = Node::start(&app).await;
    let other_node = Node {
        db: Db::connect(&app.database_url).await.unwrap(),
        customer: node.customer,
        category: node.category,
        queue: node.queue,
        now: node.now,
    };
    // Olga and Ivan count their answers in the same row (one shard).
    let (olga, _) = app.agent("olga", &[], 1).await;
    let mut ivan = 0;
    for n in 0..16 {
        let (id, _) = app.agent(&format!("ivan-{n}"), &[], 1).await;
        if id.rem_euclid(16) == olga.rem_euclid(16) {
            ivan = id;
            break;
        }
    }
    assert_ne!(ivan, 0);
    let (anna, _) = app.agent("anna", &[], 1).await;
    let (now, queue) = (node.now, node.queue);
    let kettle = node.file("call-1", "Kettle leaks").await;
    let toaster = node.file("call-2", "Toaster smokes").await;
    let fridge = node.file("call-3", "Fridge hums").await;
    node.db
        .assign(fridge.id, &offer_of(queue, now, anna), now)
        .await
        .unwrap();

    // Another session holds the fridge's row: Anna's resolve waits, and
    // Olga's accept shares its batch.
    let held_row = app.hold_ticket_row(fridge.id).await;
    let held = node.hold().await;
    let anna_ends = {
        let db = node.db.clone();
        let outcome = Outcome {
            code: "explained".into(),
            resolved: true,
            note: String::new(),
        };
        tokio::spawn(async move { db.resolve(fridge.id, anna, &outcome, now + 60_000).await })
    };
    let olga_takes = {
        let db = node.db.clone();
        tokio::spawn(async move { db.assign(kettle.id, &offer_of(queue, now, olga), now).await })
    };
    node.until_waiting(2).await;
    drop(held);
    app.until_a_session_waits_for_a_lock().await;

    let ivan_takes = tokio::time::timeout(
        Duration::from_secs(10),
        other_node
            .db
            .assign(toaster.id, &offer_of(queue, now, ivan), now),
    )
    .await
    .expect("Ivan's accept waited for the batch holding Olga's")
    .unwrap();
    assert_eq!(ivan_takes.assigned_agent_id, Some(ivan));

    held_row.let_go().await;
    let ended = anna_ends.await.unwrap().unwrap();
    assert_eq!(ended.outcome.map(|o| o.code).as_deref(), Some("explained"));
    assert_eq!(
        olga_takes.await.unwrap().unwrap().assigned_agent_id,
        Some(olga)
    );
    let today = now.div_euclid(86_400_000);
    let figures = node.db.queue_figures(&[queue], today).await.unwrap();
    assert_eq!(figures[0].answered_today, 3, "Anna's, Olga's and Ivan's");
}
