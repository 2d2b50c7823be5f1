//! Persistent records behind one [`Store`] trait, with two backends through sqlx: SQLite, the
//! embedded default for one node, and PostgreSQL, for replicas sharing one database. Both keep
//! the same columns (`migrations/sqlite`, `migrations/postgres`) and read rows the same way
//! (rows.rs).

mod group_commit;
mod postgres;
mod rows;
mod sqlite;
mod wal_flush;

pub use group_commit::{GroupCommit, PendingWriter, SignatureWriter, TimestampWriter};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::ca_id::CaId;
use crate::digest::HashAlg;
use crate::keys::KeyRef;
use crate::log::{LogStore, Sha256};
use crate::policy::Level;
use crate::revocation::Reason;
use crate::serial::Serial;
use crate::service_role::ServiceRole;
use async_trait::async_trait;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the records are kept (`[store]` of the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database by its `postgres://` URL, with the pool's size.
    Postgres { url: String, max_connections: u32 },
}

impl Database {
    /// Opens the store, running its migrations; a PostgreSQL hot standby opens read-only, once
    /// its schema (replicated from the primary) is the one this trustd knows.
    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Database::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
            Database::Postgres { url, max_connections } => Arc::new(PostgresStore::open(url, *max_connections).await?),
        })
    }

    /// The directory holding the embedded store's database file, where its WAL is written back
    /// and its disk measured; none for PostgreSQL, whose disk is the server's.
    pub fn sqlite_directory(&self) -> Option<PathBuf> {
        match self {
            Database::Sqlite(path) => Some(directory_of(path)),
            Database::Postgres { .. } => None,
        }
    }
}

/// The directory holding `file`: "." for a bare file name.
fn directory_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// How errors and logs name a database: the file, or the URL without its password and
/// parameters (either may hold a secret).
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres { url, .. } => {
                let Some((scheme, rest)) = url.split_once("://") else { return f.write_str("a PostgreSQL URL") };
                let rest = rest.split(['?', '#']).next().unwrap_or_default();
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                match authority.rsplit_once('@') {
                    Some((userinfo, host)) => {
                        let user = userinfo.split(':').next().unwrap_or_default();
                        write!(f, "{scheme}://{user}@{host}{path}")
                    }
                    None => write!(f, "{scheme}://{authority}{path}"),
                }
            }
        }
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("serial {0} is already used")]
    DuplicateSerial(Serial),
    #[error("certificate {0} not found")]
    NotFound(Serial),
    #[error("certificate {serial} is {status}, not {expected}")]
    WrongStatus { serial: Serial, status: CertStatus, expected: CertStatus },
    #[error("invalid page token")]
    BadPageToken,
    #[error("certificate {0} changed meanwhile; try again")]
    Conflict(Serial),
    /// A write to a hot standby (PostgreSQL SQLSTATE 25006), or asked of a daemon serving one.
    #[error("{READ_ONLY}")]
    ReadOnly,
    #[error("database: {0}")]
    Database(String),
}

/// What a client asking a replica on a read-only standby for a write is told.
pub const READ_ONLY: &str = "this trustd serves a read-only standby database: certificates, revocation status, CRLs \
     and the log are answered here; issuance, revocation, time-stamps and signatures by a trustd on the primary";

/// What the database takes: everything, or (a PostgreSQL hot standby) reads only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Standby,
}

impl Role {
    /// How `/readyz` and `/metrics` name it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
        }
    }
}

/// A CRL as published (RFC 5280 §5), kept for every replica of the database to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCrl {
    pub ca: CaId,
    /// Its cRLNumber.
    pub number: u64,
    /// thisUpdate and nextUpdate, Unix seconds.
    pub this_update: i64,
    pub next_update: i64,
    pub der: Vec<u8>,
}

/// A service key rolled over (`trustd rollover`): `role` signs with `key` from `generation` on
/// (generation 1 is the key ceremony's, named in the config), once it is in service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolledKey {
    pub role: ServiceRole,
    pub generation: u32,
    pub key: KeyRef,
    /// When the rollover began, Unix seconds.
    pub created_at: i64,
    /// When its certificate was recorded and its key stated, Unix seconds; `None` while the
    /// rollover runs (or after it failed: running it again finishes it).
    pub in_service_at: Option<i64>,
}

/// Signature activation data of the CSC API (credentials/authorize): bound to a client and a
/// credential, for the hashes it names, until `expires_at`; used once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CscAuthorization {
    /// SHA-256 of the SAD, hex: the SAD itself is the client's alone.
    pub sad_sha256: String,
    pub client: String,
    pub credential: String,
    /// The authorized hashes, base64 as the client sent them.
    pub hashes: Vec<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// An OAuth 2.0 access token handed to a client (RFC 6749 §4.4: the client credentials grant),
/// good until `expires_at` while the secret it was granted for stays the client's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// SHA-256 of the token, hex: the token itself is the client's alone.
    pub token_sha256: String,
    pub client: String,
    /// SHA-256 of the client secret the token was granted for, hex.
    pub secret_sha256: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A remote-signing credential made for one client (CSC API): a key in the HSM under a signing
/// policy, with its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CscCredential {
    pub id: String,
    pub client: String,
    pub policy: String,
    pub key: KeyRef,
    pub certificate_der: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None` while enabled.
    pub disabled_at: Option<i64>,
}

/// How many published CRLs of each CA the store keeps: the newest is served, the few before it
/// are what a replica that published at the same moment may still be reading.
pub const CRLS_KEPT: u64 = 4;

/// Lifecycle of a certificate record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    /// Recorded with its to-be-signed bytes, signing not yet confirmed.
    Pending,
    /// Signed, stored and handed out.
    Issued,
    /// Revoked (RFC 5280 §5.3.1).
    Revoked,
    /// Recorded but never completed; never handed out.
    Abandoned,
}

impl CertStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Issued => "issued",
            Self::Revoked => "revoked",
            Self::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => Self::Pending,
            "issued" => Self::Issued,
            "revoked" => Self::Revoked,
            "abandoned" => Self::Abandoned,
            other => return Err(StoreError::Database(format!("unknown status '{other}' in the database"))),
        })
    }
}

impl fmt::Display for CertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a certificate came from: issued under a profile of `policies/`, or by the key ceremony
/// to one of trustd's own services (its role: `tsa`, `document-signer`, `ocsp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Profile(String),
    Ceremony(String),
}

impl Origin {
    /// How the store, the API and the log name it: the profile's name, or `ceremony:<role>`
    /// (no profile name contains a colon).
    pub fn name(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Origin::Profile(p) => p.as_str().into(),
            Origin::Ceremony(role) => format!("{CEREMONY_PREFIX}{role}").into(),
        }
    }

    /// The origin named `name` (see [`Origin::name`]).
    pub fn from_name(name: &str) -> Self {
        match name.strip_prefix(CEREMONY_PREFIX) {
            Some(role) => Origin::Ceremony(role.to_owned()),
            None => Origin::Profile(name.to_owned()),
        }
    }
}

const CEREMONY_PREFIX: &str = "ceremony:";

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// What is recorded before a certificate is signed.
#[derive(Clone, Debug)]
pub struct NewCertificate {
    pub serial: Serial,
    pub ca: CaId,
    pub origin: Origin,
    pub subject: String,
    pub sans: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub requester: String,
    /// The to-be-signed certificate, DER: kept while the record is pending or abandoned (what
    /// the HSM was about to sign), emptied once the certificate, which holds it, is stored.
    pub tbs_der: Vec<u8>,
}

/// A stored certificate record.
#[derive(Clone, Debug)]
pub struct CertificateRecord {
    pub serial: Serial,
    pub ca: CaId,
    pub origin: Origin,
    pub subject: String,
    pub sans: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub requester: String,
    pub status: CertStatus,
    pub created_at: i64,
    pub cert_der: Option<Vec<u8>>,
    /// Set while revoked (or on hold).
    pub revocation: Option<Revocation>,
}

/// A revocation as stored (RFC 5280 §5.3: reasonCode, invalidityDate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub revoked_at: i64,
    pub reason: Reason,
    pub invalidity_date: Option<i64>,
}

/// One entry of a CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    pub serial: Serial,
    pub revocation: Revocation,
}

/// Filters and paging for [`Store::list_certificates`].
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub profile: Option<String>,
    pub subject_contains: Option<String>,
    pub status: Option<CertStatus>,
    pub limit: u32,
    pub page_token: Option<String>,
}

/// One page of certificate records, newest first.
#[derive(Clone, Debug)]
pub struct Page {
    pub records: Vec<CertificateRecord>,
    pub next_page_token: Option<String>,
}

/// A time-stamp token handed out (RFC 3161 §2.4.2 fields worth an audit).
#[derive(Clone, Debug, PartialEq)]
pub struct TimestampRecord {
    pub serial: Serial,
    /// genTime since the Unix epoch, with its fraction (to the microsecond, the finest
    /// precision a TSA policy states).
    pub gen_time: std::time::Duration,
    pub policy: const_oid::ObjectIdentifier,
    pub hash_alg: HashAlg,
    pub imprint: Vec<u8>,
    pub nonce: Option<Vec<u8>>,
    /// The client's configured name; empty for an anonymous request (the public HTTP TSA).
    pub requester: String,
    pub token_der: Vec<u8>,
    /// SHA-256 of the TSA certificate (DER): the key, as the log names it.
    pub signer: Sha256,
}

/// A CMS signature made for a caller (ETSI EN 319 122-1), as recorded for the audit trail.
#[derive(Clone, Debug, PartialEq)]
pub struct SignatureRecord {
    /// Time-ordered (see [`Serial::time_ordered`]); handed to the caller.
    pub signature_id: Serial,
    pub signed_at: i64,
    /// The signing policy's name.
    pub policy: String,
    pub level: Level,
    pub detached: bool,
    pub digest_alg: HashAlg,
    pub digest: Vec<u8>,
    pub signer_serial: Serial,
    pub signer_issuer: String,
    /// SHA-256 of the signature value: finds the record from a signature in hand.
    pub signature_hash: Sha256,
    pub timestamp_serial: Option<Serial>,
    pub requester: String,
    /// SHA-256 of the signer certificate (DER): the key, as the log names it.
    pub signer: Sha256,
}

/// An issued certificate not yet in the log (see [`Store::unlogged_certificates`]).
#[derive(Clone, Debug)]
pub struct UnloggedCertificate {
    pub serial: Serial,
    pub ca: CaId,
    pub origin: Origin,
    pub requester: String,
    /// When it was stored as issued, Unix seconds.
    pub issued_at: i64,
    pub cert_der: Vec<u8>,
}

/// A revocation event not yet in the log (see [`Store::unlogged_revocations`]).
#[derive(Clone, Debug)]
pub struct UnloggedRevocation {
    pub event_id: i64,
    pub serial: Serial,
    pub ca: CaId,
    /// removeFromCRL for a released hold.
    pub reason: Reason,
    pub at: i64,
}

/// Persistent storage of trustd's records, including the issued-certificate log's tables
/// ([`LogStore`], which the sequencer writes through).
#[async_trait]
pub trait Store: LogStore + Send + Sync {
    /// Records certificates about to be signed, in one transaction, committed when this returns
    /// and kept through a crash of the daemon. A backend may leave their flush to disk to the
    /// next durable commit (both do): each is followed, before its certificate is handed out, by
    /// the durable commit that stores it issued or abandoned. Answers, for each in order,
    /// whether it was recorded: `false` where its serial was ever used (or is used earlier in
    /// `certs`), which is what makes serials unique.
    async fn record_pending(&self, certs: &[NewCertificate]) -> Result<Vec<bool>, StoreError>;
    /// Records a certificate signed elsewhere (the key ceremony's) as issued, in one write.
    async fn record_issued(&self, c: &NewCertificate, cert_der: &[u8]) -> Result<(), StoreError>;
    /// Stores the signed certificate of a pending record; durable when this returns. (With the
    /// log on, the certificate is stored in its log batch instead:
    /// [`LoggedRecord::IssuedCertificate`](crate::log::LoggedRecord).)
    async fn complete_issued(&self, serial: &Serial, cert_der: &[u8]) -> Result<(), StoreError>;
    /// Marks a pending record abandoned, with the reason.
    async fn abandon(&self, serial: &Serial, reason: &str) -> Result<(), StoreError>;
    /// Marks abandoned the pending records created before `before` (Unix seconds): an issuance
    /// in flight is pending far shorter, so these were left by a process that stopped while
    /// signing (this one before a restart, or a replica that died). Reads the pending rows only.
    async fn abandon_pending_created_before(&self, before: i64) -> Result<u64, StoreError>;
    /// One record by serial.
    async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError>;
    /// A page of records, newest first.
    async fn list_certificates(&self, q: &ListQuery) -> Result<Page, StoreError>;
    /// Changes a certificate's revocation state if it is still `expected` (compare-and-set, so
    /// two operators cannot race), and records who did it. `new` of `None` releases a hold.
    /// Returns the id of the revocation event recorded (what the log marks sequenced).
    async fn set_revocation(
        &self,
        serial: &Serial,
        expected: Option<Revocation>,
        new: Option<Revocation>,
        requester: &str,
    ) -> Result<i64, StoreError>;
    /// How many revocation changes the store holds, by any process on this database: one that
    /// sees it move learns of another's revocations. Moves with each [`Store::set_revocation`],
    /// in its transaction.
    async fn revocation_generation(&self) -> Result<u64, StoreError>;
    /// The first `limit` issued (or since revoked) certificates whose `CertificateIssued` entry
    /// is not in the log, in the order their records were made: what start-up appends after a
    /// crash between store and log, or after the log was off.
    async fn unlogged_certificates(&self, limit: u32) -> Result<Vec<UnloggedCertificate>, StoreError>;
    /// The first `limit` revocation events not in the log that are at least `settled` old, in
    /// the order they happened: younger ones may still be on their way to the log from the
    /// process that made them (another replica), which would log them twice.
    async fn unlogged_revocations(
        &self,
        settled: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<UnloggedRevocation>, StoreError>;
    /// The first `limit` time-stamp records not in the log (made while it was off), in the
    /// order they were recorded.
    async fn unlogged_timestamps(&self, limit: u32) -> Result<Vec<TimestampRecord>, StoreError>;
    /// The first `limit` signature records not in the log, in the order they were recorded.
    async fn unlogged_signatures(&self, limit: u32) -> Result<Vec<SignatureRecord>, StoreError>;
    /// The key-ceremony keys in the log ([`LoggedRecord::CeremonyKey`](crate::log::LoggedRecord)),
    /// by the SHA-256 of their SubjectPublicKeyInfo.
    async fn logged_ceremony_keys(&self) -> Result<Vec<Sha256>, StoreError>;
    /// Every revoked certificate of `ca`, for its CRL (reads the revoked index only).
    async fn revoked(&self, ca: CaId) -> Result<Vec<RevokedEntry>, StoreError>;
    /// The next CRL number of `ca`: 1, 2, 3, … across restarts.
    async fn next_crl_number(&self, ca: CaId) -> Result<u64, StoreError>;
    /// Keeps a CRL just published, for every replica to serve, and drops those of its CA more
    /// than [`CRLS_KEPT`] numbers older.
    async fn record_crl(&self, crl: &StoredCrl) -> Result<(), StoreError>;
    /// The newest published CRL of `ca` numbered above `above`, if any: what a replica serves
    /// once it is newer than its own.
    async fn newest_crl(&self, ca: CaId, above: u64) -> Result<Option<StoredCrl>, StoreError>;
    /// Records a rolled-over service key (a rollover beginning: `in_service_at` `None`);
    /// refused (nothing changed) if that role's generation is recorded already (another
    /// rollover got there first).
    async fn record_service_key(&self, key: &RolledKey) -> Result<(), StoreError>;
    /// Puts generation `generation` of `role` in service at `at` (Unix seconds).
    async fn put_service_key_in_service(&self, role: ServiceRole, generation: u32, at: i64) -> Result<(), StoreError>;
    /// Every rolled-over key, by role, each role's generations in order (a handful of rows).
    async fn service_keys(&self) -> Result<Vec<RolledKey>, StoreError>;

    /// Records a CSC signature activation datum (and forgets those expired before `now` less an
    /// hour).
    async fn record_csc_authorization(&self, a: &CscAuthorization, now: i64) -> Result<(), StoreError>;

    /// Takes lease `name` for `holder` until `expires_at` (Unix seconds), or renews it: `true`
    /// when it is the holder's now, `false` while another holds it unexpired at `now`. Atomic
    /// across replicas.
    async fn take_lease(&self, name: &str, holder: &str, now: i64, expires_at: i64) -> Result<bool, StoreError>;

    /// Gives lease `name` up if `holder` holds it, for another to take at once.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Records an OAuth 2.0 access token (and forgets those expired before `now` less an hour).
    async fn record_access_token(&self, t: &AccessToken, now: i64) -> Result<(), StoreError>;

    /// The access token whose SHA-256 is `token_sha256`, while it has not expired at `now`.
    async fn access_token(&self, token_sha256: &str, now: i64) -> Result<Option<AccessToken>, StoreError>;

    /// Records a new remote-signing credential.
    async fn record_csc_credential(&self, c: &CscCredential) -> Result<(), StoreError>;

    /// The credentials of `client` (every client's with `None`), oldest first.
    async fn csc_credentials(&self, client: Option<&str>) -> Result<Vec<CscCredential>, StoreError>;

    /// Disables credential `id` at `at` (once; a disabled one stays as it was). `None` when there
    /// is no such credential.
    async fn disable_csc_credential(&self, id: &str, at: i64) -> Result<Option<CscCredential>, StoreError>;

    /// Uses the authorization whose SAD hashes to `sad_sha256` for `client` and `credential`:
    /// its hashes, once, while it has not expired at `now`; `None` for one unknown, another's,
    /// expired or used already. Atomic across replicas.
    async fn use_csc_authorization(
        &self,
        sad_sha256: &str,
        client: &str,
        credential: &str,
        now: i64,
    ) -> Result<Option<Vec<String>>, StoreError>;
    /// Records time-stamp tokens in one transaction, outside the log (with the log on they are
    /// written with their log batch, [`LoggedRecord::NewTimestamp`](crate::log::LoggedRecord));
    /// durable when this returns. Fails whole (nothing recorded) if any serial was used before.
    async fn record_timestamps(&self, records: &[TimestampRecord]) -> Result<(), StoreError>;
    /// Number of recorded time-stamp tokens.
    async fn count_timestamps(&self) -> Result<u64, StoreError>;
    /// Records signatures in one transaction, outside the log as time-stamps above; durable
    /// when this returns.
    async fn record_signatures(&self, records: &[SignatureRecord]) -> Result<(), StoreError>;
    /// Number of recorded signatures.
    async fn count_signatures(&self) -> Result<u64, StoreError>;
    /// Checks that the store answers, for readiness, and tells what it takes: a writable
    /// database, or a hot standby's reads.
    async fn ping(&self) -> Result<Role, StoreError>;
    /// Runs SQL as it is: the store tests damage rows through this.
    #[cfg(test)]
    async fn execute_raw(&self, sql: &str);
}

#[cfg(test)]
mod tests;
