//! The queue side of group commit, shared by the record writers (`store::GroupCommit`) and the
//! log's sequencer: a batch is one transaction, so one fsync serves every caller in it. Each
//! batch is counted here (`metrics`: its records, its time, what still waits), so neither the
//! store nor the log counts anything.

use std::time::Instant;
use tokio::sync::mpsc;

/// Most jobs in one batch (one transaction).
pub const MAX_BATCH: usize = 512;

/// The receiving side of a writer's queue.
pub struct Batches<J> {
    rx: mpsc::Receiver<J>,
    /// How metrics name the writer.
    writer: &'static str,
    /// When the batch being written was taken.
    taken: Option<Instant>,
}

/// A queue of at most this many waiting jobs per batch writer, which refuses a job past it;
/// `writer` names it in metrics.
pub fn queue<J>(writer: &'static str) -> (mpsc::Sender<J>, Batches<J>) {
    let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
    (tx, Batches { rx, writer, taken: None })
}

impl<J> Batches<J> {
    /// The next batch, once the previous one is done: waits for one job, then takes whatever
    /// else is queued already (at most [`MAX_BATCH`]), i.e. everything that arrived while the
    /// previous transaction ran. `None` once every sender is gone.
    pub async fn next(&mut self) -> Option<Vec<J>> {
        if let Some(taken) = self.taken.take() {
            crate::metrics::global().batch_done(self.writer, taken.elapsed());
        }
        let mut jobs = vec![self.rx.recv().await?];
        while jobs.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        crate::metrics::global().batch_taken(self.writer, jobs.len(), self.rx.len());
        self.taken = Some(Instant::now());
        Some(jobs)
    }
}
