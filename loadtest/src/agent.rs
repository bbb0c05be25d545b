//! One simulated agent: a real WebSocket console that goes available, answers
//! offers after a think time (accepting, declining or missing a share of
//! them), works tickets for a sampled time, resolves them with an outcome,
//! and, for a share of agents, drops its connection once and resumes.

use crate::setup::{Api, Login};
use crate::shared::{Shared, lock, now_ms};
use crate::stats::record;
use callcenter_proto::http::Outcome;
use callcenter_proto::ws::{
    ClientFrame, Command, OfferDetails, ReplyResult, ServerEvent, ServerFrame, Snapshot,
};
use callcenter_proto::{AgentState, TicketStatus};
use futures::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a client waits for the server's welcome.
const WELCOME_WAIT: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
enum Action {
    Accept {
        ticket: i64,
        version: u64,
    },
    Decline {
        ticket: i64,
        version: u64,
    },
    Note {
        ticket: i64,
    },
    Resolve {
        ticket: i64,
    },
    /// Back to available after the server took the agent away (missed
    /// offers in a row, a disconnect seen late).
    Available,
}

struct Pending {
    command: Command,
    sent: Instant,
}

/// Connect and say hello; returns the socket and whether the server resumed
/// the stream from `resume_from`.
pub async fn hello(
    url: &str,
    token: &str,
    resume_from: Option<u64>,
) -> anyhow::Result<(Ws, bool, Vec<String>)> {
    // Like a browser: no Nagle delay on small frames. A 4 KiB read buffer:
    // tungstenite zero-fills the whole buffer on every read, and its 128 KiB
    // default made the harness spend a tenth of its CPU in memset.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let connect = connect_async_with_config(url, Some(config), true);
    let (mut ws, _) = tokio::time::timeout(WELCOME_WAIT, connect)
        .await
        .map_err(|_| anyhow::anyhow!("connect timed out"))??;
    let hello = ClientFrame::Hello {
        protocol: callcenter_proto::PROTOCOL_VERSION.into(),
        token: token.into(),
        resume_from,
    };
    ws.send(Message::Text(serde_json::to_string(&hello)?.into()))
        .await?;
    // Frames after the welcome that arrived while waiting for it.
    let mut early = Vec::new();
    let resumed = tokio::time::timeout(WELCOME_WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(ServerFrame {
                        event: ServerEvent::Welcome { resumed, .. },
                        ..
                    }) = serde_json::from_str::<ServerFrame>(&text)
                    {
                        return Ok(resumed);
                    }
                    early.push(text.to_string());
                }
                Some(Ok(Message::Close(frame))) => {
                    anyhow::bail!("closed at hello: {frame:?}")
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("closed at hello"),
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("no welcome in time"))??;
    Ok((ws, resumed, early))
}

/// Rescinds of offers not read yet that an agent remembers (the offer, when
/// it comes late, follows within milliseconds).
const RESCINDS_KEPT: usize = 64;

pub struct Agent {
    shared: Arc<Shared>,
    api: Api,
    login: Login,
    capacity: usize,
    rng: StdRng,
    drop_at: Option<Instant>,
    offers: HashMap<i64, (u64, i64)>,
    /// Offers (ticket, version) rescinded before this agent read them: the
    /// server's offer and its rescind reach the stream in either order (the
    /// rescind can be written while the offer's delivery still reads the
    /// customer's card), and an offer whose rescind came first is void.
    rescinded_unseen: VecDeque<(i64, u64)>,
    held: HashSet<i64>,
    /// Offers judged once unanswered accepts are answered.
    capacity_doubts: crate::checks::CapacityDoubts,
    pending: BTreeMap<String, Pending>,
    actions: BTreeMap<(Instant, u64), Action>,
    outbox: Vec<ClientFrame>,
    last_seq: Option<u64>,
    /// When this agent's current connection replaced a dropped one.
    reconnected_at_ms: Option<i64>,
    next_id: u64,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
}

enum Ended {
    Stop,
    Reconnect(String),
}

impl Agent {
    pub fn new(
        shared: Arc<Shared>,
        api: Api,
        login: Login,
        capacity: u32,
        seed: u64,
        drop_at: Option<Instant>,
        ready: tokio::sync::oneshot::Sender<()>,
    ) -> Agent {
        Agent {
            shared,
            api,
            login,
            capacity: capacity as usize,
            rng: StdRng::seed_from_u64(seed),
            drop_at,
            offers: HashMap::new(),
            rescinded_unseen: VecDeque::new(),
            held: HashSet::new(),
            capacity_doubts: Default::default(),
            pending: BTreeMap::new(),
            actions: BTreeMap::new(),
            outbox: Vec::new(),
            last_seq: None,
            reconnected_at_ms: None,
            next_id: 0,
            ready: Some(ready),
        }
    }

    fn id(&self) -> i64 {
        self.login.user_id
    }

    fn exp(&mut self, mean_ms: f64) -> Duration {
        let u: f64 = self.rng.random();
        Duration::from_secs_f64(-mean_ms.max(0.0) * (1.0 - u).ln() / 1000.0)
    }

    fn schedule(&mut self, after: Duration, action: Action) {
        self.next_id += 1;
        self.actions
            .insert((Instant::now() + after, self.next_id), action);
    }

    fn command(&mut self, command: Command) {
        self.next_id += 1;
        let request_id = format!("{}-{}", self.login.username, self.next_id);
        self.pending.insert(
            request_id.clone(),
            Pending {
                command: command.clone(),
                sent: Instant::now(),
            },
        );
        self.outbox.push(ClientFrame::Command {
            request_id,
            command,
        });
    }

    /// Connect, retrying; refreshes the access token when it is refused.
    async fn connect(&mut self) -> Option<Ws> {
        let url = self.api.ws_url();
        let mut attempt = 0u32;
        loop {
            if *self.shared.stop.borrow() {
                return None;
            }
            match hello(&url, &self.login.access_token, self.last_seq).await {
                Ok((ws, resumed, early)) => {
                    if self.last_seq.is_some() && !resumed {
                        lock(&self.shared.stats).resume_snapshots += 1;
                    }
                    for text in early {
                        self.on_text(&text);
                    }
                    return Some(ws);
                }
                Err(e) => {
                    attempt += 1;
                    self.shared.error("connect");
                    if e.to_string().contains("1008") || attempt.is_multiple_of(3) {
                        match self.api.refresh(&self.login.refresh_token).await {
                            Ok(pair) => {
                                self.login.access_token = pair.access_token;
                                self.login.refresh_token = pair.refresh_token;
                            }
                            Err(_) => self.shared.error("token_refresh"),
                        }
                    }
                    if attempt > 20 {
                        self.shared.error("agent_gave_up");
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
            }
        }
    }

    pub async fn run(mut self) {
        let Some(mut ws) = self.connect().await else {
            return;
        };
        self.command(Command::SetState {
            state: AgentState::Available,
            reason: None,
        });
        let mut stop = self.shared.stop.clone();
        loop {
            let ended = self.session(&mut ws, &mut stop).await;
            match ended {
                Ended::Stop => {
                    let _ = ws.close(None).await;
                    let unanswered = self.capacity_doubts.settle();
                    self.count_capacity_violations(unanswered);
                    return;
                }
                Ended::Reconnect(why) => {
                    lock(&self.shared.stats).reconnects += 1;
                    if why != "planned" {
                        self.shared.error(format!("socket_ended:{why}"));
                    }
                    drop(ws);
                    let offers: Vec<i64> = self.offers.keys().copied().collect();
                    lock(&self.shared.tickets).dropped_offers(self.id(), offers);
                    tokio::time::sleep(self.shared.behaviour.reconnect_delay).await;
                    let Some(next) = self.connect().await else {
                        return;
                    };
                    ws = next;
                    self.reconnected_at_ms = Some(now_ms());
                    // Unanswered commands again, with the same request ids:
                    // the server answers a repeat with the first reply.
                    for (request_id, p) in &self.pending {
                        self.outbox.push(ClientFrame::Command {
                            request_id: request_id.clone(),
                            command: p.command.clone(),
                        });
                    }
                    self.command(Command::SetState {
                        state: AgentState::Available,
                        reason: None,
                    });
                }
            }
        }
    }

    async fn session(
        &mut self,
        ws: &mut Ws,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Ended {
        loop {
            if let Err(e) = self.flush(ws).await {
                return Ended::Reconnect(format!("send: {e}"));
            }
            if *stop.borrow() {
                return Ended::Stop;
            }
            let far = Instant::now() + Duration::from_secs(3600);
            let next_action = self.actions.keys().next().map(|k| k.0).unwrap_or(far);
            let drop_at = self.drop_at.unwrap_or(far);
            tokio::select! {
                message = ws.next() => match message {
                    Some(Ok(Message::Text(text))) => self.on_text(&text),
                    Some(Ok(Message::Close(frame))) => {
                        return Ended::Reconnect(format!(
                            "closed {}",
                            frame.map(|f| u16::from(f.code)).unwrap_or(0)
                        ));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Ended::Reconnect("dropped".into()),
                },
                _ = tokio::time::sleep_until(next_action.into()) => self.run_due_actions(),
                _ = tokio::time::sleep_until(drop_at.into()) => {
                    self.drop_at = None;
                    return Ended::Reconnect("planned".into());
                }
                _ = stop.changed() => {}
            }
        }
    }

    async fn flush(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        for frame in self.outbox.drain(..) {
            ws.feed(Message::Text(serde_json::to_string(&frame)?.into()))
                .await?;
        }
        ws.flush().await?;
        Ok(())
    }

    fn run_due_actions(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.actions.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let action = entry.remove();
            self.act(action);
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Accept { ticket, version } => {
                if self.offers.get(&ticket).is_some_and(|o| o.0 == version) {
                    self.offers.remove(&ticket);
                    self.held.insert(ticket);
                    self.shared.action("accept");
                    self.command(Command::Accept {
                        ticket_id: ticket,
                        version,
                    });
                }
            }
            Action::Decline { ticket, version } => {
                if self.offers.get(&ticket).is_some_and(|o| o.0 == version) {
                    self.offers.remove(&ticket);
                    lock(&self.shared.tickets).released(ticket, self.id());
                    self.shared.action("decline");
                    self.command(Command::Decline {
                        ticket_id: ticket,
                        version,
                    });
                }
            }
            Action::Note { ticket } => {
                if self.held.contains(&ticket) {
                    self.shared.action("note");
                    self.command(Command::Note {
                        ticket_id: ticket,
                        text: "Customer called about the same order; checked the history".into(),
                    });
                }
            }
            Action::Available => {
                self.command(Command::SetState {
                    state: AgentState::Available,
                    reason: None,
                });
            }
            Action::Resolve { ticket } => {
                if self.held.remove(&ticket) {
                    lock(&self.shared.tickets).released(ticket, self.id());
                    self.shared.action("resolve");
                    let solved =
                        self.rng.random::<f64>() >= self.shared.behaviour.unresolved_fraction;
                    self.command(Command::Resolve {
                        ticket_id: ticket,
                        outcome: Outcome {
                            code: if solved { "refund_issued" } else { "escalated" }.into(),
                            resolved: solved,
                            note: String::new(),
                        },
                    });
                }
            }
        }
    }

    fn on_text(&mut self, text: &str) {
        let frame = match serde_json::from_str::<ServerFrame>(text) {
            Ok(frame) => frame,
            Err(_) => {
                // A frame type this harness does not know (a newer server):
                // keep the stream position if it is the next event.
                let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
                let kind = value["type"].as_str().unwrap_or("?").to_string();
                if let (Some(seq), Some(last)) = (value["seq"].as_u64(), self.last_seq)
                    && (last == 0 || seq == last + 1)
                {
                    self.last_seq = Some(seq);
                }
                self.shared.error(format!("unknown_frame:{kind}"));
                return;
            }
        };
        let stream_event = !matches!(
            frame.event,
            ServerEvent::Welcome { .. }
                | ServerEvent::Reply { .. }
                | ServerEvent::Snapshot(_)
                | ServerEvent::Board(_)
                | ServerEvent::Error(_)
        );
        if stream_event {
            match self.last_seq {
                Some(last) if frame.seq <= last => {
                    // Already processed (a replay overlapping what we had).
                    return;
                }
                // Position 0: the user's stream had no event yet, so the
                // first one may carry any number.
                Some(last) if last > 0 && frame.seq > last + 1 => {
                    let mut t = lock(&self.shared.tickets);
                    t.resume_gaps += 1;
                    drop(t);
                    lock(&self.shared.stats).example(format!(
                        "agent {} missed events {}..{}",
                        self.id(),
                        last + 1,
                        frame.seq - 1
                    ));
                }
                _ => {}
            }
            self.last_seq = Some(frame.seq);
        }
        match frame.event {
            ServerEvent::Offer(details) => self.on_offer(details, true),
            ServerEvent::OfferRescinded {
                ticket_id,
                version,
                at_ms,
                ..
            } => {
                // The offer was still open, or our accept of it is still
                // unanswered (sent before a reconnect, say): either way the
                // claim ends here, and that accept can only fail.
                let open = self.offers.get(&ticket_id).is_some_and(|o| o.0 == version);
                let accepting = self.held.contains(&ticket_id)
                    && self.pending.values().any(|p| {
                        matches!(p.command, Command::Accept { ticket_id: t, version: v }
                            if t == ticket_id && v == version)
                    });
                if open || accepting {
                    self.offers.remove(&ticket_id);
                    self.held.remove(&ticket_id);
                    lock(&self.shared.tickets).released(ticket_id, self.id());
                } else if !self.offers.contains_key(&ticket_id) && !self.held.contains(&ticket_id) {
                    // Not read yet (or already let go): its offer, should it
                    // follow, is void.
                    if self.rescinded_unseen.len() >= RESCINDS_KEPT {
                        self.rescinded_unseen.pop_front();
                    }
                    self.rescinded_unseen.push_back((ticket_id, version));
                }
                // Whether an offer of the ticket to someone else, read
                // first, came after this rescind (also when this agent had
                // already let the offer go, a decline crossing the rescind).
                let verdict = lock(&self.shared.tickets).rescinded(ticket_id, self.id(), at_ms);
                if let crate::checks::Verdict::Double(what) = verdict {
                    lock(&self.shared.stats).example(what);
                }
            }
            ServerEvent::Snapshot(snapshot) => {
                self.last_seq = Some(frame.seq);
                self.on_snapshot(*snapshot);
            }
            ServerEvent::Reply { request_id, result } => self.on_reply(&request_id, result),
            ServerEvent::AgentStateChanged { state, .. } => {
                let asking = self.pending.values().any(|p| {
                    matches!(
                        p.command,
                        Command::SetState {
                            state: AgentState::Available,
                            ..
                        }
                    )
                });
                if state != AgentState::Available && !asking {
                    self.shared.error(format!("taken_away:{}", state.as_str()));
                    self.schedule(Duration::from_millis(200), Action::Available);
                }
            }
            ServerEvent::TicketUpdated { ticket } => {
                // A ticket taken back (the agent stayed away past the
                // reconnect grace) or cancelled: the console drops it, as
                // the agent's view must.
                let still_mine = ticket.status == TicketStatus::Assigned
                    && ticket.assigned_agent_id == Some(self.id());
                if !still_mine && self.held.remove(&ticket.id) {
                    lock(&self.shared.tickets).released(ticket.id, self.id());
                    self.shared.action("ticket_taken_back");
                }
            }
            ServerEvent::Error(e) => self.shared.error(format!("error_frame:{:?}", e.code)),
            _ => {}
        }
    }

    fn on_offer(&mut self, details: OfferDetails, fresh: bool) {
        let now = Instant::now();
        let wall = now_ms();
        let ticket = details.ticket.id;
        if let Some(i) = self
            .rescinded_unseen
            .iter()
            .position(|r| *r == (ticket, details.version))
        {
            self.rescinded_unseen.remove(i);
            self.shared.action("offer_after_its_rescind");
            return;
        }
        if self.held.contains(&ticket) || self.offers.contains_key(&ticket) {
            if self
                .offers
                .get(&ticket)
                .is_none_or(|o| o.0 != details.version)
            {
                self.offers
                    .insert(ticket, (details.version, details.deadline_ms));
            }
            return;
        }
        self.offers.retain(|_, (_, deadline)| *deadline > wall);
        // An offer made before this connection replaced a dropped one comes
        // from the resumed stream: whether it is still open shows only
        // further on in that replay (its rescind may follow), so it claims
        // nothing yet; accepting it does (`Tickets::accepted`).
        // When the server sent it (no earlier than it was made), or, from a
        // server that does not say, when its deadline says it was made.
        let offered_at = if details.sent_at_ms > 0 {
            details.sent_at_ms
        } else {
            details.deadline_ms - self.shared.behaviour.offer_timeout_ms
        };
        let replayed = self.reconnected_at_ms.is_some_and(|r| offered_at < r);
        let in_use = self.offers.len() + self.held.len();
        let mut violations = Vec::new();
        if !replayed && in_use >= self.capacity {
            let what = format!(
                "agent {} offered ticket {ticket} while holding {in_use} of capacity {} \
                 (offers {:?} with ms left, held {:?}{})",
                self.id(),
                self.capacity,
                self.offers
                    .iter()
                    .map(|(t, (_, d))| (*t, d - wall))
                    .collect::<Vec<_>>(),
                self.held,
                if self.reconnected_at_ms.is_some() {
                    ", reconnected"
                } else {
                    ""
                }
            );
            let accepting = self.unanswered_accepts();
            match self
                .capacity_doubts
                .offered(in_use, self.capacity, accepting, what)
            {
                Some(what) => {
                    lock(&self.shared.tickets).capacity_violations += 1;
                    violations.push(what);
                }
                // Judged when the accepts are answered.
                None => self.shared.action("offer_while_accepting"),
            }
        }
        if replayed {
            lock(&self.shared.tickets).offered_once.insert(ticket);
        } else if let crate::checks::Verdict::Double(what) = lock(&self.shared.tickets).offered(
            ticket,
            self.id(),
            offered_at,
            details.deadline_ms,
            wall,
        ) {
            violations.push(what);
        }
        let number = self.shared.complaint_number(&details.ticket.description);
        let sent = number.and_then(|n| lock(&self.shared.sent).remove(&n));
        {
            let mut stats = lock(&self.shared.stats);
            stats.offers += 1;
            for v in violations {
                stats.example(v);
            }
            if let Some(sent) = sent.filter(|_| fresh) {
                let latency = now.saturating_duration_since(sent);
                record(&mut stats.offer_latency, latency);
                record(&mut stats.second(now).offers, latency);
            }
        }
        self.offers
            .insert(ticket, (details.version, details.deadline_ms));
        let version = details.version;
        if self.shared.draining() {
            self.schedule(Duration::ZERO, Action::Accept { ticket, version });
            return;
        }
        let b = self.shared.behaviour.clone();
        let roll: f64 = self.rng.random();
        let think = self.exp(b.think_ms);
        if roll < b.decline_fraction {
            self.schedule(think, Action::Decline { ticket, version });
        } else if roll < b.decline_fraction + b.miss_fraction {
            // Missed: the offer expires and goes to someone else.
            self.shared.action("miss");
        } else {
            self.schedule(think, Action::Accept { ticket, version });
        }
    }

    /// Held tickets whose accepts are not answered yet.
    fn unanswered_accepts(&self) -> Vec<i64> {
        self.pending
            .values()
            .filter_map(|p| match p.command {
                Command::Accept { ticket_id, .. } if self.held.contains(&ticket_id) => {
                    Some(ticket_id)
                }
                _ => None,
            })
            .collect()
    }

    fn count_capacity_violations(&self, violations: Vec<String>) {
        if violations.is_empty() {
            return;
        }
        lock(&self.shared.tickets).capacity_violations += violations.len() as u64;
        let mut stats = lock(&self.shared.stats);
        for v in violations {
            stats.example(v);
        }
    }

    fn on_snapshot(&mut self, snapshot: Snapshot) {
        let offered: HashSet<i64> = snapshot
            .pending_offers
            .iter()
            .map(|o| o.ticket.id)
            .collect();
        let gone: Vec<i64> = self
            .offers
            .keys()
            .filter(|t| !offered.contains(t))
            .copied()
            .collect();
        for t in gone {
            self.offers.remove(&t);
            lock(&self.shared.tickets).released(t, self.id());
        }
        for offer in snapshot.pending_offers {
            self.on_offer(offer, false);
        }
        let resolving: HashSet<i64> = self
            .pending
            .values()
            .filter_map(|p| match p.command {
                Command::Resolve { ticket_id, .. } => Some(ticket_id),
                _ => None,
            })
            .collect();
        for ticket in snapshot.assigned {
            if !self.held.contains(&ticket.id) && !resolving.contains(&ticket.id) {
                self.held.insert(ticket.id);
                lock(&self.shared.tickets).accepted(ticket.id, self.id());
                let handle = self.exp(self.shared.behaviour.handle_ms);
                self.schedule(handle, Action::Resolve { ticket: ticket.id });
            }
        }
    }

    fn on_reply(&mut self, request_id: &str, result: ReplyResult) {
        let Some(pending) = self.pending.remove(request_id) else {
            return;
        };
        let now = Instant::now();
        let error = match &result {
            ReplyResult::Ok { .. } => None,
            ReplyResult::Error(e) => Some(format!("{:?}", e.code).to_lowercase()),
        };
        match pending.command {
            Command::SetState { .. } => {
                if let Some(e) = error {
                    self.shared.error(format!("set_state:{e}"));
                } else if let Some(ready) = self.ready.take() {
                    let _ = ready.send(());
                }
            }
            Command::Accept { ticket_id, .. } => match error {
                None => {
                    let above = self.capacity_doubts.answered(ticket_id, true);
                    self.count_capacity_violations(above);
                    record(&mut lock(&self.shared.stats).accept_rtt, now - pending.sent);
                    lock(&self.shared.accepts).push(now);
                    if let crate::checks::Verdict::Double(what) =
                        lock(&self.shared.tickets).accepted(ticket_id, self.id())
                    {
                        lock(&self.shared.stats).example(what);
                    }
                    let b = self.shared.behaviour.clone();
                    let handle = if self.shared.draining() {
                        self.exp(b.handle_ms).min(Duration::from_millis(50))
                    } else {
                        self.exp(b.handle_ms)
                    };
                    if !self.shared.draining() && self.rng.random::<f64>() < b.note_fraction {
                        self.schedule(handle / 2, Action::Note { ticket: ticket_id });
                    }
                    self.schedule(handle, Action::Resolve { ticket: ticket_id });
                    if !self.shared.draining() && self.rng.random::<f64>() < b.compensation_fraction
                    {
                        let amount = if self.rng.random::<f64>() < 0.33 {
                            crate::compensation::AGENT_LIMIT_MINOR * 3
                        } else {
                            crate::compensation::AGENT_LIMIT_MINOR / 4
                        };
                        crate::compensation::ask(
                            self.shared.clone(),
                            self.api.clone(),
                            self.login.access_token.clone(),
                            ticket_id,
                            amount,
                        );
                    }
                }
                Some(e) => {
                    self.held.remove(&ticket_id);
                    lock(&self.shared.tickets).released(ticket_id, self.id());
                    self.capacity_doubts.answered(ticket_id, false);
                    self.shared.error(format!("accept:{e}"));
                }
            },
            Command::Resolve { ticket_id, .. } => match error {
                None => {
                    lock(&self.shared.tickets).resolved(ticket_id, self.id());
                    let in_window = self.shared.in_window(now);
                    let mut stats = lock(&self.shared.stats);
                    stats.second(now).resolved += 1;
                    if in_window {
                        stats.resolved_in_window += 1;
                    }
                }
                Some(e) => {
                    self.shared.error(format!("resolve:{e}"));
                    if e == "internal" {
                        // The server failed: try again, the ticket is still ours.
                        self.held.insert(ticket_id);
                        self.schedule(
                            Duration::from_millis(200),
                            Action::Resolve { ticket: ticket_id },
                        );
                    }
                }
            },
            Command::Decline { .. } => {
                if let Some(e) = error {
                    self.shared.error(format!("decline:{e}"));
                }
            }
            Command::Note { .. } => {
                if let Some(e) = error {
                    self.shared.error(format!("note:{e}"));
                }
            }
            _ => {
                if let Some(e) = error {
                    self.shared.error(format!("command:{e}"));
                }
            }
        }
    }
}
