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
use callcenter::bus::{Bus, BusMessage, Claim};
use callcenter::redis_conn;
use callcenter::routing::memory::MemoryRouting;
use callcenter::routing::redis::RedisRouting;
use callcenter::routing::{
    AgentId, AgentQueue, DispatchPlan, Offer, OfferGone, QueueId, ReadyAgent, Routing, TicketId,
    TicketKind, WaitingTicket,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
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
    url: String,
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
            url,
        })
    }

    /// Three server nodes sharing this backend's routing state, each with
    /// its own connection: two on this runtime, one on `stalling`'s.
    async fn nodes(&self, stalling: &Stalling) -> Vec<Node> {
        let here = tokio::runtime::Handle::current();
        let conn = redis_conn::connect(&self.url)
            .await
            .expect("connect to Redis");
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let slow = stalling
            .runtime
            .spawn(async move {
                let conn = redis_conn::connect(&url).await.expect("connect to Redis");
                Arc::new(RedisRouting::new(conn, prefix)) as R
            })
            .await
            .unwrap();
        vec![
            Node::new(self.routing.clone(), here.clone()),
            Node::new(Arc::new(RedisRouting::new(conn, self.prefix.clone())), here),
            Node::stalling(slow, stalling),
        ]
    }

    fn probe(&self) -> HeldProbe {
        HeldProbe {
            conn: self.conn.clone(),
            prefix: self.prefix.clone(),
        }
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
    enqueue_then_dispatch_offers_at_once,
    release_then_dispatch_serves_the_next,
);

mod stress {
    //! [`super::concurrent_stress`] on every backend, in both profiles:
    //! memory (one routing object used from two runtimes, one stalling),
    //! and three server nodes (one stalling) sharing one Redis or one
    //! 3-master Redis Cluster.
    use super::{CALL_CENTER, CONTENTION, Node, Stalling, StressProfile, concurrent_stress};

    async fn memory(p: StressProfile) {
        let stalling = Stalling::start();
        let r = super::memory_backend();
        let nodes = vec![
            Node::new(r.clone(), tokio::runtime::Handle::current()),
            Node::stalling(r, &stalling),
        ];
        concurrent_stress(p, nodes, None).await;
    }

    async fn redis(p: StressProfile, url: Option<String>) {
        if let Some(b) = super::RedisBackend::on(url).await {
            let stalling = Stalling::start();
            concurrent_stress(p, b.nodes(&stalling).await, Some(b.probe())).await;
            b.cleanup().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_call_center() {
        memory(CALL_CENTER).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_contention() {
        memory(CONTENTION).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_single_call_center() {
        redis(CALL_CENTER, super::single_redis().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_single_contention() {
        redis(CONTENTION, super::single_redis().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_cluster_call_center() {
        redis(CALL_CENTER, super::cluster_redis().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_cluster_contention() {
        redis(CONTENTION, super::cluster_redis().await).await;
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

fn plan(queue_id: QueueId, now_ms: i64) -> DispatchPlan<'static> {
    DispatchPlan {
        queue_id,
        now_ms,
        offer_timeout_ms: TIMEOUT,
        ring_after_ms: &[],
    }
}

/// A complaint filed and dispatched in one call goes to a free agent at
/// once; while the agent is full the next one waits at its rank; filing an
/// offered ticket again (a retried request) leaves its offer alone.
async fn enqueue_then_dispatch_offers_at_once(r: R) {
    let q = 1;
    r.agent_ready(agent(1, &[q], 1, 100)).await.unwrap();
    let offers = r
        .enqueue_then_dispatch(ticket(1, q, 1), plan(q, NOW))
        .await
        .unwrap();
    assert_eq!(pairs(&offers), vec![(1, 1)]);
    assert_eq!(offers[0].deadline_ms, NOW + TIMEOUT);
    let waits = r
        .enqueue_then_dispatch(ticket(2, q, 2), plan(q, NOW))
        .await
        .unwrap();
    assert!(waits.is_empty(), "the agent is full: {waits:?}");
    let again = r
        .enqueue_then_dispatch(ticket(1, q, 1), plan(q, NOW))
        .await
        .unwrap();
    assert!(again.is_empty(), "offered twice: {again:?}");
    assert_eq!(r.waiting(q).await.unwrap(), vec![2]);
    assert_eq!(r.offers(q).await.unwrap(), offers);
    // Declined, the ticket comes back; the agent is offered the first in line.
    r.decline(1, q, 1, offers[0].version)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.waiting(q).await.unwrap(), vec![1, 2]);
}

/// An agent who ends a ticket is offered the next one in the same call, in
/// the first planned queue that has one, never above capacity; a queue of
/// the agent left out of the plan still learns the agent is free.
async fn release_then_dispatch_serves_the_next(r: R) {
    let (q1, q2) = (1, 2);
    r.agent_ready(agent(1, &[q1, q2], 1, 100)).await.unwrap();
    r.agent_ready(agent(2, &[q2], 1, 200)).await.unwrap();
    enqueue_all(&r, q1, &[(1, 1), (2, 2)]).await;
    let o = one_offer(&r, q1, NOW).await;
    assert_eq!((o.ticket_id, o.agent_id), (1, 1));
    r.accept(1, q1, 1, o.version, NOW).await.unwrap().unwrap();
    enqueue_all(&r, q2, &[(3, 3)]).await;
    let o = one_offer(&r, q2, NOW).await;
    assert_eq!((o.ticket_id, o.agent_id), (3, 2), "agent 1 is full");
    r.accept(2, q2, 3, o.version, NOW).await.unwrap().unwrap();
    enqueue_all(&r, q2, &[(4, 4)]).await;

    // Both queues planned, both with a ticket: one offer (capacity 1), from
    // the first planned queue.
    let offers = r
        .release_then_dispatch(
            1,
            1,
            NOW + 1000,
            &[plan(q2, NOW + 1000), plan(q1, NOW + 1000)],
        )
        .await
        .unwrap();
    assert_eq!(pairs(&offers), vec![(4, 1)]);
    r.accept(1, q2, 4, offers[0].version, NOW + 1000)
        .await
        .unwrap()
        .unwrap();

    // Only q2 planned (and empty): nothing offered, yet q1 learns the agent
    // is free and its own dispatch offers ticket 2.
    let offers = r
        .release_then_dispatch(1, 4, NOW + 2000, &[plan(q2, NOW + 2000)])
        .await
        .unwrap();
    assert!(offers.is_empty(), "{offers:?}");
    assert_eq!(pairs(&[one_offer(&r, q1, NOW + 2000).await]), vec![(2, 1)]);

    // Releasing a ticket the agent does not hold frees nothing; the plan
    // still dispatches (agent 2, still holding ticket 3, gets nothing).
    enqueue_all(&r, q2, &[(5, 5)]).await;
    let offers = r
        .release_then_dispatch(2, 99, NOW + 3000, &[plan(q2, NOW + 3000)])
        .await
        .unwrap();
    assert!(offers.is_empty(), "{offers:?}");
    let offers = r
        .release_then_dispatch(2, 3, NOW + 3000, &[plan(q2, NOW + 3000)])
        .await
        .unwrap();
    assert_eq!(pairs(&offers), vec![(5, 2)]);
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

const STRESS_QUEUES: [QueueId; 4] = [1, 2, 3, 4];

/// The shape of a stress run.
#[derive(Clone, Copy, Debug)]
struct StressProfile {
    name: &'static str,
    agents: i64,
    tickets: i64,
    /// The offer timeout, in clock time.
    offer_ms: i64,
    /// How far the clock moves every 5 ms of real time.
    clock_step_ms: i64,
    /// One expiry pass in this many (per node and queue, every 5 ms) runs
    /// with the node's clock a whole offer timeout ahead: every offer of the
    /// queue expires at once, also those a dispatch is still reserving.
    skew_one_in: u64,
    /// Tickets share this many ranks (scores), so equal scores abound.
    ranks: i64,
    /// Dispatchers and expiry run again at once instead of waiting for a
    /// change (or 5 ms): some node is always in the middle of one.
    busy: bool,
    /// The stalling node dispatches with a `now` this old (it read the
    /// clock, then stalled), so its offers are due this much sooner.
    stale_now_ms: i64,
    /// The race stops when this many tickets were accepted, or at `limit`.
    enough: i64,
    limit: Duration,
}

/// A call center's worth: 200 agents, 3,000 tickets. The clock keeps pace
/// with real time and offers time out after 5 s: a missed offer expires, an
/// answered one is settled long before, even when a dispatch that made a
/// hundred offers took a second to hand them out (a debug build on a busy
/// machine).
const CALL_CENTER: StressProfile = StressProfile {
    name: "call center",
    agents: 200,
    tickets: 3_000,
    offer_ms: 5_000,
    clock_step_ms: 5,
    skew_one_in: 500,
    ranks: 97,
    busy: false,
    stale_now_ms: 1_000,
    enough: 2_700,
    limit: Duration::from_secs(60),
};

/// Few agents, always busy, and offers that time out while the dispatch
/// that made them is still reserving their agents: the window where a
/// reservation, an expiry and another node's dispatch of the same ticket
/// interleave (the one that put agents over capacity on a cluster; see
/// `routing/redis.rs`: with the reservation script from before the fix,
/// about one cluster run in two fails here). The race runs until every
/// ticket is accepted or for its time limit.
const CONTENTION: StressProfile = StressProfile {
    name: "contention",
    agents: 8,
    tickets: 600,
    offer_ms: 200,
    clock_step_ms: 25,
    skew_one_in: 20,
    ranks: 31,
    busy: true,
    stale_now_ms: 200,
    enough: 600,
    limit: Duration::from_secs(6),
};

/// A server node of the stress: its routing object and the runtime its
/// tasks (and its Redis connection) run on.
#[derive(Clone)]
struct Node {
    routing: R,
    runtime: tokio::runtime::Handle,
    stalls: bool,
}

impl Node {
    fn new(routing: R, runtime: tokio::runtime::Handle) -> Self {
        Self {
            routing,
            runtime,
            stalls: false,
        }
    }

    fn stalling(routing: R, stalling: &Stalling) -> Self {
        Self {
            routing,
            runtime: stalling.runtime.clone(),
            stalls: true,
        }
    }
}

/// A runtime whose one thread stalls now and then, like a server process in
/// a pause (garbage collection, CPU starvation): a node there, with its
/// Redis connection, does the two halves of an operation (a dispatch step
/// and its reservation, an expiry and its unhold) with other nodes' work in
/// between. Stops when dropped (after everything on it is done).
struct Stalling {
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stalling {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            tx.send(runtime.handle().clone()).unwrap();
            runtime.block_on(async move {
                let mut rng = Rng(4242);
                while !stopped.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(1 + rng.below(4))).await;
                    // The stall: nothing on this runtime moves meanwhile.
                    std::thread::sleep(Duration::from_micros(500 + rng.below(2_500)));
                }
            });
        });
        Self {
            runtime: rx.recv().unwrap(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Stalling {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads an agent's capacity ledger straight from the live store: the agent
/// slot's `held` hash in Redis (ticket member -> a value starting with the
/// ticket's kind code), the authority a reservation counts.
struct HeldProbe {
    conn: redis_conn::RedisConn,
    prefix: String,
}

impl HeldProbe {
    async fn held(&self, agent_id: AgentId) -> BTreeMap<TicketId, TicketKind> {
        let key = format!("{}:{{a:{agent_id}}}:held", self.prefix);
        let v: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut self.conn.clone())
            .await
            .unwrap();
        v.into_iter()
            .map(|(t, hold)| {
                let id = (t.parse::<u64>().unwrap() ^ (1 << 63)) as i64;
                (id, TicketKind::from_code(&hold[..1]).unwrap())
            })
            .collect()
    }
}

/// The record the stress keeps, as the database would: who holds each
/// assigned ticket (one live holder per ticket, like the `assignments_live`
/// index) and how many tickets of each kind each agent holds.
#[derive(Default)]
struct StressRecord {
    holder: HashMap<TicketId, AgentId>,
    count: HashMap<(AgentId, TicketKind), u32>,
    ever: BTreeSet<TicketId>,
}

impl StressRecord {
    fn assign(&mut self, o: &Offer, capacity: u32) {
        if let Some(other) = self.holder.insert(o.ticket_id, o.agent_id) {
            panic!(
                "record: ticket {} held by agents {other} and {}",
                o.ticket_id, o.agent_id
            );
        }
        assert!(
            self.ever.insert(o.ticket_id),
            "ticket {} assigned twice",
            o.ticket_id
        );
        let n = self.count.entry((o.agent_id, o.kind)).or_default();
        *n += 1;
        assert!(
            *n <= capacity,
            "record: agent {} holds {n} {:?} tickets, capacity {capacity}",
            o.agent_id,
            o.kind
        );
    }

    fn unassign(&mut self, agent_id: AgentId, ticket_id: TicketId, kind: TicketKind) {
        assert_eq!(self.holder.remove(&ticket_id), Some(agent_id));
        *self.count.get_mut(&(agent_id, kind)).unwrap() -= 1;
    }
}

/// Racing work on one shared routing state, seen through `nodes` (several
/// `RedisRouting`s on one Redis or cluster act as server nodes; memory is
/// one object used from two runtimes), one of which stalls now and then:
/// tickets filed from every node while dispatchers on every node race for
/// each queue, expiry runs on every node, and the agents, each on one
/// node, accept most offers, decline some, miss some (they time out),
/// finish tickets, and now and then drop and come back. Checked while it runs: a ticket is accepted once, only at
/// its newest offer (never offered to two agents at once), held by one
/// agent in the record; no agent above capacity, in its own view, in the
/// record, and (Redis) in the live store's capacity ledger. Checked after:
/// every ticket in exactly one place (none lost), each agent's live offers
/// plus assigned tickets within capacity and (Redis) exactly what its
/// ledger counts; then the rest is served, oldest first among equal scores.
async fn concurrent_stress(p: StressProfile, nodes: Vec<Node>, probe: Option<HeldProbe>) {
    use tokio::sync::{Notify, mpsc};
    const QUEUES: [QueueId; 4] = STRESS_QUEUES;

    // Every fifth ticket is a service call, in every queue.
    let kind_of = |t: TicketId| {
        if t % 5 == 0 {
            TicketKind::Outbound
        } else {
            TicketKind::Inbound
        }
    };
    // Inbound capacity 1 to 3; two agents in three (in every queue) also
    // take one service call at once.
    let capacity_of = |a: AgentId, kind: TicketKind| match kind {
        TicketKind::Inbound => 1 + (a % 3) as u32,
        TicketKind::Outbound => u32::from(a % 3 != 2),
    };
    let ready = move |a: AgentId, queues: &[QueueId], idle: i64, assigned: &[TicketId]| {
        let mut ready = agent(a, queues, capacity_of(a, TicketKind::Inbound), idle);
        ready.capacity_outbound = capacity_of(a, TicketKind::Outbound);
        ready.assigned = assigned.iter().map(|t| (*t, kind_of(*t))).collect();
        ready
    };
    let queues_of = |a: AgentId| {
        let first = QUEUES[(a % 4) as usize];
        if a % 2 == 0 {
            vec![first, QUEUES[((a + 1) % 4) as usize]]
        } else {
            vec![first]
        }
    };
    let queue_of = |t: TicketId| QUEUES[(t % 4) as usize];
    let ranks = p.ranks;
    let rank_of = move |t: TicketId| (t * 7919) % ranks;
    let node_of = |i: i64| nodes[i as usize % nodes.len()].clone();
    let routing_of = |i: i64| node_of(i).routing;

    struct Shared {
        clock: AtomicI64,
        stop: AtomicBool,
        /// Wakes a queue's dispatchers (a ticket or an agent became free).
        wake: HashMap<QueueId, Notify>,
        /// Each agent's console: the offers dispatch made to it.
        inbox: HashMap<AgentId, mpsc::UnboundedSender<Offer>>,
        /// The newest offer version handed out per ticket.
        newest: Mutex<HashMap<TicketId, u64>>,
        /// Every (queue, version) handed out: fencing tokens are unique.
        versions: Mutex<BTreeSet<(QueueId, u64)>>,
        record: Mutex<StressRecord>,
        accepted: AtomicUsize,
        /// Offers made, declined, expired and rescinded during the race.
        offered: AtomicUsize,
        declined: AtomicUsize,
        expired: AtomicUsize,
        rescinded: AtomicUsize,
    }
    impl Shared {
        /// An offer made by any dispatch reaches its agent's console.
        fn hand_out(&self, o: Offer) {
            self.offered.fetch_add(1, Ordering::Relaxed);
            assert!(
                lock(&self.versions).insert((o.queue_id, o.version)),
                "version {} of queue {} handed out twice",
                o.version,
                o.queue_id
            );
            {
                let mut newest = lock(&self.newest);
                let v = newest.entry(o.ticket_id).or_default();
                *v = (*v).max(o.version);
            }
            // After the stop the consoles are gone; the offer stays pending.
            let _ = self.inbox[&o.agent_id].send(o);
        }
    }
    let offer_ms = p.offer_ms;
    let plan = move |queue_id: QueueId, now_ms: i64| DispatchPlan {
        queue_id,
        now_ms,
        offer_timeout_ms: offer_ms,
        ring_after_ms: &[],
    };
    let mut inboxes = HashMap::new();
    let mut receivers = HashMap::new();
    for a in 1..=p.agents {
        let (tx, rx) = mpsc::unbounded_channel();
        inboxes.insert(a, tx);
        receivers.insert(a, rx);
    }
    let shared = Arc::new(Shared {
        clock: AtomicI64::new(NOW),
        stop: AtomicBool::new(false),
        wake: QUEUES.iter().map(|q| (*q, Notify::new())).collect(),
        inbox: inboxes,
        newest: Mutex::new(HashMap::new()),
        versions: Mutex::new(BTreeSet::new()),
        record: Mutex::new(StressRecord::default()),
        accepted: AtomicUsize::new(0),
        offered: AtomicUsize::new(0),
        declined: AtomicUsize::new(0),
        expired: AtomicUsize::new(0),
        rescinded: AtomicUsize::new(0),
    });
    let wake_all = |s: &Shared, queues: &[QueueId]| {
        for q in queues {
            s.wake[q].notify_waiters();
        }
    };
    for a in 1..=p.agents {
        routing_of(a)
            .agent_ready(ready(a, &queues_of(a), NOW - a, &[]))
            .await
            .unwrap();
    }
    let started = Instant::now();

    // Intake: every node files its share of the tickets, in bursts.
    let mut intake = Vec::new();
    for n in 0..nodes.len() as i64 {
        let (node, s) = (node_of(n), shared.clone());
        let (r, step) = (node.routing, nodes.len() as i64);
        intake.push(node.runtime.spawn(async move {
            let mut filed = 0;
            for t in (1 + n..=p.tickets).step_by(step as usize) {
                let waiting = WaitingTicket {
                    kind: kind_of(t),
                    ..ticket(t, queue_of(t), rank_of(t))
                };
                if t % 3 == 0 {
                    // Filed and dispatched in one call, as the server files.
                    let now = s.clock.load(Ordering::Relaxed);
                    for o in r
                        .enqueue_then_dispatch(waiting, plan(queue_of(t), now))
                        .await
                        .unwrap()
                    {
                        assert_eq!(o.queue_id, queue_of(t));
                        s.hand_out(o);
                    }
                } else {
                    r.enqueue(waiting).await.unwrap();
                }
                s.wake[&queue_of(t)].notify_waiters();
                filed += 1;
                if filed % 25 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }));
    }
    let mut tasks = Vec::new();
    // Dispatchers: on every node (at least two), one per queue.
    for i in 0..nodes.len().max(2) as i64 {
        for q in QUEUES {
            let (node, s) = (node_of(i), shared.clone());
            let (r, stale) = (node.routing, if node.stalls { p.stale_now_ms } else { 0 });
            tasks.push(node.runtime.spawn(async move {
                while !s.stop.load(Ordering::Relaxed) {
                    if p.busy {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::select! {
                            _ = s.wake[&q].notified() => {}
                            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                        }
                    }
                    let now = s.clock.load(Ordering::Relaxed) - stale;
                    for o in r.dispatch(q, now, p.offer_ms, &[]).await.unwrap() {
                        assert_eq!((o.queue_id, o.kind), (q, kind_of(o.ticket_id)));
                        s.hand_out(o);
                    }
                }
            }));
        }
    }
    // The clock, and expiry on every node.
    {
        let s = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            while !s.stop.load(Ordering::Relaxed) {
                tick.tick().await;
                s.clock.fetch_add(p.clock_step_ms, Ordering::Relaxed);
            }
        }));
    }
    for n in 0..nodes.len().max(2) as i64 {
        let (node, s) = (node_of(n), shared.clone());
        let r = node.routing;
        tasks.push(node.runtime.spawn(async move {
            let mut rng = Rng(500 + n as u64);
            while !s.stop.load(Ordering::Relaxed) {
                if p.busy {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let now = s.clock.load(Ordering::Relaxed);
                for q in QUEUES {
                    // Now and then this node's clock runs a whole offer
                    // timeout ahead: every offer of the queue expires at
                    // once, also those a dispatch is still reserving.
                    let at = if rng.below(p.skew_one_in) == 0 {
                        now + p.offer_ms
                    } else {
                        now
                    };
                    let expired = r.expire(q, at).await.unwrap();
                    if !expired.is_empty() {
                        s.expired.fetch_add(expired.len(), Ordering::Relaxed);
                        s.wake[&q].notify_waiters();
                    }
                }
            }
        }));
    }
    // The live store's capacity ledger, swept while everything runs.
    let sweeps = probe.map(|probe| {
        let s = shared.clone();
        tokio::spawn(async move {
            let mut sweeps = 0u32;
            while !s.stop.load(Ordering::Relaxed) {
                for a in 1..=p.agents {
                    let held = probe.held(a).await;
                    for kind in [TicketKind::Inbound, TicketKind::Outbound] {
                        let n = held.values().filter(|k| **k == kind).count() as u32;
                        assert!(
                            n <= capacity_of(a, kind),
                            "live store: agent {a} holds {held:?}, over {kind:?} capacity"
                        );
                    }
                }
                sweeps += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (sweeps, probe)
        })
    });
    // Agents: each on one node.
    let mut agent_tasks = BTreeMap::new();
    for a in 1..=p.agents {
        let (node, s) = (node_of(a), shared.clone());
        let r = node.routing;
        let mut rx = receivers.remove(&a).unwrap();
        let queues = queues_of(a);
        agent_tasks.insert(
            a,
            node.runtime.spawn(async move {
                let mut rng = Rng(1000 + a as u64);
                let mut mine: Vec<TicketId> = Vec::new();
                while !s.stop.load(Ordering::Relaxed) {
                    let pause = Duration::from_millis(5 + rng.below(10));
                    let mut offers = Vec::new();
                    tokio::select! {
                        o = rx.recv() => offers.extend(o),
                        _ = tokio::time::sleep(pause) => {}
                    }
                    while let Ok(o) = rx.try_recv() {
                        offers.push(o);
                    }
                    for o in offers {
                        assert_eq!(o.agent_id, a);
                        let now = s.clock.load(Ordering::Relaxed);
                        match rng.below(10) {
                            0..7 => {
                                let newest = lock(&s.newest)[&o.ticket_id];
                                let settled = r
                                    .accept(a, o.queue_id, o.ticket_id, o.version, now)
                                    .await
                                    .unwrap();
                                if settled.is_err() {
                                    continue;
                                }
                                assert_eq!(settled, Ok(o));
                                assert!(
                                    o.version >= newest,
                                    "ticket {} accepted at version {} after version {newest} \
                                     was handed out: offered to two agents at once",
                                    o.ticket_id,
                                    o.version
                                );
                                lock(&s.record).assign(&o, capacity_of(a, o.kind));
                                s.accepted.fetch_add(1, Ordering::Relaxed);
                                mine.push(o.ticket_id);
                                let same = mine.iter().filter(|t| kind_of(**t) == o.kind).count();
                                assert!(
                                    same as u32 <= capacity_of(a, o.kind),
                                    "agent {a} holds {mine:?}: over {:?} capacity",
                                    o.kind
                                );
                            }
                            7..9 => {
                                let settled = r
                                    .decline(a, o.queue_id, o.ticket_id, o.version)
                                    .await
                                    .unwrap();
                                if settled.is_ok() {
                                    s.declined.fetch_add(1, Ordering::Relaxed);
                                    s.wake[&o.queue_id].notify_waiters();
                                }
                            }
                            // Missed: it times out.
                            _ => {}
                        }
                    }
                    if !mine.is_empty() && rng.below(3) == 0 {
                        let t = mine.swap_remove(rng.below(mine.len() as u64) as usize);
                        lock(&s.record).unassign(a, t, kind_of(t));
                        let now = s.clock.load(Ordering::Relaxed);
                        if rng.below(2) == 0 {
                            r.release(a, t, now).await.unwrap();
                        } else {
                            // Released, and the agent's queues (some of
                            // them) dispatched in the same calls.
                            let plans: Vec<_> = queues
                                .iter()
                                .take(1 + rng.below(queues.len() as u64) as usize)
                                .map(|q| plan(*q, now))
                                .collect();
                            for o in r.release_then_dispatch(a, t, now, &plans).await.unwrap() {
                                s.hand_out(o);
                            }
                        }
                        wake_all(&s, &queues);
                    }
                    if rng.below(300) == 0 {
                        // Dropped and back: pending offers go back to their lines.
                        let rescinded = r.agent_away(a).await.unwrap();
                        assert!(rescinded.iter().all(|o| o.agent_id == a));
                        s.rescinded.fetch_add(rescinded.len(), Ordering::Relaxed);
                        tokio::task::yield_now().await;
                        let now = s.clock.load(Ordering::Relaxed);
                        r.agent_ready(ready(a, &queues, now, &mine)).await.unwrap();
                        wake_all(&s, &queues);
                    }
                }
                mine
            }),
        );
    }

    let (enough, limit) = (p.enough as usize, p.limit);
    let failed = |tasks: &[tokio::task::JoinHandle<()>]| tasks.iter().any(|t| t.is_finished());
    while started.elapsed() < limit
        && shared.accepted.load(Ordering::Relaxed) < enough
        && !failed(&tasks)
        && !agent_tasks.values().any(|t| t.is_finished())
        && !sweeps.as_ref().is_some_and(|t| t.is_finished())
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let race = started.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    for task in intake.into_iter().chain(tasks) {
        task.await.expect("a stress task panicked");
    }
    let mut held: BTreeMap<AgentId, Vec<TicketId>> = BTreeMap::new();
    for (a, task) in agent_tasks {
        held.insert(a, task.await.expect("an agent task panicked"));
    }
    let probe = match sweeps {
        Some(task) => {
            let (sweeps, probe) = task.await.expect("the live store sweep panicked");
            assert!(sweeps > 0, "the live store was never swept");
            Some(probe)
        }
        None => None,
    };

    // Quiescent now. The record agrees with the agents' own view.
    let accepted_in_race = {
        let record = lock(&shared.record);
        for (a, mine) in &held {
            for t in mine {
                assert_eq!(record.holder.get(t), Some(a));
            }
        }
        assert_eq!(
            record.holder.len(),
            held.values().map(Vec::len).sum::<usize>()
        );
        record.ever.clone()
    };
    // Every ticket in exactly one place.
    let r = routing_of(0);
    let mut seen: BTreeMap<TicketId, &str> = BTreeMap::new();
    let mut offered: BTreeMap<AgentId, BTreeSet<TicketId>> = BTreeMap::new();
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
            offered.entry(o.agent_id).or_default().insert(o.ticket_id);
        }
    }
    for t in &accepted_in_race {
        assert!(
            seen.insert(*t, "accepted").is_none(),
            "accepted ticket {t} still live"
        );
    }
    let lost: Vec<TicketId> = (1..=p.tickets).filter(|t| !seen.contains_key(t)).collect();
    assert!(lost.is_empty(), "tickets lost: {lost:?}");
    assert_eq!(seen.len() as i64, p.tickets);
    // No agent above capacity: live offers plus assigned tickets, and in
    // Redis exactly those in the agent's capacity ledger.
    for a in 1..=p.agents {
        let offers = offered.remove(&a).unwrap_or_default();
        let mine: BTreeSet<TicketId> = held[&a].iter().copied().collect();
        for kind in [TicketKind::Inbound, TicketKind::Outbound] {
            let n = offers
                .iter()
                .chain(&mine)
                .filter(|t| kind_of(**t) == kind)
                .count();
            assert!(
                n as u32 <= capacity_of(a, kind),
                "agent {a} over {kind:?} capacity: offered {offers:?}, assigned {mine:?}"
            );
        }
        if let Some(probe) = &probe {
            let ledger = probe.held(a).await;
            let live: BTreeMap<TicketId, TicketKind> = offers
                .iter()
                .chain(&mine)
                .map(|t| (*t, kind_of(*t)))
                .collect();
            assert_eq!(
                ledger, live,
                "agent {a}: the capacity ledger differs from its offers and tickets"
            );
        }
    }
    let count = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    eprintln!(
        "stress ({}) on {} node(s): {} agents, {} tickets: in {:.1?}, {} offers, \
         {} accepted, {} declined, {} expired, {} rescinded",
        p.name,
        nodes.len(),
        p.agents,
        p.tickets,
        race,
        count(&shared.offered),
        accepted_in_race.len(),
        count(&shared.declined),
        count(&shared.expired),
        count(&shared.rescinded),
    );
    assert!(
        accepted_in_race.len() as i64 >= p.tickets / 2,
        "the race served too little to stress anything"
    );

    // The rest is served, each ticket once, oldest first among equal
    // scores: per queue and kind, in (rank, ticket id) order. With them, a
    // late batch of tickets of three equal scores per queue, filed from
    // every node at once, newest first.
    let now = shared.clock.load(Ordering::Relaxed) + 10 * p.offer_ms;
    for q in QUEUES {
        r.expire(q, now).await.unwrap();
    }
    for (a, tickets) in &held {
        for t in tickets {
            routing_of(*a).release(*a, *t, now).await.unwrap();
        }
    }
    const LATE: i64 = 120;
    let late_rank = |t: TicketId| 1_000_000 + t % 3;
    let mut filing = Vec::new();
    for n in 0..nodes.len() as i64 {
        let r = routing_of(n);
        let step = nodes.len();
        let tickets = p.tickets;
        filing.push(tokio::spawn(async move {
            for t in (tickets + 1..=tickets + LATE)
                .rev()
                .skip(n as usize)
                .step_by(step)
            {
                r.enqueue(WaitingTicket {
                    kind: kind_of(t),
                    ..ticket(t, queue_of(t), late_rank(t))
                })
                .await
                .unwrap();
            }
        }));
    }
    for f in filing {
        f.await.unwrap();
    }
    let mut accepted = accepted_in_race;
    let mut last: HashMap<(QueueId, TicketKind), (i64, TicketId)> = HashMap::new();
    let mut ties = 0;
    let mut rounds: i64 = 0;
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
            for o in routing_of(rounds)
                .dispatch(q, now, TIMEOUT, &[])
                .await
                .unwrap()
            {
                let key = (o.rank_ms, o.ticket_id);
                let rank = if o.ticket_id > p.tickets {
                    late_rank(o.ticket_id)
                } else {
                    rank_of(o.ticket_id)
                };
                assert_eq!(o.rank_ms, rank);
                if let Some(before) = last.insert((q, o.kind), key) {
                    assert!(
                        before < key,
                        "queue {q} served {key:?} after {before:?}: not oldest first"
                    );
                    ties += usize::from(before.0 == key.0);
                }
                assert_eq!(
                    routing_of(o.agent_id)
                        .accept(o.agent_id, o.queue_id, o.ticket_id, o.version, now)
                        .await
                        .unwrap(),
                    Ok(o)
                );
                assert!(accepted.insert(o.ticket_id), "ticket {} twice", o.ticket_id);
                routing_of(o.agent_id)
                    .release(o.agent_id, o.ticket_id, now)
                    .await
                    .unwrap();
                progress += 1;
            }
        }
        assert!(
            progress > 0,
            "{waiting} tickets wait but nothing is offered"
        );
    }
    assert!(ties > 0, "no equal scores were served after the race");
    for q in QUEUES {
        assert!(r.offers(q).await.unwrap().is_empty());
    }
    assert_eq!(accepted.len() as i64, p.tickets + LATE);
    eprintln!(
        "stress: the rest served in {:.1?} in all",
        started.elapsed()
    );
}

/// A stress lock: a task that failed an assertion while holding it leaves
/// it to the others (its own failure is the one reported).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

/// A console command's reply is kept for a repeat of its request id, each
/// reply on its own lifetime: however long an agent works, Redis holds only
/// the replies of the last few minutes.
#[tokio::test]
async fn redis_command_replies_are_kept_for_minutes_each() {
    let Some(url) = single_redis().await else {
        return;
    };
    let prefix = unique_prefix();
    let (bus, _rx) = RedisBus::start(&url, prefix.clone()).await.unwrap();
    assert!(matches!(
        bus.claim_request(7, "r-1").await.unwrap(),
        Claim::New
    ));
    assert!(matches!(
        bus.claim_request(7, "r-1").await.unwrap(),
        Claim::Running
    ));
    bus.finish_request(7, "r-1", r#"{"status":"ok"}"#)
        .await
        .unwrap();
    assert!(matches!(
        bus.claim_request(7, "r-1").await.unwrap(),
        Claim::Done(reply) if reply == r#"{"status":"ok"}"#
    ));
    assert!(matches!(
        bus.claim_request(7, "r-2").await.unwrap(),
        Claim::New
    ));
    assert!(matches!(
        bus.claim_request(8, "r-1").await.unwrap(),
        Claim::New
    ));

    let mut conn = redis_conn::connect(&url).await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 3, "one key per reply: {keys:?}");
    for key in &keys {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((1..=600).contains(&ttl), "{key} lives {ttl} s");
    }
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
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

/// Counts the commands run by a Redis server that name keys under a prefix,
/// through MONITOR: those the client sent, and those plus the scripts'
/// inner commands.
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

    /// The commands seen since the last call: (sent by the client, run in
    /// all, scripts' inner commands included, as INFO commandstats counts
    /// them). A marker command is sent and the stream read up to it
    /// (MONITOR shows commands in execution order).
    async fn count(&mut self) -> (usize, usize) {
        self.marks += 1;
        let mark = format!("{}:mark:{}", self.prefix, self.marks);
        let _: String = redis::cmd("ECHO")
            .arg(&mark)
            .query_async(&mut self.conn)
            .await
            .unwrap();
        let (mut sent, mut run) = (0, 0);
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
                .await
                .expect("MONITOR went quiet")
                .unwrap()
                .expect("MONITOR closed");
            if line.contains(&mark) {
                return (sent, run);
            }
            if line.contains(&self.prefix) {
                run += 1;
                if !line.contains(" lua]") {
                    sent += 1;
                }
            }
        }
    }
}

/// The full lifecycle of a ticket (enqueue, dispatch, accept, release) for
/// an agent of one queue: the server sends Redis 6 commands, which run 39
/// in all with the scripts' inner commands (what INFO commandstats counts;
/// 49 before the agent scripts read the agent once and the queue scripts
/// wrote only the availability sets that change). Counted on the single
/// Redis, scripts loaded.
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
    // As the server runs a lifecycle: filed and dispatched in one call,
    // released and dispatched in one call per queue of the agent.
    let offers = r
        .enqueue_then_dispatch(ticket(4, q, 4), plan(q, NOW))
        .await
        .unwrap();
    assert_eq!(pairs(&offers), vec![(4, 1)]);
    costs.push(("enqueue_then_dispatch", counter.count().await));
    r.accept(1, q, 4, offers[0].version, NOW)
        .await
        .unwrap()
        .unwrap();
    counter.count().await;
    let offers = r
        .release_then_dispatch(1, 4, NOW, &[plan(q, NOW)])
        .await
        .unwrap();
    assert!(offers.is_empty());
    costs.push(("release_then_dispatch", counter.count().await));
    // Everyone busy and a long line: filing one more looks at the first
    // head and the availability sets, not at every head of the window.
    let o = r
        .enqueue_then_dispatch(ticket(5, q, 5), plan(q, NOW))
        .await
        .unwrap();
    r.accept(1, q, 5, o[0].version, NOW).await.unwrap().unwrap();
    for t in 6..30 {
        r.enqueue(ticket(t, q, t)).await.unwrap();
    }
    counter.count().await;
    let none = r
        .enqueue_then_dispatch(ticket(30, q, 30), plan(q, NOW))
        .await
        .unwrap();
    assert!(none.is_empty());
    costs.push(("enqueue_then_dispatch, all busy", counter.count().await));
    // Busy with a complaint but free for an outbound call (as agents of a
    // floor are): the step looks through the window for a call, reading
    // the heads past the first in one command, not one each.
    let mut caller = agent_with(2, &[seat(q, 0, 0)], (1, 1), NOW);
    caller.assigned = inbound(&[100]);
    r.agent_ready(caller).await.unwrap();
    counter.count().await;
    let none = r
        .enqueue_then_dispatch(ticket(31, q, 31), plan(q, NOW))
        .await
        .unwrap();
    assert!(none.is_empty());
    costs.push((
        "enqueue_then_dispatch, all busy but free for a call",
        counter.count().await,
    ));
    eprintln!("Redis commands per operation (sent, run): {costs:?}");
    assert_eq!(
        costs,
        [
            ("enqueue", (1, 4)),
            ("dispatch", (2, 19)),
            ("decline", (3, 18)),
            ("accept", (1, 5)),
            ("release", (2, 11)),
            ("set_preference", (1, 7)),
            ("enqueue_then_dispatch", (2, 22)),
            ("release_then_dispatch", (2, 12)),
            ("enqueue_then_dispatch, all busy", (1, 9)),
            (
                "enqueue_then_dispatch, all busy but free for a call",
                (1, 10)
            ),
        ]
    );
    let lifecycle = costs
        .iter()
        .filter(|(op, _)| ["enqueue_then_dispatch", "accept", "release_then_dispatch"].contains(op))
        .fold((0, 0), |(s, r), (_, (sent, run))| (s + sent, r + run));
    assert_eq!(lifecycle, (5, 39), "a ticket's lifecycle (sent, run)");
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
