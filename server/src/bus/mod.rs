//! Fan-out between server nodes: an event published on any node reaches the
//! sockets of its recipient on whichever node they are connected to.
//!
//! [`LocalBus`] serves the embedded default (one process); [`redis::RedisBus`]
//! carries messages over one Redis pub/sub channel shared by every node. Each
//! node has one [`Hub`](crate::ws::hub::Hub) that consumes its bus receiver
//! and hands events to the local sockets.
//!
//! The bus also keeps each user's **stream**: events meant for a user are
//! numbered (one sequence per user, shared by all their consoles on every
//! node) and kept for a while, so a console that reconnects can be sent
//! exactly what it missed ([`Bus::since`]). And it remembers the reply to each
//! console command by request id, so that a repeated command has no second
//! effect ([`Bus::claim_request`]).

pub mod redis;
mod streams;

pub use streams::{Claim, MemoryStreams, STREAM_LEN, STREAM_TRIM_EVERY, Since};

use async_trait::async_trait;
use callcenter_proto::ws::ServerEvent;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::mpsc;

/// Who a bus message is for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recipient {
    /// Every socket of one user.
    User { user_id: i64 },
    /// Every socket of every supervisor and admin.
    Supervisors,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BusMessage {
    /// Send an event to the recipient's sockets; `seq` is its number in the
    /// user's stream when it is a stream event.
    Deliver {
        to: Recipient,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        event: Box<ServerEvent>,
    },
    /// Close the user's sockets: logout (one session) or disable (all).
    Revoke {
        user_id: i64,
        session_id: Option<String>,
        reason: String,
    },
    /// A node changed part of the directory: every node drops its cached
    /// copy (`store::cache`).
    Invalidate { scope: crate::store::cache::Scope },
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publish to every node, this one included, outside any user's stream.
    async fn publish(&self, message: BusMessage) -> anyhow::Result<()>;

    /// Append an event to the user's stream (the next number) and deliver it
    /// to the user's sockets on every node. Returns its number.
    async fn deliver(&self, user_id: i64, event: ServerEvent) -> anyhow::Result<u64>;

    /// The user's stream events numbered above `after`, in order, or
    /// [`Since::TooOld`] when some of them are no longer kept.
    async fn since(&self, user_id: i64, after: u64) -> anyhow::Result<Since>;

    /// An identifier of the shared live state's lifetime: it changes when
    /// that state is lost (Redis flushed or restarted empty), telling every
    /// node to rebuild the live queues from the record.
    async fn epoch(&self) -> anyhow::Result<String>;

    /// The number of the user's latest stream event (0 before the first).
    async fn position(&self, user_id: i64) -> anyhow::Result<u64>;

    /// Claim a console command's request id for this user: the first claim
    /// runs the command, later ones get its stored reply.
    async fn claim_request(&self, user_id: i64, request_id: &str) -> anyhow::Result<Claim>;

    /// Store the reply of a claimed command (JSON) for later repeats.
    async fn finish_request(
        &self,
        user_id: i64,
        request_id: &str,
        reply: &str,
    ) -> anyhow::Result<()>;

    /// Whether this node runs the deployment's periodic work (the desk's
    /// tick) for the next `term`: one node at a time holds this lease and
    /// renews it with each call; when it stops renewing (stopped, stuck or
    /// cut off) another node takes it over once `term` has passed.
    async fn lead(&self, term: Duration) -> anyhow::Result<bool>;

    /// Give the lease up at once, if this node holds it (a node shutting
    /// down), so that another node takes the periodic work over at its
    /// next tick.
    async fn step_down(&self) -> anyhow::Result<()>;

    /// This node's name: random per start, so a node that restarts is a new
    /// node (the record names it as the holder of its agents' connections).
    fn node(&self) -> &str;

    /// Say that this node is alive for the next `term` (every tick). Returns
    /// false when its previous word had lapsed before this one (the node
    /// was stuck or cut off longer than `term`, and the others may have
    /// taken it for dead meanwhile); true on the first beat.
    async fn beat(&self, term: Duration) -> anyhow::Result<bool>;

    /// Which of `nodes` are alive (said so within their term), in order.
    async fn alive(&self, nodes: &[String]) -> anyhow::Result<Vec<bool>>;
}

/// The names of the in-process buses alive in this process: in a real
/// deployment one (the embedded default is one node); tests start several
/// nodes in one process on one database. A std mutex: one set operation at
/// a time, never across an await.
static LOCAL_NODES: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<String>>> =
    std::sync::LazyLock::new(Default::default);

fn local_nodes() -> std::sync::MutexGuard<'static, std::collections::HashSet<String>> {
    LOCAL_NODES.lock().unwrap_or_else(|p| p.into_inner())
}

/// In-process bus: publishing hands the message straight to this node's hub.
pub struct LocalBus {
    tx: mpsc::UnboundedSender<BusMessage>,
    streams: MemoryStreams,
    node: String,
}

impl LocalBus {
    /// The bus and the receiver the node's hub consumes.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<BusMessage>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let node = uuid::Uuid::new_v4().simple().to_string();
        local_nodes().insert(node.clone());
        (
            Self {
                tx,
                streams: MemoryStreams::default(),
                node,
            },
            rx,
        )
    }
}

impl Drop for LocalBus {
    fn drop(&mut self) {
        local_nodes().remove(&self.node);
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, message: BusMessage) -> anyhow::Result<()> {
        // The hub lives as long as the server; a send error means shutdown.
        let _ = self.tx.send(message);
        Ok(())
    }

    async fn deliver(&self, user_id: i64, event: ServerEvent) -> anyhow::Result<u64> {
        // Numbered and handed to the hub under one lock, so the hub sees the
        // user's events in stream order.
        Ok(self.streams.append(user_id, event, |seq, event| {
            let _ = self.tx.send(BusMessage::Deliver {
                to: Recipient::User { user_id },
                seq: Some(seq),
                event: Box::new(event),
            });
        }))
    }

    async fn since(&self, user_id: i64, after: u64) -> anyhow::Result<Since> {
        Ok(self.streams.since(user_id, after))
    }

    async fn epoch(&self) -> anyhow::Result<String> {
        // In-process state lives and dies with this process.
        Ok("local".into())
    }

    async fn position(&self, user_id: i64) -> anyhow::Result<u64> {
        Ok(self.streams.position(user_id))
    }

    async fn claim_request(&self, user_id: i64, request_id: &str) -> anyhow::Result<Claim> {
        Ok(self.streams.claim(user_id, request_id))
    }

    async fn finish_request(
        &self,
        user_id: i64,
        request_id: &str,
        reply: &str,
    ) -> anyhow::Result<()> {
        self.streams.finish(user_id, request_id, reply);
        Ok(())
    }

    async fn lead(&self, _term: Duration) -> anyhow::Result<bool> {
        // In-process live state has one node.
        Ok(true)
    }

    async fn step_down(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn node(&self) -> &str {
        &self.node
    }

    async fn beat(&self, _term: Duration) -> anyhow::Result<bool> {
        Ok(true)
    }

    async fn alive(&self, nodes: &[String]) -> anyhow::Result<Vec<bool>> {
        // A name in the record that is not a node of this process is an
        // earlier run of it (stopped without a word: a restart after a crash).
        let here = local_nodes();
        Ok(nodes.iter().map(|n| here.contains(n)).collect())
    }
}
