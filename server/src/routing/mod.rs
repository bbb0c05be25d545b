//! Live routing state: which tickets wait in which queue, which agents are
//! ready for offers, and which offers are pending.
//!
//! The database is the system of record; this layer is a fast, rebuildable
//! index of the live part. Two implementations give the same semantics:
//! [`memory::MemoryRouting`] (one process, the embedded default) and
//! [`redis::RedisRouting`] (shared by every server node; atomic Lua scripts,
//! keys hash-tagged per queue so multi-key scripts touch one cluster slot).
//!
//! Invariants every implementation keeps:
//! - a ticket is in at most one place: waiting in its queue, or offered to
//!   exactly one agent;
//! - an agent never holds more offers + assigned tickets than its capacity;
//! - an offer is settled once: by accept, decline, expiry, cancel or the
//!   agent going away, whichever comes first; later attempts see `OfferGone`;
//! - waiting tickets are served lowest `rank_ms` first (ties: lowest ticket id).

pub mod memory;
pub mod redis;

use async_trait::async_trait;

pub type TicketId = i64;
pub type AgentId = i64;
pub type QueueId = i64;

/// A ticket waiting in a queue. `rank_ms` orders the line: the moment it
/// entered minus its priority head start, so a higher priority is served
/// sooner and every ticket still rises as it waits (aging).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitingTicket {
    pub ticket_id: TicketId,
    pub queue_id: QueueId,
    pub rank_ms: i64,
}

/// One ticket proposed to one agent until `deadline_ms`. `version` is the
/// fencing token an accept or decline must present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    pub ticket_id: TicketId,
    pub queue_id: QueueId,
    pub agent_id: AgentId,
    pub version: u64,
    pub deadline_ms: i64,
    pub rank_ms: i64,
}

/// An agent ready to take tickets from `queues`, up to `capacity` at once,
/// already holding the `assigned` tickets (from the database, the record).
/// Agents who waited longest since their last ticket (`idle_since_ms`) are
/// offered first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyAgent {
    pub agent_id: AgentId,
    pub queues: Vec<QueueId>,
    pub capacity: u32,
    pub assigned: Vec<TicketId>,
    pub idle_since_ms: i64,
}

/// Why an accept or decline found no offer to settle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OfferGone {
    #[error("the offer has expired, been rescinded or settled")]
    NoOffer,
    #[error("the offer version is stale: the ticket was offered again since")]
    StaleVersion,
}

#[async_trait]
pub trait Routing: Send + Sync + 'static {
    /// Put a ticket in its queue's line (or move it, if already waiting).
    async fn enqueue(&self, ticket: WaitingTicket) -> anyhow::Result<()>;

    /// The agent is ready for offers; replaces any earlier readiness.
    async fn agent_ready(&self, agent: ReadyAgent) -> anyhow::Result<()>;

    /// The agent takes no new offers (break, offline, disconnect). Pending
    /// offers are rescinded and their tickets go back to their line at their
    /// rank; the rescinded offers are returned. Assigned tickets stay counted.
    async fn agent_away(&self, agent_id: AgentId) -> anyhow::Result<Vec<Offer>>;

    /// Pair waiting tickets of `queue_id` with ready agents that have free
    /// capacity, longest idle first, until one side runs out. Returns the new
    /// offers, each due at `now_ms + offer_timeout_ms`.
    async fn dispatch(
        &self,
        queue_id: QueueId,
        now_ms: i64,
        offer_timeout_ms: i64,
    ) -> anyhow::Result<Vec<Offer>>;

    /// Settle the agent's offer as accepted: the ticket is now assigned and
    /// keeps counting against the agent's capacity until [`Routing::release`].
    async fn accept(
        &self,
        agent_id: AgentId,
        ticket_id: TicketId,
        version: u64,
        now_ms: i64,
    ) -> anyhow::Result<Result<Offer, OfferGone>>;

    /// Settle the agent's offer as declined: the ticket goes back to its line.
    async fn decline(
        &self,
        agent_id: AgentId,
        ticket_id: TicketId,
        version: u64,
    ) -> anyhow::Result<Result<Offer, OfferGone>>;

    /// Settle every offer of `queue_id` whose deadline has passed; their
    /// tickets go back to the line. Returns the expired offers.
    async fn expire(&self, queue_id: QueueId, now_ms: i64) -> anyhow::Result<Vec<Offer>>;

    /// An assigned ticket ended: the agent's capacity is freed and, if still
    /// ready, the agent's idle time starts at `now_ms`.
    async fn release(
        &self,
        agent_id: AgentId,
        ticket_id: TicketId,
        now_ms: i64,
    ) -> anyhow::Result<()>;

    /// Remove a ticket from its line or rescind its offer. Returns the
    /// rescinded offer, if there was one.
    async fn cancel(&self, queue_id: QueueId, ticket_id: TicketId)
    -> anyhow::Result<Option<Offer>>;

    /// The waiting tickets of a queue, in the order they will be served.
    async fn waiting(&self, queue_id: QueueId) -> anyhow::Result<Vec<TicketId>>;

    /// The pending offers of a queue.
    async fn offers(&self, queue_id: QueueId) -> anyhow::Result<Vec<Offer>>;

    /// Whether the live state is reachable (for `/readyz`).
    async fn ping(&self) -> anyhow::Result<()>;
}
