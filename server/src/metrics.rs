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
