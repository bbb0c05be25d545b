//! Shared by the compensation suites: a policy document, an agent holding a
//! ticket, and grant requests with an Idempotency-Key.

#![allow(dead_code)]

use crate::support::ws::Socket;
use crate::support::{ADMIN_PASSWORD, AGENT_PASSWORD, Reply, TestApp};
use callcenter_proto::AgentState;
use callcenter_proto::compensation::CompensationRequest;
use callcenter_proto::ws::{Command, ReplyResult, ServerEvent};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Agents: 20.00 per grant (or 5 % of the customer's yearly value), 50.00 a
/// day. Supervisors: 200.00 per grant, 30.00 a day of their own. Customers:
/// 300.00 over 90 days. Approvals expire after 15 minutes.
pub fn policy() -> Value {
    json!({
        "currency": "EUR",
        "bonus_kinds": [
            { "kind": "account_credit", "max_quantity": 100000 },
            { "kind": "free_days", "unit_cost_minor": 300, "max_quantity": 30 },
            { "kind": "gift", "unit_cost_minor": 1500, "max_quantity": 2 },
            { "kind": "percent_discount", "max_quantity": 2000 }
        ],
        "roles": [
            { "role": "agent", "per_grant": { "max_minor": 2000, "max_value_bp": 500 },
              "budget_per_day_minor": 5000, "budget_per_month_minor": 40000 },
            { "role": "supervisor", "per_grant": { "max_minor": 20000 },
              "budget_per_day_minor": 3000, "budget_per_month_minor": 100000 }
        ],
        "customer_cap_90d": { "max_minor": 30000 },
        "reason_codes": ["late_delivery", "double_charge", "broken_item"],
        "note_required": true,
        "forbidden_category_ids": [],
        "approval_timeout_minutes": 15
    })
}

pub async fn publish(app: &TestApp, admin: &str, doc: &Value) -> i64 {
    let reply = app
        .post("/api/admin/compensation/policies", admin, doc)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["version"].as_i64().expect("version")
}

/// A fresh access token (the ManualClock may have moved past the old one's expiry).
pub async fn relogin(app: &TestApp, username: &str) -> String {
    let password = if username == "admin" {
        ADMIN_PASSWORD
    } else {
        AGENT_PASSWORD
    };
    app.login(username, password).await["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// A supervisor who decides approvals for team "care".
pub async fn supervisor(app: &TestApp, name: &str) -> (i64, String) {
    let (id, token) = app.user(name, "supervisor").await;
    let teams = app
        .put(
            &format!("/api/admin/supervisors/{id}/teams"),
            &app.admin_token,
            &json!({ "teams": ["care"] }),
        )
        .await;
    assert_eq!(teams.status, StatusCode::OK, "{}", teams.body);
    (id, token)
}

/// An agent (team "care") holding an accepted ticket of `customer`, with
/// their console open and on break (so no further offers reach them).
pub struct Holder {
    pub id: i64,
    pub name: String,
    pub token: String,
    pub ticket_id: i64,
    pub socket: Socket,
}

pub async fn agent_holding_ticket(
    app: &TestApp,
    name: &str,
    customer: i64,
    category: i64,
) -> Holder {
    let (id, token) = app.agent(name, &[("care", 5)], 1).await;
    let mut socket = app.socket(&token).await;
    let ready = socket
        .command(Command::SetState {
            state: AgentState::Available,
            reason: None,
        })
        .await;
    assert!(matches!(ready, ReplyResult::Ok { .. }), "{ready:?}");
    let filed = app
        .complain(
            &app.admin_token,
            &format!("complaint-{name}"),
            customer,
            category,
            "The parcel came two weeks late",
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.body);
    let offer = socket
        .until(|e| match e {
            ServerEvent::Offer(o) => Some(o.clone()),
            _ => None,
        })
        .await;
    let accepted = socket
        .command(Command::Accept {
            ticket_id: offer.ticket.id,
            version: offer.version,
        })
        .await;
    assert!(matches!(accepted, ReplyResult::Ok { .. }), "{accepted:?}");
    let paused = socket
        .command(Command::SetState {
            state: AgentState::Break,
            reason: Some("compensating".into()),
        })
        .await;
    assert!(matches!(paused, ReplyResult::Ok { .. }), "{paused:?}");
    Holder {
        id,
        name: name.into(),
        token,
        ticket_id: offer.ticket.id,
        socket,
    }
}

/// The queue "care" and its category, and a customer worth 1 200.00 a year.
pub async fn care_desk(app: &TestApp) -> (i64, i64) {
    let (_queue, category) = app.queue("care", &[("care", 3)], 30).await;
    let customer = app.customer("shop-42").await;
    (category, customer)
}

pub fn credit(ticket_id: i64, amount_minor: i64) -> Value {
    json!({ "ticket_id": ticket_id, "kind": "account_credit", "quantity": amount_minor,
            "reason_code": "late_delivery", "note": "two weeks late" })
}

/// POST a grant request with an Idempotency-Key.
pub async fn ask(app: &TestApp, token: &str, key: &str, body: &Value) -> Reply {
    app.send(
        app.http
            .post(app.url("/api/compensation/requests"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body),
    )
    .await
}

/// POST a grant request from a task of its own (on `node`), to be awaited
/// later: its status and body.
pub fn ask_meanwhile(
    node: &TestApp,
    token: &str,
    key: &str,
    body: &Value,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let request = node
        .http
        .post(node.url("/api/compensation/requests"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body);
    tokio::spawn(async move {
        let reply = request.send().await.expect("request");
        (reply.status(), reply.json().await.expect("json"))
    })
}

/// A request that must be answered with a decision (201).
pub async fn asked(app: &TestApp, token: &str, key: &str, body: &Value) -> CompensationRequest {
    let reply = ask(app, token, key, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.json()
}

/// Wait on a socket for the pending-approval event of one request.
pub async fn pending_on(socket: &mut Socket, id: i64) -> CompensationRequest {
    socket
        .until(|e| match e {
            ServerEvent::CompensationPending { request } if request.id == id => {
                Some((**request).clone())
            }
            _ => None,
        })
        .await
}

/// Wait on a socket for the decision on one request.
pub async fn decided_on(socket: &mut Socket, id: i64) -> CompensationRequest {
    socket
        .until(|e| match e {
            ServerEvent::CompensationDecided { request } if request.id == id => {
                Some((**request).clone())
            }
            _ => None,
        })
        .await
}
