//! What Prometheus scrapes from `GET /metrics` (the OpenMetrics text format, which Prometheus
//! reads): requests, failures and latency per gRPC method and HTTP route, HSM signatures and
//! sessions, the
//! group-commit writers' batches (records, time, what waits), and,
//! read when scraped, readiness, the log's size and the entries no checkpoint covers yet, each
//! CRL's age and the seconds to its nextUpdate, and the seconds until each service certificate
//! expires.
//!
//! The counters and histograms are process-wide (`global()`): the API layers and the HSM count
//! into them where the work passes, so no core knows of metrics.

use crate::store::Role;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// A request: its API (`grpc` or `http`), the gRPC method's path or the HTTP route's pattern,
/// and its outcome (the gRPC status code name, or the HTTP status).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub api: &'static str,
    pub method: Cow<'static, str>,
    pub code: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    api: &'static str,
    method: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CaLabels {
    ca: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    state: &'static str,
}

/// Reads the HSM's sessions (open, in use, most) when scraped; set by whoever holds the HSM.
type SessionReader = Box<dyn Fn() -> (usize, usize, usize) + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriterLabels {
    writer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    lease: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: &'static str,
}

/// Latency buckets from 0.1 ms to about 6.5 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 17)
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
    hsm_operations: Family<ResultLabels, Counter>,
    hsm_latency: Histogram,
    hsm_sessions: Family<SessionLabels, Gauge>,
    session_reader: std::sync::OnceLock<SessionReader>,
    batch_size: Family<WriterLabels, Histogram>,
    batch_latency: Family<WriterLabels, Histogram>,
    queue_depth: Family<WriterLabels, Gauge>,
    ready: Family<DependencyLabels, Gauge>,
    replica_role: Family<ReplicaLabels, Gauge>,
    lease_held: Family<LeaseLabels, Gauge>,
    store_probe: Gauge<f64, AtomicU64>,
    log_size: Gauge,
    log_awaiting: Gauge,
    checkpoint_age: Gauge<f64, AtomicU64>,
    crl_age: Family<CaLabels, Gauge<f64, AtomicU64>>,
    crl_next_update: Family<CaLabels, Gauge<f64, AtomicU64>>,
    expiry: Family<RoleLabels, Gauge<f64, AtomicU64>>,
    key_generation: Family<RoleLabels, Gauge>,
    key_pending: Family<RoleLabels, Gauge>,
    /// Encoding is rare (a scrape) and reads the gauges just set: one at a time.
    scrape: Mutex<()>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("trustd");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests answered, by API, method or route, and outcome", requests.clone());
        let latency = Family::<MethodLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(latency_buckets())) as fn() -> Histogram,
        );
        registry.register("request_duration_seconds", "Time to answer a request", latency.clone());
        let hsm_operations = Family::<ResultLabels, Counter>::default();
        registry.register("hsm_operations", "Signatures through the HSM, by result", hsm_operations.clone());
        let hsm_latency = Histogram::new(latency_buckets());
        registry.register(
            "hsm_operation_duration_seconds",
            "Time from queuing a signature for the HSM to its result",
            hsm_latency.clone(),
        );
        let hsm_sessions = Family::<SessionLabels, Gauge>::default();
        registry.register(
            "hsm_sessions",
            "PKCS#11 sessions: in_use (leased to an operation), open (in use or idle) and max (the pool's bound)",
            hsm_sessions.clone(),
        );
        let batch_size = Family::<WriterLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(1.0, 2.0, 10))) as fn() -> Histogram,
        );
        registry.register(
            "store_batch_records",
            "Records written in one group-commit transaction, by writer (log, timestamps, signatures, pending-certificates)",
            batch_size.clone(),
        );
        let batch_latency = Family::<WriterLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(latency_buckets())) as fn() -> Histogram,
        );
        registry.register(
            "store_batch_duration_seconds",
            "Time to write one group-commit transaction and answer its callers, by writer",
            batch_latency.clone(),
        );
        let queue_depth = Family::<WriterLabels, Gauge>::default();
        registry.register(
            "store_queue_depth",
            "Records still waiting for a group-commit writer when it took its last batch",
            queue_depth.clone(),
        );
        let ready = Family::<DependencyLabels, Gauge>::default();
        registry.register("ready", "1 while a dependency works (hsm, store, clock), else 0", ready.clone());
        let replica_role = Family::<ReplicaLabels, Gauge>::default();
        registry.register(
            "replica_role",
            "1 for what this daemon serves as: primary (every request) or standby (reads of a read-only database)",
            replica_role.clone(),
        );
        let lease_held = Family::<LeaseLabels, Gauge>::default();
        registry.register(
            "lease_held",
            "1 while this daemon holds the lease (publisher: CRLs on their schedule and the log's checkpoints, for every replica of the database)",
            lease_held.clone(),
        );
        let store_probe = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "store_probe_seconds",
            "Round trip of the readiness probe's query to the store, every 5 s: the database's latency as this daemon sees it",
            store_probe.clone(),
        );
        let log_size = Gauge::default();
        registry.register(
            "log_tree_size",
            "Entries in the issued-certificate log's latest checkpoint",
            log_size.clone(),
        );
        let log_awaiting = Gauge::default();
        registry.register(
            "log_entries_awaiting_checkpoint",
            "Entries sequenced into the log that no signed checkpoint covers yet",
            log_awaiting.clone(),
        );
        let checkpoint_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "log_checkpoint_age_seconds",
            "Seconds since the log's latest checkpoint was signed (one is signed within a second of new entries)",
            checkpoint_age.clone(),
        );
        let crl_age = Family::<CaLabels, Gauge<f64, AtomicU64>>::default();
        registry.register("crl_age_seconds", "Seconds since the current CRL's thisUpdate", crl_age.clone());
        let crl_next_update = Family::<CaLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "crl_next_update_seconds",
            "Seconds until the current CRL's nextUpdate (negative: relying parties hold a stale CRL)",
            crl_next_update.clone(),
        );
        let expiry = Family::<RoleLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "certificate_expiry_seconds",
            "Seconds until a service certificate's notAfter (negative once expired), by key role",
            expiry.clone(),
        );
        let key_generation = Family::<RoleLabels, Gauge>::default();
        registry.register(
            "service_key_generation",
            "The generation of each service key this daemon signs with (1: the key ceremony's; each trustd rollover \
             adds one)",
            key_generation.clone(),
        );
        let key_pending = Family::<RoleLabels, Gauge>::default();
        registry.register(
            "service_key_rollover_pending",
            "1 while a newer generation of the key in the store cannot be taken into service here (the log says why)",
            key_pending.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            hsm_operations,
            hsm_latency,
            hsm_sessions,
            session_reader: std::sync::OnceLock::new(),
            batch_size,
            batch_latency,
            queue_depth,
            ready,
            replica_role,
            lease_held,
            store_probe,
            log_size,
            log_awaiting,
            checkpoint_age,
            crl_age,
            crl_next_update,
            expiry,
            key_generation,
            key_pending,
            scrape: Mutex::new(()),
        }
    }

    /// Counts an answered request and its latency.
    pub fn request(&self, labels: RequestLabels, took: Duration) {
        let method = MethodLabels { api: labels.api, method: labels.method.clone() };
        self.latency.get_or_create(&method).observe(took.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }

    /// The generation of `role`'s key this daemon signs with, and whether a newer one is waiting
    /// to be taken into service.
    pub fn service_key(&self, role: &str, generation: u32, pending: bool) {
        let labels = RoleLabels { role: role.to_owned() };
        self.key_generation.get_or_create(&labels).set(i64::from(generation));
        self.key_pending.get_or_create(&labels).set(i64::from(pending));
    }

    /// Counts a signature through the HSM, `ok` or not, and how long it took from being queued.
    pub fn hsm_operation(&self, ok: bool, took: Duration) {
        self.hsm_operations.get_or_create(&ResultLabels { result: if ok { "ok" } else { "error" } }).inc();
        self.hsm_latency.observe(took.as_secs_f64());
    }

    /// Where scrapes read the HSM's sessions from (the first reader set stays).
    pub fn read_hsm_sessions_with(&self, reader: SessionReader) {
        let _ = self.session_reader.set(reader);
    }

    /// A group-commit writer took a batch of `records`, leaving `waiting` queued.
    pub fn batch_taken(&self, writer: &'static str, records: usize, waiting: usize) {
        let labels = WriterLabels { writer };
        self.batch_size.get_or_create(&labels).observe(records as f64);
        self.queue_depth.get_or_create(&labels).set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }

    /// A group-commit writer finished its batch in `took`.
    pub fn batch_done(&self, writer: &'static str, took: Duration) {
        self.batch_latency.get_or_create(&WriterLabels { writer }).observe(took.as_secs_f64());
    }

    /// Whether this daemon holds lease `lease` now.
    pub fn lease(&self, lease: &'static str, held: bool) {
        self.lease_held.get_or_create(&LeaseLabels { lease }).set(i64::from(held));
    }

    /// The readiness probe's query to the store took `took`.
    pub fn store_probed(&self, took: Duration) {
        self.store_probe.set(took.as_secs_f64());
    }

    /// The OpenMetrics text of everything, after setting what is read at scrape time.
    pub fn encode(&self, now: Scraped<'_>) -> Result<String, std::fmt::Error> {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        for (dependency, ok) in now.ready {
            self.ready.get_or_create(&DependencyLabels { dependency }).set(i64::from(*ok));
        }
        for role in [Role::Primary, Role::Standby] {
            self.replica_role.get_or_create(&ReplicaLabels { role: role.name() }).set(i64::from(role == now.role));
        }
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        if let Some(read) = self.session_reader.get() {
            let (open, in_use, max) = read();
            for (state, n) in [("open", open), ("in_use", in_use), ("max", max)] {
                self.hsm_sessions.get_or_create(&SessionLabels { state }).set(gauge(n as u64));
            }
        }
        if let Some((size, awaiting, age)) = now.log {
            self.log_size.set(gauge(size));
            self.log_awaiting.set(gauge(awaiting));
            self.checkpoint_age.set(age.as_secs_f64());
        }
        let since = |t: u64| now.unix_now - t as f64;
        for (ca, this_update, next_update) in now.crls {
            let labels = CaLabels { ca: ca.clone() };
            self.crl_age.get_or_create(&labels).set(since(*this_update));
            self.crl_next_update.get_or_create(&labels).set(-since(*next_update));
        }
        for (role, not_after) in now.expiry {
            self.expiry.get_or_create(&RoleLabels { role: role.clone() }).set(-since(*not_after));
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// What a scrape reads from the running daemon; times in Unix seconds.
pub struct Scraped<'a> {
    pub unix_now: f64,
    /// Each dependency of readiness and whether it works.
    pub ready: &'a [(&'static str, bool)],
    /// The log's checkpoint size, the entries awaiting a checkpoint and the checkpoint's age,
    /// when the log is on.
    pub log: Option<(u64, u64, Duration)>,
    /// Each CA's current CRL: its name, thisUpdate and nextUpdate.
    pub crls: &'a [(String, u64, u64)],
    /// Each service certificate's key role and notAfter.
    pub expiry: &'a [(String, u64)],
    /// What the daemon serves as.
    pub role: Role,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_encodes_what_prometheus_reads() {
        let m = Metrics::new();
        let labels = |code: &'static str| RequestLabels {
            api: "grpc",
            method: "TimeStamping/Timestamp".into(),
            code: code.into(),
        };
        m.request(labels("OK"), Duration::from_millis(3));
        m.request(labels("OK"), Duration::from_millis(5));
        m.request(labels("InvalidArgument"), Duration::from_micros(50));
        m.hsm_operation(true, Duration::from_micros(80));
        m.batch_taken("log", 40, 7);
        m.read_hsm_sessions_with(Box::new(|| (5, 2, 8)));
        m.batch_done("log", Duration::from_millis(2));
        m.store_probed(Duration::from_millis(250));
        let text = m
            .encode(Scraped {
                unix_now: 1_000_000.0,
                ready: &[("hsm", true), ("store", false)],
                log: Some((42, 3, Duration::from_millis(1500))),
                crls: &[("issuing".into(), 999_400, 1_086_400)],
                expiry: &[("tsa".into(), 1_086_400), ("root".into(), 999_999)],
                role: Role::Standby,
            })
            .unwrap();
        for line in [
            "trustd_requests_total{api=\"grpc\",method=\"TimeStamping/Timestamp\",code=\"OK\"} 2",
            "trustd_requests_total{api=\"grpc\",method=\"TimeStamping/Timestamp\",code=\"InvalidArgument\"} 1",
            "trustd_request_duration_seconds_count{api=\"grpc\",method=\"TimeStamping/Timestamp\"} 3",
            "trustd_hsm_operations_total{result=\"ok\"} 1",
            "trustd_store_batch_records_sum{writer=\"log\"} 40.0",
            "trustd_store_batch_duration_seconds_count{writer=\"log\"} 1",
            "trustd_store_queue_depth{writer=\"log\"} 7",
            "trustd_hsm_sessions{state=\"in_use\"} 2",
            "trustd_hsm_sessions{state=\"max\"} 8",
            "trustd_ready{dependency=\"hsm\"} 1",
            "trustd_ready{dependency=\"store\"} 0",
            "trustd_replica_role{role=\"standby\"} 1",
            "trustd_replica_role{role=\"primary\"} 0",
            "trustd_store_probe_seconds 0.25",
            "trustd_log_tree_size 42",
            "trustd_log_entries_awaiting_checkpoint 3",
            "trustd_log_checkpoint_age_seconds 1.5",
            "trustd_crl_age_seconds{ca=\"issuing\"} 600.0",
            "trustd_crl_next_update_seconds{ca=\"issuing\"} 86400.0",
            "trustd_certificate_expiry_seconds{role=\"tsa\"} 86400.0",
            "trustd_certificate_expiry_seconds{role=\"root\"} -1.0",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
