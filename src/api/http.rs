//! The HTTP side (axum): what relying parties and load balancers fetch with plain HTTP.
//! `POST /tsa` (RFC 3161 §3.4), `POST /ocsp` and `GET /ocsp/{base64}` (RFC 6960 A.1, RFC 5019),
//! `GET /crl/{ca}.crl` (RFC 5280 §5), `GET /ca/{ca}.crt` (the URL in every certificate's AIA
//! caIssuers, RFC 5280 §4.2.2.1, served as `application/pkix-cert` per RFC 2585 §4.1),
//! the issued-certificate log's read path for auditors and mirrors (`GET /log/checkpoint`,
//! `GET /log/key`, `GET /log/tile/…`, C2SP tlog-tiles), `GET /healthz`, `GET /readyz`, and
//! `GET /metrics` (Prometheus's scrape, OpenMetrics text).
//!
//! The same routes are served over HTTPS ([`https_router`]), where a time-stamp
//! client names itself with a client certificate or a bearer token (RFC 6750 §2.1): many RFC
//! 3161 clients can add a header but not a certificate. With `[tsa] http_access =
//! "authenticated"` that is the only way to a time-stamp.

use super::limits::{http_limits, RequestLimits};
use crate::access::{AccessError, Client, PolicyInForce};
use crate::ca::{CaId, CertificateAuthority};
use crate::config::HttpAccess;
use crate::log::{LogError, TransparencyLog};
use crate::ocsp::OcspResponder;
use crate::store::Role;
use crate::tls::Peer;
use crate::tsa::TimeStampAuthority;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use std::sync::Arc;

/// What the HTTP handlers need.
#[derive(Clone)]
pub struct HttpState {
    pub ca: Arc<CertificateAuthority>,
    pub tsa: Arc<TimeStampAuthority>,
    pub ocsp: Arc<OcspResponder>,
    /// What `/readyz` reports: the health watcher's last probe.
    pub readiness: crate::health::Latest,
    /// `None` when the log is disabled: `/log/…` is then 404.
    pub log: Option<Arc<TransparencyLog>>,
    /// Who the TSA serves over HTTP.
    pub tsa_access: HttpAccess,
    /// Who may read `/readyz` and `/metrics`.
    pub readyz_access: HttpAccess,
    /// Each service certificate's key role and notAfter (Unix seconds), for `/metrics`.
    pub service_certificates: crate::health::ServiceCertificates,
    /// Rolled-over keys not in service here yet, for `/readyz`.
    pub pending_rollovers: crate::health::PendingRollovers,
    /// How long before a service certificate expires `/readyz` says so (`[server] expiry_warning`).
    pub expiry_warning: std::time::Duration,
    /// The access policy, for clients naming themselves over HTTPS.
    pub access: Arc<PolicyInForce>,
    /// The CSC remote-signing API (`/csc/v1/`, `/csc/v2/`, over HTTPS).
    pub csc: Arc<crate::csc::Csc>,
    /// OAuth 2.0 access tokens: granted at the CSC API's `oauth2/token`, good on every HTTPS route.
    pub tokens: Arc<crate::oauth2::Tokens>,
}

/// The access policy's names of what an HTTP route does, whatever the transport: a role that
/// may call `TimeStamping/Timestamp` over gRPC may get time-stamps over HTTPS, and readiness is
/// what gRPC health tells every client of the policy.
const TIMESTAMP_RPC: &str = "/trust.v1.TimeStamping/Timestamp";
const READYZ_RPC: &str = "/grpc.health.v1.Health/Check";

/// The router for the plain-HTTP address; bodies over `max_body` bytes get 413; every request
/// is under `limits`.
pub fn router(state: HttpState, max_body: usize, limits: Arc<RequestLimits>) -> Router {
    let csc = post(|| async { only_over_https("CSC API calls") });
    routes(post(timestamp_plain), get(readyz_plain), get(metrics_plain), csc, state, max_body, limits)
}

/// The router for the HTTPS address: the same routes, where clients may name themselves.
pub fn https_router(state: HttpState, max_body: usize, limits: Arc<RequestLimits>) -> Router {
    let csc = post(super::csc::call);
    routes(post(timestamp_https), get(readyz_https), get(metrics_https), csc, state, max_body, limits)
}

fn routes(
    tsa: MethodRouter<Arc<HttpState>>,
    readyz: MethodRouter<Arc<HttpState>>,
    metrics: MethodRouter<Arc<HttpState>>,
    csc: MethodRouter<Arc<HttpState>>,
    state: HttpState,
    max_body: usize,
    limits: Arc<RequestLimits>,
) -> Router {
    Router::new()
        .route("/tsa", tsa)
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .route("/ca/{file}", get(ca_certificate))
        .route("/crl/{file}", get(crl))
        .route("/log/checkpoint", get(log_checkpoint))
        .route("/log/key", get(log_key))
        .route("/log/tile/{*path}", get(log_tile))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", readyz)
        .route("/metrics", metrics)
        .route("/csc/{version}/{*method}", csc)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(limits, http_limits))
        .layer(axum::middleware::from_fn(super::metrics::http_metrics))
        // axum clones the state for every request: one reference count, not one per service.
        .with_state(Arc::new(state))
}

/// RFC 3161 §3.4: `application/timestamp-query` in, `application/timestamp-reply` out, for
/// `requester` (empty: anonymous). Every request the TSA refuses still gets HTTP 200 with a
/// rejection TimeStampResp, as RFC 3161 clients expect; only a wrong media type (415), method
/// (405) or size (413) is an HTTP error.
async fn timestamp(s: &HttpState, headers: &HeaderMap, body: Bytes, requester: &str) -> Response {
    if media_type(headers).as_deref() != Some("application/timestamp-query") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/timestamp-query\n")
            .into_response();
    }
    // Nothing that cannot be recorded is signed: RFC 3161's own refusal, which clients report.
    if s.readiness.borrow().serving == Role::Standby {
        let der = crate::tsa::rejection(crate::tsa::Failure::SystemFailure, crate::store::READ_ONLY);
        return ([(header::CONTENT_TYPE, "application/timestamp-reply")], der).into_response();
    }
    // In a task of its own: a token issued is recorded and logged even if the deadline passes.
    let (tsa, who) = (s.tsa.clone(), requester.to_owned());
    let Some(outcome) = super::limits::to_completion(async move { tsa.timestamp(&body, &who).await }).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
    };
    if !requester.is_empty() {
        let (target, result) = match &outcome.result {
            Ok(granted) => (format!("time-stamp {}", granted.serial), "ok"),
            Err(refusal) => (format!("none: {}", refusal.failure.name()), "rejected"),
        };
        tracing::info!(
            audit = true,
            client = requester,
            rpc = "POST /tsa",
            key = "tsa",
            target,
            outcome = result,
            "operation"
        );
    }
    ([(header::CONTENT_TYPE, "application/timestamp-reply")], outcome.response_der).into_response()
}

/// `POST /tsa` over plain HTTP: anonymous (a peer's address names nobody), where the TSA is
/// public.
async fn timestamp_plain(State(s): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    match s.tsa_access {
        HttpAccess::Public => timestamp(&s, &headers, body, "").await,
        HttpAccess::Authenticated => only_over_https("time-stamps"),
    }
}

/// 403 on plain HTTP for a route that is for clients of the access policy.
fn only_over_https(what: &str) -> Response {
    let why = format!(
        "{what} are for authenticated clients: ask the HTTPS listener with a client certificate or an \
         Authorization: Bearer token\n"
    );
    (StatusCode::FORBIDDEN, why).into_response()
}

/// `POST /tsa` over HTTPS: for the client the request names (401 when it names no known one,
/// or none where the TSA is for authenticated clients; 403 when the client's roles do not
/// allow time-stamps), else anonymous.
async fn timestamp_https(
    State(s): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match https_client(&s, &peer, &headers, TIMESTAMP_RPC, s.tsa_access).await {
        Ok(client) => timestamp(&s, &headers, body, client.as_ref().map_or("", |c| c.name())).await,
        Err(e) => refused("POST /tsa", &peer, &headers, &e),
    }
}

/// The client an HTTPS request comes from, allowed to do `rpc`: by its bearer token if it sends
/// one (a static token of the access policy, or an OAuth 2.0 access token), else by its client certificate (verified in the handshake, and not revoked); `None`
/// (anonymous) when it sends neither and the route is public.
pub(super) async fn https_client(
    s: &HttpState,
    peer: &Peer,
    headers: &HeaderMap,
    rpc: &str,
    access: HttpAccess,
) -> Result<Option<Arc<Client>>, AccessError> {
    let policy = s.access.current();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AccessError::Unauthenticated("the Authorization header must be 'Bearer TOKEN'".into()))?;
        return match policy.authorize_bearer(token, rpc) {
            Err(AccessError::Unauthenticated(_)) => s.tokens.authorize(&policy, token, rpc).await,
            decided => decided,
        }
        .map(Some);
    }
    if peer.certificate.is_some() {
        return super::access::decide(&policy, Some(peer), rpc).await.map(Some);
    }
    match access {
        HttpAccess::Public => Ok(None),
        HttpAccess::Authenticated => {
            Err(AccessError::Unauthenticated("neither a client certificate nor a bearer token".into()))
        }
    }
}

/// The refusal of `route` over HTTPS, recorded: 401 with the RFC 6750 §3 challenge, or 403; the
/// body says why (never a secret).
pub(super) fn refused(route: &str, peer: &Peer, headers: &HeaderMap, e: &AccessError) -> Response {
    tracing::warn!(audit = true, rpc = route, remote = ?peer.remote, outcome = "refused", reason = %e, "access refused");
    match e {
        AccessError::Unauthenticated(_) => {
            let challenge = if headers.contains_key(header::AUTHORIZATION) {
                r#"Bearer realm="trustd", error="invalid_token""#
            } else {
                r#"Bearer realm="trustd""#
            };
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)], format!("{e}\n")).into_response()
        }
        AccessError::Denied { .. } => (StatusCode::FORBIDDEN, format!("{e}\n")).into_response(),
        AccessError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn ca_certificate(State(s): State<Arc<HttpState>>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".crt") else {
        return (StatusCode::NOT_FOUND, "CA certificates are at /ca/{name}.crt\n").into_response();
    };
    match CaId::from_name(name).and_then(|ca| s.ca.certificates().get(ca)) {
        Some(ca) => (
            [(header::CONTENT_TYPE, "application/pkix-cert"), (header::CACHE_CONTROL, "public, max-age=3600")],
            ca.der.clone(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no CA named '{name}'\n")).into_response(),
    }
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// How long an HTTP cache may keep a GET answer at most: a revocation shows within it.
const OCSP_MAX_AGE: u64 = 300;

/// The OCSP answer; over GET, a successful one is cacheable (RFC 5019 §6.2) for at most
/// [`OCSP_MAX_AGE`] and never past its nextUpdate; error statuses never.
fn ocsp_reply(answer: crate::ocsp::Answer, get: bool) -> Response {
    let max_age = match (get, answer.fresh_until) {
        (true, Some(until)) => until.saturating_sub(crate::unix_time::now()).min(OCSP_MAX_AGE),
        _ => 0,
    };
    let cache = if max_age > 0 { format!("public, max-age={max_age}, no-transform") } else { "no-store".to_owned() };
    ([(header::CONTENT_TYPE, "application/ocsp-response".to_owned()), (header::CACHE_CONTROL, cache)], answer.der)
        .into_response()
}

/// The longest `GET /ocsp/{request}` path taken: sixteen CertIDs (the most one request may
/// ask) in base64 stay far below it; RFC 5019 §5 asks clients to POST requests over 255 bytes.
const MAX_OCSP_GET: usize = 4096;

/// RFC 6960 Appendix A.1: POST `application/ocsp-request`, answered `application/ocsp-response`
/// (HTTP 200 also for malformedRequest and unauthorized, which are OCSP statuses).
async fn ocsp_post(State(s): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    if media_type(&headers).as_deref() != Some("application/ocsp-request") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/ocsp-request\n").into_response();
    }
    ocsp_reply(s.ocsp.respond(&body).await, false)
}

/// RFC 5019 §5 / RFC 6960 A.1: GET with the base64 DER request (URL-decoded by the router) as
/// the path; cacheable by HTTP caches.
async fn ocsp_get(State(s): State<Arc<HttpState>>, Path(request): Path<String>) -> Response {
    use base64::Engine;
    if request.len() > MAX_OCSP_GET {
        return (
            StatusCode::URI_TOO_LONG,
            format!("OCSP GET requests are at most {MAX_OCSP_GET} bytes; POST larger ones\n"),
        )
            .into_response();
    }
    match base64::engine::general_purpose::STANDARD.decode(request.trim_start_matches('/')) {
        Ok(der) => ocsp_reply(s.ocsp.respond(&der).await, true),
        Err(_) => ocsp_reply(crate::ocsp::malformed(), false),
    }
}

/// RFC 5280 §4.2.1.13 distribution point: the current full CRL, DER (`application/pkix-crl`,
/// RFC 2585 §4.2).
async fn crl(State(s): State<Arc<HttpState>>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".crl") else {
        return (StatusCode::NOT_FOUND, "CRLs are at /crl/{name}.crl\n").into_response();
    };
    match CaId::from_name(name).filter(|ca| s.ca.chain(*ca).is_some()).map(|ca| s.ca.crl(ca)) {
        Some(Some(der)) => (
            [(header::CONTENT_TYPE, "application/pkix-crl"), (header::CACHE_CONTROL, "public, max-age=60")],
            der.to_vec(),
        )
            .into_response(),
        Some(None) => (StatusCode::SERVICE_UNAVAILABLE, "no CRL published yet\n").into_response(),
        None => (StatusCode::NOT_FOUND, format!("no CRL for '{name}'\n")).into_response(),
    }
}

fn no_log() -> Response {
    (StatusCode::NOT_FOUND, "the issued-certificate log is not enabled here\n").into_response()
}

/// C2SP tlog-tiles `<prefix>/checkpoint`: the latest signed checkpoint (a C2SP signed note),
/// the newest any replica recorded. It changes at most every second and must not be cached.
async fn log_checkpoint(State(s): State<Arc<HttpState>>) -> Response {
    let Some(log) = &s.log else { return no_log() };
    let note = log.current().await.note.clone();
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], note).into_response()
}

/// The log's C2SP signed-note verifier key (its newest, after a rollover), one line. A
/// convenience for setting up an auditor: auditors must compare it with the key they were given
/// out of band, never trust it as such. Cached briefly: a rollover changes it.
async fn log_key(State(s): State<Arc<HttpState>>) -> Response {
    let Some(log) = &s.log else { return no_log() };
    let vkey = format!("{}\n", log.public_key().vkey());
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=60")], vkey)
        .into_response()
}

/// C2SP tlog-tiles `<prefix>/tile/<L>/<N>[.p/<W>]` and `<prefix>/tile/entries/<N>[.p/<W>]`. Full
/// tiles never change: cacheable forever. A partial tile's bytes do not change either, but the
/// log may stop serving it once the full tile exists, so caches keep it briefly.
async fn log_tile(State(s): State<Arc<HttpState>>, Path(path): Path<String>) -> Response {
    let Some(log) = &s.log else { return no_log() };
    match log.tile(&format!("tile/{path}")).await {
        Ok(t) => {
            let cache = if t.full { "public, max-age=31536000, immutable" } else { "public, max-age=60" };
            ([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, cache)], t.bytes)
                .into_response()
        }
        Err(e @ (LogError::BadTilePath(_) | LogError::TileNotInTree(..))) => {
            (StatusCode::NOT_FOUND, format!("{e}\n")).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, path, "log tile could not be served");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
    }
}

/// 200 when the HSM answers, the store is writable and the clock (if checked) is synchronised;
/// 503 otherwise. The body names each dependency's state.
async fn readyz_plain(State(s): State<Arc<HttpState>>) -> Response {
    operational_plain(&s, "readiness reports", readyz)
}

async fn readyz_https(
    State(s): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    operational_https(&s, &peer, &headers, "GET /readyz", readyz).await
}

async fn metrics_plain(State(s): State<Arc<HttpState>>) -> Response {
    operational_plain(&s, "metrics", metrics)
}

async fn metrics_https(
    State(s): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    operational_https(&s, &peer, &headers, "GET /metrics", metrics).await
}

/// A report of the daemon's own state (`/readyz`, `/metrics`) over plain HTTP: served when
/// `[server] readyz_access` is public, else only over HTTPS.
fn operational_plain(s: &HttpState, what: &str, report: fn(&HttpState) -> Response) -> Response {
    match s.readyz_access {
        HttpAccess::Public => report(s),
        HttpAccess::Authenticated => only_over_https(what),
    }
}

/// The same report over HTTPS, where the client may name itself: the access policy's check for
/// gRPC health when `readyz_access` is authenticated.
async fn operational_https(
    s: &HttpState,
    peer: &Peer,
    headers: &HeaderMap,
    route: &str,
    report: fn(&HttpState) -> Response,
) -> Response {
    match https_client(s, peer, headers, READYZ_RPC, s.readyz_access).await {
        Ok(_) => report(s),
        Err(e) => refused(route, peer, headers, &e),
    }
}

/// Prometheus's scrape: the OpenMetrics text format (Prometheus asks for it by this type).
fn metrics(s: &HttpState) -> Response {
    let r = *s.readiness.borrow();
    let mut ready = vec![("hsm", r.hsm), ("store", r.store_ok())];
    if let Some(clock) = r.clock {
        ready.push(("clock", clock));
    }
    let crls: Vec<_> =
        s.ca.crl_issuers()
            .into_iter()
            .filter_map(|ca| s.ca.crl_times(ca).map(|(this, next)| (ca.name(), this, next)))
            .collect();
    let expiry = s.service_certificates.snapshot();
    let scraped = crate::metrics::Scraped {
        unix_now: crate::unix_time::secs(std::time::SystemTime::now()) as f64,
        ready: &ready,
        log: s.log.as_ref().map(|l| {
            let latest = l.checkpoint();
            (latest.checkpoint.size().0, l.awaiting_checkpoint(), latest.signed_at.elapsed())
        }),
        crls: &crls,
        expiry: &expiry,
        role: r.serving,
    };
    match crate::metrics::global().encode(scraped) {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => {
            let incident = crate::incident::Incident::record("metrics", &e);
            (StatusCode::INTERNAL_SERVER_ERROR, format!("internal error ({incident})\n")).into_response()
        }
    }
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn readyz(s: &HttpState) -> Response {
    let r = *s.readiness.borrow();
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let clock = match r.clock {
        None => "not checked",
        Some(true) => "synchronised",
        Some(false) => "unsynchronised",
    };
    let mut body =
        format!("hsm: {}\nstore: {}\nrole: {}\nclock: {clock}\n", word(r.hsm), r.store_state(), r.serving.name());
    // A certificate near its end is a warning, not unreadiness: the service still works.
    let now = crate::unix_time::now();
    let soon = crate::health::expiring(&s.service_certificates.snapshot(), now, s.expiry_warning);
    match soon.is_empty() {
        true => body.push_str("certificates: ok\n"),
        false => body.extend(soon.iter().map(|e| format!("certificates: {e}\n"))),
    }
    body.push_str(&s.pending_rollovers.readyz_lines());
    match crate::health::root_crl_due(s.ca.crl_times(CaId::Root), now, s.expiry_warning) {
        None => body.push_str("root crl: ok\n"),
        Some(due) => body.push_str(&format!("root crl: {due}\n")),
    }
    let code = if r.ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, body).into_response()
}
