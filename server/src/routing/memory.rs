//! In-process routing for the embedded default (one server process).

use super::{
    AgentId, DISPATCH_WINDOW, Offer, OfferGone, QueueId, ReadyAgent, Routing, TicketId, TicketKind,
    WaitingTicket, allowed_ring,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

/// What a queue keeps of a waiting ticket besides its place in line.
#[derive(Clone, Copy)]
struct Waiting {
    rank_ms: i64,
    kind: TicketKind,
    entered_ms: i64,
}

#[derive(Default)]
struct Queue {
    /// (rank_ms, ticket_id): the line, served from the smallest.
    line: BTreeSet<(i64, TicketId)>,
    waiting: HashMap<TicketId, Waiting>,
    offers: HashMap<TicketId, Offer>,
    /// Agents who declined or missed a ticket: offered it again only when
    /// no other agent is eligible.
    tried: HashMap<TicketId, BTreeSet<AgentId>>,
}

impl Queue {
    fn put_in_line(&mut self, ticket_id: TicketId, w: Waiting) {
        if let Some(old) = self.waiting.insert(ticket_id, w) {
            self.line.remove(&(old.rank_ms, ticket_id));
        }
        self.line.insert((w.rank_ms, ticket_id));
    }
}

/// An agent's place in one queue.
#[derive(Clone, Copy)]
struct Seat {
    ring: u32,
    preference: i64,
}

struct Agent {
    queues: HashMap<QueueId, Seat>,
    capacity_inbound: u32,
    capacity_outbound: u32,
    idle_since_ms: i64,
    ready: bool,
    /// Offered or assigned tickets counted against capacity, by kind.
    held: BTreeMap<TicketId, TicketKind>,
}

impl Agent {
    fn has_room_for(&self, kind: TicketKind) -> bool {
        let cap = match kind {
            TicketKind::Inbound => self.capacity_inbound,
            TicketKind::Outbound => self.capacity_outbound,
        };
        let held = self.held.values().filter(|k| **k == kind).count() as u32;
        held < cap
    }
}

#[derive(Default)]
struct State {
    queues: HashMap<QueueId, Queue>,
    agents: HashMap<AgentId, Agent>,
    next_version: u64,
}

impl State {
    fn queue(&mut self, id: QueueId) -> &mut Queue {
        self.queues.entry(id).or_default()
    }

    fn back_in_line(&mut self, offer: &Offer) {
        let q = self.queue(offer.queue_id);
        q.tried
            .entry(offer.ticket_id)
            .or_default()
            .insert(offer.agent_id);
        q.put_in_line(
            offer.ticket_id,
            Waiting {
                rank_ms: offer.rank_ms,
                kind: offer.kind,
                entered_ms: offer.entered_ms,
            },
        );
    }

    fn settle(
        &mut self,
        agent_id: AgentId,
        queue_id: QueueId,
        ticket_id: TicketId,
        version: u64,
    ) -> Result<Offer, OfferGone> {
        let offer = match self.queue(queue_id).offers.get(&ticket_id) {
            Some(o) if o.agent_id == agent_id => *o,
            _ => return Err(OfferGone::NoOffer),
        };
        if offer.version != version {
            return Err(OfferGone::StaleVersion);
        }
        self.queue(queue_id).offers.remove(&ticket_id);
        Ok(offer)
    }

    fn unhold(&mut self, agent_id: AgentId, ticket_id: TicketId) {
        if let Some(a) = self.agents.get_mut(&agent_id) {
            a.held.remove(&ticket_id);
        }
    }

    /// The first of the first [`DISPATCH_WINDOW`] waiting tickets that some
    /// agent may take, with the agent who gets it.
    fn next_pair(
        &self,
        queue_id: QueueId,
        now_ms: i64,
        ring_after_ms: &[i64],
    ) -> Option<(TicketId, AgentId)> {
        let q = self.queues.get(&queue_id)?;
        let none = BTreeSet::new();
        for (_, ticket_id) in q.line.iter().take(DISPATCH_WINDOW) {
            let w = q.waiting[ticket_id];
            let max_ring = allowed_ring(ring_after_ms, w.entered_ms, now_ms);
            let tried = q.tried.get(ticket_id).unwrap_or(&none);
            let best = self
                .agents
                .iter()
                .filter_map(|(id, a)| {
                    let seat = a.queues.get(&queue_id)?;
                    (a.ready && seat.ring <= max_ring && a.has_room_for(w.kind)).then_some((
                        tried.contains(id),
                        seat.preference,
                        a.idle_since_ms,
                        *id,
                    ))
                })
                .min();
            if let Some((.., agent_id)) = best {
                return Some((*ticket_id, agent_id));
            }
        }
        None
    }
}

/// All live routing state behind one mutex. A `std::sync::Mutex` because no
/// critical section awaits and each is a few map operations: it is the
/// simplest way to make every operation atomic, which is the contract.
#[derive(Default)]
pub struct MemoryRouting {
    state: Mutex<State>,
}

impl MemoryRouting {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Routing for MemoryRouting {
    async fn enqueue(&self, t: WaitingTicket) -> anyhow::Result<()> {
        let mut s = self.lock();
        let q = s.queue(t.queue_id);
        if q.offers.contains_key(&t.ticket_id) {
            return Ok(());
        }
        q.put_in_line(
            t.ticket_id,
            Waiting {
                rank_ms: t.rank_ms,
                kind: t.kind,
                entered_ms: t.entered_ms,
            },
        );
        Ok(())
    }

    async fn agent_ready(&self, a: ReadyAgent) -> anyhow::Result<()> {
        let mut s = self.lock();
        let offered: Vec<(TicketId, TicketKind)> = s
            .queues
            .values()
            .flat_map(|q| q.offers.values())
            .filter(|o| o.agent_id == a.agent_id)
            .map(|o| (o.ticket_id, o.kind))
            .collect();
        let held = a.assigned.iter().copied().chain(offered).collect();
        let queues = a
            .queues
            .iter()
            .map(|q| {
                let seat = Seat {
                    ring: u32::from(q.ring),
                    preference: q.preference,
                };
                (q.queue_id, seat)
            })
            .collect();
        s.agents.insert(
            a.agent_id,
            Agent {
                queues,
                capacity_inbound: a.capacity_inbound,
                capacity_outbound: a.capacity_outbound,
                idle_since_ms: a.idle_since_ms,
                ready: true,
                held,
            },
        );
        Ok(())
    }

    async fn agent_away(&self, agent_id: AgentId) -> anyhow::Result<Vec<Offer>> {
        let mut s = self.lock();
        let Some(agent) = s.agents.get_mut(&agent_id) else {
            return Ok(Vec::new());
        };
        agent.ready = false;
        let mut rescinded = Vec::new();
        for q in s.queues.values_mut() {
            q.offers.retain(|_, o| {
                if o.agent_id == agent_id {
                    rescinded.push(*o);
                    false
                } else {
                    true
                }
            });
        }
        for o in &rescinded {
            s.back_in_line(o);
            s.unhold(agent_id, o.ticket_id);
        }
        rescinded.sort_by_key(|o| (o.ticket_id, o.queue_id));
        Ok(rescinded)
    }

    async fn dispatch(
        &self,
        queue_id: QueueId,
        now_ms: i64,
        offer_timeout_ms: i64,
        ring_after_ms: &[i64],
    ) -> anyhow::Result<Vec<Offer>> {
        let mut s = self.lock();
        let mut offers = Vec::new();
        while let Some((ticket_id, agent_id)) = s.next_pair(queue_id, now_ms, ring_after_ms) {
            s.next_version += 1;
            let version = s.next_version;
            let q = s.queue(queue_id);
            let Some(w) = q.waiting.remove(&ticket_id) else {
                break;
            };
            q.line.remove(&(w.rank_ms, ticket_id));
            let offer = Offer {
                ticket_id,
                queue_id,
                agent_id,
                kind: w.kind,
                version,
                deadline_ms: now_ms + offer_timeout_ms,
                rank_ms: w.rank_ms,
                entered_ms: w.entered_ms,
            };
            q.offers.insert(ticket_id, offer);
            if let Some(a) = s.agents.get_mut(&agent_id) {
                a.held.insert(ticket_id, w.kind);
            }
            offers.push(offer);
        }
        Ok(offers)
    }

    async fn accept(
        &self,
        agent_id: AgentId,
        queue_id: QueueId,
        ticket_id: TicketId,
        version: u64,
        _now_ms: i64,
    ) -> anyhow::Result<Result<Offer, OfferGone>> {
        let mut s = self.lock();
        let settled = s.settle(agent_id, queue_id, ticket_id, version);
        if settled.is_ok() {
            s.queue(queue_id).tried.remove(&ticket_id);
        }
        Ok(settled)
    }

    async fn decline(
        &self,
        agent_id: AgentId,
        queue_id: QueueId,
        ticket_id: TicketId,
        version: u64,
    ) -> anyhow::Result<Result<Offer, OfferGone>> {
        let mut s = self.lock();
        let settled = s.settle(agent_id, queue_id, ticket_id, version);
        if let Ok(offer) = &settled {
            s.back_in_line(offer);
            s.unhold(agent_id, ticket_id);
        }
        Ok(settled)
    }

    async fn set_preference(
        &self,
        agent_id: AgentId,
        queue_id: QueueId,
        preference: i64,
    ) -> anyhow::Result<()> {
        let mut s = self.lock();
        if let Some(seat) = s
            .agents
            .get_mut(&agent_id)
            .and_then(|a| a.queues.get_mut(&queue_id))
        {
            seat.preference = preference;
        }
        Ok(())
    }

    async fn expire(&self, queue_id: QueueId, now_ms: i64) -> anyhow::Result<Vec<Offer>> {
        let mut s = self.lock();
        let q = s.queue(queue_id);
        let mut expired: Vec<Offer> = q
            .offers
            .values()
            .filter(|o| o.deadline_ms <= now_ms)
            .copied()
            .collect();
        expired.sort_by_key(|o| o.ticket_id);
        for o in &expired {
            s.queue(queue_id).offers.remove(&o.ticket_id);
            s.back_in_line(o);
            s.unhold(o.agent_id, o.ticket_id);
        }
        Ok(expired)
    }

    async fn release(
        &self,
        agent_id: AgentId,
        ticket_id: TicketId,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let mut s = self.lock();
        if let Some(a) = s.agents.get_mut(&agent_id)
            && a.held.remove(&ticket_id).is_some()
        {
            a.idle_since_ms = now_ms;
        }
        Ok(())
    }

    async fn cancel(
        &self,
        queue_id: QueueId,
        ticket_id: TicketId,
    ) -> anyhow::Result<Option<Offer>> {
        let mut s = self.lock();
        let q = s.queue(queue_id);
        q.tried.remove(&ticket_id);
        if let Some(w) = q.waiting.remove(&ticket_id) {
            q.line.remove(&(w.rank_ms, ticket_id));
        }
        let offer = q.offers.remove(&ticket_id);
        if let Some(o) = &offer {
            s.unhold(o.agent_id, ticket_id);
        }
        Ok(offer)
    }

    async fn waiting(&self, queue_id: QueueId) -> anyhow::Result<Vec<TicketId>> {
        let mut s = self.lock();
        Ok(s.queue(queue_id).line.iter().map(|(_, t)| *t).collect())
    }

    async fn offers(&self, queue_id: QueueId) -> anyhow::Result<Vec<Offer>> {
        let mut s = self.lock();
        let mut v: Vec<Offer> = s.queue(queue_id).offers.values().copied().collect();
        v.sort_by_key(|o| o.ticket_id);
        Ok(v)
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }
}
