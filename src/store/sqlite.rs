//! The embedded SQLite store (WAL, synchronous=FULL so a commit is durable when it returns).
//! Two exceptions, on the records connection: pending certificates' commits, and log batches
//! that store issued certificates, which are flushed after SQLite's write lock is released
//! ([`WalFlush`]); see `UNSYNCED`.

use super::rows::{
    self, certificate_columns, db, impl_columns, leaf_index, log_db, log_store, now, signature_columns, sql_index,
    timestamp_columns, unlogged_certificates, BatchRows, INSERT_SIGNATURES, INSERT_TIMESTAMPS,
};
use super::wal_flush::WalFlush;
use super::{
    CertStatus, CertificateRecord, ListQuery, NewCertificate, Page, Revocation, RevokedEntry, Role, SignatureRecord,
    Store, StoreError, StoredCrl, TimestampRecord, UnloggedCertificate, UnloggedRevocation,
};
use crate::ca_id::CaId;
use crate::log::{Hash, HashIndex, LeafIndex, LogBatch, LogError, LogStore, Sha256, TreeSize};
use crate::revocation::Reason;
use crate::serial::Serial;
use async_trait::async_trait;
use sqlx::query_builder::Separated;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// SQLite through sqlx.
pub struct SqliteStore {
    pool: SqlitePool,
    /// The connection the group-commit writers (time-stamps, signatures) write on, kept out of
    /// the pool: SQLite drops a connection's page cache whenever another connection wrote since
    /// its last transaction, and batches written through whichever pooled connection was idle
    /// re-read the index pages they were about to change (measured under TSA load: ~10 reads
    /// a commit, ~1 with this connection).
    records: tokio::sync::Mutex<sqlx::SqliteConnection>,
    /// Flushes the records connection's commits made with [`UNSYNCED`].
    wal: WalFlush,
    /// The number ([`WalFlush::committed`]) of the last log batch's commit.
    last_batch: AtomicU64,
    checkpointer: tokio::task::AbortHandle,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

/// How often the WAL is copied into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);
/// WAL length (pages of 4 KiB) past which a checkpoint waits for the writer so that the WAL
/// starts afresh: 64 MiB.
const WAL_RESTART_PAGES: i64 = 16_384;

/// Starts a script on the records connection whose commit must be durable when it returns: the
/// WAL is fsynced at commit. Every script on that connection states how it commits, because
/// the connection keeps the last mode set.
const SYNCED: &str = "PRAGMA synchronous = FULL; ";
/// Starts a script on the records connection whose commit is written to the WAL but not
/// fsynced at commit.
///
/// The pending certificates: a pending record must be in the store before the HSM signs (so
/// that a signature whose daemon crashes is known and abandoned at the next start), and a
/// daemon's crash keeps what it wrote to the WAL. Only a power loss needs the flush, and the
/// commit that stores the certificate issued (or abandoned), before anything is handed out,
/// flushes the same WAL past the pending record.
///
/// And a log batch that stores issued certificates: it is flushed by
/// [`LogStore::log_durable`] before the batch's callers are answered, and the pending records
/// of the issuances behind it are written meanwhile instead of waiting for the disk under
/// SQLite's write lock. Other batches flush at commit: with no pending records to let in, a
/// flush after the lock is released only adds a hop to another thread to each batch.
const UNSYNCED: &str = "PRAGMA synchronous = NORMAL; ";

/// Copies the WAL into the database file beside the writer rather than inside a commit.
///
/// SQLite's own checkpoint (every 1000 pages) runs in the commit that crosses the mark: that
/// commit copies megabytes and fsyncs the database file while its group-commit batch and every
/// batch behind it wait; under a TSA load that made single commits take 20–50 ms, the p99 of
/// time-stamping. A PASSIVE checkpoint on another connection does the copying in parallel
/// without blocking the writer. Under a steady stream of commits it seldom finds the WAL fully
/// copied, and SQLite only starts the WAL afresh after that; so once the WAL passes
/// [`WAL_RESTART_PAGES`] a RESTART checkpoint holds writers back while it copies the rest
/// (little: the PASSIVE ones kept up), fsyncs the database file and waits for readers of the
/// old WAL (single statements here), and the next commit starts the WAL afresh.
///
/// A PASSIVE checkpoint that ends behind the writer copies pages without fsyncing the database
/// file (SQLite syncs it only when the copy reached the WAL's end: the WAL still holds what is
/// not synced), so under load the copied pages stayed dirty in the page cache until the
/// RESTART's fsync wrote them all back at once, tens of megabytes of scattered pages, with the
/// writer's commits (their WAL fsyncs queued behind that write-back) held for as long: the p99
/// of issuance at c=64. Each pass that copied pages is therefore followed by a write-back of
/// its own ([`flush_filesystem`]), outside every SQLite lock, so that the write-back comes in
/// small, even pieces and the RESTART's fsync finds little to write.
async fn checkpoint_wal(pool: SqlitePool, dir: PathBuf) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    // Pages the last pass found copied: the database file has unsynced pages when it differs.
    let mut copied_before = 0;
    loop {
        tick.tick().await;
        let passive: Result<(i64, i64, i64), _> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&pool).await;
        if let Ok((_, _, copied)) = passive {
            if copied != copied_before {
                let dir = dir.clone();
                // The write-back is only an early start of what SQLite's next sync does anyway:
                // if the task fails, that sync does all of it.
                let _ = tokio::task::spawn_blocking(move || flush_filesystem(&dir)).await;
                copied_before = copied;
            }
        }
        let result = match passive {
            Ok((_, wal_pages, _)) if wal_pages > WAL_RESTART_PAGES => {
                copied_before = 0;
                sqlx::query("PRAGMA wal_checkpoint(RESTART)").execute(&pool).await.map(|_| ())
            }
            r => r.map(|_| ()),
        };
        match result {
            Err(_) if pool.is_closed() => return,
            // Logged when it starts and stops failing, not four times a second.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "SQLite WAL checkpoint failed; retrying");
            }
            Ok(()) if failing => {
                failing = false;
                tracing::info!("SQLite WAL checkpoints work again");
            }
            _ => {}
        }
    }
}

/// Writes back the dirty pages of the filesystem holding the database (`dir`, its directory).
///
/// syncfs(2), because fsyncing the database file itself would need a descriptor of our own for
/// it, and closing that descriptor drops every POSIX lock this process holds on the file,
/// SQLite's included (its unix VFS shares one set of locks between its own descriptors only).
#[cfg(target_os = "linux")]
fn flush_filesystem(dir: &Path) {
    use std::os::fd::AsRawFd;
    let flushed = std::fs::File::open(dir).and_then(|d| {
        // SAFETY: `d` is an open descriptor for the duration of the call.
        match unsafe { libc::syncfs(d.as_raw_fd()) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    });
    if let Err(e) = flushed {
        tracing::debug!(dir = %dir.display(), error = %e, "early write-back of the database failed");
    }
}

/// Elsewhere SQLite's own sync at the RESTART writes everything back.
#[cfg(not(target_os = "linux"))]
fn flush_filesystem(_dir: &Path) {}

impl_columns!(SqliteRow);

/// Binds a [`Value`](rows::Value) as the next of a row's values.
fn bind(row: &mut Separated<'_, sqlx::Sqlite, &'static str>, v: rows::Value) {
    use rows::Value::*;
    match v {
        Text(v) => row.push_bind(v),
        OptText(v) => row.push_bind(v),
        Int(v) => row.push_bind(v),
        OptInt(v) => row.push_bind(v),
        Bool(v) => row.push_bind(v),
        Bytes(v) => row.push_bind(v),
        OptBytes(v) => row.push_bind(v),
    };
}

/// Adds to `q` one multi-row INSERT (a single statement is atomic) of `values`' rows after
/// `head`. 14 parameters a row at most, for at most `batch::MAX_BATCH` rows (a power of two, so
/// padding never goes beyond it), stays far below SQLite's limit of 32766 a statement.
fn push_rows(q: &mut sqlx::QueryBuilder<sqlx::Sqlite>, head: &str, values: Vec<Vec<rows::Value>>) {
    let width = values.first().map_or(0, Vec::len);
    push_insert(q, head, width, values, |row, values| values.into_iter().for_each(|v| bind(row, v)));
}

/// Adds to `q` the INSERT `head` of `rows`, each bound by `bind_row` as `width` values, through
/// [`push_padded_values`]; the padding is skipped by the first column, which no row leaves NULL.
/// (The WHERE also tells SQLite's parser that an ON CONFLICT after it is the upsert's.)
fn push_insert<T>(
    q: &mut sqlx::QueryBuilder<sqlx::Sqlite>,
    head: &str,
    width: usize,
    rows: Vec<T>,
    bind_row: impl FnMut(&mut Separated<'_, sqlx::Sqlite, &'static str>, T),
) {
    q.push(head).push("SELECT * FROM (");
    push_padded_values(q, width, rows, bind_row);
    q.push(") WHERE column1 IS NOT NULL");
}

/// Adds to `q` a VALUES list of `rows`, each bound by `bind_row` as `width` values, padded with
/// rows of NULLs to the next power of two, so that the text of a batch's script repeats and
/// sqlx's statement cache (keyed by the text) finds it prepared. With the row counts written out,
/// nearly every batch's script was new, and SQLite parsed and planned it again on the one thread
/// that writes (README, Performance). The statements skip the padding: the INSERTs by their
/// first column ([`push_insert`]), the UPDATEs because a NULL key matches no row.
fn push_padded_values<T>(
    q: &mut sqlx::QueryBuilder<sqlx::Sqlite>,
    width: usize,
    rows: Vec<T>,
    mut bind_row: impl FnMut(&mut Separated<'_, sqlx::Sqlite, &'static str>, T),
) {
    let padding = rows.len().next_power_of_two() - rows.len();
    let padded = rows.into_iter().map(Some).chain(std::iter::repeat_with(|| None).take(padding));
    q.push_values(padded, |mut row, r| match r {
        Some(r) => bind_row(&mut row, r),
        None => {
            for _ in 0..width {
                row.push_bind(None::<i64>);
            }
        }
    });
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs the migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Checkpoints run in `checkpoint_wal` instead.
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts.clone()).await.map_err(db)?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await.map_err(|e| StoreError::Database(e.to_string()))?;
        let records = tokio::sync::Mutex::new(opts.connect().await.map_err(db)?);
        let wal = WalFlush::open(path)?;
        let checkpointer = tokio::spawn(checkpoint_wal(pool.clone(), super::directory_of(path))).abort_handle();
        Ok(SqliteStore { pool, records, wal, last_batch: AtomicU64::new(0), checkpointer })
    }

    /// Inserts a certificate record: `pending` with its TBS, or, given the certificate,
    /// `issued` in the same single statement.
    async fn insert_certificate(&self, c: &NewCertificate, cert_der: Option<&[u8]>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO certificates (serial, ca, profile, subject, sans, not_before, not_after, requester, \
             status, tbs_der, created_at, cert_der, issued_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, CASE WHEN ?11 IS NULL THEN 'pending' ELSE 'issued' END, \
             CASE WHEN ?11 IS NULL THEN ?9 ELSE X'' END, ?10, ?11, CASE WHEN ?11 IS NULL THEN NULL ELSE ?10 END)",
        )
        .bind(c.serial.to_string())
        .bind(c.ca.name())
        .bind(c.origin.name())
        .bind(&c.subject)
        .bind(c.sans.join("\n"))
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(&c.requester)
        .bind(&c.tbs_der)
        .bind(now())
        .bind(cert_der)
        .execute(&self.pool)
        .await
        .map_err(|e| rows::duplicate(e, &c.serial))?;
        Ok(())
    }

    /// Inserts records on their own (the log off): a single INSERT, atomic without a
    /// transaction, durable when this returns.
    async fn insert_records(&self, head: &str, values: Vec<Vec<rows::Value>>, what: &str) -> Result<(), StoreError> {
        self.wal.check()?;
        let mut q = sqlx::QueryBuilder::new(SYNCED);
        push_rows(&mut q, head, values);
        let mut conn = self.records.lock().await;
        q.build().execute(&mut *conn).await.map_err(|e| rows::reused(e, what))?;
        self.wal.synced(self.wal.committed());
        Ok(())
    }

    async fn set_status(
        &self,
        serial: &Serial,
        from: CertStatus,
        to: CertStatus,
        der: Option<&[u8]>,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        let r = sqlx::query(
            "UPDATE certificates SET status = ?1, cert_der = COALESCE(?2, cert_der), \
             tbs_der = CASE WHEN ?2 IS NULL THEN tbs_der ELSE X'' END, \
             issued_at = CASE WHEN ?2 IS NULL THEN issued_at ELSE ?3 END, note = COALESCE(?4, note) \
             WHERE serial = ?5 AND status = ?6",
        )
        .bind(to.as_str())
        .bind(der)
        .bind(now())
        .bind(note)
        .bind(serial.to_string())
        .bind(from.as_str())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        match r.rows_affected() {
            1 => Ok(()),
            _ => Err(rows::not_moved(self, serial, from).await),
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn record_pending(&self, certs: &[NewCertificate]) -> Result<Vec<bool>, StoreError> {
        // One statement, so one transaction for the batch, committed unsynced (see
        // `UNSYNCED`); a serial used before is skipped (ON CONFLICT) rather than failing the
        // others, and told by RETURNING.
        self.wal.check()?;
        let fresh = rows::first_of_each(certs);
        if fresh.is_empty() {
            return Ok(vec![false; certs.len()]);
        }
        let at = now();
        let mut q = sqlx::QueryBuilder::new(UNSYNCED);
        push_rows(&mut q, rows::INSERT_PENDING, fresh.iter().map(|c| rows::pending_values(c, at)).collect());
        q.push(" ON CONFLICT (serial) DO NOTHING RETURNING serial");
        let recorded: std::collections::HashSet<String> = {
            let mut conn = self.records.lock().await;
            let recorded = q.build_query_scalar().fetch_all(&mut *conn).await.map_err(db)?;
            self.wal.committed();
            recorded.into_iter().collect()
        };
        Ok(rows::pending_answers(certs, &recorded))
    }

    async fn record_issued(&self, c: &NewCertificate, cert_der: &[u8]) -> Result<(), StoreError> {
        self.insert_certificate(c, Some(cert_der)).await
    }

    async fn complete_issued(&self, serial: &Serial, cert_der: &[u8]) -> Result<(), StoreError> {
        self.set_status(serial, CertStatus::Pending, CertStatus::Issued, Some(cert_der), None).await
    }

    async fn abandon(&self, serial: &Serial, reason: &str) -> Result<(), StoreError> {
        self.set_status(serial, CertStatus::Pending, CertStatus::Abandoned, None, Some(reason)).await
    }

    async fn abandon_pending_created_before(&self, before: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE certificates SET status = 'abandoned', note = 'daemon stopped before signing completed' \
             WHERE status = 'pending' AND created_at < ?",
        )
        .bind(before)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(r.rows_affected())
    }

    async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", certificate_columns!(), " FROM certificates WHERE serial = ?"))
            .bind(serial.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(rows::certificate).transpose()
    }

    async fn list_certificates(&self, q: &ListQuery) -> Result<Page, StoreError> {
        let before: i64 = match &q.page_token {
            Some(t) => t.parse().map_err(|_| StoreError::BadPageToken)?,
            None => i64::MAX,
        };
        let limit = q.limit.clamp(1, 1000);
        let rows = rows::list_query(q, before, limit, "instr").build().fetch_all(&self.pool).await.map_err(db)?;
        rows::page(&rows, limit)
    }

    async fn set_revocation(
        &self,
        serial: &Serial,
        expected: Option<Revocation>,
        new: Option<Revocation>,
        requester: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let (from, to) = match (expected.is_some(), new.is_some()) {
            (false, _) => ("issued", "revoked"),
            (true, true) => ("revoked", "revoked"),
            (true, false) => ("revoked", "issued"),
        };
        let r = sqlx::query(
            "UPDATE certificates SET status = ?1, revoked_at = ?2, revocation_reason = ?3, invalidity_date = ?4 \
             WHERE serial = ?5 AND status = ?6 AND revocation_reason IS ?7",
        )
        .bind(to)
        .bind(new.map(|n| n.revoked_at))
        .bind(new.map(|n| n.reason as i64))
        .bind(new.and_then(|n| n.invalidity_date))
        .bind(serial.to_string())
        .bind(from)
        .bind(expected.map(|e| e.reason as i64))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if r.rows_affected() != 1 {
            return Err(StoreError::Conflict(serial.clone()));
        }
        let (action, reason) = match new {
            Some(n) => ("revoke", n.reason),
            // removeFromCRL (RFC 5280 §5.3.1) is what releasing a hold is called.
            None => ("release", Reason::RemoveFromCrl),
        };
        let event =
            sqlx::query("INSERT INTO revocation_events (serial, action, reason, at, requester) VALUES (?, ?, ?, ?, ?)")
                .bind(serial.to_string())
                .bind(action)
                .bind(reason as i64)
                .bind(now())
                .bind(requester)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .last_insert_rowid();
        sqlx::query("UPDATE revocation_generation SET generation = generation + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(event)
    }

    async fn revocation_generation(&self) -> Result<u64, StoreError> {
        rows::read_count(&self.pool, rows::REVOCATION_GENERATION).await
    }

    async fn unlogged_certificates(&self, limit: u32) -> Result<Vec<UnloggedCertificate>, StoreError> {
        let rows = sqlx::query(concat!(unlogged_certificates!(), " LIMIT ?"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(rows::unlogged_certificate).collect()
    }

    async fn unlogged_revocations(&self, settled: Duration, limit: u32) -> Result<Vec<UnloggedRevocation>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, e.serial, c.ca, e.reason, e.at FROM revocation_events e \
             JOIN certificates c ON c.serial = e.serial WHERE e.log_index IS NULL AND e.at <= ? ORDER BY e.id LIMIT ?",
        )
        .bind(rows::settled_before(settled))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::unlogged_revocation).collect()
    }

    async fn unlogged_timestamps(&self, limit: u32) -> Result<Vec<TimestampRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            timestamp_columns!(),
            " FROM timestamps WHERE log_index IS NULL AND signer IS NOT NULL ORDER BY id LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::timestamp).collect()
    }

    async fn unlogged_signatures(&self, limit: u32) -> Result<Vec<SignatureRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            signature_columns!(),
            " FROM signatures WHERE log_index IS NULL AND signer IS NOT NULL ORDER BY id LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::signature).collect()
    }

    async fn logged_ceremony_keys(&self) -> Result<Vec<Sha256>, StoreError> {
        rows::read_all(&self.pool, rows::CEREMONY_KEYS, rows::ceremony_key).await
    }

    async fn revoked(&self, ca: CaId) -> Result<Vec<RevokedEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT serial, revoked_at, revocation_reason, invalidity_date FROM certificates \
             WHERE ca = ? AND status = 'revoked' ORDER BY id",
        )
        .bind(ca.name())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows::revoked_entries(&rows)
    }

    async fn next_crl_number(&self, ca: CaId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "INSERT INTO crl_numbers (ca, last_number) VALUES (?, 1) \
             ON CONFLICT (ca) DO UPDATE SET last_number = last_number + 1 RETURNING last_number",
        )
        .bind(ca.name())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(n as u64)
    }

    async fn record_crl(&self, crl: &StoredCrl) -> Result<(), StoreError> {
        let (number, oldest_kept) = rows::crl_numbers(crl)?;
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("INSERT INTO published_crls (ca, number, this_update, next_update, der) VALUES (?, ?, ?, ?, ?)")
            .bind(crl.ca.name())
            .bind(number)
            .bind(crl.this_update)
            .bind(crl.next_update)
            .bind(&crl.der)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM published_crls WHERE ca = ? AND number < ?")
            .bind(crl.ca.name())
            .bind(oldest_kept)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn newest_crl(&self, ca: CaId, above: u64) -> Result<Option<StoredCrl>, StoreError> {
        let above = i64::try_from(above).unwrap_or(i64::MAX);
        let row =
            sqlx::query(rows::NEWEST_CRL).bind(ca.name()).bind(above).fetch_optional(&self.pool).await.map_err(db)?;
        row.as_ref().map(rows::stored_crl).transpose()
    }

    async fn record_service_key(&self, key: &super::RolledKey) -> Result<(), StoreError> {
        rows::insert_service_key(&self.pool, key).await
    }

    async fn put_service_key_in_service(
        &self,
        role: crate::service_role::ServiceRole,
        generation: u32,
        at: i64,
    ) -> Result<(), StoreError> {
        rows::put_service_key_in_service(&self.pool, role, generation, at).await
    }

    async fn service_keys(&self) -> Result<Vec<super::RolledKey>, StoreError> {
        rows::read_all(&self.pool, rows::SERVICE_KEYS, rows::rolled_key).await
    }

    async fn record_csc_authorization(&self, a: &super::CscAuthorization, now: i64) -> Result<(), StoreError> {
        rows::insert_csc_authorization(&self.pool, a, now).await
    }

    async fn take_lease(&self, name: &str, holder: &str, now: i64, expires_at: i64) -> Result<bool, StoreError> {
        rows::take_lease(&self.pool, name, holder, now, expires_at).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        rows::release_lease(&self.pool, name, holder).await
    }

    async fn record_access_token(&self, t: &super::AccessToken, now: i64) -> Result<(), StoreError> {
        rows::insert_access_token(&self.pool, t, now).await
    }

    async fn access_token(&self, token_sha256: &str, now: i64) -> Result<Option<super::AccessToken>, StoreError> {
        rows::access_token(&self.pool, token_sha256, now).await
    }

    async fn record_csc_credential(&self, c: &super::CscCredential) -> Result<(), StoreError> {
        rows::insert_csc_credential(&self.pool, c).await
    }

    async fn csc_credentials(&self, client: Option<&str>) -> Result<Vec<super::CscCredential>, StoreError> {
        rows::csc_credentials(&self.pool, client, rows::csc_credential).await
    }

    async fn disable_csc_credential(&self, id: &str, at: i64) -> Result<Option<super::CscCredential>, StoreError> {
        rows::disable_csc_credential(&self.pool, id, at, rows::csc_credential).await
    }

    async fn use_csc_authorization(
        &self,
        sad_sha256: &str,
        client: &str,
        credential: &str,
        now: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        rows::use_csc_authorization(&self.pool, sad_sha256, client, credential, now).await
    }

    async fn record_timestamps(&self, records: &[TimestampRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let rows = records.iter().map(|r| rows::timestamp_values(r, None)).collect();
        self.insert_records(rows::INSERT_TIMESTAMPS, rows, "time-stamp serial").await
    }

    async fn count_timestamps(&self) -> Result<u64, StoreError> {
        rows::read_count(&self.pool, rows::COUNT_TIMESTAMPS).await
    }

    async fn record_signatures(&self, records: &[SignatureRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let rows = records.iter().map(|r| rows::signature_values(r, None)).collect();
        self.insert_records(rows::INSERT_SIGNATURES, rows, "signature id").await
    }

    async fn count_signatures(&self) -> Result<u64, StoreError> {
        rows::read_count(&self.pool, rows::COUNT_SIGNATURES).await
    }

    async fn ping(&self) -> Result<Role, StoreError> {
        // A failed flush of the WAL makes the store unusable until a restart.
        self.wal.check()?;
        // BEGIN IMMEDIATE takes the write lock: proves the database is writable, changes nothing.
        let mut conn = self.pool.acquire().await.map_err(db)?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await.map_err(db)?;
        sqlx::query("ROLLBACK").execute(&mut *conn).await.map_err(db)?;
        Ok(Role::Primary)
    }

    #[cfg(test)]
    async fn execute_raw(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&self.pool).await.unwrap();
    }
}

#[cfg(test)]
impl SqliteStore {
    /// The records connection's `PRAGMA synchronous` now: 1 NORMAL, 2 FULL.
    pub(super) async fn records_synchronous(&self) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *self.records.lock().await).await.unwrap()
    }

    /// Statements prepared and kept on the records connection.
    pub(super) async fn records_prepared(&self) -> usize {
        use sqlx::Connection;
        self.records.lock().await.cached_statements_size()
    }

    /// Commits counted and known durable on the records connection.
    pub(super) fn wal_counts(&self) -> (u64, u64) {
        self.wal.counts()
    }

    /// The length of the TBS stored with certificate `serial`.
    pub(super) async fn tbs_len(&self, serial: &Serial) -> i64 {
        let q = "SELECT length(tbs_der) FROM certificates WHERE serial = ?";
        sqlx::query_scalar(q).bind(serial.to_string()).fetch_one(&self.pool).await.unwrap()
    }
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn record_checkpoint(&self, c: &crate::log::StoredCheckpoint) -> Result<(), LogError> {
        rows::record_checkpoint(&self.pool, c).await
    }

    async fn newest_checkpoint(&self, above: TreeSize) -> Result<Option<crate::log::StoredCheckpoint>, LogError> {
        rows::newest_checkpoint(&self.pool, above).await
    }

    async fn log_durable(&self) -> Result<(), LogError> {
        let batch = self.last_batch.load(Ordering::SeqCst);
        self.wal.durable(batch).await.map_err(log_store)
    }

    async fn log_tree(&self) -> Result<(TreeSize, Hash), LogError> {
        let (size, root): (i64, Vec<u8>) = sqlx::query_as("SELECT size, root FROM log_tree WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(log_db)?;
        Ok((TreeSize(leaf_index(size)?), Hash::from_slice(&root)?))
    }

    async fn log_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, LogError> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        // One query for all of them (a proof or a tile needs up to 256). SQLite allows 32766
        // parameters; callers ask for at most a page of 1000.
        let mut q = sqlx::QueryBuilder::new("SELECT idx, hash FROM log_hashes WHERE idx IN (");
        let mut list = q.separated(", ");
        for i in indexes {
            list.push_bind(sql_index(i.0)?);
        }
        q.push(")");
        let found = q.build_query_as().fetch_all(&self.pool).await.map_err(log_db)?;
        rows::hashes_in_order(indexes, found)
    }

    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<(LeafIndex, Vec<u8>)>, LogError> {
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT idx, entry FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx")
                .bind(sql_index(start)?)
                .bind(sql_index(end)?)
                .fetch_all(&self.pool)
                .await
                .map_err(log_db)?;
        rows.into_iter().map(|(idx, entry)| Ok((LeafIndex(leaf_index(idx)?), entry))).collect()
    }

    async fn append_log_batch(&self, b: &LogBatch) -> Result<(), LogError> {
        // The whole batch is one script sent in one call (sqlx binds the parameters across its
        // statements in order): each call is a hop to sqlx's SQLite worker thread, and on a
        // loaded machine each hop waits 100–250 µs for that thread to be scheduled, which the
        // eight statements of a batch multiplied into most of the log's cost to the TSA. A
        // failing statement stops the script before COMMIT, and the ROLLBACK below undoes what
        // ran. The tree head's compare-and-set (see src/log/sequencer.rs) is the
        // `log_tree_compare_and_set` trigger: the UPDATE states the size it moves from as
        // `base`, and the database refuses it unless the row still has that size.
        let rows = BatchRows::of(b)?;
        self.wal.check().map_err(log_store)?;
        // A batch that stores issued certificates is flushed after the lock is released: the
        // issuances behind them write their pending records on the same connection meanwhile.
        let flush_later = !rows.issued.is_empty();
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(if flush_later { UNSYNCED } else { SYNCED });
        q.push("BEGIN IMMEDIATE; UPDATE log_tree SET base = ");
        q.push_bind(sql_index(b.old_size.0)?)
            .push(", size = ")
            .push_bind(sql_index(b.new_size.0)?)
            .push(", root = ")
            .push_bind(b.root.as_bytes().as_slice())
            .push(" WHERE id = 1; ");
        push_insert(&mut q, "INSERT INTO log_entries (idx, entry) ", 2, rows.entries, |row, (idx, entry)| {
            row.push_bind(idx).push_bind(entry);
        });
        if !rows.hashes.is_empty() {
            push_insert(&mut q, "; INSERT INTO log_hashes (idx, hash) ", 2, rows.hashes, |row, (idx, hash)| {
                row.push_bind(idx).push_bind(hash);
            });
        }
        for (head, values) in [(INSERT_TIMESTAMPS, rows.new_timestamps), (INSERT_SIGNATURES, rows.new_signatures)] {
            if !values.is_empty() {
                q.push("; ");
                push_rows(&mut q, head, values);
            }
        }
        if !rows.issued.is_empty() {
            // The pending records become issued with their certificates and log indexes, their
            // TBS emptied (the certificate holds it). A record abandoned meanwhile (only start-up
            // abandons, before serving) is issued too: the store then says what the log says.
            // NOT IN, so that SQLite finds the rows by the serial's unique index, not by the
            // status index (which would visit every pending and abandoned certificate for each
            // batch).
            q.push("; WITH v(k, der, idx) AS (");
            push_padded_values(&mut q, 3, rows.issued, |row, (k, der, idx)| {
                row.push_bind(k).push_bind(der).push_bind(idx);
            });
            q.push(") UPDATE certificates SET status = 'issued', tbs_der = X'', issued_at = ").push_bind(now()).push(
                ", cert_der = (SELECT der FROM v WHERE v.k = serial), \
                     log_index = (SELECT idx FROM v WHERE v.k = serial) \
                     WHERE serial IN (SELECT k FROM v) AND status NOT IN ('issued', 'revoked')",
            );
        }
        push_log_indexes(&mut q, "certificates", "serial", rows.certificates);
        push_log_indexes(&mut q, "revocation_events", "id", rows.revocation_events);
        push_log_indexes(&mut q, "timestamps", "serial", rows.timestamps);
        push_log_indexes(&mut q, "signatures", "signature_id", rows.signatures);
        if !rows.ceremony_keys.is_empty() {
            let head = "; INSERT INTO ceremony_keys (spki_sha256, log_index) ";
            push_insert(&mut q, head, 2, rows.ceremony_keys, |row, (spki, idx)| {
                row.push_bind(spki).push_bind(idx);
            });
        }
        q.push("; COMMIT");

        let mut conn = self.records.lock().await;
        match q.build().execute(&mut *conn).await {
            Ok(_) => {
                let commit = self.wal.committed();
                if !flush_later {
                    self.wal.synced(commit);
                }
                self.last_batch.store(commit, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                // Whatever ran of the script is undone; with nothing open, this fails harmlessly.
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                match e {
                    sqlx::Error::Database(d) if d.message().contains("log_tree_compare_and_set") => {
                        Err(LogError::Moved(b.old_size))
                    }
                    e => Err(log_db(e)),
                }
            }
        }
    }
}

/// Adds to the script `q` the statement setting `log_index` on the rows of `table` whose `key`
/// is in `rows`: one UPDATE for the whole batch, from a VALUES list. `table` and `key` are this
/// file's own names, never input.
fn push_log_indexes<K>(q: &mut sqlx::QueryBuilder<sqlx::Sqlite>, table: &str, key: &str, rows: Vec<(K, i64)>)
where
    K: sqlx::Encode<'static, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    if rows.is_empty() {
        return;
    }
    q.push("; WITH v(k, idx) AS (");
    push_padded_values(q, 2, rows, |row, (k, idx)| {
        row.push_bind(k).push_bind(idx);
    });
    q.push(format!(
        ") UPDATE {table} SET log_index = (SELECT idx FROM v WHERE v.k = {key}) WHERE {key} IN (SELECT k FROM v)"
    ));
}
