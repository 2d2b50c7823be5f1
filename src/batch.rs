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
    /// Whether the batch waits one yield for what runnable tasks are about to queue.
    gather: Gather,
    /// The first job of the next batch, received before [`Batches::next`]'s yield, kept here so
    /// that a caller which drops the future there (the sequencer's `select!`) loses no job.
    held: Option<J>,
}

/// How a writer gathers a batch once its first job is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gather {
    /// Yields to the runtime once, then takes what is queued: what the tasks already runnable
    /// when the first job came (requests whose signatures are back, say) queue meanwhile joins
    /// the batch rather than waiting for the next. For batches that each cost an fsync, which a
    /// larger batch shares among more callers.
    AfterYield,
    /// Takes what is queued at once: for batches that cost about the same per record however
    /// they are grouped (pending certificates, committed without an fsync of their own), where
    /// the yield would only delay the first job.
    Queued,
}

/// A queue of at most this many waiting jobs per batch writer, which refuses a job past it;
/// `writer` names it in metrics.
pub fn queue<J>(writer: &'static str, gather: Gather) -> (mpsc::Sender<J>, Batches<J>) {
    let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
    (tx, Batches { rx, writer, taken: None, gather, held: None })
}

impl<J> Batches<J> {
    /// The next batch, once the previous one is done: waits for one job, then takes whatever
    /// else is queued (at most [`MAX_BATCH`]), i.e. everything that arrived while the previous
    /// transaction ran, and with [`Gather::AfterYield`] what arrived during one yield to the
    /// runtime (which returns at once with nothing else runnable). `None` once every sender is
    /// gone. Cancel-safe: a job received is kept for the next call.
    pub async fn next(&mut self) -> Option<Vec<J>> {
        if let Some(taken) = self.taken.take() {
            crate::metrics::global().batch_done(self.writer, taken.elapsed());
        }
        if self.held.is_none() {
            self.held = Some(self.rx.recv().await?);
            if self.gather == Gather::AfterYield {
                tokio::task::yield_now().await;
            }
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
    async fn a_job_queued_by_a_task_runnable_with_the_first_joins_its_batch_only_after_a_yield() {
        for (gather, first) in [(Gather::AfterYield, vec![1, 2]), (Gather::Queued, vec![1])] {
            let (tx, mut batches) = queue::<u32>("test", gather);
            tx.send(1).await.unwrap();
            let tx2 = tx.clone();
            // Runnable, not yet run: on this one-thread runtime it runs only when `next` yields.
            let sent = tokio::spawn(async move { tx2.send(2).await.unwrap() });
            assert_eq!(batches.next().await, Some(first), "{gather:?}");
            sent.await.unwrap();
            drop(tx);
            let rest = if gather == Gather::Queued { Some(vec![2]) } else { None };
            assert_eq!(batches.next().await, rest, "{gather:?}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_job_received_before_the_caller_gave_up_is_in_the_next_batch() {
        let (tx, mut batches) = queue::<u32>("test", Gather::AfterYield);
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
