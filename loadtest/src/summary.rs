//! The summary of a run: the `--json` document (stable field names, listed
//! in the README's Performance section) and the human summary.

use crate::stats::Percentiles;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Backend {
    /// `sqlite`, `postgres` or `remote`.
    pub database: String,
    /// `memory`, `redis` or `remote`.
    pub live: String,
    pub nodes: usize,
    /// Whether the harness started the nodes itself.
    pub local: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the load started.
    pub t: u64,
    pub created: u64,
    pub resolved: u64,
    pub offer_p50_ms: f64,
    pub offer_p99_ms: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RampStep {
    pub rate_per_s: f64,
    pub throughput_per_s: f64,
    pub offer_p99_ms: f64,
    pub open_tickets: u64,
    pub within_bound: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ramp {
    pub p99_bound_ms: f64,
    pub steps: Vec<RampStep>,
    /// The highest rate whose p99 offer latency stayed within the bound while
    /// keeping up (None: not even the first step).
    pub max_rate_within_bound: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RoutingFigures {
    /// `redis` or `memory`.
    pub backend: String,
    pub agents: usize,
    pub producers: usize,
    /// Jobs that went enqueue → offer delivered → accepted → released.
    pub completed: u64,
    pub completed_per_s: f64,
    /// Enqueue → offer handed to its agent.
    pub delivery_latency_ms: Percentiles,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    pub harness: String,
    pub mode: String,
    /// Unix milliseconds when the load started.
    pub started_at_ms: i64,
    pub machine: String,
    pub backend: Backend,
    pub agents: usize,
    pub supervisors: usize,
    pub capacity: u32,
    /// Target complaints per second (the last one reached, in ramp mode).
    pub rate_per_s: f64,
    /// Seconds of load.
    pub duration_s: f64,

    pub tickets_created: u64,
    pub tickets_resolved: u64,
    /// Tickets the API accepted that never ended (after the drain).
    pub lost: u64,
    /// Of the lost ones: never offered to anybody.
    pub never_offered: u64,
    pub double_offers: u64,
    pub capacity_violations: u64,
    pub resume_gaps: u64,
    /// Offers of tickets that had already ended.
    pub offers_after_end: u64,
    pub offers: u64,
    pub reconnects: u64,
    /// Reconnects answered with a snapshot instead of the missed events.
    pub resume_snapshots: u64,

    /// Complete lifecycles (resolved) per second within the load window.
    pub throughput_per_s: f64,
    /// Complaint request sent → offer frame read by the agent (first offer of
    /// each ticket; an upper bound of "API accepted → offer arrived").
    pub offer_latency_ms: Percentiles,
    /// Complaint request sent → 201 read.
    pub intake_latency_ms: Percentiles,
    /// Accept command sent → its reply read.
    pub accept_rtt_ms: Percentiles,
    /// Accept succeeded → first board counting it (None: no boards received).
    pub board_lag_ms: Option<Percentiles>,
    pub boards: u64,
    /// How far the intake fell behind its Poisson schedule at worst, in ms.
    pub intake_max_behind_ms: f64,
    pub errors: BTreeMap<String, u64>,
    /// What the simulated people did, by kind: accept, decline, miss, note,
    /// resolve, compensation_<status>, supervisor_decision, reconnect.
    pub actions: BTreeMap<String, u64>,

    /// Redis commands per created ticket (INFO commandstats, every command of
    /// the server, scripts' inner calls included; other clients of the same
    /// Redis count too). None when no Redis was read.
    pub redis_cmds_per_ticket: Option<f64>,
    /// Redis commands per second while idle (the nodes' background work).
    pub redis_cmds_idle_per_s: Option<f64>,
    /// Redis commands per ticket once the idle rate over the same time is
    /// taken away: what the tickets themselves cost.
    pub redis_cmds_per_ticket_net: Option<f64>,
    pub redis_commands: BTreeMap<String, u64>,
    /// Database transactions (committed + rolled back, reads included) per
    /// created ticket, from pg_stat_database. None on SQLite.
    pub db_xacts_per_ticket: Option<f64>,
    pub db_xacts_idle_per_s: Option<f64>,
    /// Database transactions per ticket without the idle rate.
    pub db_xacts_per_ticket_net: Option<f64>,
    /// Where new complaints' time went on the nodes before their offers were
    /// out, by step (`record`, `routing`, `delivery`), and the parts of
    /// `record` as the nodes' group commit times them for every write
    /// (`writer_wait` for a writer, `writer_batch` the writer's transaction,
    /// commit included), from the nodes'
    /// `/metrics` histograms over the load and drain: bucket resolution, so
    /// `max` is the highest bucket bound reached. Empty when the nodes'
    /// metrics could not be read.
    pub filing_phases_ms: BTreeMap<String, Percentiles>,
    /// CPU seconds each part of the system used over the load and drain,
    /// and how busy the machine was (what limits the run, measured).
    pub cpu_seconds: Option<crate::limits::CpuUse>,
    /// Resident memory of the local nodes at the end (sum), when local.
    pub server_rss_bytes: Option<u64>,
    pub server_rss_bytes_per_node: Vec<u64>,
    /// Resident memory of the local nodes right after they started (sum).
    pub server_rss_bytes_at_start: Option<u64>,
    /// WebSocket connections the harness held open at the peak.
    pub connections: u64,
    /// Connections mode: server memory added per idle console.
    pub rss_per_connection_bytes: Option<f64>,

    pub ramp: Option<Ramp>,
    pub routing: Option<RoutingFigures>,
    pub timeline: Vec<TimelinePoint>,
    /// The first violations seen, described.
    pub violation_examples: Vec<String>,
    /// Every invariant held.
    pub passed: bool,
}

impl Summary {
    pub fn violations(&self) -> u64 {
        self.lost + self.double_offers + self.capacity_violations + self.resume_gaps
    }

    /// What limits the run, in two lines: the nodes' filing steps, and the
    /// CPU each part used. None when neither was measured.
    pub fn limits(&self) -> Option<String> {
        let mut out = String::new();
        if !self.filing_phases_ms.is_empty() {
            out.push_str("filing steps on the nodes ms:");
            for phase in crate::limits::PHASES {
                if let Some(p) = self.filing_phases_ms.get(phase) {
                    out.push_str(&format!(" {phase} p50 {:.2} p99 {:.2};", p.p50, p.p99));
                }
            }
            out.pop();
            let writer: Vec<String> = crate::limits::WRITER_PHASES
                .iter()
                .filter_map(|phase| {
                    let p = self.filing_phases_ms.get(*phase)?;
                    let name = phase.trim_start_matches("writer_");
                    Some(format!(" {name} p50 {:.2} p99 {:.2}", p.p50, p.p99))
                })
                .collect();
            if !writer.is_empty() {
                out.push_str(&format!(" (group commit:{})", writer.join(";")));
            }
            out.push('\n');
        }
        if let Some(cpu) = &self.cpu_seconds {
            let s = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "n/a".into());
            out.push_str(&format!(
                "CPU seconds over {:.0} s on {} cores: harness {}, nodes {}, PostgreSQL {}, Redis {}; machine busy {}\n",
                cpu.window_s,
                cpu.cores,
                s(cpu.harness),
                s(cpu.nodes),
                s(cpu.postgres),
                s(cpu.redis),
                cpu.machine_busy
                    .map(|b| format!("{:.0} %", b * 100.0))
                    .unwrap_or_else(|| "n/a".into())
            ));
        }
        (!out.is_empty()).then_some(out)
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        let b = &self.backend;
        out.push_str(&format!(
            "\n== loadtest {} on {} + {}, {} node(s){} ==\n",
            self.mode,
            b.database,
            b.live,
            b.nodes,
            if b.local { ", local" } else { "" }
        ));
        if self.mode == "routing" {
            if let Some(r) = &self.routing {
                out.push_str(&format!(
                    "bare routing on {}: {} jobs in {:.1} s = {:.0}/s ({} agents, {} producers)\n\
                     delivery latency ms: p50 {} p99 {} max {}\n",
                    r.backend,
                    r.completed,
                    self.duration_s,
                    r.completed_per_s,
                    r.agents,
                    r.producers,
                    r.delivery_latency_ms.p50,
                    r.delivery_latency_ms.p99,
                    r.delivery_latency_ms.max
                ));
            }
        } else if self.mode == "connections" {
            out.push_str(&format!("idle consoles open: {}\n", self.connections));
        } else {
            out.push_str(&format!(
                "agents {} (capacity {}), supervisors {}, rate {}/s for {:.0} s\n\
                 tickets created {}, resolved {}, throughput {:.1} lifecycles/s\n\
                 offers {} (reconnects {}, resumed with a snapshot {})\n",
                self.agents,
                self.capacity,
                self.supervisors,
                self.rate_per_s,
                self.duration_s,
                self.tickets_created,
                self.tickets_resolved,
                self.throughput_per_s,
                self.offers,
                self.reconnects,
                self.resume_snapshots
            ));
            let p = |name: &str, p: &Percentiles| {
                format!(
                    "{name:<22} p50 {:>8.3}  p90 {:>8.3}  p99 {:>8.3}  p99.9 {:>8.3}  max {:>8.3}  (n={})\n",
                    p.p50, p.p90, p.p99, p.p999, p.max, p.count
                )
            };
            out.push_str(&p("offer latency ms", &self.offer_latency_ms));
            out.push_str(&p("intake latency ms", &self.intake_latency_ms));
            out.push_str(&p("accept round trip ms", &self.accept_rtt_ms));
            match &self.board_lag_ms {
                Some(lag) => out.push_str(&p("board lag ms", lag)),
                None => out.push_str("board lag ms           (no board messages received)\n"),
            }
            if let Some(ramp) = &self.ramp {
                for s in &ramp.steps {
                    out.push_str(&format!(
                        "ramp {:>7.0}/s: throughput {:>7.1}/s, p99 {:>8.3} ms, open {:>5} {}\n",
                        s.rate_per_s,
                        s.throughput_per_s,
                        s.offer_p99_ms,
                        s.open_tickets,
                        if s.within_bound { "ok" } else { "OVER" }
                    ));
                }
                out.push_str(&format!(
                    "highest rate with p99 ≤ {} ms: {}\n",
                    ramp.p99_bound_ms,
                    ramp.max_rate_within_bound
                        .map(|r| format!("{r:.0}/s"))
                        .unwrap_or_else(|| "none".into())
                ));
            }
        }
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "n/a".into());
        if self.mode != "connections" {
            out.push_str(&format!(
                "cost: redis commands/ticket {} (net of idle {}; idle {}/s), \
                 db transactions/ticket {} (net of idle {}; idle {}/s)\n",
                opt(self.redis_cmds_per_ticket),
                opt(self.redis_cmds_per_ticket_net),
                opt(self.redis_cmds_idle_per_s),
                opt(self.db_xacts_per_ticket),
                opt(self.db_xacts_per_ticket_net),
                opt(self.db_xacts_idle_per_s)
            ));
        }
        if let Some(limits) = self.limits() {
            out.push_str(&limits);
        }
        if let Some(rss) = self.server_rss_bytes {
            out.push_str(&format!(
                "server RSS {:.1} MiB ({} at start) over {} node(s), {} connections{}\n",
                rss as f64 / 1048576.0,
                self.server_rss_bytes_at_start
                    .map(|b| format!("{:.1} MiB", b as f64 / 1048576.0))
                    .unwrap_or_else(|| "n/a".into()),
                self.server_rss_bytes_per_node.len(),
                self.connections,
                self.rss_per_connection_bytes
                    .map(|b| format!(", {:.1} KiB per connection", b / 1024.0))
                    .unwrap_or_default()
            ));
        }
        if !self.actions.is_empty() {
            out.push_str("actions:");
            for (kind, n) in &self.actions {
                out.push_str(&format!(" {kind}={n}"));
            }
            out.push('\n');
        }
        if !self.errors.is_empty() {
            out.push_str("errors:");
            for (kind, n) in &self.errors {
                out.push_str(&format!(" {kind}={n}"));
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "checks: lost {} (never offered {}), double_offers {}, capacity_violations {}, resume_gaps {} => {}\n",
            self.lost,
            self.never_offered,
            self.double_offers,
            self.capacity_violations,
            self.resume_gaps,
            if self.passed { "PASSED" } else { "FAILED" }
        ));
        for v in &self.violation_examples {
            out.push_str(&format!("  violation: {v}\n"));
        }
        out
    }
}

/// This machine, for the record: CPU model and count, memory.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1048576.0))
        .unwrap_or_default();
    format!("{cores} cores, {cpu}, {mem}")
}
