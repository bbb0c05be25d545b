//! The live channel never loses an event silently: consoles resume where they
//! left off (or get a snapshot), repeated commands have one effect, slow or
//! silent clients are closed without hurting the others, and boards get
//! coalesced figures.

#[path = "compensation_fixtures/mod.rs"]
mod compensation_fixtures;
mod support;

use callcenter_proto::AgentState;
use callcenter_proto::http::TicketHistory;
use callcenter_proto::ws::{ClientFrame, Command, ReplyResult, ServerEvent, WsErrorCode};
use futures::{SinkExt, StreamExt};
use support::ws::{Socket, close_code};
use support::{Live, Options, Storage, TestApp, spawn_with};
use tokio_tungstenite::tungstenite::Message;

on_every_backend!(
    a_reconnecting_console_gets_every_missed_event_in_order,
    a_repeated_request_id_has_one_effect_and_the_same_reply,
    a_board_counts_todays_answers_within_the_service_level,
);
on_every_backend!(tweak = fast_commands; a_resume_point_too_far_back_gets_a_snapshot);

fn set_state(state: AgentState, reason: Option<&str>) -> Command {
    Command::SetState {
        state,
        reason: reason.map(str::to_string),
    }
}

/// The stream frames a socket has received (not replies, boards or snapshots).
fn stream_seqs(socket: &Socket) -> Vec<u64> {
    socket
        .seen
        .iter()
        .filter(|f| {
            !matches!(
                f.event,
                ServerEvent::Reply { .. }
                    | ServerEvent::Welcome { .. }
                    | ServerEvent::Snapshot(_)
                    | ServerEvent::Board(_)
                    | ServerEvent::Error(_)
            )
        })
        .map(|f| f.seq)
        .collect()
}

async fn a_reconnecting_console_gets_every_missed_event_in_order(app: TestApp) {
    let (_q, category) = app.queue("billing", &[], 20).await;
    let (_agent, token) = app.agent("olga", &[], 1).await;
    let customer = app.customer("c-1").await;
    let mut desk = app.socket(&token).await;
    desk.command(set_state(AgentState::Available, None)).await;
    let first = app
        .complain(&app.admin_token, "k-1", customer, category, "First")
        .await;
    let offer = desk.next_offer().await;
    assert_eq!(offer.ticket.id, first.body["id"].as_i64().unwrap());
    let last = desk.last_seq();
    let before = stream_seqs(&desk);
    let start = before[0];
    assert_eq!(
        before,
        (start..start + before.len() as u64).collect::<Vec<_>>(),
        "numbered without gaps"
    );

    // The network drops. Meanwhile the agent is taken offline, the offer is
    // withdrawn, and a second complaint comes in.
    desk.drop_connection().await;
    app.complain(&app.admin_token, "k-2", customer, category, "Second")
        .await;

    // A second console of the same agent (on the same stream) sees things move on.
    let mut other = app.socket(&token).await;
    let back = other.command(set_state(AgentState::Available, None)).await;
    assert_eq!(back, ReplyResult::Ok { ticket: None });
    other.next_offer().await;

    // The first console comes back and resumes: every missed event, in order, no snapshot.
    let mut resumed = Socket::connect_from(&app.ws_url(), &token, Some(last)).await;
    assert!(resumed.snapshot.is_none());
    let mut missed = Vec::new();
    let mut offers = 0;
    while offers < 1 {
        let event = resumed.next_event().await;
        if matches!(event, ServerEvent::Offer(_)) {
            offers += 1;
        }
        missed.push((resumed.last_seq(), event));
    }
    let seqs: Vec<u64> = missed.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (last + 1..=last + seqs.len() as u64).collect::<Vec<_>>(),
        "{missed:?}"
    );
    assert!(
        missed.iter().any(|(_, e)| matches!(e, ServerEvent::OfferRescinded { ticket_id, .. } if *ticket_id == offer.ticket.id)),
        "{missed:?}"
    );
    assert!(
        missed.iter().any(|(_, e)| matches!(
            e,
            ServerEvent::AgentStateChanged {
                state: AgentState::Offline,
                ..
            }
        )),
        "{missed:?}"
    );
    // Live events continue the same numbering on every console of the agent.
    let note_ticket = match &missed.last().unwrap().1 {
        ServerEvent::Offer(o) => o.clone(),
        other => panic!("{other:?}"),
    };
    let accepted = resumed
        .command(Command::Accept {
            ticket_id: note_ticket.ticket.id,
            version: note_ticket.version,
        })
        .await;
    assert!(matches!(accepted, ReplyResult::Ok { .. }), "{accepted:?}");
}

async fn a_resume_point_too_far_back_gets_a_snapshot(app: TestApp) {
    let (_q, category) = app.queue("delivery", &[], 30).await;
    let (_agent, token) = app.agent("boris", &[], 2).await;
    let customer = app.customer("c-2").await;
    let mut desk = app.socket(&token).await;
    desk.command(set_state(AgentState::Available, None)).await;
    let filed = app
        .complain(&app.admin_token, "k-3", customer, category, "Late parcel")
        .await;
    let offer = desk.next_offer().await;
    desk.command(Command::Accept {
        ticket_id: offer.ticket.id,
        version: offer.version,
    })
    .await;
    let stale = desk.last_seq();
    desk.drop_connection().await;

    // A resume point from the future (a stream the server no longer has, as
    // after a restart) cannot be honoured: a snapshot comes instead.
    let future = Socket::connect_from(&app.ws_url(), &token, Some(stale + 10_000)).await;
    let snapshot = future.snapshot.clone().expect("a snapshot");
    assert!(snapshot.pending_offers.is_empty());
    assert_eq!(
        snapshot.assigned.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![filed.body["id"].as_i64().unwrap()]
    );
    drop(future);

    // More events than the stream keeps (Redis trims it now and then, so
    // it may keep a few more) happen while the console is away.
    let mut other = app.socket(&token).await;
    let kept = callcenter::bus::STREAM_LEN as u64 + callcenter::bus::STREAM_TRIM_EVERY;
    let mut sent = 0u64;
    while sent <= kept {
        let reason = format!("break {sent}");
        let r = other
            .command(set_state(AgentState::Break, Some(&reason)))
            .await;
        assert_eq!(r, ReplyResult::Ok { ticket: None });
        sent += 1;
    }
    let back = Socket::connect_from(&app.ws_url(), &token, Some(stale)).await;
    let snapshot = back.snapshot.clone().expect("too far back: a snapshot");
    assert_eq!(snapshot.state, Some(AgentState::Break));
    assert_eq!(snapshot.assigned.len(), 1);
}

async fn a_repeated_request_id_has_one_effect_and_the_same_reply(app: TestApp) {
    let (_q, category) = app.queue("returns", &[], 30).await;
    let (_agent, token) = app.agent("vera", &[], 1).await;
    let customer = app.customer("c-3").await;
    let mut desk = app.socket(&token).await;
    desk.command(set_state(AgentState::Available, None)).await;
    app.complain(&app.admin_token, "k-4", customer, category, "Torn box")
        .await;
    let offer = desk.next_offer().await;
    let ticket_id = offer.ticket.id;
    desk.command(Command::Accept {
        ticket_id,
        version: offer.version,
    })
    .await;

    let note = ClientFrame::Command {
        request_id: "note-once".into(),
        command: Command::Note {
            ticket_id,
            text: "Customer will send photos".into(),
        },
    };
    let reply_to = |socket: &mut Socket| {
        let mut replies = Vec::new();
        for frame in &socket.seen {
            if let ServerEvent::Reply { request_id, result } = &frame.event
                && request_id == "note-once"
            {
                replies.push(result.clone());
            }
        }
        replies
    };
    desk.send_frame(&note).await;
    desk.send_frame(&note).await;
    // And once more after a reconnect, as a console retrying an unanswered command.
    for _ in 0..2 {
        desk.until(|e| {
            matches!(e, ServerEvent::Reply { request_id, .. } if request_id == "note-once")
                .then_some(())
        })
        .await;
    }
    let first_replies = reply_to(&mut desk);
    let last = desk.last_seq();
    desk.drop_connection().await;
    let mut again = Socket::connect_from(&app.ws_url(), &token, Some(last)).await;
    again.send_frame(&note).await;
    again
        .until(|e| {
            matches!(e, ServerEvent::Reply { request_id, .. } if request_id == "note-once")
                .then_some(())
        })
        .await;
    let replies: Vec<ReplyResult> = first_replies
        .into_iter()
        .chain(reply_to(&mut again))
        .collect();
    assert_eq!(replies.len(), 3);
    assert!(
        replies
            .iter()
            .all(|r| *r == ReplyResult::Ok { ticket: None }),
        "{replies:?}"
    );

    let history: TicketHistory = app
        .get(
            &format!("/api/tickets/{ticket_id}/history"),
            &app.admin_token,
        )
        .await
        .json();
    assert_eq!(
        history.events.iter().filter(|e| e.kind == "note").count(),
        1
    );
}

fn quick_heartbeat(serve: &mut callcenter::config::ServeArgs) {
    serve.ws_ping_seconds = 1;
    serve.ws_idle_seconds = 2;
}

#[tokio::test]
async fn a_silent_connection_is_closed_and_its_offer_goes_to_someone_else() {
    let mut options = Options::new(Storage::Sqlite, Live::Memory);
    options.tweak = Some(quick_heartbeat);
    let app = spawn_with(options).await.unwrap();
    let (_q, category) = app.queue("care", &[], 60).await;
    let (_a, silent_token) = app.agent("silent", &[], 1).await;
    let (_b, token) = app.agent("awake", &[], 1).await;
    let customer = app.customer("c-4").await;
    let mut silent = app.socket(&silent_token).await;
    silent.command(set_state(AgentState::Available, None)).await;
    let filed = app
        .complain(&app.admin_token, "k-5", customer, category, "Leaking")
        .await;
    silent.next_offer().await;
    let mut awake = app.socket(&token).await;
    awake.command(set_state(AgentState::Available, None)).await;

    // The silent console stops answering pings; the awake one keeps reading.
    let reader = tokio::spawn(async move { awake.next_offer().await });
    // (The silent socket is not read: no pongs go back.)
    let offer = reader.await.unwrap();
    assert_eq!(offer.ticket.id, filed.body["id"].as_i64().unwrap());
    let ended = silent.ended().await;
    assert_eq!(close_code(&ended), Some(4408), "{ended:?}");
}

/// A figure from the node's metrics.
async fn metric(app: &TestApp, name: &str) -> i64 {
    let metrics = app.send(app.http.get(app.url("/metrics"))).await;
    let text = metrics.body.as_str().unwrap().to_string();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("{name} missing from {text}"))
}

fn fast_commands(serve: &mut callcenter::config::ServeArgs) {
    serve.ws_commands_per_second = 100_000;
}

#[tokio::test]
async fn a_slow_console_is_closed_and_a_fast_one_is_unaffected() {
    let mut options = Options::new(Storage::Sqlite, Live::Memory);
    options.tweak = Some(fast_commands);
    let app = spawn_with(options).await.unwrap();
    let (_a, token) = app.agent("kira", &[], 1).await;

    // A console that stops reading, with a small receive window.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(app.addr).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(app.ws_url(), tcp)
        .await
        .unwrap();
    let hello = ClientFrame::Hello {
        protocol: "1.0".into(),
        token: token.clone(),
        resume_from: None,
    };
    slow.send(Message::Text(serde_json::to_string(&hello).unwrap().into()))
        .await
        .unwrap();

    // A fast console of the same agent makes a lot happen, until the server
    // has closed the slow one (the slow one is not read meanwhile).
    let mut fast = app.socket(&token).await;
    let reason = "x".repeat(150);
    let mut sent = 0;
    assert_eq!(metric(&app, "callcenter_sockets_open").await, 2);
    while sent < 20_000 {
        let r = fast
            .command(set_state(AgentState::Break, Some(&reason)))
            .await;
        assert_eq!(r, ReplyResult::Ok { ticket: None });
        sent += 1;
        if sent % 200 == 0 && metric(&app, "callcenter_sockets_closed_slow_total").await == 1 {
            break;
        }
    }
    assert!(sent < 20_000, "the slow console was never closed");
    // When the slow console reads again, what it has ends with the reason.
    let close = loop {
        match slow.next().await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    let close = close.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("too slow"), "{}", close.reason);
    assert_eq!(metric(&app, "callcenter_sockets_open").await, 1);
    // The fast console got every event, in order, and is still served.
    let seqs = stream_seqs(&fast);
    assert_eq!(
        seqs.len() as u64,
        seqs.last().copied().unwrap() - seqs[0] + 1
    );
    let r = fast.command(set_state(AgentState::Available, None)).await;
    assert_eq!(r, ReplyResult::Ok { ticket: None });
}

#[tokio::test]
async fn commands_past_the_rate_are_refused_then_the_connection_closed() {
    let app = support::spawn_app(Storage::Sqlite, Live::Memory)
        .await
        .unwrap();
    let (_a, token) = app.agent("lena", &[], 1).await;
    let mut stream = Socket::open(&app.ws_url()).await;
    let hello = ClientFrame::Hello {
        protocol: "1.0".into(),
        token,
        resume_from: None,
    };
    stream
        .send(Message::Text(serde_json::to_string(&hello).unwrap().into()))
        .await
        .unwrap();
    // 200 commands at once, far past 20 a second.
    for i in 0..200 {
        let frame = ClientFrame::Command {
            request_id: format!("flood-{i}"),
            command: set_state(AgentState::Available, None),
        };
        if stream
            .send(Message::Text(serde_json::to_string(&frame).unwrap().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut limited = 0;
    let mut ok = 0;
    let close = loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: callcenter_proto::ws::ServerFrame = serde_json::from_str(&text).unwrap();
                if let ServerEvent::Reply { result, .. } = frame.event {
                    match result {
                        ReplyResult::Ok { .. } => ok += 1,
                        ReplyResult::Error(e) if e.code == WsErrorCode::RateLimited => limited += 1,
                        ReplyResult::Error(e) => panic!("{e:?}"),
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(u16::from(close.expect("a close frame").code), 1008);
    assert!((20..=60).contains(&ok), "ok: {ok}");
    assert!(limited >= 20, "limited: {limited}");
}

#[tokio::test]
async fn a_board_gets_coalesced_figures_during_a_burst() {
    let app = support::spawn_app(Storage::Sqlite, Live::Memory)
        .await
        .unwrap();
    let (queue, category) = app.queue("billing", &[], 30).await;
    let (_a, agent_token) = app.agent("mark", &[], 1).await;
    let (_s, supervisor) = app.user("sofia", "supervisor").await;
    let customer = app.customer("c-5").await;

    // Agents may not watch boards.
    let mut desk = app.socket(&agent_token).await;
    let refused = desk
        .command(Command::Subscribe {
            queues: vec![queue],
            teams: vec![],
        })
        .await;
    assert!(
        matches!(refused, ReplyResult::Error(ref e) if e.code == WsErrorCode::Forbidden),
        "{refused:?}"
    );

    let mut board = app.socket(&supervisor).await;
    let subscribed = board
        .command(Command::Subscribe {
            queues: vec![queue],
            teams: vec!["care".into()],
        })
        .await;
    assert_eq!(subscribed, ReplyResult::Ok { ticket: None });
    let first = board
        .until(|e| match e {
            ServerEvent::Board(b) => Some(b.clone()),
            _ => None,
        })
        .await;
    assert_eq!(first.queues[0].waiting, 0);
    assert_eq!(first.teams[0].agents[0].name, "mark");
    assert_eq!(first.teams[0].agents[0].state, AgentState::Offline);

    // A burst of 300 complaints: the board ends up showing all of them, in a
    // handful of messages rather than 300.
    let started = std::time::Instant::now();
    let burst = (0..300).map(|i| {
        let app = &app;
        async move {
            app.complain(
                &app.admin_token,
                &format!("burst-{i}"),
                customer,
                category,
                "Burst",
            )
            .await
        }
    });
    futures::future::join_all(burst).await;
    let last = board
        .until(|e| match e {
            ServerEvent::Board(b) if b.queues[0].waiting == 300 => Some(b.clone()),
            _ => None,
        })
        .await;
    let elapsed = started.elapsed();
    assert!(last.queues[0].oldest_waiting_since_ms.is_some());
    let boards = board
        .seen
        .iter()
        .filter(|f| matches!(f.event, ServerEvent::Board(_)))
        .count();
    let bound = (elapsed.as_millis() / callcenter::ws::BOARD_INTERVAL.as_millis()) as usize + 3;
    assert!(boards <= bound, "{boards} board messages in {elapsed:?}");
    assert!(boards < 50, "{boards} board messages for 300 changes");

    // The agent going available shows on the board; with an offer pending
    // at capacity 1 they show as busy.
    desk.command(set_state(AgentState::Available, None)).await;
    let offer = desk
        .until(|e| match e {
            ServerEvent::Offer(o) => Some(o.clone()),
            _ => None,
        })
        .await;
    desk.command(Command::Accept {
        ticket_id: offer.ticket.id,
        version: offer.version,
    })
    .await;
    board
        .until(|e| match e {
            ServerEvent::Board(b)
                if b.teams[0].agents[0].state == AgentState::Available
                    && b.teams[0].agents[0].busy =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
}

/// The board's "answered today" and service level (the share answered
/// within the queue's 60 s): one answered at once, one after 61 s of
/// waiting; the next day starts from nothing.
async fn a_board_counts_todays_answers_within_the_service_level(app: TestApp) {
    use callcenter::clock::Clock;
    const DAY_MS: i64 = 86_400_000;
    // The story needs two minutes of one day (UTC).
    let to_midnight = DAY_MS - app.clock.now_ms().rem_euclid(DAY_MS);
    if to_midnight < 120_000 {
        app.clock.advance_ms(to_midnight);
    }
    let (queue, category) = app.queue("billing", &[], 300).await;
    let (_a, agent_token) = app.agent("mark", &[], 2).await;
    let (_s, supervisor) = app.user("sofia", "supervisor").await;
    let customer = app.customer("c-7").await;
    let mut board = app.socket(&supervisor).await;
    let subscribed = board
        .command(Command::Subscribe {
            queues: vec![queue],
            teams: vec![],
        })
        .await;
    assert_eq!(subscribed, ReplyResult::Ok { ticket: None });
    let mut desk = app.socket(&agent_token).await;
    desk.go_available().await;

    let answer = |offer: &callcenter_proto::ws::OfferDetails| Command::Accept {
        ticket_id: offer.ticket.id,
        version: offer.version,
    };
    app.complain(&app.admin_token, "sl-1", customer, category, "At once")
        .await;
    let first = desk.next_offer().await;
    desk.command(answer(&first)).await;
    app.complain(&app.admin_token, "sl-2", customer, category, "Waits")
        .await;
    let second = desk.next_offer().await;
    app.clock.advance_ms(61_000);
    let accepted = desk.command(answer(&second)).await;
    assert!(
        matches!(accepted, ReplyResult::Ok { ticket: Some(_) }),
        "{accepted:?}"
    );

    let today = board
        .until(|e| match e {
            ServerEvent::Board(b) if b.queues[0].answered_today == 2 => Some(b.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        today.queues[0].service_level_permille,
        Some(500),
        "{today:?}"
    );

    app.clock.advance_ms(DAY_MS);
    let tomorrow = board
        .until(|e| match e {
            ServerEvent::Board(b) if b.queues[0].answered_today == 0 => Some(b.clone()),
            _ => None,
        })
        .await;
    assert_eq!(tomorrow.queues[0].service_level_permille, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_resumes_on_another_node() {
    let Some(a) = support::spawn_app(Storage::Postgres, Live::Redis).await else {
        return;
    };
    let b = a.another_node().await;
    let (_q, category) = a.queue("billing", &[], 30).await;
    let (_agent, token) = a.agent("nina", &[], 1).await;
    let customer = a.customer("c-6").await;
    let mut on_a = a.socket(&token).await;
    on_a.command(set_state(AgentState::Available, None)).await;
    let first = a
        .complain(&a.admin_token, "x-1", customer, category, "One")
        .await;
    let offer = on_a.next_offer().await;
    on_a.command(Command::Accept {
        ticket_id: offer.ticket.id,
        version: offer.version,
    })
    .await;
    let last = on_a.last_seq();
    on_a.drop_connection().await;

    // While away, the agent's state changes (taken offline on disconnect).
    // The console reconnects to node B and resumes the same stream.
    let mut on_b = Socket::connect_from(&b.ws_url(), &token, Some(last)).await;
    assert!(on_b.snapshot.is_none());
    let event = on_b.next_event().await;
    assert_eq!(on_b.last_seq(), last + 1);
    assert!(
        matches!(
            event,
            ServerEvent::AgentStateChanged {
                state: AgentState::Offline,
                ..
            }
        ),
        "{event:?}"
    );
    let _ = first;
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_board_counts_the_teams_pending_approvals() {
    use compensation_fixtures as comp;
    let app = support::spawn_app(Storage::Sqlite, Live::Memory)
        .await
        .unwrap();
    comp::publish(&app, &app.admin_token, &comp::policy()).await;
    let (category, customer) = comp::care_desk(&app).await;
    let (_s, supervisor) = comp::supervisor(&app, "sofia").await;
    let holder = comp::agent_holding_ticket(&app, "olga", customer, category).await;
    let mut board = app.socket(&supervisor).await;
    let r = board
        .command(Command::Subscribe {
            queues: vec![],
            teams: vec!["care".into()],
        })
        .await;
    assert_eq!(r, ReplyResult::Ok { ticket: None });
    board
        .until(|e| match e {
            ServerEvent::Board(b) if b.teams[0].pending_approvals == 0 => Some(()),
            _ => None,
        })
        .await;
    // 50.00 is above an agent's 20.00 per grant: it waits for a supervisor.
    let asked = comp::ask(
        &app,
        &holder.token,
        "above-limit",
        &comp::credit(holder.ticket_id, 5000),
    )
    .await;
    assert!(asked.status.is_success(), "{}", asked.body);
    assert_eq!(asked.body["status"], "pending", "{}", asked.body);
    board
        .until(|e| match e {
            ServerEvent::Board(b) if b.teams[0].pending_approvals == 1 => Some(()),
            _ => None,
        })
        .await;
}
