//! A real WebSocket console client (tokio-tungstenite) speaking the live
//! channel protocol with the typed messages from `callcenter-proto`.

use callcenter_proto::ws::{ClientFrame, Command, ReplyResult, ServerEvent, ServerFrame, Snapshot};
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Stream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for an event the server should send at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Socket {
    stream: Stream,
    next_request: u64,
    /// Every frame received, in order.
    pub seen: Vec<ServerFrame>,
    /// Events received while waiting for another one, not yet consumed.
    backlog: std::collections::VecDeque<ServerEvent>,
    /// The state the server sent when the connection opened.
    pub snapshot: Option<Snapshot>,
}

/// What ended a socket, as the client saw it.
#[derive(Debug)]
pub enum Ended {
    Closed(Option<CloseFrame>),
    Dropped,
}

impl Socket {
    /// Open a socket without saying hello.
    pub async fn open(url: &str) -> Stream {
        let (stream, _) = connect_async(url).await.expect("websocket connect");
        stream
    }

    /// Open a console and say hello; `resume_from` resumes a stream.
    pub async fn connect_from(url: &str, token: &str, resume_from: Option<u64>) -> Socket {
        let mut socket = Socket {
            stream: Self::open(url).await,
            next_request: 0,
            seen: Vec::new(),
            backlog: Default::default(),
            snapshot: None,
        };
        socket
            .send_frame(&ClientFrame::Hello {
                protocol: callcenter_proto::PROTOCOL_VERSION.into(),
                token: token.into(),
                resume_from,
            })
            .await;
        let welcome = socket.receive().await;
        let ServerEvent::Welcome { resumed, .. } = welcome else {
            panic!("expected welcome, got {welcome:?}")
        };
        if !resumed {
            match socket.receive().await {
                ServerEvent::Snapshot(snapshot) => socket.snapshot = Some(*snapshot),
                other => panic!("expected a snapshot, got {other:?}"),
            }
        }
        socket
    }

    pub async fn connect(url: &str, token: &str) -> Socket {
        Self::connect_from(url, token, None).await
    }

    /// The sequence number of the last frame received.
    pub fn last_seq(&self) -> u64 {
        self.seen.last().map(|f| f.seq).unwrap_or(0)
    }

    /// Close from the client side, as a console whose network drops.
    pub async fn drop_connection(mut self) {
        let _ = self.stream.close(None).await;
    }

    pub async fn send_frame(&mut self, frame: &ClientFrame) {
        let text = serde_json::to_string(frame).expect("frame");
        self.stream
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.to_string().into()))
            .await
            .expect("send");
    }

    /// The next server event (skipping pings), failing the test if none comes.
    pub async fn next_event(&mut self) -> ServerEvent {
        if let Some(event) = self.backlog.pop_front() {
            return event;
        }
        self.receive().await
    }

    async fn receive(&mut self) -> ServerEvent {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("no event from the server in time; seen: {:?}", self.seen)
                })
                .expect("socket ended")
                .expect("socket error");
            match message {
                Message::Text(text) => {
                    let frame: ServerFrame =
                        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
                    self.seen.push(frame.clone());
                    return frame.event;
                }
                Message::Close(frame) => panic!("socket closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The first event that matches, earlier ones included; the events
    /// passed over stay for later calls.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(&ServerEvent) -> Option<T>) -> T {
        if let Some(i) = self.backlog.iter().position(|e| pick(e).is_some()) {
            let event = self.backlog.remove(i).expect("index in range");
            return pick(&event).expect("matched before");
        }
        loop {
            let event = self.receive().await;
            if let Some(t) = pick(&event) {
                return t;
            }
            self.backlog.push_back(event);
        }
    }

    /// Send a command and wait for its reply.
    pub async fn command(&mut self, command: Command) -> ReplyResult {
        self.next_request += 1;
        // Unique per user: the server takes a repeated id as a retry.
        let request_id = format!("r{}-{}", self.next_request, uuid::Uuid::new_v4().simple());
        self.send_frame(&ClientFrame::Command {
            request_id: request_id.clone(),
            command,
        })
        .await;
        self.until(|e| match e {
            ServerEvent::Reply {
                request_id: id,
                result,
            } if *id == request_id => Some(result.clone()),
            _ => None,
        })
        .await
    }

    /// Agents: go available; the reply must be ok.
    pub async fn go_available(&mut self) {
        let reply = self
            .command(Command::SetState {
                state: callcenter_proto::AgentState::Available,
                reason: None,
            })
            .await;
        assert_eq!(reply, ReplyResult::Ok { ticket: None });
    }

    /// Agents: the next offer (earlier events stay for later calls).
    pub async fn next_offer(&mut self) -> callcenter_proto::ws::OfferDetails {
        self.until(|e| match e {
            ServerEvent::Offer(o) => Some(o.clone()),
            _ => None,
        })
        .await
    }

    /// Agents: the next offer is of `ticket_id`; accept it. Returns the
    /// ticket as the reply shows it (now the agent's).
    pub async fn accept_next_offer(&mut self, ticket_id: i64) -> callcenter_proto::http::Ticket {
        let offer = self.next_offer().await;
        assert_eq!(offer.ticket.id, ticket_id, "offered another ticket");
        match self
            .command(Command::Accept {
                ticket_id,
                version: offer.version,
            })
            .await
        {
            ReplyResult::Ok {
                ticket: Some(ticket),
            } => ticket,
            other => panic!("the accept was refused: {other:?}"),
        }
    }

    /// Agents: the next withdrawn offer, as (ticket, reason).
    pub async fn next_rescind(&mut self) -> (i64, String) {
        let (ticket_id, reason, _) = self.next_rescind_at().await;
        (ticket_id, reason)
    }

    /// Agents: the next withdrawn offer, as (ticket, reason, when).
    pub async fn next_rescind_at(&mut self) -> (i64, String, i64) {
        self.until(|e| match e {
            ServerEvent::OfferRescinded {
                ticket_id,
                reason,
                at_ms,
                ..
            } => Some((*ticket_id, reason.clone(), *at_ms)),
            _ => None,
        })
        .await
    }

    /// Wait for the server to end the connection.
    pub async fn ended(mut self) -> Ended {
        loop {
            match tokio::time::timeout(PATIENCE, self.stream.next()).await {
                Err(_) => panic!("the server did not close the socket"),
                Ok(None) | Ok(Some(Err(_))) => return Ended::Dropped,
                Ok(Some(Ok(Message::Close(frame)))) => return Ended::Closed(frame),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

/// The close code of an ended socket.
pub fn close_code(ended: &Ended) -> Option<u16> {
    match ended {
        Ended::Closed(Some(frame)) => Some(frame.code.into()),
        _ => None,
    }
}
