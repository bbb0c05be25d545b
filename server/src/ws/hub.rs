//! This node's registry of open sockets, fed by the bus.
//!
//! Each socket has a bounded outgoing buffer. Delivering never waits: when a
//! socket's buffer is full its client cannot keep up, and it is closed with a
//! reason rather than slowing the hub (and every other client) down.

use crate::bus::{BusMessage, Recipient};
use callcenter_proto::Role;
use callcenter_proto::ws::{CLOSE_POLICY, ServerEvent};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Frames a socket's writer sends.
#[derive(Debug)]
pub enum Outgoing {
    /// Shared by every socket the event goes to: serialized per socket,
    /// never copied.
    Event(Arc<ServerEvent>),
}

/// Why the server closed a socket.
#[derive(Clone, Debug)]
pub struct CloseReason {
    pub code: u16,
    pub reason: String,
}

/// The hub's handle on one socket.
struct Socket {
    user_id: i64,
    role: Role,
    session_id: String,
    tx: mpsc::Sender<Outgoing>,
    close: CancellationToken,
    reason: Arc<Mutex<Option<CloseReason>>>,
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

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hand a bus message to the local sockets it is for.
    pub fn dispatch(&self, message: BusMessage) {
        let sockets = self.lock();
        match message {
            BusMessage::Deliver { to, event } => {
                let event: Arc<ServerEvent> = Arc::from(event);
                for s in sockets.values().filter(|s| wants(s, &to)) {
                    match s.tx.try_send(Outgoing::Event(event.clone())) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => close(
                            s,
                            CLOSE_POLICY,
                            "too slow: the outgoing buffer is full; reconnect to resume",
                        ),
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
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
        }
    }

    /// Close every socket (shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        for s in self.lock().values() {
            close(s, code, reason);
        }
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
