//! This node's registry of open sockets, fed by the bus.
//!
//! Each socket has a bounded outgoing buffer. Delivering never waits: when a
//! socket's buffer is full its client cannot keep up, and it is closed with a
//! reason (it can resume from its last sequence number) rather than slowing
//! the hub, and every other client, down.

use crate::bus::{BusMessage, Recipient};
use callcenter_proto::Role;
use callcenter_proto::ws::{CLOSE_POLICY, ServerEvent};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A frame for a socket's writer.
#[derive(Debug)]
pub enum Outgoing {
    /// `seq` is the event's number in the user's stream (None: not a stream
    /// event). The event is shared by every socket it goes to.
    Event {
        seq: Option<u64>,
        event: Arc<ServerEvent>,
    },
}

/// Why the server closed a socket.
#[derive(Clone, Debug)]
pub struct CloseReason {
    pub code: u16,
    pub reason: String,
}

/// A board subscription: the queues and teams a supervisor watches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Subscription {
    pub queues: Vec<i64>,
    pub teams: Vec<String>,
}

/// The hub's handle on one socket.
struct Socket {
    user_id: i64,
    role: Role,
    session_id: String,
    tx: mpsc::Sender<Outgoing>,
    close: CancellationToken,
    reason: Arc<Mutex<Option<CloseReason>>>,
    subscription: Option<Subscription>,
    /// Fingerprint of the last board sent, to send only changes.
    last_board: Option<u64>,
}

/// What a connection task gets when it registers.
pub struct Registration {
    pub id: u64,
    pub rx: mpsc::Receiver<Outgoing>,
    pub close: CancellationToken,
    pub reason: Arc<Mutex<Option<CloseReason>>>,
}

/// Buffered outgoing frames per socket before it counts as too slow.
pub const OUTGOING_BUFFER: usize = 256;

#[derive(Default)]
pub struct Hub {
    next_id: AtomicU64,
    /// A std mutex: every critical section is a few map operations and never
    /// awaits, and delivery uses `try_send`, so the lock is never held long.
    sockets: Mutex<HashMap<u64, Socket>>,
    /// Sockets closed because their client could not keep up.
    slow_closed: AtomicU64,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Socket>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, user_id: i64, role: Role, session_id: &str) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(OUTGOING_BUFFER);
        let close = CancellationToken::new();
        let reason = Arc::new(Mutex::new(None));
        self.lock().insert(
            id,
            Socket {
                user_id,
                role,
                session_id: session_id.to_string(),
                tx,
                close: close.clone(),
                reason: reason.clone(),
                subscription: None,
                last_board: None,
            },
        );
        Registration {
            id,
            rx,
            close,
            reason,
        }
    }

    /// Forget a socket. Returns how many sockets its user still has here.
    pub fn unregister(&self, id: u64) -> usize {
        let mut sockets = self.lock();
        match sockets.remove(&id) {
            Some(s) => sockets.values().filter(|o| o.user_id == s.user_id).count(),
            None => 0,
        }
    }

    /// How many sockets were closed for not keeping up.
    pub fn slow_closed(&self) -> u64 {
        self.slow_closed.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an event for `to` would reach a socket of this node.
    pub fn reaches(&self, to: &Recipient) -> bool {
        self.lock().values().any(|s| wants(s, to))
    }

    /// Hand a bus message to the local sockets it is for.
    pub fn dispatch(&self, message: BusMessage) {
        let sockets = self.lock();
        match message {
            BusMessage::Deliver { to, seq, event } => {
                let event: Arc<ServerEvent> = Arc::from(event);
                for s in sockets.values().filter(|s| wants(s, &to)) {
                    if !offer(
                        s,
                        Outgoing::Event {
                            seq,
                            event: event.clone(),
                        },
                    ) {
                        self.slow_closed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            BusMessage::Revoke {
                user_id,
                session_id,
                reason,
            } => {
                for s in sockets.values().filter(|s| {
                    s.user_id == user_id
                        && session_id.as_ref().is_none_or(|sid| *sid == s.session_id)
                }) {
                    close(s, CLOSE_POLICY, &reason);
                }
            }
            BusMessage::Invalidate { .. } => {}
        }
    }

    /// Send a non-stream event to one socket.
    pub fn send(&self, id: u64, event: ServerEvent) {
        if let Some(s) = self.lock().get(&id) {
            offer(
                s,
                Outgoing::Event {
                    seq: None,
                    event: Arc::new(event),
                },
            );
        }
    }

    /// Close one socket with a reason.
    pub fn close(&self, id: u64, code: u16, reason: &str) {
        if let Some(s) = self.lock().get(&id) {
            close(s, code, reason);
        }
    }

    /// Close every socket (shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        for s in self.lock().values() {
            close(s, code, reason);
        }
    }

    /// Whether the user has a socket on this node.
    pub fn has_socket_of(&self, user_id: i64) -> bool {
        self.lock().values().any(|s| s.user_id == user_id)
    }

    /// The agents with a socket on this node.
    pub fn agents(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .lock()
            .values()
            .filter(|s| s.role == Role::Agent)
            .map(|s| s.user_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn set_subscription(&self, id: u64, subscription: Subscription) {
        if let Some(s) = self.lock().get_mut(&id) {
            s.subscription = Some(subscription);
            s.last_board = None;
        }
    }

    pub fn subscription(&self, id: u64) -> Option<Subscription> {
        self.lock().get(&id).and_then(|s| s.subscription.clone())
    }

    /// Every socket with a board subscription.
    pub fn boards(&self) -> Vec<(u64, Subscription)> {
        self.lock()
            .iter()
            .filter_map(|(id, s)| s.subscription.clone().map(|sub| (*id, sub)))
            .collect()
    }

    /// Send a board to a socket unless it already has these figures.
    pub fn send_board(&self, id: u64, fingerprint: u64, board: &Arc<ServerEvent>) -> bool {
        let mut sockets = self.lock();
        let Some(s) = sockets.get_mut(&id) else {
            return false;
        };
        if s.last_board == Some(fingerprint) {
            return false;
        }
        s.last_board = Some(fingerprint);
        offer(
            s,
            Outgoing::Event {
                seq: None,
                event: board.clone(),
            },
        );
        true
    }
}

/// Queue a frame for a socket; false when its buffer is full (the socket
/// is then being closed as too slow).
fn offer(s: &Socket, outgoing: Outgoing) -> bool {
    match s.tx.try_send(outgoing) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            let first = !s.close.is_cancelled();
            close(
                s,
                CLOSE_POLICY,
                "too slow: the outgoing buffer is full; reconnect and resume",
            );
            !first
        }
        Err(mpsc::error::TrySendError::Closed(_)) => true,
    }
}

fn wants(s: &Socket, to: &Recipient) -> bool {
    match to {
        Recipient::User { user_id } => s.user_id == *user_id,
        Recipient::Supervisors => matches!(s.role, Role::Supervisor | Role::Admin),
    }
}

fn close(s: &Socket, code: u16, reason: &str) {
    let mut slot = s.reason.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        *slot = Some(CloseReason {
            code,
            reason: reason.to_string(),
        });
    }
    s.close.cancel();
}
