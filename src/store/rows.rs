//! Rows to typed records, the same for every backend: both store the same columns (see
//! `migrations/`), and only how a column is read differs, which [`Columns`] hides.

use super::{
    CertStatus, CertificateRecord, ListQuery, NewCertificate, Origin, Page, Revocation, RevokedEntry, RolledKey,
    SignatureRecord, Store, StoreError, StoredCrl, TimestampRecord, UnloggedCertificate, UnloggedRevocation,
};
use crate::ca_id::CaId;
use crate::log::{Hash, HashIndex, LogBatch, LogError, LoggedRecord, Sha256};
use crate::revocation::Reason;
use crate::serial::Serial;
use std::time::Duration;

pub(super) fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some(READ_ONLY_SQLSTATE) => StoreError::ReadOnly,
        _ => StoreError::Database(e.to_string()),
    }
}

/// PostgreSQL's read_only_sql_transaction: a write on a hot standby.
const READ_ONLY_SQLSTATE: &str = "25006";

/// A failed insertion of records: a unique violation is a serial (or id) used before, named
/// `what`; anything else is the database's failure.
pub(super) fn reused(e: sqlx::Error, what: &str) -> StoreError {
    match e {
        sqlx::Error::Database(e) if e.is_unique_violation() => {
            StoreError::Database(format!("{what} reused in this batch: {e}"))
        }
        e => db(e),
    }
}

/// A failed insertion of one certificate: a unique violation is its serial used before.
pub(super) fn duplicate(e: sqlx::Error, serial: &Serial) -> StoreError {
    match e {
        sqlx::Error::Database(e) if e.is_unique_violation() => StoreError::DuplicateSerial(serial.clone()),
        e => db(e),
    }
}

/// Why a status change from `from` changed no row: the certificate is not there, or has
/// another status.
pub(super) async fn not_moved(store: &dyn Store, serial: &Serial, from: CertStatus) -> StoreError {
    match store.certificate(serial).await {
        Ok(None) => StoreError::NotFound(serial.clone()),
        Ok(Some(rec)) => StoreError::WrongStatus { serial: serial.clone(), status: rec.status, expected: from },
        Err(e) => e,
    }
}

/// The head of the insertion of pending certificate records whose rows [`pending_values`] gives.
pub(super) const INSERT_PENDING: &str = "INSERT INTO certificates (serial, ca, profile, subject, sans, not_before, \
     not_after, requester, status, tbs_der, created_at) ";

/// A row of [`INSERT_PENDING`], recorded `at`: 11 values.
pub(super) fn pending_values(c: &NewCertificate, at: i64) -> Vec<Value> {
    use Value::*;
    vec![
        Text(c.serial.to_string()),
        Text(c.ca.name().to_owned()),
        Text(c.origin.name().into_owned()),
        Text(c.subject.clone()),
        Text(c.sans.join("\n")),
        Int(c.not_before),
        Int(c.not_after),
        Text(c.requester.clone()),
        Text("pending".into()),
        Bytes(c.tbs_der.clone()),
        Int(at),
    ]
}

/// Each serial of `certs` once, the first time it appears: what one insertion of a batch of
/// pending records holds.
pub(super) fn first_of_each(certs: &[NewCertificate]) -> Vec<&NewCertificate> {
    let mut seen = std::collections::HashSet::new();
    certs.iter().filter(|c| seen.insert(&c.serial)).collect()
}

/// For each of `certs` in order, whether it was recorded: the first of its serial in the batch,
/// and among the serials the insertion says it `recorded` (the others were used before).
pub(super) fn pending_answers(certs: &[NewCertificate], recorded: &std::collections::HashSet<String>) -> Vec<bool> {
    let mut first = std::collections::HashSet::new();
    certs.iter().map(|c| first.insert(&c.serial) && recorded.contains(&c.serial.to_string())).collect()
}

pub(super) fn log_db(e: sqlx::Error) -> LogError {
    LogError::Store(e.to_string())
}

/// A store's own error met inside a log call.
pub(super) fn log_store(e: StoreError) -> LogError {
    LogError::Store(e.to_string())
}

/// Leaf indexes and stored-hash indexes are below 2^63 (the tree stops at 2^62 entries), so they
/// fit the databases' signed 64-bit integers.
pub(super) fn sql_index(i: u64) -> Result<i64, LogError> {
    i64::try_from(i).map_err(|_| LogError::TreeTooLarge)
}

/// A leaf index or tree size read back; a negative one is a damaged database.
pub(super) fn leaf_index(i: i64) -> Result<u64, LogError> {
    u64::try_from(i).map_err(|_| LogError::Store(format!("negative index {i} in the log's tables")))
}

/// The stored hashes asked for, in the order asked, from the `(idx, hash)` rows found; a
/// missing one is [`LogError::MissingHash`].
pub(super) fn hashes_in_order(indexes: &[HashIndex], found: Vec<(i64, Vec<u8>)>) -> Result<Vec<Hash>, LogError> {
    let mut by_index = std::collections::HashMap::with_capacity(found.len());
    for (idx, hash) in found {
        by_index.insert(idx, Hash::from_slice(&hash)?);
    }
    indexes.iter().map(|i| by_index.get(&sql_index(i.0)?).copied().ok_or(LogError::MissingHash(*i))).collect()
}

/// A log batch as rows, the same for both backends: the entries and stored hashes by their
/// indexes, and each entry's record by what the batch does to the store.
pub(super) struct BatchRows<'a> {
    pub entries: Vec<(i64, &'a [u8])>,
    pub hashes: Vec<(i64, &'a [u8])>,
    /// Certificates stored already, to mark logged: (serial, leaf index).
    pub certificates: Vec<(String, i64)>,
    /// Pending certificates that become issued with their certificate: (serial, DER, index).
    pub issued: Vec<(String, &'a [u8], i64)>,
    pub revocation_events: Vec<(i64, i64)>,
    /// Time-stamps and signatures recorded already (while the log was off), to mark logged.
    pub timestamps: Vec<(String, i64)>,
    pub signatures: Vec<(String, i64)>,
    /// Time-stamps and signatures to insert with their index ([`INSERT_TIMESTAMPS`],
    /// [`INSERT_SIGNATURES`]).
    pub new_timestamps: Vec<Vec<Value>>,
    pub new_signatures: Vec<Vec<Value>>,
    pub ceremony_keys: Vec<(&'a [u8], i64)>,
}

impl<'a> BatchRows<'a> {
    pub fn of(b: &'a LogBatch) -> Result<Self, LogError> {
        let mut rows = BatchRows {
            entries: Vec::with_capacity(b.entries.len()),
            hashes: Vec::with_capacity(b.hashes.len()),
            certificates: vec![],
            issued: vec![],
            revocation_events: vec![],
            timestamps: vec![],
            signatures: vec![],
            new_timestamps: vec![],
            new_signatures: vec![],
            ceremony_keys: vec![],
        };
        for (i, h) in b.hashes.iter().enumerate() {
            rows.hashes.push((sql_index(b.first_hash.0 + i as u64)?, h.as_bytes().as_slice()));
        }
        for (i, e) in b.entries.iter().enumerate() {
            let idx = sql_index(b.old_size.0 + i as u64)?;
            rows.entries.push((idx, e.entry.as_slice()));
            match &e.record {
                Some(LoggedRecord::Certificate(serial)) => rows.certificates.push((serial.clone(), idx)),
                Some(LoggedRecord::IssuedCertificate { serial, cert_der }) => {
                    rows.issued.push((serial.to_string(), cert_der.as_slice(), idx))
                }
                Some(LoggedRecord::RevocationEvent(id)) => rows.revocation_events.push((*id, idx)),
                Some(LoggedRecord::Timestamp(serial)) => rows.timestamps.push((serial.to_string(), idx)),
                Some(LoggedRecord::Signature(id)) => rows.signatures.push((id.to_string(), idx)),
                Some(LoggedRecord::NewTimestamp(r)) => rows.new_timestamps.push(timestamp_values(r, Some(idx))),
                Some(LoggedRecord::NewSignature(r)) => rows.new_signatures.push(signature_values(r, Some(idx))),
                Some(LoggedRecord::CeremonyKey(spki)) => rows.ceremony_keys.push((spki.as_slice(), idx)),
                None => {}
            }
        }
        Ok(rows)
    }
}

/// Runs `sql`, which takes no parameters and reads the same on every backend, and reads each
/// row with `read`.
pub(super) async fn read_all<DB, T>(
    pool: &sqlx::Pool<DB>,
    sql: &'static str,
    read: fn(&DB::Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let rows = sqlx::query::<DB>(sql).fetch_all(pool).await.map_err(db)?;
    rows.iter().map(read).collect()
}

/// Runs `sql` as [`read_all`] does for one number: a count, the revocation generation.
pub(super) async fn read_count<DB>(pool: &sqlx::Pool<DB>, sql: &'static str) -> Result<u64, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let n: i64 = sqlx::query_scalar::<DB, i64>(sql).fetch_one(pool).await.map_err(db)?;
    u64::try_from(n).map_err(|_| StoreError::Database(format!("negative count {n}")))
}

/// What [`unlogged_certificate`] reads, each backend adding its LIMIT: issued (or since revoked)
/// certificates not in the log, in the order their records were made, along the
/// `certificates_unlogged` index (ordered by anything else, each page would sort every
/// certificate still unlogged).
macro_rules! unlogged_certificates {
    () => {
        "SELECT serial, ca, profile, requester, COALESCE(issued_at, created_at) AS issued_at, cert_der \
         FROM certificates WHERE log_index IS NULL AND status IN ('issued', 'revoked') ORDER BY id"
    };
}
pub(super) use unlogged_certificates;

pub(super) const CEREMONY_KEYS: &str = "SELECT spki_sha256 FROM ceremony_keys";
pub(super) const REVOCATION_GENERATION: &str = "SELECT generation FROM revocation_generation WHERE id = 1";
pub(super) const COUNT_TIMESTAMPS: &str = "SELECT COUNT(*) FROM timestamps";
pub(super) const COUNT_SIGNATURES: &str = "SELECT COUNT(*) FROM signatures";

/// The key of a `ceremony_keys` row.
pub(super) fn ceremony_key(row: &impl Columns) -> Result<Sha256, StoreError> {
    sha256(row, "spki_sha256")
}

/// Unix seconds now, as the store records times.
pub(super) fn now() -> i64 {
    crate::unix_time::now() as i64
}

/// The newest `at` of a revocation event `settled` old.
pub(super) fn settled_before(settled: Duration) -> i64 {
    now().saturating_sub(i64::try_from(settled.as_secs()).unwrap_or(i64::MAX))
}

/// A backend's row, read by column name into the few types the schema uses.
pub(super) trait Columns {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn boolean(&self, column: &str) -> Result<bool, StoreError>;
}

/// Implements [`Columns`] for a backend's row type.
macro_rules! impl_columns {
    ($row:ty) => {
        impl $crate::store::rows::Columns for $row {
            fn text(&self, c: &str) -> Result<String, StoreError> {
                sqlx::Row::try_get(self, c).map_err($crate::store::rows::db)
            }
            fn opt_text(&self, c: &str) -> Result<Option<String>, StoreError> {
                sqlx::Row::try_get(self, c).map_err($crate::store::rows::db)
            }
            fn int(&self, c: &str) -> Result<i64, StoreError> {
                sqlx::Row::try_get(self, c).map_err($crate::store::rows::db)
            }
            fn opt_int(&self, c: &str) -> Result<Option<i64>, StoreError> {
                sqlx::Row::try_get(self, c).map_err($crate::store::rows::db)
            }
            fn bytes(&self, c: &str) -> Result<Vec<u8>, StoreError> {
                sqlx::Row::try_get(self, c).map_err($crate::store::rows::db)
            }
            fn opt_bytes(&self, c: &str) -> Result<Option<Vec<u8>>, StoreError> {
                sqlx::Row::try_get(self, c).map_err($crate::store::rows::db)
            }
            fn boolean(&self, c: &str) -> Result<bool, StoreError> {
                sqlx::Row::try_get(self, c).map_err($crate::store::rows::db)
            }
        }
    };
}
pub(super) use impl_columns;

/// The columns [`certificate`] reads; a macro so queries stay static strings.
macro_rules! certificate_columns {
    () => {
        "id, serial, ca, profile, subject, sans, not_before, not_after, requester, status, created_at, cert_der, \
         revoked_at, revocation_reason, invalidity_date"
    };
}
pub(super) use certificate_columns;

/// The query of [`Store::list_certificates`]: the records before `before` (an id) that the
/// filters given select, newest first, one more than `limit`. Only the filters given are in the
/// text, so that the database walks the profile's or the status's index newest first: given
/// `?2 IS NULL OR profile = ?2`, SQLite used neither, and listing a status that few certificates
/// have read the whole table. `find` is the backend's substring position function (`instr`,
/// `strpos`).
pub(super) fn list_query<DB>(q: &ListQuery, before: i64, limit: u32, find: &'static str) -> sqlx::QueryBuilder<DB>
where
    DB: sqlx::Database,
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut s = sqlx::QueryBuilder::new(concat!("SELECT ", certificate_columns!(), " FROM certificates WHERE id < "));
    s.push_bind(before);
    if let Some(profile) = &q.profile {
        s.push(" AND profile = ").push_bind(profile.as_str());
    }
    if let Some(text) = &q.subject_contains {
        s.push(format!(" AND {find}(subject, ")).push_bind(text.as_str()).push(") > 0");
    }
    if let Some(status) = q.status {
        s.push(" AND status = ").push_bind(status.as_str());
    }
    s.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit) + 1);
    s
}

/// A text column parsed into its type; a value that does not parse is a damaged database.
pub(super) fn parse<T: std::str::FromStr>(row: &impl Columns, column: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let text = row.text(column)?;
    text.parse().map_err(|e| StoreError::Database(format!("{column} '{text}': {e}")))
}

pub(super) fn sha256(row: &impl Columns, column: &str) -> Result<Sha256, StoreError> {
    row.bytes(column)?
        .try_into()
        .map_err(|b: Vec<u8>| StoreError::Database(format!("{column}: {} bytes, not 32", b.len())))
}

/// The CA column; a name trustd does not run is damage, reported as such.
fn ca(row: &impl Columns) -> Result<CaId, StoreError> {
    let name = row.text("ca")?;
    CaId::from_name(&name).ok_or_else(|| StoreError::Database(format!("unknown CA '{name}' in the database")))
}

fn reason_code(code: i64) -> Result<Reason, StoreError> {
    u8::try_from(code)
        .ok()
        .and_then(Reason::from_code)
        .ok_or_else(|| StoreError::Database(format!("bad reason code {code} in the database")))
}

fn serial(row: &impl Columns, column: &str) -> Result<Serial, StoreError> {
    row.text(column)?.parse().map_err(StoreError::Database)
}

/// The columns of `published_crls` [`stored_crl`] reads, and the query of the newest above a
/// number (`$1` the CA, `$2` the number: both backends number parameters so).
pub(super) const NEWEST_CRL: &str = "SELECT ca, number, this_update, next_update, der FROM published_crls \
     WHERE ca = $1 AND number > $2 ORDER BY number DESC LIMIT 1";

/// The oldest number [`CRLS_KEPT`](super::CRLS_KEPT) keeps once `crl` is stored, and its
/// number, as the databases' integers.
pub(super) fn crl_numbers(crl: &StoredCrl) -> Result<(i64, i64), StoreError> {
    let number = i64::try_from(crl.number).map_err(|_| StoreError::Database(format!("CRL number {}", crl.number)))?;
    Ok((number, number.saturating_sub(super::CRLS_KEPT as i64 - 1)))
}

/// A row of `published_crls`.
pub(super) fn stored_crl(row: &impl Columns) -> Result<StoredCrl, StoreError> {
    let number = row.int("number")?;
    Ok(StoredCrl {
        ca: ca(row)?,
        number: u64::try_from(number).map_err(|_| StoreError::Database(format!("CRL number {number}")))?,
        this_update: row.int("this_update")?,
        next_update: row.int("next_update")?,
        der: row.bytes("der")?,
    })
}

/// Records a [`RolledKey`]; a unique violation is another rollover of the role first.
pub(super) async fn insert_service_key<DB>(pool: &sqlx::Pool<DB>, key: &RolledKey) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>(
        "INSERT INTO service_keys (role, generation, key_uri, created_at, in_service_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(key.role.name())
    .bind(i64::from(key.generation))
    .bind(key.key.to_string())
    .bind(key.created_at)
    .bind(key.in_service_at)
    .execute(pool)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Database(format!(
            "generation {} of the {} key is recorded already: another rollover got there first",
            key.generation, key.role
        )),
        e => db(e),
    })?;
    Ok(())
}

/// Puts a rollover's key in service: see [`Store::put_service_key_in_service`].
pub(super) async fn put_service_key_in_service<DB>(
    pool: &sqlx::Pool<DB>,
    role: crate::service_role::ServiceRole,
    generation: u32,
    at: i64,
) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let done: Option<i64> = sqlx::query_scalar::<DB, i64>(
        "UPDATE service_keys SET in_service_at = $3 WHERE role = $1 AND generation = $2 AND in_service_at IS NULL \
         RETURNING generation",
    )
    .bind(role.name())
    .bind(i64::from(generation))
    .bind(at)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    match done {
        Some(_) => Ok(()),
        _ => Err(StoreError::Database(format!("generation {generation} of the {role} key is no rollover in progress"))),
    }
}

/// Every rolled-over key, each role's generations in order, read by [`rolled_key`].
pub(super) const SERVICE_KEYS: &str =
    "SELECT role, generation, key_uri, created_at, in_service_at FROM service_keys ORDER BY role, generation";

/// A row of `service_keys`.
pub(super) fn rolled_key(row: &impl Columns) -> Result<RolledKey, StoreError> {
    let role = row.text("role")?;
    let generation = row.int("generation")?;
    Ok(RolledKey {
        role: crate::service_role::ServiceRole::from_name(&role)
            .ok_or_else(|| StoreError::Database(format!("unknown service key role '{role}' in the database")))?,
        generation: u32::try_from(generation)
            .map_err(|_| StoreError::Database(format!("service key generation {generation}")))?,
        key: crate::keys::KeyRef::parse(&row.text("key_uri")?).map_err(StoreError::Database)?,
        created_at: row.int("created_at")?,
        in_service_at: row.opt_int("in_service_at")?,
    })
}

/// A row of `certificates` read with [`certificate_columns`].
pub(super) fn certificate(row: &impl Columns) -> Result<CertificateRecord, StoreError> {
    Ok(CertificateRecord {
        serial: serial(row, "serial")?,
        ca: ca(row)?,
        origin: Origin::from_name(&row.text("profile")?),
        subject: row.text("subject")?,
        sans: row.text("sans")?.lines().map(str::to_owned).collect(),
        not_before: row.int("not_before")?,
        not_after: row.int("not_after")?,
        requester: row.text("requester")?,
        status: CertStatus::parse(&row.text("status")?)?,
        created_at: row.int("created_at")?,
        cert_der: row.opt_bytes("cert_der")?,
        revocation: revocation(row)?,
    })
}

fn revocation(row: &impl Columns) -> Result<Option<Revocation>, StoreError> {
    Ok(match (row.opt_int("revoked_at")?, row.opt_int("revocation_reason")?) {
        (Some(revoked_at), Some(reason)) => Some(Revocation {
            revoked_at,
            reason: reason_code(reason)?,
            invalidity_date: row.opt_int("invalidity_date")?,
        }),
        _ => None,
    })
}

/// The entries of a CRL from rows of `serial, revoked_at, revocation_reason, invalidity_date`.
///
/// What one row cannot say must not keep the others off the CRL: a revoked certificate whose
/// revocation is unreadable is listed as unspecified; only one without a readable serial cannot
/// be listed at all.
pub(super) fn revoked_entries(rows: &[impl Columns]) -> Result<Vec<RevokedEntry>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let text = row.text("serial")?;
        let Ok(parsed) = text.parse::<Serial>() else {
            tracing::error!(serial = text, "a revoked certificate's serial in the store is unreadable: not on the CRL");
            continue;
        };
        let revocation = match revocation(row) {
            Ok(Some(r)) => r,
            other => {
                tracing::error!(serial = text, error = ?other.err(), "a revoked certificate's revocation in the store is unreadable: listed as unspecified");
                let revoked_at = row.opt_int("revoked_at").ok().flatten().unwrap_or(i64::MAX);
                Revocation { revoked_at, reason: Reason::Unspecified, invalidity_date: None }
            }
        };
        out.push(RevokedEntry { serial: parsed, revocation });
    }
    Ok(out)
}

/// A row of `serial, ca, profile, requester, issued_at, cert_der`.
pub(super) fn unlogged_certificate(row: &impl Columns) -> Result<UnloggedCertificate, StoreError> {
    Ok(UnloggedCertificate {
        serial: serial(row, "serial")?,
        ca: ca(row)?,
        origin: Origin::from_name(&row.text("profile")?),
        requester: row.text("requester")?,
        issued_at: row.int("issued_at")?,
        cert_der: row.bytes("cert_der")?,
    })
}

/// A row of `id, serial, ca, reason, at` (a revocation event joined with its certificate's CA).
pub(super) fn unlogged_revocation(row: &impl Columns) -> Result<UnloggedRevocation, StoreError> {
    Ok(UnloggedRevocation {
        event_id: row.int("id")?,
        serial: serial(row, "serial")?,
        ca: ca(row)?,
        reason: reason_code(row.int("reason")?)?,
        at: row.int("at")?,
    })
}

/// One page of [`certificate`] rows fetched with one more than `limit`, newest first: the extra
/// row says there is a next page, which starts below the last row's id.
pub(super) fn page(rows: &[impl Columns], limit: u32) -> Result<Page, StoreError> {
    let shown = &rows[..rows.len().min(limit as usize)];
    let next_page_token = match shown.last() {
        Some(last) if rows.len() > shown.len() => Some(last.int("id")?.to_string()),
        _ => None,
    };
    Ok(Page { records: shown.iter().map(certificate).collect::<Result<_, _>>()?, next_page_token })
}

/// The columns [`timestamp`] reads.
macro_rules! timestamp_columns {
    () => {
        "serial, gen_time, gen_time_us, policy, hash_alg, imprint, nonce, requester, token_der, signer"
    };
}
pub(super) use timestamp_columns;

/// A row of `timestamps` read with [`timestamp_columns`].
pub(super) fn timestamp(row: &impl Columns) -> Result<TimestampRecord, StoreError> {
    let (secs, micros) = (row.int("gen_time")?, row.int("gen_time_us")?);
    let gen_time = u64::try_from(secs)
        .ok()
        .zip(u32::try_from(micros).ok().filter(|&us| us < 1_000_000))
        .map(|(s, us)| Duration::new(s, us * 1000))
        .ok_or_else(|| StoreError::Database(format!("bad genTime {secs}.{micros:06}")))?;
    Ok(TimestampRecord {
        serial: parse(row, "serial")?,
        gen_time,
        policy: parse(row, "policy")?,
        hash_alg: parse(row, "hash_alg")?,
        imprint: row.bytes("imprint")?,
        nonce: row.opt_bytes("nonce")?,
        requester: row.text("requester")?,
        token_der: row.bytes("token_der")?,
        signer: sha256(row, "signer")?,
    })
}

/// The columns [`signature`] reads.
macro_rules! signature_columns {
    () => {
        "signature_id, signed_at, policy, level, detached, digest_alg, digest, signer_serial, signer_issuer, \
         signature_hash, timestamp_serial, requester, signer"
    };
}
pub(super) use signature_columns;

/// A row of `signatures` read with [`signature_columns`].
pub(super) fn signature(row: &impl Columns) -> Result<SignatureRecord, StoreError> {
    Ok(SignatureRecord {
        signature_id: parse(row, "signature_id")?,
        signed_at: row.int("signed_at")?,
        policy: row.text("policy")?,
        level: parse(row, "level")?,
        detached: row.boolean("detached")?,
        digest_alg: parse(row, "digest_alg")?,
        digest: row.bytes("digest")?,
        signer_serial: parse(row, "signer_serial")?,
        signer_issuer: row.text("signer_issuer")?,
        signature_hash: sha256(row, "signature_hash")?,
        timestamp_serial: row
            .opt_text("timestamp_serial")?
            .map(|s| s.parse())
            .transpose()
            .map_err(StoreError::Database)?,
        requester: row.text("requester")?,
        signer: sha256(row, "signer")?,
    })
}

/// A value bound into an insertion, of the types the schema uses: the insertions of records
/// are built once here, and each backend binds the values with [`impl_columns`]'s `bind`.
pub(super) enum Value {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
    Bytes(Vec<u8>),
    OptBytes(Option<Vec<u8>>),
}

/// The head of the insertion of time-stamp records whose rows [`timestamp_values`] gives.
pub(super) const INSERT_TIMESTAMPS: &str = "INSERT INTO timestamps (serial, gen_time, gen_time_us, policy, hash_alg, \
     imprint, nonce, requester, token_der, signer, log_index) ";

/// A row of [`INSERT_TIMESTAMPS`]: 11 values.
pub(super) fn timestamp_values(r: &TimestampRecord, log_index: Option<i64>) -> Vec<Value> {
    use Value::*;
    vec![
        Text(r.serial.to_string()),
        Int(i64::try_from(r.gen_time.as_secs()).unwrap_or(i64::MAX)),
        Int(i64::from(r.gen_time.subsec_micros())),
        Text(r.policy.to_string()),
        Text(r.hash_alg.to_string()),
        Bytes(r.imprint.clone()),
        OptBytes(r.nonce.clone()),
        Text(r.requester.clone()),
        Bytes(r.token_der.clone()),
        Bytes(r.signer.to_vec()),
        OptInt(log_index),
    ]
}

/// The head of the insertion of signature records whose rows [`signature_values`] gives.
pub(super) const INSERT_SIGNATURES: &str = "INSERT INTO signatures (signature_id, signed_at, policy, level, detached, \
     digest_alg, digest, signer_serial, signer_issuer, signature_hash, timestamp_serial, requester, signer, log_index) ";

/// A row of [`INSERT_SIGNATURES`]: 14 values.
pub(super) fn signature_values(r: &SignatureRecord, log_index: Option<i64>) -> Vec<Value> {
    use Value::*;
    vec![
        Text(r.signature_id.to_string()),
        Int(r.signed_at),
        Text(r.policy.clone()),
        Text(r.level.to_string()),
        Bool(r.detached),
        Text(r.digest_alg.to_string()),
        Bytes(r.digest.clone()),
        Text(r.signer_serial.to_string()),
        Text(r.signer_issuer.clone()),
        Bytes(r.signature_hash.to_vec()),
        OptText(r.timestamp_serial.as_ref().map(ToString::to_string)),
        Text(r.requester.clone()),
        Bytes(r.signer.to_vec()),
        OptInt(log_index),
    ]
}

/// Records a CSC authorization: see [`Store::record_csc_authorization`].
pub(super) async fn insert_csc_authorization<DB>(
    pool: &sqlx::Pool<DB>,
    a: &super::CscAuthorization,
    now: i64,
) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>("DELETE FROM csc_authorizations WHERE expires_at < $1")
        .bind(now.saturating_sub(3600))
        .execute(pool)
        .await
        .map_err(db)?;
    let mut hashes = a.hashes.clone();
    hashes.sort();
    sqlx::query::<DB>(
        "INSERT INTO csc_authorizations (sad_sha256, client, credential, hashes, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(a.sad_sha256.as_str())
    .bind(a.client.as_str())
    .bind(a.credential.as_str())
    .bind(hashes.join(","))
    .bind(a.expires_at)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

/// Uses a CSC authorization: see [`Store::use_csc_authorization`].
pub(super) async fn use_csc_authorization<DB>(
    pool: &sqlx::Pool<DB>,
    sad_sha256: &str,
    client: &str,
    credential: &str,
    now: i64,
) -> Result<Option<Vec<String>>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let hashes: Option<String> = sqlx::query_scalar::<DB, String>(
        "UPDATE csc_authorizations SET used_at = $5 WHERE sad_sha256 = $1 AND client = $2 AND credential = $3 \
         AND used_at IS NULL AND expires_at > $4 RETURNING hashes",
    )
    .bind(sad_sha256)
    .bind(client)
    .bind(credential)
    .bind(now)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(hashes.map(|h| h.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()))
}

/// Records an access token: see [`Store::record_access_token`].
pub(super) async fn insert_access_token<DB>(
    pool: &sqlx::Pool<DB>,
    t: &super::AccessToken,
    now: i64,
) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>("DELETE FROM oauth2_tokens WHERE expires_at < $1")
        .bind(now.saturating_sub(3600))
        .execute(pool)
        .await
        .map_err(db)?;
    sqlx::query::<DB>(
        "INSERT INTO oauth2_tokens (token_sha256, client, secret_sha256, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(t.token_sha256.as_str())
    .bind(t.client.as_str())
    .bind(t.secret_sha256.as_str())
    .bind(t.expires_at)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

/// An unexpired access token: see [`Store::access_token`].
pub(super) async fn access_token<DB>(
    pool: &sqlx::Pool<DB>,
    token_sha256: &str,
    now: i64,
) -> Result<Option<super::AccessToken>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String, String, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let row: Option<(String, String, i64)> = sqlx::query_as::<DB, (String, String, i64)>(
        "SELECT client, secret_sha256, expires_at FROM oauth2_tokens WHERE token_sha256 = $1 AND expires_at > $2",
    )
    .bind(token_sha256)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(row.map(|(client, secret_sha256, expires_at)| super::AccessToken {
        token_sha256: token_sha256.to_owned(),
        client,
        secret_sha256,
        expires_at,
    }))
}

macro_rules! csc_credentials {
    () => {
        "SELECT id, client, policy, key_uri, certificate, created_at, disabled_at FROM csc_credentials"
    };
}
/// Every CSC credential, oldest first.
pub(super) const CSC_CREDENTIALS: &str = concat!(csc_credentials!(), " ORDER BY created_at, id");
/// A client's CSC credentials, oldest first.
pub(super) const CSC_CREDENTIALS_OF: &str = concat!(csc_credentials!(), " WHERE client = $1 ORDER BY created_at, id");
/// One CSC credential by ID.
pub(super) const CSC_CREDENTIAL: &str = concat!(csc_credentials!(), " WHERE id = $1");

/// A `csc_credentials` row.
pub(super) fn csc_credential(row: &impl Columns) -> Result<super::CscCredential, StoreError> {
    use base64::Engine;
    let damaged = |what: &str| StoreError::Database(format!("damaged CSC credential row: {what}"));
    let key: String = row.text("key_uri")?;
    let certificate: String = row.text("certificate")?;
    Ok(super::CscCredential {
        id: row.text("id")?,
        client: row.text("client")?,
        policy: row.text("policy")?,
        key: crate::keys::KeyRef::parse(&key).map_err(|_| damaged("key_uri"))?,
        certificate_der: base64::engine::general_purpose::STANDARD
            .decode(certificate)
            .map_err(|_| damaged("certificate"))?,
        created_at: row.int("created_at")?,
        disabled_at: row.opt_int("disabled_at")?,
    })
}

/// Records a CSC credential: see [`Store::record_csc_credential`].
pub(super) async fn insert_csc_credential<DB>(pool: &sqlx::Pool<DB>, c: &super::CscCredential) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    use base64::Engine;
    sqlx::query::<DB>(
        "INSERT INTO csc_credentials (id, client, policy, key_uri, certificate, created_at, disabled_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(c.id.as_str())
    .bind(c.client.as_str())
    .bind(c.policy.as_str())
    .bind(c.key.to_string())
    .bind(base64::engine::general_purpose::STANDARD.encode(&c.certificate_der))
    .bind(c.created_at)
    .bind(c.disabled_at)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

/// A client's CSC credentials, or everyone's: see [`Store::csc_credentials`].
pub(super) async fn csc_credentials<DB>(
    pool: &sqlx::Pool<DB>,
    client: Option<&str>,
    read: fn(&DB::Row) -> Result<super::CscCredential, StoreError>,
) -> Result<Vec<super::CscCredential>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let Some(client) = client else { return read_all(pool, CSC_CREDENTIALS, read).await };
    let rows = sqlx::query::<DB>(CSC_CREDENTIALS_OF).bind(client).fetch_all(pool).await.map_err(db)?;
    rows.iter().map(read).collect()
}

/// Disables a CSC credential: see [`Store::disable_csc_credential`].
pub(super) async fn disable_csc_credential<DB>(
    pool: &sqlx::Pool<DB>,
    id: &str,
    at: i64,
    read: fn(&DB::Row) -> Result<super::CscCredential, StoreError>,
) -> Result<Option<super::CscCredential>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>("UPDATE csc_credentials SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL")
        .bind(id)
        .bind(at)
        .execute(pool)
        .await
        .map_err(db)?;
    let row = sqlx::query::<DB>(CSC_CREDENTIAL).bind(id).fetch_optional(pool).await.map_err(db)?;
    row.as_ref().map(read).transpose()
}

/// Takes or renews a lease: see [`Store::take_lease`].
pub(super) async fn take_lease<DB>(
    pool: &sqlx::Pool<DB>,
    name: &str,
    holder: &str,
    now: i64,
    expires_at: i64,
) -> Result<bool, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    // One statement, atomic on either backend: a row is written (and returned) only where there
    // was none, it is the holder's own, or it expired.
    let held: Option<String> = sqlx::query_scalar::<DB, String>(
        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE leases.holder = excluded.holder OR leases.expires_at <= $4 RETURNING holder",
    )
    .bind(name)
    .bind(holder)
    .bind(expires_at)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(held.is_some())
}

/// Gives a lease up: see [`Store::release_lease`].
pub(super) async fn release_lease<DB>(pool: &sqlx::Pool<DB>, name: &str, holder: &str) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>("DELETE FROM leases WHERE name = $1 AND holder = $2")
        .bind(name)
        .bind(holder)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

/// How many signed checkpoints the store keeps.
const CHECKPOINTS_KEPT: i64 = 16;

/// Records a signed checkpoint: see [`LogStore::record_checkpoint`].
pub(super) async fn record_checkpoint<DB>(
    pool: &sqlx::Pool<DB>,
    c: &crate::log::StoredCheckpoint,
) -> Result<(), LogError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let size = sql_index(c.size.0)?;
    sqlx::query::<DB>(
        "INSERT INTO log_checkpoints (size, note, signed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (size) DO UPDATE SET note = excluded.note, signed_at = excluded.signed_at",
    )
    .bind(size)
    .bind(c.note.as_slice())
    .bind(c.signed_at_ms)
    .execute(pool)
    .await
    .map_err(log_db)?;
    sqlx::query::<DB>(
        "DELETE FROM log_checkpoints WHERE size < \
         (SELECT MIN(size) FROM (SELECT size FROM log_checkpoints ORDER BY size DESC LIMIT $1) AS kept)",
    )
    .bind(CHECKPOINTS_KEPT)
    .execute(pool)
    .await
    .map_err(log_db)?;
    Ok(())
}

/// The newest signed checkpoint above a size: see [`LogStore::newest_checkpoint`].
pub(super) async fn newest_checkpoint<DB>(
    pool: &sqlx::Pool<DB>,
    above: crate::log::TreeSize,
) -> Result<Option<crate::log::StoredCheckpoint>, LogError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64, Vec<u8>, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let row: Option<(i64, Vec<u8>, i64)> = sqlx::query_as::<DB, (i64, Vec<u8>, i64)>(
        "SELECT size, note, signed_at FROM log_checkpoints WHERE size > $1 ORDER BY size DESC LIMIT 1",
    )
    .bind(sql_index(above.0)?)
    .fetch_optional(pool)
    .await
    .map_err(log_db)?;
    row.map(|(size, note, signed_at_ms)| {
        Ok(crate::log::StoredCheckpoint { size: crate::log::TreeSize(leaf_index(size)?), note, signed_at_ms })
    })
    .transpose()
}
