//! Which queues an agent serves, from which bullseye ring, and in what
//! order of preference (the queue's selection strategy).

use super::Desk;
use crate::routing::{AgentQueue, TicketKind};
use callcenter_proto::http::{Queue, SkillLevel, Strategy};
use std::collections::HashMap;

/// Whether skills (name → level) meet every requirement.
fn meets(skills: &HashMap<String, u8>, required: &[SkillLevel]) -> bool {
    required
        .iter()
        .all(|r| skills.get(&r.skill).is_some_and(|level| *level >= r.level))
}

/// The relaxed rings of a queue: the overflow steps that lower the skill
/// requirement, in the order they open.
pub fn relaxed_rings(queue: &Queue) -> Vec<(i64, &[SkillLevel])> {
    let mut rings: Vec<(i64, &[SkillLevel])> = queue
        .spec
        .overflow
        .iter()
        .filter_map(|step| {
            step.required_skills
                .as_deref()
                .map(|skills| (i64::from(step.after_seconds) * 1000, skills))
        })
        .collect();
    rings.sort_by_key(|(after, _)| *after);
    rings
}

/// When each relaxed ring opens, in milliseconds of waiting (for `dispatch`).
pub fn ring_after_ms(queue: &Queue) -> Vec<i64> {
    relaxed_rings(queue)
        .into_iter()
        .map(|(after, _)| after)
        .collect()
}

/// The innermost ring of the queue the skills qualify for, if any.
pub fn ring_of(queue: &Queue, skills: &HashMap<String, u8>) -> Option<u8> {
    if meets(skills, &queue.spec.required_skills) {
        return Some(0);
    }
    relaxed_rings(queue)
        .iter()
        .position(|(_, required)| meets(skills, required))
        .map(|i| (i + 1) as u8)
}

/// The agent's preference in a queue under its strategy: lower is offered first.
pub fn preference(queue: &Queue, skills: &HashMap<String, u8>, taken_today: i64) -> i64 {
    match queue.spec.strategy {
        Strategy::LongestIdle => 0,
        Strategy::BestSkill => -queue
            .spec
            .required_skills
            .iter()
            .map(|r| i64::from(skills.get(&r.skill).copied().unwrap_or(0)))
            .sum::<i64>(),
        Strategy::FewestToday => taken_today,
    }
}

pub fn kind_of(code: &str) -> TicketKind {
    TicketKind::from_code(code).unwrap_or(TicketKind::Inbound)
}

pub(super) fn start_of_day(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(86_400_000)
}

impl Desk {
    /// The queues this agent serves now, each with its ring and preference.
    pub async fn agent_queues(&self, agent_id: i64) -> anyhow::Result<Vec<AgentQueue>> {
        let profile = self.db.agent_profile(agent_id).await?;
        let skills: HashMap<String, u8> = profile
            .skills
            .into_iter()
            .map(|s| (s.skill, s.level))
            .collect();
        let mut taken_today = None;
        let mut queues = Vec::new();
        for queue in self.db.queues().await? {
            let Some(ring) = ring_of(&queue, &skills) else {
                continue;
            };
            let taken = if queue.spec.strategy == Strategy::FewestToday {
                match taken_today {
                    Some(n) => n,
                    None => {
                        let n = self
                            .db
                            .taken_since(agent_id, start_of_day(self.now()))
                            .await?;
                        taken_today = Some(n);
                        n
                    }
                }
            } else {
                0
            };
            queues.push(AgentQueue {
                queue_id: queue.id,
                ring,
                preference: preference(&queue, &skills, taken),
            });
        }
        Ok(queues)
    }

    /// After a ticket: "fewest today" queues see the agent's new count.
    pub(super) async fn update_preferences(&self, agent_id: i64) -> anyhow::Result<()> {
        let queues = self.db.queues().await?;
        if !queues
            .iter()
            .any(|q| q.spec.strategy == Strategy::FewestToday)
        {
            return Ok(());
        }
        let taken = self
            .db
            .taken_since(agent_id, start_of_day(self.now()))
            .await?;
        for q in self.agent_queues(agent_id).await? {
            let strategy = queues
                .iter()
                .find(|x| x.id == q.queue_id)
                .map(|x| x.spec.strategy);
            if strategy == Some(Strategy::FewestToday) {
                self.routing
                    .set_preference(agent_id, q.queue_id, taken)
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callcenter_proto::http::{OverflowStep, QueueSpec};

    fn queue(required: &[(&str, u8)], rings: &[(u32, &[(&str, u8)])], strategy: Strategy) -> Queue {
        let skills = |s: &[(&str, u8)]| {
            s.iter()
                .map(|(n, l)| SkillLevel {
                    skill: n.to_string(),
                    level: *l,
                })
                .collect::<Vec<_>>()
        };
        Queue {
            id: 1,
            spec: QueueSpec {
                name: "q".into(),
                required_skills: skills(required),
                service_level_seconds: 60,
                offer_timeout_seconds: 30,
                wrap_up_seconds: 0,
                strategy,
                priority: Default::default(),
                overflow: rings
                    .iter()
                    .map(|(after, s)| OverflowStep {
                        after_seconds: *after,
                        required_skills: Some(skills(s)),
                        overflow_queue_id: None,
                    })
                    .collect(),
                missed_offers_limit: 3,
                reconnect_grace_seconds: 120,
            },
        }
    }

    fn agent(skills: &[(&str, u8)]) -> HashMap<String, u8> {
        skills.iter().map(|(n, l)| (n.to_string(), *l)).collect()
    }

    #[test]
    fn rings_open_from_the_full_requirement_outwards() {
        let q = queue(
            &[("billing", 8)],
            &[(60, &[("billing", 4)]), (30, &[("billing", 6)])],
            Strategy::LongestIdle,
        );
        assert_eq!(ring_after_ms(&q), vec![30_000, 60_000]);
        assert_eq!(ring_of(&q, &agent(&[("billing", 9)])), Some(0));
        assert_eq!(ring_of(&q, &agent(&[("billing", 6)])), Some(1));
        assert_eq!(ring_of(&q, &agent(&[("billing", 5)])), Some(2));
        assert_eq!(ring_of(&q, &agent(&[("billing", 3)])), None);
        assert_eq!(ring_of(&q, &agent(&[])), None);
    }

    #[test]
    fn preferences_follow_the_strategy() {
        let skilled = agent(&[("billing", 9)]);
        let novice = agent(&[("billing", 5)]);
        let best = queue(&[("billing", 3)], &[], Strategy::BestSkill);
        assert!(preference(&best, &skilled, 0) < preference(&best, &novice, 0));
        let fewest = queue(&[], &[], Strategy::FewestToday);
        assert!(preference(&fewest, &skilled, 2) < preference(&fewest, &novice, 5));
        let idle = queue(&[], &[], Strategy::LongestIdle);
        assert_eq!(
            preference(&idle, &skilled, 7),
            preference(&idle, &novice, 1)
        );
    }
}
