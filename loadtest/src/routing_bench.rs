//! The bare routing path, for comparison with other Redis-backed queues on
//! the same Redis: jobs are enqueued, dispatch pairs them with ready agents
//! (the offer is "delivered" when its agent's task receives it), the agent
//! accepts (claim) and releases (complete). No database, no HTTP, no sockets:
//! only the routing layer the server uses, at saturation.

use crate::cli::LoadArgs;
use crate::nodes::unique;
use crate::server_stats as ss;
use crate::stats::{Percentiles, histogram, record};
use crate::summary::{Backend, RoutingFigures, Summary};
use callcenter::routing::memory::MemoryRouting;
use callcenter::routing::redis::RedisRouting;
use callcenter::routing::{
    AgentQueue, DispatchPlan, Offer, ReadyAgent, Routing, TicketKind, WaitingTicket,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const QUEUE: i64 = 1;

fn now_ms() -> i64 {
    crate::shared::now_ms()
}

/// The agents' inboxes, and what delivery measures.
struct Hub {
    inboxes: HashMap<i64, mpsc::UnboundedSender<(i64, u64)>>,
    enqueued_at: Mutex<HashMap<i64, Instant>>,
    latency: Mutex<hdrhistogram::Histogram<u64>>,
    /// Jobs enqueued and not yet offered.
    waiting: AtomicI64,
}

impl Hub {
    /// Offers reach their agents' tasks: that is delivery.
    fn hand_out(&self, offers: Vec<Offer>) {
        if offers.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut h = crate::shared::lock(&self.latency);
        let mut at = crate::shared::lock(&self.enqueued_at);
        for o in offers {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            if let Some(t) = at.remove(&o.ticket_id) {
                record(&mut h, now - t);
            }
            if let Some(tx) = self.inboxes.get(&o.agent_id) {
                let _ = tx.send((o.ticket_id, o.version));
            }
        }
    }
}

pub async fn run(args: &LoadArgs) -> anyhow::Result<Summary> {
    let prefix = unique("ltr").replace('_', "");
    let routing: Arc<dyn Routing> = match &args.redis_url {
        Some(url) => Arc::new(RedisRouting::new(
            callcenter::redis_conn::connect(url).await?,
            prefix.clone(),
        )),
        None => Arc::new(MemoryRouting::new()),
    };
    let agents = args.routing_agents.max(1);
    let backlog_target = (agents * 4) as i64;
    let completed = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let errors = Arc::new(AtomicU64::new(0));

    // Dispatch runs where the server runs it: when a job is enqueued (one
    // call: `enqueue_then_dispatch`) and when an agent finishes one (one
    // call: `release_then_dispatch`). Whoever made an offer delivers it.
    let mut receivers = Vec::new();
    let mut inboxes = HashMap::new();
    for a in 0..agents as i64 {
        let agent_id = 1_000 + a;
        let (tx, rx) = mpsc::unbounded_channel::<(i64, u64)>();
        inboxes.insert(agent_id, tx);
        receivers.push((agent_id, rx));
    }
    let hub = Arc::new(Hub {
        inboxes,
        enqueued_at: Mutex::default(),
        latency: Mutex::new(histogram()),
        waiting: AtomicI64::new(0),
    });
    let plan = || DispatchPlan {
        queue_id: QUEUE,
        now_ms: now_ms(),
        offer_timeout_ms: 60_000,
        ring_after_ms: &[],
    };

    // Agents: ready, then claim and complete whatever they are offered.
    let mut tasks = Vec::new();
    for (agent_id, mut rx) in receivers {
        routing
            .agent_ready(ReadyAgent {
                agent_id,
                queues: vec![AgentQueue::plain(QUEUE)],
                capacity_inbound: 1,
                capacity_outbound: 0,
                assigned: vec![],
                idle_since_ms: now_ms(),
            })
            .await?;
        let routing = routing.clone();
        let completed = completed.clone();
        let errors = errors.clone();
        let hub = hub.clone();
        tasks.push(tokio::spawn(async move {
            while let Some((ticket, version)) = rx.recv().await {
                let done = match routing
                    .accept(agent_id, QUEUE, ticket, version, now_ms())
                    .await
                {
                    Ok(Ok(_)) => routing
                        .release_then_dispatch(agent_id, ticket, now_ms(), &[plan()])
                        .await
                        .ok(),
                    _ => None,
                };
                match done {
                    Some(offers) => {
                        completed.fetch_add(1, Ordering::Relaxed);
                        hub.hand_out(offers);
                    }
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // Producers keep a backlog so that agents are never starved.
    let next_id = Arc::new(AtomicI64::new(1));
    let mut producers = Vec::new();
    for _ in 0..args.routing_producers.max(1) {
        let routing = routing.clone();
        let running = running.clone();
        let hub = hub.clone();
        let next_id = next_id.clone();
        producers.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                if hub.waiting.load(Ordering::Relaxed) >= backlog_target {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    continue;
                }
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                crate::shared::lock(&hub.enqueued_at).insert(id, Instant::now());
                hub.waiting.fetch_add(1, Ordering::Relaxed);
                let job = WaitingTicket {
                    ticket_id: id,
                    queue_id: QUEUE,
                    kind: TicketKind::Inbound,
                    rank_ms: now_ms(),
                    entered_ms: now_ms(),
                };
                if let Ok(offers) = routing.enqueue_then_dispatch(job, plan()).await {
                    hub.hand_out(offers);
                }
            }
        }));
    }

    let before = match &args.redis_url {
        Some(url) => ss::redis_commandstats(url).await.ok(),
        None => None,
    };
    // The harness is the routing's client here: its CPU and Redis' show
    // which of them the bench saturates.
    let cpu_from = crate::limits::CpuSources {
        node_pids: &[],
        postgres_local: false,
        redis_url: args.redis_url.as_deref(),
    };
    let cpu_before = crate::limits::CpuSample::read(&cpu_from).await;
    let start_count = completed.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration.max(1))).await;
    let done = completed.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = crate::limits::CpuSample::read(&cpu_from)
        .await
        .since(&cpu_before);
    let after = match &args.redis_url {
        Some(url) => ss::redis_commandstats(url).await.ok(),
        None => None,
    };
    running.store(false, Ordering::Relaxed);
    for p in producers {
        let _ = p.await;
    }
    for t in tasks {
        t.abort();
    }
    if let Some(url) = &args.redis_url {
        let _ = ss::delete_redis_prefix(url, &prefix).await;
    }
    let redis = before
        .zip(after)
        .map(|(b, a)| ss::commandstats_delta(&b, &a));
    let delivery = Percentiles::of(&crate::shared::lock(&hub.latency));
    let mut errors_by_kind = std::collections::BTreeMap::new();
    let e = errors.load(Ordering::Relaxed);
    if e > 0 {
        errors_by_kind.insert("claim_failed".to_string(), e);
    }
    let total_redis: Option<u64> = redis.as_ref().map(|m| m.values().sum());
    Ok(Summary {
        harness: env!("CARGO_PKG_VERSION").into(),
        mode: "routing".into(),
        started_at_ms: now_ms(),
        machine: crate::summary::machine(),
        backend: Backend {
            database: "none".into(),
            live: if args.redis_url.is_some() {
                "redis"
            } else {
                "memory"
            }
            .into(),
            nodes: 0,
            local: true,
        },
        duration_s: elapsed,
        throughput_per_s: done as f64 / elapsed,
        redis_cmds_per_ticket: total_redis.map(|n| n as f64 / done.max(1) as f64),
        redis_commands: redis.unwrap_or_default(),
        errors: errors_by_kind,
        routing: Some(RoutingFigures {
            backend: if args.redis_url.is_some() {
                "redis"
            } else {
                "memory"
            }
            .into(),
            agents,
            producers: args.routing_producers.max(1),
            completed: done,
            completed_per_s: done as f64 / elapsed,
            delivery_latency_ms: delivery,
        }),
        cpu_seconds: Some(cpu),
        passed: e == 0,
        ..Summary::default()
    })
}
