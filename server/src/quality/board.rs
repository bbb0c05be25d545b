//! Today's quality figures for supervisor boards. Boards are brought up to
//! date every 200 ms; these figures are read from the database at most once
//! per [`REFRESH_MS`] per node (whatever the number of boards), from one
//! day of the rollup and the deltas not folded yet. The reading is renewed
//! when [`REFRESH_MS`] have passed by the server's clock (tests move it) or
//! by the monotonic timer, whichever comes first, and when the day changes.

use super::scorecards::{day_text, sum_today, today, today_by_queue};
use crate::store::Db;
use callcenter_proto::quality::{BoardQuality, QualityToday, QueueQualityToday};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Longest time, by the server's clock, a board shows a reading.
pub const REFRESH_MS: i64 = 5_000;

/// One reading of today's figures.
pub struct Reading {
    read_at_ms: i64,
    read_at: tokio::time::Instant,
    day: i64,
    by_queue: HashMap<i64, QualityToday>,
    overall: QualityToday,
}

impl Reading {
    /// The board's quality section for the watched queues.
    pub fn board(&self, queues: &[i64]) -> BoardQuality {
        BoardQuality {
            day: day_text(self.day),
            queues: queues
                .iter()
                .map(|&queue_id| QueueQualityToday {
                    queue_id,
                    today: self.by_queue.get(&queue_id).cloned().unwrap_or_default(),
                })
                .collect(),
            overall: self.overall.clone(),
        }
    }
}

/// The node's latest reading, shared by every board on it.
#[derive(Default)]
pub struct TodayCache {
    reading: tokio::sync::Mutex<Option<Arc<Reading>>>,
}

impl TodayCache {
    /// The current reading, read again when older than [`REFRESH_MS`], from
    /// another day, or from the future (the clock was set back).
    pub async fn get(&self, db: &Db, now_ms: i64) -> anyhow::Result<Arc<Reading>> {
        let mut reading = self.reading.lock().await;
        let day = today(now_ms);
        if let Some(r) = reading.as_ref()
            && r.day == day
            && r.read_at_ms <= now_ms
            && now_ms - r.read_at_ms < REFRESH_MS
            && r.read_at.elapsed() < Duration::from_millis(REFRESH_MS as u64)
        {
            return Ok(r.clone());
        }
        let by_queue = today_by_queue(db, day).await?;
        let overall = sum_today(by_queue.values());
        let fresh = Arc::new(Reading {
            read_at_ms: now_ms,
            read_at: tokio::time::Instant::now(),
            day,
            by_queue,
            overall,
        });
        *reading = Some(fresh.clone());
        Ok(fresh)
    }
}
