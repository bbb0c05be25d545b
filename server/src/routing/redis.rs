//! Redis routing: shared by every server node.
//!
//! Same semantics as [`MemoryRouting`](super::memory::MemoryRouting), with
//! every multi-key step one atomic Lua script (`lua/*.lua`, EVALSHA with a
//! fallback to loading the script) that touches the keys of one hash slot
//! only, so it runs on a Redis Cluster as well as on one server.
//!
//! # Key layout
//! Per queue (hash tag `{q:<queue_id>}`), `<prefix>:{q:<id>}:` followed by
//! - `line`: ZSET ticket -> rank_ms, the waiting line;
//! - `info`: HASH ticket -> `rank_ms|kind|entered_ms` of a waiting ticket
//!   (exact: a ZSET score is a double; kind `i` or `o`);
//! - `offers`: HASH ticket -> `agent|version|deadline_ms|rank_ms|kind|entered_ms`;
//! - `deadlines`: ZSET ticket -> deadline_ms of its offer;
//! - `avail_i`, `avail_o`: ZSET `<idle member><agent member>` -> preference:
//!   the agents this queue believes ready with free inbound (outbound)
//!   capacity, in the order they are offered tickets (preference, then
//!   longest idle, then lowest id: the member sorts ties);
//! - `agstate`: HASH agent -> `gen|free_i|free_o|idle|ring`, the newest agent
//!   state this queue has seen, its free capacity hints per kind, the idle
//!   part of its member and its ring in this queue;
//! - `prefs`: HASH agent -> `gen|preference` (set by a readiness of
//!   generation `gen`, or by `set_preference`, which keeps the gen);
//! - `version`: the offer version counter (INCR; versions are unique per queue
//!   and strictly increase);
//! - `tried`: HASH ticket -> comma-separated agents who declined or missed
//!   it (or were away): they get it again only when no other agent is
//!   available; cleared when it is accepted or cancelled.
//!
//! Per agent (hash tag `{a:<agent_id>}`), `<prefix>:{a:<id>}:` followed by
//! - `state`: HASH cap_i, cap_o, ready, idle, gen, queues (`queue:ring,...`);
//! - `held`: HASH ticket -> `kind|queue|version` of its offer (kept once
//!   accepted, until released) or `kind` for a ticket assigned before
//!   `agent_ready`;
//! - `gone:<ticket>:<kind>:<queue>:<version>`: short-lived tombstone of an
//!   offer settled before its capacity reservation arrived.
//!
//! Tickets and agents are stored as 20-digit members (the id with its sign bit
//! flipped, zero-padded), so byte order is numeric order and ZSET ties sort by
//! the lowest id, as in memory. (This layout replaced one without kinds,
//! rings and preferences; a Redis holding the old one is rebuilt from the
//! database like an empty one, after deleting the routing keys.)
//!
//! # Who decides what
//! The queue slot decides everything about a ticket (waiting, offered,
//! settled, version); the agent slot decides capacity (`held` of the kind <
//! its cap, and ready) and the agent's ring. A dispatch step looks at the
//! first [`DISPATCH_WINDOW`] tickets of the line and pairs the first one
//! some agent of the queue's availability set of its kind may take (ring
//! open for it; preferring agents who have not tried the ticket, as in
//! memory) as a tentative offer; the agent slot then reserves capacity,
//! checking kind, ring and readiness; if it refuses, the next step puts the
//! ticket back at its rank and records the agent's state, then tries again.
//! Only reserved offers are returned.
//!
//! The two slots are separate scripts, so other operations interleave with
//! a dispatch between its step and its reservation. An offer settled in that
//! gap (expiry, cancel) must never be counted in place of a live one: its
//! unhold deletes its own `held` entry (exact value) or, if the reservation
//! has not arrived, leaves a tombstone that refuses it; and a reservation
//! that finds the agent already holding a newer offer of the same ticket in
//! the same queue (versions only increase, one offer of a ticket at a time)
//! is refused as settled. Without that refusal this interleaving lost
//! count of a live offer (the intermittent over-capacity of the cluster
//! stress test):
//!
//! 1. node 1 steps: tentative offer of T to A, version 1;
//! 2. node 2 expires it (queue slot): T back in line;
//! 3. node 3 steps and reserves: offer of T to A, version 2, `held[T] = v2`;
//! 4. node 1's reservation of version 1 arrives: it used to overwrite
//!    `held[T]` with `v1` (an older hold of the same ticket is not counted);
//! 5. node 2's unhold of version 1 deletes `held[T]` (its exact value): the
//!    live offer of version 2 no longer counts, A takes offers beyond its
//!    capacity.
//!
//! A ticket moves to another queue only after its cancel (whose unhold
//! completes first), so a hold of the same ticket from another queue is a
//! leftover and is replaced.
//!
//! Every agent-slot change that can make
//! an agent available again (ready, release, settled offers) sends the
//! agent's state with its generation to its queues; a queue keeps the newest
//! generation only, so late messages do no harm. A queue's view can only be
//! too optimistic, never too pessimistic: a too optimistic view costs a
//! refused reservation, which corrects it. The preference is the one thing
//! only the queue slot keeps (the order of eligible agents, not a limit): a
//! readiness sets it, `set_preference` changes it in one command.
//!
//! # Redis commands per operation (agent ready for one queue)
//! - `enqueue`: 1. `set_preference`: 1. `waiting`, `offers`, `ping`: 1.
//! - `dispatch`: 1 per offer + 1 reservation per offer (+1 per refused
//!   reservation); a dispatch that finds nothing to pair costs 1 (the step
//!   that makes an offer also tells whether another pair is possible, so no
//!   empty step follows); for an agent of several queues that becomes full
//!   for a kind, +1 per other queue.
//! - `accept`: 1 (the settle script in the queue slot; the ticket stays
//!   held in the agent slot until released).
//! - `decline`: 3 (settle, unhold, the agent's queue learns it is free);
//!   `cancel` of an offer: 3; `cancel` of a waiting ticket: 1.
//! - `release`: 2 (agent slot, then the agent's queue).
//! - `enqueue_then_dispatch`: as `dispatch` (its first step puts the ticket
//!   in line). `release_then_dispatch`: 1 (agent slot), then per planned
//!   queue as `dispatch` (its first step tells the queue the agent is
//!   free), +1 per other queue of the agent.
//! - `expire`: 1 + 2 per agent whose offers expired.
//! - `agent_ready`: 3 (+1 per queue of a pending offer to check);
//!   `agent_away`: 2, +1 when it rescinds offers.
//!
//! A full ticket lifecycle as the desk runs it (`enqueue_then_dispatch`,
//! accept, `release_then_dispatch` finding nothing to offer) is 5 calls,
//! which run 39 commands in Redis with the scripts' inner ones (an agent
//! script reads the agent's state and holds once and keeps that copy up to
//! date with its writes; an agent's state reaching a queue writes only the
//! availability sets whose member changes), measured by
//! `redis_commands_per_operation` in `server/tests/routing_conformance.rs`.
//!
//! # Limits
//! `rank_ms` and `deadline_ms` order through double scores: exact up to
//! 2^53; so do preferences. `offers` may show an offer whose reservation is
//! still under way (for the milliseconds of a dispatch); if a dispatch is
//! interrupted between the two, its tentative offer expires like any other.
//! A dispatch step walks a kind's availability set past agents whose ring
//! is not open yet or who tried the ticket: O(agents) in the worst case
//! (a ticket every available agent has passed on).
//! A readiness's preference that reaches a queue after a later
//! `set_preference` of the same agent there wins (both are the caller's
//! truth of the moment; the next readiness or `set_preference` corrects it).

use super::{
    AgentId, AgentQueue, DISPATCH_WINDOW, DispatchPlan, Offer, OfferGone, QueueId, ReadyAgent,
    Routing, TicketId, TicketKind, WaitingTicket,
};
use crate::redis_conn::RedisConn;
use anyhow::Context;
use async_trait::async_trait;
use redis::Script;
use std::collections::{BTreeMap, BTreeSet};

const QUEUE_COMMON: &str = include_str!("lua/queue_common.lua");
const AGENT_COMMON: &str = include_str!("lua/agent_common.lua");

/// Refused reservations in a row after which a dispatch gives up (a bug or a
/// pathological race; the next dispatch goes on).
const MAX_REFUSALS: usize = 1000;

struct Scripts {
    enqueue: Script,
    step: Script,
    settle: Script,
    expire: Script,
    cancel: Script,
    rescind: Script,
    prefer: Script,
    reserve: Script,
    unhold: Script,
    release: Script,
    away: Script,
    ready: Script,
}

impl Scripts {
    fn new() -> Self {
        let q = |body: &str| Script::new(&format!("{QUEUE_COMMON}\n{body}"));
        let a = |body: &str| Script::new(&format!("{AGENT_COMMON}\n{body}"));
        Self {
            enqueue: q(include_str!("lua/queue_enqueue.lua")),
            step: q(include_str!("lua/queue_step.lua")),
            settle: q(include_str!("lua/queue_settle.lua")),
            expire: q(include_str!("lua/queue_expire.lua")),
            cancel: q(include_str!("lua/queue_cancel.lua")),
            rescind: q(include_str!("lua/queue_rescind.lua")),
            prefer: q(include_str!("lua/queue_prefer.lua")),
            reserve: a(include_str!("lua/agent_reserve.lua")),
            unhold: a(include_str!("lua/agent_unhold.lua")),
            release: a(include_str!("lua/agent_release.lua")),
            away: a(include_str!("lua/agent_away.lua")),
            ready: a(include_str!("lua/agent_ready.lua")),
        }
    }
}

/// Routing state in Redis (one server or a cluster), under `prefix`.
pub struct RedisRouting {
    conn: RedisConn,
    prefix: String,
    scripts: Scripts,
}

/// An id as a member whose byte order is numeric order.
fn member(id: i64) -> String {
    format!("{:020}", (id as u64) ^ (1 << 63))
}

fn unmember(s: &str) -> anyhow::Result<i64> {
    let u: u64 = s.parse().with_context(|| format!("bad member {s:?}"))?;
    Ok((u ^ (1 << 63)) as i64)
}

fn int<T: std::str::FromStr>(s: &str) -> anyhow::Result<T> {
    s.parse()
        .map_err(|_| anyhow::anyhow!("bad number {s:?} from Redis"))
}

fn kind(code: &str) -> anyhow::Result<TicketKind> {
    TicketKind::from_code(code).ok_or_else(|| anyhow::anyhow!("bad ticket kind {code:?}"))
}

/// The agent slot's `queues`: `queue:ring,...`.
fn queues_field(queues: &[AgentQueue]) -> String {
    queues
        .iter()
        .map(|q| format!("{}:{}", q.queue_id, q.ring))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_queues(csv: &str) -> anyhow::Result<Vec<(QueueId, u32)>> {
    csv.split(',')
        .filter(|s| !s.is_empty())
        .map(|e| {
            let (q, ring) = e
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("bad agent queue {e:?}"))?;
            Ok((int(q)?, int(ring)?))
        })
        .collect()
}

/// What a dispatch step does before it applies agent states and pairs.
#[derive(Clone, Copy, Default)]
struct FirstStep<'a> {
    /// A tentative offer whose reservation failed, back in line.
    rollback: Option<(TicketId, AgentId, u64)>,
    /// A ticket into the line (as `enqueue`).
    enqueue: Option<&'a WaitingTicket>,
}

/// What a dispatch step pairs with: its time, the offers' deadline and the
/// queue's ring steps.
struct Pairing<'a> {
    now_ms: i64,
    deadline_ms: i64,
    ring_after_ms: &'a [i64],
}

/// What one queue needs to know about an agent, as of `generation`.
#[derive(Clone, Debug)]
struct AgentSync {
    agent: String,
    generation: String,
    free_in: i64,
    free_out: i64,
    /// The idle time as a member, or empty when not available.
    idle: String,
    ring: u32,
    /// Set by a readiness only (see `sync_agent` in `queue_common.lua`).
    preference: Option<i64>,
}

/// The common head of every agent-slot script reply.
struct AgentReply {
    status: String,
    agent: String,
    generation: String,
    free_in: i64,
    free_out: i64,
    idle: String,
    queues: Vec<(QueueId, u32)>,
    changed: bool,
    rest: Vec<String>,
}

impl AgentReply {
    fn parse(agent_id: AgentId, mut v: Vec<String>) -> anyhow::Result<Self> {
        anyhow::ensure!(v.len() >= 7, "short agent script reply: {v:?}");
        let rest = v.split_off(7);
        let idle = if v[4].is_empty() {
            String::new()
        } else {
            member(int(&v[4])?)
        };
        Ok(Self {
            status: v[0].clone(),
            agent: member(agent_id),
            generation: v[1].clone(),
            free_in: int(&v[2])?,
            free_out: int(&v[3])?,
            idle,
            queues: parse_queues(&v[5])?,
            changed: v[6] == "1",
            rest,
        })
    }

    fn free(&self, kind: TicketKind) -> i64 {
        match kind {
            TicketKind::Inbound => self.free_in,
            TicketKind::Outbound => self.free_out,
        }
    }

    /// The agent's state as `queue_id` should see it: unavailable there if
    /// the agent does not serve it (any more).
    fn sync_for(&self, queue_id: QueueId) -> AgentSync {
        let mut sync = AgentSync {
            agent: self.agent.clone(),
            generation: self.generation.clone(),
            free_in: 0,
            free_out: 0,
            idle: String::new(),
            ring: 0,
            preference: None,
        };
        if let Some((_, ring)) = self.queues.iter().find(|(q, _)| *q == queue_id) {
            sync.free_in = self.free_in;
            sync.free_out = self.free_out;
            sync.idle = self.idle.clone();
            sync.ring = *ring;
        }
        sync
    }
}

/// `agent|version|deadline|rank|kind|entered` from a queue's `offers` hash.
fn parse_offer(queue_id: QueueId, ticket: &str, s: &str) -> anyhow::Result<Offer> {
    let parts: Vec<&str> = s.split('|').collect();
    anyhow::ensure!(parts.len() == 6, "bad offer {s:?}");
    Ok(Offer {
        ticket_id: unmember(ticket)?,
        queue_id,
        agent_id: unmember(parts[0])?,
        kind: kind(parts[4])?,
        version: int(parts[1])?,
        deadline_ms: int(parts[2])?,
        rank_ms: int(parts[3])?,
        entered_ms: int(parts[5])?,
    })
}

fn parse_offer_pairs(queue_id: QueueId, v: &[String]) -> anyhow::Result<Vec<Offer>> {
    v.chunks(2)
        .map(|c| match c {
            [t, o] => parse_offer(queue_id, t, o),
            _ => anyhow::bail!("odd offer list from Redis"),
        })
        .collect()
}

/// An agent's `held` entry for an offer.
fn hold_value(kind: TicketKind, queue_id: QueueId, version: u64) -> String {
    format!("{}|{queue_id}|{version}", kind.code())
}

/// The queue and version of a `held` entry that came from an offer.
fn parse_hold(s: &str) -> Option<(QueueId, u64)> {
    let mut parts = s.split('|');
    let (_kind, q, v) = (parts.next()?, parts.next()?, parts.next()?);
    Some((q.parse().ok()?, v.parse().ok()?))
}

impl RedisRouting {
    /// Routing over `conn` with every key under `prefix` (no braces: the
    /// hash tags are added per queue and per agent).
    pub fn new(conn: RedisConn, prefix: String) -> Self {
        assert!(
            !prefix.contains(['{', '}']),
            "the Redis key prefix must not contain braces"
        );
        Self {
            conn,
            prefix,
            scripts: Scripts::new(),
        }
    }

    fn queue_keys(&self, queue_id: QueueId) -> [String; 10] {
        let b = format!("{}:{{q:{}}}", self.prefix, queue_id);
        [
            format!("{b}:line"),
            format!("{b}:info"),
            format!("{b}:offers"),
            format!("{b}:deadlines"),
            format!("{b}:avail_i"),
            format!("{b}:avail_o"),
            format!("{b}:agstate"),
            format!("{b}:prefs"),
            format!("{b}:version"),
            format!("{b}:tried"),
        ]
    }

    fn queue_script<'s>(
        &self,
        script: &'s Script,
        queue_id: QueueId,
    ) -> redis::ScriptInvocation<'s> {
        let mut inv = script.prepare_invoke();
        for k in self.queue_keys(queue_id) {
            inv.key(k);
        }
        inv
    }

    fn agent_base(&self, agent_id: AgentId) -> String {
        format!("{}:{{a:{}}}", self.prefix, agent_id)
    }

    fn agent_keys(&self, agent_id: AgentId) -> [String; 2] {
        let b = self.agent_base(agent_id);
        [format!("{b}:state"), format!("{b}:held")]
    }

    fn tombstone_key(&self, agent_id: AgentId, ticket_id: TicketId, hold: &str) -> String {
        format!(
            "{}:gone:{}:{}",
            self.agent_base(agent_id),
            member(ticket_id),
            hold.replace('|', ":")
        )
    }

    fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// One dispatch step on a queue (see `queue_step.lua`): pairs a ticket
    /// with an agent if `pair` is given, else only applies `syncs`.
    async fn step(
        &self,
        queue_id: QueueId,
        pair: Option<&Pairing<'_>>,
        first: FirstStep<'_>,
        syncs: &[AgentSync],
    ) -> anyhow::Result<Vec<String>> {
        let mut inv = self.queue_script(&self.scripts.step, queue_id);
        let ring_after_ms = pair.map_or(&[][..], |p| p.ring_after_ms);
        match pair {
            Some(p) => inv.arg(p.now_ms).arg(p.deadline_ms).arg("1"),
            None => inv.arg(0).arg(0).arg("0"),
        };
        match first.rollback {
            Some((t, a, v)) => inv.arg(member(t)).arg(member(a)).arg(v.to_string()),
            None => inv.arg("").arg("").arg(""),
        };
        match first.enqueue {
            Some(t) => inv
                .arg(member(t.ticket_id))
                .arg(t.rank_ms)
                .arg(t.kind.code())
                .arg(t.entered_ms),
            None => inv.arg("").arg("").arg("").arg(""),
        };
        inv.arg(DISPATCH_WINDOW).arg(ring_after_ms.len());
        for after in ring_after_ms {
            inv.arg(*after);
        }
        push_syncs(&mut inv, syncs);
        Ok(inv.invoke_async(&mut self.conn()).await?)
    }

    /// Dispatch a queue: steps until no pair is left. The first step also
    /// puts `enqueue` in line and applies `syncs` (one call for what would
    /// otherwise be two).
    async fn dispatch_from(
        &self,
        plan: DispatchPlan<'_>,
        mut enqueue: Option<&WaitingTicket>,
        mut syncs: Vec<AgentSync>,
    ) -> anyhow::Result<Vec<Offer>> {
        let queue_id = plan.queue_id;
        let deadline_ms = plan.now_ms + plan.offer_timeout_ms;
        let pairing = Pairing {
            now_ms: plan.now_ms,
            deadline_ms,
            ring_after_ms: plan.ring_after_ms,
        };
        let mut offers = Vec::new();
        let mut rollback = None;
        let mut refusals = 0;
        loop {
            let first = FirstStep {
                rollback: rollback.take(),
                enqueue: enqueue.take(),
            };
            let v = self.step(queue_id, Some(&pairing), first, &syncs).await?;
            syncs.clear();
            let [ticket, agent, version, rank, code, entered, max_ring, more] = v.as_slice() else {
                anyhow::ensure!(v.is_empty(), "bad dispatch step reply: {v:?}");
                break;
            };
            let offer = Offer {
                ticket_id: unmember(ticket)?,
                queue_id,
                agent_id: unmember(agent)?,
                kind: kind(code)?,
                version: int(version)?,
                deadline_ms,
                rank_ms: int(rank)?,
                entered_ms: int(entered)?,
            };
            let hold = hold_value(offer.kind, queue_id, offer.version);
            let tomb = self.tombstone_key(offer.agent_id, offer.ticket_id, &hold);
            let r = self
                .agent_script(
                    &self.scripts.reserve,
                    offer.agent_id,
                    &[tomb],
                    &[
                        ticket.clone(),
                        hold,
                        queue_id.to_string(),
                        code.clone(),
                        max_ring.clone(),
                    ],
                )
                .await?;
            let own = r.sync_for(queue_id);
            if r.status != "ok" {
                refusals += 1;
                anyhow::ensure!(
                    refusals < MAX_REFUSALS,
                    "dispatch of queue {queue_id}: too many refused reservations"
                );
                // Back in line at its rank, unless settled meanwhile ("gone").
                rollback = Some((offer.ticket_id, offer.agent_id, offer.version));
                syncs.push(own);
                continue;
            }
            refusals = 0;
            offers.push(offer);
            if r.free(offer.kind) == 0 {
                // Full for this kind now: its other queues need not try it.
                let others = r
                    .queues
                    .iter()
                    .filter(|(q, _)| *q != queue_id)
                    .map(|(q, _)| (*q, vec![r.sync_for(*q)]))
                    .collect();
                self.send_syncs(others).await?;
            }
            if more != "1" {
                break;
            }
            syncs.push(own);
        }
        Ok(offers)
    }

    /// Tell each queue the newest state of some of its agents.
    async fn send_syncs(&self, by_queue: BTreeMap<QueueId, Vec<AgentSync>>) -> anyhow::Result<()> {
        for (queue_id, syncs) in by_queue {
            if !syncs.is_empty() {
                self.step(queue_id, None, FirstStep::default(), &syncs)
                    .await?;
            }
        }
        Ok(())
    }

    async fn agent_script(
        &self,
        script: &Script,
        agent_id: AgentId,
        extra_keys: &[String],
        args: &[String],
    ) -> anyhow::Result<AgentReply> {
        let mut inv = script.prepare_invoke();
        for k in self.agent_keys(agent_id).iter().chain(extra_keys) {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let v: Vec<String> = inv.invoke_async(&mut self.conn()).await?;
        AgentReply::parse(agent_id, v)
    }

    /// Stop counting settled offers against an agent, then bring the queues
    /// up to date: all its queues if it became more available, and the queue
    /// of any offer whose reservation had not arrived (its dispatch step
    /// counted it already).
    async fn unhold(&self, agent_id: AgentId, settled: &[Offer]) -> anyhow::Result<()> {
        if settled.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::new();
        let mut args = vec![settled.len().to_string()];
        for o in settled {
            let hold = hold_value(o.kind, o.queue_id, o.version);
            keys.push(self.tombstone_key(agent_id, o.ticket_id, &hold));
            args.push(member(o.ticket_id));
            args.push(hold);
        }
        let r = self
            .agent_script(&self.scripts.unhold, agent_id, &keys, &args)
            .await?;
        let mut queues = BTreeSet::new();
        if r.changed {
            queues.extend(r.queues.iter().map(|(q, _)| *q));
        }
        for (o, flag) in settled.iter().zip(&r.rest) {
            if flag != "1" {
                queues.insert(o.queue_id);
            }
        }
        let by_queue = queues
            .into_iter()
            .map(|q| (q, vec![r.sync_for(q)]))
            .collect();
        self.send_syncs(by_queue).await
    }

    /// Settle an offer as accepted or declined in its queue: one script.
    async fn settle(
        &self,
        agent_id: AgentId,
        queue_id: QueueId,
        ticket_id: TicketId,
        version: u64,
        mode: &str,
    ) -> anyhow::Result<Result<Offer, OfferGone>> {
        let ticket = member(ticket_id);
        let mut inv = self.queue_script(&self.scripts.settle, queue_id);
        inv.arg(&ticket)
            .arg(member(agent_id))
            .arg(version.to_string())
            .arg(mode);
        let v: Vec<String> = inv.invoke_async(&mut self.conn()).await?;
        match v.first().map(String::as_str) {
            Some("ok") if v.len() == 2 => Ok(Ok(parse_offer(queue_id, &ticket, &v[1])?)),
            Some("stale") => Ok(Err(OfferGone::StaleVersion)),
            Some("none") => Ok(Err(OfferGone::NoOffer)),
            _ => anyhow::bail!("bad settle reply from Redis: {v:?}"),
        }
    }
}

fn push_syncs(inv: &mut redis::ScriptInvocation<'_>, syncs: &[AgentSync]) {
    inv.arg(syncs.len());
    for s in syncs {
        inv.arg(&s.agent)
            .arg(&s.generation)
            .arg(s.free_in)
            .arg(s.free_out)
            .arg(&s.idle)
            .arg(s.ring)
            .arg(s.preference.map(|p| p.to_string()).unwrap_or_default());
    }
}

#[async_trait]
impl Routing for RedisRouting {
    async fn enqueue(&self, t: WaitingTicket) -> anyhow::Result<()> {
        let mut inv = self.queue_script(&self.scripts.enqueue, t.queue_id);
        inv.arg(member(t.ticket_id))
            .arg(t.rank_ms)
            .arg(t.kind.code())
            .arg(t.entered_ms);
        let _: i64 = inv.invoke_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn agent_ready(&self, a: ReadyAgent) -> anyhow::Result<()> {
        // Which held entries to drop: tickets no longer assigned, unless
        // their offer is still pending (then it keeps counting).
        let [_, held_key] = self.agent_keys(a.agent_id);
        let held: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&held_key)
            .query_async(&mut self.conn())
            .await?;
        let assigned: BTreeMap<String, TicketKind> =
            a.assigned.iter().map(|(t, k)| (member(*t), *k)).collect();
        let mut drop = Vec::new();
        let mut to_check: BTreeMap<QueueId, Vec<(String, String, u64)>> = BTreeMap::new();
        for (ticket, hold) in held {
            if assigned.contains_key(&ticket) {
                continue;
            }
            match parse_hold(&hold) {
                Some((q, v)) => to_check.entry(q).or_default().push((ticket, hold, v)),
                None => drop.push((ticket, hold)),
            }
        }
        let me = member(a.agent_id);
        for (queue_id, entries) in to_check {
            let [_, _, offers_key, ..] = self.queue_keys(queue_id);
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(&offers_key);
            for (ticket, _, _) in &entries {
                cmd.arg(ticket);
            }
            let current: Vec<Option<String>> = cmd.query_async(&mut self.conn()).await?;
            for ((ticket, hold, version), cur) in entries.into_iter().zip(current) {
                let live = cur.is_some_and(|c| {
                    let mut p = c.split('|');
                    p.next() == Some(me.as_str()) && p.next() == Some(version.to_string().as_str())
                });
                if !live {
                    drop.push((ticket, hold));
                }
            }
        }
        let mut args = vec![
            a.capacity_inbound.to_string(),
            a.capacity_outbound.to_string(),
            a.idle_since_ms.to_string(),
            queues_field(&a.queues),
            assigned.len().to_string(),
        ];
        for (t, k) in assigned {
            args.push(t);
            args.push(k.code().to_string());
        }
        args.push(drop.len().to_string());
        for (t, h) in drop {
            args.push(t);
            args.push(h);
        }
        let r = self
            .agent_script(&self.scripts.ready, a.agent_id, &[], &args)
            .await?;
        let old = parse_queues(r.rest.first().map(String::as_str).unwrap_or(""))?;
        let mut by_queue: BTreeMap<QueueId, Vec<AgentSync>> = BTreeMap::new();
        for (q, _) in old {
            by_queue.insert(q, vec![r.sync_for(q)]);
        }
        for q in &a.queues {
            let mut sync = r.sync_for(q.queue_id);
            sync.preference = Some(q.preference);
            by_queue.insert(q.queue_id, vec![sync]);
        }
        self.send_syncs(by_queue).await
    }

    async fn agent_away(&self, agent_id: AgentId) -> anyhow::Result<Vec<Offer>> {
        let r = self
            .agent_script(&self.scripts.away, agent_id, &[], &[])
            .await?;
        if r.status != "ok" {
            return Ok(Vec::new());
        }
        // Offers to rescind, by queue; the agent's queues learn it is away.
        let mut by_queue: BTreeMap<QueueId, (Vec<(String, u64)>, Vec<AgentSync>)> = BTreeMap::new();
        for pair in r.rest.chunks(2) {
            if let [ticket, hold] = pair
                && let Some((q, v)) = parse_hold(hold)
            {
                by_queue.entry(q).or_default().0.push((ticket.clone(), v));
            }
        }
        if r.changed {
            for (q, _) in &r.queues {
                by_queue.entry(*q).or_default().1.push(r.sync_for(*q));
            }
        }
        let me = member(agent_id);
        let mut rescinded = Vec::new();
        for (queue_id, (tickets, syncs)) in by_queue {
            let mut inv = self.queue_script(&self.scripts.rescind, queue_id);
            inv.arg(&me).arg(tickets.len());
            for (t, v) in &tickets {
                inv.arg(t).arg(v.to_string());
            }
            push_syncs(&mut inv, &syncs);
            let v: Vec<String> = inv.invoke_async(&mut self.conn()).await?;
            rescinded.extend(parse_offer_pairs(queue_id, &v)?);
        }
        self.unhold(agent_id, &rescinded).await?;
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
        let plan = DispatchPlan {
            queue_id,
            now_ms,
            offer_timeout_ms,
            ring_after_ms,
        };
        self.dispatch_from(plan, None, Vec::new()).await
    }

    async fn enqueue_then_dispatch(
        &self,
        ticket: WaitingTicket,
        plan: DispatchPlan<'_>,
    ) -> anyhow::Result<Vec<Offer>> {
        if ticket.queue_id != plan.queue_id {
            self.enqueue(ticket).await?;
            return self.dispatch_from(plan, None, Vec::new()).await;
        }
        self.dispatch_from(plan, Some(&ticket), Vec::new()).await
    }

    async fn release_then_dispatch(
        &self,
        agent_id: AgentId,
        ticket_id: TicketId,
        now_ms: i64,
        plans: &[DispatchPlan<'_>],
    ) -> anyhow::Result<Vec<Offer>> {
        let r = self
            .agent_script(
                &self.scripts.release,
                agent_id,
                &[],
                &[member(ticket_id), now_ms.to_string()],
            )
            .await?;
        // Each queue that must learn the agent is free learns it in its
        // dispatch step when it is to be dispatched, else in a step alone.
        let mut syncs: BTreeMap<QueueId, Vec<AgentSync>> = BTreeMap::new();
        if r.changed {
            for (q, _) in &r.queues {
                syncs.insert(*q, vec![r.sync_for(*q)]);
            }
        }
        let mut offers = Vec::new();
        for plan in plans {
            let first = syncs.remove(&plan.queue_id).unwrap_or_default();
            offers.extend(self.dispatch_from(*plan, None, first).await?);
        }
        self.send_syncs(syncs).await?;
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
        self.settle(agent_id, queue_id, ticket_id, version, "accept")
            .await
    }

    async fn decline(
        &self,
        agent_id: AgentId,
        queue_id: QueueId,
        ticket_id: TicketId,
        version: u64,
    ) -> anyhow::Result<Result<Offer, OfferGone>> {
        let settled = self
            .settle(agent_id, queue_id, ticket_id, version, "decline")
            .await?;
        if let Ok(offer) = &settled {
            self.unhold(agent_id, std::slice::from_ref(offer)).await?;
        }
        Ok(settled)
    }

    async fn set_preference(
        &self,
        agent_id: AgentId,
        queue_id: QueueId,
        preference: i64,
    ) -> anyhow::Result<()> {
        let mut inv = self.queue_script(&self.scripts.prefer, queue_id);
        inv.arg(member(agent_id)).arg(preference);
        let _: i64 = inv.invoke_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn expire(&self, queue_id: QueueId, now_ms: i64) -> anyhow::Result<Vec<Offer>> {
        let mut inv = self.queue_script(&self.scripts.expire, queue_id);
        inv.arg(now_ms);
        let v: Vec<String> = inv.invoke_async(&mut self.conn()).await?;
        let mut expired = parse_offer_pairs(queue_id, &v)?;
        expired.sort_by_key(|o| o.ticket_id);
        let mut by_agent: BTreeMap<AgentId, Vec<Offer>> = BTreeMap::new();
        for o in &expired {
            by_agent.entry(o.agent_id).or_default().push(*o);
        }
        for (agent_id, offers) in by_agent {
            self.unhold(agent_id, &offers).await?;
        }
        Ok(expired)
    }

    async fn release(
        &self,
        agent_id: AgentId,
        ticket_id: TicketId,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        // With no queue to dispatch, each queue gets a step of its own.
        let offers = self
            .release_then_dispatch(agent_id, ticket_id, now_ms, &[])
            .await?;
        debug_assert!(offers.is_empty());
        Ok(())
    }

    async fn cancel(
        &self,
        queue_id: QueueId,
        ticket_id: TicketId,
    ) -> anyhow::Result<Option<Offer>> {
        let mut inv = self.queue_script(&self.scripts.cancel, queue_id);
        inv.arg(member(ticket_id));
        let v: Option<String> = inv.invoke_async(&mut self.conn()).await?;
        let Some(v) = v else { return Ok(None) };
        let offer = parse_offer(queue_id, &member(ticket_id), &v)?;
        self.unhold(offer.agent_id, std::slice::from_ref(&offer))
            .await?;
        Ok(Some(offer))
    }

    async fn waiting(&self, queue_id: QueueId) -> anyhow::Result<Vec<TicketId>> {
        let [line, ..] = self.queue_keys(queue_id);
        let v: Vec<String> = redis::cmd("ZRANGE")
            .arg(&line)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await?;
        v.iter().map(|m| unmember(m)).collect()
    }

    async fn offers(&self, queue_id: QueueId) -> anyhow::Result<Vec<Offer>> {
        let [_, _, offers, ..] = self.queue_keys(queue_id);
        let v: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&offers)
            .query_async(&mut self.conn())
            .await?;
        let mut out = v
            .iter()
            .map(|(t, o)| parse_offer(queue_id, t, o))
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.sort_by_key(|o| o.ticket_id);
        Ok(out)
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let _: redis::Value = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{
        AgentQueue, FirstStep, Offer, Pairing, ReadyAgent, RedisRouting, Routing, TicketKind,
        WaitingTicket, hold_value, member, parse_hold, parse_queues, unmember,
    };
    use std::collections::BTreeMap;

    #[test]
    fn members_sort_like_numbers() {
        let ids = [i64::MIN, -5, -1, 0, 1, 9, 10, 1 << 40, i64::MAX];
        let members: Vec<String> = ids.iter().map(|i| member(*i)).collect();
        let mut sorted = members.clone();
        sorted.sort();
        assert_eq!(members, sorted);
        for i in ids {
            assert_eq!(unmember(&member(i)).unwrap(), i);
        }
    }

    #[test]
    fn agent_fields_parse() {
        assert_eq!(parse_queues("3:0,-7:2").unwrap(), vec![(3, 0), (-7, 2)]);
        assert!(parse_queues("").unwrap().is_empty());
        assert!(parse_queues("3").is_err());
        assert_eq!(parse_hold("o|12|7"), Some((12, 7)));
        assert_eq!(parse_hold("i"), None);
    }

    /// A Redis for the interleaving below: `REDIS_URL` (default the local
    /// one) under a fresh prefix; None (skipped) when unreachable, unless
    /// `REQUIRE_SERVICES=1`.
    async fn routing() -> Option<RedisRouting> {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let probe = async {
            let mut conn = crate::redis_conn::connect(&url).await?;
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            anyhow::Ok(conn)
        };
        match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
            Ok(Ok(conn)) => {
                let prefix = format!("cctest-{:016x}", rand::random::<u64>());
                Some(RedisRouting::new(conn, prefix))
            }
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                assert!(
                    std::env::var("REQUIRE_SERVICES").as_deref() != Ok("1"),
                    "Redis at {url} is required (REQUIRE_SERVICES=1): {why}"
                );
                eprintln!("skipping: Redis at {url} unavailable: {why}");
                None
            }
        }
    }

    async fn delete_keys(r: &RedisRouting) {
        let mut conn = r.conn();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", r.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    /// The messages of one offer whose dispatch is interrupted: after node 1's
    /// step (a tentative offer of ticket 100 to agent 7, version 1), in every
    /// order the protocol allows: `R1` node 1's reservation of it; `E` node
    /// 2's expiry of it in the queue and `U1` that expiry's unhold in the
    /// agent slot; `S2` node 3's step offering the ticket again (to the same
    /// agent: the only one) and `R2` its reservation. A refused reservation
    /// is rolled back as `dispatch` does.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Msg {
        R1,
        E,
        U1,
        S2,
        R2,
    }

    /// Every order of the five messages with E before U1 and S2, S2 before R2.
    fn orders() -> Vec<Vec<Msg>> {
        use Msg::*;
        fn extend(done: &mut Vec<Msg>, out: &mut Vec<Vec<Msg>>) {
            if done.len() == 5 {
                out.push(done.clone());
                return;
            }
            for m in [R1, E, U1, S2, R2] {
                let ready = !done.contains(&m)
                    && match m {
                        U1 | S2 => done.contains(&E),
                        R2 => done.contains(&S2),
                        R1 | E => true,
                    };
                if ready {
                    done.push(m);
                    extend(done, out);
                    done.pop();
                }
            }
        }
        let mut out = Vec::new();
        extend(&mut Vec::new(), &mut out);
        out
    }

    /// The agent slot's capacity ledger: ticket member -> hold.
    async fn held_of(r: &RedisRouting, agent_id: i64) -> BTreeMap<String, String> {
        let [_, held] = r.agent_keys(agent_id);
        redis::cmd("HGETALL")
            .arg(held)
            .query_async(&mut r.conn())
            .await
            .unwrap()
    }

    /// A reservation as `dispatch` makes it, rolled back if refused.
    async fn reserve(r: &RedisRouting, o: &Offer, max_ring: &str) -> String {
        let hold = hold_value(o.kind, o.queue_id, o.version);
        let tomb = r.tombstone_key(o.agent_id, o.ticket_id, &hold);
        let args = [
            member(o.ticket_id),
            hold,
            o.queue_id.to_string(),
            o.kind.code().to_string(),
            max_ring.to_string(),
        ];
        let reply = r
            .agent_script(&r.scripts.reserve, o.agent_id, &[tomb], &args)
            .await
            .unwrap();
        if reply.status != "ok" {
            let own = reply.sync_for(o.queue_id);
            let rollback = Some((o.ticket_id, o.agent_id, o.version));
            r.step(
                o.queue_id,
                None,
                FirstStep {
                    rollback,
                    enqueue: None,
                },
                &[own],
            )
            .await
            .unwrap();
        }
        reply.status
    }

    /// An offer interrupted between its step and its reservation, with an
    /// expiry and another node's dispatch of the same ticket in between, in
    /// every order: the agent's ledger counts exactly its live offers, so it
    /// never gets more than its capacity. The order that broke it (the
    /// stress test on a cluster, about one run in four) was S2 R2 R1 U1
    /// after E: the late reservation of version 1 replaced the hold of the
    /// live version 2, and the unhold of version 1 then deleted it.
    #[tokio::test]
    async fn an_interrupted_offer_never_costs_the_agent_its_count() {
        let orders = orders();
        assert_eq!(orders.len(), 15);
        for order in orders {
            let Some(r) = routing().await else { return };
            let (q, a, t) = (1, 7, 100);
            r.agent_ready(ReadyAgent {
                agent_id: a,
                queues: vec![AgentQueue::plain(q)],
                capacity_inbound: 2,
                capacity_outbound: 0,
                assigned: Vec::new(),
                idle_since_ms: 0,
            })
            .await
            .unwrap();
            let waiting = |ticket_id| WaitingTicket {
                ticket_id,
                queue_id: q,
                kind: TicketKind::Inbound,
                rank_ms: ticket_id,
                entered_ms: 0,
            };
            r.enqueue(waiting(t)).await.unwrap();
            let offer = |version, deadline_ms| Offer {
                ticket_id: t,
                queue_id: q,
                agent_id: a,
                kind: TicketKind::Inbound,
                version,
                deadline_ms,
                rank_ms: t,
                entered_ms: 0,
            };
            let pairing = |now_ms| Pairing {
                now_ms,
                deadline_ms: now_ms + 1_000,
                ring_after_ms: &[],
            };
            let v = r
                .step(q, Some(&pairing(1_000)), FirstStep::default(), &[])
                .await
                .unwrap();
            assert_eq!(v[..3], [member(t), member(a), "1".to_string()]);
            let first = offer(1, 2_000);
            let second = offer(2, 4_000);
            let mut live = None;
            for m in &order {
                match m {
                    Msg::R1 => {
                        reserve(&r, &first, "0").await;
                    }
                    Msg::E => {
                        let mut inv = r.queue_script(&r.scripts.expire, q);
                        inv.arg(3_000);
                        let expired: Vec<String> = inv.invoke_async(&mut r.conn()).await.unwrap();
                        assert_eq!(expired.first(), Some(&member(t)), "{order:?}");
                    }
                    Msg::U1 => r.unhold(a, std::slice::from_ref(&first)).await.unwrap(),
                    Msg::S2 => {
                        let v = r
                            .step(q, Some(&pairing(3_000)), FirstStep::default(), &[])
                            .await
                            .unwrap();
                        assert_eq!(v[..3], [member(t), member(a), "2".to_string()], "{order:?}");
                    }
                    Msg::R2 => {
                        if reserve(&r, &second, "0").await == "ok" {
                            live = Some(second);
                        }
                    }
                }
            }
            // The second offer was reserved; the first is gone.
            assert_eq!(live, Some(second), "{order:?}");
            assert_eq!(r.offers(q).await.unwrap(), [second], "{order:?}");
            let hold = hold_value(second.kind, q, second.version);
            let ledger = BTreeMap::from([(member(t), hold)]);
            assert_eq!(held_of(&r, a).await, ledger, "{order:?}");
            // Room for one more offer only.
            for ticket_id in [101, 102] {
                r.enqueue(waiting(ticket_id)).await.unwrap();
            }
            let more = r.dispatch(q, 3_000, 30_000, &[]).await.unwrap();
            assert_eq!(more.len(), 1, "{order:?}: {more:?}");
            assert_eq!(r.offers(q).await.unwrap().len(), 2, "{order:?}");
            assert_eq!(held_of(&r, a).await.len(), 2, "{order:?}");
            delete_keys(&r).await;
        }
    }
}
