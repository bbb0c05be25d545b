//! Routing rules as a call center sets them per queue, end to end over HTTP
//! and real consoles: priority with aging, wrap-up, missed offers, agents who
//! drop and do not come back, overflow, cancellation, and a lost Redis.

mod support;

use callcenter_proto::http::TicketHistory;
use callcenter_proto::ws::{Command, OfferDetails, ReplyResult, ServerEvent};
use callcenter_proto::{AgentState, TicketStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestApp;
use support::ws::Socket;

on_every_backend!(
    a_gold_customer_is_served_first_until_an_older_ticket_has_waited_longer,
    wrap_up_pauses_offers_until_it_is_over,
    an_agent_who_misses_offers_in_a_row_goes_on_break,
    an_absent_agents_ticket_returns_to_the_front_after_the_grace_period,
    a_reconnect_the_record_refused_at_first_keeps_the_ticket,
    a_cancelled_ticket_withdraws_its_offer,
    a_ticket_waiting_too_long_overflows_to_another_queue,
    a_ticket_on_offer_stays_in_its_queue_past_the_overflow_time,
    a_lost_live_state_is_rebuilt_and_nothing_is_lost,
);

/// A queue with routing rules; returns (queue id, category id).
async fn queue_with(app: &TestApp, name: &str, rules: Value) -> (i64, i64) {
    let mut body =
        json!({ "name": name, "service_level_seconds": 60, "offer_timeout_seconds": 30 });
    for (k, v) in rules.as_object().unwrap() {
        body[k] = v.clone();
    }
    let queue = app.post("/api/admin/queues", &app.admin_token, &body).await;
    assert_eq!(queue.status, StatusCode::CREATED, "{}", queue.body);
    let queue_id = queue.body["id"].as_i64().unwrap();
    let category = app
        .post(
            "/api/admin/categories",
            &app.admin_token,
            &json!({ "name": format!("{name} issues"), "queue_id": queue_id }),
        )
        .await;
    (queue_id, category.body["id"].as_i64().unwrap())
}

async fn customer(app: &TestApp, external_id: &str, tier: &str) -> i64 {
    let reply = app
        .post(
            "/api/customers",
            &app.admin_token,
            &json!({ "external_id": external_id, "name": external_id, "tier": tier }),
        )
        .await;
    reply.body["id"].as_i64().unwrap()
}

/// Wait for the agent's state to become `wanted`; returns the reason given.
async fn state_becomes(socket: &mut Socket, wanted: AgentState) -> Option<String> {
    socket
        .until(|e| match e {
            ServerEvent::AgentStateChanged { state, reason } if *state == wanted => {
                Some(reason.clone())
            }
            _ => None,
        })
        .await
}

async fn file(app: &TestApp, key: &str, customer: i64, category: i64) -> i64 {
    let r = app
        .complain(&app.admin_token, key, customer, category, key)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_i64().unwrap()
}

async fn history(app: &TestApp, ticket: i64) -> Vec<String> {
    let h: TicketHistory = app
        .get(&format!("/api/tickets/{ticket}/history"), &app.admin_token)
        .await
        .json();
    h.events.into_iter().map(|e| e.kind).collect()
}

async fn accept_and_resolve(socket: &mut Socket, offer: &OfferDetails) {
    let r = socket
        .command(Command::Accept {
            ticket_id: offer.ticket.id,
            version: offer.version,
        })
        .await;
    assert!(matches!(r, ReplyResult::Ok { .. }), "{r:?}");
    let r = socket
        .command(Command::Resolve {
            ticket_id: offer.ticket.id,
            outcome: callcenter_proto::http::Outcome {
                code: "fixed".into(),
                resolved: true,
                note: String::new(),
            },
        })
        .await;
    assert!(matches!(r, ReplyResult::Ok { .. }), "{r:?}");
}

async fn a_gold_customer_is_served_first_until_an_older_ticket_has_waited_longer(app: TestApp) {
    let (_q, category) = queue_with(
        &app,
        "care",
        json!({ "priority": { "tier_head_start_seconds": { "gold": 120 } } }),
    )
    .await;
    let standard = customer(&app, "std", "standard").await;
    let gold = customer(&app, "gld", "gold").await;
    let (_a, token) = app.agent("olga", &[], 1).await;

    // Standard at t, gold 10 s later: gold's 120 s head start puts it first.
    let older = file(&app, "s-1", standard, category).await;
    app.clock.advance_ms(10_000);
    let golden = file(&app, "g-1", gold, category).await;
    let mut desk = app.socket(&token).await;
    desk.go_available().await;
    let first = desk.next_offer().await;
    assert_eq!(first.ticket.id, golden);
    accept_and_resolve(&mut desk, &first).await;
    let second = desk.next_offer().await;
    assert_eq!(second.ticket.id, older);
    accept_and_resolve(&mut desk, &second).await;

    // A standard ticket that has waited 200 s outranks a gold one just in: aging.
    let r = desk
        .command(Command::SetState {
            state: AgentState::Break,
            reason: Some("coffee".into()),
        })
        .await;
    assert_eq!(r, ReplyResult::Ok { ticket: None });
    let waited = file(&app, "s-2", standard, category).await;
    app.clock.advance_ms(200_000);
    let fresh_gold = file(&app, "g-2", gold, category).await;
    desk.go_available().await;
    let next = desk.next_offer().await;
    assert_eq!(next.ticket.id, waited);
    accept_and_resolve(&mut desk, &next).await;
    assert_eq!(desk.next_offer().await.ticket.id, fresh_gold);
}

async fn wrap_up_pauses_offers_until_it_is_over(app: TestApp) {
    let (_q, category) = queue_with(&app, "care", json!({ "wrap_up_seconds": 30 })).await;
    let who = customer(&app, "c-1", "standard").await;
    let (_a, token) = app.agent("boris", &[], 1).await;
    let mut desk = app.socket(&token).await;
    desk.go_available().await;
    file(&app, "w-1", who, category).await;
    let offer = desk.next_offer().await;
    accept_and_resolve(&mut desk, &offer).await;
    assert_eq!(
        state_becomes(&mut desk, AgentState::WrapUp)
            .await
            .as_deref(),
        Some("wrap-up")
    );

    // A ticket filed during wrap-up waits for it to end.
    let waiting = file(&app, "w-2", who, category).await;
    app.clock.advance_ms(29_000);
    // The agent cannot start wrap-up by hand, and the ticket is still waiting.
    let refused = desk
        .command(Command::SetState {
            state: AgentState::WrapUp,
            reason: None,
        })
        .await;
    assert!(matches!(refused, ReplyResult::Error(_)));
    let ticket = app
        .get(&format!("/api/tickets/{waiting}"), &app.admin_token)
        .await;
    assert_eq!(ticket.body["status"], "queued");
    app.clock.advance_ms(1_000);
    state_becomes(&mut desk, AgentState::Available).await;
    assert_eq!(desk.next_offer().await.ticket.id, waiting);
}

async fn an_agent_who_misses_offers_in_a_row_goes_on_break(app: TestApp) {
    let (_q, category) = queue_with(
        &app,
        "care",
        json!({ "missed_offers_limit": 2, "offer_timeout_seconds": 10 }),
    )
    .await;
    let who = customer(&app, "c-2", "standard").await;
    let (_a, token) = app.agent("vera", &[], 1).await;
    let mut desk = app.socket(&token).await;
    desk.go_available().await;
    let ticket = file(&app, "m-1", who, category).await;
    assert_eq!(desk.next_offer().await.ticket.id, ticket);
    app.clock.advance_ms(10_001);
    // Missed once: offered again (the only agent).
    let again = desk.next_offer().await;
    assert_eq!(again.ticket.id, ticket);
    app.clock.advance_ms(10_001);
    let reason = state_becomes(&mut desk, AgentState::Break).await;
    assert_eq!(reason.as_deref(), Some("missed offers"));
    let t = app
        .get(&format!("/api/tickets/{ticket}"), &app.admin_token)
        .await;
    assert_eq!(t.body["status"], "queued");
}

async fn an_absent_agents_ticket_returns_to_the_front_after_the_grace_period(app: TestApp) {
    let (_q, category) = queue_with(&app, "care", json!({ "reconnect_grace_seconds": 60 })).await;
    let who = customer(&app, "c-3", "standard").await;
    let (anna_id, token_a) = app.agent("anna", &[], 1).await;
    let (_b, token_b) = app.agent("gleb", &[], 1).await;
    let mut desk_a = app.socket(&token_a).await;
    desk_a.go_available().await;
    let held = file(&app, "r-1", who, category).await;
    let offer = desk_a.next_offer().await;
    let r = desk_a
        .command(Command::Accept {
            ticket_id: held,
            version: offer.version,
        })
        .await;
    assert!(matches!(r, ReplyResult::Ok { .. }));

    // Anna's network drops; she is back within the grace period: still hers.
    let last = desk_a.last_seq();
    desk_a.drop_connection().await;
    app.clock.advance_ms(30_000);
    let back = Socket::connect_from(&app.ws_url(), &token_a, Some(last)).await;
    app.clock.advance_ms(40_000);
    let t = app
        .get(&format!("/api/tickets/{held}"), &app.admin_token)
        .await;
    assert_eq!(t.body["status"], "assigned");

    // She drops again and stays away past the grace period: the ticket goes
    // back to the front of the queue, ahead of one that was waiting.
    let last = back.last_seq();
    back.drop_connection().await;
    let waiting = file(&app, "r-2", who, category).await;
    let mut desk_b = app.socket(&token_b).await;
    desk_b.go_available().await;
    let first = desk_b.next_offer().await;
    assert_eq!(
        first.ticket.id, waiting,
        "Gleb takes the waiting ticket first"
    );
    let r = desk_b
        .command(Command::Accept {
            ticket_id: waiting,
            version: first.version,
        })
        .await;
    assert!(matches!(r, ReplyResult::Ok { .. }));
    let third = file(&app, "r-3", who, category).await;
    app.clock.advance_ms(61_000);
    // Anna is gone for good: her ticket returns ahead of r-3, which waited.
    let (_c, token_c) = app.agent("dina", &[], 1).await;
    let mut desk_c = app.socket(&token_c).await;
    // Wait until the ticket is back in the queue before Dina goes available:
    // recorded first, then back in the live line (two waiting there).
    loop {
        let recorded = history(&app, held)
            .await
            .contains(&"returned_to_queue".to_string());
        if recorded && live_waiting(&app, "care").await == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    desk_c.go_available().await;
    let returned = desk_c.next_offer().await;
    assert_eq!(returned.ticket.id, held);
    let t = app
        .get(&format!("/api/tickets/{third}"), &app.admin_token)
        .await;
    assert_eq!(t.body["status"], "queued");
    assert!(
        history(&app, held)
            .await
            .contains(&"returned_to_queue".to_string())
    );
    // When Anna's console comes back, its stream says the ticket is no
    // longer hers (the console drops it).
    let mut anna = Socket::connect_from(&app.ws_url(), &token_a, Some(last)).await;
    let taken_back = anna
        .until(|e| match e {
            ServerEvent::TicketUpdated { ticket } if ticket.id == held => Some(ticket.clone()),
            _ => None,
        })
        .await;
    assert_ne!(taken_back.assigned_agent_id, Some(anna_id));
    assert_eq!(taken_back.status, TicketStatus::Queued);
}

/// Anna's network drops and she is marked absent; when her console comes
/// back the database refuses, for a moment, to record her connection (an
/// outage). Her console stays open; once the database takes writes again
/// the node records it: past the grace, the ticket is still hers.
async fn a_reconnect_the_record_refused_at_first_keeps_the_ticket(app: TestApp) {
    let (_q, category) = queue_with(&app, "care", json!({ "reconnect_grace_seconds": 60 })).await;
    let who = customer(&app, "c-5", "standard").await;
    let (anna_id, token) = app.agent("anna", &[], 1).await;
    let mut desk = app.socket(&token).await;
    desk.go_available().await;
    let held = file(&app, "u-1", who, category).await;
    desk.accept_next_offer(held).await;

    let last = desk.last_seq();
    desk.drop_connection().await;
    while app.metric("callcenter_sockets_open").await > 0 {
        tokio::task::yield_now().await;
    }
    let outage = ConnectionsRefused::begin(&app).await;
    let _back = Socket::connect_from(&app.ws_url(), &token, Some(last)).await;
    while app.metric("callcenter_connections_unrecorded_total").await == 0 {
        tokio::task::yield_now().await;
    }
    outage.end().await;
    ticks(&app, 2).await;

    app.clock.advance_ms(61_000);
    ticks(&app, 2).await;
    let t = app
        .get(&format!("/api/tickets/{held}"), &app.admin_token)
        .await;
    assert_eq!(t.body["status"], "assigned", "{}", t.body);
    assert_eq!(t.body["assigned_agent_id"], anna_id);
}

/// The database refusing to record console connections (a trigger that
/// fails every insert of one), until [`ConnectionsRefused::end`].
struct ConnectionsRefused {
    db: sqlx::AnyConnection,
    postgres: bool,
}

impl ConnectionsRefused {
    async fn begin(app: &TestApp) -> Self {
        let mut db = app.database().await;
        let postgres = app.database_url.starts_with("postgres");
        let statements: &[&str] = if postgres {
            &[
                "CREATE FUNCTION refuse_connection() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'out of disk space'; END $$",
                "CREATE TRIGGER refuse_connection BEFORE INSERT ON agent_sockets \
                 FOR EACH ROW EXECUTE FUNCTION refuse_connection()",
            ]
        } else {
            &[
                "CREATE TRIGGER refuse_connection BEFORE INSERT ON agent_sockets \
                 BEGIN SELECT RAISE(ABORT, 'out of disk space'); END",
            ]
        };
        for statement in statements {
            sqlx::query(statement)
                .execute(&mut db)
                .await
                .expect(statement);
        }
        ConnectionsRefused { db, postgres }
    }

    async fn end(mut self) {
        let lift = if self.postgres {
            "DROP TRIGGER refuse_connection ON agent_sockets"
        } else {
            "DROP TRIGGER refuse_connection"
        };
        sqlx::query(lift).execute(&mut self.db).await.expect(lift);
    }
}

/// Wait until the node has ticked `n` times more.
async fn ticks(app: &TestApp, n: u64) {
    let before = app.metric("callcenter_ticks_total").await;
    while app.metric("callcenter_ticks_total").await < before + n {
        tokio::task::yield_now().await;
    }
}

async fn a_cancelled_ticket_withdraws_its_offer(app: TestApp) {
    let (_q, category) = queue_with(&app, "care", json!({})).await;
    let who = customer(&app, "c-4", "standard").await;
    let (_a, token) = app.agent("egor", &[], 1).await;
    let mut desk = app.socket(&token).await;
    desk.go_available().await;
    let ticket = file(&app, "x-1", who, category).await;
    let offer = desk.next_offer().await;
    let (_s, supervisor) = app.user("sofia", "supervisor").await;
    app.clock.advance_ms(5_000);
    let cancelled = app
        .post(
            &format!("/api/tickets/{ticket}/cancel"),
            &supervisor,
            &json!({ "reason": "duplicate" }),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let rescinded = desk.next_rescind().await;
    assert_eq!(rescinded, (ticket, "cancelled".to_string()));
    let late = desk
        .command(Command::Accept {
            ticket_id: ticket,
            version: offer.version,
        })
        .await;
    assert!(matches!(late, ReplyResult::Error(_)));
    let again = app
        .post(
            &format!("/api/tickets/{ticket}/cancel"),
            &supervisor,
            &json!({ "reason": "again" }),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let by_agent = app
        .post(
            &format!("/api/tickets/{ticket}/cancel"),
            &token,
            &json!({ "reason": "mine" }),
        )
        .await;
    assert_eq!(by_agent.status, StatusCode::FORBIDDEN);
    // The offer Egor saw is in the history, withdrawn with the cancel.
    assert_eq!(
        history(&app, ticket).await,
        [
            "created",
            "queued",
            "offered",
            "cancelled",
            "offer_rescinded"
        ]
    );
}

async fn a_ticket_waiting_too_long_overflows_to_another_queue(app: TestApp) {
    let (backup, _) = queue_with(&app, "backup", json!({})).await;
    let (_q, category) = queue_with(
        &app,
        "experts",
        json!({ "required_skills": [{ "skill": "warranty", "level": 8 }],
                "overflow": [{ "after_seconds": 45, "overflow_queue_id": backup }] }),
    )
    .await;
    let who = customer(&app, "c-5", "standard").await;
    let (_a, token) = app.agent("fedor", &[], 1).await; // no warranty skill: only the backup queue
    let mut desk = app.socket(&token).await;
    desk.go_available().await;
    let ticket = file(&app, "o-1", who, category).await;
    app.clock.advance_ms(44_000);
    let t = app
        .get(&format!("/api/tickets/{ticket}"), &app.admin_token)
        .await;
    assert_eq!(t.body["status"], "queued");
    app.clock.advance_ms(2_000);
    let offer = desk.next_offer().await;
    assert_eq!(offer.ticket.id, ticket);
    assert_eq!(offer.ticket.queue_id, backup);
    assert!(
        history(&app, ticket)
            .await
            .contains(&"overflowed".to_string())
    );
}

async fn a_ticket_on_offer_stays_in_its_queue_past_the_overflow_time(app: TestApp) {
    let (backup, _) = queue_with(&app, "backup", json!({})).await;
    let (experts, category) = queue_with(
        &app,
        "experts",
        json!({ "required_skills": [{ "skill": "warranty", "level": 8 }],
                "offer_timeout_seconds": 120,
                "overflow": [{ "after_seconds": 45, "overflow_queue_id": backup }] }),
    )
    .await;
    let who = customer(&app, "c-7", "standard").await;
    let (_m, mira_token) = app.agent("mira", &[("warranty", 9)], 1).await;
    let mut mira = app.socket(&mira_token).await;
    mira.go_available().await;
    let first = file(&app, "o-2", who, category).await;
    let offer = mira.next_offer().await;
    assert_eq!(offer.ticket.id, first);
    let second = file(&app, "o-3", who, category).await;
    let (_f, fedor_token) = app.agent("fedor", &[], 1).await; // the backup queue only
    let mut fedor = app.socket(&fedor_token).await;
    fedor.go_available().await;

    // Both have waited past the overflow time; Mira is still reading the
    // first one's offer: only the second moves, and goes to Fedor.
    app.clock.advance_ms(46_000);
    let moved = fedor.next_offer().await;
    assert_eq!(moved.ticket.id, second);
    assert_eq!(moved.ticket.queue_id, backup);
    let accepted = mira
        .command(Command::Accept {
            ticket_id: first,
            version: offer.version,
        })
        .await;
    assert!(
        matches!(accepted, ReplyResult::Ok { ticket: Some(ref t) } if t.queue_id == experts),
        "{accepted:?}"
    );
    assert!(
        !history(&app, first)
            .await
            .contains(&"overflowed".to_string())
    );
}

async fn a_lost_live_state_is_rebuilt_and_nothing_is_lost(app: TestApp) {
    let (_q, category) = queue_with(&app, "care", json!({})).await;
    let who = customer(&app, "c-6", "standard").await;
    let (_a, token) = app.agent("kira", &[], 1).await;
    let mut desk = app.socket(&token).await;
    desk.go_available().await;
    let mut tickets = Vec::new();
    for i in 0..3 {
        tickets.push(file(&app, &format!("l-{i}"), who, category).await);
    }
    let first = desk.next_offer().await;

    // Redis loses everything this deployment kept there.
    let Some((url, prefix)) = app.redis.clone() else {
        // In-process live state cannot be lost without losing the process.
        return;
    };
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();

    // The old offer is gone; the tickets come back and are served one by one.
    let late = desk
        .command(Command::Accept {
            ticket_id: first.ticket.id,
            version: first.version,
        })
        .await;
    let mut served = Vec::new();
    if matches!(late, ReplyResult::Ok { .. }) {
        // The accept raced the rebuild and won: the ticket is the agent's.
        let r = desk
            .command(Command::Resolve {
                ticket_id: first.ticket.id,
                outcome: callcenter_proto::http::Outcome {
                    code: "fixed".into(),
                    resolved: true,
                    note: String::new(),
                },
            })
            .await;
        assert!(matches!(r, ReplyResult::Ok { .. }));
        served.push(first.ticket.id);
    }
    while served.len() < tickets.len() {
        let offer = desk.next_offer().await;
        if served.contains(&offer.ticket.id) {
            continue;
        }
        accept_and_resolve(&mut desk, &offer).await;
        served.push(offer.ticket.id);
    }
    served.sort_unstable();
    assert_eq!(served, tickets);
    for t in &tickets {
        let ticket = app
            .get(&format!("/api/tickets/{t}"), &app.admin_token)
            .await;
        assert_eq!(ticket.body["status"], "resolved");
    }
}

on_every_backend!(
    best_skill_picks_the_most_skilled_free_agent,
    fewest_today_picks_the_agent_with_the_fewest_tickets,
    bullseye_widens_the_ring_after_the_ticket_waits,
);

async fn best_skill_picks_the_most_skilled_free_agent(app: TestApp) {
    let (_q, category) = queue_with(
        &app,
        "billing",
        json!({ "strategy": "best_skill", "required_skills": [{ "skill": "billing", "level": 2 }] }),
    )
    .await;
    let who = customer(&app, "c-7", "standard").await;
    let (_n, novice) = app.agent("novice", &[("billing", 3)], 1).await;
    let (expert_id, expert) = app.agent("expert", &[("billing", 9)], 1).await;
    let mut desk_n = app.socket(&novice).await;
    desk_n.go_available().await; // idle longest
    app.clock.advance_ms(60_000);
    let mut desk_e = app.socket(&expert).await;
    desk_e.go_available().await;
    let ticket = file(&app, "b-1", who, category).await;
    let offer = desk_e.next_offer().await;
    assert_eq!(offer.ticket.id, ticket);
    let r = desk_e
        .command(Command::Accept {
            ticket_id: ticket,
            version: offer.version,
        })
        .await;
    assert!(
        matches!(r, ReplyResult::Ok { ticket: Some(ref t) } if t.assigned_agent_id == Some(expert_id))
    );
    // With the expert busy, the novice gets the next one.
    let next = file(&app, "b-2", who, category).await;
    assert_eq!(desk_n.next_offer().await.ticket.id, next);
}

async fn fewest_today_picks_the_agent_with_the_fewest_tickets(app: TestApp) {
    let (_q, category) = queue_with(&app, "care", json!({ "strategy": "fewest_today" })).await;
    let who = customer(&app, "c-8", "standard").await;
    let (_a, busy) = app.agent("busy", &[], 1).await;
    let (fresh_id, fresh) = app.agent("fresh", &[], 1).await;
    let mut desk_a = app.socket(&busy).await;
    desk_a.go_available().await;
    for i in 0..2 {
        file(&app, &format!("f-{i}"), who, category).await;
        let offer = desk_a.next_offer().await;
        accept_and_resolve(&mut desk_a, &offer).await;
    }
    // "busy" has been idle since their last ticket; "fresh" arrives later but
    // has taken nothing today: fresh gets the next ticket.
    app.clock.advance_ms(1_000);
    let mut desk_b = app.socket(&fresh).await;
    desk_b.go_available().await;
    let ticket = file(&app, "f-3", who, category).await;
    let offer = desk_b.next_offer().await;
    assert_eq!(offer.ticket.id, ticket);
    let r = desk_b
        .command(Command::Accept {
            ticket_id: ticket,
            version: offer.version,
        })
        .await;
    assert!(
        matches!(r, ReplyResult::Ok { ticket: Some(ref t) } if t.assigned_agent_id == Some(fresh_id))
    );
}

async fn bullseye_widens_the_ring_after_the_ticket_waits(app: TestApp) {
    let (_q, category) = queue_with(
        &app,
        "warranty",
        json!({ "required_skills": [{ "skill": "warranty", "level": 8 }],
                "overflow": [{ "after_seconds": 30, "required_skills": [{ "skill": "warranty", "level": 4 }] }] }),
    )
    .await;
    let who = customer(&app, "c-9", "standard").await;
    let (_a, token) = app.agent("junior", &[("warranty", 5)], 1).await;
    let mut desk = app.socket(&token).await;
    desk.go_available().await;
    let ticket = file(&app, "e-1", who, category).await;
    app.clock.advance_ms(29_000);
    let t = app
        .get(&format!("/api/tickets/{ticket}"), &app.admin_token)
        .await;
    assert_eq!(
        t.body["status"], "queued",
        "not offered to the outer ring before 30 s"
    );
    app.clock.advance_ms(1_500);
    assert_eq!(desk.next_offer().await.ticket.id, ticket);
    // An agent with too little skill for every ring never gets it.
    let (_b, token_b) = app.agent("trainee", &[("warranty", 2)], 1).await;
    let mut trainee = app.socket(&token_b).await;
    trainee.go_available().await;
    let snapshot = trainee.snapshot.clone().unwrap();
    assert!(snapshot.pending_offers.is_empty());
}

/// Tickets waiting in a queue's live line, as the node's metrics show them.
async fn live_waiting(app: &TestApp, queue: &str) -> i64 {
    let metrics = app.send(app.http.get(app.url("/metrics"))).await;
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    let prefix = format!("callcenter_queue_waiting{{queue=\"{queue}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
