//! What limits a run, measured: where a new complaint's time goes on the
//! nodes before its offer is out (their `/metrics` histograms), and how much
//! CPU each part of the system used meanwhile (`/proc` on this machine,
//! `INFO cpu` for Redis).
//!
//! The bars are figures on one 2-core machine with every process on
//! it; when a bar is missed the summary says which step the offer latency
//! went to and which process had the cores.

use crate::stats::Percentiles;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The families the nodes publish (server `metrics.rs` and `/metrics`),
/// each with the prefix its phases get here: a filing's steps, and the
/// group commit's (every write of the node, filings among them).
const FAMILIES: [(&str, &str); 2] = [
    ("callcenter_filing_phase_seconds", ""),
    ("callcenter_db_group_phase_seconds", "writer_"),
];

/// The steps, in the order a filing goes through them.
pub const PHASES: [&str; 3] = ["record", "routing", "delivery"];

/// The group commit's steps, of which `record` is made: the wait for a
/// writer, and the writer's batch (its statements and commit).
pub const WRITER_PHASES: [&str; 2] = ["writer_wait", "writer_batch"];

/// Cumulative bucket counts per phase: (upper bound in seconds, count).
/// The last bound is infinite.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PhaseBuckets(BTreeMap<String, Vec<(f64, u64)>>);

impl PhaseBuckets {
    /// Read the filing and group commit phases out of a node's Prometheus
    /// text.
    pub fn parse(text: &str) -> PhaseBuckets {
        let prefixes =
            FAMILIES.map(|(family, named)| (format!("{family}_bucket{{phase=\""), named));
        let mut phases: BTreeMap<String, Vec<(f64, u64)>> = BTreeMap::new();
        for line in text.lines() {
            let Some((rest, named)) = prefixes
                .iter()
                .find_map(|(prefix, named)| Some((line.strip_prefix(prefix.as_str())?, *named)))
            else {
                continue;
            };
            let Some((phase, rest)) = rest.split_once("\",le=\"") else {
                continue;
            };
            let Some((le, count)) = rest.split_once("\"} ") else {
                continue;
            };
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                match le.parse() {
                    Ok(le) => le,
                    Err(_) => continue,
                }
            };
            let Ok(count) = count.trim().parse() else {
                continue;
            };
            phases
                .entry(format!("{named}{phase}"))
                .or_default()
                .push((le, count));
        }
        for buckets in phases.values_mut() {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        PhaseBuckets(phases)
    }

    /// Several nodes' buckets together (the same bounds on every node).
    pub fn add(&mut self, other: &PhaseBuckets) {
        for (phase, buckets) in &other.0 {
            let mine = self.0.entry(phase.clone()).or_default();
            if mine.is_empty() {
                mine.clone_from(buckets);
                continue;
            }
            for ((_, n), (_, m)) in mine.iter_mut().zip(buckets) {
                *n += m;
            }
        }
    }

    /// What was observed after `before` was read.
    pub fn since(&self, before: &PhaseBuckets) -> PhaseBuckets {
        let mut out = self.clone();
        for (phase, buckets) in out.0.iter_mut() {
            if let Some(earlier) = before.0.get(phase) {
                for ((_, n), (_, m)) in buckets.iter_mut().zip(earlier) {
                    *n = n.saturating_sub(*m);
                }
            }
        }
        out
    }

    pub fn count(&self, phase: &str) -> u64 {
        self.0
            .get(phase)
            .and_then(|b| b.last())
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }

    /// The q-quantile of a phase in milliseconds, interpolated within its
    /// bucket as Prometheus' `histogram_quantile` does; in the last (open)
    /// bucket, the highest finite bound. None when nothing was observed.
    pub fn quantile_ms(&self, phase: &str, q: f64) -> Option<f64> {
        let buckets = self.0.get(phase)?;
        let total = buckets.last()?.1;
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let (mut lower, mut below) = (0.0, 0u64);
        for (le, n) in buckets {
            if (*n as f64) >= rank && *n > below {
                if le.is_infinite() {
                    return Some(lower * 1000.0);
                }
                let within = (rank - below as f64) / (*n - below) as f64;
                return Some((lower + (le - lower) * within) * 1000.0);
            }
            if le.is_finite() {
                lower = *le;
            }
            below = *n;
        }
        Some(lower * 1000.0)
    }

    /// The phases as the summary shows them (bucket resolution: `p999` and
    /// `max` are the p99.9 estimate and the highest bound reached).
    pub fn percentiles(&self) -> BTreeMap<String, Percentiles> {
        PHASES
            .iter()
            .chain(&WRITER_PHASES)
            .filter(|p| self.0.contains_key(**p))
            .map(|p| {
                let q = |q| {
                    self.quantile_ms(p, q)
                        .map(|v| (v * 1000.0).round() / 1000.0)
                        .unwrap_or(0.0)
                };
                (
                    p.to_string(),
                    Percentiles {
                        count: self.count(p),
                        p50: q(0.5),
                        p90: q(0.9),
                        p99: q(0.99),
                        p999: q(0.999),
                        max: q(1.0),
                    },
                )
            })
            .collect()
    }
}

/// The nodes' filing phases summed over `urls` (None if a node did not
/// answer: figures from some nodes only would mislead).
pub async fn scrape_phases(http: &reqwest::Client, urls: &[String]) -> Option<PhaseBuckets> {
    let mut all = PhaseBuckets::default();
    for url in urls {
        let text = http
            .get(format!("{}/metrics", url.trim_end_matches('/')))
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .text()
            .await
            .ok()?;
        all.add(&PhaseBuckets::parse(&text));
    }
    Some(all)
}

/// CPU time, in seconds, used by the parts of the system over a window, and
/// the machine's busy share. A part is None where it cannot be read from
/// here (remote nodes, a database on another host).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CpuUse {
    /// Seconds of wall time the figures cover.
    pub window_s: f64,
    pub cores: usize,
    /// Of the machine's core-seconds, the share not idle (every process).
    pub machine_busy: Option<f64>,
    /// The harness itself (its clients, checks, and bookkeeping).
    pub harness: Option<f64>,
    /// The server nodes the harness started.
    pub nodes: Option<f64>,
    /// Every `postgres` process on this machine (when the database is local).
    pub postgres: Option<f64>,
    /// The Redis server (`INFO cpu`: its own threads, wherever it runs).
    pub redis: Option<f64>,
}

/// Cumulative CPU counters read at one moment.
#[derive(Clone, Debug, Default)]
pub struct CpuSample {
    at: Option<std::time::Instant>,
    /// (busy, total) clock ticks of the whole machine.
    machine: Option<(u64, u64)>,
    harness: Option<f64>,
    nodes: Option<f64>,
    postgres: Option<f64>,
    redis: Option<f64>,
}

/// Linux reports CPU times in `/proc` in USER_HZ ticks, 100 a second on
/// every architecture it runs on here (x86-64, arm64).
const TICKS_PER_S: f64 = 100.0;

/// User plus system seconds of a process (all its threads) from
/// `/proc/<pid>/stat`.
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_stat(&stat).map(|(_, ticks)| ticks as f64 / TICKS_PER_S)
}

/// (command name, utime + stime ticks) of a `/proc/<pid>/stat` line. The
/// name is in parentheses and may itself hold spaces or parentheses.
fn parse_process_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    // After the name: state (field 3), …, utime (14), stime (15).
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Seconds used by every running process with this command name.
fn named_processes_cpu_s(name: &str) -> Option<f64> {
    let mut ticks = 0;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((comm, t)) = parse_process_stat(&stat)
            && comm == name
        {
            ticks += t;
            found = true;
        }
    }
    found.then(|| ticks as f64 / TICKS_PER_S)
}

/// (busy, total) ticks of the whole machine from `/proc/stat`'s `cpu` line:
/// busy is all but idle and iowait.
fn parse_machine_stat(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already
    // within user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Redis' own CPU seconds (`used_cpu_sys` + `used_cpu_user`).
pub fn parse_redis_cpu(info: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}

async fn redis_cpu_s(url: &str) -> Option<f64> {
    parse_redis_cpu(&crate::server_stats::redis_info(url, "cpu").await.ok()?)
}

/// Whether the database URL names this machine (so its processes are ours
/// to read).
pub fn database_is_local(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    match url.host_str() {
        None | Some("") => true,
        Some(host) => matches!(
            host.trim_matches(['[', ']']),
            "localhost" | "127.0.0.1" | "::1"
        ),
    }
}

/// What is read for a CPU sample: the local node processes, whether the
/// database's processes are on this machine, and Redis.
pub struct CpuSources<'a> {
    pub node_pids: &'a [u32],
    pub postgres_local: bool,
    pub redis_url: Option<&'a str>,
}

impl CpuSample {
    pub async fn read(from: &CpuSources<'_>) -> CpuSample {
        let nodes: Option<Vec<f64>> = from.node_pids.iter().map(|p| process_cpu_s(*p)).collect();
        let redis = match from.redis_url {
            Some(url) => redis_cpu_s(url).await,
            None => None,
        };
        CpuSample {
            at: Some(std::time::Instant::now()),
            machine: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| parse_machine_stat(&s)),
            harness: process_cpu_s(std::process::id()),
            nodes: nodes.filter(|n| !n.is_empty()).map(|n| n.iter().sum()),
            postgres: if from.postgres_local {
                named_processes_cpu_s("postgres")
            } else {
                None
            },
            redis,
        }
    }

    /// The use between `before` and this sample.
    pub fn since(&self, before: &CpuSample) -> CpuUse {
        let d = |a: Option<f64>, b: Option<f64>| {
            a.zip(b)
                .map(|(a, b)| ((a - b).max(0.0) * 100.0).round() / 100.0)
        };
        let window_s = self
            .at
            .zip(before.at)
            .map(|(a, b)| a.duration_since(b).as_secs_f64())
            .unwrap_or(0.0);
        CpuUse {
            window_s: (window_s * 100.0).round() / 100.0,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            machine_busy: self.machine.zip(before.machine).and_then(|(a, b)| {
                let total = a.1.checked_sub(b.1)?;
                let busy = a.0.checked_sub(b.0)?;
                (total > 0).then(|| ((busy as f64 / total as f64) * 1000.0).round() / 1000.0)
            }),
            harness: d(self.harness, before.harness),
            nodes: d(self.nodes, before.nodes),
            postgres: d(self.postgres, before.postgres),
            redis: d(self.redis, before.redis),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "\
# TYPE callcenter_filing_phase_seconds histogram
callcenter_filing_phase_seconds_bucket{phase=\"record\",le=\"0.001\"} 10
callcenter_filing_phase_seconds_bucket{phase=\"record\",le=\"0.002\"} 60
callcenter_filing_phase_seconds_bucket{phase=\"record\",le=\"0.01\"} 99
callcenter_filing_phase_seconds_bucket{phase=\"record\",le=\"+Inf\"} 100
callcenter_filing_phase_seconds_sum{phase=\"record\"} 0.25
callcenter_filing_phase_seconds_count{phase=\"record\"} 100
callcenter_filing_phase_seconds_bucket{phase=\"routing\",le=\"0.001\"} 100
callcenter_filing_phase_seconds_bucket{phase=\"routing\",le=\"0.002\"} 100
callcenter_filing_phase_seconds_bucket{phase=\"routing\",le=\"0.01\"} 100
callcenter_filing_phase_seconds_bucket{phase=\"routing\",le=\"+Inf\"} 100
callcenter_tickets_created_total 100
";

    #[test]
    fn phase_quantiles_are_interpolated_within_their_bucket() {
        let b = PhaseBuckets::parse(NODE);
        assert_eq!(b.count("record"), 100);
        // The 50th of 100 lies 40/50 of the way through (1 ms, 2 ms].
        let p50 = b.quantile_ms("record", 0.5).unwrap();
        assert!((p50 - 1.8).abs() < 1e-9, "{p50}");
        // The 99th is the last of (2 ms, 10 ms].
        assert!((b.quantile_ms("record", 0.99).unwrap() - 10.0).abs() < 1e-9);
        // The slowest is past every bound: the highest finite one is said.
        assert!((b.quantile_ms("record", 1.0).unwrap() - 10.0).abs() < 1e-9);
        // Everything in the first bucket: interpolated from zero.
        assert!((b.quantile_ms("routing", 0.5).unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(b.quantile_ms("delivery", 0.5), None);
        let shown = b.percentiles();
        assert_eq!(shown["record"].count, 100);
        assert_eq!(shown["record"].p50, 1.8);
        assert!(!shown.contains_key("delivery"));
    }

    #[test]
    fn the_group_commits_phases_are_read_beside_the_filings() {
        let text = format!(
            "{NODE}\
callcenter_db_group_phase_seconds_bucket{{phase=\"wait\",le=\"0.001\"}} 3
callcenter_db_group_phase_seconds_bucket{{phase=\"wait\",le=\"0.01\"}} 4
callcenter_db_group_phase_seconds_bucket{{phase=\"wait\",le=\"+Inf\"}} 4
callcenter_db_group_phase_seconds_bucket{{phase=\"batch\",le=\"0.001\"}} 0
callcenter_db_group_phase_seconds_bucket{{phase=\"batch\",le=\"0.01\"}} 2
callcenter_db_group_phase_seconds_bucket{{phase=\"batch\",le=\"+Inf\"}} 2
"
        );
        let b = PhaseBuckets::parse(&text);
        assert_eq!(b.count("record"), 100);
        assert_eq!(b.count("writer_wait"), 4);
        assert_eq!(b.count("writer_batch"), 2);
        assert_eq!(b.count("wait"), 0, "named apart from the filing's steps");
        let shown = b.percentiles();
        assert_eq!(shown["writer_wait"].count, 4);
        // Half of the batches' lie half way through (1 ms, 10 ms].
        assert_eq!(shown["writer_batch"].p50, 5.5);
    }

    #[test]
    fn nodes_add_up_and_a_window_is_the_difference() {
        let one = PhaseBuckets::parse(NODE);
        let mut two = one.clone();
        two.add(&one);
        assert_eq!(two.count("record"), 200);
        let window = two.since(&one);
        assert_eq!(window, one);
        assert_eq!(PhaseBuckets::default().since(&one).count("record"), 0);
    }

    #[test]
    fn cpu_is_read_from_proc_and_redis_info() {
        let stat = "4242 (tokio (rt) x) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0";
        assert_eq!(parse_process_stat(stat), Some(("tokio (rt) x", 325)));
        let machine = "cpu  100 5 50 800 45 0 0 0 0 0\ncpu0 50 2 25 400 20 0 0 0 0 0\n";
        assert_eq!(parse_machine_stat(machine), Some((155, 1000)));
        let info = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.0\r\n";
        assert_eq!(parse_redis_cpu(info), Some(3.75));
        // This process is running: it has used some CPU.
        assert!(process_cpu_s(std::process::id()).is_some());
        assert!(database_is_local("postgres://postgres@127.0.0.1:5432/test"));
        assert!(database_is_local("postgres://postgres@localhost/test"));
        assert!(database_is_local("postgres://postgres@[::1]:5432/test"));
        assert!(!database_is_local("postgres://db.example.net/test"));
    }
}
