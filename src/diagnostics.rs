//! Operator diagnostics: how fast the HSM signs with a service key when nothing else is done
//! (the ceiling every service's throughput is read against), how long the store's disk takes to
//! make a write durable (what every record waits for), and the daemon's own resource use.
//! Knows nothing of gRPC; `api::grpc` exposes it as `trust.v1.Diagnostics`.

use crate::keys::{KeyError, SigningKey};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a measurement signs. Fixed and domain-separated: it is no TBSCertificate, CRL, OCSP
/// response, CMS attribute set, TSTInfo or checkpoint, so a signature over it speaks for
/// nothing, and none leaves the daemon.
pub const MEASURED_MESSAGE: &[u8] = b"trustd diagnostics: HSM signing-rate measurement; signs nothing";

/// The shortest and longest measurement: long enough to mean something, short enough not to
/// hold the HSM from live traffic for long.
pub const DURATION_RANGE: std::ops::RangeInclusive<Duration> = Duration::from_millis(100)..=Duration::from_secs(10);

/// The most signatures a measurement keeps in flight.
pub const MAX_CONCURRENCY: usize = 256;

/// What a sync measurement writes before each fdatasync: about what one certificate adds to
/// SQLite's WAL (twelve 4 KiB pages).
pub const SYNC_WRITE_BYTES: usize = 48 * 1024;

/// Syncs timed back to back, and after a pause of [`SYNC_IDLE`].
const SYNC_SAMPLES: usize = 40;

/// The pause before each of the second set of syncs: some disks (virtual machines' among them)
/// take far longer to sync after a pause, which a lone request's record always follows.
const SYNC_IDLE: Duration = Duration::from_millis(1);

/// A key trustd signs with as a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKey {
    IssuingCa,
    Tsa,
    Ocsp,
    DocumentSigner,
    Log,
}

impl ServiceKey {
    /// The key's role as the log's key events and the audit records name it.
    pub fn role(self) -> &'static str {
        match self {
            Self::IssuingCa => "issuing",
            Self::Tsa => "tsa",
            Self::Ocsp => "ocsp",
            Self::DocumentSigner => "document-signer",
            Self::Log => "log",
        }
    }

    /// The key's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::IssuingCa => "issuing CA",
            Self::Tsa => "TSA",
            Self::Ocsp => "OCSP",
            Self::DocumentSigner => "document signer",
            Self::Log => "log",
        }
    }
}

/// Why a diagnostic was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DiagnosticsError {
    #[error("duration {0:?} is outside 100 ms to 10 s")]
    BadDuration(Duration),
    #[error("concurrency {0} is outside 1 to {MAX_CONCURRENCY}")]
    BadConcurrency(usize),
    #[error("no service key named")]
    NoKey,
    #[error("the {} key is not in service on this daemon", .0.name())]
    NotInService(ServiceKey),
    #[error("another measurement is running; one runs at a time")]
    Busy,
    #[error("the store is PostgreSQL: its records are made durable on the database server's disk, measure it there")]
    NoStoreDisk,
    #[error("measuring the store's disk: {0}")]
    Disk(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A measured signing rate.
#[derive(Clone, Copy, Debug)]
pub struct SigningRate {
    pub signatures: u64,
    pub elapsed: Duration,
    pub concurrency: usize,
}

/// How long the store's disk took to make a write durable: medians of [`SyncLatency::samples`]
/// writes of [`SYNC_WRITE_BYTES`], each followed by fdatasync.
#[derive(Clone, Copy, Debug)]
pub struct SyncLatency {
    pub back_to_back: Duration,
    pub after_idle: Duration,
    pub samples: usize,
}

/// The daemon's resource use.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessStats {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub cpu_time: Duration,
}

/// The service keys a daemon signs with, for measuring.
pub struct Diagnostics {
    /// Replaced one by one as keys roll over ([`Diagnostics::replace`]).
    keys: std::sync::RwLock<Vec<(ServiceKey, Arc<dyn SigningKey>)>>,
    hsm_sessions: usize,
    /// The directory of the embedded store's database; none for PostgreSQL.
    store_dir: Option<PathBuf>,
    running: tokio::sync::Mutex<()>,
}

impl Diagnostics {
    /// `hsm_sessions`: how many signatures the HSM takes at once, the default concurrency;
    /// `store_dir`: the directory of the embedded store's database file.
    pub fn new(hsm_sessions: usize, store_dir: Option<PathBuf>) -> Self {
        Diagnostics {
            keys: Default::default(),
            hsm_sessions: hsm_sessions.max(1),
            store_dir,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Measures how long the store's disk takes to make a write durable ([`measure_sync`] in the
    /// database's directory).
    pub async fn measure_store_sync(&self) -> Result<SyncLatency, DiagnosticsError> {
        let dir = self.store_dir.clone().ok_or(DiagnosticsError::NoStoreDisk)?;
        let _only = self.running.try_lock().map_err(|_| DiagnosticsError::Busy)?;
        tokio::task::spawn_blocking(move || measure_sync(&dir))
            .await
            .map_err(|e| DiagnosticsError::Disk(e.to_string()))?
            .map_err(|e| DiagnosticsError::Disk(e.to_string()))
    }

    /// Measures `key` for `which` from now on (at start, and when a key rolls over).
    pub fn replace(&self, which: ServiceKey, key: Arc<dyn SigningKey>) {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.retain(|(k, _)| *k != which);
        keys.push((which, key));
    }

    pub fn hsm_sessions(&self) -> usize {
        self.hsm_sessions
    }

    /// The scheme of a key in service.
    pub fn scheme(&self, which: ServiceKey) -> Option<crate::keys::SignatureScheme> {
        self.key(which).map(|k| k.scheme())
    }

    fn key(&self, which: ServiceKey) -> Option<Arc<dyn SigningKey>> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.iter().find(|(k, _)| *k == which).map(|(_, key)| key.clone())
    }

    /// Signs [`MEASURED_MESSAGE`] with `which` for `duration`, `concurrency` signatures in flight
    /// (the HSM's session count when `None`). The first failure ends the measurement.
    pub async fn measure(
        &self,
        which: ServiceKey,
        duration: Duration,
        concurrency: Option<usize>,
    ) -> Result<SigningRate, DiagnosticsError> {
        if !DURATION_RANGE.contains(&duration) {
            return Err(DiagnosticsError::BadDuration(duration));
        }
        let concurrency = concurrency.unwrap_or(self.hsm_sessions);
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(DiagnosticsError::BadConcurrency(concurrency));
        }
        let key = self.key(which).ok_or(DiagnosticsError::NotInService(which))?;
        let _only = self.running.try_lock().map_err(|_| DiagnosticsError::Busy)?;
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let key = key.clone();
            tasks.spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    key.sign(MEASURED_MESSAGE).await?;
                    n += 1;
                }
                Ok::<u64, KeyError>(n)
            });
        }
        let mut signatures = 0;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(n)) => signatures += n,
                Ok(Err(e)) => return Err(e.into()),
                Err(e) => return Err(KeyError::Failed(format!("measurement task: {e}")).into()),
            }
        }
        Ok(SigningRate { signatures, elapsed: start.elapsed(), concurrency })
    }
}

/// Times writes of [`SYNC_WRITE_BYTES`], each followed by fdatasync, into a scratch file in
/// `dir` (removed afterwards): [`SYNC_SAMPLES`] back to back, then as many after a pause of
/// [`SYNC_IDLE`]. Overwrites within a file written and synced first, as SQLite's WAL is reused,
/// so that no sync has to record the file growing.
pub fn measure_sync(dir: &Path) -> std::io::Result<SyncLatency> {
    use std::os::unix::fs::FileExt;
    /// Removes the scratch file however the measurement ends.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let scratch = Scratch(dir.join(format!(".trustd-sync-measurement-{}", std::process::id())));
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&scratch.0)?;
    // Not zeros, which some storage compresses or skips.
    let block: Vec<u8> = (0..SYNC_WRITE_BYTES).map(|i| (i % 251) as u8 + 1).collect();
    let slots = 16u64;
    for slot in 0..slots {
        file.write_all_at(&block, slot * SYNC_WRITE_BYTES as u64)?;
    }
    file.sync_all()?;
    let timed = |pause: Duration| -> std::io::Result<Duration> {
        let mut took = Vec::with_capacity(SYNC_SAMPLES);
        for i in 0..SYNC_SAMPLES as u64 {
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let start = Instant::now();
            file.write_all_at(&block, (i % slots) * SYNC_WRITE_BYTES as u64)?;
            file.sync_data()?;
            took.push(start.elapsed());
        }
        took.sort();
        Ok(took[took.len() / 2])
    };
    let back_to_back = timed(Duration::ZERO)?;
    let after_idle = timed(SYNC_IDLE)?;
    Ok(SyncLatency { back_to_back, after_idle, samples: SYNC_SAMPLES })
}

/// This process's resource use: CPU time from getrusage(2); RSS now and at its peak from
/// /proc/self/status (VmRSS, VmHWM), the peak from getrusage where there is no /proc.
pub fn process_stats() -> ProcessStats {
    // SAFETY: getrusage writes only into the struct it is given.
    let usage = unsafe {
        let mut u = std::mem::zeroed::<libc::rusage>();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return ProcessStats::default();
        }
        u
    };
    let micros = |t: libc::timeval| t.tv_sec.max(0) as u64 * 1_000_000 + t.tv_usec.max(0) as u64;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        let v = status.lines().find_map(|l| l.strip_prefix(field))?;
        v.trim().trim_end_matches("kB").trim().parse::<u64>().ok().map(|k| k * 1024)
    };
    let rss_bytes = kib("VmRSS:").unwrap_or(0);
    // ru_maxrss is in KiB on Linux; the kernel updates it less often than VmHWM.
    let peak_rss_bytes = kib("VmHWM:").unwrap_or(usage.ru_maxrss.max(0) as u64 * 1024).max(rss_bytes);
    ProcessStats {
        rss_bytes,
        peak_rss_bytes,
        cpu_time: Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::software::SoftwareKey;

    fn diagnostics() -> Diagnostics {
        let d = Diagnostics::new(2, None);
        d.replace(ServiceKey::Tsa, Arc::new(SoftwareKey::p256(1)));
        d
    }

    #[tokio::test]
    async fn measures_a_key_in_service_and_refuses_what_is_out_of_range() {
        let d = diagnostics();
        let rate = d.measure(ServiceKey::Tsa, Duration::from_millis(100), None).await.expect("measured");
        assert_eq!(rate.concurrency, 2);
        assert!(rate.signatures > 0 && rate.elapsed >= Duration::from_millis(100), "{rate:?}");

        for (duration, concurrency) in [
            (Duration::from_millis(99), None),
            (Duration::from_millis(10_001), None),
            (Duration::ZERO, None),
            (Duration::from_secs(1), Some(0)),
            (Duration::from_secs(1), Some(MAX_CONCURRENCY + 1)),
            (Duration::from_secs(1), Some(usize::MAX)),
        ] {
            let e = d.measure(ServiceKey::Tsa, duration, concurrency).await.expect_err("refused");
            assert!(matches!(e, DiagnosticsError::BadDuration(_) | DiagnosticsError::BadConcurrency(_)), "{e}");
        }
        let e = d.measure(ServiceKey::Log, Duration::from_secs(1), None).await.expect_err("not in service");
        assert_eq!(e.to_string(), "the log key is not in service on this daemon");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_measurement_at_a_time() {
        let d = Arc::new(diagnostics());
        let first = tokio::spawn({
            let d = d.clone();
            async move { d.measure(ServiceKey::Tsa, Duration::from_millis(500), Some(1)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let e = d.measure(ServiceKey::Tsa, Duration::from_millis(100), Some(1)).await.expect_err("busy");
        assert!(matches!(e, DiagnosticsError::Busy), "{e}");
        assert!(first.await.expect("task").is_ok());
    }

    #[tokio::test]
    async fn times_syncs_in_the_stores_directory_and_leaves_nothing_there() {
        let dir = tempfile::tempdir().unwrap();
        let d = Diagnostics::new(2, Some(dir.path().to_owned()));
        let s = d.measure_store_sync().await.expect("measured");
        assert_eq!(s.samples, SYNC_SAMPLES);
        assert!(s.back_to_back > Duration::ZERO && s.after_idle > Duration::ZERO, "{s:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the scratch file is gone");

        let gone = Diagnostics::new(2, Some(dir.path().join("no such directory")));
        assert!(matches!(gone.measure_store_sync().await, Err(DiagnosticsError::Disk(_))));
        let e = diagnostics().measure_store_sync().await.expect_err("no embedded store");
        assert!(matches!(e, DiagnosticsError::NoStoreDisk), "{e}");
    }

    #[test]
    fn reads_its_own_resource_use() {
        let s = process_stats();
        assert!(s.peak_rss_bytes >= s.rss_bytes && s.rss_bytes > 0, "{s:?}");
        assert!(s.cpu_time > Duration::ZERO);
    }
}
