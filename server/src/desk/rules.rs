//! The routing rules a queue sets, applied by the desk: priority head starts,
//! wrap-up, missed offers, disconnected agents' tickets, overflow between
//! queues, and cancellation.

use super::Desk;
use crate::error::{ApiError, ApiResult};
use crate::routing::{Offer, WaitingTicket};
use callcenter_proto::http::{Customer, PriorityRule, Queue, Ticket};
use callcenter_proto::ws::ServerEvent;
use callcenter_proto::{AgentState, TicketStatus};
use std::collections::HashSet;

/// A ticket's head start in its queue, in milliseconds of waiting time.
pub fn head_start_ms(rule: &PriorityRule, base_priority_seconds: u32, customer: &Customer) -> i64 {
    let tier = rule
        .tier_head_start_seconds
        .get(&customer.tier)
        .copied()
        .unwrap_or(0);
    let value = if rule.value_head_start_seconds_per_1000 == 0 {
        0
    } else {
        let per_1000 = i64::from(rule.value_head_start_seconds_per_1000);
        (customer.value_minor.max(0) / 1000 * per_1000)
            .min(i64::from(rule.max_value_head_start_seconds))
    };
    (i64::from(base_priority_seconds) + i64::from(tier) + value) * 1000
}

/// The place in line of a ticket returned to its queue: ahead of every
/// ticket that came in normally.
pub const FRONT_OF_QUEUE_RANK: i64 = 0;

impl Desk {
    /// After a ticket ends: the agent pauses for the queue's wrap-up, if any,
    /// and gets no offer until it is over (or until they end it themselves).
    pub(super) async fn after_ticket(&self, agent_id: i64, queue: &Queue) -> anyhow::Result<()> {
        let now = self.now();
        self.update_preferences(agent_id).await?;
        if queue.spec.wrap_up_seconds == 0 {
            for q in self.agent_queues(agent_id).await? {
                self.dispatch(q.queue_id).await?;
            }
            return Ok(());
        }
        let agent = self.db.agent_routing(agent_id).await?;
        if agent.state != AgentState::Available {
            return Ok(());
        }
        let until = now + i64::from(queue.spec.wrap_up_seconds) * 1000;
        self.db.set_wrap_up_until(agent_id, Some(until)).await?;
        self.set_state(agent_id, AgentState::WrapUp, Some("wrap-up"))
            .await?;
        Ok(())
    }

    /// Agents whose wrap-up is over are available again.
    pub(super) async fn end_wrap_ups(&self) -> anyhow::Result<()> {
        for agent_id in self.db.wrap_ups_over(self.now()).await? {
            self.db.set_wrap_up_until(agent_id, None).await?;
            self.set_state(agent_id, AgentState::Available, None)
                .await?;
        }
        Ok(())
    }

    /// Offers that expired count against their agents; an agent who misses
    /// the queue's limit in a row goes on break and is told why.
    pub(super) async fn count_missed(
        &self,
        expired: &[Offer],
        queue: &Queue,
    ) -> anyhow::Result<()> {
        for offer in expired {
            let missed = self.db.offer_missed(offer.agent_id).await?;
            if queue.spec.missed_offers_limit > 0 && missed >= queue.spec.missed_offers_limit {
                self.db.offer_answered(offer.agent_id).await?;
                self.set_state(offer.agent_id, AgentState::Break, Some("missed offers"))
                    .await?;
            }
        }
        Ok(())
    }

    /// The consoles held by a node that no longer says it is alive (killed,
    /// out of memory, its machine gone: it could not say they closed) are
    /// forgotten; the agents left with none on another node are absent from
    /// now and offline, as if their consoles had dropped: their pending
    /// offers go to others at once, and their tickets after the reconnect
    /// grace unless they come back (on any node).
    pub(super) async fn mark_agents_of_lost_nodes(&self) -> anyhow::Result<()> {
        let nodes: Vec<String> = self
            .db
            .nodes_with_connected_agents()
            .await?
            .into_iter()
            .filter(|n| n != self.bus.node())
            .collect();
        if nodes.is_empty() {
            return Ok(());
        }
        let alive = self.bus.alive(&nodes).await?;
        for (node, _) in nodes.iter().zip(alive).filter(|(_, alive)| !alive) {
            let agents = self.db.mark_node_lost(node, self.now()).await?;
            tracing::warn!(
                node,
                agents = agents.len(),
                "a node went silent: its agents are absent"
            );
            // Recorded absent already: one who cannot be taken offline now
            // still loses their tickets after the grace.
            for agent_id in agents {
                if let Err(e) = self
                    .set_state(agent_id, AgentState::Offline, Some("connection lost"))
                    .await
                {
                    tracing::warn!(error = %e, agent_id, "could not take an agent of a lost node offline");
                }
            }
        }
        Ok(())
    }

    /// This node's word that it is alive had lapsed (it was stuck or cut off
    /// for longer than its term): another node may have marked its agents
    /// absent meanwhile. Their consoles are still here, so the connections
    /// the record lost are recorded again (an agent taken offline meanwhile
    /// stays offline until they choose otherwise; their tickets stay theirs).
    /// One read when the record has them all. Also how a connection the
    /// database refused is recorded on a later tick
    /// ([`Desk::take_unrecorded_connections`]).
    pub async fn reclaim_connections(&self) {
        let recorded: HashSet<i64> = match self.db.agents_connected_on(self.bus.node()).await {
            Ok(agents) => agents.into_iter().collect(),
            Err(e) => {
                // Tried again on the next tick.
                tracing::warn!(error = %e, "could not read this node's connections");
                self.connections_unrecorded
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        };
        let agents: Vec<i64> = self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|agent_id| !recorded.contains(agent_id))
            .copied()
            .collect();
        for agent_id in agents {
            let gate = self.agent_gate(agent_id);
            let _one_at_a_time = gate.lock().await;
            // Still here (a socket that closed meanwhile was marked absent
            // under this gate and left the map).
            let here = self
                .connections
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&agent_id);
            // A refusal stops the round (the database is failing: the next
            // tick tries again, rather than each agent failing in turn).
            if here && !self.record_connection(agent_id).await {
                return;
            }
        }
    }

    /// Tickets of agents who did not come back within the queue's grace
    /// period go back to the front of their queue.
    pub(super) async fn return_abandoned(&self) -> anyhow::Result<()> {
        let now = self.now();
        for held in self.db.held_by_absent_agents().await? {
            let queue = self.db.queue(held.queue_id).await?;
            let grace_ms = i64::from(queue.spec.reconnect_grace_seconds) * 1000;
            if held.disconnected_at_ms + grace_ms > now {
                continue;
            }
            let returned = self
                .db
                .return_to_queue(
                    held.ticket_id,
                    held.agent_id,
                    FRONT_OF_QUEUE_RANK,
                    "agent did not reconnect",
                    now,
                )
                .await?;
            if returned {
                let ticket = self.db.ticket(held.ticket_id).await?;
                self.routing
                    .release(held.agent_id, held.ticket_id, now)
                    .await?;
                self.routing
                    .enqueue(WaitingTicket {
                        ticket_id: held.ticket_id,
                        queue_id: held.queue_id,
                        kind: super::eligibility::kind_of(&ticket.kind),
                        rank_ms: FRONT_OF_QUEUE_RANK,
                        entered_ms: now,
                    })
                    .await?;
                // The agent's consoles drop it (a console resuming later
                // reads this in its stream).
                self.tell(held.agent_id, ServerEvent::TicketUpdated { ticket })
                    .await;
                self.dispatch(held.queue_id).await?;
            }
        }
        Ok(())
    }

    /// Tickets that waited past a queue's overflow step move to its overflow queue.
    pub(super) async fn overflow(&self, queue: &Queue) -> anyhow::Result<()> {
        let now = self.now();
        for step in &queue.spec.overflow {
            let Some(to) = step.overflow_queue_id else {
                continue;
            };
            let since = now - i64::from(step.after_seconds) * 1000;
            let waiting = self.db.waiting_since(queue.id, since).await?;
            if waiting.is_empty() {
                continue;
            }
            // A ticket offered right now stays: its agent is looking at it.
            // (Offers are live state: the record says `queued`.)
            let offered: HashSet<i64> = self
                .routing
                .offers(queue.id)
                .await?
                .into_iter()
                .map(|o| o.ticket_id)
                .collect();
            let mut moved = false;
            for (ticket_id, rank_ms) in waiting {
                if offered.contains(&ticket_id) {
                    continue;
                }
                if self.db.move_to_queue(ticket_id, queue.id, to, now).await? {
                    let ticket = self.db.ticket(ticket_id).await?;
                    // Offered since the look above: withdrawn, its agent told.
                    if let Some(offer) = self.routing.cancel(queue.id, ticket_id).await? {
                        self.requeue(&[offer], "offer_rescinded", "overflow", now)
                            .await?;
                    }
                    self.routing
                        .enqueue(WaitingTicket {
                            ticket_id,
                            queue_id: to,
                            kind: super::eligibility::kind_of(&ticket.kind),
                            rank_ms,
                            entered_ms: ticket.created_at_ms,
                        })
                        .await?;
                    moved = true;
                }
            }
            if moved {
                self.dispatch(to).await?;
            }
        }
        Ok(())
    }

    /// Withdraw a ticket that has not ended: its offer is rescinded, its
    /// holder freed and told.
    pub async fn cancel(&self, actor: i64, ticket_id: i64, reason: &str) -> ApiResult<Ticket> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(ApiError::field("reason", "must be 1 to 200 characters"));
        }
        let now = self.now();
        let before = self.db.cancel_ticket(ticket_id, actor, reason, now).await?;
        if let Some(offer) = self.routing.cancel(before.queue_id, ticket_id).await? {
            self.requeue(&[offer], "offer_rescinded", "cancelled", now)
                .await?;
        }
        let ticket = self.db.ticket(ticket_id).await?;
        self.escalation_ended(&ticket).await;
        if before.status == TicketStatus::Assigned
            && let Some(agent) = before.assigned_agent_id
        {
            self.routing.release(agent, ticket_id, now).await?;
            self.tell(
                agent,
                ServerEvent::TicketUpdated {
                    ticket: ticket.clone(),
                },
            )
            .await;
            for q in self.db.queues_for_agent(agent).await? {
                self.dispatch(q).await?;
            }
        }
        Ok(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(tier: &str, value_minor: i64) -> Customer {
        Customer {
            id: 1,
            external_id: "c".into(),
            name: "n".into(),
            email: None,
            phone: None,
            tier: tier.into(),
            value_minor,
            timezone: None,
            purchases: Vec::new(),
        }
    }

    #[test]
    fn head_start_adds_category_tier_and_capped_value() {
        let rule = PriorityRule {
            tier_head_start_seconds: [("gold".to_string(), 120)].into(),
            value_head_start_seconds_per_1000: 2,
            max_value_head_start_seconds: 300,
            ..PriorityRule::default()
        };
        assert_eq!(head_start_ms(&rule, 0, &customer("standard", 0)), 0);
        assert_eq!(head_start_ms(&rule, 30, &customer("gold", 0)), 150_000);
        assert_eq!(
            head_start_ms(&rule, 0, &customer("standard", 50_000)),
            100_000
        );
        assert_eq!(
            head_start_ms(&rule, 0, &customer("gold", 10_000_000)),
            420_000
        );
        assert_eq!(
            head_start_ms(&PriorityRule::default(), 10, &customer("gold", 10_000_000)),
            10_000
        );
    }
}
