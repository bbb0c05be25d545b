//! The invariants, checked from the clients' own view while the run goes on.
//!
//! - `lost`: a ticket the API accepted (201) that never ended (no successful
//!   resolve) by the end of the drain.
//! - `double_offers`: a ticket offered to (or accepted by) an agent while
//!   another agent still had a live offer for it or held it. A holder's claim
//!   ends at the moment the client *sent* its decline or resolve (the server
//!   can only move the ticket after receiving it), when its offer was
//!   rescinded, when the offer's deadline passed, or when the holder's
//!   connection dropped (its offers only: assigned tickets stay its own).
//!   An offer that arrives while another agent's offer of the ticket still
//!   looks open is judged when that agent hears the offer was rescinded:
//!   the frames of two agents' sockets arrive in no fixed order, and a
//!   rescind the server began before it sent the new offer (its `at_ms` no
//!   later than the new offer's `sent_at_ms`: both read on the server's
//!   clock, the first before the ticket was free, the second after the new
//!   offer was made) is no double offer; one begun after, or none by the
//!   end of the run, is.
//!   An offer whose own rescind the agent read first (the server can write
//!   the rescind while the offer's delivery still reads the customer's
//!   card) is void: it claims nothing and counts as
//!   `offer_after_its_rescind` among the actions.
//!   An offer replayed to a reconnected agent (made before its new
//!   connection opened) claims nothing until the agent accepts it: the
//!   client cannot tell whether it is still open before reading the rest of
//!   the replay, where its rescind may follow.
//! - `capacity_violations`: an offer arriving at an agent whose live offers
//!   plus held tickets already reach its capacity (same release rules).
//!   A ticket whose accept is still unanswered is held only if that accept
//!   succeeds: an offer that fills the agent only by counting such tickets
//!   is judged when their answers come ([`CapacityDoubts`]); an accept
//!   refused (its offer expired or was rescinded first, and the rescind can
//!   reach the agent after the next offer) takes its ticket out of the
//!   count.
//! - `resume_gaps`: a stream event whose `seq` is not the next one after the
//!   last the agent processed, within a connection or across a resumed
//!   reconnect.

use std::collections::{HashMap, HashSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    Offered { deadline_ms: i64 },
    Assigned,
}

#[derive(Default)]
pub struct Tickets {
    /// Harness sequence number → ticket id, for tickets the API accepted.
    pub created: HashMap<u64, i64>,
    pub ended: HashSet<i64>,
    pub offered_once: HashSet<i64>,
    holders: HashMap<i64, (i64, Hold)>,
    /// (ticket, agent whose offer looked open) → the later offer's time and
    /// what to report if it was a double offer after all.
    overlaps: HashMap<(i64, i64), (i64, String)>,
    pub double_offers: u64,
    pub capacity_violations: u64,
    pub resume_gaps: u64,
    pub offers_after_end: u64,
}

pub enum Verdict {
    Ok,
    Double(String),
}

impl Tickets {
    /// An offer of `ticket` sent at `offered_at_ms` (server time) arrived at
    /// `agent`.
    pub fn offered(
        &mut self,
        ticket: i64,
        agent: i64,
        offered_at_ms: i64,
        deadline_ms: i64,
        now_ms: i64,
    ) -> Verdict {
        self.offered_once.insert(ticket);
        if self.ended.contains(&ticket) {
            self.offers_after_end += 1;
        }
        let verdict = match self.holders.get(&ticket) {
            Some(&(other, hold)) if other != agent => match hold {
                Hold::Offered { deadline_ms: d } if d <= now_ms => Verdict::Ok,
                Hold::Offered { deadline_ms: d } => {
                    // Judged when the other agent hears of its rescind.
                    self.overlaps.insert(
                        (ticket, other),
                        (
                            offered_at_ms,
                            format!(
                                "ticket {ticket} offered to agent {agent} while offered \
                                 (for {} ms more) by agent {other}",
                                d - now_ms
                            ),
                        ),
                    );
                    Verdict::Ok
                }
                Hold::Assigned => {
                    self.double_offers += 1;
                    Verdict::Double(format!(
                        "ticket {ticket} offered to agent {agent} while held by agent {other}"
                    ))
                }
            },
            _ => Verdict::Ok,
        };
        self.holders
            .insert(ticket, (agent, Hold::Offered { deadline_ms }));
        verdict
    }

    /// The agent's accept succeeded.
    pub fn accepted(&mut self, ticket: i64, agent: i64) -> Verdict {
        let verdict = match self.holders.get(&ticket) {
            Some(&(other, Hold::Assigned)) if other != agent => {
                self.double_offers += 1;
                Verdict::Double(format!(
                    "ticket {ticket} accepted by agent {agent} while held by agent {other}"
                ))
            }
            _ => Verdict::Ok,
        };
        self.holders.insert(ticket, (agent, Hold::Assigned));
        verdict
    }

    /// The agent gave the ticket up (declined, resolved, offer rescinded or
    /// refused): its claim ends if it still had one.
    pub fn released(&mut self, ticket: i64, agent: i64) {
        if self.holders.get(&ticket).is_some_and(|(a, _)| *a == agent) {
            self.holders.remove(&ticket);
        }
    }

    /// The agent heard that the server rescinded its offer of `ticket` at
    /// `at_ms` (its claim, if it still had one, ends with [`released`]): an
    /// offer of the ticket to another agent that arrived first was a double
    /// offer only if made before this rescind.
    ///
    /// [`released`]: Tickets::released
    pub fn rescinded(&mut self, ticket: i64, agent: i64, at_ms: i64) -> Verdict {
        match self.overlaps.remove(&(ticket, agent)) {
            Some((later_offer_ms, _)) if at_ms > 0 && at_ms <= later_offer_ms => Verdict::Ok,
            Some((_, what)) => {
                self.double_offers += 1;
                Verdict::Double(what)
            }
            None => Verdict::Ok,
        }
    }

    /// At the end of the run: offers that arrived while another agent's
    /// looked open, and whose rescind that agent never heard, were double
    /// offers.
    pub fn settle_overlaps(&mut self) -> Vec<String> {
        let unsettled: Vec<String> = self.overlaps.drain().map(|(_, (_, what))| what).collect();
        self.double_offers += unsettled.len() as u64;
        unsettled
    }

    /// The agent's connection dropped: its pending offers are the server's
    /// to rescind; what it holds stays its own.
    pub fn dropped_offers(&mut self, agent: i64, tickets: impl IntoIterator<Item = i64>) {
        for t in tickets {
            if self
                .holders
                .get(&t)
                .is_some_and(|(a, h)| *a == agent && matches!(h, Hold::Offered { .. }))
            {
                self.holders.remove(&t);
            }
        }
    }

    pub fn resolved(&mut self, ticket: i64, agent: i64) {
        self.ended.insert(ticket);
        self.released(ticket, agent);
    }

    /// Tickets the API accepted that have not ended.
    pub fn open(&self) -> usize {
        self.created
            .values()
            .filter(|t| !self.ended.contains(t))
            .count()
    }

    pub fn never_offered(&self) -> usize {
        self.created
            .values()
            .filter(|t| !self.offered_once.contains(t))
            .count()
    }
}

/// Offers that arrived at one agent when its capacity looked full only by
/// counting tickets whose accepts were not answered yet.
#[derive(Default)]
pub struct CapacityDoubts {
    doubts: Vec<Doubt>,
}

struct Doubt {
    /// How many of `accepting` must turn out not held for the offer to fit.
    over: usize,
    accepting: Vec<i64>,
    what: String,
}

impl CapacityDoubts {
    /// An offer arrived at an agent with `in_use` claims (offers and held
    /// tickets) of `capacity`, `accepting` of them tickets whose accepts
    /// are unanswered. A violation now (its description), or none, or a
    /// doubt judged by [`answered`](Self::answered).
    pub fn offered(
        &mut self,
        in_use: usize,
        capacity: usize,
        accepting: Vec<i64>,
        what: String,
    ) -> Option<String> {
        if in_use < capacity {
            return None;
        }
        let over = in_use - capacity + 1;
        if accepting.len() < over {
            return Some(what);
        }
        self.doubts.push(Doubt {
            over,
            accepting,
            what,
        });
        None
    }

    /// The accept of `ticket` was answered: `held` if it succeeded. Returns
    /// the offers this shows arrived above capacity.
    pub fn answered(&mut self, ticket: i64, held: bool) -> Vec<String> {
        let mut violations = Vec::new();
        self.doubts.retain_mut(|d| {
            let Some(i) = d.accepting.iter().position(|t| *t == ticket) else {
                return true;
            };
            d.accepting.swap_remove(i);
            if !held {
                d.over -= 1;
                return d.over > 0;
            }
            if d.accepting.len() < d.over {
                violations.push(std::mem::take(&mut d.what));
                return false;
            }
            true
        });
        violations
    }

    /// The end of the run: doubts whose accepts were never answered count.
    pub fn settle(&mut self) -> Vec<String> {
        self.doubts.drain(..).map(|d| d.what).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_after_an_accept_that_is_then_refused_fits() {
        let mut doubts = CapacityDoubts::default();
        // Ticket 7's accept is unanswered when ticket 8 is offered.
        assert_eq!(doubts.offered(1, 1, vec![7], "8 over 7".into()), None);
        assert!(doubts.answered(7, false).is_empty());
        assert!(doubts.settle().is_empty());
    }

    #[test]
    fn an_offer_after_an_accept_that_then_succeeds_is_above_capacity() {
        let mut doubts = CapacityDoubts::default();
        assert_eq!(doubts.offered(1, 1, vec![7], "8 over 7".into()), None);
        assert_eq!(doubts.answered(7, true), ["8 over 7"]);
        assert!(doubts.settle().is_empty());
    }

    #[test]
    fn an_offer_to_an_agent_full_with_answered_claims_is_above_capacity_at_once() {
        let mut doubts = CapacityDoubts::default();
        assert_eq!(doubts.offered(0, 1, vec![], "fits".into()), None);
        // Capacity 2: one held ticket, one accept unanswered.
        assert_eq!(
            doubts.offered(3, 2, vec![7], "9 over three".into()),
            Some("9 over three".into())
        );
        assert_eq!(doubts.offered(2, 2, vec![7], "9 over two".into()), None);
        assert!(doubts.answered(5, true).is_empty());
        assert_eq!(doubts.settle(), ["9 over two"]);
    }

    #[test]
    fn a_ticket_offered_to_a_second_agent_while_the_first_holds_it_is_a_double_offer() {
        let mut t = Tickets::default();
        assert!(matches!(t.offered(7, 1, 1_000, 10_000, 1_000), Verdict::Ok));
        assert!(matches!(t.accepted(7, 1), Verdict::Ok));
        assert!(matches!(
            t.offered(7, 2, 2_000, 20_000, 2_000),
            Verdict::Double(_)
        ));
        assert_eq!(t.double_offers, 1);
    }

    #[test]
    fn an_expired_declined_or_dropped_offer_frees_the_ticket_for_the_next_agent() {
        let mut t = Tickets::default();
        t.offered(7, 1, 1_000, 5_000, 1_000);
        assert!(matches!(t.offered(7, 2, 6_000, 11_000, 6_000), Verdict::Ok));
        t.released(7, 2);
        assert!(matches!(t.offered(7, 3, 7_000, 12_000, 7_000), Verdict::Ok));
        t.dropped_offers(3, [7]);
        assert!(matches!(t.offered(7, 4, 8_000, 13_000, 8_000), Verdict::Ok));
        assert_eq!(t.double_offers, 0);
    }

    #[test]
    fn an_offer_arriving_before_the_rescind_that_preceded_it_is_no_double_offer() {
        let mut t = Tickets::default();
        // Agent 1's offer is withdrawn at 2 000 and the ticket offered to
        // agent 2 at 2 001; agent 2's frame is read first.
        t.offered(7, 1, 1_000, 31_000, 1_000);
        assert!(matches!(t.offered(7, 2, 2_001, 32_001, 2_010), Verdict::Ok));
        t.released(7, 1);
        assert!(matches!(t.rescinded(7, 1, 2_000), Verdict::Ok));
        assert!(t.settle_overlaps().is_empty());
        assert_eq!(t.double_offers, 0);
    }

    #[test]
    fn an_offer_made_before_the_other_agents_was_rescinded_is_a_double_offer() {
        let mut t = Tickets::default();
        t.offered(7, 1, 1_000, 31_000, 1_000);
        t.offered(7, 2, 2_001, 32_001, 2_010);
        assert!(matches!(t.rescinded(7, 1, 2_500), Verdict::Double(_)));
        // And one whose rescind never came, counted at the end.
        t.offered(8, 1, 3_000, 33_000, 3_000);
        t.offered(8, 3, 3_500, 33_500, 3_510);
        let unsettled = t.settle_overlaps();
        assert_eq!(unsettled.len(), 1, "{unsettled:?}");
        assert!(unsettled[0].contains("ticket 8"), "{unsettled:?}");
        assert_eq!(t.double_offers, 2);
    }

    #[test]
    fn a_ticket_that_never_ended_is_open() {
        let mut t = Tickets::default();
        t.created.insert(1, 100);
        t.created.insert(2, 200);
        t.offered(100, 1, 1_000, 5_000, 1_000);
        t.accepted(100, 1);
        t.resolved(100, 1);
        assert_eq!(t.open(), 1);
        assert_eq!(t.never_offered(), 1);
    }
}
