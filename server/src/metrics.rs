//! Prometheus text-format metrics, served at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the latency histograms' buckets: fine where a
/// step's time usually is (a few milliseconds), coarse in the tail.
pub const LATENCY_BUCKETS_S: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// A latency histogram with the fixed [`LATENCY_BUCKETS_S`], rendered as a
/// Prometheus histogram. Counters only, no lock: observing is two atomic
/// adds and a bucket's.
#[derive(Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); past the last bound only
    /// `count` counts them.
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len()],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: std::time::Duration) {
        let s = took.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS_S.iter().position(|le| s <= *le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `_bucket`, `_sum` and `_count` samples of one labelled series.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (le, n) in LATENCY_BUCKETS_S.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Where a new complaint's time goes on the node before its offer is out
/// (issue 9: the load report says what limits the offer latency, measured).
#[derive(Default)]
pub struct FilingPhases {
    /// The filing written to the database: waiting for the node's group
    /// commit and the transaction that holds it, up to its commit.
    pub record: Histogram,
    /// Into the queue's live line and paired with a free agent (one routing
    /// call).
    pub routing: Histogram,
    /// The offer handed to the agent's event stream (filings that were
    /// offered at once only).
    pub delivery: Histogram,
}

#[derive(Default)]
pub struct Metrics {
    pub http_requests_2xx: Counter,
    pub http_requests_4xx: Counter,
    pub http_requests_5xx: Counter,
    pub sockets_open: Gauge,
    pub sockets_total: Counter,
    pub tickets_created: Counter,
    pub tickets_resolved: Counter,
    pub offers: Counter,
    pub offers_expired: Counter,
    /// Offers not shown because their dispatch finished past their deadline.
    pub offers_late: Counter,
    pub accepts: Counter,
    /// Answers to offers whose queue had to be read from the ticket's
    /// record (the offer was not shown through this node).
    pub offer_queue_reads: Counter,
    /// Runs of the periodic work by this node (one node of a deployment
    /// at a time runs it).
    pub ticks: Counter,
    /// Times this node found its word that it is alive lapsed (it was stuck
    /// or cut off past `--node-silence-seconds`) and recorded its consoles'
    /// connections again.
    pub node_lapses: Counter,
    /// Console connections the database refused to record (tried again
    /// each tick until recorded).
    pub connections_unrecorded: Counter,
    pub filing: FilingPhases,
}

impl Metrics {
    pub fn record_status(&self, status: u16) {
        match status {
            200..=399 => self.http_requests_2xx.inc(),
            400..=499 => self.http_requests_4xx.inc(),
            _ => self.http_requests_5xx.inc(),
        }
    }

    /// Render with the given queue depths (queue name, waiting, offered).
    pub fn render(&self, queues: &[(String, usize, usize)]) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        counter(
            "callcenter_http_requests_total",
            "HTTP requests answered, by status class.",
            &[
                ("{class=\"2xx\"}", self.http_requests_2xx.get()),
                ("{class=\"4xx\"}", self.http_requests_4xx.get()),
                ("{class=\"5xx\"}", self.http_requests_5xx.get()),
            ],
        );
        counter(
            "callcenter_sockets_total",
            "WebSocket connections accepted.",
            &[("", self.sockets_total.get())],
        );
        counter(
            "callcenter_tickets_created_total",
            "Tickets created.",
            &[("", self.tickets_created.get())],
        );
        counter(
            "callcenter_tickets_resolved_total",
            "Tickets resolved.",
            &[("", self.tickets_resolved.get())],
        );
        counter(
            "callcenter_offers_total",
            "Offers made to agents.",
            &[("", self.offers.get())],
        );
        counter(
            "callcenter_offers_expired_total",
            "Offers that timed out.",
            &[("", self.offers_expired.get())],
        );
        counter(
            "callcenter_offers_late_total",
            "Offers not shown: their dispatch ended past their deadline (overload).",
            &[("", self.offers_late.get())],
        );
        counter(
            "callcenter_accepts_total",
            "Offers accepted.",
            &[("", self.accepts.get())],
        );
        counter(
            "callcenter_offer_queue_reads_total",
            "Answers to offers whose queue was read from the ticket's record (the offer was not \
             shown through this node).",
            &[("", self.offer_queue_reads.get())],
        );
        counter(
            "callcenter_ticks_total",
            "Runs of the periodic work (offer timeouts, overflow, wrap-up ends, returns of absent \
             agents' tickets) by this node; one node of a deployment at a time runs it.",
            &[("", self.ticks.get())],
        );
        counter(
            "callcenter_node_lapses_total",
            "Times this node was silent past its term (stuck or cut off: the others may have \
             taken its agents for absent) and recorded its consoles' connections again.",
            &[("", self.node_lapses.get())],
        );
        counter(
            "callcenter_connections_unrecorded_total",
            "Console connections to this node the database refused to record (a database \
             error); each is recorded again on the next tick.",
            &[("", self.connections_unrecorded.get())],
        );
        let _ = writeln!(
            out,
            "# HELP callcenter_filing_phase_seconds Time of a new complaint's steps before its offer \
             is out: record (written to the database, group commit included), routing (into the \
             line and paired), delivery (offer handed to the agent's stream).\n\
             # TYPE callcenter_filing_phase_seconds histogram"
        );
        for (phase, h) in [
            ("record", &self.filing.record),
            ("routing", &self.filing.routing),
            ("delivery", &self.filing.delivery),
        ] {
            h.render(
                &mut out,
                "callcenter_filing_phase_seconds",
                &format!("phase=\"{phase}\""),
            );
        }
        let _ = writeln!(
            out,
            "# HELP callcenter_sockets_open Open WebSocket connections on this node.\n# TYPE callcenter_sockets_open gauge\ncallcenter_sockets_open {}",
            self.sockets_open.get()
        );
        let _ = writeln!(
            out,
            "# HELP callcenter_queue_waiting Tickets waiting in a queue.\n# TYPE callcenter_queue_waiting gauge"
        );
        for (name, waiting, _) in queues {
            let _ = writeln!(
                out,
                "callcenter_queue_waiting{{queue=\"{}\"}} {waiting}",
                escape(name)
            );
        }
        let _ = writeln!(
            out,
            "# HELP callcenter_queue_offered Tickets offered and awaiting an answer.\n# TYPE callcenter_queue_offered gauge"
        );
        for (name, _, offered) in queues {
            let _ = writeln!(
                out,
                "callcenter_queue_offered{{queue=\"{}\"}} {offered}",
                escape(name)
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(400));
        h.observe(Duration::from_micros(1_500));
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_secs(30));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "phase=\"record\"");
        let sample = |line: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(line))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("{line} missing in\n{out}"))
        };
        assert_eq!(
            sample("x_seconds_bucket{phase=\"record\",le=\"0.0005\"}"),
            "1"
        );
        assert_eq!(
            sample("x_seconds_bucket{phase=\"record\",le=\"0.002\"}"),
            "2"
        );
        assert_eq!(
            sample("x_seconds_bucket{phase=\"record\",le=\"0.025\"}"),
            "3"
        );
        assert_eq!(sample("x_seconds_bucket{phase=\"record\",le=\"10\"}"), "3");
        assert_eq!(
            sample("x_seconds_bucket{phase=\"record\",le=\"+Inf\"}"),
            "4"
        );
        assert_eq!(sample("x_seconds_count{phase=\"record\"}"), "4");
        assert_eq!(sample("x_seconds_sum{phase=\"record\"}"), "30.0219");
    }
}
