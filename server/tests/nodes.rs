//! Several server nodes sharing one PostgreSQL and one Redis behave as one:
//! a ticket filed on one node reaches an agent connected to another, and a
//! node that shuts down hands its live work back.

mod support;

use callcenter_proto::ws::{Command, ReplyResult};
use reqwest::StatusCode;
use support::ws::close_code;
use support::{Live, Storage, TestApp, spawn_app};

async fn shared_deployment() -> Option<(TestApp, TestApp)> {
    let a = spawn_app(Storage::Postgres, Live::Redis).await?;
    let b = a.another_node().await;
    Some((a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_filed_on_one_node_is_offered_to_an_agent_on_another() {
    let Some((a, b)) = shared_deployment().await else {
        return;
    };
    let (_q, category) = a.queue("billing", &[], 30).await;
    let (agent, token) = a.agent("olga", &[], 1).await;
    let customer = a.customer("shop-1").await;
    // The agent's console is connected to node B; the complaint is posted to node A.
    let mut desk = b.socket(&token).await;
    desk.go_available().await;
    let filed = a
        .complain(&a.admin_token, "n-1", customer, category, "Charged twice")
        .await;
    assert_eq!(filed.status, StatusCode::CREATED);
    let ticket_id = filed.body["id"].as_i64().unwrap();
    let offer = desk.next_offer().await;
    assert_eq!(offer.ticket.id, ticket_id);
    let accepted = desk
        .command(Command::Accept {
            ticket_id,
            version: offer.version,
        })
        .await;
    assert!(
        matches!(accepted, ReplyResult::Ok { ticket: Some(ref t) } if t.assigned_agent_id == Some(agent))
    );
    // Node B showed the offer, so it knew its queue: the accept did not
    // read the ticket to find it.
    assert_eq!(b.metric("callcenter_offer_queue_reads_total").await, 0);
    // Node A sees the same ticket state: one record.
    let ticket = a
        .get(&format!("/api/tickets/{ticket_id}"), &a.admin_token)
        .await;
    assert_eq!(ticket.body["status"], "assigned");

    // Node B has the agent's session in its cache now.
    let before = b.get(&format!("/api/tickets/{ticket_id}"), &token).await;
    assert_eq!(before.status, StatusCode::OK);

    // Logout on node A closes the socket on node B…
    let out = a
        .send(a.http.post(a.url("/api/auth/logout")).bearer_auth(&token))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(close_code(&desk.ended().await), Some(1008));
    // …and node B refuses the token at once: its cached session went with
    // the same message.
    let after = b.get(&format!("/api/tickets/{ticket_id}"), &token).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_hands_its_pending_offers_back() {
    let Some((a, b)) = shared_deployment().await else {
        return;
    };
    let (_q, category) = a.queue("returns", &[], 30).await;
    let (_olga, olga) = a.agent("olga", &[], 1).await;
    let (boris_id, boris) = a.agent("boris", &[], 1).await;
    let customer = a.customer("shop-2").await;

    let mut on_a = a.socket(&olga).await;
    on_a.go_available().await;
    let filed = b
        .complain(&b.admin_token, "n-2", customer, category, "Broken zip")
        .await;
    let ticket_id = filed.body["id"].as_i64().unwrap();
    assert_eq!(on_a.next_offer().await.ticket.id, ticket_id);

    let mut on_b = b.socket(&boris).await;
    on_b.go_available().await;
    // Node A stops: Olga's console is told why, and her pending offer goes to Boris on node B.
    a.stop().await;
    assert_eq!(close_code(&on_a.ended().await), Some(1001));
    let offer = on_b.next_offer().await;
    assert_eq!(offer.ticket.id, ticket_id);
    let accepted = on_b
        .command(Command::Accept {
            ticket_id,
            version: offer.version,
        })
        .await;
    assert!(
        matches!(accepted, ReplyResult::Ok { ticket: Some(ref t) } if t.assigned_agent_id == Some(boris_id))
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_racing_a_timeout_on_another_node_has_exactly_one_outcome() {
    let Some((a, b)) = shared_deployment().await else {
        return;
    };
    let (_q, category) = a.queue("race", &[], 5).await;
    let (agent, token) = a.agent("olga", &[], 1).await;
    let customer = a.customer("shop-3").await;
    let mut desk = b.socket(&token).await;
    desk.go_available().await;
    let (mut accepted_first_time, mut expired_first) = (0, 0);
    for i in 0..8 {
        let filed = a
            .complain(
                &a.admin_token,
                &format!("race-{i}"),
                customer,
                category,
                "Race",
            )
            .await;
        let ticket_id = filed.body["id"].as_i64().unwrap();
        let offer = desk.next_offer().await;
        assert_eq!(offer.ticket.id, ticket_id);
        // The deadline passes (both nodes' tickers may expire it) while the
        // agent's accept goes to node B.
        a.clock.advance_ms(5_000);
        let answer = desk
            .command(Command::Accept {
                ticket_id,
                version: offer.version,
            })
            .await;
        let events: Vec<String> = {
            let h: callcenter_proto::http::TicketHistory = a
                .get(&format!("/api/tickets/{ticket_id}/history"), &a.admin_token)
                .await
                .json();
            h.events.into_iter().map(|e| e.kind).collect()
        };
        match answer {
            ReplyResult::Ok { ticket: Some(t) } => {
                accepted_first_time += 1;
                assert_eq!(t.assigned_agent_id, Some(agent));
                assert!(!events.contains(&"offer_expired".to_string()), "{events:?}");
            }
            ReplyResult::Error(e) => {
                expired_first += 1;
                assert_eq!(e.code, callcenter_proto::ws::WsErrorCode::OfferGone);
                // Expired: back in the queue and offered again, then taken.
                let again = desk.next_offer().await;
                assert_eq!(again.ticket.id, ticket_id);
                assert!(again.version > offer.version);
                let taken = desk
                    .command(Command::Accept {
                        ticket_id,
                        version: again.version,
                    })
                    .await;
                assert!(matches!(taken, ReplyResult::Ok { .. }), "{taken:?}");
            }
            other => panic!("{other:?}"),
        }
        let h: callcenter_proto::http::TicketHistory = a
            .get(&format!("/api/tickets/{ticket_id}/history"), &a.admin_token)
            .await
            .json();
        assert_eq!(
            h.events.iter().filter(|e| e.kind == "accepted").count(),
            1,
            "{:?}",
            h.events
        );
        assert_eq!(h.ticket.assigned_agent_id, Some(agent));
        let done = desk
            .command(Command::Resolve {
                ticket_id,
                outcome: callcenter_proto::http::Outcome {
                    code: "fixed".into(),
                    resolved: true,
                    note: String::new(),
                },
            })
            .await;
        assert!(matches!(done, ReplyResult::Ok { .. }), "{done:?}");
    }
    assert_eq!(accepted_first_time + expired_first, 8);
    b.stop().await;
    a.stop().await;
}

/// The periodic work (offer timeouts, overflow, wrap-up ends) reads the
/// record on every tick: one node of a deployment runs it, not every node;
/// when that node stops, another takes it over and offers still time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_work_runs_on_one_node_and_moves_when_it_stops() {
    let Some((a, b)) = shared_deployment().await else {
        return;
    };
    let ticks = async |node: &TestApp| node.metric("callcenter_ticks_total").await;
    let (a0, b0) = (ticks(&a).await, ticks(&b).await);
    let started = std::time::Instant::now();
    let (mut ran_a, mut ran_b) = (0, 0);
    while ran_a + ran_b < 12 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        (ran_a, ran_b) = (ticks(&a).await - a0, ticks(&b).await - b0);
    }
    // Each node ticks every 250 ms: had both run the work, twice as many
    // ticks as one node makes would have been counted.
    let one_node = started.elapsed().as_millis() as u64 / 250 + 2;
    assert!(
        ran_a + ran_b <= one_node,
        "{ran_a} + {ran_b} ticks in {:?}",
        started.elapsed()
    );
    let (leader, other) = if ran_a >= ran_b { (a, b) } else { (b, a) };

    // The leader stops; an offer shown on the other node times out all the same.
    let (_q, category) = other.queue("warranty", &[], 20).await;
    let (_vera, vera) = other.agent("vera", &[], 1).await;
    let customer = other.customer("shop-4").await;
    let mut desk = other.socket(&vera).await;
    desk.go_available().await;
    leader.stop().await;
    let filed = other
        .complain(
            &other.admin_token,
            "n-4",
            customer,
            category,
            "Screen flickers",
        )
        .await;
    let ticket_id = filed.body["id"].as_i64().unwrap();
    assert_eq!(desk.next_offer().await.ticket.id, ticket_id);
    other.clock.advance_ms(20_001);
    let rescinded = desk.next_rescind().await;
    assert_eq!(rescinded, (ticket_id, "timeout".to_string()));
    other.stop().await;
}

/// Waits until the deployment's periodic work ran twice more (a whole tick
/// after the clock moved).
async fn two_more_ticks(nodes: &[&TestApp]) {
    let ticks = async || {
        let mut sum = 0;
        for node in nodes {
            sum += node.metric("callcenter_ticks_total").await;
        }
        sum
    };
    let before = ticks().await;
    while ticks().await < before + 2 {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// A console that reconnects to another node before the first one notices
/// its old socket is gone (a node restarting, a network blip the old node
/// takes a ping timeout to see): its agent stays available and keeps her
/// ticket past the reconnect grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_who_reconnected_to_another_node_keeps_her_ticket() {
    let Some((a, b)) = shared_deployment().await else {
        return;
    };
    let Holding {
        olga_id,
        olga,
        console: on_a,
        category,
        customer,
        ticket_id,
    } = olga_holds_a_ticket(&a).await;

    // Her console is on node B now; node A sees the old socket close after.
    let mut on_b = b.socket(&olga).await;
    on_a.drop_connection().await;
    while a.metric("callcenter_sockets_open").await > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }

    // Past the reconnect grace her ticket is still hers…
    a.clock.advance_ms(121_000);
    two_more_ticks(&[&a, &b]).await;
    let ticket = b
        .get(&format!("/api/tickets/{ticket_id}"), &b.admin_token)
        .await;
    assert_eq!(ticket.body["status"], "assigned", "{}", ticket.body);
    assert_eq!(ticket.body["assigned_agent_id"], olga_id);
    // …and she is still available: the next complaint is offered to her.
    let second = a
        .complain(&a.admin_token, "n-6", customer, category, "Late delivery")
        .await;
    let second_id = second.body["id"].as_i64().unwrap();
    assert_eq!(on_b.next_offer().await.ticket.id, second_id);
    b.stop().await;
    a.stop().await;
}

/// An agent with two consoles open, each served by a different node (two
/// tabs behind a load balancer), closes the newer one: she stays available
/// and keeps her ticket past the reconnect grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_one_of_two_tabs_on_different_nodes_keeps_the_agent_present() {
    let Some((a, b)) = shared_deployment().await else {
        return;
    };
    let Holding {
        olga_id,
        olga,
        console: mut on_a,
        category,
        customer,
        ticket_id,
    } = olga_holds_a_ticket(&a).await;

    // A second tab opens on node B, then closes.
    let on_b = b.socket(&olga).await;
    on_b.drop_connection().await;
    while b.metric("callcenter_sockets_open").await > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }

    // Past the reconnect grace her ticket is still hers…
    a.clock.advance_ms(121_000);
    two_more_ticks(&[&a, &b]).await;
    let ticket = a
        .get(&format!("/api/tickets/{ticket_id}"), &a.admin_token)
        .await;
    assert_eq!(ticket.body["status"], "assigned", "{}", ticket.body);
    assert_eq!(ticket.body["assigned_agent_id"], olga_id);
    // …and she is still available in the tab she kept.
    let second = b
        .complain(&b.admin_token, "n-7", customer, category, "Late delivery")
        .await;
    let second_id = second.body["id"].as_i64().unwrap();
    assert_eq!(on_a.next_offer().await.ticket.id, second_id);
    b.stop().await;
    a.stop().await;
}

/// Olga (room for two tickets) available on `node`, holding one complaint.
struct Holding {
    olga_id: i64,
    olga: String,
    console: support::ws::Socket,
    category: i64,
    customer: i64,
    ticket_id: i64,
}

async fn olga_holds_a_ticket(node: &TestApp) -> Holding {
    let (_q, category) = node.queue("billing", &[], 30).await;
    let (olga_id, olga) = node.agent("olga", &[], 2).await;
    let customer = node.customer("shop-5").await;
    let mut console = node.socket(&olga).await;
    console.go_available().await;
    let filed = node
        .complain(
            &node.admin_token,
            "n-5",
            customer,
            category,
            "Charged twice",
        )
        .await;
    let ticket_id = filed.body["id"].as_i64().unwrap();
    console.accept_next_offer(ticket_id).await;
    Holding {
        olga_id,
        olga,
        console,
        category,
        customer,
        ticket_id,
    }
}
