//! What an agent does on a complaint besides notes and outcomes (issue 8),
//! end to end: escalation to the supervisors of the agent's team (live,
//! decided once, taken over, handed back, requeued, closed when the ticket
//! ends), callbacks on complaints (validated against time and the contact
//! policy, planned as outbound calls of the complaint, offered when due),
//! and the customer card's history (bounded; agents only for their own
//! customers).

mod compensation_fixtures;
mod outbound_support;
mod support;

use callcenter_proto::desk::{CallbackScheduled, CustomerHistory, Escalation, EscalationStatus};
use callcenter_proto::http::TicketHistory;
use callcenter_proto::outbound::CallStatus;
use callcenter_proto::ws::{Command, ReplyResult, ServerEvent, WsErrorCode};
use callcenter_proto::{AgentState, TicketStatus};
use compensation_fixtures::{
    agent_holding_ticket, asked, care_desk, credit, policy, publish, supervisor,
};
use outbound_support::{Center, DAY, MINUTE, next_offer, utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestApp;
use support::ws::Socket;

on_every_backend!(
    escalations_are_taken_over_or_handed_back_by_the_teams_supervisors,
    escalations_go_back_to_the_queue_or_close_with_their_ticket,
    the_customer_card_history_is_bounded_and_for_the_customers_agent,
);

outbound_stories!(monday_morning(); callbacks_on_complaints_are_planned_as_calls_of_the_complaint);

async fn escalation_on(socket: &mut Socket, ticket: i64, status: EscalationStatus) -> Escalation {
    socket
        .until(|e| match e {
            ServerEvent::EscalationChanged { escalation }
                if escalation.ticket.id == ticket && escalation.status == status =>
            {
                Some((**escalation).clone())
            }
            _ => None,
        })
        .await
}

async fn escalate(app: &TestApp, token: &str, ticket: i64, reason: &str) -> support::Reply {
    app.post(
        &format!("/api/tickets/{ticket}/escalate"),
        token,
        &json!({ "reason": reason }),
    )
    .await
}

async fn decide(
    app: &TestApp,
    token: &str,
    ticket: i64,
    action: &str,
    note: &str,
) -> support::Reply {
    app.post(
        &format!("/api/tickets/{ticket}/escalation/decision"),
        token,
        &json!({ "action": action, "note": note }),
    )
    .await
}

async fn listed(app: &TestApp, token: &str) -> Vec<(i64, EscalationStatus)> {
    let reply = app.get("/api/escalations", token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply
        .json::<Vec<Escalation>>()
        .into_iter()
        .map(|e| (e.ticket.id, e.status))
        .collect()
}

async fn kinds(app: &TestApp, ticket: i64) -> Vec<String> {
    let history: TicketHistory = app
        .get(&format!("/api/tickets/{ticket}/history"), &app.admin_token)
        .await
        .json();
    history.events.into_iter().map(|e| e.kind).collect()
}

async fn escalations_are_taken_over_or_handed_back_by_the_teams_supervisors(app: TestApp) {
    let (category, customer) = care_desk(&app).await;
    let (sam_id, sam_token) = supervisor(&app, "sam").await;
    let mut sam = app.socket(&sam_token).await;
    let (tom_id, tom_token) = app.user("tom", "supervisor").await;
    let billing = app
        .put(
            &format!("/api/admin/supervisors/{tom_id}/teams"),
            &app.admin_token,
            &json!({ "teams": ["billing"] }),
        )
        .await;
    assert_eq!(billing.status, StatusCode::OK, "{}", billing.body);
    let mut olga = agent_holding_ticket(&app, "olga", customer, category).await;
    let t = olga.ticket_id;
    let (_ivan, ivan_token) = app.agent("ivan", &[("care", 5)], 1).await;

    // Only the agent holding the ticket escalates it, with a reason.
    let by_sam = escalate(&app, &sam_token, t, "I want to").await;
    assert_eq!(by_sam.status, StatusCode::FORBIDDEN, "{}", by_sam.body);
    let by_ivan = escalate(&app, &ivan_token, t, "not mine").await;
    assert_eq!(by_ivan.status, StatusCode::FORBIDDEN, "{}", by_ivan.body);
    let blank = escalate(&app, &olga.token, t, "   ").await;
    assert_eq!(
        blank.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        blank.body
    );
    let long = escalate(&app, &olga.token, t, &"x".repeat(1001)).await;
    assert_eq!(
        long.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        long.body
    );

    // Olga escalates from her console; Sam (her team's supervisor) sees it live.
    let reply = olga
        .socket
        .command(Command::Escalate {
            ticket_id: t,
            reason: "Customer asks for a manager".into(),
        })
        .await;
    let ReplyResult::Ok { ticket: Some(held) } = reply else {
        panic!("escalate: {reply:?}")
    };
    assert_eq!(held.assigned_agent_id, Some(olga.id), "still hers");
    let seen = escalation_on(&mut sam, t, EscalationStatus::Open).await;
    assert_eq!(seen.reason, "Customer asks for a manager");
    assert_eq!(seen.escalated_by, olga.id);
    assert_eq!(seen.escalated_by_name, "olga");
    assert_eq!(seen.teams, vec!["care".to_string()]);
    assert_eq!(seen.customer_name, "Anna Petrova");
    let twice = olga
        .socket
        .command(Command::Escalate {
            ticket_id: t,
            reason: "again".into(),
        })
        .await;
    assert!(
        matches!(&twice, ReplyResult::Error(e) if e.code == WsErrorCode::Conflict),
        "{twice:?}"
    );

    // Sam lists it; Tom (another team) neither lists nor decides it; nor
    // does an agent.
    assert_eq!(
        listed(&app, &sam_token).await,
        [(t, EscalationStatus::Open)]
    );
    assert!(listed(&app, &tom_token).await.is_empty());
    let by_tom = decide(&app, &tom_token, t, "take", "").await;
    assert_eq!(by_tom.status, StatusCode::FORBIDDEN, "{}", by_tom.body);
    let by_agent = decide(&app, &ivan_token, t, "take", "").await;
    assert_eq!(by_agent.status, StatusCode::FORBIDDEN, "{}", by_agent.body);

    // Sam hands it back with guidance: Olga is told and keeps the ticket.
    let back = decide(&app, &sam_token, t, "hand_back", "Offer a repair first").await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    let back: Escalation = back.json();
    assert_eq!(back.status, EscalationStatus::HandedBack);
    assert_eq!(back.decided_by, Some(sam_id));
    let told = escalation_on(&mut olga.socket, t, EscalationStatus::HandedBack).await;
    assert_eq!(told.note.as_deref(), Some("Offer a repair first"));
    assert_eq!(told.ticket.assigned_agent_id, Some(olga.id));
    assert!(listed(&app, &sam_token).await.is_empty());
    let decided_twice = decide(&app, &sam_token, t, "take", "").await;
    assert_eq!(
        decided_twice.status,
        StatusCode::CONFLICT,
        "{}",
        decided_twice.body
    );

    // Escalated again, and taken over: the ticket is Sam's, Olga is told.
    let again = escalate(&app, &olga.token, t, "Still wants a manager").await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    escalation_on(&mut sam, t, EscalationStatus::Open).await;
    let took = sam
        .command(Command::DecideEscalation {
            ticket_id: t,
            action: callcenter_proto::desk::EscalationAction::Take,
            note: String::new(),
        })
        .await;
    let ReplyResult::Ok {
        ticket: Some(taken),
    } = took
    else {
        panic!("take: {took:?}")
    };
    assert_eq!(taken.assigned_agent_id, Some(sam_id));
    assert_eq!(taken.status, TicketStatus::Assigned);
    let updated = olga
        .socket
        .until(|e| match e {
            ServerEvent::TicketUpdated { ticket } if ticket.id == t => Some(ticket.clone()),
            _ => None,
        })
        .await;
    assert_eq!(updated.assigned_agent_id, Some(sam_id));
    escalation_on(&mut olga.socket, t, EscalationStatus::Taken).await;
    // A take-over is not a second answer: the board still counts one.
    let queues = app.get("/api/admin/queues", &app.admin_token).await;
    let queue = queues.body[0]["id"].as_i64().expect("queue id");
    let subscribed = sam
        .command(Command::Subscribe {
            queues: vec![queue],
            teams: Vec::new(),
        })
        .await;
    assert_eq!(subscribed, ReplyResult::Ok { ticket: None });
    let board = sam
        .until(|e| match e {
            ServerEvent::Board(b) => Some(b.clone()),
            _ => None,
        })
        .await;
    assert_eq!(board.queues[0].answered_today, 1, "{board:?}");
    let late_hand_back = decide(&app, &app.admin_token, t, "hand_back", "").await;
    assert_eq!(
        late_hand_back.status,
        StatusCode::CONFLICT,
        "{}",
        late_hand_back.body
    );

    // Olga may not resolve it any more; Tom may not; Sam does.
    let outcome = json!({ "code": "explained", "resolved": true, "note": "kept the contract" });
    let by_olga = app
        .post(&format!("/api/tickets/{t}/resolve"), &olga.token, &outcome)
        .await;
    assert_eq!(by_olga.status, StatusCode::FORBIDDEN, "{}", by_olga.body);
    assert_eq!(
        listed(&app, &sam_token).await,
        [(t, EscalationStatus::Taken)]
    );
    let path = format!("/api/tickets/{t}/escalation/resolve");
    let by_tom = app.post(&path, &tom_token, &outcome).await;
    assert_eq!(by_tom.status, StatusCode::FORBIDDEN, "{}", by_tom.body);
    let bad_code = app
        .post(
            &path,
            &sam_token,
            &json!({ "code": "no_such_code", "resolved": true }),
        )
        .await;
    assert_eq!(
        bad_code.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_code.body
    );
    let resolved = app.post(&path, &sam_token, &outcome).await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    assert_eq!(resolved.body["status"], "resolved");
    assert!(listed(&app, &sam_token).await.is_empty());

    // Every step is in the ticket's history, the end by Sam.
    let history: TicketHistory = app
        .get(&format!("/api/tickets/{t}/history"), &app.admin_token)
        .await
        .json();
    let steps: Vec<(&str, Option<i64>)> = history
        .events
        .iter()
        .filter(|e| e.kind.starts_with("escalat") || e.kind == "resolved")
        .map(|e| (e.kind.as_str(), e.actor_user_id))
        .collect();
    assert_eq!(
        steps,
        [
            ("escalated", Some(olga.id)),
            ("escalation_handed_back", Some(sam_id)),
            ("escalated", Some(olga.id)),
            ("escalation_taken", Some(sam_id)),
            ("resolved", Some(sam_id)),
        ]
    );

    // Olga was freed at the take-over: available again, she gets the next one.
    let next = app
        .complain(&app.admin_token, "next", customer, category, "Another one")
        .await;
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);
    let ready = olga
        .socket
        .command(Command::SetState {
            state: AgentState::Available,
            reason: None,
        })
        .await;
    assert_eq!(ready, ReplyResult::Ok { ticket: None });
    let offer = olga.socket.next_offer().await;
    assert_eq!(offer.ticket.id, next.body["id"].as_i64().unwrap());
}

async fn escalations_go_back_to_the_queue_or_close_with_their_ticket(app: TestApp) {
    let (category, customer) = care_desk(&app).await;
    let (_sam_id, sam_token) = supervisor(&app, "sam").await;
    let mut sam = app.socket(&sam_token).await;
    let mut olga = agent_holding_ticket(&app, "olga", customer, category).await;
    let t = olga.ticket_id;

    // An admin puts the escalated ticket back at the front of its queue:
    // Olga (on break) lets it go, Ivan gets it.
    assert_eq!(
        escalate(&app, &olga.token, t, "Needs a billing specialist")
            .await
            .status,
        StatusCode::CREATED
    );
    escalation_on(&mut sam, t, EscalationStatus::Open).await;
    let requeued = decide(&app, &app.admin_token, t, "requeue", "for billing").await;
    assert_eq!(requeued.status, StatusCode::OK, "{}", requeued.body);
    let requeued: Escalation = requeued.json();
    assert_eq!(requeued.status, EscalationStatus::Requeued);
    assert_eq!(
        escalation_on(&mut sam, t, EscalationStatus::Requeued)
            .await
            .note
            .as_deref(),
        Some("for billing")
    );
    assert_eq!(requeued.ticket.status, TicketStatus::Queued);
    assert_eq!(requeued.ticket.assigned_agent_id, None);
    let gone = olga
        .socket
        .until(|e| match e {
            ServerEvent::TicketUpdated { ticket } if ticket.id == t => Some(ticket.clone()),
            _ => None,
        })
        .await;
    assert_eq!(gone.status, TicketStatus::Queued);
    let (ivan_id, ivan_token) = app.agent("ivan", &[("care", 5)], 1).await;
    let mut ivan = app.socket(&ivan_token).await;
    ivan.go_available().await;
    let offer = ivan.next_offer().await;
    assert_eq!(offer.ticket.id, t);
    let accepted = ivan
        .command(Command::Accept {
            ticket_id: t,
            version: offer.version,
        })
        .await;
    assert!(matches!(accepted, ReplyResult::Ok { .. }), "{accepted:?}");

    // Ivan escalates it too, then ends it himself: the escalation closes and
    // the supervisors' lists drop it.
    assert_eq!(
        escalate(&app, &ivan_token, t, "Customer is shouting")
            .await
            .status,
        StatusCode::CREATED
    );
    let open = escalation_on(&mut sam, t, EscalationStatus::Open).await;
    assert_eq!(open.escalated_by, ivan_id);
    assert_eq!(
        listed(&app, &sam_token).await,
        [(t, EscalationStatus::Open)]
    );
    let resolved = ivan
        .command(Command::Resolve {
            ticket_id: t,
            outcome: callcenter_proto::http::Outcome {
                code: "explained".into(),
                resolved: true,
                note: String::new(),
            },
        })
        .await;
    assert!(matches!(resolved, ReplyResult::Ok { .. }), "{resolved:?}");
    escalation_on(&mut sam, t, EscalationStatus::Closed).await;
    assert!(listed(&app, &sam_token).await.is_empty());
    let late = decide(&app, &sam_token, t, "take", "").await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.body);
    let steps: Vec<String> = kinds(&app, t)
        .await
        .into_iter()
        .filter(|k| k.starts_with("escalat"))
        .collect();
    assert_eq!(
        steps,
        [
            "escalated",
            "escalation_requeued",
            "escalated",
            "escalation_closed"
        ]
    );
}

async fn callbacks_on_complaints_are_planned_as_calls_of_the_complaint(mut c: Center) {
    let anna = c.customer("c-1", "Europe/Moscow").await;
    let mut vera = c.console().await;
    let filed = c
        .app
        .complain(
            &c.app.admin_token,
            "k-1",
            anna,
            c.category,
            "The router keeps dropping",
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.body);
    let offer = next_offer(&mut vera).await;
    let t = offer.ticket.id;
    let accepted = vera
        .command(Command::Accept {
            ticket_id: t,
            version: offer.version,
        })
        .await;
    assert!(matches!(accepted, ReplyResult::Ok { .. }), "{accepted:?}");
    let token = c.agent_token.clone();
    let ask = |key: &'static str, body: Value| {
        let app = &c.app;
        let token = token.clone();
        async move {
            let mut request = app
                .http
                .post(app.url(&format!("/api/tickets/{t}/callback")))
                .bearer_auth(&token)
                .json(&body);
            if !key.is_empty() {
                request = request.header("Idempotency-Key", key);
            }
            app.send(request).await
        }
    };
    let field_error = |reply: &support::Reply| -> String {
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.body
        );
        assert_eq!(reply.body["errors"][0]["field"], "at_ms", "{}", reply.body);
        reply.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Monday 11:00 in Moscow. Refused: in the past, beyond 30 days, at night
    // in the customer's zone (with the first allowed time), without a key.
    let now = c.now();
    field_error(&ask("p", json!({ "at_ms": now - MINUTE })).await);
    field_error(&ask("f", json!({ "at_ms": now + 31 * DAY })).await);
    let night = field_error(&ask("n", json!({ "at_ms": utc(2026, 3, 3, 20, 30) })).await);
    assert!(night.contains("quiet_hours"), "{night}");
    assert!(night.contains("Wed 2026-03-04 09:00 MSK"), "{night}");
    let sunday = field_error(&ask("s", json!({ "at_ms": utc(2026, 3, 8, 9, 0) })).await);
    assert!(sunday.contains("weekday"), "{sunday}");
    let at = utc(2026, 3, 3, 7, 0); // Tuesday 10:00 in Moscow
    let unkeyed = ask("", json!({ "at_ms": at })).await;
    assert_eq!(
        unkeyed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unkeyed.body
    );
    let bad_outcome = ask(
        "o",
        json!({ "at_ms": at, "end_with": { "code": "no_such_code", "resolved": false } }),
    )
    .await;
    assert_eq!(
        bad_outcome.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_outcome.body
    );
    // Another agent may not promise a call on Vera's ticket.
    let (_ivan, ivan_token) = c.app.agent("ivan", &[("care", 5)], 1).await;
    let by_ivan = c
        .app
        .send(
            c.app
                .http
                .post(c.app.url(&format!("/api/tickets/{t}/callback")))
                .bearer_auth(&ivan_token)
                .header("Idempotency-Key", "i")
                .json(&json!({ "at_ms": at })),
        )
        .await;
    assert_eq!(by_ivan.status, StatusCode::FORBIDDEN, "{}", by_ivan.body);
    // Nothing was planned by any of these.
    assert!(c.calls(anna).await.is_empty());

    // Tuesday 10:00: planned, and the contact ends as not resolved yet.
    let body = json!({ "at_ms": at, "note": "Check the router after the firmware update",
        "end_with": { "code": "not_resolved", "resolved": false, "note": "callback on Tuesday" } });
    let first = ask("cb-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let first: CallbackScheduled = first.json();
    assert_eq!(first.due_at_ms, at);
    assert_eq!(first.ticket.status, TicketStatus::Resolved);
    let outcome = first.ticket.outcome.clone().expect("outcome");
    assert_eq!(
        (outcome.code.as_str(), outcome.resolved),
        ("not_resolved", false)
    );
    let retry = ask("cb-1", body).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    assert_eq!(retry.json::<CallbackScheduled>().call_id, first.call_id);
    let reused = ask("cb-1", json!({ "at_ms": at + DAY })).await;
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reused.body
    );

    let call = c.only_call(anna).await;
    assert_eq!(call.id, first.call_id);
    assert_eq!(call.status, CallStatus::Scheduled);
    assert_eq!(call.due_at_ms, at);
    assert_eq!(
        call.purposes[0].purpose,
        format!("Callback on complaint #{t}: The router keeps dropping")
    );
    let history: TicketHistory = c
        .app
        .get(&format!("/api/tickets/{t}/history"), &c.app.admin_token)
        .await
        .json();
    let step = history
        .events
        .iter()
        .find(|e| e.kind == "callback_scheduled")
        .expect("callback step");
    assert_eq!(step.data["call_id"], first.call_id);
    assert_eq!(step.data["at_ms"], at);
    assert_eq!(step.actor_user_id, Some(c.agent_id));

    // A ticket may also stay with the agent after the callback is planned.
    let boris = c.customer("c-2", "Europe/Moscow").await;
    let filed = c
        .app
        .complain(
            &c.app.admin_token,
            "k-2",
            boris,
            c.category,
            "No signal at home",
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.body);
    let second = next_offer(&mut vera).await;
    let accepted = vera
        .command(Command::Accept {
            ticket_id: second.ticket.id,
            version: second.version,
        })
        .await;
    assert!(matches!(accepted, ReplyResult::Ok { .. }), "{accepted:?}");
    let kept = vera
        .command(Command::ScheduleCallback {
            ticket_id: second.ticket.id,
            at_ms: utc(2026, 3, 4, 8, 0),
            note: String::new(),
            end_with: None,
        })
        .await;
    let ReplyResult::Ok { ticket: Some(kept) } = kept else {
        panic!("callback over the socket: {kept:?}")
    };
    assert_eq!(kept.status, TicketStatus::Assigned);
    let resolved = vera
        .command(Command::Resolve {
            ticket_id: second.ticket.id,
            outcome: callcenter_proto::http::Outcome {
                code: "explained".into(),
                resolved: true,
                note: String::new(),
            },
        })
        .await;
    assert!(matches!(resolved, ReplyResult::Ok { .. }), "{resolved:?}");

    // When due, Anna's callback becomes an outbound call of the complaint,
    // offered with its purpose and the agent's note as the script.
    c.advance_to(at).await;
    c.run().await;
    let due = next_offer(&mut vera).await;
    assert_eq!(due.ticket.kind, "outbound");
    assert_eq!(due.ticket.customer_id, anna);
    let brief = due.outbound.expect("outbound brief");
    assert_eq!(brief.call_id, first.call_id);
    assert_eq!(
        brief.purposes[0].script,
        "Check the router after the firmware update"
    );
}

async fn the_customer_card_history_is_bounded_and_for_the_customers_agent(app: TestApp) {
    publish(&app, &app.admin_token, &policy()).await;
    let (category, customer) = care_desk(&app).await;
    let (_sam_id, sam_token) = supervisor(&app, "sam").await;
    let olga = agent_holding_ticket(&app, "olga", customer, category).await;
    let t = olga.ticket_id;
    asked(&app, &olga.token, "g-1", &credit(t, 1500)).await;
    let days = json!({ "ticket_id": t, "kind": "free_days", "quantity": 10,
                       "reason_code": "broken_item", "note": "kettle broke twice" });
    asked(&app, &olga.token, "g-2", &days).await;
    let (_ivan_id, ivan_token) = app.agent("ivan", &[("care", 5)], 1).await;
    let path = format!("/api/customers/{customer}/history");

    // Olga holds the customer's ticket: she reads the history.
    let seen = app.get(&path, &olga.token).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let seen: CustomerHistory = seen.json();
    assert_eq!(
        seen.tickets
            .iter()
            .map(|p| (p.id, p.status))
            .collect::<Vec<_>>(),
        [(t, TicketStatus::Assigned)]
    );
    assert_eq!(seen.tickets[0].category, "care problems");
    let grants: Vec<(i64, &str)> = seen
        .compensation
        .iter()
        .map(|g| (g.cost_minor, g.status.as_str()))
        .collect();
    assert_eq!(grants, [(3000, "pending"), (1500, "granted")]);
    assert!(!seen.contact.consent_calls);

    // Ivan serves nobody of this customer; supervisors and admins read any.
    let by_ivan = app.get(&path, &ivan_token).await;
    assert_eq!(by_ivan.status, StatusCode::FORBIDDEN, "{}", by_ivan.body);
    assert_eq!(app.get(&path, &sam_token).await.status, StatusCode::OK);
    assert_eq!(
        app.get(&path, &app.admin_token).await.status,
        StatusCode::OK
    );
    for bad in ["?limit=0", "?limit=51", "?limit=x"] {
        let reply = app.get(&format!("{path}{bad}"), &sam_token).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            reply.body
        );
    }
    let unknown = app.get("/api/customers/999999/history", &sam_token).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);

    // Resolved: Olga no longer reads it. A new complaint offered to Ivan
    // (not yet accepted) lets him read it, with the earlier outcome; the
    // latest one only when asked for one.
    let resolved = app
        .post(
            &format!("/api/tickets/{t}/resolve"),
            &olga.token,
            &json!({ "code": "compensated", "resolved": true, "note": "credited" }),
        )
        .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    let after = app.get(&path, &olga.token).await;
    assert_eq!(after.status, StatusCode::FORBIDDEN, "{}", after.body);
    let mut ivan = app.socket(&ivan_token).await;
    ivan.go_available().await;
    let filed = app
        .complain(
            &app.admin_token,
            "again",
            customer,
            category,
            "Still broken",
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.body);
    let offer = ivan.next_offer().await;
    let offered: CustomerHistory = app.get(&path, &ivan_token).await.json();
    assert_eq!(
        offered.tickets.iter().map(|p| p.id).collect::<Vec<_>>(),
        [offer.ticket.id, t]
    );
    let earlier = offered.tickets[1].outcome.as_ref().expect("outcome");
    assert_eq!(
        (earlier.code.as_str(), earlier.resolved),
        ("compensated", true)
    );
    let latest: CustomerHistory = app
        .get(&format!("{path}?limit=1"), &ivan_token)
        .await
        .json();
    assert_eq!(latest.tickets.len(), 1);
    assert_eq!(latest.compensation.len(), 1);

    // Described like every other route and socket message.
    let openapi = app.send(app.http.get(app.url("/api/openapi.json"))).await;
    for path in [
        "/api/tickets/{id}/escalate",
        "/api/tickets/{id}/escalation",
        "/api/tickets/{id}/escalation/decision",
        "/api/tickets/{id}/escalation/resolve",
        "/api/escalations",
        "/api/tickets/{id}/callback",
        "/api/customers/{id}/history",
    ] {
        assert!(openapi.body["paths"].get(path).is_some(), "{path} missing");
    }
    let schema = app
        .send(app.http.get(app.url("/api/ws-schema.json")))
        .await
        .body
        .to_string();
    for name in [
        "escalate",
        "schedule_callback",
        "decide_escalation",
        "escalation_changed",
    ] {
        assert!(
            schema.contains(name),
            "{name} missing from the socket schema"
        );
    }
}
