//! What every simulated client of a run shares: the measurements, the
//! invariant ledger, the behaviour mix and the run's phase.

use crate::checks::Tickets;
use crate::stats::Stats;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How agents behave (from the command line).
#[derive(Clone, Debug)]
pub struct Behaviour {
    pub think_ms: f64,
    pub handle_ms: f64,
    pub decline_fraction: f64,
    pub miss_fraction: f64,
    pub note_fraction: f64,
    pub unresolved_fraction: f64,
    /// Share of accepted tickets on which the agent asks for compensation.
    pub compensation_fraction: f64,
    pub reconnect_delay: Duration,
    /// The queues' offer timeout (an offer was made this long before its
    /// deadline).
    pub offer_timeout_ms: i64,
}

pub struct Shared {
    pub run: String,
    pub behaviour: Behaviour,
    pub stats: Mutex<Stats>,
    pub tickets: Mutex<Tickets>,
    /// Harness sequence number of a complaint → when its request was sent.
    pub sent: Mutex<HashMap<u64, Instant>>,
    /// When accepts succeeded, in order (for board lag).
    pub accepts: Mutex<Vec<Instant>>,
    /// The load stopped: agents accept every offer at once and work fast.
    pub draining: AtomicBool,
    /// When the measured window ends (the intake stops).
    pub window_end: Mutex<Option<Instant>>,
    pub stop: watch::Receiver<bool>,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Shared {
    pub fn new(run: String, behaviour: Behaviour, stop: watch::Receiver<bool>) -> Self {
        Shared {
            run,
            behaviour,
            stats: Mutex::new(Stats::new(Instant::now())),
            tickets: Mutex::new(Tickets::default()),
            sent: Mutex::new(HashMap::new()),
            accepts: Mutex::new(Vec::new()),
            draining: AtomicBool::new(false),
            window_end: Mutex::new(None),
            stop,
        }
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn error(&self, kind: impl Into<String>) {
        lock(&self.stats).error(kind);
    }

    pub fn action(&self, kind: impl Into<String>) {
        *lock(&self.stats).actions.entry(kind.into()).or_default() += 1;
    }

    /// The description of complaint `n` of this run; the agents read `n` back
    /// from the offer to time it.
    pub fn description(&self, n: u64) -> String {
        format!(
            "{}#{n} The parcel arrived damaged and support never called back",
            self.run
        )
    }

    pub fn complaint_number(&self, description: &str) -> Option<u64> {
        let rest = description
            .strip_prefix(self.run.as_str())?
            .strip_prefix('#')?;
        rest.split(' ').next()?.parse().ok()
    }

    pub fn in_window(&self, at: Instant) -> bool {
        lock(&self.window_end).is_none_or(|end| at <= end)
    }
}
