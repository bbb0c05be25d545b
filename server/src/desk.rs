//! The ticket lifecycle: intake → queue → offer → accept → resolve.
//!
//! The desk ties the record (the database), the live state (routing) and the
//! fan-out (the bus) together, always in that order: a change is committed to
//! the database before it is made live, and the database has the last word
//! when the live layer and the record disagree.

use crate::auth::AuthUser;
use crate::bus::Bus;
use crate::clock::Clock;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::routing::{
    DispatchPlan, Offer, OfferGone, ReadyAgent, Routing, TicketKind, WaitingTicket,
};
use crate::store::{Db, Filed, IdempotencyKey, NewComplaint, OfferStep};
use callcenter_proto::http::{ComplaintCreate, Customer, Outcome, Queue, Ticket};
use callcenter_proto::ws::{OfferDetails, ServerEvent};
use callcenter_proto::{AgentState, TicketStatus};
use std::sync::Arc;

mod callback;
pub mod customer_history;
mod eligibility;
mod escalation;
mod rules;

/// How long a ticket must have been unchanged before the periodic reconcile
/// touches it.
pub const RECONCILE_QUIET_MS: i64 = 10_000;
pub use eligibility::ring_after_ms;
pub use rules::{FRONT_OF_QUEUE_RANK, head_start_ms};

pub struct Desk {
    pub db: Db,
    pub routing: Arc<dyn Routing>,
    pub bus: Arc<dyn Bus>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Due times of planned outbound calls (see `outbound::scheduler`).
    pub due_index: Arc<dyn crate::outbound::DueIndex>,
    /// The queue of each offer shown to an agent connected to this node
    /// (whichever node made it), so that its answer needs no read of the
    /// ticket (a miss or a stale entry falls back to the record).
    pub offered_in: OfferedQueues,
    /// Waiting tickets of the record the last periodic reconcile found
    /// missing from the live state (see `reconcile_quiet`). A std mutex:
    /// swapped in one step, never held across an await.
    pub missing_live: std::sync::Mutex<std::collections::HashSet<i64>>,
    /// One gate per agent: state changes and accepts of an agent on this
    /// node happen one at a time, so that a dropped socket's "offline"
    /// cannot land after the same agent's new socket made them available
    /// again, and a readiness never sees an accept half done. The map is
    /// a std mutex (one lookup, never across an await); the gates are async
    /// mutexes, held across a state change's database and routing calls.
    pub agent_gates: std::sync::Mutex<std::collections::HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// The agents whose consoles are connected to this node, added and
    /// removed under the agent's gate. A std mutex: one set operation at a
    /// time, never across an await.
    pub connections: std::sync::Mutex<std::collections::HashSet<i64>>,
    /// A connection in `connections` could not be recorded
    /// (`Db::mark_connected` failed): the ticker records it again (see
    /// [`Desk::reclaim_connections`]) until it holds.
    pub connections_unrecorded: std::sync::atomic::AtomicBool,
}

/// Ticket → queue of the offers shown to agents connected to this node.
#[derive(Default)]
pub struct OfferedQueues {
    /// A std mutex: every use is one map operation, never across an await.
    map: std::sync::Mutex<std::collections::HashMap<i64, i64>>,
}

impl OfferedQueues {
    /// Entries kept before the map is emptied (offers that expire are never
    /// answered, so nothing else would remove them).
    const MAX: usize = 100_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<i64, i64>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Note the offers an event shows to an agent connected to this node
    /// (an offer, or a snapshot's pending offers).
    pub fn shown(&self, event: &ServerEvent) {
        match event {
            ServerEvent::Offer(details) => {
                self.remember(details.ticket.id, details.ticket.queue_id)
            }
            ServerEvent::Snapshot(snapshot) => {
                for details in &snapshot.pending_offers {
                    self.remember(details.ticket.id, details.ticket.queue_id);
                }
            }
            _ => {}
        }
    }

    fn remember(&self, ticket_id: i64, queue_id: i64) {
        let mut map = self.lock();
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(ticket_id, queue_id);
    }

    fn take(&self, ticket_id: i64) -> Option<i64> {
        self.lock().remove(&ticket_id)
    }
}

/// A ticket filed a moment ago and its customer's card, read once.
#[derive(Clone, Copy)]
struct Known<'a> {
    ticket: &'a Ticket,
    customer: &'a Customer,
}

impl From<OfferGone> for ApiError {
    fn from(gone: OfferGone) -> Self {
        ApiError::OfferGone(gone.to_string())
    }
}

impl Desk {
    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Append an event to the user's stream: their consoles on every node
    /// get it, and a console that reconnects gets it on resume.
    pub async fn tell(&self, user_id: i64, event: ServerEvent) {
        if let Err(e) = self.bus.deliver(user_id, event).await {
            tracing::warn!(error = %e, user_id, "could not deliver an event");
        }
    }

    /// File a complaint (idempotent by key) and, when new, queue and offer it.
    pub async fn file_complaint(
        &self,
        actor: &AuthUser,
        req: &ComplaintCreate,
        idempotency_key: &str,
        request_hash: &str,
    ) -> ApiResult<(Ticket, bool)> {
        let customer_id = match (req.customer_id, &req.customer_external_id) {
            (Some(id), None) => id,
            (None, Some(ext)) => self.db.customer_id_by_external(ext).await.map_err(|_| {
                ApiError::field("customer_external_id", "no customer has this external id")
            })?,
            _ => {
                return Err(ApiError::field(
                    "customer_id",
                    "give exactly one of customer_id or customer_external_id",
                ));
            }
        };
        let category = self
            .db
            .category(req.category_id)
            .await
            .map_err(|_| ApiError::field("category_id", "no category has this id"))?;
        let queue = self.db.queue(category.spec.queue_id).await?;
        let now = self.now();
        // A complaint within the reopen window after one of the customer's
        // in this category ended reopens it (issue 7: `quality::reopen`),
        // with the queue's head start for reopens.
        let reopen_window_ms = crate::quality::reopen::reopen_window_ms(&self.db).await?;
        let (priority, base_priority) = (queue.spec.priority.clone(), category.spec.base_priority);
        let rank = move |customer: &Customer,
                         reopen: Option<&crate::quality::reopen::ReopenLink>| {
            let reopen_head_start = match reopen {
                Some(_) => i64::from(priority.reopen_head_start_seconds) * 1000,
                None => 0,
            };
            now - rules::head_start_ms(&priority, base_priority, customer) - reopen_head_start
        };
        let scope = format!("complaint:{}", actor.user_id);
        // Wall time for `/metrics` (how long each step took), not the desk's
        // clock (what time it is for tickets).
        let recording = std::time::Instant::now();
        // One transaction reads the customer's card (it checks the id, ranks
        // the ticket and is shown with the offer that follows at once) and
        // files the complaint.
        let filed = self
            .db
            .file_complaint(
                NewComplaint {
                    customer_id,
                    category_id: category.id,
                    queue_id: category.spec.queue_id,
                    channel: req.channel.clone(),
                    description: req.description.clone(),
                    actor_user_id: actor.user_id,
                    reopen_window_ms,
                    rank: std::sync::Arc::new(rank),
                },
                &IdempotencyKey {
                    scope: &scope,
                    key: idempotency_key,
                    request_hash,
                },
                now,
            )
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound("customer") => {
                    ApiError::field("customer_id", "no customer has this id")
                }
                e => e.into(),
            })?;
        let (ticket, created) = match filed {
            Filed::Before(ticket) => (ticket, false),
            Filed::New {
                ticket,
                customer,
                rank_ms,
            } => {
                self.metrics.tickets_created.inc();
                let routing = std::time::Instant::now();
                self.metrics.filing.record.observe(routing - recording);
                // Into the line and dispatched in one routing step.
                let rings = eligibility::ring_after_ms(&queue);
                let offers = self
                    .routing
                    .enqueue_then_dispatch(
                        WaitingTicket {
                            ticket_id: ticket.id,
                            queue_id: ticket.queue_id,
                            kind: TicketKind::Inbound,
                            rank_ms,
                            entered_ms: now,
                        },
                        self.plan(&queue, &rings),
                    )
                    .await?;
                let delivery = std::time::Instant::now();
                self.metrics.filing.routing.observe(delivery - routing);
                let offered = offers.iter().any(|o| o.ticket_id == ticket.id);
                let known = Known {
                    ticket: &ticket,
                    customer: &customer,
                };
                self.deliver_offers(offers, Some(known)).await?;
                if offered {
                    self.metrics.filing.delivery.observe(delivery.elapsed());
                }
                (ticket, true)
            }
        };
        Ok((ticket, created))
    }

    /// Offer the queue's waiting tickets to its free agents.
    pub async fn dispatch(&self, queue_id: i64) -> anyhow::Result<()> {
        let queue = self.db.queue(queue_id).await?;
        let rings = eligibility::ring_after_ms(&queue);
        let plan = self.plan(&queue, &rings);
        let offers = self
            .routing
            .dispatch(queue.id, plan.now_ms, plan.offer_timeout_ms, &rings)
            .await?;
        self.deliver_offers(offers, None).await
    }

    /// How a queue is dispatched now: its offer timeout and its rings.
    fn plan<'a>(&self, queue: &Queue, rings: &'a [i64]) -> DispatchPlan<'a> {
        DispatchPlan {
            queue_id: queue.id,
            now_ms: self.now(),
            offer_timeout_ms: i64::from(queue.spec.offer_timeout_seconds) * 1000,
            ring_after_ms: rings,
        }
    }

    /// The agent's ticket ended and nothing comes between: each of the
    /// agent's queues learns the agent is free in the step that dispatches
    /// it (the routing layer's `release_then_dispatch`).
    async fn release_and_dispatch(
        &self,
        agent_id: i64,
        ticket_id: i64,
        now: i64,
    ) -> anyhow::Result<()> {
        let mut queues = Vec::new();
        for q in self.agent_queues(agent_id).await? {
            let queue = self.db.queue(q.queue_id).await?;
            let rings = eligibility::ring_after_ms(&queue);
            queues.push((queue, rings));
        }
        let plans: Vec<DispatchPlan<'_>> = queues
            .iter()
            .map(|(queue, rings)| self.plan(queue, rings))
            .collect();
        let offers = self
            .routing
            .release_then_dispatch(agent_id, ticket_id, now, &plans)
            .await?;
        self.deliver_offers(offers, None).await
    }

    async fn deliver_offers(
        &self,
        offers: Vec<Offer>,
        known: Option<Known<'_>>,
    ) -> anyhow::Result<()> {
        for offer in offers {
            let known = known.filter(|k| k.ticket.id == offer.ticket_id);
            self.deliver_offer(offer, known).await?;
        }
        Ok(())
    }

    async fn deliver_offer(&self, offer: Offer, known: Option<Known<'_>>) -> anyhow::Result<()> {
        if self.now() >= offer.deadline_ms {
            // Under overload a dispatch can finish after its own offers'
            // deadlines: such an offer is not shown (the agent could not
            // answer it in time anyway); the tick expires it and offers the
            // ticket again.
            self.metrics.offers_late.inc();
            return Ok(());
        }
        // A ticket that waited: it and its customer's card in one read.
        let (ticket, customer) = match known {
            Some(k) => (k.ticket.clone(), k.customer.clone()),
            None => self.db.ticket_card(offer.ticket_id).await?,
        };
        if !matches!(ticket.status, TicketStatus::Queued | TicketStatus::Offered) {
            // The record says this ticket is no longer waiting: the live entry
            // was stale. Withdraw it rather than offer it.
            self.routing.cancel(offer.queue_id, offer.ticket_id).await?;
            return Ok(());
        }
        // The offer itself is live state: its record is written with the
        // answer (`store::OfferStep`), not now.
        let details = self
            .offer_details_with(&offer, ticket, Some(customer))
            .await?;
        self.metrics.offers.inc();
        self.tell(offer.agent_id, ServerEvent::Offer(details)).await;
        Ok(())
    }

    /// What an agent is shown of an offer: the ticket, the customer card.
    pub async fn offer_details(
        &self,
        offer: &Offer,
        ticket: Ticket,
    ) -> anyhow::Result<OfferDetails> {
        self.offer_details_with(offer, ticket, None).await
    }

    async fn offer_details_with(
        &self,
        offer: &Offer,
        ticket: Ticket,
        customer: Option<Customer>,
    ) -> anyhow::Result<OfferDetails> {
        let customer = match customer {
            Some(c) => c,
            None => self.db.customer(ticket.customer_id).await?,
        };
        let outbound = self.outbound_brief(&ticket).await?;
        Ok(OfferDetails {
            ticket: Ticket {
                status: TicketStatus::Offered,
                ..ticket
            },
            customer,
            version: offer.version,
            deadline_ms: offer.deadline_ms,
            sent_at_ms: self.now(),
            // The outbound brief (purpose, script) of a service call.
            outbound,
        })
    }

    /// Offers that ended without an accept (declined, expired, rescinded,
    /// or taken back because the ticket left the line): recorded, the agent
    /// told. `began_ms` is the desk's time before the routing step that
    /// ended them (what a rescind's `at_ms` says: no later than the moment
    /// the ticket was free for another offer).
    async fn requeue(
        &self,
        offers: &[Offer],
        kind: &str,
        reason: &str,
        began_ms: i64,
    ) -> anyhow::Result<()> {
        let now = self.now();
        for o in offers {
            let step = self.offer_step(o).await?;
            self.db
                .mark_requeued(
                    o.ticket_id,
                    &step,
                    Some(o.agent_id).filter(|_| kind == "declined"),
                    kind,
                    serde_json::json!({ "agent_id": o.agent_id, "version": o.version }),
                    now,
                )
                .await?;
            if kind != "declined" {
                self.tell(
                    o.agent_id,
                    ServerEvent::OfferRescinded {
                        ticket_id: o.ticket_id,
                        version: o.version,
                        reason: reason.to_string(),
                        at_ms: began_ms,
                    },
                )
                .await;
            }
        }
        Ok(())
    }

    fn agent_gate(&self, agent_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        self.agent_gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(agent_id)
            .or_default()
            .clone()
    }

    pub async fn set_state(
        &self,
        agent_id: i64,
        state: AgentState,
        reason: Option<&str>,
    ) -> ApiResult<()> {
        let gate = self.agent_gate(agent_id);
        let _one_at_a_time = gate.lock().await;
        self.set_state_ungated(agent_id, state, reason).await
    }

    async fn set_state_ungated(
        &self,
        agent_id: i64,
        state: AgentState,
        reason: Option<&str>,
    ) -> ApiResult<()> {
        let now = self.now();
        self.db
            .set_agent_state(agent_id, state, reason, now)
            .await?;
        match state {
            AgentState::Available => {
                let agent = self.db.agent_routing(agent_id).await?;
                let queues = self.agent_queues(agent_id).await?;
                let assigned = self.db.assigned_tickets_with_kind(agent_id).await?;
                self.routing
                    .agent_ready(ReadyAgent {
                        agent_id,
                        queues: queues.clone(),
                        capacity_inbound: agent.capacity_inbound,
                        capacity_outbound: agent.capacity_outbound,
                        assigned: assigned
                            .into_iter()
                            .map(|(t, kind)| (t, eligibility::kind_of(&kind)))
                            .collect(),
                        idle_since_ms: now,
                    })
                    .await?;
                // A complaint the customer reopened waits for them first.
                self.offer_held_reopens(agent_id).await;
                for q in queues {
                    self.dispatch(q.queue_id).await?;
                }
            }
            AgentState::Break | AgentState::Offline | AgentState::WrapUp => {
                let rescinded = self.routing.agent_away(agent_id).await?;
                self.requeue(&rescinded, "offer_rescinded", "agent_unavailable", now)
                    .await?;
                self.redispatch(&rescinded).await?;
            }
        }
        self.tell(
            agent_id,
            ServerEvent::AgentStateChanged {
                state,
                reason: reason.map(str::to_string),
            },
        )
        .await;
        Ok(())
    }

    async fn redispatch(&self, offers: &[Offer]) -> anyhow::Result<()> {
        let mut queues: Vec<i64> = offers.iter().map(|o| o.queue_id).collect();
        queues.sort_unstable();
        queues.dedup();
        for q in queues {
            self.dispatch(q).await?;
        }
        Ok(())
    }

    pub async fn accept(&self, agent_id: i64, ticket_id: i64, version: u64) -> ApiResult<Ticket> {
        // Under the agent's gate: an accept is settled live before it is
        // committed, and a readiness computed in between (which keeps only
        // open offers and recorded assignments) would drop the ticket from
        // the agent's load.
        let gate = self.agent_gate(agent_id);
        let _one_at_a_time = gate.lock().await;
        let now = self.now();
        let offer = self
            .settle_offer(ticket_id, |queue_id| {
                self.routing
                    .accept(agent_id, queue_id, ticket_id, version, now)
            })
            .await?;
        let step = self.offer_step(&offer).await?;
        match self.db.assign(ticket_id, &step, now).await {
            Ok(ticket) => {
                self.metrics.accepts.inc();
                Ok(ticket)
            }
            Err(e) => {
                // The record refused (the ticket ended or is held meanwhile):
                // free the agent's slot again.
                self.routing.release(agent_id, offer.ticket_id, now).await?;
                Err(e.into())
            }
        }
    }

    pub async fn decline(&self, agent_id: i64, ticket_id: i64, version: u64) -> ApiResult<()> {
        let began = self.now();
        let offer = self
            .settle_offer(ticket_id, |queue_id| {
                self.routing.decline(agent_id, queue_id, ticket_id, version)
            })
            .await?;
        self.requeue(&[offer], "declined", "declined", began)
            .await?;
        self.dispatch(offer.queue_id).await?;
        Ok(())
    }

    /// The record of an offer: when it was made follows from its deadline
    /// and the queue's offer timeout.
    async fn offer_step(&self, offer: &Offer) -> anyhow::Result<OfferStep> {
        let queue = self.db.queue(offer.queue_id).await?;
        Ok(OfferStep {
            agent_id: offer.agent_id,
            queue_id: offer.queue_id,
            version: offer.version,
            deadline_ms: offer.deadline_ms,
            at_ms: offer.deadline_ms - i64::from(queue.spec.offer_timeout_seconds) * 1000,
        })
    }

    /// A waiting ticket as users see it: `offered` while an offer of it is
    /// open (live state), with that offer.
    pub async fn with_live_offer(
        &self,
        ticket: Ticket,
    ) -> anyhow::Result<(Ticket, Option<OfferStep>)> {
        if !matches!(ticket.status, TicketStatus::Queued | TicketStatus::Offered) {
            return Ok((ticket, None));
        }
        let live = self
            .routing
            .offers(ticket.queue_id)
            .await?
            .into_iter()
            .find(|o| o.ticket_id == ticket.id);
        match live {
            Some(offer) => Ok((
                Ticket {
                    status: TicketStatus::Offered,
                    ..ticket
                },
                Some(self.offer_step(&offer).await?),
            )),
            None => Ok((
                Ticket {
                    status: TicketStatus::Queued,
                    ..ticket
                },
                None,
            )),
        }
    }

    /// Answer an offer in its queue: the one this node offered it in if it
    /// did, else (or if the ticket moved queue since) the record's.
    async fn settle_offer<F, Fut>(&self, ticket_id: i64, answer: F) -> ApiResult<Offer>
    where
        F: Fn(i64) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Result<Offer, OfferGone>>>,
    {
        if let Some(guess) = self.offered_in.take(ticket_id) {
            match answer(guess).await? {
                Ok(offer) => return Ok(offer),
                Err(gone) => {
                    let queue_id = self.offered_queue(ticket_id).await?;
                    if queue_id == guess {
                        return Err(gone.into());
                    }
                    return Ok(answer(queue_id).await??);
                }
            }
        }
        let queue_id = self.offered_queue(ticket_id).await?;
        Ok(answer(queue_id).await??)
    }

    /// The queue a ticket is offered in (the record's queue); no such
    /// ticket is no offer.
    async fn offered_queue(&self, ticket_id: i64) -> ApiResult<i64> {
        self.metrics.offer_queue_reads.inc();
        match self.db.ticket(ticket_id).await {
            Ok(ticket) => Ok(ticket.queue_id),
            Err(crate::store::StoreError::NotFound(_)) => Err(OfferGone::NoOffer.into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Ticket access for agents: the ticket must be theirs.
    pub async fn ticket_of(&self, agent_id: i64, ticket_id: i64) -> ApiResult<Ticket> {
        let ticket = self.db.ticket(ticket_id).await?;
        if ticket.assigned_agent_id != Some(agent_id) {
            return Err(ApiError::Forbidden("this ticket is not assigned to you"));
        }
        Ok(ticket)
    }

    pub async fn resolve(
        &self,
        agent_id: i64,
        ticket_id: i64,
        outcome: &Outcome,
    ) -> ApiResult<Ticket> {
        validate_outcome(outcome)?;
        // A complaint's outcome carries an active resolution code (issue 7).
        // With an active code (the usual case) the ticket need not be read
        // first: the resolve transaction checks that the agent holds it.
        if !crate::quality::codes::is_active(&self.db, outcome.code.trim()).await? {
            let held = self.ticket_of(agent_id, ticket_id).await?;
            if held.kind == "inbound" {
                crate::quality::codes::check_active(&self.db, outcome.code.trim()).await?;
            }
        }
        let now = self.now();
        let resolved = match self
            .db
            .resolve_reading_next(ticket_id, agent_id, outcome, now)
            .await
        {
            Err(crate::store::StoreError::NotFound("assigned ticket")) => {
                return Err(ApiError::Forbidden("this ticket is not assigned to you"));
            }
            other => other?,
        };
        let ticket = resolved.ticket;
        self.metrics.tickets_resolved.inc();
        let queue = self.db.queue(ticket.queue_id).await?;
        if queue.spec.wrap_up_seconds == 0 && resolved.held_reopens.is_empty() {
            // The usual case: no wrap-up, no reopened complaint waiting for
            // this agent. "Fewest today" sees the new count first, then the
            // agent is free and each of their queues dispatched.
            self.update_preferences(agent_id).await?;
            self.release_and_dispatch(agent_id, ticket_id, now).await?;
        } else {
            self.routing.release(agent_id, ticket_id, now).await?;
            if queue.spec.wrap_up_seconds == 0 {
                // A complaint the customer reopened goes before the next one.
                self.offer_these_held_reopens(agent_id, &resolved.held_reopens)
                    .await;
            }
            self.after_ticket(agent_id, &queue).await?;
        }
        self.ticket_resolved(&ticket).await;
        if resolved.ever_escalated {
            self.escalation_ended(&ticket).await;
        }
        Ok(ticket)
    }

    pub async fn note(&self, agent_id: i64, ticket_id: i64, text: &str) -> ApiResult<()> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 4000 {
            return Err(ApiError::field("text", "must be 1 to 4000 characters"));
        }
        if self
            .db
            .add_note(ticket_id, agent_id, text, self.now())
            .await?
        {
            return Ok(());
        }
        // Not written: say why (no such ticket, or not theirs).
        self.ticket_of(agent_id, ticket_id).await?;
        Err(ApiError::Forbidden("this ticket is not assigned to you"))
    }

    /// An agent's socket opened (it is registered in the hub already). Under
    /// the agent's gate: a disconnection of their previous socket decided
    /// just before (its `reconnected` check ran before this socket was
    /// registered) has recorded its time by now, and this clears it, so a
    /// quick reconnect never leaves the agent marked absent (which would
    /// take their tickets back once the grace period passed). The
    /// connection's number tells the other nodes too (`agent_disconnected`).
    pub async fn agent_connected(&self, agent_id: i64) {
        let gate = self.agent_gate(agent_id);
        let _one_at_a_time = gate.lock().await;
        self.record_connection(agent_id).await;
    }

    /// Record the agent's connection to this node (the caller holds the
    /// agent's gate). Should the record refuse it (a database error), the
    /// agent's console is still connected here: the ticker tries again
    /// every tick, so that a console open through a database outage does
    /// not leave its agent marked absent, their tickets taken back once the
    /// grace has passed. False if refused.
    async fn record_connection(&self, agent_id: i64) -> bool {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent_id);
        match self.db.mark_connected(agent_id, self.bus.node()).await {
            Ok(()) => true,
            // No agent of that name any more: nothing to record.
            Err(crate::store::StoreError::NotFound(_)) => true,
            Err(e) => {
                tracing::warn!(error = %e, agent_id, "could not record a connection; will try again");
                self.metrics.connections_unrecorded.inc();
                self.connections_unrecorded
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                false
            }
        }
    }

    /// Whether a connection could not be recorded since the last call (see
    /// [`Desk::record_connection`]).
    pub fn take_unrecorded_connections(&self) -> bool {
        self.connections_unrecorded
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// The agent's last socket on this node closed. `reconnected` tells
    /// whether they have a socket here again (checked under the agent's
    /// gate: a reconnect that made them available first is not undone).
    /// They go offline only if no console of theirs is connected to another
    /// node either: a second tab served by another node, or a console that
    /// reconnected elsewhere before this node noticed the drop (a node
    /// restarting, a network blip the old socket takes a ping timeout to
    /// notice), keeps its agent available, with their tickets.
    pub async fn agent_disconnected(&self, agent_id: i64, reconnected: impl Fn() -> bool) {
        let gate = self.agent_gate(agent_id);
        let _one_at_a_time = gate.lock().await;
        if reconnected() {
            return;
        }
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&agent_id);
        let node = self.bus.node();
        match self.db.mark_disconnected(agent_id, node, self.now()).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(error = %e, agent_id, "could not record a disconnection"),
        }
        if let Err(e) = self
            .set_state_ungated(agent_id, AgentState::Offline, Some("disconnected"))
            .await
        {
            tracing::warn!(error = %e, agent_id, "could not take a disconnected agent offline");
        }
    }

    /// Expire overdue offers and offer waiting tickets, on every queue.
    /// Runs on every node; the routing layer makes each expiry happen once.
    pub async fn tick(&self) -> anyhow::Result<()> {
        self.expire_compensation().await;
        self.run_due_calls().await;
        let now = self.now();
        for queue in self.db.queues().await? {
            let expired = self.routing.expire(queue.id, now).await?;
            if !expired.is_empty() {
                self.metrics.offers_expired.add(expired.len() as u64);
                self.requeue(&expired, "offer_expired", "timeout", now)
                    .await?;
                self.count_missed(&expired, &queue).await?;
            }
            self.overflow(&queue).await?;
            self.dispatch(queue.id).await?;
        }
        self.end_wrap_ups().await?;
        self.mark_agents_of_lost_nodes().await?;
        self.return_abandoned().await?;
        self.quality_tick().await;
        Ok(())
    }

    /// Put every waiting ticket of the record into the live queues (after a
    /// start, or a Redis that lost its data). Tickets with a live offer stay
    /// offered; the rest wait at their rank.
    pub async fn reconcile(&self) -> anyhow::Result<usize> {
        let mut queued = 0;
        for t in self.db.live_tickets().await? {
            if matches!(t.status, TicketStatus::Queued | TicketStatus::Offered) {
                self.back_in_line(&t).await?;
                queued += 1;
            }
        }
        self.rebuild_due_index(false).await?;
        Ok(queued)
    }

    /// The periodic check. A waiting ticket of the record that is neither
    /// waiting nor offered live may be missing (Redis lost it) or in the
    /// middle of an accept (settled live, not yet committed: offers are
    /// live state, so the record still says `queued`). It is put back in
    /// line only when the previous pass found it missing too: an accept
    /// takes milliseconds, not a reconcile interval.
    pub async fn reconcile_quiet(&self) -> anyhow::Result<usize> {
        let quiet_before = self.now() - RECONCILE_QUIET_MS;
        let mut missing = Vec::new();
        let mut live: std::collections::HashMap<i64, std::collections::HashSet<i64>> =
            Default::default();
        for t in self.db.live_tickets().await? {
            if t.updated_at_ms >= quiet_before
                || !matches!(t.status, TicketStatus::Queued | TicketStatus::Offered)
            {
                continue;
            }
            let here = match live.entry(t.queue_id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let mut here: std::collections::HashSet<i64> = self
                        .routing
                        .waiting(t.queue_id)
                        .await?
                        .into_iter()
                        .collect();
                    let offers = self.routing.offers(t.queue_id).await?;
                    here.extend(offers.iter().map(|o| o.ticket_id));
                    v.insert(here)
                }
            };
            if !here.contains(&t.id) {
                missing.push(t);
            }
        }
        let suspects: std::collections::HashSet<i64> = missing.iter().map(|t| t.id).collect();
        let before = std::mem::replace(&mut *self.lock_missing(), suspects);
        let mut queued = 0;
        for t in missing.into_iter().filter(|t| before.contains(&t.id)) {
            self.back_in_line(&t).await?;
            queued += 1;
        }
        self.rebuild_due_index(false).await?;
        Ok(queued)
    }

    /// A waiting ticket of the record into its live line, at its rank.
    async fn back_in_line(&self, t: &crate::store::LiveTicket) -> anyhow::Result<()> {
        self.routing
            .enqueue(WaitingTicket {
                ticket_id: t.id,
                queue_id: t.queue_id,
                kind: eligibility::kind_of(t.kind),
                rank_ms: t.rank_ms,
                entered_ms: t.created_at_ms,
            })
            .await
    }

    fn lock_missing(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<i64>> {
        self.missing_live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub fn validate_outcome(outcome: &Outcome) -> ApiResult<()> {
    let code = outcome.code.trim();
    let mut errors = Vec::new();
    if code.is_empty() || code.len() > 64 {
        errors.push(callcenter_proto::http::FieldError {
            field: "outcome.code".into(),
            message: "must be 1 to 64 characters".into(),
        });
    }
    if outcome.note.chars().count() > 4000 {
        errors.push(callcenter_proto::http::FieldError {
            field: "outcome.note".into(),
            message: "must be at most 4000 characters".into(),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}
