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
use callcenter_proto::http::{Outcome, Ticket, TicketHistory};
use reqwest::StatusCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use support::TestApp;
use tokio::task::JoinHandle;

on_every_backend!(
    complaints_filed_together_share_one_commit,
    a_failing_write_does_not_take_its_batch_down,
    accepts_and_resolves_share_commits_too,
);

/// Transactions and works the node's writer has committed so far.
fn committed(node: &Db) -> (u64, u64) {
    let stats = node.group_commit().stats();
    (
        stats.transactions.load(Ordering::Relaxed),
        stats.works.load(Ordering::Relaxed),
    )
}

fn file(
    app: &TestApp,
    node: &Db,
    key: &str,
    customer_id: i64,
    category_id: i64,
    queue_id: i64,
    text: &str,
) -> JoinHandle<Result<Filed, StoreError>> {
    let (node, key, text) = (node.clone(), key.to_string(), text.to_string());
    let now = app.clock.now_ms();
    tokio::spawn(async move {
        let complaint = NewComplaint {
            customer_id,
            category_id,
            queue_id,
            channel: "phone".into(),
            description: text.clone(),
            actor_user_id: 1,
            reopen_window_ms: 0,
            rank: Arc::new(move |_, _| now),
        };
        let key = IdempotencyKey {
            scope: "complaint:1",
            key: &key,
            request_hash: &text,
        };
        node.file_complaint(complaint, &key, now).await
    })
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
    let (queue, category) = app.queue("billing", &[], 30).await;
    let customer = app.customer("shop-1").await;
    let node = Db::connect(&app.database_url).await.unwrap();
    let before = committed(&node);

    let held = node.group_commit().hold().await;
    let filings: Vec<_> = (0..5)
        .map(|i| {
            let text = format!("Kettle {i} leaks");
            file(
                &app,
                &node,
                &format!("call-{i}"),
                customer,
                category,
                queue,
                &text,
            )
        })
        .collect();
    node.group_commit().until_waiting(5).await;
    drop(held);
    let mut tickets = Vec::new();
    for filing in filings {
        tickets.push(filed_now(filing.await.unwrap()));
    }

    let after = committed(&node);
    assert_eq!(after.0 - before.0, 1, "one transaction for the five");
    assert_eq!(after.1 - before.1, 5);
    for (i, ticket) in tickets.iter().enumerate() {
        assert_eq!(
            description_on_record(&app, ticket.id).await,
            format!("Kettle {i} leaks")
        );
    }
}

async fn a_failing_write_does_not_take_its_batch_down(app: TestApp) {
    let (queue, category) = app.queue("billing", &[], 30).await;
    let customer = app.customer("shop-1").await;
    let node = Db::connect(&app.database_url).await.unwrap();
    let first = filed_now(
        file(
            &app,
            &node,
            "call-1",
            customer,
            category,
            queue,
            "Kettle leaks",
        )
        .await
        .unwrap(),
    );
    let reruns = || {
        node.group_commit()
            .stats()
            .batches_rerun
            .load(Ordering::Relaxed)
    };
    let reruns_before = reruns();

    let held = node.group_commit().hold().await;
    let good = file(
        &app,
        &node,
        "call-2",
        customer,
        category,
        queue,
        "Toaster smokes",
    );
    // A retry of the first complaint: its key is taken (a unique violation
    // inside the batch); the answer is the first ticket.
    let retry = file(
        &app,
        &node,
        "call-1",
        customer,
        category,
        queue,
        "Kettle leaks",
    );
    // A complaint about a customer that does not exist.
    let unknown = file(&app, &node, "call-3", 999_999, category, queue, "Who am I");
    let also_good = file(
        &app,
        &node,
        "call-4",
        customer,
        category,
        queue,
        "Fridge hums",
    );
    node.group_commit().until_waiting(4).await;
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
    assert_eq!(reruns() - reruns_before, 1, "the batch ran again, alone");
    assert_eq!(description_on_record(&app, good.id).await, "Toaster smokes");
    assert_eq!(
        description_on_record(&app, also_good.id).await,
        "Fridge hums"
    );
    // Nothing of the refused complaint was kept: its key is free for the
    // corrected one.
    let corrected = filed_now(
        file(
            &app,
            &node,
            "call-3",
            customer,
            category,
            queue,
            "Who am I, fixed",
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        description_on_record(&app, corrected.id).await,
        "Who am I, fixed"
    );
}

async fn accepts_and_resolves_share_commits_too(app: TestApp) {
    let (queue, category) = app.queue("billing", &[], 30).await;
    let customer = app.customer("shop-1").await;
    let (olga, _) = app.agent("olga", &[], 1).await;
    let (ivan, _) = app.agent("ivan", &[], 1).await;
    let node = Db::connect(&app.database_url).await.unwrap();
    let kettle = filed_now(
        file(
            &app,
            &node,
            "call-1",
            customer,
            category,
            queue,
            "Kettle leaks",
        )
        .await
        .unwrap(),
    );
    let toaster = filed_now(
        file(
            &app,
            &node,
            "call-2",
            customer,
            category,
            queue,
            "Toaster smokes",
        )
        .await
        .unwrap(),
    );
    let now = app.clock.now_ms();
    let offer = move |agent_id| OfferStep {
        agent_id,
        queue_id: queue,
        version: 1,
        deadline_ms: now + 30_000,
        at_ms: now,
    };

    // Both accept at once; an accept of a ticket already taken (olga's,
    // resent) is refused without failing the others' commit.
    let (before, reruns_before) = (
        committed(&node),
        node.group_commit()
            .stats()
            .batches_rerun
            .load(Ordering::Relaxed),
    );
    let held = node.group_commit().hold().await;
    let accept = |ticket_id: i64, agent_id: i64| {
        let node = node.clone();
        tokio::spawn(async move { node.assign(ticket_id, &offer(agent_id), now).await })
    };
    let olga_takes = accept(kettle.id, olga);
    let ivan_takes = accept(toaster.id, ivan);
    node.group_commit().until_waiting(2).await;
    let late = accept(kettle.id, olga);
    node.group_commit().until_waiting(3).await;
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
    assert_eq!(committed(&node).0 - before.0, 1, "one commit for three");

    // Both resolve at once; a resolve by someone who does not hold the
    // ticket is refused, again without failing the others' commit.
    let before = committed(&node);
    let held = node.group_commit().hold().await;
    let resolve = |ticket_id: i64, agent_id: i64, code: &str| {
        let node = node.clone();
        let outcome = Outcome {
            code: code.to_string(),
            resolved: true,
            note: String::new(),
        };
        tokio::spawn(async move {
            node.resolve(ticket_id, agent_id, &outcome, now + 60_000)
                .await
        })
    };
    let olga_ends = resolve(kettle.id, olga, "refund_issued");
    let ivan_ends = resolve(toaster.id, ivan, "explained");
    let stranger = resolve(toaster.id, olga, "explained");
    node.group_commit().until_waiting(3).await;
    drop(held);
    assert_eq!(
        olga_ends
            .await
            .unwrap()
            .unwrap()
            .outcome
            .map(|o| o.code)
            .as_deref(),
        Some("refund_issued")
    );
    assert_eq!(
        ivan_ends
            .await
            .unwrap()
            .unwrap()
            .outcome
            .map(|o| o.code)
            .as_deref(),
        Some("explained")
    );
    assert!(matches!(
        stranger.await.unwrap(),
        Err(StoreError::NotFound(_)) | Err(StoreError::Conflict(_))
    ));
    assert_eq!(committed(&node).0 - before.0, 1, "one commit for three");
    assert_eq!(
        node.group_commit()
            .stats()
            .batches_rerun
            .load(Ordering::Relaxed),
        reruns_before,
        "refusals did not roll anything back"
    );

    // The history of each shows it offered, accepted and resolved.
    for ticket_id in [kettle.id, toaster.id] {
        let history: TicketHistory = app
            .get(
                &format!("/api/tickets/{ticket_id}/history"),
                &app.admin_token,
            )
            .await
            .json();
        let kinds: Vec<&str> = history.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["created", "queued", "offered", "accepted", "resolved"]
        );
    }
}
