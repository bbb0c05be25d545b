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
//! - an agent never holds more offered + assigned tickets of a kind
//!   ([`TicketKind`]) than its capacity for that kind;
//! - a ticket is offered only to an agent whose ring in its queue is allowed
//!   for it: ring 0 always, ring k >= 1 once the ticket has waited
//!   `ring_after_ms[k - 1]` since `entered_ms` (bullseye relaxation);
//! - an offer is settled once: by accept, decline, expiry, cancel or the
//!   agent going away, whichever comes first; later attempts see `OfferGone`;
//! - waiting tickets are served lowest `rank_ms` first (ties: lowest ticket
//!   id) among the tickets some free agent can take: dispatch looks at the
//!   first [`DISPATCH_WINDOW`] waiting tickets, so a head ticket that nobody
//!   may take yet (wrong kind, inner ring only) does not hold up the others;
//! - among the agents who may take a ticket, the lowest
//!   `(has already passed on this ticket, preference, idle_since_ms,
//!   agent_id)` gets it: agents who declined, missed or were away for it come
//!   last, then the queue's strategy (a caller-computed preference), then the
//!   longest idle;
//! - a ticket that goes back to its line (decline, expiry, rescind) keeps its
//!   kind, rank and `entered_ms`.

pub mod memory;
pub mod redis;

use async_trait::async_trait;

pub type TicketId = i64;
pub type AgentId = i64;
pub type QueueId = i64;

/// How many waiting tickets, from the head of the line, dispatch considers
/// for the free agents (the head may be one nobody may take yet).
pub const DISPATCH_WINDOW: usize = 16;

/// Capacity is counted per kind: an agent may take, say, two complaints and
/// one service call at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TicketKind {
    /// A complaint or an incoming call.
    Inbound,
    /// A service call the business makes.
    Outbound,
}

impl TicketKind {
    /// The one-letter code the Redis layout stores.
    pub fn code(self) -> &'static str {
        match self {
            TicketKind::Inbound => "i",
            TicketKind::Outbound => "o",
        }
    }

    /// The word the record (the `tickets.kind` column) uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::Inbound => "inbound",
            TicketKind::Outbound => "outbound",
        }
    }

    /// A kind from its one-letter code or the record's word.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "i" | "inbound" => Some(TicketKind::Inbound),
            "o" | "outbound" => Some(TicketKind::Outbound),
            _ => None,
        }
    }
}

/// A ticket waiting in a queue. `rank_ms` orders the line: the moment it
/// entered minus its priority head start, so a higher priority is served
/// sooner and every ticket still rises as it waits (aging). `entered_ms` is
/// when it started waiting in this queue: the bullseye rings open from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitingTicket {
    pub ticket_id: TicketId,
    pub queue_id: QueueId,
    pub kind: TicketKind,
    pub rank_ms: i64,
    pub entered_ms: i64,
}

/// One ticket proposed to one agent until `deadline_ms`. `version` is the
/// fencing token an accept or decline must present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    pub ticket_id: TicketId,
    pub queue_id: QueueId,
    pub agent_id: AgentId,
    pub kind: TicketKind,
    pub version: u64,
    pub deadline_ms: i64,
    pub rank_ms: i64,
    pub entered_ms: i64,
}

/// One queue an agent serves. `ring` is the innermost bullseye ring of the
/// queue the agent qualifies for (0: meets the full requirement; 1: the
/// first relaxed step; ...). `preference` orders the eligible agents
/// (lowest first, before idle time), computed by the caller from the
/// queue's selection strategy: 0 for everyone (longest idle), minus the
/// skill level (best skill), tickets taken today (fewest today).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentQueue {
    pub queue_id: QueueId,
    pub ring: u8,
    pub preference: i64,
}

impl AgentQueue {
    /// A queue served at ring 0 with no preference (longest idle first).
    pub fn plain(queue_id: QueueId) -> Self {
        Self {
            queue_id,
            ring: 0,
            preference: 0,
        }
    }
}

/// An agent ready to take tickets from `queues`, up to `capacity_inbound`
/// inbound and `capacity_outbound` outbound tickets at once, already
/// holding the `assigned` tickets (from the database, the record). Among
/// agents of equal preference, those who waited longest since their last
/// ticket (`idle_since_ms`) are offered first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyAgent {
    pub agent_id: AgentId,
    pub queues: Vec<AgentQueue>,
    pub capacity_inbound: u32,
    pub capacity_outbound: u32,
    pub assigned: Vec<(TicketId, TicketKind)>,
    pub idle_since_ms: i64,
}

impl ReadyAgent {
    pub fn capacity(&self, kind: TicketKind) -> u32 {
        match kind {
            TicketKind::Inbound => self.capacity_inbound,
            TicketKind::Outbound => self.capacity_outbound,
        }
    }
}

/// The highest bullseye ring allowed for a ticket that entered its queue at
/// `entered_ms`: ring k >= 1 opens once `now_ms - entered_ms >=
/// ring_after_ms[k - 1]` (the steps ascend; the first step not reached
/// closes every later ring).
pub fn allowed_ring(ring_after_ms: &[i64], entered_ms: i64, now_ms: i64) -> u32 {
    let waited = now_ms.saturating_sub(entered_ms);
    ring_after_ms
        .iter()
        .take_while(|after| waited >= **after)
        .count() as u32
}

/// Why an accept or decline found no offer to settle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OfferGone {
    #[error("the offer has expired, been rescinded or settled")]
    NoOffer,
    #[error("the offer version is stale: the ticket was offered again since")]
    StaleVersion,
}

/// How to dispatch one queue: what [`Routing::dispatch`] takes.
#[derive(Clone, Copy, Debug)]
pub struct DispatchPlan<'a> {
    pub queue_id: QueueId,
    pub now_ms: i64,
    pub offer_timeout_ms: i64,
    /// The queue's relaxation steps, ascending (see [`allowed_ring`]).
    pub ring_after_ms: &'a [i64],
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
    /// capacity for the ticket's kind and a ring allowed for it (see
    /// [`allowed_ring`]; `ring_after_ms` are the queue's relaxation steps,
    /// ascending; empty: ring 0 only), until no pair is left. Returns the
    /// new offers, each due at `now_ms + offer_timeout_ms`.
    async fn dispatch(
        &self,
        queue_id: QueueId,
        now_ms: i64,
        offer_timeout_ms: i64,
        ring_after_ms: &[i64],
    ) -> anyhow::Result<Vec<Offer>>;

    /// Put a ticket in line, then dispatch its queue as `plan` says. The
    /// same as [`Routing::enqueue`] then [`Routing::dispatch`]; a backend
    /// may do both in one step (Redis: one call instead of two).
    async fn enqueue_then_dispatch(
        &self,
        ticket: WaitingTicket,
        plan: DispatchPlan<'_>,
    ) -> anyhow::Result<Vec<Offer>> {
        self.enqueue(ticket).await?;
        self.dispatch(
            ticket.queue_id,
            plan.now_ms,
            plan.offer_timeout_ms,
            plan.ring_after_ms,
        )
        .await
    }

    /// Release an assigned ticket, then dispatch each queue of `plans` in
    /// order. The same as [`Routing::release`] then [`Routing::dispatch`]
    /// per plan; a backend may tell a queue that the agent is free and
    /// dispatch it in one step (Redis: one call per queue instead of two).
    async fn release_then_dispatch(
        &self,
        agent_id: AgentId,
        ticket_id: TicketId,
        now_ms: i64,
        plans: &[DispatchPlan<'_>],
    ) -> anyhow::Result<Vec<Offer>> {
        self.release(agent_id, ticket_id, now_ms).await?;
        let mut offers = Vec::new();
        for p in plans {
            offers.extend(
                self.dispatch(p.queue_id, p.now_ms, p.offer_timeout_ms, p.ring_after_ms)
                    .await?,
            );
        }
        Ok(offers)
    }

    /// Settle the agent's offer of a ticket in `queue_id` as accepted: the
    /// ticket is now assigned and keeps counting against the agent's
    /// capacity until [`Routing::release`]. An offer in another queue is
    /// `OfferGone::NoOffer`.
    async fn accept(
        &self,
        agent_id: AgentId,
        queue_id: QueueId,
        ticket_id: TicketId,
        version: u64,
        now_ms: i64,
    ) -> anyhow::Result<Result<Offer, OfferGone>>;

    /// Settle the agent's offer of a ticket in `queue_id` as declined: the
    /// ticket goes back to its line.
    async fn decline(
        &self,
        agent_id: AgentId,
        queue_id: QueueId,
        ticket_id: TicketId,
        version: u64,
    ) -> anyhow::Result<Result<Offer, OfferGone>>;

    /// Change one agent's preference in one queue (say, after each ticket
    /// for "fewest today"); nothing else changes. Until the agent is next
    /// ready; a later [`Routing::agent_ready`] sets it again.
    async fn set_preference(
        &self,
        agent_id: AgentId,
        queue_id: QueueId,
        preference: i64,
    ) -> anyhow::Result<()>;

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

#[cfg(test)]
mod tests {
    use super::{TicketKind, allowed_ring};

    #[test]
    fn kinds_read_from_codes_and_the_record() {
        for kind in [TicketKind::Inbound, TicketKind::Outbound] {
            assert_eq!(TicketKind::from_code(kind.code()), Some(kind));
            assert_eq!(TicketKind::from_code(kind.as_str()), Some(kind));
        }
        assert_eq!(TicketKind::from_code("x"), None);
    }

    #[test]
    fn rings_open_in_order() {
        let steps = [10_000, 30_000];
        assert_eq!(allowed_ring(&steps, 0, 9_999), 0);
        assert_eq!(allowed_ring(&steps, 0, 10_000), 1);
        assert_eq!(allowed_ring(&steps, 0, 30_000), 2);
        assert_eq!(allowed_ring(&[], 0, i64::MAX), 0);
        assert_eq!(allowed_ring(&steps, i64::MAX, i64::MIN), 0);
    }
}
