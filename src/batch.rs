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
    /// The first job of the next batch, received before [`Batches::next`]'s yield, kept here so
    /// that a caller which drops the future there (the sequencer's `select!`) loses no job.
    held: Option<J>,
}

/// A queue of at most this many waiting jobs per batch writer, which refuses a job past it;
/// `writer` names it in metrics.
pub fn queue<J>(writer: &'static str) -> (mpsc::Sender<J>, Batches<J>) {
    let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
    (tx, Batches { rx, writer, taken: None, held: None })
}

impl<J> Batches<J> {
    /// The next batch, once the previous one is done: waits for one job, yields to the runtime
    /// once, then takes whatever else is queued (at most [`MAX_BATCH`]). That is everything that
    /// arrived while the previous transaction ran, and what the tasks already runnable when the
    /// first job came (requests whose signatures are back, say) queued meanwhile; without the
    /// yield they waited for the batch after, and each batch, one transaction and one fsync
    /// whatever its size, served fewer callers. With nothing else runnable the yield returns at
    /// once. `None` once every sender is gone. Cancel-safe: a job received is kept for the next
    /// call.
    pub async fn next(&mut self) -> Option<Vec<J>> {
        if let Some(taken) = self.taken.take() {
            crate::metrics::global().batch_done(self.writer, taken.elapsed());
        }
        if self.held.is_none() {
            self.held = Some(self.rx.recv().await?);
            tokio::task::yield_now().await;
        }
        let mut jobs: Vec<J> = self.held.take().into_iter().collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_job_queued_by_a_task_runnable_with_the_first_joins_its_batch() {
        let (tx, mut batches) = queue::<u32>("test");
        tx.send(1).await.unwrap();
        let tx2 = tx.clone();
        // Runnable, not yet run: on this one-thread runtime it runs only when `next` yields.
        tokio::spawn(async move { tx2.send(2).await.unwrap() });
        assert_eq!(batches.next().await, Some(vec![1, 2]));
        drop(tx);
        assert_eq!(batches.next().await, None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_job_received_before_the_caller_gave_up_is_in_the_next_batch() {
        let (tx, mut batches) = queue::<u32>("test");
        tx.send(1).await.unwrap();
        // `next` is polled first, receives the job and yields; the other branch then wins and
        // drops it, as the sequencer's `select!` does when its follow timer fires.
        tokio::select! {
            biased;
            _ = batches.next() => panic!("a yield was expected before the batch"),
            _ = std::future::ready(()) => {}
        }
        tx.send(2).await.unwrap();
        assert_eq!(batches.next().await, Some(vec![1, 2]));
    }
}
