//! Requests within bounds, on every listener: at most `[limits] max_requests` in progress in the
//! daemon and `max_requests_per_client` per client (`max_requests_per_client_shared` while
//! other clients are being served too; probes, scrapes and process statistics count apart,
//! [`Demand`]), refused at once past them (gRPC
//! RESOURCE_EXHAUSTED, HTTP 503 with Retry-After) rather than queued, so that a flood cannot
//! hold memory or make well-behaved clients wait; and a deadline on each request (gRPC
//! DEADLINE_EXCEEDED, HTTP 503). Requests are counted on their connection's
//! [`crate::connections::Activity`], which its idle timeout reads.
//!
//! A request whose deadline passes is answered at once, and its handler is dropped: handlers
//! that change state run their core's work to completion in a task of its own
//! ([`to_completion`]), so a certificate, time-stamp, signature or revocation is finished and
//! logged whatever the client does.

use crate::config::LimitsSection;
use crate::throttle::EverySecond;
use crate::tls::Peer;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// RPCs without the default deadline: a streamed document may take longer than any request
/// deadline to arrive; `[limits] stream_idle_timeout` bounds the wait for each chunk instead.
const STREAMED_RPCS: &[&str] = &["/trust.v1.Signing/SignStream"];

/// What `Retry-After` says past a limit: requests are short, a place frees within a second.
const RETRY_AFTER_SECS: &str = "1";

/// A client counts as being served for this long after its last request.
const RECENT: Duration = Duration::from_secs(1);

/// gRPC methods that only probe the daemon ([`Demand::Probe`]): health (what load balancers
/// and orchestrators poll), reflection, and the process's statistics.
const PROBE_RPCS: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection.", "/trust.v1.Diagnostics/GetProcessStats"];

/// HTTP GET routes that only probe the daemon ([`Demand::Probe`]): liveness, readiness and the
/// Prometheus scrape.
const PROBE_ROUTES: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// What a request asks of the daemon, for the fair share between clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Demand {
    /// Work that queues for the HSM or the store: its client counts as being served, and holds
    /// the others to their share of such work.
    Work,
    /// A probe, a scrape or a look at the process: it waits behind no one's backlog, so it
    /// makes no one share, and it is counted apart from its client's work (a health check
    /// from the address a busy client uses is not refused for that client's load). Only the
    /// daemon's limit and the per-client one bound a flood of them.
    Probe,
}

impl Demand {
    /// The demand of a gRPC request to `rpc` (its path).
    pub fn of_rpc(rpc: &str) -> Self {
        match PROBE_RPCS.iter().any(|p| rpc.starts_with(p)) {
            true => Demand::Probe,
            false => Demand::Work,
        }
    }

    /// The demand of an HTTP request.
    pub fn of_http(method: &http::Method, path: &str) -> Self {
        match method == http::Method::GET && PROBE_ROUTES.contains(&path) {
            true => Demand::Probe,
            false => Demand::Work,
        }
    }
}

/// The clients with requests in progress, and those seen recently.
struct Clients {
    in_progress: HashMap<String, usize>,
    /// When each client last asked; entries older than [`RECENT`] are dropped once a
    /// [`RECENT`], so the map holds the clients of the last one to two.
    seen: HashMap<String, Instant>,
    pruned: Instant,
}

/// The daemon's and each client's requests in progress.
pub struct RequestLimits {
    daemon: Arc<Semaphore>,
    max_requests: usize,
    clients: Mutex<Clients>,
    max_per_client: usize,
    max_per_client_shared: usize,
    deadline: Duration,
    /// Refusals: a flood gets a warning a second.
    refused: EverySecond,
}

/// Why a request was refused: a limit of `[limits]` reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the service has {0} requests in progress, its limit; retry shortly")]
    Daemon(usize),
    #[error("this client has {0} requests in progress, its limit; retry shortly")]
    Client(usize),
    #[error("this client has {0} requests in progress, its share while other clients are served; retry shortly")]
    Shared(usize),
}

/// A request's place under the limits; given back on drop.
pub struct Admitted {
    limits: Arc<RequestLimits>,
    client: String,
    _daemon: OwnedSemaphorePermit,
}

impl RequestLimits {
    pub fn new(limits: &LimitsSection) -> Arc<Self> {
        Arc::new(RequestLimits {
            daemon: Arc::new(Semaphore::new(limits.max_requests.max(1))),
            max_requests: limits.max_requests.max(1),
            clients: Mutex::new(Clients { in_progress: HashMap::new(), seen: HashMap::new(), pruned: Instant::now() }),
            max_per_client: limits.max_requests_per_client.max(1),
            max_per_client_shared: limits
                .max_requests_per_client_shared
                .clamp(1, limits.max_requests_per_client.max(1)),
            deadline: limits.request_deadline,
            refused: EverySecond::default(),
        })
    }

    /// A place for one more request of `client` asking `demand`, or the limit it would pass.
    pub fn admit(self: &Arc<Self>, client: &str, demand: Demand) -> Result<Admitted, Refusal> {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let c = &mut *clients;
        let key = match demand {
            Demand::Work => {
                match c.seen.get_mut(client) {
                    Some(at) => *at = now,
                    None => {
                        c.seen.insert(client.to_owned(), now);
                    }
                }
                client.to_owned()
            }
            Demand::Probe => format!("{client} (probes)"),
        };
        if now.duration_since(c.pruned) >= RECENT {
            c.seen.retain(|_, at| now.duration_since(*at) < RECENT);
            c.pruned = now;
        }
        let daemon = self.daemon.clone().try_acquire_owned().map_err(|_| Refusal::Daemon(self.max_requests))?;
        let count = c.in_progress.entry(key.clone()).or_insert(0);
        if *count >= self.max_per_client {
            return Err(Refusal::Client(self.max_per_client));
        }
        if demand == Demand::Work && *count >= self.max_per_client_shared && c.seen.len() > 1 {
            return Err(Refusal::Shared(self.max_per_client_shared));
        }
        *count += 1;
        Ok(Admitted { limits: self.clone(), client: key, _daemon: daemon })
    }

    /// Logs a refusal or a passed deadline, at most once a second.
    fn note(&self, key: &str, what: &str, why: &dyn std::fmt::Display) {
        if let Some(refused) = self.refused.tick() {
            tracing::warn!(key, what, refused, "request refused: {why}");
        }
    }

    /// The deadline of a request to `rpc` whose client asked `asked` (gRPC's `grpc-timeout`):
    /// the shorter of the two; streamed RPCs have only the client's.
    fn deadline(&self, rpc: &str, asked: Option<Duration>) -> Option<Duration> {
        if STREAMED_RPCS.contains(&rpc) {
            return asked;
        }
        Some(asked.map_or(self.deadline, |a| a.min(self.deadline)))
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut clients = self.limits.clients.lock().unwrap_or_else(|p| p.into_inner());
        // Clients with nothing in progress leave the map: its size is bounded by the requests.
        if let Some(count) = clients.in_progress.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                clients.in_progress.remove(&self.client);
            }
        }
    }
}

/// Runs a core's state-changing work in a task of its own, so that it completes (record, log
/// entry) even when the request's deadline passes or its client goes away. `None` if the work
/// panicked (logged).
pub async fn to_completion<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> Option<T> {
    match tokio::spawn(work).await {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(error = %e, "request task failed");
            None
        }
    }
}

/// The `grpc-timeout` header (gRPC over HTTP/2: at most 8 digits and a unit). Parsed here
/// because tonic's parser is private to its own timeout layer, which answers CANCELLED rather
/// than DEADLINE_EXCEEDED.
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Puts [`Limited`] in front of the gRPC services, inside the access check (whose client name
/// it counts by).
#[derive(Clone)]
pub struct LimitLayer {
    limits: Arc<RequestLimits>,
}

impl LimitLayer {
    pub fn new(limits: Arc<RequestLimits>) -> Self {
        LimitLayer { limits }
    }
}

impl<S> tower::Layer<S> for LimitLayer {
    type Service = Limited<S>;
    fn layer(&self, inner: S) -> Limited<S> {
        Limited { inner, limits: self.limits.clone() }
    }
}

/// Admits each gRPC request under the limits and answers DEADLINE_EXCEEDED when it takes longer
/// than its deadline.
#[derive(Clone)]
pub struct Limited<S> {
    inner: S,
    limits: Arc<RequestLimits>,
}

/// Who a request counts against: the authenticated client's name, else its IP address.
fn client_key(name: Option<&str>, remote: Option<SocketAddr>) -> String {
    match (name, remote) {
        (Some(name), _) => format!("client {name}"),
        (None, Some(addr)) => format!("address {}", addr.ip()),
        (None, None) => "unknown".to_owned(),
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for Limited<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limits = self.limits.clone();
        Box::pin(async move {
            let peer = req.extensions().get::<Peer>();
            let _in_progress = peer.map(|p| p.activity.begin());
            let name = req.extensions().get::<Arc<crate::access::Client>>().map(|c| c.name().to_owned());
            let key = client_key(name.as_deref(), peer.and_then(|p| p.remote));
            let rpc = req.uri().path().to_owned();
            let _admitted = match limits.admit(&key, Demand::of_rpc(&rpc)) {
                Ok(a) => a,
                Err(refusal) => {
                    limits.note(&key, &rpc, &refusal);
                    return Ok(Status::resource_exhausted(refusal.to_string()).into_http());
                }
            };
            let Some(deadline) = limits.deadline(&rpc, grpc_timeout(req.headers())) else {
                return inner.call(req).await;
            };
            match tokio::time::timeout(deadline, inner.call(req)).await {
                Ok(response) => response,
                Err(_) => {
                    let message = format!("no answer within the deadline of {deadline:?}");
                    limits.note(&key, &rpc, &message);
                    Ok(Status::deadline_exceeded(message).into_http())
                }
            }
        })
    }
}

/// 503 with `Retry-After`, for a limit or a deadline.
fn unavailable(message: String) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, RETRY_AFTER_SECS)], message + "\n").into_response()
}

/// The same limits for HTTP requests, counted by IP address (HTTP clients authenticate per
/// route, after this).
pub async fn http_limits(State(limits): State<Arc<RequestLimits>>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<Peer>>().map(|c| &c.0);
    let _in_progress = peer.map(|p| p.activity.begin());
    let remote = peer.and_then(|p| p.remote).or_else(|| req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0));
    let key = client_key(None, remote);
    let route = format!("{} {}", req.method(), req.uri().path());
    let _admitted = match limits.admit(&key, Demand::of_http(req.method(), req.uri().path())) {
        Ok(a) => a,
        Err(refusal) => {
            limits.note(&key, &route, &refusal);
            return unavailable(refusal.to_string());
        }
    };
    let deadline = limits.deadline;
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let message = format!("no answer within the deadline of {deadline:?}");
            limits.note(&key, &route, &message);
            unavailable(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn limits(max_requests: usize, per_client: usize) -> Arc<RequestLimits> {
        RequestLimits::new(&LimitsSection {
            max_requests,
            max_requests_per_client: per_client,
            ..LimitsSection::default()
        })
    }

    #[test]
    fn a_client_past_its_limit_is_refused_and_others_are_not() {
        let l = limits(10, 2);
        let (a1, _a2) = (l.admit("a", Demand::Work).unwrap(), l.admit("a", Demand::Work).unwrap());
        assert_eq!(l.admit("a", Demand::Work).err(), Some(Refusal::Client(2)));
        let _b = l.admit("b", Demand::Work).unwrap();
        drop(a1);
        let _a3 = l.admit("a", Demand::Work).unwrap();
    }

    #[test]
    fn a_client_alone_has_its_whole_limit_and_a_share_while_others_are_served() {
        let l = RequestLimits::new(&LimitsSection {
            max_requests: 10,
            max_requests_per_client: 4,
            max_requests_per_client_shared: 2,
            ..LimitsSection::default()
        });
        let alone: Vec<_> = (0..3).map(|_| l.admit("a", Demand::Work).unwrap()).collect();
        let b = l.admit("b", Demand::Work).unwrap();
        assert_eq!(l.admit("a", Demand::Work).err(), Some(Refusal::Shared(2)), "b was served just now");
        drop(b);
        // A second after b's last request, a is alone again (the map is pruned once a second).
        std::thread::sleep(RECENT * 2 + Duration::from_millis(100));
        let fourth = l.admit("a", Demand::Work).unwrap();
        assert_eq!(l.admit("a", Demand::Work).err(), Some(Refusal::Client(4)));
        assert_eq!(l.clients.lock().unwrap().seen.len(), 1, "b left the recent clients");
        drop((alone, fourth));
    }

    #[test]
    fn probes_make_no_client_share_and_count_apart_from_their_clients_work() {
        let l = RequestLimits::new(&LimitsSection {
            max_requests: 10,
            max_requests_per_client: 3,
            max_requests_per_client_shared: 1,
            ..LimitsSection::default()
        });
        let mut work: Vec<_> = (0..2).map(|_| l.admit("a", Demand::Work).unwrap()).collect();
        // A load balancer's health checks and a Prometheus scrape, from elsewhere and from a's
        // own address while a is at its limit.
        let probes = [l.admit("lb", Demand::Probe).unwrap(), l.admit("prometheus", Demand::Probe).unwrap()];
        work.push(l.admit("a", Demand::Work).expect("a is still the only client being served"));
        assert_eq!(l.admit("a", Demand::Work).err(), Some(Refusal::Client(3)));
        let own = l.admit("a", Demand::Probe).expect("a probe is counted apart from a's work");
        // Work from another client holds a to its share again.
        drop(work.pop());
        let _b = l.admit("b", Demand::Work).unwrap();
        assert_eq!(l.admit("a", Demand::Work).err(), Some(Refusal::Shared(1)));
        drop((probes, own, work));
        assert_eq!(l.clients.lock().unwrap().in_progress.len(), 1, "only b's work is in progress");
    }

    #[test]
    fn health_readiness_metrics_and_process_stats_are_probes_and_nothing_else_is() {
        use http::Method;
        let probes = [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/trust.v1.Diagnostics/GetProcessStats",
        ];
        for rpc in probes {
            assert_eq!(Demand::of_rpc(rpc), Demand::Probe, "{rpc}");
        }
        for rpc in ["/trust.v1.Diagnostics/MeasureSigningRate", "/trust.v1.TimeStamping/Timestamp", "/grpc.health.v1"] {
            assert_eq!(Demand::of_rpc(rpc), Demand::Work, "{rpc}");
        }
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(Demand::of_http(&Method::GET, path), Demand::Probe, "{path}");
            assert_eq!(Demand::of_http(&Method::POST, path), Demand::Work, "POST {path}");
        }
        for path in ["/tsa", "/ocsp/MEow", "/metrics/x", "/log/checkpoint"] {
            assert_eq!(Demand::of_http(&Method::GET, path), Demand::Work, "{path}");
        }
    }

    #[test]
    fn the_daemon_limit_holds_over_every_client_and_places_come_back() {
        let l = limits(3, 3);
        let held: Vec<_> = ["a", "b", "c"].iter().map(|c| l.admit(c, Demand::Work).unwrap()).collect();
        assert_eq!(l.admit("d", Demand::Work).err(), Some(Refusal::Daemon(3)));
        drop(held);
        assert!(l.clients.lock().unwrap().in_progress.is_empty(), "no client left in the map");
        assert_eq!(l.daemon.available_permits(), 3);
    }

    #[test]
    fn grpc_timeout_headers_parse_as_the_spec_gives_them() {
        let parse = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("grpc-timeout", v.parse().unwrap());
            grpc_timeout(&h)
        };
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "S", "5", "123456789S", "5s", "-1S", "1.5S"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_deadline_is_the_shorter_one_and_streams_have_only_the_clients() {
        let l = limits(1, 1);
        let default = LimitsSection::default().request_deadline;
        assert_eq!(l.deadline("/trust.v1.TimeStamping/Timestamp", None), Some(default));
        assert_eq!(l.deadline("/x/Y", Some(Duration::from_secs(1))), Some(Duration::from_secs(1)));
        assert_eq!(l.deadline("/x/Y", Some(Duration::from_secs(3600))), Some(default));
        assert_eq!(l.deadline(STREAMED_RPCS[0], None), None);
        assert_eq!(l.deadline(STREAMED_RPCS[0], Some(Duration::from_secs(5))), Some(Duration::from_secs(5)));
    }

    #[tokio::test]
    async fn grpc_requests_past_their_deadline_or_limit_get_the_grpc_status() {
        use tower::{Layer, Service};
        let l = RequestLimits::new(&LimitsSection {
            request_deadline: Duration::from_millis(200),
            max_requests_per_client: 1,
            ..LimitsSection::default()
        });
        let slow = tower::service_fn(|_: http::Request<()>| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        });
        let mut svc = LimitLayer::new(l.clone()).layer(slow);
        let call = |svc: &mut Limited<_>, timeout: Option<&str>| {
            let mut req = http::Request::builder().uri("/trust.v1.CertificateAuthority/IssueCertificate");
            if let Some(t) = timeout {
                req = req.header("grpc-timeout", t);
            }
            svc.call(req.body(()).unwrap())
        };
        let code = |r: http::Response<String>| Status::from_header_map(r.headers()).map(|s| s.code());
        let started = Instant::now();
        assert_eq!(code(call(&mut svc, None).await.unwrap()), Some(tonic::Code::DeadlineExceeded));
        assert_eq!(code(call(&mut svc, Some("20m")).await.unwrap()), Some(tonic::Code::DeadlineExceeded));
        assert!(started.elapsed() < Duration::from_secs(5), "answered at the deadline, not the handler's end");
        // One place per client here ("unknown": no client, no address): of two calls at once,
        // one is refused at once.
        let first = call(&mut svc, None);
        let second = call(&mut svc, None);
        let (a, b) = tokio::join!(first, second);
        let codes = [code(a.unwrap()), code(b.unwrap())];
        assert!(codes.contains(&Some(tonic::Code::ResourceExhausted)), "{codes:?}");
        assert!(l.clients.lock().unwrap().in_progress.is_empty());
    }

    #[tokio::test]
    async fn work_run_to_completion_finishes_when_its_caller_gives_up() {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let work = to_completion(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(tokio::time::timeout(Duration::from_millis(10), work).await.is_err(), "the caller gave up");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(done.load(std::sync::atomic::Ordering::SeqCst), "the work finished all the same");
    }
}
