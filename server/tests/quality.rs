//! The quality record (issue 7), each definition on hand-built histories
//! driven through the real API, the live channel and the test's clock:
//! resolution codes, the quality row a resolve writes, reopens (linked,
//! flagged, durations from the original start), the first-contact window,
//! the retention windows, compensation on a complaint, survey tokens
//! (single-use, expiring, unguessable, only hashed), a "no" that reopens
//! and is offered to the same agent first, confirmations by call and by
//! system survey links, and identical rows on SQLite and PostgreSQL.

mod compensation_fixtures;
mod support;

use callcenter::clock::Clock;
use callcenter_proto::AgentState;
use callcenter_proto::outbound::{CallOutcome, CallResult};
use callcenter_proto::outcomes::{ResolutionConfirmation, SurveyLink};
use callcenter_proto::ws::{Command, OfferDetails, ReplyResult, ServerEvent, WsErrorCode};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use support::ws::Socket;
use support::{ADMIN_PASSWORD, AGENT_PASSWORD, Live, Options, Storage, TestApp, spawn_with};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Monday 2 March 2026, 08:00 UTC (11:00 in Moscow): a fixed start, so two
/// runs of one story see the same times.
const MONDAY_MORNING: i64 = 1_772_438_400_000;

on_every_backend!(
    resolution_codes_are_an_admin_list,
    a_resolve_writes_the_quality_row,
    a_complaint_filed_again_reopens_and_counts_from_the_original_start,
    first_contact_looks_back_over_the_window,
    a_purchase_or_renewal_within_30_and_90_days_retains,
    compensation_on_a_complaint_is_on_its_row,
    survey_tokens_are_single_use_expiring_and_unguessable,
    a_no_reopens_and_waits_for_the_same_agent_first,
    a_reopen_held_for_a_busy_agent_is_her_next_ticket,
);

/// Every backend, each node starting at a fixed moment.
macro_rules! on_every_backend_from {
    ($start:ident; $($story:ident),* $(,)?) => {
        $(
            mod $story {
                use super::support::{Live, Storage};
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_memory() {
                    if let Some(app) = super::$start(Storage::Sqlite, Live::Memory).await { super::$story(app).await }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_memory() {
                    if let Some(app) = super::$start(Storage::Postgres, Live::Memory).await { super::$story(app).await }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_redis() {
                    if let Some(app) = super::$start(Storage::Sqlite, Live::Redis).await { super::$story(app).await }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_redis() {
                    if let Some(app) = super::$start(Storage::Postgres, Live::Redis).await { super::$story(app).await }
                }
            }
        )*
    };
}

on_every_backend_from!(at_monday_morning; a_no_on_a_confirmation_call_reopens);
on_every_backend_from!(with_survey_webhook; due_confirmations_are_sent_as_survey_links);

async fn at_monday_morning(storage: Storage, live: Live) -> Option<TestApp> {
    let mut options = Options::new(storage, live);
    options.clock = Some(Arc::new(callcenter::clock::ManualClock::new(
        MONDAY_MORNING,
    )));
    spawn_with(options).await
}

// ---------------------------------------------------------------- helpers

/// A call center: the care queue (offers wait ten minutes) with two
/// categories, and the admin's token, renewed as the clock moves.
struct Center {
    app: TestApp,
    admin: String,
    queue: i64,
    category: i64,
    other_category: i64,
}

impl Center {
    async fn new(app: TestApp) -> Center {
        let (queue, category) = app.queue("care", &[("care", 3)], 600).await;
        let other = app
            .post(
                "/api/admin/categories",
                &app.admin_token,
                &json!({ "name": "delivery", "queue_id": queue }),
            )
            .await;
        assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
        let admin = app.admin_token.clone();
        Center {
            admin,
            queue,
            category,
            other_category: other.body["id"].as_i64().unwrap(),
            app,
        }
    }

    fn now(&self) -> i64 {
        self.app.clock.now_ms()
    }

    /// Move the clock (access tokens expire on it: log the admin in again).
    async fn advance(&mut self, ms: i64) {
        self.app.clock.advance_ms(ms);
        self.admin = login(&self.app, "admin").await;
        self.app.admin_token = self.admin.clone();
    }

    async fn customer(&self, external_id: &str) -> i64 {
        self.app.customer(external_id).await
    }

    /// An agent of the care queue (one complaint at a time), available.
    async fn agent(&self, name: &str) -> (i64, Socket) {
        let (id, token) = self.app.agent(name, &[("care", 5)], 1).await;
        let mut socket = self.app.socket(&token).await;
        socket.go_available().await;
        (id, socket)
    }

    async fn complain(&self, key: &str, customer: i64, category: i64) -> i64 {
        let reply = self
            .app
            .complain(&self.admin, key, customer, category, "It broke")
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_i64().unwrap()
    }

    async fn quality(&self, ticket: i64) -> Value {
        let reply = self
            .app
            .get(&format!("/api/tickets/{ticket}/quality"), &self.admin)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    async fn history(&self, ticket: i64) -> Vec<Value> {
        let reply = self
            .app
            .get(&format!("/api/tickets/{ticket}/history"), &self.admin)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body["events"].as_array().unwrap().clone()
    }

    async fn settings(&self, change: Value) {
        let mut doc = self
            .app
            .get("/api/admin/quality-settings", &self.admin)
            .await
            .body;
        for (k, v) in change.as_object().unwrap() {
            doc[k] = v.clone();
        }
        let reply = self
            .app
            .put("/api/admin/quality-settings", &self.admin, &doc)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    /// A survey link for a complaint, made by the admin.
    async fn survey(&self, ticket: i64) -> SurveyLink {
        let reply = self
            .app
            .post(
                &format!("/api/tickets/{ticket}/survey"),
                &self.admin,
                &json!({}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.json()
    }

    /// The public survey API (no account).
    async fn public(&self, path: &str, body: &Value) -> support::Reply {
        self.app
            .send(self.app.http.post(self.app.url(path)).json(body))
            .await
    }

    async fn answer(
        &self,
        token: &str,
        still_solved: bool,
        satisfaction: u8,
        comment: &str,
    ) -> support::Reply {
        self.public(
            "/api/surveys/answer",
            &json!({ "token": token, "still_solved": still_solved,
                     "satisfaction": satisfaction, "comment": comment }),
        )
        .await
    }
}

async fn login(app: &TestApp, username: &str) -> String {
    let password = if username == "admin" {
        ADMIN_PASSWORD
    } else {
        AGENT_PASSWORD
    };
    app.login(username, password).await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Accept the next offer; returns it.
async fn take(socket: &mut Socket) -> OfferDetails {
    let offer = socket.next_offer().await;
    let accepted = socket
        .command(Command::Accept {
            ticket_id: offer.ticket.id,
            version: offer.version,
        })
        .await;
    assert!(
        matches!(accepted, ReplyResult::Ok { .. }),
        "accept: {accepted:?}"
    );
    offer
}

async fn resolve(socket: &mut Socket, ticket: i64, code: &str, resolved: bool) -> ReplyResult {
    socket
        .command(Command::Resolve {
            ticket_id: ticket,
            outcome: callcenter_proto::http::Outcome {
                code: code.into(),
                resolved,
                note: String::new(),
            },
        })
        .await
}

async fn resolved(socket: &mut Socket, ticket: i64, code: &str) {
    let reply = resolve(socket, ticket, code, true).await;
    assert!(
        matches!(reply, ReplyResult::Ok { .. }),
        "resolve: {reply:?}"
    );
}

/// Take the next offer and resolve it at once; returns the ticket.
async fn take_and_resolve(socket: &mut Socket, code: &str) -> i64 {
    let offer = take(socket).await;
    resolved(socket, offer.ticket.id, code).await;
    offer.ticket.id
}

async fn set_state(socket: &mut Socket, state: AgentState, reason: Option<&str>) {
    let reply = socket
        .command(Command::SetState {
            state,
            reason: reason.map(str::to_string),
        })
        .await;
    assert_eq!(reply, ReplyResult::Ok { ticket: None });
}

/// Wait (real time, the server's ticks run every 250 ms) until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

fn event<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
}

// ---------------------------------------------------------------- stories

async fn resolution_codes_are_an_admin_list(app: TestApp) {
    let c = Center::new(app).await;
    let (_olga_id, mut olga) = c.agent("olga").await;
    let olga_token = login(&c.app, "olga").await;

    // Staff read the active list: the defaults are there.
    let list = c.app.get("/api/resolution-codes", &olga_token).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let codes: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    for code in [
        "fixed",
        "refund_issued",
        "explained",
        "escalated",
        "not_resolved",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }

    // Only administrators edit it; codes are words, unique.
    let new = json!({ "code": "warranty_repair", "label": "Warranty repair" });
    let by_agent = c
        .app
        .post("/api/admin/resolution-codes", &olga_token, &new)
        .await;
    assert_eq!(by_agent.status, StatusCode::FORBIDDEN);
    let created = c
        .app
        .post("/api/admin/resolution-codes", &c.admin, &new)
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["active"], true);
    let again = c
        .app
        .post("/api/admin/resolution-codes", &c.admin, &new)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.content_type(), "application/problem+json");
    let bad = c
        .app
        .post(
            "/api/admin/resolution-codes",
            &c.admin,
            &json!({ "code": "Bad Code", "label": "" }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["code", "label"]);

    // Retiring a code takes it off the list and off new outcomes.
    let retired = c
        .app
        .patch(
            "/api/admin/resolution-codes/explained",
            &c.admin,
            &json!({ "active": false }),
        )
        .await;
    assert_eq!(retired.status, StatusCode::OK, "{}", retired.body);
    assert_eq!(retired.body["active"], false);
    let unknown = c
        .app
        .patch(
            "/api/admin/resolution-codes/nope",
            &c.admin,
            &json!({ "active": false }),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let active = c.app.get("/api/resolution-codes", &olga_token).await.body;
    assert!(!active.to_string().contains("\"explained\""), "{active}");
    let all = c
        .app
        .get("/api/admin/resolution-codes", &c.admin)
        .await
        .body;
    assert!(all.to_string().contains("\"explained\""), "{all}");

    // An outcome with a retired or unknown code is refused, with the field.
    let anna = c.customer("anna").await;
    let ticket = c.complain("k-1", anna, c.category).await;
    take(&mut olga).await;
    for code in ["explained", "x"] {
        let refused = c
            .app
            .post(
                &format!("/api/tickets/{ticket}/resolve"),
                &olga_token,
                &json!({ "code": code, "resolved": true }),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_eq!(refused.content_type(), "application/problem+json");
        assert_eq!(refused.body["errors"][0]["field"], "outcome.code");
    }
    let on_socket = resolve(&mut olga, ticket, "explained", true).await;
    assert!(
        matches!(on_socket, ReplyResult::Error(ref e) if e.code == WsErrorCode::Validation),
        "{on_socket:?}"
    );
    // Nothing was recorded; the new code is accepted.
    assert_eq!(
        c.app
            .get(&format!("/api/tickets/{ticket}/quality"), &c.admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    resolved(&mut olga, ticket, "warranty_repair").await;
    assert_eq!(
        c.quality(ticket).await["resolution_code"],
        "warranty_repair"
    );
}

async fn a_resolve_writes_the_quality_row(app: TestApp) {
    let c = Center::new(app).await;
    let (olga_id, mut olga) = c.agent("olga").await;
    let anna = c.customer("anna").await;
    let filed_at = c.now();
    let ticket = c.complain("k-1", anna, c.category).await;
    // The customer waits 90 s, the agent works it 5 minutes.
    c.app.clock.advance_ms(90_000);
    take(&mut olga).await;
    c.app.clock.advance_ms(5 * MINUTE);
    resolved(&mut olga, ticket, "refund_issued").await;
    let ended = c.now();

    let q = c.quality(ticket).await;
    assert_eq!(q["ticket_id"], ticket);
    assert_eq!(q["agent_id"], olga_id);
    assert_eq!(q["queue_id"], c.queue);
    assert_eq!(q["category_id"], c.category);
    assert_eq!(q["customer_id"], anna);
    assert_eq!(q["ended_at_ms"], ended);
    assert_eq!(q["ended_day"], ended / DAY);
    assert_eq!(q["resolved"], true);
    assert_eq!(q["resolution_code"], "refund_issued");
    assert_eq!(q["first_contact"], true);
    assert_eq!(q["confirmation"], "none");
    assert_eq!(q["reopened"], false);
    assert_eq!(q["retained_30"], false);
    assert_eq!(q["compensation_minor"], 0);
    assert_eq!(q["handle_ms"], 5 * MINUTE);
    assert_eq!(q["duration_ms"], ended - filed_at);
    assert_eq!(q["origin_id"], ticket);
    assert_eq!(q["origin_started_ms"], filed_at);
    assert_eq!(q["reopen_of"], Value::Null);

    // Ended unresolved: a row all the same, not resolved.
    let other = c.complain("k-2", anna, c.other_category).await;
    take(&mut olga).await;
    let reply = resolve(&mut olga, other, "not_resolved", false).await;
    assert!(matches!(reply, ReplyResult::Ok { .. }), "{reply:?}");
    let q = c.quality(other).await;
    assert_eq!(q["resolved"], false);
    assert_eq!(q["resolution_code"], "not_resolved");

    // A withdrawn complaint ended without an outcome: no row.
    let (_bob_id, mut bob) = c.agent("bob").await;
    set_state(&mut bob, AgentState::Break, Some("lunch")).await;
    set_state(&mut olga, AgentState::Break, Some("lunch")).await;
    let withdrawn = c.complain("k-3", anna, c.category).await;
    let cancelled = c
        .app
        .post(
            &format!("/api/tickets/{withdrawn}/cancel"),
            &c.admin,
            &json!({ "reason": "duplicate" }),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    let none = c
        .app
        .get(&format!("/api/tickets/{withdrawn}/quality"), &c.admin)
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(none.content_type(), "application/problem+json");

    // Agents read their own tickets' rows only; the rows of a period list.
    let olga_token = login(&c.app, "olga").await;
    let bob_token = login(&c.app, "bob").await;
    let own = c
        .app
        .get(&format!("/api/tickets/{ticket}/quality"), &olga_token)
        .await;
    assert_eq!(own.status, StatusCode::OK);
    let others = c
        .app
        .get(&format!("/api/tickets/{ticket}/quality"), &bob_token)
        .await;
    assert_eq!(others.status, StatusCode::FORBIDDEN);
    let rows = c
        .app
        .get(
            &format!(
                "/api/quality/tickets?from_ms={filed_at}&to_ms={}",
                c.now() + 1
            ),
            &c.admin,
        )
        .await;
    assert_eq!(rows.status, StatusCode::OK, "{}", rows.body);
    let ids: Vec<i64> = rows
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ticket_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [ticket, other]);
    let listing = c
        .app
        .get(
            &format!("/api/quality/tickets?from_ms=0&to_ms={}", c.now()),
            &olga_token,
        )
        .await;
    assert_eq!(listing.status, StatusCode::FORBIDDEN);
}

async fn a_complaint_filed_again_reopens_and_counts_from_the_original_start(app: TestApp) {
    let mut c = Center::new(app).await;
    let (_olga_id, mut olga) = c.agent("olga").await;
    let anna = c.customer("anna").await;
    let t0 = c.now();
    let first = c.complain("k-1", anna, c.category).await;
    take(&mut olga).await;
    c.app.clock.advance_ms(HOUR);
    resolved(&mut olga, first, "fixed").await;
    let first_end = c.now();

    // Five days later Anna complains again about the same thing: a reopen.
    c.advance(5 * DAY).await;
    let second = c.complain("k-2", anna, c.category).await;
    let history = c.history(second).await;
    assert_eq!(event(&history, "reopen_of")["data"]["ticket_id"], first);
    assert_eq!(c.quality(first).await["reopened"], true);
    assert_eq!(
        event(&c.history(first).await, "reopened")["data"]["by_ticket_id"],
        second
    );
    take(&mut olga).await;
    c.advance(30 * MINUTE).await;
    resolved(&mut olga, second, "replaced").await;
    let q = c.quality(second).await;
    assert_eq!(q["reopen_of"], first);
    assert_eq!(q["origin_id"], first);
    assert_eq!(q["origin_started_ms"], t0);
    // Measured from the first complaint's start, not from the reopen's.
    assert_eq!(q["duration_ms"], c.now() - t0);
    assert_eq!(q["duration_ms"], HOUR + 5 * DAY + 30 * MINUTE);
    assert_eq!(q["first_contact"], false);
    assert_eq!(q["reopened"], false);
    assert_eq!(c.quality(first).await["ended_at_ms"], first_end);

    // The chain goes on: its origin stays the first complaint.
    c.advance(10 * DAY).await;
    let third = c.complain("k-3", anna, c.category).await;
    let other = c.complain("k-4", anna, c.other_category).await;
    take_and_resolve(&mut olga, "fixed").await;
    take_and_resolve(&mut olga, "explained").await;
    let q = c.quality(third).await;
    assert_eq!(q["reopen_of"], second);
    assert_eq!(q["origin_id"], first);
    assert_eq!(q["duration_ms"], c.now() - t0);
    assert_eq!(c.quality(second).await["reopened"], true);
    // Another category is another problem.
    let q = c.quality(other).await;
    assert_eq!(q["reopen_of"], Value::Null);
    assert_eq!(q["origin_id"], other);
    assert_eq!(q["first_contact"], true);

    // Outside the reopen window (14 days after the last end): a new problem.
    c.advance(14 * DAY + MINUTE).await;
    let fresh = c.complain("k-5", anna, c.category).await;
    take_and_resolve(&mut olga, "fixed").await;
    let q = c.quality(fresh).await;
    assert_eq!(q["reopen_of"], Value::Null);
    assert_eq!(q["origin_id"], fresh);
    assert_eq!(q["duration_ms"], 0);
    assert_eq!(q["first_contact"], true);
    assert_eq!(c.quality(third).await["reopened"], false);
    assert!(!kinds(&c.history(fresh).await).contains(&"reopen_of"));
}

async fn first_contact_looks_back_over_the_window(app: TestApp) {
    let mut c = Center::new(app).await;
    // Reopens off: only the first-contact window decides.
    c.settings(json!({ "reopen_window_days": 0 })).await;
    let bad = c
        .app
        .put(
            "/api/admin/quality-settings",
            &c.admin,
            &json!({ "first_contact_window_days": 0, "reopen_window_days": 0,
                     "confirmation_delay_days": 3, "survey_ttl_days": 14,
                     "same_agent_wait_seconds": 120, "denied_head_start_seconds": 600 }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let (_olga_id, mut olga) = c.agent("olga").await;
    let agent_token = login(&c.app, "olga").await;
    let forbidden = c.app.get("/api/admin/quality-settings", &agent_token).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);

    let anna = c.customer("anna").await;
    let first = c.complain("k-1", anna, c.category).await;
    take_and_resolve(&mut olga, "fixed").await;
    assert_eq!(c.quality(first).await["first_contact"], true);

    // 6 days 23 hours later: inside the 7-day window.
    c.advance(7 * DAY - HOUR).await;
    let inside = c.complain("k-2", anna, c.category).await;
    let elsewhere = c.complain("k-3", anna, c.other_category).await;
    take_and_resolve(&mut olga, "fixed").await;
    take_and_resolve(&mut olga, "fixed").await;
    assert_eq!(c.quality(inside).await["first_contact"], false);
    assert_eq!(c.quality(inside).await["reopen_of"], Value::Null);
    // Another category: nothing earlier.
    assert_eq!(c.quality(elsewhere).await["first_contact"], true);

    // Exactly 7 days after the last one: still inside.
    c.advance(7 * DAY).await;
    let edge = c.complain("k-4", anna, c.category).await;
    take_and_resolve(&mut olga, "fixed").await;
    assert_eq!(c.quality(edge).await["first_contact"], false);

    // 7 days and a minute after the last one: outside.
    c.advance(7 * DAY + MINUTE).await;
    let outside = c.complain("k-5", anna, c.category).await;
    take_and_resolve(&mut olga, "fixed").await;
    assert_eq!(c.quality(outside).await["first_contact"], true);

    // Another customer's complaints never count.
    let boris = c.customer("boris").await;
    let his = c.complain("k-6", boris, c.category).await;
    take_and_resolve(&mut olga, "fixed").await;
    assert_eq!(c.quality(his).await["first_contact"], true);
}

async fn a_purchase_or_renewal_within_30_and_90_days_retains(app: TestApp) {
    let mut c = Center::new(app).await;
    let (_olga_id, mut olga) = c.agent("olga").await;
    let names = ["before", "d29", "d31", "d89", "d91", "renew"];
    let mut customers = Vec::new();
    for name in names {
        customers.push(c.customer(name).await);
    }
    // Bought before the complaint ended: not retention.
    purchase(&c, customers[0], "order-before").await;
    c.app.clock.advance_ms(MINUTE);
    let mut tickets = Vec::new();
    for (i, customer) in customers.iter().enumerate() {
        tickets.push(c.complain(&format!("k-{i}"), *customer, c.category).await);
        take_and_resolve(&mut olga, "fixed").await;
    }
    let ended = c.now();
    let [_before, d29, d31, d89, d91, renew] = customers[..] else {
        unreachable!()
    };

    c.advance(10 * DAY).await;
    let membership = c
        .app
        .post(
            &format!("/api/customers/{renew}/memberships"),
            &c.admin,
            &json!({ "external_id": "m-1", "product": "Care plan", "ends_at_ms": c.now() + 365 * DAY }),
        )
        .await;
    assert_eq!(
        membership.status,
        StatusCode::CREATED,
        "{}",
        membership.body
    );
    c.advance(19 * DAY).await;
    let p29 = purchase(&c, d29, "order-29").await;
    c.advance(2 * DAY).await;
    purchase(&c, d31, "order-31").await;
    // A second purchase keeps the link to the first one.
    purchase(&c, d29, "order-29b").await;
    c.advance(58 * DAY).await;
    purchase(&c, d89, "order-89").await;
    c.advance(2 * DAY).await;
    purchase(&c, d91, "order-91").await;
    assert_eq!(c.now() - ended, 91 * DAY);

    let rows = [
        (0, false, false),
        (1, true, true),
        (2, false, true),
        (3, false, true),
        (4, false, false),
        (5, true, true),
    ];
    for (i, r30, r90) in rows {
        let q = c.quality(tickets[i]).await;
        assert_eq!(q["retained_30"], r30, "{}: {q}", names[i]);
        assert_eq!(q["retained_90"], r90, "{}: {q}", names[i]);
    }
    assert_eq!(c.quality(tickets[1]).await["retention_purchase_id"], p29);
    assert_eq!(
        c.quality(tickets[5]).await["retention_membership_id"],
        membership.body["id"]
    );
    assert_eq!(
        c.quality(tickets[5]).await["retention_purchase_id"],
        Value::Null
    );
    for i in [0, 4] {
        assert_eq!(
            c.quality(tickets[i]).await["retention_purchase_id"],
            Value::Null
        );
    }
}

/// Record a purchase now; returns its id.
async fn purchase(c: &Center, customer: i64, external_id: &str) -> i64 {
    let reply = c
        .app
        .post(
            &format!("/api/customers/{customer}/purchases"),
            &c.admin,
            &json!({ "external_id": external_id, "product": "Kettle", "amount_minor": 4900,
                     "currency": "EUR" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["id"].as_i64().unwrap()
}

async fn compensation_on_a_complaint_is_on_its_row(app: TestApp) {
    use compensation_fixtures::{asked, credit, policy, publish};
    let c = Center::new(app).await;
    publish(&c.app, &c.admin, &policy()).await;
    let (_olga_id, mut olga) = c.agent("olga").await;
    let olga_token = login(&c.app, "olga").await;
    let anna = c.customer("anna").await;
    let ticket = c.complain("k-1", anna, c.category).await;
    take(&mut olga).await;
    // Granted while the complaint is open, then it ends: the row has it.
    let grant = asked(&c.app, &olga_token, "g-1", &credit(ticket, 1500)).await;
    assert_eq!(grant.cost_minor, 1500);
    resolved(&mut olga, ticket, "compensated").await;
    assert_eq!(c.quality(ticket).await["compensation_minor"], 1500);

    // A supervisor adds a gesture after the end; a reversal takes one back.
    let (_sam_id, sam_token) = c.app.user("sam", "supervisor").await;
    asked(&c.app, &sam_token, "g-2", &credit(ticket, 500)).await;
    assert_eq!(c.quality(ticket).await["compensation_minor"], 2000);
    let reversed = c
        .app
        .post(
            &format!("/api/compensation/requests/{}/reversal", grant.id),
            &c.admin,
            &json!({ "note": "charged back by the bank" }),
        )
        .await;
    assert_eq!(reversed.status, StatusCode::CREATED, "{}", reversed.body);
    assert_eq!(c.quality(ticket).await["compensation_minor"], 500);
}

async fn survey_tokens_are_single_use_expiring_and_unguessable(app: TestApp) {
    let mut c = Center::new(app).await;
    let (_olga_id, mut olga) = c.agent("olga").await;
    let anna = c.customer("anna").await;
    let ticket = c.complain("k-1", anna, c.category).await;
    take_and_resolve(&mut olga, "fixed").await;

    // A link is made on demand and shown once; the complaint is asked.
    let link = c.survey(ticket).await;
    assert_eq!(link.ticket_id, ticket);
    assert_eq!(link.path, format!("/survey#{}", link.token));
    assert!(link.token.len() >= 22, "at least 128 bits: {}", link.token);
    assert_eq!(link.expires_at_ms, c.now() + 14 * DAY);
    assert_eq!(c.quality(ticket).await["confirmation"], "asked");
    // Only the token's SHA-256 is stored.
    stored_only_as_hash(&c.app, &link.token).await;

    // The public page, with no account.
    let page = c.app.send(c.app.http.get(c.app.url("/survey"))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.content_type().starts_with("text/html"));
    assert!(page.body.as_str().unwrap().contains("Is it still solved?"));
    let script = c.app.send(c.app.http.get(c.app.url("/js/survey.js"))).await;
    assert_eq!(script.status, StatusCode::OK);
    let view = c
        .public("/api/surveys/view", &json!({ "token": link.token }))
        .await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.body);
    assert_eq!(view.body["category"], "care problems");

    // A made-up token is not a survey.
    let guessed = callcenter::quality::surveys::new_token();
    for body in [json!({ "token": guessed }), json!({ "token": "" })] {
        let unknown = c.public("/api/surveys/view", &body).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
        assert_eq!(unknown.content_type(), "application/problem+json");
        assert_eq!(unknown.body["type"], "/problems/survey-unknown");
    }
    let unknown = c.answer(&guessed, false, 1, "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // A bad answer changes nothing; a good one is recorded once.
    let bad = c.answer(&link.token, true, 6, "").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let long = c.answer(&link.token, true, 5, &"x".repeat(1001)).await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY);
    let yes = c.answer(&link.token, true, 4, "Works fine").await;
    assert_eq!(yes.status, StatusCode::OK, "{}", yes.body);
    assert_eq!(yes.body["reopened"], false);
    let q = c.quality(ticket).await;
    assert_eq!(q["confirmation"], "confirmed");
    assert_eq!(q["confirmation_via"], "survey");
    assert_eq!(q["satisfaction"], 4);
    assert_eq!(q["confirmed_at_ms"], c.now());
    for (path, body) in [
        ("/api/surveys/view", json!({ "token": link.token })),
        (
            "/api/surveys/answer",
            json!({ "token": link.token, "still_solved": false }),
        ),
    ] {
        let used = c.public(path, &body).await;
        assert_eq!(used.status, StatusCode::GONE, "{}", used.body);
        assert_eq!(used.content_type(), "application/problem+json");
        assert_eq!(used.body["type"], "/problems/survey-used");
    }
    assert_eq!(c.quality(ticket).await["confirmation"], "confirmed");
    let answered_again = c
        .app
        .post(
            &format!("/api/tickets/{ticket}/survey"),
            &c.admin,
            &json!({}),
        )
        .await;
    assert_eq!(answered_again.status, StatusCode::CONFLICT);

    // Links of another complaint expire; unanswered, it becomes expired.
    let second = c.complain("k-2", anna, c.other_category).await;
    take_and_resolve(&mut olga, "fixed").await;
    let first_link = c.survey(second).await;
    let second_link = c.survey(second).await;
    assert_ne!(first_link.token, second_link.token);
    c.advance(14 * DAY).await;
    let expired = c
        .public("/api/surveys/view", &json!({ "token": second_link.token }))
        .await;
    assert_eq!(expired.status, StatusCode::GONE, "{}", expired.body);
    assert_eq!(expired.body["type"], "/problems/survey-expired");
    let late = c.answer(&first_link.token, true, 5, "").await;
    assert_eq!(late.status, StatusCode::GONE);
    eventually("the unanswered complaint is expired", || async {
        c.quality(second).await["confirmation"] == "expired"
    })
    .await;
    // A new link asks again.
    c.survey(second).await;
    assert_eq!(c.quality(second).await["confirmation"], "asked");

    // Agents make links for their own complaints only.
    let (_bob_id, _bob) = c.agent("bob").await;
    let bob_token = login(&c.app, "bob").await;
    let not_his = c
        .app
        .post(
            &format!("/api/tickets/{second}/survey"),
            &bob_token,
            &json!({}),
        )
        .await;
    assert_eq!(not_his.status, StatusCode::FORBIDDEN);
}

/// The token appears nowhere in the database; its SHA-256 does.
async fn stored_only_as_hash(app: &TestApp, token: &str) {
    use sha2::Digest;
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    let rows = sqlx::query("SELECT token_hash, COALESCE(comment, '') AS comment FROM surveys")
        .fetch_all(&db)
        .await
        .unwrap();
    let hashes: Vec<String> = rows.iter().map(|r| r.get("token_hash")).collect();
    assert!(hashes.contains(&hash), "{hashes:?}");
    assert!(
        rows.iter()
            .all(|r| r.get::<String, _>("token_hash") != token
                && !r.get::<String, _>("comment").contains(token))
    );
    db.close().await;
}

async fn a_no_reopens_and_waits_for_the_same_agent_first(app: TestApp) {
    let mut c = Center::new(app).await;
    // Bob is created first and is available all along: routing alone would
    // pick him (longest idle, then lowest id).
    let (bob_id, mut bob) = c.agent("bob").await;
    set_state(&mut bob, AgentState::Break, Some("training")).await;
    let (olga_id, mut olga) = c.agent("olga").await;
    let anna = c.customer("anna").await;
    let t0 = c.now();
    let first = c.complain("k-1", anna, c.category).await;
    take_and_resolve(&mut olga, "fixed").await;
    set_state(&mut olga, AgentState::Break, Some("coffee")).await;
    set_state(&mut bob, AgentState::Available, None).await;

    // Three days later Anna says no: the complaint reopens, held for Olga.
    c.advance(3 * DAY).await;
    let link = c.survey(first).await;
    let no = c.answer(&link.token, false, 2, "It leaks again").await;
    assert_eq!(no.status, StatusCode::OK, "{}", no.body);
    assert_eq!(no.body["reopened"], true);
    let q = c.quality(first).await;
    assert_eq!(q["confirmation"], "denied");
    assert_eq!(q["reopened"], true);
    assert_eq!(q["satisfaction"], 2);
    let reopen = event(&c.history(first).await, "reopened")["data"]["by_ticket_id"]
        .as_i64()
        .unwrap();
    let history = c.history(reopen).await;
    assert_eq!(
        kinds(&history),
        ["created", "reopen_of", "held_for_agent"],
        "{history:#?}"
    );
    assert_eq!(
        event(&history, "held_for_agent")["data"]["agent_id"],
        olga_id
    );
    let ticket = c
        .app
        .get(&format!("/api/tickets/{reopen}"), &c.admin)
        .await
        .body;
    assert_eq!(ticket["status"], "queued");
    assert!(
        ticket["description"]
            .as_str()
            .unwrap()
            .contains("It leaks again")
    );

    // Olga is back within the wait: it is offered to her, not to Bob.
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.app.clock.advance_ms(MINUTE);
    set_state(&mut olga, AgentState::Available, None).await;
    let offer = take(&mut olga).await;
    assert_eq!(offer.ticket.id, reopen);
    let history = c.history(reopen).await;
    assert_eq!(
        event(&history, "queued")["data"]["offered_first_to"],
        olga_id
    );
    let offered_to: Vec<&Value> = history
        .iter()
        .filter(|e| e["kind"] == "offered")
        .map(|e| &e["data"]["agent_id"])
        .collect();
    assert_eq!(offered_to, [&json!(olga_id)], "{history:#?}");
    c.advance(20 * MINUTE).await;
    resolved(&mut olga, reopen, "replaced").await;
    let q = c.quality(reopen).await;
    assert_eq!(q["reopen_of"], first);
    assert_eq!(q["origin_id"], first);
    assert_eq!(q["duration_ms"], c.now() - t0);
    assert_eq!(q["first_contact"], false);

    // Another "no", Olga away: after the wait (2 minutes) the reopen joins
    // the queue, with a head start over a complaint waiting there already.
    set_state(&mut olga, AgentState::Break, Some("home")).await;
    set_state(&mut bob, AgentState::Break, Some("meeting")).await;
    let boris = c.customer("boris").await;
    let waiting = c.complain("k-2", boris, c.category).await;
    c.advance(MINUTE).await;
    let link = c.survey(reopen).await;
    let no = c.answer(&link.token, false, 1, "").await;
    assert_eq!(no.body["reopened"], true);
    let again = event(&c.history(reopen).await, "reopened")["data"]["by_ticket_id"]
        .as_i64()
        .unwrap();
    let held = c
        .app
        .get(&format!("/api/tickets/{again}"), &c.admin)
        .await
        .body;
    assert_eq!(held["status"], "queued");
    c.advance(2 * MINUTE).await;
    eventually("the held reopen joins its queue", || async {
        kinds(&c.history(again).await).contains(&"queued")
    })
    .await;
    let released = c.history(again).await;
    assert_eq!(event(&released, "queued")["data"]["held_for"], olga_id);
    set_state(&mut bob, AgentState::Available, None).await;
    let offer = bob.next_offer().await;
    assert_eq!(offer.ticket.id, again, "the reopen goes before #{waiting}");
    let _ = bob_id;

    // Erasing Anna erases what she wrote in her answers too.
    let erased = c
        .app
        .post(
            &format!("/api/customers/{anna}/erase"),
            &c.admin,
            &json!({}),
        )
        .await;
    assert_eq!(erased.status, StatusCode::NO_CONTENT, "{}", erased.body);
    let history = c.history(first).await.to_vec();
    assert_eq!(event(&history, "confirmation")["data"]["note"], "[erased]");
    assert!(!Value::from(history).to_string().contains("leaks"));
    let reopened = c
        .app
        .get(&format!("/api/tickets/{reopen}"), &c.admin)
        .await
        .body;
    assert!(!reopened.to_string().contains("leaks"), "{reopened}");
    assert_eq!(survey_comments(&c.app).await, ["[erased]"]);
}

async fn a_reopen_held_for_a_busy_agent_is_her_next_ticket(app: TestApp) {
    let mut c = Center::new(app).await;
    let (_bob, mut bob) = c.agent("bob").await;
    set_state(&mut bob, AgentState::Break, Some("training")).await;
    let (olga_id, mut olga) = c.agent("olga").await;
    let anna = c.customer("anna").await;
    let first = c.complain("k-1", anna, c.category).await;
    take_and_resolve(&mut olga, "fixed").await;
    // Olga is on another complaint when Anna says no.
    let boris = c.customer("boris").await;
    let working = c.complain("k-2", boris, c.category).await;
    assert_eq!(take(&mut olga).await.ticket.id, working);
    c.advance(3 * DAY).await;
    let link = c.survey(first).await;
    let no = c.answer(&link.token, false, 2, "Worse than before").await;
    assert_eq!(no.body["reopened"], true, "{}", no.body);
    let reopen = event(&c.history(first).await, "reopened")["data"]["by_ticket_id"]
        .as_i64()
        .unwrap();
    // A complaint is waiting in line too (nobody else is free).
    let carl = c.customer("carl").await;
    let waiting = c.complain("k-3", carl, c.category).await;

    // She resolves what she is on: the reopen held for her is next, before
    // the complaint that was waiting; then that one.
    resolved(&mut olga, working, "fixed").await;
    let next = take(&mut olga).await;
    assert_eq!(next.ticket.id, reopen, "not #{waiting} first");
    let offered_to: Vec<Value> = c
        .history(reopen)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "offered")
        .map(|e| e["data"]["agent_id"].clone())
        .collect();
    assert_eq!(offered_to, [json!(olga_id)]);
    resolved(&mut olga, reopen, "replaced").await;
    assert_eq!(take(&mut olga).await.ticket.id, waiting);
}

/// Every survey comment stored.
async fn survey_comments(app: &TestApp) -> Vec<String> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT comment FROM surveys WHERE comment IS NOT NULL AND comment <> '' ORDER BY id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    db.close().await;
    rows.iter().map(|r| r.get("comment")).collect()
}

async fn a_no_on_a_confirmation_call_reopens(app: TestApp) {
    let mut c = Center::new(app).await;
    let journey = c
        .app
        .post(
            "/api/admin/journeys",
            &c.admin,
            &json!({ "name": "confirm", "trigger": "complaint_resolved", "category_id": c.category,
                     "steps": [{ "days": 3, "purpose": "Did the fix hold?",
                                 "script": "Ask whether it still works." }] }),
        )
        .await;
    assert_eq!(journey.status, StatusCode::CREATED, "{}", journey.body);
    let (olga_id, mut olga) = c.agent("olga").await;
    let anna = c.customer("anna").await;
    let consent = c
        .app
        .put(
            &format!("/api/customers/{anna}/contact"),
            &c.admin,
            &json!({ "consent_calls": true, "source": "web_form" }),
        )
        .await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    let first = c.complain("k-1", anna, c.category).await;
    take_and_resolve(&mut olga, "fixed").await;

    // Thursday morning the confirmation call comes up.
    c.advance(3 * DAY).await;
    let run = c
        .app
        .post("/api/admin/outbound/run", &c.admin, &json!({}))
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.body);
    let call = take(&mut olga).await;
    assert_eq!(call.ticket.kind, "outbound");
    let answer = ResolutionConfirmation {
        still_solved: false,
        satisfaction: Some(2),
    };
    // Only a reached customer confirms.
    let refused = olga
        .command(Command::CallOutcome {
            ticket_id: call.ticket.id,
            outcome: CallOutcome {
                result: CallResult::NoAnswer,
                reason_code: None,
                callback_at_ms: None,
                note: String::new(),
                confirmation: Some(answer.clone()),
            },
        })
        .await;
    assert!(
        matches!(refused, ReplyResult::Error(ref e) if e.code == WsErrorCode::Validation),
        "{refused:?}"
    );
    assert_eq!(c.quality(first).await["confirmation"], "none");
    let reached = olga
        .command(Command::CallOutcome {
            ticket_id: call.ticket.id,
            outcome: CallOutcome {
                result: CallResult::Reached,
                reason_code: None,
                callback_at_ms: None,
                note: "Leaks again since Sunday".into(),
                confirmation: Some(answer),
            },
        })
        .await;
    assert!(matches!(reached, ReplyResult::Ok { .. }), "{reached:?}");
    let q = c.quality(first).await;
    assert_eq!(q["confirmation"], "denied");
    assert_eq!(q["confirmation_via"], "call");
    assert_eq!(q["satisfaction"], 2);
    assert_eq!(q["reopened"], true);
    // The reopen goes to Olga, who is free now.
    let offer = olga
        .until(|e| match e {
            ServerEvent::Offer(o) if o.ticket.kind == "inbound" => Some(o.clone()),
            _ => None,
        })
        .await;
    let history = c.history(offer.ticket.id).await;
    assert_eq!(event(&history, "reopen_of")["data"]["ticket_id"], first);
    assert_eq!(
        event(&history, "queued")["data"]["offered_first_to"],
        olga_id
    );
    assert!(
        offer
            .ticket
            .description
            .contains("Leaks again since Sunday")
    );
}

// ------------------------------------------------- system survey links

/// Survey webhook deliveries received by this test binary, and where.
/// (signature sent, signature expected, body) of each delivery.
type Deliveries = Arc<Mutex<Vec<(String, String, Value)>>>;
static RECEIVED: OnceLock<(String, Deliveries)> = OnceLock::new();
const SECRET: &str = "a survey webhook secret";

async fn receiver() -> &'static (String, Deliveries) {
    if let Some(r) = RECEIVED.get() {
        return r;
    }
    let got: Deliveries = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let signed = callcenter::compensation::outbox::signature(
                        SECRET,
                        &header("x-callcenter-timestamp"),
                        &body,
                    );
                    store
                        .lock()
                        .unwrap()
                        .push((header("x-callcenter-signature"), signed, json));
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    // The receiver lives on its own runtime: each test has its own.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let _ = RECEIVED.set((url, got));
    RECEIVED.get().unwrap()
}

fn survey_webhook(serve: &mut callcenter::config::ServeArgs) {
    serve.survey_webhook_url = RECEIVED.get().map(|(url, _)| url.clone());
    serve.webhook_secret = Some(SECRET.into());
}

async fn with_survey_webhook(storage: Storage, live: Live) -> Option<TestApp> {
    receiver().await;
    let mut options = Options::new(storage, live);
    options.tweak = Some(survey_webhook);
    spawn_with(options).await
}

async fn due_confirmations_are_sent_as_survey_links(app: TestApp) {
    let mut c = Center::new(app).await;
    let (_olga_id, mut olga) = c.agent("olga").await;
    let external = format!("web-{}", uuid::Uuid::new_v4().simple());
    let anna = c.customer(&external).await;
    let ticket = c.complain("k-1", anna, c.category).await;
    take_and_resolve(&mut olga, "fixed").await;
    let unresolved = c.complain("k-2", anna, c.other_category).await;
    take(&mut olga).await;
    let reply = resolve(&mut olga, unresolved, "not_resolved", false).await;
    assert!(matches!(reply, ReplyResult::Ok { .. }));

    let (_, received) = receiver().await;
    let mine = || {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, body)| body["customer"]["external_id"] == external.as_str())
            .cloned()
            .collect::<Vec<_>>()
    };
    // Not due before three days.
    c.advance(3 * DAY - HOUR).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(mine().is_empty());
    assert_eq!(c.quality(ticket).await["confirmation"], "none");

    c.advance(HOUR).await;
    eventually("the survey link is delivered", || async {
        !mine().is_empty()
    })
    .await;
    let delivered = mine();
    assert_eq!(delivered.len(), 1, "only the resolved complaint is asked");
    let (signature, expected, body) = &delivered[0];
    assert_eq!(signature, expected, "signed with the webhook secret");
    assert_eq!(body["kind"], "survey_link");
    assert_eq!(body["ticket_id"], ticket);
    assert_eq!(body["customer"]["id"], anna);
    let url = body["url"].as_str().unwrap();
    let token = url.split_once("/survey#").expect("a survey url").1;
    assert!(url.starts_with(&c.app.base), "{url}");
    assert_eq!(c.quality(ticket).await["confirmation"], "asked");
    assert_eq!(c.quality(unresolved).await["confirmation"], "none");

    let yes = c.answer(token, true, 5, "").await;
    assert_eq!(yes.status, StatusCode::OK, "{}", yes.body);
    let q = c.quality(ticket).await;
    assert_eq!(q["confirmation"], "confirmed");
    assert_eq!(q["satisfaction"], 5);
    // Asked once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mine().len(), 1);
}

// ------------------------------------- the same history on both databases

/// One scripted history: complaints, a reopen, survey answers (a "yes" and a
/// "no"), a purchase. Returns the quality rows.
async fn scripted_history(app: TestApp) -> Value {
    let mut c = Center::new(app).await;
    let (_olga_id, mut olga) = c.agent("olga").await;
    let anna = c.customer("anna").await;
    let boris = c.customer("boris").await;
    let start = c.now();
    let a1 = c.complain("a-1", anna, c.category).await;
    c.app.clock.advance_ms(2 * MINUTE);
    take(&mut olga).await;
    c.app.clock.advance_ms(7 * MINUTE);
    resolved(&mut olga, a1, "fixed").await;
    let b1 = c.complain("b-1", boris, c.other_category).await;
    take(&mut olga).await;
    c.app.clock.advance_ms(3 * MINUTE);
    let r = resolve(&mut olga, b1, "not_resolved", false).await;
    assert!(matches!(r, ReplyResult::Ok { .. }));
    c.advance(2 * DAY).await;
    let a2 = c.complain("a-2", anna, c.category).await;
    take(&mut olga).await;
    c.app.clock.advance_ms(11 * MINUTE);
    resolved(&mut olga, a2, "replaced").await;
    c.advance(3 * DAY).await;
    let yes = c.survey(a2).await;
    assert_eq!(
        c.answer(&yes.token, true, 4, "ok").await.status,
        StatusCode::OK
    );
    let b2 = c.complain("b-2", boris, c.category).await;
    take(&mut olga).await;
    resolved(&mut olga, b2, "explained").await;
    c.advance(DAY).await;
    let no = c.survey(b2).await;
    assert_eq!(
        c.answer(&no.token, false, 2, "still broken").await.status,
        StatusCode::OK
    );
    let b3 = take(&mut olga).await.ticket.id;
    c.app.clock.advance_ms(13 * MINUTE);
    resolved(&mut olga, b3, "refund_issued").await;
    c.advance(20 * DAY).await;
    purchase(&c, anna, "order-a").await;
    c.app
        .get(
            &format!("/api/quality/tickets?from_ms={start}&to_ms={}", c.now()),
            &c.admin,
        )
        .await
        .body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_quality_rows_on_sqlite_and_postgres() {
    let Some(sqlite) = at_monday_morning(Storage::Sqlite, Live::Memory).await else {
        return;
    };
    let on_sqlite = scripted_history(sqlite).await;
    let Some(postgres) = at_monday_morning(Storage::Postgres, Live::Memory).await else {
        return;
    };
    let on_postgres = scripted_history(postgres).await;
    let rows = on_sqlite.as_array().expect("rows");
    assert_eq!(rows.len(), 5, "{on_sqlite:#}");
    // The story shows in the rows: a reopen, a confirmation, a denial, a
    // retention, an unresolved end.
    assert!(rows.iter().any(|r| r["reopen_of"].is_i64()));
    assert!(rows.iter().any(|r| r["confirmation"] == "confirmed"));
    assert!(rows.iter().any(|r| r["confirmation"] == "denied"));
    assert!(rows.iter().any(|r| r["retained_30"] == true));
    assert!(rows.iter().any(|r| r["resolved"] == false));
    assert_eq!(on_sqlite, on_postgres);
}
