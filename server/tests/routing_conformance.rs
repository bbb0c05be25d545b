//! One set of routing stories, run against every backend: the in-process
//! `MemoryRouting`, `RedisRouting` on one Redis server, and `RedisRouting` on
//! a real 3-master Redis Cluster started by this test binary. Plus the Redis
//! bus.
//!
//! Redis tests run when Redis is reachable (`REDIS_URL`, default
//! `redis://127.0.0.1:6379`; the cluster needs `redis-server` and `redis-cli`
//! on the PATH) and are skipped with a message otherwise, unless
//! `REQUIRE_SERVICES=1`, which turns a missing service into a failure.

use callcenter::bus::redis::RedisBus;
use callcenter::bus::{Bus, BusMessage};
use callcenter::redis_conn;
use callcenter::routing::memory::MemoryRouting;
use callcenter::routing::redis::RedisRouting;
use callcenter::routing::{
    AgentId, AgentQueue, Offer, OfferGone, QueueId, ReadyAgent, Routing, TicketId, TicketKind,
    WaitingTicket,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type R = Arc<dyn Routing>;

const NOW: i64 = 1_700_000_000_000;
const TIMEOUT: i64 = 30_000;

// ---------------------------------------------------------------------------
// Backends

/// Skip a test whose service is missing, or fail it under REQUIRE_SERVICES=1.
fn service_missing(what: &str, why: &dyn std::fmt::Display) {
    if std::env::var("REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{what} is required (REQUIRE_SERVICES=1) but unavailable: {why}");
    }
    eprintln!("skipping: {what} unavailable: {why}");
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique_prefix() -> String {
    format!("cctest-{:016x}", rand::random::<u64>())
}

/// The URL of the single Redis if it answers, else None (after
/// [`service_missing`]).
async fn single_redis() -> Option<String> {
    let url = redis_url();
    let probe = async {
        let mut conn = redis_conn::connect(&url).await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        anyhow::Ok(())
    };
    match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(())) => Some(url),
        Ok(Err(e)) => {
            service_missing(&format!("Redis at {url}"), &e);
            None
        }
        Err(e) => {
            service_missing(&format!("Redis at {url}"), &e);
            None
        }
    }
}

/// The URL of this process's test cluster, started on first use.
async fn cluster_redis() -> Option<String> {
    match tokio::task::spawn_blocking(cluster::ports).await.unwrap() {
        Ok(ports) => Some(cluster::url(&ports)),
        Err(e) => {
            service_missing("a Redis Cluster (redis-server, redis-cli)", &e);
            None
        }
    }
}

fn memory_backend() -> R {
    Arc::new(MemoryRouting::new())
}

/// A `RedisRouting` under a fresh prefix; its keys are deleted by `cleanup`.
struct RedisBackend {
    routing: R,
    conn: redis_conn::RedisConn,
    prefix: String,
}

impl RedisBackend {
    async fn on(url: Option<String>) -> Option<Self> {
        let url = url?;
        let conn = redis_conn::connect(&url).await.expect("connect to Redis");
        let prefix = unique_prefix();
        Some(Self {
            routing: Arc::new(RedisRouting::new(conn.clone(), prefix.clone())),
            conn,
            prefix,
        })
    }

    /// Delete this test's keys (the cluster is thrown away anyway).
    async fn cleanup(mut self) {
        if self.conn.is_cluster() {
            return;
        }
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.conn)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: i64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut self.conn)
                    .await
                    .unwrap();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

/// Instantiate every story once per backend.
macro_rules! conformance {
    ($($story:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $story() {
                    super::$story(super::memory_backend()).await;
                }
            )*
        }
        mod redis_single {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $story() {
                    let url = super::single_redis().await;
                    if let Some(b) = super::RedisBackend::on(url).await {
                        super::$story(b.routing.clone()).await;
                        b.cleanup().await;
                    }
                }
            )*
        }
        mod redis_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $story() {
                    let url = super::cluster_redis().await;
                    if let Some(b) = super::RedisBackend::on(url).await {
                        super::$story(b.routing.clone()).await;
                        b.cleanup().await;
                    }
                }
            )*
        }
    };
}

conformance!(
    order_of_service,
    enqueue_moves_a_waiting_ticket,
    dispatch_prefers_the_longest_idle_agent,
    capacity_is_respected,
    capacity_holds_across_queues,
    accept_settles_once,
    late_accept_after_expiry_finds_no_offer,
    accept_with_a_wrong_version_is_stale,
    accept_by_another_agent_finds_no_offer,
    decline_puts_the_ticket_back_at_its_rank,
    expire_takes_only_offers_past_their_deadline,
    agent_away_rescinds_and_requeues_offers,
    release_frees_capacity,
    cancel_removes_waiting_and_rescinds_offered,
    agent_ready_replaces_readiness,
    agents_who_passed_on_a_ticket_get_it_last,
    capacity_is_counted_per_kind,
    preference_orders_the_agents,
    bullseye_rings_open_with_waiting_time,
    an_offer_is_settled_in_its_own_queue_only,
);

mod stress {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory() {
        super::concurrent_stress(super::memory_backend()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_single() {
        let url = super::single_redis().await;
        if let Some(b) = super::RedisBackend::on(url).await {
            super::concurrent_stress(b.routing.clone()).await;
            b.cleanup().await;
        }
    }

    // Known defect, kept visible: on a 3-master cluster, where queue and agent
    // scripts run on different shards in parallel, about one run in four ends
    // with an agent holding more offers than its capacity. Run it with
    // `cargo test --test routing_conformance -- --ignored`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "intermittent: an agent over capacity on a Redis Cluster (known defect, see issue 3)"]
    async fn redis_cluster() {
        let url = super::cluster_redis().await;
        if let Some(b) = super::RedisBackend::on(url).await {
            super::concurrent_stress(b.routing.clone()).await;
            b.cleanup().await;
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn ticket(ticket_id: TicketId, queue_id: QueueId, rank_ms: i64) -> WaitingTicket {
    WaitingTicket {
        ticket_id,
        queue_id,
        kind: TicketKind::Inbound,
        rank_ms,
        entered_ms: rank_ms,
    }
}

/// An agent of `capacity` inbound tickets (no outbound), ring 0 and no
/// preference in each queue.
fn agent(agent_id: AgentId, queues: &[QueueId], capacity: u32, idle_since_ms: i64) -> ReadyAgent {
    ReadyAgent {
        agent_id,
        queues: queues.iter().copied().map(AgentQueue::plain).collect(),
        capacity_inbound: capacity,
        capacity_outbound: 0,
        assigned: Vec::new(),
        idle_since_ms,
    }
}

fn inbound(tickets: &[TicketId]) -> Vec<(TicketId, TicketKind)> {
    tickets.iter().map(|t| (*t, TicketKind::Inbound)).collect()
}

fn outbound_ticket(ticket_id: TicketId, queue_id: QueueId, rank_ms: i64) -> WaitingTicket {
    WaitingTicket {
        kind: TicketKind::Outbound,
        ..ticket(ticket_id, queue_id, rank_ms)
    }
}

/// A queue served at `ring` with `preference`.
fn seat(queue_id: QueueId, ring: u8, preference: i64) -> AgentQueue {
    AgentQueue {
        queue_id,
        ring,
        preference,
    }
}

/// An agent with its seats and a capacity per kind.
fn agent_with(
    agent_id: AgentId,
    seats: &[AgentQueue],
    (capacity_inbound, capacity_outbound): (u32, u32),
    idle_since_ms: i64,
) -> ReadyAgent {
    ReadyAgent {
        agent_id,
        queues: seats.to_vec(),
        capacity_inbound,
        capacity_outbound,
        assigned: Vec::new(),
        idle_since_ms,
    }
}

async fn accept_and_release(r: &R, offers: &[Offer], now_ms: i64) {
    for o in offers {
        assert_eq!(
            r.accept(o.agent_id, o.queue_id, o.ticket_id, o.version, now_ms)
                .await
                .unwrap(),
            Ok(*o)
        );
        r.release(o.agent_id, o.ticket_id, now_ms).await.unwrap();
    }
}

fn pairs(offers: &[Offer]) -> Vec<(TicketId, AgentId)> {
    offers.iter().map(|o| (o.ticket_id, o.agent_id)).collect()
}

fn tickets(offers: &[Offer]) -> Vec<TicketId> {
    offers.iter().map(|o| o.ticket_id).collect()
}

fn sorted(mut offers: Vec<Offer>) -> Vec<Offer> {
    offers.sort_by_key(|o| (o.queue_id, o.ticket_id));
    offers
}

async fn enqueue_all(r: &R, queue_id: QueueId, ranked: &[(TicketId, i64)]) {
    for (t, rank) in ranked {
        r.enqueue(ticket(*t, queue_id, *rank)).await.unwrap();
    }
}

async fn one_offer(r: &R, queue_id: QueueId, now_ms: i64) -> Offer {
    let offers = r.dispatch(queue_id, now_ms, TIMEOUT, &[]).await.unwrap();
    assert_eq!(offers.len(), 1, "expected one offer, got {offers:?}");
    offers[0]
}

// ---------------------------------------------------------------------------
// Stories

/// Lowest rank first; equal ranks by lowest ticket id (also past 9 -> 10 and
/// with negative ranks and large ids).
async fn order_of_service(r: R) {
    let q = 1;
    let big = 1_000_000_000_000;
    enqueue_all(
        &r,
        q,
        &[
            (3, 100),
            (1, 200),
            (2, 100),
            (10, 50),
            (big, 50),
            (9, 50),
            (7, -10),
        ],
    )
    .await;
    let order = vec![7, 9, 10, big, 2, 3, 1];
    assert_eq!(r.waiting(q).await.unwrap(), order);
    r.agent_ready(agent(1, &[q], 10, NOW)).await.unwrap();
    let offers = r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap();
    assert_eq!(tickets(&offers), order);
    for o in &offers {
        assert_eq!((o.agent_id, o.queue_id), (1, q));
        assert_eq!(o.deadline_ms, NOW + TIMEOUT);
    }
    assert_eq!(offers[0].rank_ms, -10);
    assert_eq!(offers.last().unwrap().rank_ms, 200);
    assert!(offers.windows(2).all(|w| w[0].version < w[1].version));
    assert!(r.waiting(q).await.unwrap().is_empty());
    assert_eq!(r.offers(q).await.unwrap(), sorted(offers));
}

/// Enqueueing a waiting ticket again moves it; an offered ticket stays put.
async fn enqueue_moves_a_waiting_ticket(r: R) {
    let q = 1;
    enqueue_all(&r, q, &[(1, 100), (2, 200), (3, 300)]).await;
    r.enqueue(ticket(3, q, 50)).await.unwrap();
    assert_eq!(r.waiting(q).await.unwrap(), vec![3, 1, 2]);
    r.enqueue(ticket(3, q, 250)).await.unwrap();
    assert_eq!(r.waiting(q).await.unwrap(), vec![1, 2, 3]);

    r.agent_ready(agent(1, &[q], 1, NOW)).await.unwrap();
    let o = one_offer(&r, q, NOW).await;
    assert_eq!(o.ticket_id, 1);
    r.enqueue(ticket(1, q, 10)).await.unwrap();
    assert_eq!(r.waiting(q).await.unwrap(), vec![2, 3]);
    assert_eq!(r.offers(q).await.unwrap(), vec![o]);
}

/// Longest idle first; equal idle times by lowest agent id.
async fn dispatch_prefers_the_longest_idle_agent(r: R) {
    let q = 1;
    for (a, idle) in [(20, 1000), (3, 1000), (7, 500), (9, 3000)] {
        r.agent_ready(agent(a, &[q], 1, idle)).await.unwrap();
    }
    enqueue_all(&r, q, &[(1, 1), (2, 2), (3, 3)]).await;
    let offers = r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap();
    assert_eq!(pairs(&offers), vec![(1, 7), (2, 3), (3, 20)]);
    r.enqueue(ticket(4, q, 4)).await.unwrap();
    r.enqueue(ticket(5, q, 5)).await.unwrap();
    let offers = r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap();
    assert_eq!(pairs(&offers), vec![(4, 9)]);
    assert_eq!(r.waiting(q).await.unwrap(), vec![5]);
}

/// An agent of capacity 2 gets 2 offers, not 3; assigned tickets count.
async fn capacity_is_respected(r: R) {
    let q = 1;
    r.agent_ready(agent(1, &[q], 2, NOW)).await.unwrap();
    enqueue_all(&r, q, &[(1, 1), (2, 2), (3, 3)]).await;
    let offers = r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap();
    assert_eq!(pairs(&offers), vec![(1, 1), (2, 1)]);
    assert_eq!(r.waiting(q).await.unwrap(), vec![3]);
    assert!(r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap().is_empty());

    let mut busy = agent(2, &[q], 2, NOW + 1);
    busy.assigned = inbound(&[100]);
    r.agent_ready(busy).await.unwrap();
    let offers = r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap();
    assert_eq!(pairs(&offers), vec![(3, 2)]);
    r.enqueue(ticket(4, q, 4)).await.unwrap();
    assert!(r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap().is_empty());
    assert_eq!(r.waiting(q).await.unwrap(), vec![4]);
}

/// An agent ready for several queues never holds more than its capacity in
/// all of them together, even when they dispatch at the same time.
async fn capacity_holds_across_queues(r: R) {
    let queues = [1, 2, 3];
    r.agent_ready(agent(1, &queues, 2, NOW)).await.unwrap();
    for q in queues {
        enqueue_all(&r, q, &[(q * 10 + 1, 1), (q * 10 + 2, 2), (q * 10 + 3, 3)]).await;
    }
    let (a, b, c) = tokio::join!(
        r.dispatch(1, NOW, TIMEOUT, &[]),
        r.dispatch(2, NOW, TIMEOUT, &[]),
        r.dispatch(3, NOW, TIMEOUT, &[]),
    );
    let offered = a.unwrap().len() + b.unwrap().len() + c.unwrap().len();
    assert_eq!(offered, 2);
    for q in queues {
        assert!(r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap().is_empty());
    }
    let mut pending = Vec::new();
    let mut waiting = 0;
    for q in queues {
        pending.extend(r.offers(q).await.unwrap());
        waiting += r.waiting(q).await.unwrap().len();
    }
    assert_eq!(pending.len(), 2);
    assert_eq!(waiting, 7);

    // Accepted tickets keep counting; a release frees exactly one place.
    let o = pending[0];
    assert_eq!(
        r.accept(1, o.queue_id, o.ticket_id, o.version, NOW)
            .await
            .unwrap(),
        Ok(o)
    );
    for q in queues {
        assert!(r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap().is_empty());
    }
    r.release(1, o.ticket_id, NOW + 1).await.unwrap();
    let mut again = 0;
    for q in queues {
        again += r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap().len();
    }
    assert_eq!(again, 1);
}

/// Accept with the right version settles the offer, once.
async fn accept_settles_once(r: R) {
    let q = 1;
    r.agent_ready(agent(1, &[q], 1, NOW)).await.unwrap();
    r.enqueue(ticket(1, q, 1)).await.unwrap();
    let o = one_offer(&r, q, NOW).await;
    assert_eq!(
        r.accept(1, o.queue_id, 1, o.version, NOW).await.unwrap(),
        Ok(o)
    );
    assert!(r.offers(q).await.unwrap().is_empty());
    assert!(r.waiting(q).await.unwrap().is_empty());
    assert_eq!(
        r.accept(1, o.queue_id, 1, o.version, NOW).await.unwrap(),
        Err(OfferGone::NoOffer)
    );
    assert_eq!(
        r.decline(1, o.queue_id, 1, o.version).await.unwrap(),
        Err(OfferGone::NoOffer)
    );
    // Still held: no second offer until released.
    r.enqueue(ticket(2, q, 2)).await.unwrap();
    assert!(r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap().is_empty());
}

/// An accept after the offer expired finds no offer; the ticket is waiting.
async fn late_accept_after_expiry_finds_no_offer(r: R) {
    let q = 1;
    r.agent_ready(agent(1, &[q], 1, NOW)).await.unwrap();
    r.enqueue(ticket(1, q, 1)).await.unwrap();
    let o = one_offer(&r, q, NOW).await;
    assert_eq!(r.expire(q, o.deadline_ms).await.unwrap(), vec![o]);
    assert_eq!(
        r.accept(1, o.queue_id, 1, o.version, o.deadline_ms + 1)
            .await
            .unwrap(),
        Err(OfferGone::NoOffer)
    );
    assert_eq!(
        r.decline(1, o.queue_id, 1, o.version).await.unwrap(),
        Err(OfferGone::NoOffer)
    );
    assert_eq!(r.waiting(q).await.unwrap(), vec![1]);
    assert!(r.offers(q).await.unwrap().is_empty());
}

/// A wrong version is stale, also after the ticket was offered again.
async fn accept_with_a_wrong_version_is_stale(r: R) {
    let q = 1;
    r.agent_ready(agent(1, &[q], 1, NOW)).await.unwrap();
    r.enqueue(ticket(1, q, 1)).await.unwrap();
    let o1 = one_offer(&r, q, NOW).await;
    assert_eq!(
        r.accept(1, o1.queue_id, 1, o1.version + 1, NOW)
            .await
            .unwrap(),
        Err(OfferGone::StaleVersion)
    );
    assert_eq!(
        r.decline(1, o1.queue_id, 1, o1.version + 1).await.unwrap(),
        Err(OfferGone::StaleVersion)
    );
    // The offer survives a stale attempt; expire it and offer it again.
    assert_eq!(r.expire(q, o1.deadline_ms).await.unwrap(), vec![o1]);
    let o2 = one_offer(&r, q, NOW + TIMEOUT).await;
    assert_eq!((o2.ticket_id, o2.agent_id), (1, 1));
    assert!(o2.version > o1.version);
    assert_eq!(
        r.accept(1, o1.queue_id, 1, o1.version, NOW + TIMEOUT)
            .await
            .unwrap(),
        Err(OfferGone::StaleVersion)
    );
    assert_eq!(
        r.accept(1, o2.queue_id, 1, o2.version, NOW + TIMEOUT)
            .await
            .unwrap(),
        Ok(o2)
    );
}

/// Only the agent the ticket is offered to can settle the offer.
async fn accept_by_another_agent_finds_no_offer(r: R) {
    let q = 1;
    r.agent_ready(agent(1, &[q], 1, NOW)).await.unwrap();
    r.agent_ready(agent(2, &[q], 1, NOW + 10)).await.unwrap();
    r.enqueue(ticket(1, q, 1)).await.unwrap();
    let o = one_offer(&r, q, NOW).await;
    assert_eq!(o.agent_id, 1);
    assert_eq!(
        r.accept(2, o.queue_id, 1, o.version, NOW).await.unwrap(),
        Err(OfferGone::NoOffer)
    );
    assert_eq!(
        r.decline(2, o.queue_id, 1, o.version).await.unwrap(),
        Err(OfferGone::NoOffer)
    );
    assert_eq!(r.offers(q).await.unwrap(), vec![o]);
    assert_eq!(
        r.accept(1, o.queue_id, 1, o.version, NOW).await.unwrap(),
        Ok(o)
    );
}

/// A declined ticket goes back to its original place in the line.
async fn decline_puts_the_ticket_back_at_its_rank(r: R) {
    let q = 1;
    r.agent_ready(agent(1, &[q], 1, NOW)).await.unwrap();
    enqueue_all(&r, q, &[(1, 100), (2, 200), (3, 300)]).await;
    let o1 = one_offer(&r, q, NOW).await;
    assert_eq!(o1.ticket_id, 1);
    assert_eq!(r.waiting(q).await.unwrap(), vec![2, 3]);
    assert_eq!(
        r.decline(1, o1.queue_id, 1, o1.version).await.unwrap(),
        Ok(o1)
    );
    assert_eq!(r.waiting(q).await.unwrap(), vec![1, 2, 3]);
    assert!(r.offers(q).await.unwrap().is_empty());
    assert_eq!(
        r.decline(1, o1.queue_id, 1, o1.version).await.unwrap(),
        Err(OfferGone::NoOffer)
    );
    // The agent's capacity is free again: the same ticket comes back.
    let o2 = one_offer(&r, q, NOW + 5).await;
    assert_eq!((o2.ticket_id, o2.agent_id, o2.rank_ms), (1, 1, 100));
    assert!(o2.version > o1.version);
    assert_eq!(
        r.decline(1, o1.queue_id, 1, o1.version).await.unwrap(),
        Err(OfferGone::StaleVersion)
    );
}

/// Expiry takes the offers due at or before `now`, and only those.
async fn expire_takes_only_offers_past_their_deadline(r: R) {
    let q = 1;
    r.agent_ready(agent(1, &[q], 1, NOW)).await.unwrap();
    r.agent_ready(agent(2, &[q], 1, NOW + 1)).await.unwrap();
    r.enqueue(ticket(1, q, 1)).await.unwrap();
    let o1 = one_offer(&r, q, NOW).await;
    r.enqueue(ticket(2, q, 2)).await.unwrap();
    let o2 = one_offer(&r, q, NOW + 5000).await;
    assert_eq!((o1.agent_id, o2.agent_id), (1, 2));
    assert!(r.expire(q, NOW + TIMEOUT - 1).await.unwrap().is_empty());
    assert_eq!(r.expire(q, NOW + TIMEOUT).await.unwrap(), vec![o1]);
    assert_eq!(r.waiting(q).await.unwrap(), vec![1]);
    assert_eq!(r.offers(q).await.unwrap(), vec![o2]);
    assert!(r.expire(q, NOW + TIMEOUT + 4999).await.unwrap().is_empty());
    assert_eq!(r.expire(q, NOW + TIMEOUT + 5000).await.unwrap(), vec![o2]);
    assert_eq!(r.waiting(q).await.unwrap(), vec![1, 2]);
    assert!(r.offers(q).await.unwrap().is_empty());
    // Another queue's offers are not touched.
    assert!(r.expire(2, i64::MAX / 2).await.unwrap().is_empty());
}

/// Going away rescinds pending offers (back at their rank) and keeps the
/// accepted ones counted.
async fn agent_away_rescinds_and_requeues_offers(r: R) {
    r.agent_ready(agent(1, &[1, 2], 3, NOW)).await.unwrap();
    enqueue_all(&r, 1, &[(11, 1), (12, 2)]).await;
    enqueue_all(&r, 2, &[(21, 1)]).await;
    let in1 = r.dispatch(1, NOW, TIMEOUT, &[]).await.unwrap();
    let in2 = r.dispatch(2, NOW, TIMEOUT, &[]).await.unwrap();
    assert_eq!(tickets(&in1), vec![11, 12]);
    assert_eq!(tickets(&in2), vec![21]);
    assert_eq!(
        r.accept(1, in1[0].queue_id, 11, in1[0].version, NOW)
            .await
            .unwrap(),
        Ok(in1[0])
    );

    let rescinded = r.agent_away(1).await.unwrap();
    assert_eq!(sorted(rescinded), vec![in1[1], in2[0]]);
    assert_eq!(r.waiting(1).await.unwrap(), vec![12]);
    assert_eq!(r.waiting(2).await.unwrap(), vec![21]);
    assert!(r.offers(1).await.unwrap().is_empty());
    assert!(r.offers(2).await.unwrap().is_empty());
    r.enqueue(ticket(14, 1, 5)).await.unwrap();
    assert_eq!(r.waiting(1).await.unwrap(), vec![12, 14]);
    assert!(r.dispatch(1, NOW, TIMEOUT, &[]).await.unwrap().is_empty());
    assert_eq!(
        r.accept(1, in1[1].queue_id, 12, in1[1].version, NOW)
            .await
            .unwrap(),
        Err(OfferGone::NoOffer)
    );
    assert!(r.agent_away(1).await.unwrap().is_empty());
    assert!(r.agent_away(99).await.unwrap().is_empty());

    // Back, with the accepted ticket: two more places.
    let mut back = agent(1, &[1, 2], 3, NOW + 100);
    back.assigned = inbound(&[11]);
    r.agent_ready(back).await.unwrap();
    assert_eq!(
        tickets(&r.dispatch(1, NOW, TIMEOUT, &[]).await.unwrap()),
        vec![12, 14]
    );
    assert!(r.dispatch(2, NOW, TIMEOUT, &[]).await.unwrap().is_empty());
    assert_eq!(r.waiting(2).await.unwrap(), vec![21]);
}

/// A release frees capacity and restarts the agent's idle time.
async fn release_frees_capacity(r: R) {
    let q = 1;
    r.agent_ready(agent(1, &[q], 1, 100)).await.unwrap();
    r.agent_ready(agent(2, &[q], 1, 200)).await.unwrap();
    enqueue_all(&r, q, &[(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]).await;
    let offers = r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap();
    assert_eq!(pairs(&offers), vec![(1, 1), (2, 2)]);
    for o in &offers {
        assert_eq!(
            r.accept(o.agent_id, o.queue_id, o.ticket_id, o.version, NOW)
                .await
                .unwrap(),
            Ok(*o)
        );
    }
    assert!(r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap().is_empty());
    r.release(2, 2, NOW + 1000).await.unwrap();
    r.release(1, 1, NOW + 2000).await.unwrap();
    let offers = r.dispatch(q, NOW + 2000, TIMEOUT, &[]).await.unwrap();
    assert_eq!(pairs(&offers), vec![(3, 2), (4, 1)]);
    for o in &offers {
        assert!(
            r.accept(o.agent_id, o.queue_id, o.ticket_id, o.version, NOW)
                .await
                .unwrap()
                .is_ok()
        );
    }
    r.release(2, 3, NOW + 4000).await.unwrap();
    r.release(1, 4, NOW + 3000).await.unwrap();
    // Releasing a ticket the agent does not hold changes nothing.
    r.release(2, 999, NOW + 100).await.unwrap();
    r.release(77, 999, NOW + 100).await.unwrap();
    let offers = r.dispatch(q, NOW + 4000, TIMEOUT, &[]).await.unwrap();
    assert_eq!(pairs(&offers), vec![(5, 1)]);
}

/// Cancel takes a waiting ticket out of line, or rescinds its offer.
async fn cancel_removes_waiting_and_rescinds_offered(r: R) {
    let q = 1;
    r.agent_ready(agent(1, &[q], 1, NOW)).await.unwrap();
    enqueue_all(&r, q, &[(1, 1), (2, 2), (3, 3)]).await;
    let o1 = one_offer(&r, q, NOW).await;
    assert_eq!(r.cancel(q, 2).await.unwrap(), None);
    assert_eq!(r.waiting(q).await.unwrap(), vec![3]);
    assert_eq!(r.cancel(q, 1).await.unwrap(), Some(o1));
    assert!(r.offers(q).await.unwrap().is_empty());
    assert_eq!(r.waiting(q).await.unwrap(), vec![3]);
    assert_eq!(
        r.accept(1, o1.queue_id, 1, o1.version, NOW).await.unwrap(),
        Err(OfferGone::NoOffer)
    );
    assert_eq!(r.cancel(q, 42).await.unwrap(), None);
    // The agent's place is free again.
    let o3 = one_offer(&r, q, NOW).await;
    assert_eq!((o3.ticket_id, o3.agent_id), (3, 1));
}

/// Readiness replaces the earlier one: queues, capacity and assigned tickets;
/// pending offers keep counting.
async fn agent_ready_replaces_readiness(r: R) {
    r.agent_ready(agent(1, &[1], 1, NOW)).await.unwrap();
    r.agent_ready(agent(1, &[2], 1, NOW)).await.unwrap();
    r.enqueue(ticket(11, 1, 1)).await.unwrap();
    r.enqueue(ticket(21, 2, 1)).await.unwrap();
    assert!(r.dispatch(1, NOW, TIMEOUT, &[]).await.unwrap().is_empty());
    let o21 = one_offer(&r, 2, NOW).await;
    assert_eq!((o21.ticket_id, o21.agent_id), (21, 1));

    // Ready again for both queues while the offer is pending: still full.
    r.agent_ready(agent(1, &[1, 2], 1, NOW)).await.unwrap();
    assert!(r.dispatch(1, NOW, TIMEOUT, &[]).await.unwrap().is_empty());
    assert_eq!(
        r.accept(1, o21.queue_id, 21, o21.version, NOW)
            .await
            .unwrap(),
        Ok(o21)
    );

    // The record says ticket 21 is no longer assigned: the place is free.
    r.agent_ready(agent(1, &[1, 2], 1, NOW)).await.unwrap();
    let o11 = one_offer(&r, 1, NOW).await;
    assert_eq!((o11.ticket_id, o11.agent_id), (11, 1));

    // Capacity 2 with ticket 21 assigned again, plus the pending offer: full.
    let mut two = agent(1, &[1, 2], 2, NOW);
    two.assigned = inbound(&[21]);
    r.agent_ready(two).await.unwrap();
    r.enqueue(ticket(12, 1, 2)).await.unwrap();
    r.enqueue(ticket(22, 2, 2)).await.unwrap();
    assert!(r.dispatch(1, NOW, TIMEOUT, &[]).await.unwrap().is_empty());
    assert!(r.dispatch(2, NOW, TIMEOUT, &[]).await.unwrap().is_empty());
    assert_eq!(
        r.accept(1, o11.queue_id, 11, o11.version, NOW)
            .await
            .unwrap(),
        Ok(o11)
    );
}

/// An agent who declined, missed or was away for a ticket's offer gets that
/// ticket again only when no other agent is available; an accept or a cancel
/// forgets who tried it.
async fn agents_who_passed_on_a_ticket_get_it_last(r: R) {
    let q = 1;
    r.agent_ready(agent(1, &[q], 1, 100)).await.unwrap();
    r.agent_ready(agent(2, &[q], 1, 200)).await.unwrap();
    r.agent_ready(agent(3, &[q], 1, 300)).await.unwrap();
    r.enqueue(ticket(1, q, 1)).await.unwrap();
    // Declined by 1, missed by 2, 3 away: then back to the longest idle.
    let o = one_offer(&r, q, NOW).await;
    assert_eq!(o.agent_id, 1);
    assert!(
        r.decline(1, o.queue_id, 1, o.version)
            .await
            .unwrap()
            .is_ok()
    );
    let o = one_offer(&r, q, NOW).await;
    assert_eq!(o.agent_id, 2);
    assert_eq!(r.expire(q, o.deadline_ms).await.unwrap(), vec![o]);
    let o = one_offer(&r, q, NOW).await;
    assert_eq!(o.agent_id, 3);
    assert_eq!(r.agent_away(3).await.unwrap(), vec![o]);
    r.agent_ready(agent(3, &[q], 1, 300)).await.unwrap();
    let o = one_offer(&r, q, NOW).await;
    assert_eq!(o.agent_id, 1);
    // Another ticket is not affected.
    r.enqueue(ticket(2, q, 2)).await.unwrap();
    let o2 = one_offer(&r, q, NOW).await;
    assert_eq!((o2.ticket_id, o2.agent_id), (2, 2));
    assert!(
        r.decline(2, o2.queue_id, 2, o2.version)
            .await
            .unwrap()
            .is_ok()
    );
    assert!(r.cancel(q, 2).await.unwrap().is_none());
    // Agent 1 accepts ticket 1, releases it later: agent 1 is now the one
    // idle the shortest, and ticket 2 (cancelled: forgotten) goes to 2.
    assert_eq!(
        r.accept(1, o.queue_id, 1, o.version, NOW).await.unwrap(),
        Ok(o)
    );
    r.release(1, 1, NOW).await.unwrap();
    r.enqueue(ticket(2, q, 2)).await.unwrap();
    let o2 = one_offer(&r, q, NOW).await;
    assert_eq!((o2.ticket_id, o2.agent_id), (2, 2));
    // Ticket 1 comes back (reopened): who tried it was forgotten on accept.
    r.enqueue(ticket(1, q, 1)).await.unwrap();
    let o1 = one_offer(&r, q, NOW).await;
    assert_eq!((o1.ticket_id, o1.agent_id), (1, 3));
    assert!(
        r.decline(3, o1.queue_id, 1, o1.version)
            .await
            .unwrap()
            .is_ok()
    );
    let o1 = one_offer(&r, q, NOW).await;
    assert_eq!((o1.ticket_id, o1.agent_id), (1, 1));
}

/// Capacity is counted per kind: complaints (inbound) and service calls
/// (outbound) each up to the agent's capacity for that kind, across queues;
/// assigned tickets count against their own kind.
async fn capacity_is_counted_per_kind(r: R) {
    let q = 1;
    r.agent_ready(agent_with(1, &[seat(q, 0, 0)], (1, 2), NOW))
        .await
        .unwrap();
    r.enqueue(ticket(1, q, 1)).await.unwrap();
    r.enqueue(ticket(2, q, 2)).await.unwrap();
    for t in 3..=5 {
        r.enqueue(outbound_ticket(t, q, t)).await.unwrap();
    }
    let offers = r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap();
    assert_eq!(pairs(&offers), vec![(1, 1), (3, 1), (4, 1)]);
    assert_eq!(
        offers.iter().map(|o| o.kind).collect::<Vec<_>>(),
        [
            TicketKind::Inbound,
            TicketKind::Outbound,
            TicketKind::Outbound
        ]
    );
    assert_eq!(r.waiting(q).await.unwrap(), vec![2, 5]);

    // An agent without outbound capacity takes the complaint, not the call.
    r.agent_ready(agent(2, &[q], 1, NOW)).await.unwrap();
    assert_eq!(
        pairs(&r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap()),
        vec![(2, 2)]
    );
    assert_eq!(r.waiting(q).await.unwrap(), vec![5]);

    // Releasing a call frees a place for a call.
    accept_and_release(&r, &offers[1..2], NOW + 1).await;
    assert_eq!(
        pairs(&r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap()),
        vec![(5, 1)]
    );

    // An assigned call counts against outbound only: agent 3 takes the
    // complaint behind the call it has no room for.
    let mut busy = agent_with(3, &[seat(q, 0, 0)], (1, 1), NOW);
    busy.assigned = vec![(100, TicketKind::Outbound)];
    r.agent_ready(busy).await.unwrap();
    r.enqueue(outbound_ticket(6, q, 6)).await.unwrap();
    r.enqueue(ticket(7, q, 7)).await.unwrap();
    assert_eq!(
        pairs(&r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap()),
        vec![(7, 3)]
    );
    assert_eq!(r.waiting(q).await.unwrap(), vec![6]);

    // Per kind across queues too, with queues dispatching at once.
    let queues = [11, 12, 13];
    let seats: Vec<AgentQueue> = queues.iter().map(|q| seat(*q, 0, 0)).collect();
    r.agent_ready(agent_with(4, &seats, (1, 1), NOW))
        .await
        .unwrap();
    for q in queues {
        r.enqueue(outbound_ticket(q * 10 + 1, q, 1)).await.unwrap();
        r.enqueue(outbound_ticket(q * 10 + 2, q, 2)).await.unwrap();
        r.enqueue(ticket(q * 10 + 3, q, 3)).await.unwrap();
    }
    let (a, b, c) = tokio::join!(
        r.dispatch(11, NOW, TIMEOUT, &[]),
        r.dispatch(12, NOW, TIMEOUT, &[]),
        r.dispatch(13, NOW, TIMEOUT, &[]),
    );
    let mut offered: Vec<Offer> = [a.unwrap(), b.unwrap(), c.unwrap()].concat();
    for q in queues {
        offered.extend(r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap());
    }
    let mut kinds: Vec<TicketKind> = offered.iter().map(|o| o.kind).collect();
    kinds.sort();
    assert_eq!(kinds, [TicketKind::Inbound, TicketKind::Outbound]);
}

/// Among the agents who may take a ticket, the lowest preference goes first,
/// then the longest idle; `set_preference` changes one agent in one queue
/// only; agents who passed on a ticket still come after everyone else.
async fn preference_orders_the_agents(r: R) {
    let (q, other) = (1, 2);
    // Best skill: the preference is minus the level. Agent 1 idles longest
    // but has the lowest level.
    r.agent_ready(agent_with(
        1,
        &[seat(q, 0, -1), seat(other, 0, 0)],
        (1, 0),
        100,
    ))
    .await
    .unwrap();
    r.agent_ready(agent_with(2, &[seat(q, 0, -3)], (1, 0), 300))
        .await
        .unwrap();
    r.agent_ready(agent_with(
        3,
        &[seat(q, 0, -3), seat(other, 0, 0)],
        (1, 0),
        200,
    ))
    .await
    .unwrap();
    enqueue_all(&r, q, &[(11, 1), (12, 2), (13, 3)]).await;
    let offers = r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap();
    assert_eq!(pairs(&offers), vec![(11, 3), (12, 2), (13, 1)]);

    // Fewest today: after their tickets (all released at the same time),
    // agent 2 has taken the fewest in q. Agent 3's preference changes in
    // the other queue only.
    accept_and_release(&r, &offers, NOW).await;
    r.set_preference(2, q, -10).await.unwrap();
    r.set_preference(3, other, -20).await.unwrap();
    r.set_preference(99, q, -50).await.unwrap();
    enqueue_all(&r, q, &[(14, 4), (15, 5), (16, 6)]).await;
    let offers = r.dispatch(q, NOW, TIMEOUT, &[]).await.unwrap();
    assert_eq!(pairs(&offers), vec![(14, 2), (15, 3), (16, 1)]);

    // In the other queue agent 3 now comes before agent 1.
    accept_and_release(&r, &offers, NOW + 10).await;
    r.enqueue(ticket(21, other, 1)).await.unwrap();
    let o = one_offer(&r, other, NOW).await;
    assert_eq!(o.agent_id, 3);

    // Having passed on a ticket weighs more than the preference.
    r.enqueue(ticket(17, q, 7)).await.unwrap();
    let o = one_offer(&r, q, NOW).await;
    assert_eq!(o.agent_id, 2);
    assert_eq!(r.decline(2, q, 17, o.version).await.unwrap(), Ok(o));
    let o = one_offer(&r, q, NOW).await;
    assert_eq!(o.agent_id, 1);

    // A new readiness sets the preference again.
    r.agent_ready(agent_with(2, &[seat(q, 0, 50)], (2, 0), 0))
        .await
        .unwrap();
    r.agent_ready(agent_with(3, &[seat(q, 0, 40)], (2, 0), 0))
        .await
        .unwrap();
    r.enqueue(ticket(18, q, 8)).await.unwrap();
    let o = one_offer(&r, q, NOW).await;
    assert_eq!((o.ticket_id, o.agent_id), (18, 3));
}

/// Bullseye: agents of an outer ring get a ticket only once it has waited
/// that ring's time in its queue. A head ticket nobody may take yet does not
/// hold up a later one that waited long enough, and a declined ticket keeps
/// its waiting time.
async fn bullseye_rings_open_with_waiting_time(r: R) {
    let q = 1;
    let rings = [10_000, 20_000];
    r.agent_ready(agent_with(1, &[seat(q, 1, 0)], (1, 0), 100))
        .await
        .unwrap();
    r.agent_ready(agent_with(2, &[seat(q, 2, 0)], (1, 0), 200))
        .await
        .unwrap();
    r.enqueue(ticket(1, q, NOW)).await.unwrap();
    assert!(
        r.dispatch(q, NOW, TIMEOUT, &rings)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        r.dispatch(q, NOW + 9_999, TIMEOUT, &rings)
            .await
            .unwrap()
            .is_empty()
    );
    // Without relaxation steps only ring 0 is open.
    assert!(
        r.dispatch(q, NOW + 60_000, TIMEOUT, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let o = one_offer_ringed(&r, q, NOW + 10_000, &rings).await;
    assert_eq!((o.ticket_id, o.agent_id, o.entered_ms), (1, 1, NOW));
    assert_eq!(r.decline(1, q, 1, o.version).await.unwrap(), Ok(o));
    // Agent 1 passed on it, so ring 2 (now open) goes first.
    let o = one_offer_ringed(&r, q, NOW + 20_000, &rings).await;
    assert_eq!((o.ticket_id, o.agent_id, o.entered_ms), (1, 2, NOW));

    // Another queue: 15 fresh tickets with the best ranks, then one that
    // has waited a minute; only a ring-1 agent is free.
    let q = 2;
    r.agent_ready(agent_with(3, &[seat(q, 1, 0)], (1, 0), 100))
        .await
        .unwrap();
    let later = NOW + 60_000;
    for t in 1..=15 {
        r.enqueue(WaitingTicket {
            entered_ms: later,
            ..ticket(20 + t, q, t)
        })
        .await
        .unwrap();
    }
    r.enqueue(WaitingTicket {
        entered_ms: NOW,
        ..ticket(99, q, 100)
    })
    .await
    .unwrap();
    let o = one_offer_ringed(&r, q, later, &[10_000]).await;
    assert_eq!((o.ticket_id, o.agent_id), (99, 3));
    // A ring-0 agent takes the head of the line.
    r.agent_ready(agent_with(4, &[seat(q, 0, 0)], (1, 0), 100))
        .await
        .unwrap();
    let o = one_offer_ringed(&r, q, later, &[10_000]).await;
    assert_eq!((o.ticket_id, o.agent_id), (21, 4));
}

async fn one_offer_ringed(r: &R, queue_id: QueueId, now_ms: i64, rings: &[i64]) -> Offer {
    let offers = r.dispatch(queue_id, now_ms, TIMEOUT, rings).await.unwrap();
    assert_eq!(offers.len(), 1, "expected one offer, got {offers:?}");
    offers[0]
}

/// Accept and decline name the offer's queue; in another queue there is no
/// such offer, and the real one is untouched.
async fn an_offer_is_settled_in_its_own_queue_only(r: R) {
    r.agent_ready(agent(1, &[1, 2], 2, NOW)).await.unwrap();
    r.enqueue(ticket(1, 1, 1)).await.unwrap();
    let o = one_offer(&r, 1, NOW).await;
    assert_eq!(
        r.accept(1, 2, 1, o.version, NOW).await.unwrap(),
        Err(OfferGone::NoOffer)
    );
    assert_eq!(
        r.decline(1, 2, 1, o.version).await.unwrap(),
        Err(OfferGone::NoOffer)
    );
    assert_eq!(r.offers(1).await.unwrap(), vec![o]);
    assert!(r.waiting(2).await.unwrap().is_empty());
    assert_eq!(r.accept(1, 1, 1, o.version, NOW).await.unwrap(), Ok(o));
}

/// Many tasks race dispatch, accept, decline, release, expiry and away/ready
/// on one routing object. Afterwards: no ticket lost or duplicated, no agent
/// over capacity, and everything left can still be served.
async fn concurrent_stress(r: R) {
    const AGENTS: i64 = 20;
    const TICKETS: i64 = 500;
    const QUEUES: [QueueId; 3] = [1, 2, 3];
    const SHORT: i64 = 200;

    struct Shared {
        clock: AtomicI64,
        stop: AtomicBool,
        /// Offers handed out by dispatch, by agent, not yet looked at.
        inbox: Mutex<HashMap<AgentId, Vec<Offer>>>,
        accepted: Mutex<HashMap<TicketId, u32>>,
    }
    // Every fourth ticket is a service call; odd agents take one at a time
    // besides their complaints, even agents none.
    let kind_of = |t: TicketId| {
        if t % 4 == 0 {
            TicketKind::Outbound
        } else {
            TicketKind::Inbound
        }
    };
    let capacity = |a: AgentId| 1 + (a % 3) as u32;
    let capacity_of = move |a: AgentId, kind: TicketKind| match kind {
        TicketKind::Inbound => capacity(a),
        TicketKind::Outbound => (a % 2) as u32,
    };
    let ready = move |a: AgentId, queues: &[QueueId], idle: i64, assigned: &[TicketId]| {
        let mut ready = agent(a, queues, capacity(a), idle);
        ready.capacity_outbound = capacity_of(a, TicketKind::Outbound);
        ready.assigned = assigned.iter().map(|t| (*t, kind_of(*t))).collect();
        ready
    };
    let queues_of = |a: AgentId| {
        let first = QUEUES[(a % 3) as usize];
        if a % 2 == 0 {
            vec![first, QUEUES[((a + 1) % 3) as usize]]
        } else {
            vec![first]
        }
    };
    let shared = Arc::new(Shared {
        clock: AtomicI64::new(NOW),
        stop: AtomicBool::new(false),
        inbox: Mutex::new(HashMap::new()),
        accepted: Mutex::new(HashMap::new()),
    });
    for a in 1..=AGENTS {
        r.agent_ready(ready(a, &queues_of(a), NOW - a, &[]))
            .await
            .unwrap();
    }
    let queue_of = |t: TicketId| QUEUES[(t % 3) as usize];
    for t in 1..=TICKETS {
        r.enqueue(WaitingTicket {
            kind: kind_of(t),
            ..ticket(t, queue_of(t), (t * 7919) % 1009)
        })
        .await
        .unwrap();
    }

    let mut tasks = Vec::new();
    // Dispatchers: two per queue, racing each other.
    for (i, q) in QUEUES.iter().chain(QUEUES.iter()).enumerate() {
        let (r, s, q) = (r.clone(), shared.clone(), *q);
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(i as u64 + 1);
            while !s.stop.load(Ordering::Relaxed) {
                let now = s.clock.load(Ordering::Relaxed);
                let offers = r.dispatch(q, now, SHORT, &[]).await.unwrap();
                {
                    let mut inbox = s.inbox.lock().unwrap();
                    for o in offers {
                        inbox.entry(o.agent_id).or_default().push(o);
                    }
                }
                if rng.below(4) == 0 {
                    tokio::task::yield_now().await;
                }
            }
            Vec::new()
        }));
    }
    // The clock and expiry.
    {
        let (r, s) = (r.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            while !s.stop.load(Ordering::Relaxed) {
                let now = s.clock.fetch_add(25, Ordering::Relaxed) + 25;
                for q in QUEUES {
                    r.expire(q, now).await.unwrap();
                }
                tokio::task::yield_now().await;
            }
            Vec::new()
        }));
    }
    // Agents: accept most offers, decline some, let some expire, release
    // tickets, now and then go away and come back.
    for a in 1..=AGENTS {
        let (r, s) = (r.clone(), shared.clone());
        let queues = queues_of(a);
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(1000 + a as u64);
            let mut mine: Vec<TicketId> = Vec::new();
            while !s.stop.load(Ordering::Relaxed) {
                let offers = s.inbox.lock().unwrap().remove(&a).unwrap_or_default();
                for o in offers {
                    let now = s.clock.load(Ordering::Relaxed);
                    let choice = rng.below(10);
                    if choice < 7 {
                        let settled = r
                            .accept(a, o.queue_id, o.ticket_id, o.version, now)
                            .await
                            .unwrap();
                        if settled.is_ok() {
                            {
                                let mut acc = s.accepted.lock().unwrap();
                                let n = acc.entry(o.ticket_id).or_default();
                                *n += 1;
                                assert_eq!(*n, 1, "ticket {} accepted twice", o.ticket_id);
                            }
                            mine.push(o.ticket_id);
                            let same = mine.iter().filter(|t| kind_of(**t) == o.kind).count();
                            assert_eq!(o.kind, kind_of(o.ticket_id));
                            assert!(
                                same as u32 <= capacity_of(a, o.kind),
                                "agent {a} holds {mine:?}: over capacity for {:?}",
                                o.kind
                            );
                        }
                    } else if choice < 9 {
                        let _ = r
                            .decline(a, o.queue_id, o.ticket_id, o.version)
                            .await
                            .unwrap();
                    }
                }
                if !mine.is_empty() && rng.below(3) == 0 {
                    let t = mine.swap_remove(rng.below(mine.len() as u64) as usize);
                    let now = s.clock.load(Ordering::Relaxed);
                    r.release(a, t, now).await.unwrap();
                }
                if rng.below(50) == 0 {
                    r.agent_away(a).await.unwrap();
                    tokio::task::yield_now().await;
                    let now = s.clock.load(Ordering::Relaxed);
                    r.agent_ready(ready(a, &queues, now, &mine)).await.unwrap();
                }
                tokio::task::yield_now().await;
            }
            mine
        }));
    }

    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8)
        && (shared.accepted.lock().unwrap().len() as i64) < TICKETS * 9 / 10
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut held: HashMap<AgentId, Vec<TicketId>> = HashMap::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let mine = task.await.expect("a stress task panicked");
        // Agent tasks come last, in agent id order.
        let first_agent_task = QUEUES.len() * 2 + 1;
        if i >= first_agent_task {
            held.insert((i - first_agent_task) as AgentId + 1, mine);
        }
    }

    // Quiescent now: check the state.
    let accepted: BTreeSet<TicketId> = {
        let acc = shared.accepted.lock().unwrap();
        assert!(acc.values().all(|n| *n == 1));
        acc.keys().copied().collect()
    };
    let mut seen: BTreeMap<TicketId, &str> = BTreeMap::new();
    let mut per_agent: HashMap<(AgentId, TicketKind), usize> = HashMap::new();
    for q in QUEUES {
        for t in r.waiting(q).await.unwrap() {
            assert_eq!(queue_of(t), q);
            assert!(
                seen.insert(t, "waiting").is_none(),
                "ticket {t} in two places"
            );
        }
        for o in r.offers(q).await.unwrap() {
            assert!(
                seen.insert(o.ticket_id, "offered").is_none(),
                "ticket {} in two places",
                o.ticket_id
            );
            *per_agent.entry((o.agent_id, o.kind)).or_default() += 1;
        }
    }
    for t in &accepted {
        assert!(
            seen.insert(*t, "accepted").is_none(),
            "accepted ticket {t} still live"
        );
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=TICKETS).collect::<Vec<_>>(),
        "tickets lost"
    );
    for a in 1..=AGENTS {
        for kind in [TicketKind::Inbound, TicketKind::Outbound] {
            let offered = per_agent.get(&(a, kind)).copied().unwrap_or(0);
            let assigned = held[&a].iter().filter(|t| kind_of(**t) == kind).count();
            assert!(
                (offered + assigned) as u32 <= capacity_of(a, kind),
                "agent {a} over {kind:?} capacity: {offered} offered, {assigned} assigned"
            );
        }
    }
    eprintln!(
        "stress: {} accepted during the race, {} offers pending",
        accepted.len(),
        per_agent.values().sum::<usize>()
    );

    // Everything left can still be served, each ticket exactly once.
    let now = shared.clock.load(Ordering::Relaxed) + 10 * SHORT;
    for q in QUEUES {
        r.expire(q, now).await.unwrap();
    }
    for (a, tickets) in &held {
        for t in tickets {
            r.release(*a, *t, now).await.unwrap();
        }
    }
    let mut accepted = accepted;
    let mut rounds = 0;
    loop {
        let mut waiting = 0;
        for q in QUEUES {
            waiting += r.waiting(q).await.unwrap().len();
        }
        if waiting == 0 {
            break;
        }
        rounds += 1;
        assert!(rounds < 1000, "the rest is not being served");
        let mut progress = 0;
        for q in QUEUES {
            for o in r.dispatch(q, now, TIMEOUT, &[]).await.unwrap() {
                assert_eq!(
                    r.accept(o.agent_id, o.queue_id, o.ticket_id, o.version, now)
                        .await
                        .unwrap(),
                    Ok(o)
                );
                assert!(accepted.insert(o.ticket_id), "ticket {} twice", o.ticket_id);
                r.release(o.agent_id, o.ticket_id, now).await.unwrap();
                progress += 1;
            }
        }
        assert!(
            progress > 0,
            "{waiting} tickets wait but nothing is offered"
        );
    }
    for q in QUEUES {
        assert!(r.offers(q).await.unwrap().is_empty());
    }
    assert_eq!(accepted.len() as i64, TICKETS);
}

/// A tiny deterministic generator (the stress tasks need `Send` state).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---------------------------------------------------------------------------
// Bus

fn revoke(user_id: i64) -> BusMessage {
    BusMessage::Revoke {
        user_id,
        session_id: Some(format!("s{user_id}")),
        reason: "test".into(),
    }
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<BusMessage>) -> BusMessage {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no bus message within 5 s")
        .expect("bus closed")
}

/// Two nodes (A and B) on one prefix both receive what either publishes; a
/// node on another prefix (C) hears nothing of it.
async fn bus_fans_out(url_a: &str, url_b: &str) {
    let prefix = unique_prefix();
    let (a, mut ra) = RedisBus::start(url_a, prefix.clone()).await.unwrap();
    let (b, mut rb) = RedisBus::start(url_b, prefix.clone()).await.unwrap();
    let (c, mut rc) = RedisBus::start(url_a, unique_prefix()).await.unwrap();
    a.publish(revoke(1)).await.unwrap();
    b.publish(revoke(2)).await.unwrap();
    c.publish(revoke(3)).await.unwrap();
    a.publish(revoke(4)).await.unwrap();
    for rx in [&mut ra, &mut rb] {
        assert_eq!(next(rx).await, revoke(1));
        assert_eq!(next(rx).await, revoke(2));
        // Not 3: that was another prefix.
        assert_eq!(next(rx).await, revoke(4));
    }
    assert_eq!(next(&mut rc).await, revoke(3));
}

#[tokio::test]
async fn redis_bus_reaches_every_node() {
    if let Some(url) = single_redis().await {
        bus_fans_out(&url, &url).await;
    }
}

#[tokio::test]
async fn redis_bus_reaches_every_node_of_a_cluster() {
    if cluster_redis().await.is_some() {
        let ports = cluster::ports().unwrap();
        let mut rotated = ports.clone();
        rotated.rotate_left(1);
        // A subscribes on the first node, B on the second.
        bus_fans_out(&cluster::url(&ports), &cluster::url(&rotated)).await;
    }
}

#[tokio::test]
async fn redis_routing_is_reachable() {
    if let Some(b) = RedisBackend::on(single_redis().await).await {
        b.routing.ping().await.unwrap();
        b.cleanup().await;
    }
    if let Some(b) = RedisBackend::on(cluster_redis().await).await {
        b.routing.ping().await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// Redis commands per operation

/// Counts the commands sent to a Redis server that name keys under a
/// prefix, through MONITOR (script-internal commands are not counted).
struct CommandCounter {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>>,
    conn: redis_conn::RedisConn,
    prefix: String,
    marks: u32,
}

impl CommandCounter {
    async fn start(url: &str, conn: redis_conn::RedisConn, prefix: &str) -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let info = redis::Client::open(url)
            .unwrap()
            .get_connection_info()
            .clone();
        let redis::ConnectionAddr::Tcp(host, port) = info.addr else {
            panic!("the command count needs a TCP Redis URL");
        };
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut lines = tokio::io::BufReader::new(stream).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("+OK"));
        Self {
            lines,
            conn,
            prefix: prefix.to_string(),
            marks: 0,
        }
    }

    /// The commands seen since the last call: a marker command is sent and
    /// the stream read up to it (MONITOR shows commands in execution order).
    async fn count(&mut self) -> usize {
        self.marks += 1;
        let mark = format!("{}:mark:{}", self.prefix, self.marks);
        let _: String = redis::cmd("ECHO")
            .arg(&mark)
            .query_async(&mut self.conn)
            .await
            .unwrap();
        let mut n = 0;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
                .await
                .expect("MONITOR went quiet")
                .unwrap()
                .expect("MONITOR closed");
            if line.contains(&mark) {
                return n;
            }
            if line.contains(&self.prefix) && !line.contains(" lua]") {
                n += 1;
            }
        }
    }
}

/// The full lifecycle of a ticket (enqueue, dispatch, accept, release) for
/// an agent of one queue costs 6 Redis commands (the budget is 8); decline
/// 3 and set_preference 1. Counted on the single Redis, scripts loaded.
#[tokio::test]
async fn redis_commands_per_operation() {
    let Some(url) = single_redis().await else {
        return;
    };
    let b = RedisBackend::on(Some(url.clone())).await.unwrap();
    let r = b.routing.clone();
    let q = 1;
    r.agent_ready(agent(1, &[q], 1, NOW)).await.unwrap();
    // Load every script once (a first EVALSHA may miss).
    for t in [1, 2] {
        r.enqueue(ticket(t, q, t)).await.unwrap();
        let o = one_offer(&r, q, NOW).await;
        if t == 1 {
            r.decline(1, q, t, o.version).await.unwrap().unwrap();
            let o = one_offer(&r, q, NOW).await;
            r.accept(1, q, o.ticket_id, o.version, NOW)
                .await
                .unwrap()
                .unwrap();
            r.release(1, o.ticket_id, NOW).await.unwrap();
        } else {
            r.accept(1, q, t, o.version, NOW).await.unwrap().unwrap();
            r.release(1, t, NOW).await.unwrap();
        }
    }
    r.set_preference(1, q, 0).await.unwrap();

    let mut counter = CommandCounter::start(&url, b.conn.clone(), &b.prefix).await;
    let mut costs = Vec::new();
    r.enqueue(ticket(3, q, 3)).await.unwrap();
    costs.push(("enqueue", counter.count().await));
    let o = one_offer(&r, q, NOW).await;
    costs.push(("dispatch", counter.count().await));
    r.decline(1, q, 3, o.version).await.unwrap().unwrap();
    costs.push(("decline", counter.count().await));
    let o = one_offer(&r, q, NOW).await;
    counter.count().await;
    r.accept(1, q, 3, o.version, NOW).await.unwrap().unwrap();
    costs.push(("accept", counter.count().await));
    r.release(1, 3, NOW).await.unwrap();
    costs.push(("release", counter.count().await));
    r.set_preference(1, q, 5).await.unwrap();
    costs.push(("set_preference", counter.count().await));
    eprintln!("Redis commands per operation: {costs:?}");
    assert_eq!(
        costs,
        [
            ("enqueue", 1),
            ("dispatch", 2),
            ("decline", 3),
            ("accept", 1),
            ("release", 2),
            ("set_preference", 1),
        ]
    );
    let lifecycle: usize = costs
        .iter()
        .filter(|(op, _)| ["enqueue", "dispatch", "accept", "release"].contains(op))
        .map(|(_, n)| n)
        .sum();
    assert!(
        lifecycle <= 8,
        "a ticket's lifecycle costs {lifecycle} commands"
    );
    drop(counter);
    b.cleanup().await;
}

// ---------------------------------------------------------------------------
// A throwaway Redis Cluster

/// Three `redis-server` masters in cluster mode on free loopback ports in
/// 7100..7200, started once per test process and shared by its tests. Each
/// test connects on its own (a connection belongs to its test's runtime).
/// The servers die with the test process: a watchdog shell waits for this
/// process to end and kills them; servers left by an earlier run whose
/// process is gone (say, killed with SIGKILL together with its watchdog) are
/// killed on the next start.
mod cluster {
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    const DIR_PREFIX: &str = "callcenter-test-cluster-";

    static PORTS: OnceLock<Result<Vec<u16>, String>> = OnceLock::new();

    /// The ports of the running cluster, starting it on first use.
    pub fn ports() -> Result<Vec<u16>, String> {
        PORTS.get_or_init(start).clone()
    }

    pub fn url(ports: &[u16]) -> String {
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    fn start() -> Result<Vec<u16>, String> {
        for tool in ["redis-server", "redis-cli"] {
            Command::new(tool)
                .arg("--version")
                .output()
                .map_err(|e| format!("{tool}: {e}"))?;
        }
        reap_stale();
        let mut last = String::new();
        for attempt in 0..5 {
            match try_start(attempt) {
                Ok(ports) => return Ok(ports),
                Err(e) => last = e,
            }
        }
        Err(format!("could not start a Redis Cluster: {last}"))
    }

    fn free_ports(count: usize) -> Vec<u16> {
        let offset = rand::random::<u16>() % 100;
        let bindable = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        (0..100)
            .map(|i| 7100 + (offset + i) % 100)
            // The cluster bus listens on port + 10000.
            .filter(|p| bindable(*p) && bindable(p + 10000))
            .take(count)
            .collect()
    }

    fn cli(port: u16, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Result<(), String> {
        let started = Instant::now();
        while !ok() {
            if started.elapsed() > limit {
                return Err(format!("timed out waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn try_start(attempt: u32) -> Result<Vec<u16>, String> {
        let ports = free_ports(3);
        if ports.len() < 3 {
            return Err("no free ports in 7100..7200".into());
        }
        let me = std::process::id();
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{me}-{attempt}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("owner"), me.to_string()).map_err(|e| e.to_string())?;
        let mut pids = Vec::new();
        for port in &ports {
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-node-timeout", "5000"])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .arg("--cluster-config-file")
                .arg(dir.join(format!("nodes-{port}.conf")))
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(dir.join(format!("redis-{port}.log")))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            pids.push(child.id());
        }
        let pid_list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
        std::fs::write(dir.join("pids"), pid_list.join("\n")).map_err(|e| e.to_string())?;
        watchdog(me, &pid_list, &dir)?;

        let started = (|| {
            for port in &ports {
                wait_until("redis-server to answer", Duration::from_secs(10), || {
                    cli(*port, &["ping"]).is_some_and(|o| o.contains("PONG"))
                })?;
            }
            let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
            let out = Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(&nodes)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "redis-cli --cluster create failed: {}",
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
            for port in &ports {
                wait_until("cluster_state:ok", Duration::from_secs(30), || {
                    cli(*port, &["cluster", "info"]).is_some_and(|o| {
                        o.contains("cluster_state:ok") && o.contains("cluster_slots_ok:16384")
                    })
                })?;
            }
            Ok(())
        })();
        if let Err(e) = started {
            kill(&pid_list);
            return Err(e);
        }
        Ok(ports)
    }

    /// A shell that outlives this process by at most a second and then
    /// stops the servers and removes their directory.
    fn watchdog(owner: u32, pids: &[String], dir: &Path) -> Result<(), String> {
        let script = format!(
            "while kill -0 {owner} 2>/dev/null; do sleep 1; done; kill {} 2>/dev/null; sleep 1; rm -rf '{}'",
            pids.join(" "),
            dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(|_| ())
            .map_err(|e| format!("watchdog: {e}"))
    }

    fn kill(pids: &[String]) {
        let _ = Command::new("kill").args(pids).status();
    }

    fn is_redis_server(pid: &str) -> bool {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("redis-server"))
    }

    /// Stop servers of earlier runs whose test process is gone.
    fn reap_stale() {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(DIR_PREFIX) {
                continue;
            }
            let dir: PathBuf = entry.path();
            let owner = std::fs::read_to_string(dir.join("owner")).unwrap_or_default();
            if !owner.is_empty() && Path::new(&format!("/proc/{}", owner.trim())).exists() {
                continue;
            }
            let pids: Vec<String> = std::fs::read_to_string(dir.join("pids"))
                .unwrap_or_default()
                .lines()
                .map(str::trim)
                .filter(|p| is_redis_server(p))
                .map(String::from)
                .collect();
            if !pids.is_empty() {
                kill(&pids);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
