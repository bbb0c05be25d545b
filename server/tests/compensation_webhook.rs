//! The shop, billing and CRM learn of every grant through a signed webhook:
//! a real receiver (axum on port 0) refuses the first two attempts; the
//! server retries with backoff driven by the clock, signs every attempt
//! with HMAC-SHA256, and logs each one. A reversal is told once, too.

mod compensation_fixtures;
mod support;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use callcenter_proto::compensation::{WebhookDelivery, WebhookEvent};
use compensation_fixtures::*;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::json;
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::{Live, Options, Storage, TestApp, spawn_with};
use tokio::sync::mpsc;

const SECRET: &str = "a shared webhook secret";

/// One POST as the receiver saw it.
struct Received {
    signature: String,
    timestamp: String,
    event_id: String,
    body: Vec<u8>,
}

#[derive(Clone)]
struct Receiver {
    seen: mpsc::UnboundedSender<Received>,
    calls: Arc<AtomicUsize>,
    fail_first: usize,
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> AxumStatus {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let _ = r.seen.send(Received {
        signature: header("x-callcenter-signature"),
        timestamp: header("x-callcenter-timestamp"),
        event_id: header("x-callcenter-event-id"),
        body: body.to_vec(),
    });
    if r.calls.fetch_add(1, Ordering::SeqCst) < r.fail_first {
        AxumStatus::SERVICE_UNAVAILABLE
    } else {
        AxumStatus::NO_CONTENT
    }
}

/// A receiver that answers 503 to its first `fail_first` calls.
async fn start_receiver(fail_first: usize) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Receiver {
        seen: tx,
        calls: Arc::new(AtomicUsize::new(0)),
        fail_first,
    };
    let app = axum::Router::new()
        .route("/hooks/compensation", axum::routing::post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hooks/compensation"), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the webhook was not called in time")
        .expect("receiver open")
}

fn verify(r: &Received) -> WebhookEvent {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(r.timestamp.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(r.signature, expected, "the signature does not verify");
    let event: WebhookEvent = serde_json::from_slice(&r.body).expect("event");
    assert_eq!(r.event_id, event.event_id);
    event
}

/// The delivery log once it holds `n` attempts.
async fn deliveries(app: &TestApp, admin: &str, n: usize) -> Vec<WebhookDelivery> {
    // The attempt is logged just after the receiver answers.
    for _ in 0..400 {
        let log: Vec<WebhookDelivery> = app
            .get("/api/admin/compensation/deliveries", admin)
            .await
            .json();
        if log.len() >= n {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the delivery log never held {n} attempts");
}

async fn grants_reach_the_webhook_signed_and_retried(storage: Storage) {
    let (url, mut calls) = start_receiver(2).await;
    let mut options = Options::new(storage, Live::Memory);
    options.webhook = Some((url, SECRET.into()));
    let Some(app) = spawn_with(options).await else {
        return;
    };
    publish(&app, &app.admin_token, &policy()).await;
    let (category, customer) = care_desk(&app).await;
    let olga = agent_holding_ticket(&app, "olga", customer, category).await;
    let granted = asked(&app, &olga.token, "w-1", &credit(olga.ticket_id, 1500)).await;

    // First attempt at once; refused.
    let first = verify(&next(&mut calls).await);
    assert_eq!(first.kind, "compensation.granted");
    assert_eq!(first.entry.request_id, granted.id);
    assert_eq!(first.entry.amount_minor, 1500);
    assert_eq!(first.entry.policy_version, 1);
    deliveries(&app, &app.admin_token, 1).await;
    // Retried after 1 s, then 2 s (of the server's clock): same event, fresh signature.
    app.clock.advance_ms(1000);
    let second = verify(&next(&mut calls).await);
    deliveries(&app, &app.admin_token, 2).await;
    app.clock.advance_ms(2000);
    let third = verify(&next(&mut calls).await);
    assert_eq!(second.event_id, first.event_id);
    assert_eq!(third.event_id, first.event_id);
    assert_eq!(third.entry, first.entry);

    let log = deliveries(&app, &app.admin_token, 3).await;
    let attempts: Vec<(i64, Option<i64>, bool)> = log
        .iter()
        .rev()
        .map(|d| (d.attempt, d.status_code, d.ok))
        .collect();
    assert_eq!(
        attempts,
        [
            (1, Some(503), false),
            (2, Some(503), false),
            (3, Some(204), true)
        ]
    );
    assert!(log.iter().all(|d| d.event_id == first.event_id));

    // A delivered event is not sent again; the reversal is its own event.
    app.clock.advance_ms(3_600_000);
    let admin = relogin(&app, "admin").await;
    let reversed = app
        .post(
            &format!("/api/compensation/requests/{}/reversal", granted.id),
            &admin,
            &json!({ "note": "order returned" }),
        )
        .await;
    assert_eq!(reversed.status, StatusCode::CREATED, "{}", reversed.body);
    let reversal = verify(&next(&mut calls).await);
    assert_eq!(reversal.kind, "compensation.reversed");
    assert_eq!(reversal.entry.amount_minor, -1500);
    assert_ne!(reversal.event_id, first.event_id);
    let log = deliveries(&app, &admin, 4).await;
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(log[0].event_id, reversal.event_id);
    assert!(log[0].ok);
    assert!(
        calls.try_recv().is_err(),
        "an extra call reached the receiver"
    );
}

/// Two nodes deliver from one outbox: every event reaches the receiver once.
async fn two_nodes_deliver_each_event_once(storage: Storage) {
    let (url, mut calls) = start_receiver(0).await;
    let mut options = Options::new(storage, Live::Memory);
    options.webhook = Some((url.clone(), SECRET.into()));
    let Some(app) = spawn_with(options).await else {
        return;
    };
    let mut joining = Options::new(storage, Live::Memory);
    joining.join = Some((app.database_url.clone(), app.redis.clone()));
    joining.clock = Some(app.clock.clone());
    joining.webhook = Some((url, SECRET.into()));
    let node2 = spawn_with(joining).await.expect("second node");
    publish(&app, &app.admin_token, &policy()).await;
    let (category, customer) = care_desk(&app).await;
    let olga = agent_holding_ticket(&app, "olga", customer, category).await;
    const GRANTS: usize = 10;
    for i in 0..GRANTS {
        let node = if i % 2 == 0 { &app } else { &node2 };
        let r = asked(
            node,
            &olga.token,
            &format!("n-{i}"),
            &credit(olga.ticket_id, 100),
        )
        .await;
        assert_eq!(
            r.status,
            callcenter_proto::compensation::CompensationStatus::Granted
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < GRANTS {
        let event = verify(&next(&mut calls).await);
        assert!(
            seen.insert(event.event_id.clone()),
            "{} arrived twice",
            event.event_id
        );
    }
    let log = deliveries(&app, &app.admin_token, GRANTS).await;
    assert_eq!(log.len(), GRANTS, "{log:?}");
    assert!(log.iter().all(|d| d.ok && d.attempt == 1));
    assert!(calls.try_recv().is_err(), "an event was delivered twice");
    node2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_sqlite() {
    two_nodes_deliver_each_event_once(Storage::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres() {
    two_nodes_deliver_each_event_once(Storage::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_on_sqlite() {
    grants_reach_the_webhook_signed_and_retried(Storage::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_on_postgres() {
    grants_reach_the_webhook_signed_and_retried(Storage::Postgres).await
}
