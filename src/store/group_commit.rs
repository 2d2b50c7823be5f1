//! Group commit: concurrent callers' records are written together in one transaction (one
//! fsync), so the store does not cap the throughput of the TSA or the signing service, and each
//! caller still waits until its own record is durable (pending certificates: committed, see
//! [`Store::record_pending`]).

use super::{NewCertificate, SignatureRecord, Store, StoreError, TimestampRecord};
use crate::batch::Gather;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type Job<R, T> = (R, oneshot::Sender<Result<T, String>>);

/// Handle to a writer task for records of type `R`, each answered with a `T` once its batch is
/// written. Cheap to clone.
pub struct GroupCommit<R, T = ()> {
    tx: mpsc::Sender<Job<R, T>>,
}

impl<R, T> Clone for GroupCommit<R, T> {
    fn clone(&self) -> Self {
        GroupCommit { tx: self.tx.clone() }
    }
}

/// Time-stamp tokens (RFC 3161), written before the reply leaves.
pub type TimestampWriter = GroupCommit<TimestampRecord>;
/// CMS signatures, written before the reply leaves.
pub type SignatureWriter = GroupCommit<SignatureRecord>;
/// Certificates about to be signed (`pending`), written before the HSM signs (durable as
/// [`Store::record_pending`] says); each answered whether it was recorded (`false`: its serial
/// was used before).
pub type PendingWriter = GroupCommit<NewCertificate, bool>;

impl TimestampWriter {
    /// Starts the time-stamp writer on the current runtime.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        Self::start("timestamps", Gather::AfterYield, move |batch| {
            let store = store.clone();
            async move { store.record_timestamps(&batch).await }
        })
    }
}

impl SignatureWriter {
    /// Starts the signature writer on the current runtime.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        Self::start("signatures", Gather::AfterYield, move |batch| {
            let store = store.clone();
            async move { store.record_signatures(&batch).await }
        })
    }
}

impl PendingWriter {
    /// Starts the pending-certificate writer on the current runtime.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        Self::start_each("pending-certificates", Gather::Queued, move |batch| {
            let store = store.clone();
            async move { store.record_pending(&batch).await }
        })
    }
}

impl<R: Send + 'static> GroupCommit<R> {
    /// Starts a writer task, named `writer` in metrics, that hands each batch, gathered as
    /// `gather` says, to `write` (one transaction).
    pub fn start<F, Fut>(writer: &'static str, gather: Gather, write: F) -> Self
    where
        F: Fn(Vec<R>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), StoreError>> + Send,
    {
        Self::start_each(writer, gather, move |records| {
            let (n, written) = (records.len(), write(records));
            async move { written.await.map(|()| vec![(); n]) }
        })
    }
}

impl<R: Send + 'static, T: Clone + Send + 'static> GroupCommit<R, T> {
    /// Starts a writer task, named `writer` in metrics, that hands each batch, gathered as
    /// `gather` says, to `write` (one transaction), which answers each record of the batch in
    /// order.
    pub fn start_each<F, Fut>(writer: &'static str, gather: Gather, write: F) -> Self
    where
        F: Fn(Vec<R>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<T>, StoreError>> + Send,
    {
        let (tx, mut batches) = crate::batch::queue::<Job<R, T>>(writer, gather);
        tokio::spawn(async move {
            while let Some(jobs) = batches.next().await {
                let (records, waiters): (Vec<R>, Vec<_>) = jobs.into_iter().unzip();
                let n = records.len();
                match write(records).await {
                    Ok(answers) if answers.len() == n => {
                        for (done, answer) in waiters.into_iter().zip(answers) {
                            let _ = done.send(Ok(answer));
                        }
                    }
                    other => {
                        let e =
                            other.map_or_else(|e| e.to_string(), |a| format!("{} answers for {n} records", a.len()));
                        for done in waiters {
                            let _ = done.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        GroupCommit { tx }
    }

    /// Records `r`; returns once its batch is written (durable, but for the pending
    /// certificates' exception in [`Store::record_pending`]), with its answer.
    pub async fn record(&self, r: R) -> Result<T, StoreError> {
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
