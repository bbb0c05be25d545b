//! A call center set up for outbound stories: a node on a manual clock that
//! starts at a chosen moment, a care queue with its category, one agent, and
//! helpers to define journeys, customers and purchases, move time and run
//! the scheduler.

#![allow(dead_code)]

use crate::support::ws::Socket;
use crate::support::{Live, Options, Storage, TestApp, spawn_with};
use callcenter::clock::{Clock, ManualClock};
use callcenter_proto::AgentState;
use callcenter_proto::outbound::{
    CallOutcome, CallStatus, ContactPolicy, OutboundCall, SchedulerRun,
};
use callcenter_proto::ws::{Command, OfferDetails, ReplyResult, ServerEvent};
use chrono::{TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// Unix milliseconds of a UTC wall-clock time.
pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis()
}

/// Monday 2 March 2026, 08:00 UTC (11:00 in Moscow).
pub fn monday_morning() -> i64 {
    utc(2026, 3, 2, 8, 0)
}

pub struct Center {
    pub app: TestApp,
    pub queue: i64,
    pub category: i64,
    pub agent_id: i64,
    pub agent_token: String,
}

pub async fn center(storage: Storage, live: Live, start_ms: i64) -> Option<Center> {
    let mut options = Options::new(storage, live);
    options.clock = Some(Arc::new(ManualClock::new(start_ms)));
    let app = spawn_with(options).await?;
    let (queue, category) = app.queue("care", &[("care", 1)], 600).await;
    let (agent_id, agent_token) = app.agent("vera", &[("care", 5)], 1).await;
    Some(Center {
        app,
        queue,
        category,
        agent_id,
        agent_token,
    })
}

impl Center {
    pub fn now(&self) -> i64 {
        self.app.clock.now_ms()
    }

    /// Move the clock forward and log the admin in again (access tokens
    /// expire on the same clock).
    pub async fn advance(&mut self, ms: i64) {
        self.app.clock.advance_ms(ms);
        self.app.admin_token = self
            .app
            .login("admin", crate::support::ADMIN_PASSWORD)
            .await["access_token"]
            .as_str()
            .expect("token")
            .to_string();
    }

    pub async fn advance_to(&mut self, at_ms: i64) {
        let now = self.now();
        assert!(at_ms >= now, "time only moves forward");
        self.advance(at_ms - now).await;
    }

    pub async fn set_policy(&self, policy: &ContactPolicy) {
        let reply = self
            .app
            .put("/api/admin/contact-policy", &self.app.admin_token, policy)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    /// A journey routed to the care category; steps are (days, purpose).
    pub async fn journey(&self, name: &str, trigger: &str, steps: &[(u32, &str)]) -> i64 {
        self.journey_with(name, trigger, steps, json!({ "action": "skip" }))
            .await
    }

    pub async fn journey_with(
        &self,
        name: &str,
        trigger: &str,
        steps: &[(u32, &str)],
        restricted: Value,
    ) -> i64 {
        let steps: Vec<Value> = steps
            .iter()
            .map(|(days, purpose)| {
                json!({ "days": days, "purpose": purpose,
                        "script": format!("Script: {purpose}. Ask how things are; no selling.") })
            })
            .collect();
        let reply = self
            .app
            .post(
                "/api/admin/journeys",
                &self.app.admin_token,
                &json!({ "name": name, "trigger": trigger, "category_id": self.category,
                         "restricted_accounts": restricted, "steps": steps }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_i64().expect("journey id")
    }

    /// A customer in `timezone` who consented to service calls.
    pub async fn customer(&self, external_id: &str, timezone: &str) -> i64 {
        let reply = self
            .app
            .post(
                "/api/customers",
                &self.app.admin_token,
                &json!({ "external_id": external_id, "name": format!("Customer {external_id}"),
                         "phone": "+7 900 000 00 00", "email": format!("{external_id}@example.com"),
                         "tier": "gold", "value_minor": 50000, "timezone": timezone }),
            )
            .await;
        assert!(reply.status.is_success(), "{}", reply.body);
        let id = reply.body["id"].as_i64().expect("customer id");
        self.contact(id, json!({ "consent_calls": true, "source": "web_form" }))
            .await;
        id
    }

    pub async fn contact(&self, customer: i64, update: Value) -> Value {
        let reply = self
            .app
            .put(
                &format!("/api/customers/{customer}/contact"),
                &self.app.admin_token,
                &update,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    pub async fn purchase(&self, customer: i64, external_id: &str) {
        let reply = self
            .app
            .post(
                &format!("/api/customers/{customer}/purchases"),
                &self.app.admin_token,
                &json!({ "external_id": external_id, "product": "Espresso machine",
                         "amount_minor": 49900, "currency": "EUR", "purchased_at_ms": self.now() }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }

    pub async fn membership(&self, customer: i64, external_id: &str, ends_at_ms: i64) {
        let reply = self
            .app
            .post(
                &format!("/api/customers/{customer}/memberships"),
                &self.app.admin_token,
                &json!({ "external_id": external_id, "product": "Care plan", "ends_at_ms": ends_at_ms }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }

    /// One scheduler pass, now.
    pub async fn run(&self) -> SchedulerRun {
        let reply = self
            .app
            .post("/api/admin/outbound/run", &self.app.admin_token, &json!({}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.json()
    }

    /// The customer's calls, oldest first.
    pub async fn calls(&self, customer: i64) -> Vec<OutboundCall> {
        let reply = self
            .app
            .get(
                &format!("/api/outbound/calls?customer_id={customer}"),
                &self.app.admin_token,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let mut calls: Vec<OutboundCall> = reply.json();
        calls.reverse();
        calls
    }

    pub async fn only_call(&self, customer: i64) -> OutboundCall {
        let calls = self.calls(customer).await;
        assert_eq!(calls.len(), 1, "{calls:#?}");
        calls.into_iter().next().unwrap()
    }

    /// The agent's console, available (logged in now: tokens expire on the
    /// test's clock).
    pub async fn console(&self) -> Socket {
        let token = self.app.login("vera", crate::support::AGENT_PASSWORD).await["access_token"]
            .as_str()
            .expect("token")
            .to_string();
        let mut socket = self.app.socket(&token).await;
        let reply = socket
            .command(Command::SetState {
                state: AgentState::Available,
                reason: None,
            })
            .await;
        assert_eq!(reply, ReplyResult::Ok { ticket: None });
        socket
    }
}

pub fn statuses(calls: &[OutboundCall]) -> Vec<CallStatus> {
    calls.iter().map(|c| c.status.clone()).collect()
}

pub async fn next_offer(socket: &mut Socket) -> OfferDetails {
    socket
        .until(|e| match e {
            ServerEvent::Offer(offer) => Some(offer.clone()),
            _ => None,
        })
        .await
}

/// Accept the next offer and record an outcome for it.
pub async fn take_and_record(socket: &mut Socket, outcome: CallOutcome) -> OfferDetails {
    let offer = next_offer(socket).await;
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
    let recorded = socket
        .command(Command::CallOutcome {
            ticket_id: offer.ticket.id,
            outcome,
        })
        .await;
    assert!(
        matches!(recorded, ReplyResult::Ok { ticket: Some(_) }),
        "outcome: {recorded:?}"
    );
    offer
}

/// Run the stories on embedded SQLite with in-process state and on
/// PostgreSQL with Redis, each on a clock starting at `start`.
#[macro_export]
macro_rules! outbound_stories {
    ($start:expr; $($story:ident),* $(,)?) => {
        $(
            mod $story {
                #[allow(unused_imports)]
                use $crate::outbound_support::*;
                use $crate::support::{Live, Storage};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_memory() {
                    if let Some(c) = $crate::outbound_support::center(Storage::Sqlite, Live::Memory, $start).await {
                        super::$story(c).await
                    }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_redis() {
                    if let Some(c) = $crate::outbound_support::center(Storage::Postgres, Live::Redis, $start).await {
                        super::$story(c).await
                    }
                }
            }
        )*
    };
}
