//! One simulated supervisor watching the run's queues and team on a live
//! board, measuring board lag: an accept the agents saw succeed → the first
//! board whose `answered_today` counts it.

use crate::agent::hello;
use crate::setup::{Api, Login};
use crate::shared::{Shared, lock};
use crate::stats::record;
use callcenter_proto::ws::{ClientFrame, Command, ServerEvent, ServerFrame};
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub struct Supervisor {
    pub shared: Arc<Shared>,
    pub api: Api,
    pub login: Login,
    pub queues: Vec<i64>,
    pub team: String,
}

/// Where this supervisor's counting started: the board's answered total and
/// how many accepts the agents had seen at that moment.
struct Baseline {
    answered: u64,
    accepts: usize,
    counted: u64,
}

impl Supervisor {
    pub async fn run(self) {
        let mut stop = self.shared.stop.clone();
        let url = self.api.ws_url();
        let mut request = 0u64;
        loop {
            if *stop.borrow() {
                return;
            }
            let mut ws = match hello(&url, &self.login.access_token, None).await {
                Ok((ws, _, _)) => ws,
                Err(_) => {
                    self.shared.error("supervisor_connect");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            request += 1;
            let subscribe = ClientFrame::Command {
                request_id: format!("{}-{request}", self.login.username),
                command: Command::Subscribe {
                    queues: self.queues.clone(),
                    teams: vec![self.team.clone()],
                },
            };
            let Ok(text) = serde_json::to_string(&subscribe) else {
                return;
            };
            if ws.send(Message::Text(text.into())).await.is_err() {
                continue;
            }
            let mut baseline: Option<Baseline> = None;
            loop {
                tokio::select! {
                    message = ws.next() => match message {
                        Some(Ok(Message::Text(text))) => {
                            if let Some(command) = self.on_text(&text, &mut baseline) {
                                request += 1;
                                let frame = ClientFrame::Command {
                                    request_id: format!("{}-{request}", self.login.username),
                                    command,
                                };
                                let Ok(text) = serde_json::to_string(&frame) else { return };
                                if ws.send(Message::Text(text.into())).await.is_err() {
                                    break;
                                }
                            }
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                            self.shared.error("supervisor_socket_ended");
                            break;
                        }
                        Some(Ok(_)) => {}
                    },
                    _ = stop.changed() => if *stop.borrow() {
                        let _ = ws.close(None).await;
                        return;
                    },
                }
            }
        }
    }

    /// Take in one frame; returns a command to send, if any.
    fn on_text(&self, text: &str, baseline: &mut Option<Baseline>) -> Option<Command> {
        let Ok(frame) = serde_json::from_str::<ServerFrame>(text) else {
            return None;
        };
        match frame.event {
            ServerEvent::Board(board) => {
                let now = Instant::now();
                let answered: u64 = board.queues.iter().map(|q| q.answered_today).sum();
                let accepts = lock(&self.shared.accepts);
                lock(&self.shared.stats).boards += 1;
                match baseline {
                    None => {
                        *baseline = Some(Baseline {
                            answered,
                            accepts: accepts.len(),
                            counted: 0,
                        })
                    }
                    Some(b) => {
                        let shown = answered.saturating_sub(b.answered);
                        let mut stats = lock(&self.shared.stats);
                        while b.counted < shown {
                            let i = b.accepts + b.counted as usize;
                            let Some(at) = accepts.get(i) else { break };
                            record(&mut stats.board_lag, now.saturating_duration_since(*at));
                            b.counted += 1;
                        }
                    }
                }
            }
            ServerEvent::CompensationPending { request } => {
                self.shared.action("supervisor_decision");
                return Some(Command::DecideCompensation {
                    compensation_id: request.id,
                    approve: true,
                    note: "Approved: the parcel was very late".into(),
                });
            }
            ServerEvent::Reply {
                result: callcenter_proto::ws::ReplyResult::Error(e),
                ..
            } => {
                if e.code == callcenter_proto::ws::WsErrorCode::Conflict {
                    // Every supervisor of the team is told of a pending
                    // request and decides it; the one who came second is
                    // told it was decided already. That is the product
                    // working, not an error.
                    self.shared.action("supervisor_decision_already_made");
                } else {
                    self.shared
                        .error(format!("command:{:?}", e.code).to_lowercase());
                }
            }
            _ => {}
        }
        None
    }
}
