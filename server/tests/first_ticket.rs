//! The first live ticket, end to end, on every backend combination: an admin
//! sets up an agent, a queue and a customer; the agent goes available over
//! the live channel; a complaint posted over HTTP arrives as an offer; the
//! agent accepts and resolves it; the history shows every step.

mod support;

use callcenter::clock::Clock;
use callcenter_proto::AgentState;
use callcenter_proto::http::{Outcome, TicketHistory};
use callcenter_proto::ws::{Command, ReplyResult, WsErrorCode};
use reqwest::StatusCode;
use support::TestApp;

on_every_backend!(
    complaint_is_offered_accepted_and_resolved,
    retried_complaint_returns_the_same_ticket,
    declined_offer_goes_to_the_next_agent,
    offer_times_out_and_goes_to_another_agent,
    agent_on_break_gets_no_offers,
    disconnect_returns_pending_offer_to_the_queue,
    a_ticket_that_waited_is_offered_with_the_customers_card,
);

async fn available(app: &TestApp, token: &str) -> support::ws::Socket {
    let mut socket = app.socket(token).await;
    socket.go_available().await;
    socket
}

/// A complaint filed while nobody is free waits; when an agent comes, its
/// offer shows the customer's card as the record has it (read then, with the
/// ticket): the purchases newest first.
async fn a_ticket_that_waited_is_offered_with_the_customers_card(app: TestApp) {
    let (_queue, category) = app.queue("billing", &[], 30).await;
    let (_agent, agent_token) = app.agent("olga", &[], 1).await;
    let customer = app.customer("shop-42").await;
    let (_shop, shop) = app.user("shop", "integration").await;
    let path = format!("/api/customers/{customer}/purchases");
    for (order, product, at_ms) in [
        ("order-1", "Kettle", 1_700_000_000_000i64),
        ("order-3", "Toaster", 1_700_000_300_000),
        ("order-2", "Blender", 1_700_000_200_000),
    ] {
        let purchase = serde_json::json!({ "external_id": order, "product": product,
            "amount_minor": 4990, "currency": "RUB", "purchased_at_ms": at_ms });
        assert_eq!(
            app.post(&path, &shop, &purchase).await.status,
            StatusCode::CREATED
        );
    }
    let filed = app
        .complain(
            &app.admin_token,
            "call-1",
            customer,
            category,
            "Kettle leaks",
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.body);
    let ticket_id = filed.body["id"].as_i64().unwrap();

    let mut desk = available(&app, &agent_token).await;
    let offer = desk.next_offer().await;
    assert_eq!(offer.ticket.id, ticket_id);
    assert_eq!(offer.ticket.description, "Kettle leaks");
    assert_eq!(offer.customer.id, customer);
    assert_eq!(offer.customer.external_id, "shop-42");
    let products: Vec<&str> = offer
        .customer
        .purchases
        .iter()
        .map(|p| p.product.as_str())
        .collect();
    assert_eq!(products, ["Toaster", "Blender", "Kettle"]);
}

async fn complaint_is_offered_accepted_and_resolved(app: TestApp) {
    let (_queue, category) = app.queue("billing", &[("billing", 3)], 30).await;
    let (agent_id, agent_token) = app.agent("olga", &[("billing", 5)], 1).await;
    let customer = app.customer("shop-42").await;
    let mut desk = available(&app, &agent_token).await;

    let filed = app
        .complain(
            &app.admin_token,
            "call-1",
            customer,
            category,
            "Charged twice for one order",
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.body);
    let ticket_id = filed.body["id"].as_i64().unwrap();

    let offer = desk.next_offer().await;
    assert_eq!(offer.ticket.id, ticket_id);
    assert_eq!(offer.ticket.description, "Charged twice for one order");
    assert_eq!(offer.customer.external_id, "shop-42");
    assert_eq!(offer.customer.tier, "gold");
    assert!(offer.deadline_ms > app.clock_now());

    let accepted = desk
        .command(Command::Accept {
            ticket_id,
            version: offer.version,
        })
        .await;
    let ReplyResult::Ok {
        ticket: Some(ticket),
    } = accepted
    else {
        panic!("accept failed: {accepted:?}")
    };
    assert_eq!(ticket.assigned_agent_id, Some(agent_id));
    // The node showed the offer: the accept knew its queue without reading
    // the ticket.
    assert_eq!(app.metric("callcenter_offer_queue_reads_total").await, 0);

    let note = desk
        .command(Command::Note {
            ticket_id,
            text: "Refund requested from billing".into(),
        })
        .await;
    assert_eq!(note, ReplyResult::Ok { ticket: None });

    let resolved = desk
        .command(Command::Resolve {
            ticket_id,
            outcome: Outcome {
                code: "refund_issued".into(),
                resolved: true,
                note: "Second charge refunded".into(),
            },
        })
        .await;
    let ReplyResult::Ok {
        ticket: Some(ticket),
    } = resolved
    else {
        panic!("resolve failed: {resolved:?}")
    };
    assert_eq!(
        ticket.outcome.as_ref().map(|o| o.code.as_str()),
        Some("refund_issued")
    );

    let history = app
        .get(
            &format!("/api/tickets/{ticket_id}/history"),
            &app.admin_token,
        )
        .await;
    assert_eq!(history.status, StatusCode::OK);
    let history: TicketHistory = history.json();
    let steps: Vec<&str> = history.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        steps,
        [
            "created", "queued", "offered", "accepted", "note", "resolved"
        ]
    );
    let accepted = &history.events[3];
    assert_eq!(accepted.actor_user_id, Some(agent_id));
    assert!(history.events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    assert_eq!(
        history.ticket.status,
        callcenter_proto::TicketStatus::Resolved
    );

    // The agent can read their own ticket; the resolved ticket cannot be resolved again.
    let again = desk
        .command(Command::Resolve {
            ticket_id,
            outcome: Outcome {
                code: "fixed".into(),
                resolved: true,
                note: String::new(),
            },
        })
        .await;
    assert!(
        matches!(again, ReplyResult::Error(ref e) if e.code == WsErrorCode::Conflict),
        "{again:?}"
    );
}

async fn retried_complaint_returns_the_same_ticket(app: TestApp) {
    let (_queue, category) = app.queue("delivery", &[], 30).await;
    let customer = app.customer("shop-7").await;
    let first = app
        .complain(
            &app.admin_token,
            "form-77",
            customer,
            category,
            "Parcel lost",
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let retry = app
        .complain(
            &app.admin_token,
            "form-77",
            customer,
            category,
            "Parcel lost",
        )
        .await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.body["id"], first.body["id"]);

    let different = app
        .complain(
            &app.admin_token,
            "form-77",
            customer,
            category,
            "Parcel late",
        )
        .await;
    assert_eq!(different.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(different.content_type(), "application/problem+json");
    assert_eq!(different.body["type"], "/problems/idempotency-key-reused");

    // Concurrent retries of one key: still one ticket.
    let tries = (0..8).map(|_| {
        app.complain(
            &app.admin_token,
            "form-78",
            customer,
            category,
            "Wrong size",
        )
    });
    let replies = futures::future::join_all(tries).await;
    let ids: std::collections::BTreeSet<i64> = replies
        .iter()
        .map(|r| r.body["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .count(),
        1
    );
    let waiting = app
        .get(
            &format!("/api/tickets/{}", ids.first().unwrap()),
            &app.admin_token,
        )
        .await;
    assert_eq!(waiting.body["status"], "queued");
}

async fn declined_offer_goes_to_the_next_agent(app: TestApp) {
    let (_queue, category) = app.queue("returns", &[("returns", 1)], 30).await;
    let (_a, token_a) = app.agent("anna", &[("returns", 2)], 1).await;
    let (b, token_b) = app.agent("boris", &[("returns", 2)], 1).await;
    let customer = app.customer("shop-9").await;
    let mut desk_a = available(&app, &token_a).await;
    app.clock.advance_ms(1000);
    let mut desk_b = available(&app, &token_b).await;

    let filed = app
        .complain(&app.admin_token, "k1", customer, category, "Broken zip")
        .await;
    let ticket_id = filed.body["id"].as_i64().unwrap();
    // Anna has been idle longest: she is offered it first.
    let offer = desk_a.next_offer().await;
    assert_eq!(offer.ticket.id, ticket_id);
    let declined = desk_a
        .command(Command::Decline {
            ticket_id,
            version: offer.version,
        })
        .await;
    assert_eq!(declined, ReplyResult::Ok { ticket: None });
    let offer_b = desk_b.next_offer().await;
    assert_eq!(offer_b.ticket.id, ticket_id);
    assert!(offer_b.version > offer.version);

    // Anna's old offer can no longer be accepted.
    let late = desk_a
        .command(Command::Accept {
            ticket_id,
            version: offer.version,
        })
        .await;
    assert!(
        matches!(late, ReplyResult::Error(ref e) if e.code == WsErrorCode::OfferGone),
        "{late:?}"
    );
    let accepted = desk_b
        .command(Command::Accept {
            ticket_id,
            version: offer_b.version,
        })
        .await;
    assert!(
        matches!(accepted, ReplyResult::Ok { ticket: Some(ref t) } if t.assigned_agent_id == Some(b))
    );
}

async fn offer_times_out_and_goes_to_another_agent(app: TestApp) {
    let (_queue, category) = app.queue("warranty", &[], 20).await;
    let (_a, token_a) = app.agent("vera", &[], 1).await;
    let customer = app.customer("shop-11").await;
    let mut desk_a = available(&app, &token_a).await;
    let filed = app
        .complain(
            &app.admin_token,
            "k2",
            customer,
            category,
            "Screen flickers",
        )
        .await;
    let ticket_id = filed.body["id"].as_i64().unwrap();
    let offer = desk_a.next_offer().await;
    assert_eq!(offer.sent_at_ms, app.clock.now_ms());

    let (_b, token_b) = app.agent("gleb", &[], 1).await;
    let mut desk_b = available(&app, &token_b).await;
    // Vera lets the 20 s pass: the offer is withdrawn and goes to Gleb.
    app.clock.advance_ms(20_001);
    let rescinded = desk_a.next_rescind_at().await;
    assert_eq!(
        rescinded,
        (ticket_id, "timeout".to_string(), app.clock.now_ms())
    );
    let offer_b = desk_b.next_offer().await;
    assert_eq!(offer_b.ticket.id, ticket_id);
    // Gleb's offer was sent no earlier than Vera's was withdrawn, as a
    // client that reads both can tell whichever frame comes first.
    assert_eq!(offer_b.sent_at_ms, app.clock.now_ms());
    assert!(offer_b.sent_at_ms >= rescinded.2);

    let late = desk_a
        .command(Command::Accept {
            ticket_id,
            version: offer.version,
        })
        .await;
    assert!(
        matches!(late, ReplyResult::Error(ref e) if e.code == WsErrorCode::OfferGone),
        "{late:?}"
    );
    assert_eq!(
        app.history_steps(ticket_id).await,
        ["created", "queued", "offered", "offer_expired", "offered"]
    );
}

async fn agent_on_break_gets_no_offers(app: TestApp) {
    let (queue, category) = app.queue("general", &[], 30).await;
    let (_a, token) = app.agent("dina", &[], 1).await;
    let customer = app.customer("shop-12").await;
    let mut desk = app.socket(&token).await;
    let no_reason = desk
        .command(Command::SetState {
            state: AgentState::Break,
            reason: None,
        })
        .await;
    assert!(matches!(no_reason, ReplyResult::Error(ref e) if e.code == WsErrorCode::Validation));
    let on_break = desk
        .command(Command::SetState {
            state: AgentState::Break,
            reason: Some("lunch".into()),
        })
        .await;
    assert_eq!(on_break, ReplyResult::Ok { ticket: None });
    let filed = app
        .complain(&app.admin_token, "k3", customer, category, "Late refund")
        .await;
    let ticket_id = filed.body["id"].as_i64().unwrap();
    // Back from the break: the waiting ticket is offered at once.
    let back = desk
        .command(Command::SetState {
            state: AgentState::Available,
            reason: None,
        })
        .await;
    assert_eq!(back, ReplyResult::Ok { ticket: None });
    let offer = desk.next_offer().await;
    assert_eq!(offer.ticket.id, ticket_id);
    // Before the agent came back nobody was offered it.
    let history: TicketHistory = app
        .get(
            &format!("/api/tickets/{ticket_id}/history"),
            &app.admin_token,
        )
        .await
        .json();
    assert_eq!(
        history
            .events
            .iter()
            .filter(|e| e.kind == "offered")
            .count(),
        1
    );
    let _ = queue;
}

async fn disconnect_returns_pending_offer_to_the_queue(app: TestApp) {
    let (_queue, category) = app.queue("exchange", &[], 30).await;
    let (_a, token_a) = app.agent("egor", &[], 1).await;
    let customer = app.customer("shop-13").await;
    let mut desk_a = available(&app, &token_a).await;
    let filed = app
        .complain(&app.admin_token, "k4", customer, category, "Wrong colour")
        .await;
    let ticket_id = filed.body["id"].as_i64().unwrap();
    desk_a.next_offer().await;
    drop(desk_a);
    // The pending offer goes back to the queue at once, and to the next agent.
    let (_b, token_b) = app.agent("fedor", &[], 1).await;
    let mut desk_b = available(&app, &token_b).await;
    let offer = desk_b.next_offer().await;
    assert_eq!(offer.ticket.id, ticket_id);
}

trait ClockNow {
    fn clock_now(&self) -> i64;
}

impl ClockNow for TestApp {
    fn clock_now(&self) -> i64 {
        use callcenter::clock::Clock;
        self.clock.now_ms()
    }
}
