//! In-process routing for the embedded default (one server process).

use super::{AgentId, Offer, OfferGone, QueueId, ReadyAgent, Routing, TicketId, WaitingTicket};
use async_trait::async_trait;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

#[derive(Default)]
struct Queue {
    /// (rank_ms, ticket_id): the line, served from the smallest.
    line: BTreeSet<(i64, TicketId)>,
    ranks: HashMap<TicketId, i64>,
    offers: HashMap<TicketId, Offer>,
    /// Agents who declined or missed a ticket: offered it again only when
    /// no other agent is eligible.
    tried: HashMap<TicketId, BTreeSet<AgentId>>,
}

struct Agent {
    queues: Vec<QueueId>,
    capacity: u32,
    idle_since_ms: i64,
    ready: bool,
    /// Offered or assigned tickets counted against capacity.
    held: BTreeSet<TicketId>,
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
        q.line.insert((offer.rank_ms, offer.ticket_id));
        q.ranks.insert(offer.ticket_id, offer.rank_ms);
    }

    fn settle(
        &mut self,
        agent_id: AgentId,
        ticket_id: TicketId,
        version: u64,
    ) -> Result<Offer, OfferGone> {
        let found = self
            .queues
            .values()
            .find_map(|q| q.offers.get(&ticket_id).copied());
        let offer = match found {
            Some(o) if o.agent_id == agent_id => o,
            _ => return Err(OfferGone::NoOffer),
        };
        if offer.version != version {
            return Err(OfferGone::StaleVersion);
        }
        self.queue(offer.queue_id).offers.remove(&ticket_id);
        Ok(offer)
    }

    fn unhold(&mut self, agent_id: AgentId, ticket_id: TicketId) {
        if let Some(a) = self.agents.get_mut(&agent_id) {
            a.held.remove(&ticket_id);
        }
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
        if let Some(old) = q.ranks.insert(t.ticket_id, t.rank_ms) {
            q.line.remove(&(old, t.ticket_id));
        }
        q.line.insert((t.rank_ms, t.ticket_id));
        Ok(())
    }

    async fn agent_ready(&self, a: ReadyAgent) -> anyhow::Result<()> {
        let mut s = self.lock();
        let offered: Vec<TicketId> = s
            .queues
            .values()
            .flat_map(|q| q.offers.values())
            .filter(|o| o.agent_id == a.agent_id)
            .map(|o| o.ticket_id)
            .collect();
        let held = a.assigned.iter().copied().chain(offered).collect();
        s.agents.insert(
            a.agent_id,
            Agent {
                queues: a.queues,
                capacity: a.capacity,
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
        Ok(rescinded)
    }

    async fn dispatch(
        &self,
        queue_id: QueueId,
        now_ms: i64,
        offer_timeout_ms: i64,
    ) -> anyhow::Result<Vec<Offer>> {
        let mut s = self.lock();
        let mut offers = Vec::new();
        while let Some(&(rank_ms, ticket_id)) = s.queue(queue_id).line.first() {
            let tried = s
                .queue(queue_id)
                .tried
                .get(&ticket_id)
                .cloned()
                .unwrap_or_default();
            let candidate = s
                .agents
                .iter()
                .filter(|(_, a)| {
                    a.ready && a.queues.contains(&queue_id) && (a.held.len() as u32) < a.capacity
                })
                .min_by_key(|(id, a)| (tried.contains(id), a.idle_since_ms, **id))
                .map(|(id, _)| *id);
            let Some(agent_id) = candidate else { break };
            s.next_version += 1;
            let offer = Offer {
                ticket_id,
                queue_id,
                agent_id,
                version: s.next_version,
                deadline_ms: now_ms + offer_timeout_ms,
                rank_ms,
            };
            let q = s.queue(queue_id);
            q.line.remove(&(rank_ms, ticket_id));
            q.ranks.remove(&ticket_id);
            q.offers.insert(ticket_id, offer);
            if let Some(a) = s.agents.get_mut(&agent_id) {
                a.held.insert(ticket_id);
            }
            offers.push(offer);
        }
        Ok(offers)
    }

    async fn accept(
        &self,
        agent_id: AgentId,
        ticket_id: TicketId,
        version: u64,
        _now_ms: i64,
    ) -> anyhow::Result<Result<Offer, OfferGone>> {
        let mut s = self.lock();
        let settled = s.settle(agent_id, ticket_id, version);
        if let Ok(offer) = &settled {
            s.queue(offer.queue_id).tried.remove(&ticket_id);
        }
        Ok(settled)
    }

    async fn decline(
        &self,
        agent_id: AgentId,
        ticket_id: TicketId,
        version: u64,
    ) -> anyhow::Result<Result<Offer, OfferGone>> {
        let mut s = self.lock();
        let settled = s.settle(agent_id, ticket_id, version);
        if let Ok(offer) = &settled {
            s.back_in_line(offer);
            s.unhold(agent_id, ticket_id);
        }
        Ok(settled)
    }

    async fn expire(&self, queue_id: QueueId, now_ms: i64) -> anyhow::Result<Vec<Offer>> {
        let mut s = self.lock();
        let q = s.queue(queue_id);
        let expired: Vec<Offer> = q
            .offers
            .values()
            .filter(|o| o.deadline_ms <= now_ms)
            .copied()
            .collect();
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
            && a.held.remove(&ticket_id)
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
        if let Some(rank) = q.ranks.remove(&ticket_id) {
            q.line.remove(&(rank, ticket_id));
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
