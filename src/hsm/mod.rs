//! The only code that knows PKCS#11. Every private-key operation of trustd goes through here.
//!
//! One [`Hsm`] per token: the module is initialised once per process (several C_Initialize calls
//! in one process crash SoftHSM, rust-cryptoki #260), the user logs in once (login state is per
//! application, PKCS#11 v2.40 §5.6), and sessions are pooled because a `Session` must never be
//! used by two threads at once. A session that fails with a device-level error is dropped and
//! the pool reopens sessions on the next use; if the module itself stopped working, it is
//! finalised and initialised again (at most once per [`REINIT_INTERVAL`]). The daemon heals
//! without a restart; until then [`Hsm::is_ready`] reports false.
//!
//! Re-initialising quiesces first: every call into the module holds [`Inner::in_module`]
//! shared, and C_Finalize waits for it exclusively (PKCS#11 v3.0 §5.4: C_Finalize while other
//! threads are inside the library is undefined). Session and object handles are numbers the
//! module may hand out again after C_Initialize, so everything from before is tagged with the
//! module's [`Inner::generation`] and discarded, never used or closed by its stale handle: a
//! stale session handle could close another thread's new session, a stale key handle could sign
//! with another key.

mod capabilities;
mod certified;
mod key_copies;
mod keys;
mod signer;
mod token_info;

pub use crate::keys::KeyRef;
pub use crate::keys::SignatureScheme;
pub use keys::{KeyAlgorithm, KeyProtection};
pub use signer::{HsmSignature, HsmSigner, PublicKey};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

/// Errors of the HSM layer. Messages never contain a PIN.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("cannot load PKCS#11 module {path}: {source}")]
    Module { path: PathBuf, source: CkError },
    #[error("no initialised token labelled '{0}' in the PKCS#11 module")]
    TokenNotFound(String),
    #[error("no free slot to initialise token '{0}'")]
    NoFreeSlot(String),
    #[error("HSM login failed: {0}")]
    Login(CkError),
    #[error("HSM unavailable: {0}")]
    Unavailable(String),
    #[error("timed out waiting for a free HSM session")]
    Busy,
    #[error("the HSM has {MAX_WAITING_JOBS} operations waiting; retry shortly")]
    Saturated,
    #[error("key {0} not found in the token")]
    KeyNotFound(String),
    #[error("more than one key matches {0}")]
    KeyAmbiguous(String),
    #[error("an object matching {0} already exists in the token; refusing to overwrite it")]
    KeyExists(String),
    #[error("cannot create {0}: a new key needs a label (object= in the URI)")]
    NeedsLabel(String),
    #[error("key {key} cannot sign with {scheme}")]
    SchemeMismatch { key: String, scheme: String },
    #[error("PKCS#11: {0}")]
    Pkcs11(CkError),
    #[error("unexpected data from the HSM: {0}")]
    Encoding(String),
    #[error("no certificate for {0} in the token; run `trustd init`")]
    NoCertificate(String),
    #[error("certificate of {key} in the token: {reason}")]
    BadCertificate { key: String, reason: String },
    #[error("the token cannot {what}, which {key} needs (its PKCS#11 module does not offer it)")]
    Unsupported { what: String, key: String },
}

/// Where the HSM is and how to log in. The PIN is not part of it: see [`Pin`].
#[derive(Clone, Debug)]
pub struct HsmConfig {
    /// Path of the PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// CKA_LABEL of the token (`token=` in an RFC 7512 URI).
    pub token_label: String,
    /// Most sessions open at once; bounds concurrency against the device.
    pub max_sessions: usize,
    /// Sign with private session copies of the keys (see `key_copies`): for SoftHSM, whose
    /// token objects are files re-read before every use; pointless for a hardware token.
    pub session_key_copies: bool,
}

/// The user PIN. Held in a zeroizing secret so it can log in again after the device recovers;
/// its `Debug` is redacted, so it cannot end up in a log line.
pub struct Pin(AuthPin);

impl Pin {
    /// Wraps a PIN read from an environment variable or a file (trailing newline removed).
    pub fn new(mut s: String) -> Self {
        let trimmed = s.trim_end_matches(['\r', '\n']).to_owned();
        zeroize::Zeroize::zeroize(&mut s);
        Pin(AuthPin::from(trimmed))
    }
}

/// A token in a PKCS#11 module, with a pool of logged-in sessions. Cheap to clone.
#[derive(Clone)]
pub struct Hsm(Arc<Inner>);

struct Inner {
    ctx: Pkcs11,
    /// The module's path (its token information is read through it: `token_info`).
    module: PathBuf,
    /// The token's slot; a re-initialised module may number slots differently.
    slot: Mutex<Slot>,
    last_reinit: Mutex<Option<Instant>>,
    token_label: String,
    pin: AuthPin,
    pool: Mutex<PoolState>,
    freed: Condvar,
    max_sessions: usize,
    /// Queue of the HSM worker threads (see [`Hsm::run`]).
    jobs: flume::Sender<Job>,
    /// The worker threads, joined when the last handle goes.
    workers: Vec<std::thread::JoinHandle<()>>,
    ready: AtomicBool,
    /// Shared by every PKCS#11 call on a session, exclusive while re-initialising.
    in_module: RwLock<()>,
    /// How many times the module was re-initialised; changes only under `in_module` exclusive.
    generation: AtomicU64,
    /// Private key handles by the key's name, valid in the current generation only (cleared
    /// when re-initialising).
    private_keys: Mutex<HashMap<KeyRef, ObjectHandle>>,
    /// The token's mechanisms, read at open.
    capabilities: capabilities::Capabilities,
    /// `HsmConfig::session_key_copies`.
    session_key_copies: bool,
}

/// Blocking HSM work, run by a worker thread.
type Job = Box<dyn FnOnce() + Send>;

impl Drop for Inner {
    /// Stops the worker threads and waits until they have ended, before the module is finalised
    /// (the `ctx` field, dropped after this). A worker still ending when `main` returns runs its
    /// thread-exit handlers (OpenSSL's, loaded by SoftHSM) while `exit` tears the libraries
    /// down: a command that had done its work could die of a signal on its way out.
    fn drop(&mut self) {
        let (stopped, _) = flume::bounded(0);
        drop(std::mem::replace(&mut self.jobs, stopped));
        let this = std::thread::current().id();
        for worker in self.workers.drain(..) {
            // The last handle can go on a worker, with the job that held it; it ends on return.
            if worker.thread().id() != this {
                let _ = worker.join();
            }
        }
    }
}

struct PoolState {
    idle: Vec<Pooled>,
    /// Sessions idle or leased.
    open: usize,
}

/// A logged-in session and the module generation it was opened in. Opened "no drop": dropping
/// one never calls C_CloseSession; [`Hsm::close`] does, and only in its own generation.
struct Pooled {
    session: Session,
    generation: u64,
    /// The session's copies of the keys it signs with; they die with it.
    copies: key_copies::KeyCopies,
}

/// HSM operations that may wait for a worker; past them [`HsmError::Saturated`] at once. Far
/// above what `[limits] max_requests` lets requests queue (each waits for one operation at a
/// time), so only a device that stalls fills it.
pub const MAX_WAITING_JOBS: usize = 4096;

/// How long a caller waits for a session before the request fails with [`HsmError::Busy`].
const SESSION_WAIT: Duration = Duration::from_secs(30);

/// Least time between two re-initialisations of the module, so a dead device is not hammered.
pub const REINIT_INTERVAL: Duration = Duration::from_secs(10);

fn init_args() -> CInitializeArgs {
    CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)
}

/// Loads and initialises a module once per process and hands out clones of the context.
fn module(path: &Path) -> Result<Pkcs11, HsmError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = modules.get(path) {
        return Ok(ctx.clone());
    }
    let err = |source| HsmError::Module { path: path.to_owned(), source };
    let ctx = Pkcs11::new(path).map_err(err)?;
    ctx.initialize(init_args()).map_err(err)?;
    modules.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

fn find_slot(ctx: &Pkcs11, module: &Path, label: &str) -> Result<Option<Slot>, HsmError> {
    for slot in ctx.get_slots_with_token().map_err(HsmError::Pkcs11)? {
        let token = token_info::read(module, slot)?;
        if token.initialized && token.label == label {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

/// True for errors after which the session (or the whole device connection) is unusable.
fn is_session_fault(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::DeviceError
                | RvError::DeviceRemoved
                | RvError::DeviceMemory
                | RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::CryptokiNotInitialized
                | RvError::GeneralError,
            _
        )
    )
}

/// Errors a device gives when it forgot the login: private objects vanish from the session.
fn may_be_logged_out(e: &CkError) -> bool {
    matches!(e, CkError::Pkcs11(RvError::UserNotLoggedIn | RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _))
}

impl Hsm {
    /// Initialises an empty slot as a token with the given label and PINs, for `trustd dev`
    /// and tests. Production tokens are initialised by the HSM's own tooling.
    pub fn init_token(module_path: &Path, label: &str, so_pin: &Pin, user_pin: &Pin) -> Result<(), HsmError> {
        let ctx = module(module_path)?;
        if find_slot(&ctx, module_path, label)?.is_some() {
            return Ok(());
        }
        let mut free = None;
        for slot in ctx.get_slots_with_token().map_err(HsmError::Pkcs11)? {
            if !token_info::read(module_path, slot)?.initialized {
                free = Some(slot);
                break;
            }
        }
        let slot = free.ok_or_else(|| HsmError::NoFreeSlot(label.to_owned()))?;
        ctx.init_token(slot, &so_pin.0, label).map_err(HsmError::Pkcs11)?;
        // SoftHSM moves a freshly initialised token to a new slot ID: look it up again.
        let slot = find_slot(&ctx, module_path, label)?.ok_or_else(|| HsmError::TokenNotFound(label.to_owned()))?;
        let session = ctx.open_rw_session(slot).map_err(HsmError::Pkcs11)?;
        session.login(UserType::So, Some(&so_pin.0)).map_err(HsmError::Login)?;
        session.init_pin(&user_pin.0).map_err(HsmError::Pkcs11)?;
        session.logout().map_err(HsmError::Pkcs11)?;
        Ok(())
    }

    /// Opens the token named in `cfg` and logs in, failing fast on a wrong PIN. Starts one
    /// worker thread per session for [`Hsm::run`].
    pub fn open(cfg: &HsmConfig, pin: Pin) -> Result<Hsm, HsmError> {
        let ctx = module(&cfg.module)?;
        let slot = find_slot(&ctx, &cfg.module, &cfg.token_label)?
            .ok_or_else(|| HsmError::TokenNotFound(cfg.token_label.clone()))?;
        let capabilities = capabilities::Capabilities::read(&ctx, slot)?;
        let token = token_info::read(&cfg.module, slot)?;
        let mut max_sessions = cfg.max_sessions.max(1);
        if let Some(limit) = capabilities::session_limit(token.max_sessions, max_sessions) {
            tracing::warn!(
                token = %cfg.token_label,
                configured = max_sessions,
                allowed = limit,
                "the token allows fewer sessions than [hsm] max_sessions: the pool opens at most what it allows"
            );
            max_sessions = limit;
        }
        tracing::info!(token = %cfg.token_label, mechanisms = capabilities.len(), max_sessions, "HSM token opened");
        let (jobs, queue) = flume::bounded::<Job>(MAX_WAITING_JOBS);
        let mut workers = Vec::with_capacity(max_sessions);
        for i in 0..max_sessions {
            let queue = queue.clone();
            let worker = std::thread::Builder::new()
                .name(format!("hsm-{i}"))
                .spawn(move || {
                    // Ends when the last Hsm handle (the sender) is gone.
                    while let Ok(job) = queue.recv() {
                        // A panicking job drops its reply channel (the caller sees an error);
                        // the worker lives on.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .map_err(|e| HsmError::Unavailable(format!("cannot start an HSM worker thread: {e}")))?;
            workers.push(worker);
        }
        let hsm = Hsm(Arc::new(Inner {
            ctx,
            slot: Mutex::new(slot),
            in_module: RwLock::new(()),
            generation: AtomicU64::new(0),
            private_keys: Mutex::new(HashMap::new()),
            capabilities,
            session_key_copies: cfg.session_key_copies,
            last_reinit: Mutex::new(None),
            module: cfg.module.clone(),
            token_label: cfg.token_label.clone(),
            pin: pin.0,
            pool: Mutex::new(PoolState { idle: Vec::new(), open: 0 }),
            freed: Condvar::new(),
            max_sessions,
            jobs,
            workers,
            ready: AtomicBool::new(false),
        }));
        let first = hsm.open_session()?;
        hsm.0.pool.lock().unwrap_or_else(|p| p.into_inner()).open += 1;
        hsm.release(first);
        hsm.0.ready.store(true, Ordering::Relaxed);
        Ok(hsm)
    }

    /// Runs blocking HSM work on the HSM's worker threads, one per session, and waits for it as
    /// a task: every signature made through the key seam ([`HsmSigner`]'s
    /// `keys::SigningKey::sign`) runs here. Private to `hsm`, so no core schedules HSM work.
    ///
    /// Why not `spawn_blocking`: that woke a pool thread and then the waiting task for every
    /// signature, and under load the daemon spent about 40 % of its CPU in the kernel switching
    /// threads (perf, strace: futex). The workers take queued jobs back to back without
    /// sleeping; there are as many as sessions, so they wait for one only while rarer HSM work
    /// (health probes, key and certificate look-ups at start) holds a session elsewhere.
    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, HsmError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller gave up (deadline, disconnect): do not spend the HSM on it.
            if !done.is_closed() {
                let _ = done.send(job());
            }
        });
        self.0.jobs.try_send(job).map_err(|e| match e {
            flume::TrySendError::Full(_) => HsmError::Saturated,
            flume::TrySendError::Disconnected(_) => HsmError::Unavailable("HSM workers stopped".into()),
        })?;
        result.await.map_err(|_| HsmError::Unavailable("HSM job failed".into()))
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.0.token_label
    }

    /// False after a device-level failure until a session works again.
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Relaxed)
    }

    /// Checks the device with a cheap call; used by health checks, and heals the pool.
    pub fn probe(&self) -> Result<(), HsmError> {
        self.with_session(|s| s.get_session_info().map(|_| ()))
    }

    /// How many times the module was re-initialised since the daemon started.
    pub fn reinitializations(&self) -> u64 {
        self.0.generation.load(Ordering::SeqCst)
    }

    /// Shared hold on the module for one PKCS#11 call (or a few in a row).
    fn enter(&self) -> RwLockReadGuard<'_, ()> {
        self.0.in_module.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens and logs in a session; if the module cannot open one, re-initialises it and tries
    /// once more.
    fn open_session(&self) -> Result<Pooled, HsmError> {
        let generation = self.reinitializations();
        match self.try_open_session() {
            Err(HsmError::Unavailable(e)) if self.reinitialize(&e, generation) => self.try_open_session(),
            r => r,
        }
    }

    /// C_Finalize and C_Initialize again, then find the token's slot anew, once no other thread
    /// is inside the module; unless another thread re-initialised it since `seen` (the
    /// generation the caller saw fail). Rate-limited by [`REINIT_INTERVAL`]; true if the
    /// module is initialised and the token found.
    fn reinitialize(&self, cause: &str, seen: u64) -> bool {
        let too_soon = || {
            let last = self.0.last_reinit.lock().unwrap_or_else(|p| p.into_inner());
            last.is_some_and(|t| t.elapsed() < REINIT_INTERVAL)
        };
        // Checked before waiting for the module too: a failing device must not make every
        // caller wait for the calls in progress.
        if self.reinitializations() == seen && too_soon() {
            return false;
        }
        let _exclusive = self.0.in_module.write().unwrap_or_else(|p| p.into_inner());
        if self.reinitializations() != seen {
            return true;
        }
        if too_soon() {
            return false;
        }
        let mut last = self.0.last_reinit.lock().unwrap_or_else(|p| p.into_inner());
        *last = Some(Instant::now());
        tracing::warn!(token = %self.0.token_label, cause, audit = true, "re-initialising the PKCS#11 module");
        // Everything from before is stale from here on: idle sessions are dropped unclosed
        // (C_Finalize ends them), leased ones are discarded when they come back, and key
        // handles are looked up again.
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        let mut pool = self.0.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.open = pool.open.saturating_sub(pool.idle.len());
        pool.idle.clear();
        drop(pool);
        self.0.freed.notify_all();
        self.0.private_keys.lock().unwrap_or_else(|p| p.into_inner()).clear();
        // Finalising a module that is already gone fails harmlessly; what counts is the initialise.
        let _ = self.0.ctx.clone().finalize();
        match self.0.ctx.initialize(init_args()) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                tracing::error!(error = %e, "PKCS#11 module could not be initialised");
                return false;
            }
        }
        match find_slot(&self.0.ctx, &self.0.module, &self.0.token_label) {
            Ok(Some(slot)) => {
                *self.0.slot.lock().unwrap_or_else(|p| p.into_inner()) = slot;
                true
            }
            Ok(None) => {
                tracing::error!(token = %self.0.token_label, "token not present after re-initialising");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "slot list after re-initialising");
                false
            }
        }
    }

    fn try_open_session(&self) -> Result<Pooled, HsmError> {
        let _in = self.enter();
        let generation = self.reinitializations();
        let slot = *self.0.slot.lock().unwrap_or_else(|p| p.into_inner());
        let session = self.0.ctx.open_rw_session_no_drop(slot).map_err(|e| HsmError::Unavailable(e.to_string()))?;
        match session.login(UserType::User, Some(&self.0.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                Ok(Pooled { session, generation, copies: key_copies::KeyCopies::new(self.0.session_key_copies) })
            }
            Err(e) => {
                let _ = session.close();
                Err(match e {
                    CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLocked | RvError::PinExpired, _) => {
                        HsmError::Login(e)
                    }
                    e => HsmError::Unavailable(e.to_string()),
                })
            }
        }
    }

    /// Closes a session opened in the current generation; one from before is only forgotten.
    fn close(&self, p: Pooled) {
        let _in = self.enter();
        if p.generation == self.reinitializations() {
            let _ = p.session.close();
        }
    }

    /// Sessions open and, of those, in use now (leased to a signature or a key operation).
    pub fn sessions(&self) -> (usize, usize) {
        let st = self.0.pool.lock().unwrap_or_else(|p| p.into_inner());
        (st.open, st.open.saturating_sub(st.idle.len()))
    }

    /// The token's mechanisms, as read when it was opened.
    fn capabilities(&self) -> &capabilities::Capabilities {
        &self.0.capabilities
    }

    /// The most sessions the pool opens (`[hsm] max_sessions`, or fewer when the token allows
    /// fewer).
    pub fn max_sessions(&self) -> usize {
        self.0.max_sessions
    }

    fn acquire(&self) -> Result<Pooled, HsmError> {
        let mut st = self.0.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(s) = st.idle.pop() {
                return Ok(s);
            }
            if st.open < self.0.max_sessions {
                st.open += 1;
                drop(st);
                return self.open_session().inspect_err(|e| {
                    self.forget_session();
                    self.mark_unready(e);
                });
            }
            let (guard, timeout) = self.0.freed.wait_timeout(st, SESSION_WAIT).unwrap_or_else(|p| p.into_inner());
            st = guard;
            if timeout.timed_out() && st.idle.is_empty() && st.open >= self.0.max_sessions {
                return Err(HsmError::Busy);
            }
        }
    }

    fn release(&self, s: Pooled) {
        self.0.pool.lock().unwrap_or_else(|p| p.into_inner()).idle.push(s);
        self.0.freed.notify_one();
    }

    fn forget_session(&self) {
        let mut st = self.0.pool.lock().unwrap_or_else(|p| p.into_inner());
        st.open = st.open.saturating_sub(1);
        drop(st);
        self.0.freed.notify_one();
    }

    /// Closes every idle session: after a device error they are all suspect.
    fn reset_pool(&self) {
        let mut st = self.0.pool.lock().unwrap_or_else(|p| p.into_inner());
        let idle = std::mem::take(&mut st.idle);
        st.open = st.open.saturating_sub(idle.len());
        drop(st);
        self.0.freed.notify_all();
        for p in idle {
            self.close(p);
        }
    }

    fn mark_unready(&self, e: &dyn std::fmt::Display) {
        // Log only the transition, not every failing request (boulder #1003).
        if self.0.ready.swap(false, Ordering::Relaxed) {
            tracing::error!(token = %self.0.token_label, error = %e, "HSM became unavailable");
        }
    }

    /// Logs in again if the device dropped the login (it restarted, or someone logged out);
    /// true if that was the problem and it is fixed now.
    fn relogin(&self, s: &Lease) -> bool {
        let _in = self.enter();
        if s.generation() != self.reinitializations() {
            return false;
        }
        match s.get_session_info().map(|i| i.session_state()) {
            Ok(SessionState::RoPublic | SessionState::RwPublic) => {
                matches!(
                    s.login(UserType::User, Some(&self.0.pin)),
                    Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _))
                )
            }
            _ => false,
        }
    }

    /// Runs `f` on a pooled, logged-in session. A device-level failure drops the session and the
    /// idle pool and retries once on a fresh session; a lost login is restored and retried once;
    /// other PKCS#11 errors are returned as they are.
    pub fn with_session<T>(&self, f: impl Fn(&Session) -> cryptoki::error::Result<T>) -> Result<T, HsmError> {
        self.with_pooled(|p| f(&p.session))
    }

    /// [`Hsm::with_session`], with the session's own state (its key copies).
    fn with_pooled<T>(&self, f: impl Fn(&mut Pooled) -> cryptoki::error::Result<T>) -> Result<T, HsmError> {
        let mut failure = None;
        let mut attempts = 0;
        while attempts < 2 {
            let mut s = Lease { hsm: self, session: Some(self.acquire()?) };
            let result = {
                let _in = self.enter();
                match s.session.as_mut() {
                    // Leased across a re-initialisation: its handle may be another's by now.
                    Some(p) if p.generation == self.reinitializations() => Some(f(p)),
                    _ => None,
                }
            };
            let Some(result) = result else {
                s.discard();
                continue;
            };
            attempts += 1;
            match result {
                Ok(v) => {
                    s.release();
                    if !self.0.ready.swap(true, Ordering::Relaxed) {
                        tracing::info!(token = %self.0.token_label, "HSM available again");
                    }
                    return Ok(v);
                }
                Err(e) if is_session_fault(&e) => {
                    drop(s);
                    self.reset_pool();
                    tracing::warn!(token = %self.0.token_label, error = %e, "HSM session failed; reopening");
                    failure = Some(e);
                }
                Err(e) if may_be_logged_out(&e) && self.relogin(&s) => {
                    s.release();
                    tracing::warn!(token = %self.0.token_label, error = %e, "HSM login was lost; logged in again");
                    failure = Some(e);
                }
                Err(e) => {
                    s.release();
                    return Err(HsmError::Pkcs11(e));
                }
            }
        }
        let e = failure.map_or_else(|| "no working session".to_owned(), |e| e.to_string());
        self.mark_unready(&e);
        Err(HsmError::Unavailable(e))
    }
}

/// A session taken from the pool. Dropped without [`Lease::release`] (the session failed, or
/// the closure using it panicked), it is closed and its slot given back: a panicking HSM job
/// must not shrink the pool until every caller waits [`SESSION_WAIT`] and gets `Busy`.
struct Lease<'a> {
    hsm: &'a Hsm,
    session: Option<Pooled>,
}

impl Lease<'_> {
    /// Back to the idle pool for the next caller, unless it is from before a re-initialisation.
    fn release(mut self) {
        if let Some(s) = self.session.take() {
            if s.generation == self.hsm.reinitializations() {
                self.hsm.release(s);
            } else {
                self.hsm.forget_session();
            }
        }
    }

    /// Gives the slot back without closing the session: it is from before a re-initialisation.
    fn discard(mut self) {
        if self.session.take().is_some() {
            self.hsm.forget_session();
        }
    }

    fn generation(&self) -> u64 {
        self.session.as_ref().map_or(u64::MAX, |p| p.generation)
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        // Only `release`, `discard` and `drop` take the session, and all consume the lease.
        &self.session.as_ref().unwrap_or_else(|| unreachable!("a lease holds its session until released")).session
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.hsm.close(s);
            self.hsm.forget_session();
        }
    }
}
