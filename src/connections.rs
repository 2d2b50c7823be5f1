//! Connections within bounds, for every listener: at most `[limits] max_connections` open per
//! listener and `max_connections_per_address` from one IP address (a connection past either is
//! shed at once, at a pace, so that one host holding idle connections cannot starve the others), the
//! process's open-file limit raised to fit them, TCP keepalive and NODELAY on each, and a
//! connection closed once it has had no request in progress for `[limits] idle_timeout`
//! (gRPC's MAX_CONNECTION_IDLE; HTTP/2 PINGs keep an idle connection alive, so idleness is
//! counted in requests, not bytes).

use crate::throttle::EverySecond;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Least time a listener waits after shedding a connection before it accepts the next: past
/// its limits it sheds at most about a thousand connections a second and leaves the rest in
/// the kernel's backlog, which refuses its overflow without waking the daemon. A connection
/// flood then slows the flooder (the kernel drops its SYNs, retried after a second) instead of
/// taking the CPU that established clients' requests need.
const SHED_PACE: Duration = Duration::from_millis(1);

/// The open connections of one listener.
pub struct ConnectionLimit {
    slots: Arc<Semaphore>,
    max: usize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    max_per_address: usize,
    /// Shed connections: a flood gets a warning a second, not one per connection.
    shed: EverySecond,
    listener: &'static str,
}

/// A connection's place under its listener's limits: held as long as the connection is open.
pub struct Slot {
    limit: Arc<ConnectionLimit>,
    address: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.limit.per_address.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

impl ConnectionLimit {
    pub fn new(listener: &'static str, max: usize, max_per_address: usize) -> Arc<Self> {
        let max = max.max(1);
        Arc::new(ConnectionLimit {
            slots: Arc::new(Semaphore::new(max)),
            max,
            per_address: Mutex::new(HashMap::new()),
            max_per_address: max_per_address.max(1),
            shed: EverySecond::default(),
            listener,
        })
    }

    /// A place for a new connection from `remote`, or `None` when the listener has
    /// `max_connections` open already or `max_connections_per_address` from its address (logged,
    /// at most once a second).
    fn open(self: &Arc<Self>, remote: SocketAddr) -> Option<Slot> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            let address = remote.ip();
            let mut counts = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let n = counts.entry(address).or_insert(0);
            if *n < self.max_per_address {
                *n += 1;
                return Some(Slot { limit: self.clone(), address, _permit: permit });
            }
        }
        if let Some(shed) = self.shed.tick() {
            tracing::warn!(
                listener = self.listener,
                %remote,
                max_connections = self.max,
                max_connections_per_address = self.max_per_address,
                shed,
                "connection limit reached: new connections are closed at once"
            );
        }
        None
    }

    /// [`ConnectionLimit::open`] for an accept loop: a connection past the limits is answered
    /// `None` only after [`SHED_PACE`], so the loop sheds at a pace.
    pub async fn admit(self: &Arc<Self>, remote: SocketAddr) -> Option<Slot> {
        let slot = self.open(remote);
        if slot.is_none() {
            tokio::time::sleep(SHED_PACE).await;
        }
        slot
    }
}

/// Raises the process's soft limit on open files towards `needed` (at most the hard limit): the
/// listeners' connection limits are worth nothing if accept fails first (systemd's default soft
/// limit is 1024). Returns the limit in force.
pub fn raise_open_files(needed: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the one struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < needed {
        let raised = libc::rlimit { rlim_cur: needed.min(lim.rlim_max), rlim_max: lim.rlim_max };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = raised.rlim_cur;
        }
    }
    lim.rlim_cur
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
        let limit = ConnectionLimit::new("test", 3, 2);
        let (one, two, three): (SocketAddr, SocketAddr, SocketAddr) =
            ("127.0.0.1:1".parse().unwrap(), "127.0.0.2:1".parse().unwrap(), "127.0.0.3:1".parse().unwrap());
        let (a, _b) = (limit.open(one).unwrap(), limit.open(one).unwrap());
        assert!(limit.open(one).is_none(), "two per address");
        let _c = limit.open(two).unwrap();
        assert!(limit.open(three).is_none(), "three in all");
        drop(a);
        let _again = limit.open(one).expect("a place freed");
        assert!(limit.open(three).is_none());
        assert_eq!(limit.slots.available_permits(), 0);
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
