//! Bounds on `Verify`: validation is CPU work (chain building, RSA) that runs on the blocking
//! pool, which health checks share, and each request holds a signature and perhaps a document.
//! A flood must get a quick refusal, not an unbounded queue and a daemon reporting NOT_SERVING.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `running` validations at once; at most `admitted` in the daemon, running or waiting.
pub struct Admission {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    limit: usize,
}

/// A request's place: hold it until its validation is done.
pub struct Ticket {
    _running: OwnedSemaphorePermit,
    _admitted: OwnedSemaphorePermit,
}

impl Admission {
    /// One validation per core (more in parallel only share the cores); 32 per core admitted, so
    /// a burst queues for tens of milliseconds (a validation takes about a millisecond) before
    /// anything is refused.
    pub fn for_cores() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores, 32 * cores)
    }

    /// `running` at once, `admitted` (at least `running`) in the daemon.
    pub fn new(running: usize, admitted: usize) -> Self {
        let admitted = admitted.max(running).max(1);
        Admission {
            running: Arc::new(Semaphore::new(running.max(1))),
            admitted: Arc::new(Semaphore::new(admitted)),
            limit: admitted,
        }
    }

    /// Waits for a turn to run; `Err(limit)` at once when the daemon holds `admitted` already.
    pub async fn enter(&self) -> Result<Ticket, usize> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| self.limit)?;
        let running = self.running.clone().acquire_owned().await.map_err(|_| self.limit)?;
        Ok(Ticket { _running: running, _admitted: admitted })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_a_few_queues_some_and_refuses_the_rest() {
        let a = Arc::new(Admission::new(1, 3));
        let first = a.enter().await.unwrap();
        // Two more are admitted and wait for the one running.
        let (a2, a3) = (a.clone(), a.clone());
        let second = tokio::spawn(async move { a2.enter().await.map(|_| ()) });
        let third = tokio::spawn(async move { a3.enter().await.map(|_| ()) });
        while a.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(a.enter().await.err(), Some(3), "the fourth is refused at once");
        drop(first);
        second.await.unwrap().unwrap();
        third.await.unwrap().unwrap();
        // Every place is given back.
        assert_eq!((a.running.available_permits(), a.admitted.available_permits()), (1, 3));
        assert!(a.enter().await.is_ok());
    }
}
