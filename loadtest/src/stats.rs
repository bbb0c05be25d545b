//! What a run measures: latency histograms (HdrHistogram, microseconds), a
//! per-second timeline, errors by kind, and the client-side invariant counters.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Latencies from 1 µs to 10 minutes, three significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, 600_000_000);
    h.saturating_record(us);
}

/// Percentiles of one latency, in milliseconds (field names are stable).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
        Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// One second of the run.
pub struct Second {
    pub created: u64,
    pub resolved: u64,
    pub offers: Histogram<u64>,
}

impl Second {
    fn new() -> Self {
        Second {
            created: 0,
            resolved: 0,
            offers: histogram(),
        }
    }
}

/// Everything measured, behind one mutex (a few hundred updates per
/// millisecond at most: contention is negligible next to the network).
pub struct Stats {
    pub start: Instant,
    pub offer_latency: Histogram<u64>,
    pub intake_latency: Histogram<u64>,
    pub accept_rtt: Histogram<u64>,
    pub board_lag: Histogram<u64>,
    pub timeline: Vec<Second>,
    pub errors: BTreeMap<String, u64>,
    /// What the simulated people did, by kind (the behaviour mix as run).
    pub actions: BTreeMap<String, u64>,
    pub offers: u64,
    pub reconnects: u64,
    pub resume_snapshots: u64,
    pub resolved_in_window: u64,
    pub boards: u64,
    /// Examples of violations (the first few), for the summary.
    pub violation_examples: Vec<String>,
}

impl Stats {
    pub fn new(start: Instant) -> Self {
        Stats {
            start,
            offer_latency: histogram(),
            intake_latency: histogram(),
            accept_rtt: histogram(),
            board_lag: histogram(),
            timeline: Vec::new(),
            errors: BTreeMap::new(),
            actions: BTreeMap::new(),
            offers: 0,
            reconnects: 0,
            resume_snapshots: 0,
            resolved_in_window: 0,
            boards: 0,
            violation_examples: Vec::new(),
        }
    }

    pub fn second(&mut self, at: Instant) -> &mut Second {
        let i = at.saturating_duration_since(self.start).as_secs() as usize;
        while self.timeline.len() <= i {
            self.timeline.push(Second::new());
        }
        &mut self.timeline[i]
    }

    pub fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    pub fn example(&mut self, what: String) {
        if self.violation_examples.len() < 20 {
            self.violation_examples.push(what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut h = histogram();
        for ms in 1..=100u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 100);
        assert!((p.p50 - 50.0).abs() < 0.1, "{p:?}");
        assert!((p.p99 - 99.0).abs() < 0.1, "{p:?}");
        assert!((p.max - 100.0).abs() < 0.1, "{p:?}");
    }

    #[test]
    fn an_empty_histogram_reports_zeroes() {
        assert_eq!(Percentiles::of(&histogram()), Percentiles::default());
    }
}
