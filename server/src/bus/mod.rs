//! Fan-out between server nodes: an event published on any node reaches the
//! sockets of its recipient on whichever node they are connected to.
//!
//! [`LocalBus`] serves the embedded default (one process); [`redis::RedisBus`]
//! carries messages over one Redis pub/sub channel shared by every node. Each
//! node has one [`Hub`](crate::ws::hub::Hub) that consumes its bus receiver
//! and hands events to the local sockets.

pub mod redis;

use async_trait::async_trait;
use callcenter_proto::ws::ServerEvent;
use serde::{Deserialize, Serialize};
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
    /// Send an event to the recipient's sockets.
    Deliver {
        to: Recipient,
        event: Box<ServerEvent>,
    },
    /// Close the user's sockets: logout (one session) or disable (all).
    Revoke {
        user_id: i64,
        session_id: Option<String>,
        reason: String,
    },
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publish to every node, this one included.
    async fn publish(&self, message: BusMessage) -> anyhow::Result<()>;
}

/// In-process bus: publishing hands the message straight to this node's hub.
pub struct LocalBus {
    tx: mpsc::UnboundedSender<BusMessage>,
}

impl LocalBus {
    /// The bus and the receiver the node's hub consumes.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<BusMessage>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, message: BusMessage) -> anyhow::Result<()> {
        // The hub lives as long as the server; a send error means shutdown.
        let _ = self.tx.send(message);
        Ok(())
    }
}
