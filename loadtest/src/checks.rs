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
//!   An offer replayed to a reconnected agent (made before its new
//!   connection opened) claims nothing until the agent accepts it: the
//!   client cannot tell whether it is still open before reading the rest of
//!   the replay, where its rescind may follow.
//! - `capacity_violations`: an offer arriving at an agent whose live offers
//!   plus held tickets already reach its capacity (same release rules).
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
    /// An offer of `ticket` arrived at `agent`.
    pub fn offered(&mut self, ticket: i64, agent: i64, deadline_ms: i64, now_ms: i64) -> Verdict {
        self.offered_once.insert(ticket);
        if self.ended.contains(&ticket) {
            self.offers_after_end += 1;
        }
        let verdict = match self.holders.get(&ticket) {
            Some(&(other, hold)) if other != agent => match hold {
                Hold::Offered { deadline_ms: d } if d <= now_ms => Verdict::Ok,
                _ => {
                    self.double_offers += 1;
                    Verdict::Double(format!(
                        "ticket {ticket} offered to agent {agent} while {} by agent {other}",
                        match hold {
                            Hold::Assigned => "held".to_string(),
                            Hold::Offered { deadline_ms: d } =>
                                format!("offered (for {} ms more)", d - now_ms),
                        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_offered_to_a_second_agent_while_the_first_holds_it_is_a_double_offer() {
        let mut t = Tickets::default();
        assert!(matches!(t.offered(7, 1, 10_000, 1_000), Verdict::Ok));
        assert!(matches!(t.accepted(7, 1), Verdict::Ok));
        assert!(matches!(t.offered(7, 2, 20_000, 2_000), Verdict::Double(_)));
        assert_eq!(t.double_offers, 1);
    }

    #[test]
    fn an_expired_declined_or_dropped_offer_frees_the_ticket_for_the_next_agent() {
        let mut t = Tickets::default();
        t.offered(7, 1, 5_000, 1_000);
        assert!(matches!(t.offered(7, 2, 11_000, 6_000), Verdict::Ok));
        t.released(7, 2);
        assert!(matches!(t.offered(7, 3, 12_000, 7_000), Verdict::Ok));
        t.dropped_offers(3, [7]);
        assert!(matches!(t.offered(7, 4, 13_000, 8_000), Verdict::Ok));
        assert_eq!(t.double_offers, 0);
    }

    #[test]
    fn a_ticket_that_never_ended_is_open() {
        let mut t = Tickets::default();
        t.created.insert(1, 100);
        t.created.insert(2, 200);
        t.offered(100, 1, 5_000, 1_000);
        t.accepted(100, 1);
        t.resolved(100, 1);
        assert_eq!(t.open(), 1);
        assert_eq!(t.never_offered(), 1);
    }
}
