//! Group commit: the lifecycle's writes of concurrent requests share one
//! transaction.
//!
//! Every complaint costs three writes on its way (filing, accept, resolve),
//! and each was its own transaction: one commit, one WAL flush and a few
//! round trips each. A node's [`Writer`] takes the writes that queue up while
//! it is busy and runs them one after another in one transaction with one
//! commit, so that the number of transactions per lifecycle falls as load
//! rises (at low load a write runs alone, as before, with no added wait).
//!
//! Durability is not weakened: a caller hears back only after the commit
//! that holds its write. A [`Work`] in a batch that fails (a unique
//! violation, a database error) rolls the whole batch back, and each work
//! of the batch is then run again alone in its own transaction, so what a
//! caller sees is exactly what it would have seen alone. (A refusal that
//! writes nothing — an accept too late — is a work's output, not a failure,
//! and costs the batch nothing.) A failed
//! commit is answered as an error to every caller of the batch (as a failed
//! commit of their own would be): their retries are idempotent.
//!
//! Works of one kind in a batch run together ([`Work::run_together`]): on
//! PostgreSQL the filings, accepts and resolves of a batch are each one or
//! two statements over a list of values, whatever their number, where each
//! work was a statement or two of its own, one round trip after another.
//!
//! A node runs a few writers (one on the embedded default, whose database
//! has one connection): while one runs its batch the next gathers the works
//! queued meanwhile, so one connection's round trips do not bound the node.
//! On PostgreSQL the writers have connections of their own (`Db::open`).
//! A batch holds its row locks until its commit. The one row works share
//! (an accept's count of answers per queue and shard) is locked last in a
//! batch, and in the same order by every batch ([`Work::lock_key`]), so
//! batches do not deadlock.
//! Should they anyway (another node, an unforeseen row), PostgreSQL's
//! deadlock detection fails one of them and its works rerun alone.

use super::{StoreError, StoreResult};
use futures::future::BoxFuture;
use sqlx::{Any, AnyPool, Transaction};
use std::any::TypeId;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Histogram;

pub(crate) type Tx = Transaction<'static, Any>;

/// The most works one transaction holds: bounds how long its row locks are
/// held and how much is rerun when it fails.
const MAX_BATCH: usize = 64;

/// Statements that can run alone or beside others in one transaction.
///
/// A work may run more than once (a failed batch is rolled back and every
/// work in it rerun alone), so it owns its inputs and reads what it needs
/// inside the transaction it is given, never from another connection (the
/// embedded default has only one). Any error it returns rolls back the
/// transaction it ran in.
pub(crate) trait Work: Send + Sync + 'static {
    type Output: Send + 'static;
    fn run(&self, tx: &mut Tx) -> impl Future<Output = StoreResult<Self::Output>> + Send;
    /// Run alone (nothing else queued, or a failed batch rerun): in a
    /// transaction of its own unless the work knows better (a single
    /// statement is its own transaction, one round trip instead of three).
    fn run_alone(&self, pool: &AnyPool) -> impl Future<Output = StoreResult<Self::Output>> + Send {
        in_own_transaction(self, pool)
    }
    /// The row shared with other works that this work locks, if any: works
    /// that lock one run last in their batch, in this order, so that such a
    /// row is held from their statement to the commit only, whatever else
    /// the batch waits for.
    fn lock_key(&self) -> Option<(i64, i64)> {
        None
    }
    /// Run the works of this kind that share a batch, in `tx`, their
    /// outputs in the order given; an error fails them all (and the batch,
    /// whose works then rerun alone). One after another unless the kind can
    /// do better: one statement for them all is one round trip and one
    /// executor start-up where each was its own.
    fn run_together<'a>(
        works: &'a [&'a Self],
        tx: &'a mut Tx,
    ) -> impl Future<Output = StoreResult<Vec<Self::Output>>> + Send + 'a
    where
        Self: Sized,
    {
        one_after_another(works, tx)
    }
}

/// Run `works` in `tx` one after another (what [`Work::run_together`] does
/// unless a kind says otherwise).
pub(crate) async fn one_after_another<W: Work>(
    works: &[&W],
    tx: &mut Tx,
) -> StoreResult<Vec<W::Output>> {
    let mut outputs = Vec::with_capacity(works.len());
    for work in works {
        outputs.push(work.run(tx).await?);
    }
    Ok(outputs)
}

/// Run `work` in a transaction of its own, committed if it succeeded.
pub(crate) async fn in_own_transaction<W: Work + ?Sized>(
    work: &W,
    pool: &AnyPool,
) -> StoreResult<W::Output> {
    let mut tx = crate::store::begin(pool).await?;
    let output = work.run(&mut tx).await?;
    tx.commit().await?;
    Ok(output)
}

/// How the writer has been doing, for `/metrics`.
#[derive(Default)]
pub struct GroupCommitStats {
    /// Transactions the writer committed (or tried to).
    pub transactions: AtomicU64,
    /// Works those transactions held.
    pub works: AtomicU64,
    /// Batches rolled back because one of their works failed.
    pub batches_rerun: AtomicU64,
    /// How long each work waited for a writer (sent → taken into a batch).
    pub wait: Histogram,
    /// How long each batch took, from its first statement to the answers
    /// (its commit, and the reruns of a failed batch, included).
    pub batch: Histogram,
}

/// The handle callers send their works through; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::UnboundedSender<Box<dyn Queued>>,
    shared: Arc<Shared>,
}

struct Shared {
    stats: GroupCommitStats,
    /// Works sent and not yet taken into a transaction (a watch, so that a
    /// test can wait for a count).
    waiting: watch::Sender<i64>,
    /// Taken by the writer while it gathers a batch; a test holds it to make
    /// works queue up behind it (see [`Writer::hold`]). An async mutex: the
    /// writer awaits it.
    gather: tokio::sync::Mutex<()>,
}

impl Writer {
    /// Start the node's `writers` writer tasks on `pool`. They end when the
    /// last handle is dropped.
    pub(crate) fn start(pool: AnyPool, writers: usize) -> Writer {
        let (queue, works) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            stats: GroupCommitStats::default(),
            waiting: watch::Sender::new(0),
            gather: tokio::sync::Mutex::new(()),
        });
        // An async mutex: a writer holds it while it waits for the next work
        // and takes what queued behind it, then lets the next writer gather
        // while it runs its batch.
        let works = Arc::new(tokio::sync::Mutex::new(works));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(pool.clone(), works.clone(), shared.clone()));
        }
        Writer { queue, shared }
    }

    /// Run `work` in the next transaction the writer commits; answers after
    /// that commit. If the writer is gone (the runtime is shutting down),
    /// the work runs alone on `pool`.
    pub(crate) async fn commit<W: Work>(&self, pool: &AnyPool, work: W) -> StoreResult<W::Output> {
        let (reply, answer) = oneshot::channel();
        let entry: Box<dyn Queued> = Box::new(Entry {
            work,
            result: None,
            reply: Some(reply),
            queued_at: Instant::now(),
        });
        match self.queue.send(entry) {
            // Counted once it is in the queue (so the writer may count it
            // out first: the count may dip below zero for a moment).
            Ok(()) => self.shared.waiting.send_modify(|n| *n += 1),
            Err(mpsc::error::SendError(mut entry)) => {
                entry.run_alone(pool).await;
                entry.answer_ran();
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Database(sqlx::Error::WorkerCrashed)))
    }

    pub fn stats(&self) -> &GroupCommitStats {
        &self.shared.stats
    }

    /// Keep the writer from starting its next transaction until the guard
    /// is dropped; works sent meanwhile queue up and go into one batch.
    #[doc(hidden)]
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.shared.gather.lock().await
    }

    /// Wait until `n` works are sent and not yet taken into a transaction.
    #[doc(hidden)]
    pub async fn until_waiting(&self, n: i64) {
        let mut waiting = self.shared.waiting.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = waiting.wait_for(|&w| w == n).await;
    }
}

/// A work with its caller's reply, behind one object-safe face so that works
/// of different kinds share a batch.
trait Queued: Send + std::any::Any {
    fn lock_key(&self) -> Option<(i64, i64)>;
    /// The work's kind: works of one kind in a batch run together.
    fn kind(&self) -> TypeId;
    /// When the caller sent it.
    fn queued_at(&self) -> Instant;
    /// Run in the batch's transaction with `same`, works of the same kind
    /// (see [`Work::run_together`]); false if they failed.
    fn run_in<'a>(
        &'a mut self,
        same: &'a mut [Box<dyn Queued>],
        tx: &'a mut Tx,
    ) -> BoxFuture<'a, bool>;
    /// Run alone in a transaction of its own, committed if it succeeded.
    fn run_alone<'a>(&'a mut self, pool: &'a AnyPool) -> BoxFuture<'a, ()>;
    /// Tell the caller what the last run gave.
    fn answer_ran(&mut self);
    /// Tell the caller that the commit holding its work failed.
    fn answer_failed(&mut self, error: &sqlx::Error);
}

struct Entry<W: Work> {
    work: W,
    result: Option<StoreResult<W::Output>>,
    reply: Option<oneshot::Sender<StoreResult<W::Output>>>,
    queued_at: Instant,
}

impl<W: Work> Queued for Entry<W> {
    fn lock_key(&self) -> Option<(i64, i64)> {
        self.work.lock_key()
    }

    fn kind(&self) -> TypeId {
        TypeId::of::<W>()
    }

    fn queued_at(&self) -> Instant {
        self.queued_at
    }

    fn run_in<'a>(
        &'a mut self,
        same: &'a mut [Box<dyn Queued>],
        tx: &'a mut Tx,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            // The batch groups works by kind: every one of `same` is an
            // `Entry<W>`.
            fn of_kind<W: Work>(queued: &dyn Queued) -> Option<&W> {
                (queued as &dyn std::any::Any)
                    .downcast_ref::<Entry<W>>()
                    .map(|entry| &entry.work)
            }
            let outputs = {
                let mut works = vec![&self.work];
                works.extend(
                    same.iter()
                        .filter_map(|queued| of_kind::<W>(queued.as_ref())),
                );
                assert_eq!(
                    works.len(),
                    same.len() + 1,
                    "a batch's group is of one kind"
                );
                W::run_together(&works, tx).await
            };
            match outputs {
                Ok(outputs) => {
                    let entries =
                        std::iter::once(self).chain(same.iter_mut().filter_map(|queued| {
                            (queued.as_mut() as &mut dyn std::any::Any).downcast_mut::<Entry<W>>()
                        }));
                    for (entry, output) in entries.zip(outputs) {
                        entry.result = Some(Ok(output));
                    }
                    true
                }
                Err(e) => {
                    self.result = Some(Err(e));
                    false
                }
            }
        })
    }

    fn run_alone<'a>(&'a mut self, pool: &'a AnyPool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.result = Some(self.work.run_alone(pool).await);
        })
    }

    fn answer_ran(&mut self) {
        if let (Some(reply), Some(result)) = (self.reply.take(), self.result.take()) {
            // The caller may have gone (its request was cancelled): the
            // write stands, as it would have had it run on its own task.
            let _ = reply.send(result);
        }
    }

    fn answer_failed(&mut self, error: &sqlx::Error) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(StoreError::Database(sqlx::Error::Protocol(format!(
                "the commit holding this write failed: {error}"
            )))));
        }
    }
}

async fn write_batches(
    pool: AnyPool,
    works: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Box<dyn Queued>>>>,
    shared: Arc<Shared>,
) {
    loop {
        let mut batch = {
            let mut works = works.lock().await;
            let Some(first) = works.recv().await else {
                return;
            };
            let mut batch = vec![first];
            let _gathering = shared.gather.lock().await;
            while batch.len() < MAX_BATCH {
                match works.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        // Works of one kind run together (one statement for them all where
        // the kind can). Rows several works lock (an accept's count of
        // answers) are locked last, just before the commit (another writer
        // that needs one waits for that statement and the commit, not for
        // the rest of the batch), and in one order by every writer, so that
        // two batches never wait on each other in a cycle. The sort is
        // stable: works on one row keep the order they came in.
        batch.sort_by_key(|w| (w.lock_key().is_some(), w.kind(), w.lock_key()));
        shared.waiting.send_modify(|n| *n -= batch.len() as i64);
        let stats = &shared.stats;
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        stats.works.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let started = Instant::now();
        for work in &batch {
            stats.wait.observe(started - work.queued_at());
        }
        if let [alone] = batch.as_mut_slice() {
            alone.run_alone(&pool).await;
            alone.answer_ran();
            stats.batch.observe(started.elapsed());
            continue;
        }
        match run_batch(&pool, &mut batch).await {
            Ok(true) => batch.iter_mut().for_each(|w| w.answer_ran()),
            Ok(false) => {
                // One failed: nothing of the batch stands. Each runs again
                // alone, as if it had never shared a transaction.
                stats.batches_rerun.fetch_add(1, Ordering::Relaxed);
                for work in &mut batch {
                    stats.transactions.fetch_add(1, Ordering::Relaxed);
                    work.run_alone(&pool).await;
                    work.answer_ran();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, works = batch.len(), "a group commit failed");
                batch.iter_mut().for_each(|w| w.answer_failed(&e));
            }
        }
        stats.batch.observe(started.elapsed());
    }
}

/// Run the batch in one transaction. `Ok(false)`: a work failed and the
/// transaction was rolled back; `Err`: beginning or committing failed.
async fn run_batch(pool: &AnyPool, batch: &mut [Box<dyn Queued>]) -> Result<bool, sqlx::Error> {
    let mut tx = crate::store::begin(pool).await?;
    let mut rest = batch;
    while let Some((first, others)) = rest.split_first_mut() {
        let kind = first.kind();
        let same = others.iter().take_while(|w| w.kind() == kind).count();
        let (same, after) = others.split_at_mut(same);
        if !first.run_in(same, &mut tx).await {
            // Dropping the transaction rolls it back.
            drop(tx);
            return Ok(false);
        }
        rest = after;
    }
    tx.commit().await?;
    Ok(true)
}
