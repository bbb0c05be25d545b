//! A run: find or start the nodes, set up the call center, bring agents and
//! supervisors online, apply the load (fixed rate or ramp), drain, measure
//! the servers' cost, and summarize.

use crate::agent::Agent;
use crate::cli::{LoadArgs, Mode};
use crate::intake::{Intake, Rate};
use crate::limits;
use crate::nodes::{LocalNodes, unique};
use crate::server_stats as ss;
use crate::setup::{self, Api, Plan};
use crate::shared::{Behaviour, Shared, lock, now_ms};
use crate::stats::{Percentiles, histogram};
use crate::summary::{Backend, Ramp, RampStep, Summary, TimelinePoint};
use crate::supervisor::Supervisor;
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the load goes, and what can be read from the servers.
pub struct Target {
    pub urls: Vec<String>,
    pub admin_user: String,
    pub admin_password: String,
    pub pids: Vec<u32>,
    pub redis_url: Option<String>,
    pub pg_url: Option<String>,
    pub backend: Backend,
    pub local: Option<LocalNodes>,
    pub rss_at_start: Option<u64>,
}

impl Target {
    pub async fn open(args: &LoadArgs) -> anyhow::Result<Target> {
        if args.urls.is_empty() {
            let nodes = LocalNodes::start(args).await?;
            let pg_url = (nodes.database_kind() == "postgres").then(|| nodes.database_url.clone());
            Ok(Target {
                urls: nodes.urls.clone(),
                admin_user: "admin".into(),
                admin_password: nodes.admin_password.clone(),
                pids: nodes.pids.clone(),
                redis_url: nodes.redis.as_ref().map(|r| r.0.clone()),
                pg_url,
                backend: Backend {
                    database: nodes.database_kind().into(),
                    live: if nodes.redis.is_some() {
                        "redis"
                    } else {
                        "memory"
                    }
                    .into(),
                    nodes: nodes.urls.len(),
                    local: true,
                },
                local: Some(nodes),
                rss_at_start: None,
            }
            .with_start_rss())
        } else {
            Ok(Target {
                urls: args.urls.clone(),
                admin_user: args.admin_user.clone(),
                admin_password: args
                    .admin_password
                    .clone()
                    .context("remote nodes need --admin-password (or LOADTEST_ADMIN_PASSWORD)")?,
                pids: args.server_pids.clone(),
                redis_url: args.redis_url.clone(),
                pg_url: args.stats_database_url.clone(),
                backend: Backend {
                    database: "remote".into(),
                    live: "remote".into(),
                    nodes: args.urls.len(),
                    local: false,
                },
                local: None,
                rss_at_start: None,
            }
            .with_start_rss())
        }
    }

    fn with_start_rss(mut self) -> Self {
        let rss = self.rss();
        self.rss_at_start = (!rss.is_empty()).then(|| rss.iter().sum());
        self
    }

    pub fn rss(&self) -> Vec<u64> {
        self.pids.iter().filter_map(|p| ss::rss_bytes(*p)).collect()
    }

    pub async fn close(self) {
        if let Some(nodes) = self.local {
            nodes.stop().await;
        }
    }
}

/// Counters read from the servers at one moment.
#[derive(Default, Clone)]
struct Cost {
    redis: Option<BTreeMap<String, u64>>,
    xacts: Option<i64>,
    /// The nodes' filing phases (their `/metrics`).
    phases: Option<limits::PhaseBuckets>,
    cpu: limits::CpuSample,
}

async fn cost(target: &Target) -> Cost {
    let redis = match &target.redis_url {
        Some(url) => ss::redis_commandstats(url).await.ok(),
        None => None,
    };
    let xacts = match &target.pg_url {
        Some(url) => ss::pg_transactions(url).await.ok(),
        None => None,
    };
    // A node that does not answer within seconds leaves the phases out
    // rather than holding the run.
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let phases = limits::scrape_phases(&http, &target.urls).await;
    let cpu = limits::CpuSample::read(&limits::CpuSources {
        node_pids: &target.pids,
        postgres_local: target
            .pg_url
            .as_deref()
            .is_some_and(limits::database_is_local),
        redis_url: target.redis_url.as_deref(),
    })
    .await;
    Cost {
        redis,
        xacts,
        phases,
        cpu,
    }
}

fn redis_total(before: &Cost, after: &Cost) -> Option<(u64, BTreeMap<String, u64>)> {
    let delta = ss::commandstats_delta(before.redis.as_ref()?, after.redis.as_ref()?);
    Some((delta.values().sum(), delta))
}

pub fn behaviour(args: &LoadArgs) -> Behaviour {
    Behaviour {
        think_ms: args.think_ms as f64,
        handle_ms: args.handle_ms as f64,
        decline_fraction: args.decline_fraction,
        miss_fraction: args.miss_fraction,
        note_fraction: args.note_fraction,
        unresolved_fraction: args.unresolved_fraction,
        compensation_fraction: args.compensation_fraction,
        reconnect_delay: Duration::from_millis(args.reconnect_delay_ms),
        offer_timeout_ms: i64::from(args.offer_timeout_seconds) * 1000,
    }
}

/// Fixed-rate and ramp runs.
pub async fn load(args: &LoadArgs, target: &Target) -> anyhow::Result<Summary> {
    let seed = args.seed.unwrap_or_else(|| now_ms() as u64);
    let run = unique("lt").replace('_', "");
    let apis: Vec<Api> = target.urls.iter().map(|u| Api::new(u)).collect();
    let admin = apis[0]
        .login(&target.admin_user, &target.admin_password)
        .await
        .context("administrator login")?
        .access_token;
    let busy = args.rate * (args.think_ms + args.handle_ms) as f64 / 1000.0;
    let slots = (args.agents as f64) * f64::from(args.capacity);
    if args.mode == Mode::Fixed && slots < busy * 1.2 {
        eprintln!(
            "warning: {slots} agent slots for about {busy:.0} tickets in work at once: \
             tickets will wait for agents (raise --agents or lower --rate)"
        );
    }
    if !args.quiet {
        eprintln!(
            "setting up {} agents, {} supervisors, {} customers on {} node(s)…",
            args.agents,
            args.supervisors,
            args.customers,
            apis.len()
        );
    }
    let world = setup::build(
        &apis[0],
        &admin,
        &Plan {
            run: &run,
            queues: args.queues,
            categories: args.categories,
            customers: args.customers,
            agents: args.agents,
            supervisors: args.supervisors,
            capacity: args.capacity,
            offer_timeout_seconds: args.offer_timeout_seconds,
        },
    )
    .await?;

    let mut behaviour = behaviour(args);
    if behaviour.compensation_fraction > 0.0 {
        let supervisors: Vec<i64> = world.supervisors.iter().map(|s| s.user_id).collect();
        let team = format!("{run}-team");
        if let Err(e) = crate::compensation::prepare(&apis[0], &admin, &team, &supervisors).await {
            eprintln!("compensation left out of the mix (the server refused the setup): {e:#}");
            behaviour.compensation_fraction = 0.0;
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared::new(run.clone(), behaviour, stop_rx));
    let planned = match args.mode {
        Mode::Ramp => Duration::from_secs(args.ramp_step_seconds * 50),
        _ => Duration::from_secs(args.duration),
    };
    let mut tasks = Vec::new();
    let mut ready = Vec::new();
    let reconnecting = (args.agents as f64 * args.reconnect_fraction).round() as usize;
    let load_starts = Instant::now() + Duration::from_secs(2);
    for (i, login) in world.agents.iter().enumerate() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        ready.push(rx);
        // Spread the planned drops over the middle of the run.
        let drop_at = (i < reconnecting).then(|| {
            let span = match args.mode {
                Mode::Ramp => Duration::from_secs(args.ramp_step_seconds * 3),
                _ => planned,
            };
            load_starts + span.mul_f64(0.1 + 0.8 * (i as f64 + 0.5) / reconnecting.max(1) as f64)
        });
        let agent = Agent::new(
            shared.clone(),
            apis[i % apis.len()].clone(),
            login.clone(),
            args.capacity,
            seed.wrapping_add(i as u64 * 7919),
            drop_at,
            tx,
        );
        tasks.push(tokio::spawn(agent.run()));
    }
    for (i, login) in world.supervisors.iter().enumerate() {
        let s = Supervisor {
            shared: shared.clone(),
            api: apis[i % apis.len()].clone(),
            login: login.clone(),
            queues: world.queues.clone(),
            team: format!("{run}-team"),
        };
        tasks.push(tokio::spawn(s.run()));
    }
    for rx in ready {
        tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .context("agents did not all become available within 60 s")?
            .context("an agent ended before becoming available")?;
    }
    let connections = (args.agents + args.supervisors) as u64;

    // The servers' idle cost (background ticks), then the load's. The
    // setup's counts are published late: let them settle first.
    let settle = Duration::from_secs(args.stats_settle_seconds);
    tokio::time::sleep(settle).await;
    let idle_before = cost(target).await;
    let idle_for = Duration::from_secs(if settle.is_zero() { 2 } else { 5 });
    tokio::time::sleep(idle_for).await;
    let before = cost(target).await;
    let idle_xacts = before
        .xacts
        .zip(idle_before.xacts)
        .map(|(b, a)| (b - a) as f64 / idle_for.as_secs_f64());
    let idle_redis =
        redis_total(&idle_before, &before).map(|(n, _)| n as f64 / idle_for.as_secs_f64());

    let started_at_ms = now_ms();
    let start = Instant::now();
    let cost_from = Instant::now();
    lock(&shared.stats).start = start;
    let rate = Arc::new(Rate::new(args.rate));
    let intake = Intake {
        shared: shared.clone(),
        apis: apis.clone(),
        token: world.intake.access_token.clone(),
        categories: world.categories.clone(),
        customers: world.customers.clone(),
        max_inflight: args.max_inflight,
        seed: seed ^ 0x9e37_79b9,
    };
    let progress = tokio::spawn(progress(shared.clone(), rate.clone(), args.quiet));
    let (intake_report, ramp) = match args.mode {
        Mode::Ramp => {
            let until = start + planned;
            let intake_task = tokio::spawn(intake.run(rate.clone(), until));
            let ramp = ramp(args, &shared, &rate).await;
            rate.set(0.0);
            *lock(&shared.window_end) = Some(Instant::now());
            // A zero rate idles the intake; requests already sent finish on
            // their own tasks.
            intake_task.abort();
            (crate::intake::IntakeReport::default(), Some(ramp))
        }
        _ => {
            let until = start + planned;
            *lock(&shared.window_end) = Some(until);
            (intake.run(rate.clone(), until).await, None)
        }
    };
    let window = Instant::now().duration_since(start).min(match args.mode {
        Mode::Ramp => Duration::from_secs(u64::MAX / 4),
        _ => planned,
    });

    // Drain: every ticket the API accepted should end.
    shared
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let drain_until = Instant::now() + Duration::from_secs(args.drain_seconds);
    while Instant::now() < drain_until && lock(&shared.tickets).open() > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // PostgreSQL publishes transaction counters about once a second (an
    // idle backend's after 10 s); the idle rate covers the wait.
    tokio::time::sleep(settle.max(Duration::from_millis(1200))).await;
    let after = cost(target).await;
    let cost_seconds = cost_from.elapsed().as_secs_f64();
    let rss = target.rss();
    let _ = stop_tx.send(true);
    progress.abort();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }

    let mut tickets = lock(&shared.tickets);
    let unsettled = tickets.settle_overlaps();
    let mut stats = lock(&shared.stats);
    for what in unsettled {
        stats.example(what);
    }
    let created = tickets.created.len() as u64;
    let redis = redis_total(&before, &after);
    let per_ticket = |n: f64| (created > 0).then(|| n / created as f64);
    let lost = tickets.open() as u64;
    let mut summary = Summary {
        harness: env!("CARGO_PKG_VERSION").into(),
        mode: format!("{:?}", args.mode).to_lowercase(),
        started_at_ms,
        machine: crate::summary::machine(),
        backend: target.backend.clone(),
        agents: args.agents,
        supervisors: args.supervisors,
        capacity: args.capacity,
        rate_per_s: ramp
            .as_ref()
            .and_then(|r| r.max_rate_within_bound)
            .unwrap_or(args.rate),
        duration_s: window.as_secs_f64(),
        tickets_created: created,
        tickets_resolved: tickets.ended.len() as u64,
        lost,
        never_offered: tickets.never_offered() as u64,
        double_offers: tickets.double_offers,
        capacity_violations: tickets.capacity_violations,
        resume_gaps: tickets.resume_gaps,
        offers_after_end: tickets.offers_after_end,
        offers: stats.offers,
        reconnects: stats.reconnects,
        resume_snapshots: stats.resume_snapshots,
        throughput_per_s: stats.resolved_in_window as f64 / window.as_secs_f64().max(0.001),
        offer_latency_ms: Percentiles::of(&stats.offer_latency),
        intake_latency_ms: Percentiles::of(&stats.intake_latency),
        accept_rtt_ms: Percentiles::of(&stats.accept_rtt),
        board_lag_ms: (!stats.board_lag.is_empty()).then(|| Percentiles::of(&stats.board_lag)),
        boards: stats.boards,
        intake_max_behind_ms: intake_report.max_behind.as_secs_f64() * 1000.0,
        errors: stats.errors.clone(),
        actions: {
            let mut actions = stats.actions.clone();
            actions.insert("reconnect".into(), stats.reconnects);
            actions
        },
        redis_cmds_per_ticket: redis.as_ref().and_then(|(n, _)| per_ticket(*n as f64)),
        redis_cmds_idle_per_s: idle_redis,
        redis_cmds_per_ticket_net: redis
            .as_ref()
            .zip(idle_redis)
            .and_then(|((n, _), idle)| per_ticket(*n as f64 - idle * cost_seconds)),
        redis_commands: redis.map(|(_, m)| m).unwrap_or_default(),
        db_xacts_per_ticket: before
            .xacts
            .zip(after.xacts)
            .and_then(|(b, a)| per_ticket((a - b) as f64)),
        db_xacts_idle_per_s: idle_xacts,
        db_xacts_per_ticket_net: before
            .xacts
            .zip(after.xacts)
            .zip(idle_xacts)
            .and_then(|((b, a), idle)| per_ticket((a - b) as f64 - idle * cost_seconds)),
        filing_phases_ms: before
            .phases
            .as_ref()
            .zip(after.phases.as_ref())
            .map(|(b, a)| a.since(b).percentiles())
            .unwrap_or_default(),
        cpu_seconds: Some(after.cpu.since(&before.cpu)),
        server_rss_bytes: (!rss.is_empty()).then(|| rss.iter().sum()),
        server_rss_bytes_per_node: rss,
        server_rss_bytes_at_start: target.rss_at_start,
        connections,
        rss_per_connection_bytes: None,
        ramp,
        routing: None,
        timeline: stats
            .timeline
            .iter()
            .enumerate()
            .map(|(t, s)| TimelinePoint {
                t: t as u64,
                created: s.created,
                resolved: s.resolved,
                offer_p50_ms: Percentiles::of(&s.offers).p50,
                offer_p99_ms: Percentiles::of(&s.offers).p99,
            })
            .collect(),
        violation_examples: stats.violation_examples.clone(),
        passed: false,
    };
    if lost > 0 {
        let open: Vec<String> = tickets
            .created
            .values()
            .filter(|t| !tickets.ended.contains(t))
            .take(5)
            .map(|t| t.to_string())
            .collect();
        summary.violation_examples.push(format!(
            "{lost} ticket(s) never ended, e.g. {}",
            open.join(", ")
        ));
    }
    summary.passed = summary.violations() == 0;
    Ok(summary)
}

/// Raise the rate step by step while p99 offer latency stays within the
/// bound and the agents keep up.
async fn ramp(args: &LoadArgs, shared: &Arc<Shared>, rate: &Rate) -> Ramp {
    let mut result = Ramp {
        p99_bound_ms: args.p99_bound_ms,
        ..Ramp::default()
    };
    let step = Duration::from_secs(args.ramp_step_seconds.max(2));
    let mut r = args.rate;
    while r <= args.ramp_max && !*shared.stop.borrow() {
        rate.set(r);
        let began = Instant::now();
        let first_second = lock(&shared.stats).timeline.len();
        tokio::time::sleep(step).await;
        let (p99, resolved) = {
            let stats = lock(&shared.stats);
            let mut h = histogram();
            let mut resolved = 0;
            // Skip the step's first second (the previous rate's tail).
            for s in stats.timeline.iter().skip(first_second + 1) {
                let _ = h.add(&s.offers);
                resolved += s.resolved;
            }
            (Percentiles::of(&h).p99, resolved)
        };
        let measured = (Instant::now() - began).as_secs_f64() - 1.0;
        let throughput = resolved as f64 / measured.max(0.001);
        let open = lock(&shared.tickets).open() as u64;
        let in_work = r * (args.think_ms + args.handle_ms) as f64 / 1000.0;
        let keeping_up = (open as f64) < in_work * 3.0 + 50.0;
        let ok = p99 <= args.p99_bound_ms && keeping_up;
        result.steps.push(RampStep {
            rate_per_s: r,
            throughput_per_s: throughput,
            offer_p99_ms: p99,
            open_tickets: open,
            within_bound: ok,
        });
        if !ok {
            break;
        }
        result.max_rate_within_bound = Some(r);
        r += args.ramp_step;
    }
    result
}

async fn progress(shared: Arc<Shared>, rate: Arc<Rate>, quiet: bool) {
    if quiet {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let (open, created, ended, violations) = {
            let t = lock(&shared.tickets);
            (
                t.open(),
                t.created.len(),
                t.ended.len(),
                t.double_offers + t.capacity_violations + t.resume_gaps,
            )
        };
        let stats = lock(&shared.stats);
        let elapsed = stats.start.elapsed().as_secs();
        let last = stats
            .timeline
            .len()
            .checked_sub(2)
            .and_then(|i| stats.timeline.get(i));
        let (thr, p99) = last
            .map(|s| (s.resolved, Percentiles::of(&s.offers).p99))
            .unwrap_or((0, 0.0));
        let errors: u64 = stats.errors.values().sum();
        eprintln!(
            "t={elapsed:>4}s rate {:>6.0}/s created {created:>7} resolved {ended:>7} open {open:>5} \
             last-second: {thr:>5}/s offer p99 {p99:>8.3} ms | errors {errors} violations {violations}{}",
            rate.get(),
            if shared.draining() { " (draining)" } else { "" }
        );
    }
}
