//! The queue side of group commit, shared by the record writers (`store::GroupCommit`) and the
//! log's sequencer: a batch is one transaction, so one fsync serves every caller in it.

use tokio::sync::mpsc;

/// Most jobs in one batch (one transaction).
pub const MAX_BATCH: usize = 512;

/// A queue of at most this many waiting jobs per batch writer; writers refuse a job past it.
pub fn queue<J>() -> (mpsc::Sender<J>, mpsc::Receiver<J>) {
    mpsc::channel(4 * MAX_BATCH)
}

/// The next batch: waits for one job, then takes whatever else is queued already (at most
/// [`MAX_BATCH`]), i.e. everything that arrived while the previous transaction ran. `None` once
/// every sender is gone.
pub async fn next<J>(rx: &mut mpsc::Receiver<J>) -> Option<Vec<J>> {
    let mut jobs = vec![rx.recv().await?];
    while jobs.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => break,
        }
    }
    Some(jobs)
}
