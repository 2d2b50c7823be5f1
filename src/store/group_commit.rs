//! Group commit: concurrent callers' records are written together in one transaction (one
//! fsync), so the store does not cap the throughput of the TSA or the signing service, and each
//! caller still waits until its own record is durable.

use super::{SignatureRecord, Store, StoreError, TimestampRecord};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type Job<R> = (R, oneshot::Sender<Result<(), String>>);

/// Handle to a writer task for records of type `R`. Cheap to clone.
pub struct GroupCommit<R> {
    tx: mpsc::Sender<Job<R>>,
}

impl<R> Clone for GroupCommit<R> {
    fn clone(&self) -> Self {
        GroupCommit { tx: self.tx.clone() }
    }
}

/// Time-stamp tokens (RFC 3161), written before the reply leaves.
pub type TimestampWriter = GroupCommit<TimestampRecord>;
/// CMS signatures, written before the reply leaves.
pub type SignatureWriter = GroupCommit<SignatureRecord>;

impl TimestampWriter {
    /// Starts the time-stamp writer on the current runtime.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        Self::start(move |batch| {
            let store = store.clone();
            async move { store.record_timestamps(&batch).await }
        })
    }
}

impl SignatureWriter {
    /// Starts the signature writer on the current runtime.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        Self::start(move |batch| {
            let store = store.clone();
            async move { store.record_signatures(&batch).await }
        })
    }
}

impl<R: Send + 'static> GroupCommit<R> {
    /// Starts a writer task that hands each batch to `write` (one transaction).
    pub fn start<F, Fut>(write: F) -> Self
    where
        F: Fn(Vec<R>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), StoreError>> + Send,
    {
        let (tx, mut rx) = crate::batch::queue::<Job<R>>();
        tokio::spawn(async move {
            while let Some(jobs) = crate::batch::next(&mut rx).await {
                let (records, waiters): (Vec<R>, Vec<_>) = jobs.into_iter().unzip();
                let result = write(records).await.map_err(|e| e.to_string());
                for done in waiters {
                    let _ = done.send(result.clone());
                }
            }
        });
        GroupCommit { tx }
    }

    /// Records `r`; returns once it is durable.
    pub async fn record(&self, r: R) -> Result<(), StoreError> {
        let stopped = || StoreError::Database("record writer stopped".into());
        let (done, wait) = oneshot::channel();
        // Full only if more records wait than `[limits] max_requests` lets in: refused at once
        // rather than waited for.
        self.tx.try_send((r, done)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Database("too many records waiting to be written".into()),
            mpsc::error::TrySendError::Closed(_) => stopped(),
        })?;
        wait.await.map_err(|_| stopped())?.map_err(StoreError::Database)
    }
}
