//! Complaints arriving as a Poisson stream, posted over HTTP with an
//! Idempotency-Key (retried with the same key on a network error or a 5xx),
//! spread over the nodes.

use crate::setup::Api;
use crate::shared::{Shared, lock};
use crate::stats::record;
use callcenter_proto::http::{ComplaintCreate, Ticket};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A rate that a controller may change while the intake runs.
#[derive(Default)]
pub struct Rate(AtomicU64);

impl Rate {
    pub fn new(per_s: f64) -> Self {
        Rate(AtomicU64::new(per_s.to_bits()))
    }
    pub fn set(&self, per_s: f64) {
        self.0.store(per_s.to_bits(), Ordering::Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

pub struct Intake {
    pub shared: Arc<Shared>,
    pub apis: Vec<Api>,
    pub token: String,
    pub categories: Vec<(i64, u32)>,
    pub customers: Vec<i64>,
    pub max_inflight: usize,
    pub seed: u64,
}

/// How the intake kept up with its schedule.
#[derive(Default, Debug, Clone, Copy)]
pub struct IntakeReport {
    pub requested: u64,
    pub max_behind: Duration,
}

impl Intake {
    /// Post complaints at `rate` until `until` (or until `stop` is set).
    pub async fn run(self, rate: Arc<Rate>, until: Instant) -> IntakeReport {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let this = Arc::new(self);
        let permits = Arc::new(Semaphore::new(this.max_inflight));
        let total_weight: u32 = this.categories.iter().map(|c| c.1).sum::<u32>().max(1);
        let mut report = IntakeReport::default();
        let mut next = Instant::now();
        let mut n = 0u64;
        loop {
            let per_s = rate.get();
            if per_s <= 0.0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                next = Instant::now();
                continue;
            }
            let u: f64 = rng.random();
            next += Duration::from_secs_f64(-(1.0 - u).ln() / per_s);
            if next >= until || *this.shared.stop.borrow() {
                break;
            }
            tokio::time::sleep_until(next.into()).await;
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            report.max_behind = report
                .max_behind
                .max(Instant::now().saturating_duration_since(next));
            n += 1;
            let mut pick = rng.random_range(0..total_weight);
            let mut category = this.categories[0].0;
            for (id, weight) in &this.categories {
                if pick < *weight {
                    category = *id;
                    break;
                }
                pick -= weight;
            }
            let customer = this.customers[rng.random_range(0..this.customers.len())];
            let channel = ["phone", "web", "email"][rng.random_range(0..3)];
            let api = this.apis[n as usize % this.apis.len()].clone();
            let me = this.clone();
            tokio::spawn(async move {
                me.file(&api, n, customer, category, channel).await;
                drop(permit);
            });
        }
        report.requested = n;
        // Wait for the requests in flight.
        let _ = permits.acquire_many(this.max_inflight as u32).await;
        report
    }

    async fn file(&self, api: &Api, n: u64, customer: i64, category: i64, channel: &str) {
        let body = ComplaintCreate {
            customer_id: Some(customer),
            customer_external_id: None,
            category_id: category,
            description: self.shared.description(n),
            channel: channel.into(),
        };
        let key = format!("{}-{n}", self.shared.run);
        let sent = Instant::now();
        lock(&self.shared.sent).insert(n, sent);
        for attempt in 0..4u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            let response = api
                .http
                .post(format!("{}/api/complaints", api.base))
                .bearer_auth(&self.token)
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await;
            let response = match response {
                Ok(r) => r,
                Err(_) => {
                    self.shared.error("intake:network");
                    continue;
                }
            };
            let status = response.status();
            if status.is_server_error() || status.as_u16() == 429 {
                self.shared.error(format!("intake:{}", status.as_u16()));
                continue;
            }
            if !status.is_success() {
                self.shared.error(format!("intake:{}", status.as_u16()));
                lock(&self.shared.sent).remove(&n);
                return;
            }
            match response.json::<Ticket>().await {
                Ok(ticket) => {
                    let now = Instant::now();
                    lock(&self.shared.tickets).created.insert(n, ticket.id);
                    let mut stats = lock(&self.shared.stats);
                    record(&mut stats.intake_latency, now - sent);
                    stats.second(now).created += 1;
                    return;
                }
                Err(_) => {
                    self.shared.error("intake:bad_body");
                    continue;
                }
            }
        }
        self.shared.error("intake:gave_up");
        lock(&self.shared.sent).remove(&n);
    }
}
