//! Group commit for time-stamp records: concurrent callers' records are written together in one
//! transaction (one fsync), so the store does not cap the TSA's throughput, and each caller
//! still waits until its own record is durable.

use super::{Store, StoreError, TimestampRecord};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most records written in one transaction.
const MAX_BATCH: usize = 512;

type Job = (TimestampRecord, oneshot::Sender<Result<(), String>>);

/// Handle to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct TimestampWriter {
    tx: mpsc::Sender<Job>,
}

impl TimestampWriter {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Whatever queued up while the previous transaction ran goes into this one.
                let mut jobs = vec![first];
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let records: Vec<TimestampRecord> = jobs.iter().map(|(r, _)| r.clone()).collect();
                let result = store.record_timestamps(&records).await;
                for (_, done) in jobs {
                    let _ = done.send(result.as_ref().map(|_| ()).map_err(ToString::to_string));
                }
            }
        });
        TimestampWriter { tx }
    }

    /// Records `r`; returns once it is durable.
    pub async fn record(&self, r: TimestampRecord) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send((r, done)).await.map_err(|_| StoreError::Database("timestamp writer stopped".into()))?;
        wait.await.map_err(|_| StoreError::Database("timestamp writer stopped".into()))?.map_err(StoreError::Database)
    }
}
