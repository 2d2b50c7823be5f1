//! Connections within bounds, for every listener: at most `[limits] max_connections` open per
//! listener (a connection past it is shed at once), TCP keepalive and NODELAY on each, and a
//! connection closed once it has had no request in progress for `[limits] idle_timeout`
//! (gRPC's MAX_CONNECTION_IDLE; HTTP/2 PINGs keep an idle connection alive, so idleness is
//! counted in requests, not bytes).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The open connections of one listener.
pub struct ConnectionLimit {
    slots: Arc<Semaphore>,
    max: usize,
    /// When a shed connection was last logged, and how many were shed since: a flood gets a
    /// warning a second, not one per connection.
    shed: Mutex<(Option<Instant>, u64)>,
    listener: &'static str,
}

/// A connection's place under its listener's limit: held as long as the connection is open.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl ConnectionLimit {
    pub fn new(listener: &'static str, max: usize) -> Arc<Self> {
        let max = max.max(1);
        Arc::new(ConnectionLimit { slots: Arc::new(Semaphore::new(max)), max, shed: Mutex::new((None, 0)), listener })
    }

    /// A place for a new connection from `remote`, or `None` when the listener has
    /// `max_connections` open already (logged, at most once a second).
    pub fn open(&self, remote: SocketAddr) -> Option<Slot> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(Slot { _permit: permit });
        }
        let mut shed = self.shed.lock().unwrap_or_else(|p| p.into_inner());
        shed.1 += 1;
        if shed.0.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            tracing::warn!(
                listener = self.listener,
                %remote,
                max_connections = self.max,
                shed = shed.1,
                "connection limit reached: new connections are closed at once"
            );
            *shed = (Some(Instant::now()), 0);
        }
        None
    }
}

/// TCP_NODELAY (Nagle and delayed ACKs would add 40 ms to small replies) and TCP keepalive
/// every `keepalive` (a peer that vanished without a FIN is found and its slot freed).
pub fn tune(tcp: &TcpStream, keepalive: Duration) {
    let _ = tcp.set_nodelay(true);
    let ka = socket2::TcpKeepalive::new().with_time(keepalive).with_interval(keepalive);
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&ka) {
        tracing::debug!(error = %e, "TCP keepalive not set");
    }
}

/// Requests in progress on one connection, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    in_progress: AtomicUsize,
    idle_since: Mutex<Instant>,
}

/// One request in progress on a connection ([`Activity::begin`]); its end on drop.
pub struct InProgress(Arc<Activity>);

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity { in_progress: AtomicUsize::new(0), idle_since: Mutex::new(Instant::now()) })
    }

    pub fn begin(self: &Arc<Self>) -> InProgress {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        InProgress(self.clone())
    }

    /// How long the connection has had no request in progress (`None`: one is in progress).
    fn idle_for(&self) -> Option<Duration> {
        if self.in_progress.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.idle_since.lock().unwrap_or_else(|p| p.into_inner()).elapsed())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        if self.0.in_progress.fetch_sub(1, Ordering::AcqRel) == 1 {
            *since = Instant::now();
        }
    }
}

/// The idle clock of a connection, polled from its reads: once [`Activity`] shows no request
/// in progress for `timeout`, the connection reads end-of-file and closes.
pub struct IdleClose {
    activity: Arc<Activity>,
    timeout: Duration,
    check: Pin<Box<tokio::time::Sleep>>,
}

impl IdleClose {
    pub fn new(activity: Arc<Activity>, timeout: Duration) -> Self {
        IdleClose { activity, timeout, check: Box::pin(tokio::time::sleep(timeout)) }
    }

    /// Ready (the connection should close) once it has been idle for the timeout; else arranges
    /// to be polled again when it might be.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.check.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let next = match self.activity.idle_for() {
                Some(idle) if idle >= self.timeout => return Poll::Ready(()),
                Some(idle) => self.timeout - idle,
                None => self.timeout,
            };
            self.check.as_mut().reset(tokio::time::Instant::now() + next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_sheds_past_its_limit_and_frees_closed_slots() {
        let limit = ConnectionLimit::new("test", 2);
        let remote: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (a, _b) = (limit.open(remote).unwrap(), limit.open(remote).unwrap());
        assert!(limit.open(remote).is_none());
        drop(a);
        assert!(limit.open(remote).is_some());
    }

    async fn expired(idle: &mut IdleClose) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(idle.poll_expired(cx).is_ready())).await
    }

    #[tokio::test]
    async fn a_connection_closes_only_after_the_idle_timeout_without_requests() {
        let activity = Activity::new();
        let mut idle = IdleClose::new(activity.clone(), Duration::from_millis(300));
        let request = activity.begin();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!expired(&mut idle).await, "a request in progress keeps the connection");
        drop(request);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!expired(&mut idle).await, "idle for 100 ms of 300");
        // The clock wakes the connection when the timeout is reached.
        tokio::time::timeout(Duration::from_secs(2), std::future::poll_fn(|cx| idle.poll_expired(cx)))
            .await
            .expect("closes after the idle timeout");
    }
}
