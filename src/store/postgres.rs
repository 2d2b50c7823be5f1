//! The PostgreSQL store, for replicas sharing one database. Every write is one statement (its
//! own transaction, durable at commit under PostgreSQL's `synchronous_commit`), so what a
//! statement states about other rows, a status it moves from or the log's size, is checked
//! under the rows' locks, against whatever another replica committed.

use super::rows::{
    self, certificate_columns, db, impl_columns, leaf_index, log_db, log_store, now, signature_columns, sql_index,
    timestamp_columns, unlogged_certificates, BatchRows,
};
use super::{
    CertStatus, CertificateRecord, ListQuery, NewCertificate, Page, Revocation, RevokedEntry, Role, SignatureRecord,
    Store, StoreError, StoredCrl, TimestampRecord, UnloggedCertificate, UnloggedRevocation,
};
use crate::ca_id::CaId;
use crate::log::{Hash, HashIndex, LeafIndex, LogBatch, LogError, LogStore, Sha256, TreeSize};
use crate::revocation::Reason;
use crate::serial::Serial;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres, QueryBuilder};
use std::time::Duration;

impl_columns!(PgRow);

/// PostgreSQL through sqlx.
pub struct PostgresStore {
    pool: PgPool,
    /// The pending certificates' one connection, whose commits do not wait for their WAL
    /// flush (`synchronous_commit = off`): see [`Store::record_pending`]. PostgreSQL's WAL is
    /// one sequence, so the durable commit that follows each of them, storing its certificate
    /// issued or abandoned, flushes it too; a crash of the server loses at most a pending
    /// record whose certificate was never handed out.
    pending: PgPool,
}

/// The schema's migrations, run on a primary and checked on a standby.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a request waits for a connection of the pool before the store reports a failure.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl PostgresStore {
    /// Connects to the database at `url` (a libpq-style `postgres://` URL; `PGPASSWORD` and the
    /// other libpq variables fill what it leaves out) with up to `max_connections`, and runs
    /// the migrations (under PostgreSQL's advisory lock, so replicas starting together apply
    /// each once). A hot standby cannot be migrated: it opens once the primary has given it the
    /// schema this trustd knows.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let opts: PgConnectOptions = url.parse().map_err(db)?;
        // One connection first: its failure says why (refused, authentication, no such
        // database), where the pool's would say only that it timed out; and a standby is told
        // apart before the migrations would fail on it.
        let mut first = opts.connect().await.map_err(db)?;
        let role = role(&mut first).await?;
        if role == Role::Standby {
            standby_schema(&mut first).await?;
        }
        first.close().await.map_err(db)?;
        // One writer task batches the pending certificates, so one connection serves them.
        let pending = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(opts.clone().options([("synchronous_commit", "off")]));
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(opts);
        if role == Role::Primary {
            MIGRATOR.run(&pool).await.map_err(|e| StoreError::Database(e.to_string()))?;
        }
        Ok(PostgresStore { pool, pending })
    }

    /// Moves a record from status `from` to `to` (with the certificate, or a note).
    async fn set_status(
        &self,
        serial: &Serial,
        from: CertStatus,
        to: CertStatus,
        der: Option<&[u8]>,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        let r = sqlx::query(
            "UPDATE certificates SET status = $1, cert_der = COALESCE($2, cert_der), \
             tbs_der = CASE WHEN $2 IS NULL THEN tbs_der ELSE ''::bytea END, \
             issued_at = CASE WHEN $2 IS NULL THEN issued_at ELSE $3 END, note = COALESCE($4, note) \
             WHERE serial = $5 AND status = $6",
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

/// A hot standby (in recovery, read-only) or a primary.
async fn role<'c, E: sqlx::Executor<'c, Database = Postgres>>(e: E) -> Result<Role, StoreError> {
    let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(e).await.map_err(db)?;
    Ok(if standby { Role::Standby } else { Role::Primary })
}

/// Checks that a standby's schema, which only the primary's migrations change, is the one this
/// trustd's migrations make: none, older or newer is refused with what to do.
async fn standby_schema(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    let expected = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let found: Option<i64> =
        match sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success").fetch_one(&mut *conn).await
        {
            Ok(v) => v,
            // undefined_table: nothing was ever migrated.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => None,
            Err(e) => return Err(db(e)),
        };
    let at = |v: i64| format!("the read-only standby's schema is at migration {v}, this trustd's at {expected}");
    match found {
        Some(v) if v == expected => Ok(()),
        None => Err(StoreError::Database(
            "the read-only standby holds no trustd schema: start trustd against the primary first, which creates it"
                .into(),
        )),
        Some(v) if v < expected => Err(StoreError::Database(format!(
            "{}: start this trustd against the primary first, which migrates it",
            at(v)
        ))),
        Some(v) => Err(StoreError::Database(format!("{}: upgrade this trustd to the primary's version", at(v)))),
    }
}

/// Adds `values`' rows to `q` as `SELECT * FROM UNNEST($1::type[], …)`, one array per column
/// (every row has the same columns). The statement's text then depends on the columns only, not
/// on how many rows a batch has, so PostgreSQL parses and plans it once per connection (sqlx
/// prepares and caches it) instead of once per batch, as a `VALUES` list of hundreds of
/// parameters made it do: that planning cost the database more CPU than the rows themselves.
fn push_rows(q: &mut QueryBuilder<Postgres>, values: Vec<Vec<rows::Value>>) -> Result<(), StoreError> {
    use rows::Value;
    enum Column {
        Text(Vec<Option<String>>),
        Int(Vec<Option<i64>>),
        Bool(Vec<bool>),
        Bytes(Vec<Option<Vec<u8>>>),
    }
    let n = values.len();
    let mut columns: Vec<Column> = values
        .first()
        .map(|first| {
            first
                .iter()
                .map(|v| match v {
                    Value::Text(_) | Value::OptText(_) => Column::Text(Vec::with_capacity(n)),
                    Value::Int(_) | Value::OptInt(_) => Column::Int(Vec::with_capacity(n)),
                    Value::Bool(_) => Column::Bool(Vec::with_capacity(n)),
                    Value::Bytes(_) | Value::OptBytes(_) => Column::Bytes(Vec::with_capacity(n)),
                })
                .collect()
        })
        .unwrap_or_default();
    let mixed = || StoreError::Database("internal: a batch's rows differ in their columns".into());
    for row in values {
        if row.len() != columns.len() {
            return Err(mixed());
        }
        for (column, v) in columns.iter_mut().zip(row) {
            match (column, v) {
                (Column::Text(a), Value::Text(t)) => a.push(Some(t)),
                (Column::Text(a), Value::OptText(t)) => a.push(t),
                (Column::Int(a), Value::Int(i)) => a.push(Some(i)),
                (Column::Int(a), Value::OptInt(i)) => a.push(i),
                (Column::Bool(a), Value::Bool(b)) => a.push(b),
                (Column::Bytes(a), Value::Bytes(b)) => a.push(Some(b)),
                (Column::Bytes(a), Value::OptBytes(b)) => a.push(b),
                _ => return Err(mixed()),
            }
        }
    }
    q.push("SELECT * FROM UNNEST(");
    for (i, column) in columns.into_iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        match column {
            Column::Text(a) => q.push_bind(a).push("::text[]"),
            Column::Int(a) => q.push_bind(a).push("::int8[]"),
            Column::Bool(a) => q.push_bind(a).push("::bool[]"),
            Column::Bytes(a) => q.push_bind(a).push("::bytea[]"),
        };
    }
    q.push(")");
    Ok(())
}

/// Two-column rows for [`push_rows`]: a key and a leaf index.
fn keyed<K>(rows: Vec<(K, i64)>, key: impl Fn(K) -> rows::Value) -> Vec<Vec<rows::Value>> {
    rows.into_iter().map(|(k, idx)| vec![key(k), rows::Value::Int(idx)]).collect()
}

#[async_trait]
impl Store for PostgresStore {
    async fn record_pending(&self, certs: &[NewCertificate]) -> Result<Vec<bool>, StoreError> {
        // One statement for the batch, on the connection that does not wait for the WAL flush
        // (see `PostgresStore::pending`); a serial used before is skipped (ON CONFLICT) rather
        // than failing the others, and told by RETURNING.
        let fresh = rows::first_of_each(certs);
        if fresh.is_empty() {
            return Ok(vec![false; certs.len()]);
        }
        let at = now();
        let mut q = QueryBuilder::new(rows::INSERT_PENDING);
        push_rows(&mut q, fresh.iter().map(|c| rows::pending_values(c, at)).collect())?;
        q.push(" ON CONFLICT (serial) DO NOTHING RETURNING serial");
        let recorded: std::collections::HashSet<String> =
            q.build_query_scalar().fetch_all(&self.pending).await.map_err(db)?.into_iter().collect();
        Ok(rows::pending_answers(certs, &recorded))
    }

    async fn record_issued(&self, c: &NewCertificate, cert_der: &[u8]) -> Result<(), StoreError> {
        let at = now();
        sqlx::query(
            "INSERT INTO certificates (serial, ca, profile, subject, sans, not_before, not_after, requester, \
             status, tbs_der, created_at, cert_der, issued_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'issued', ''::bytea, $9, $10, $9)",
        )
        .bind(c.serial.to_string())
        .bind(c.ca.name())
        .bind(c.origin.name())
        .bind(&c.subject)
        .bind(c.sans.join("\n"))
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(&c.requester)
        .bind(at)
        .bind(cert_der)
        .execute(&self.pool)
        .await
        .map_err(|e| rows::duplicate(e, &c.serial))?;
        Ok(())
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
             WHERE status = 'pending' AND created_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(r.rows_affected())
    }

    async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", certificate_columns!(), " FROM certificates WHERE serial = $1"))
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
        let rows = rows::list_query(q, before, limit, "strpos").build().fetch_all(&self.pool).await.map_err(db)?;
        rows::page(&rows, limit)
    }

    async fn set_revocation(
        &self,
        serial: &Serial,
        expected: Option<Revocation>,
        new: Option<Revocation>,
        requester: &str,
    ) -> Result<i64, StoreError> {
        let (from, to) = match (expected.is_some(), new.is_some()) {
            (false, _) => ("issued", "revoked"),
            (true, true) => ("revoked", "revoked"),
            (true, false) => ("revoked", "issued"),
        };
        let (action, reason) = match new {
            Some(n) => ("revoke", n.reason),
            // removeFromCRL (RFC 5280 §5.3.1) is what releasing a hold is called.
            None => ("release", Reason::RemoveFromCrl),
        };
        // The compare-and-set, its audit event and the generation's move in one statement: the
        // event is recorded, and the generation moves, exactly when the UPDATE changed the row.
        let event: Option<i64> = sqlx::query_scalar(
            "WITH changed AS (UPDATE certificates SET status = $1, revoked_at = $2, revocation_reason = $3, \
             invalidity_date = $4 WHERE serial = $5 AND status = $6 AND revocation_reason IS NOT DISTINCT FROM $7 \
             RETURNING serial), \
             bumped AS (UPDATE revocation_generation SET generation = generation + 1 \
             WHERE id = 1 AND EXISTS (SELECT FROM changed)) \
             INSERT INTO revocation_events (serial, action, reason, at, requester) \
             SELECT serial, $8, $9, $10, $11 FROM changed RETURNING id",
        )
        .bind(to)
        .bind(new.map(|n| n.revoked_at))
        .bind(new.map(|n| n.reason as i64))
        .bind(new.and_then(|n| n.invalidity_date))
        .bind(serial.to_string())
        .bind(from)
        .bind(expected.map(|e| e.reason as i64))
        .bind(action)
        .bind(reason as i64)
        .bind(now())
        .bind(requester)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        event.ok_or_else(|| StoreError::Conflict(serial.clone()))
    }

    async fn revocation_generation(&self) -> Result<u64, StoreError> {
        rows::read_count(&self.pool, rows::REVOCATION_GENERATION).await
    }

    async fn unlogged_certificates(&self, limit: u32) -> Result<Vec<UnloggedCertificate>, StoreError> {
        let rows = sqlx::query(concat!(unlogged_certificates!(), " LIMIT $1"))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(rows::unlogged_certificate).collect()
    }

    async fn unlogged_revocations(&self, settled: Duration, limit: u32) -> Result<Vec<UnloggedRevocation>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, e.serial, c.ca, e.reason, e.at FROM revocation_events e \
             JOIN certificates c ON c.serial = e.serial WHERE e.log_index IS NULL AND e.at <= $1 ORDER BY e.id LIMIT $2",
        )
        .bind(rows::settled_before(settled))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::unlogged_revocation).collect()
    }

    async fn unlogged_timestamps(&self, limit: u32) -> Result<Vec<TimestampRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            timestamp_columns!(),
            " FROM timestamps WHERE log_index IS NULL AND signer IS NOT NULL ORDER BY id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::timestamp).collect()
    }

    async fn unlogged_signatures(&self, limit: u32) -> Result<Vec<SignatureRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            signature_columns!(),
            " FROM signatures WHERE log_index IS NULL AND signer IS NOT NULL ORDER BY id LIMIT $1"
        ))
        .bind(i64::from(limit))
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
             WHERE ca = $1 AND status = 'revoked' ORDER BY id",
        )
        .bind(ca.name())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows::revoked_entries(&rows)
    }

    async fn next_crl_number(&self, ca: CaId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "INSERT INTO crl_numbers (ca, last_number) VALUES ($1, 1) \
             ON CONFLICT (ca) DO UPDATE SET last_number = crl_numbers.last_number + 1 RETURNING last_number",
        )
        .bind(ca.name())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(n as u64)
    }

    async fn record_crl(&self, crl: &StoredCrl) -> Result<(), StoreError> {
        // One statement: the insertion and the pruning commit together.
        let (number, oldest_kept) = rows::crl_numbers(crl)?;
        sqlx::query(
            "WITH pruned AS (DELETE FROM published_crls WHERE ca = $1 AND number < $6) \
             INSERT INTO published_crls (ca, number, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(crl.ca.name())
        .bind(number)
        .bind(crl.this_update)
        .bind(crl.next_update)
        .bind(&crl.der)
        .bind(oldest_kept)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(db)
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
        let mut q = QueryBuilder::new(rows::INSERT_TIMESTAMPS);
        push_rows(&mut q, records.iter().map(|r| rows::timestamp_values(r, None)).collect())?;
        q.build().execute(&self.pool).await.map(|_| ()).map_err(|e| rows::reused(e, "time-stamp serial"))
    }

    async fn count_timestamps(&self) -> Result<u64, StoreError> {
        rows::read_count(&self.pool, rows::COUNT_TIMESTAMPS).await
    }

    async fn record_signatures(&self, records: &[SignatureRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut q = QueryBuilder::new(rows::INSERT_SIGNATURES);
        push_rows(&mut q, records.iter().map(|r| rows::signature_values(r, None)).collect())?;
        q.build().execute(&self.pool).await.map(|_| ()).map_err(|e| rows::reused(e, "signature id"))
    }

    async fn count_signatures(&self) -> Result<u64, StoreError> {
        rows::read_count(&self.pool, rows::COUNT_SIGNATURES).await
    }

    async fn ping(&self) -> Result<Role, StoreError> {
        role(&self.pool).await
    }

    #[cfg(test)]
    async fn execute_raw(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&self.pool).await.unwrap();
    }
}

#[cfg(test)]
impl PostgresStore {
    /// Whether this store's connections are TLS, as the server sees them.
    pub(super) async fn over_tls(&self) -> bool {
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

#[async_trait]
impl LogStore for PostgresStore {
    async fn record_checkpoint(&self, c: &crate::log::StoredCheckpoint) -> Result<(), LogError> {
        rows::record_checkpoint(&self.pool, c).await
    }

    async fn newest_checkpoint(&self, above: TreeSize) -> Result<Option<crate::log::StoredCheckpoint>, LogError> {
        rows::newest_checkpoint(&self.pool, above).await
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
        let wanted = indexes.iter().map(|i| sql_index(i.0)).collect::<Result<Vec<_>, _>>()?;
        let found = sqlx::query_as("SELECT idx, hash FROM log_hashes WHERE idx = ANY($1)")
            .bind(&wanted)
            .fetch_all(&self.pool)
            .await
            .map_err(log_db)?;
        rows::hashes_in_order(indexes, found)
    }

    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<(LeafIndex, Vec<u8>)>, LogError> {
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT idx, entry FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx")
                .bind(sql_index(start)?)
                .bind(sql_index(end)?)
                .fetch_all(&self.pool)
                .await
                .map_err(log_db)?;
        rows.into_iter().map(|(idx, entry)| Ok((LeafIndex(leaf_index(idx)?), entry))).collect()
    }

    async fn append_log_batch(&self, b: &LogBatch) -> Result<(), LogError> {
        // The whole batch is one statement, so one round trip and one transaction: the tree
        // head's compare-and-set (see src/log/sequencer.rs) is the `head` UPDATE, which changes
        // the row only if it still has the size the batch was built on (waiting for, then
        // re-reading, a row another replica is changing), and every other part is written only
        // if it did. A failing part (a reused serial) fails the statement whole.
        let rows = BatchRows::of(b)?;
        // A statement that finds rows to update by their key is planned again for each batch, as
        // an unnamed statement with its arrays' real lengths and the tables' sizes now: the plan
        // PostgreSQL caches for a named one keeps the sequential scan it chose while the table
        // was small, however large the table grows. Batches that only insert (time-stamps,
        // signatures) keep their prepared statement.
        let updates_by_key = !(rows.issued.is_empty()
            && rows.certificates.is_empty()
            && rows.revocation_events.is_empty()
            && rows.timestamps.is_empty()
            && rows.signatures.is_empty());
        use rows::Value;
        let mut q = QueryBuilder::<Postgres>::new("WITH head AS (UPDATE log_tree SET size = ");
        q.push_bind(sql_index(b.new_size.0)?)
            .push(", root = ")
            .push_bind(b.root.as_bytes().as_slice())
            .push(" WHERE id = 1 AND size = ")
            .push_bind(sql_index(b.old_size.0)?)
            .push(" RETURNING 1)");
        let bytes = |b: &[u8]| Value::Bytes(b.to_vec());
        let indexed = |rows: Vec<(i64, &[u8])>| -> Vec<Vec<Value>> {
            rows.into_iter().map(|(idx, b)| vec![Value::Int(idx), bytes(b)]).collect()
        };
        let inserts = [
            ("entries", "INSERT INTO log_entries (idx, entry)", indexed(rows.entries)),
            ("hashes", "INSERT INTO log_hashes (idx, hash)", indexed(rows.hashes)),
            ("new_timestamps", rows::INSERT_TIMESTAMPS, rows.new_timestamps),
            ("new_signatures", rows::INSERT_SIGNATURES, rows.new_signatures),
            ("keys", "INSERT INTO ceremony_keys (spki_sha256, log_index)", keyed(rows.ceremony_keys, bytes)),
        ];
        for (name, head, values) in inserts {
            if !values.is_empty() {
                q.push(format!(", {name} AS ({head} SELECT * FROM ("));
                push_rows(&mut q, values).map_err(log_store)?;
                q.push(") AS v WHERE EXISTS (SELECT FROM head))");
            }
        }
        if !rows.issued.is_empty() {
            // The pending records become issued with their certificates and log indexes, their
            // TBS emptied (the certificate holds it). A record abandoned meanwhile (only start-up
            // abandons, before serving) is issued too: the store then says what the log says.
            // The status test is written NOT IN so that the serial's unique index is the only one
            // that can find the rows: given `IN ('pending', …)` the planner scanned the status
            // index, where every certificate's old 'pending' entry stays until VACUUM, and each
            // batch grew slower as the table grew.
            let issued = rows.issued.into_iter().map(|(k, der, idx)| vec![Value::Text(k), bytes(der), Value::Int(idx)]);
            q.push(", issued AS (UPDATE certificates SET status = 'issued', tbs_der = ''::bytea, issued_at = ")
                .push_bind(now())
                .push(", cert_der = v.der, log_index = v.idx FROM (");
            push_rows(&mut q, issued.collect()).map_err(log_store)?;
            q.push(
                ") AS v (k, der, idx) WHERE certificates.serial = v.k \
                 AND certificates.status NOT IN ('issued', 'revoked') AND EXISTS (SELECT FROM head))",
            );
        }
        push_log_indexes(&mut q, "certificates", "serial", keyed(rows.certificates, Value::Text)).map_err(log_store)?;
        push_log_indexes(&mut q, "revocation_events", "id", keyed(rows.revocation_events, Value::Int))
            .map_err(log_store)?;
        push_log_indexes(&mut q, "timestamps", "serial", keyed(rows.timestamps, Value::Text)).map_err(log_store)?;
        push_log_indexes(&mut q, "signatures", "signature_id", keyed(rows.signatures, Value::Text))
            .map_err(log_store)?;
        q.push(" SELECT COUNT(*) FROM head");

        let moved: i64 =
            q.build_query_scalar().persistent(!updates_by_key).fetch_one(&self.pool).await.map_err(log_db)?;
        if moved != 1 {
            return Err(LogError::Moved(b.old_size));
        }
        Ok(())
    }
}

#[cfg(test)]
impl PostgresStore {
    /// `synchronous_commit` on the pool's connections and on the pending certificates' one.
    pub(super) async fn synchronous_commit(&self) -> (String, String) {
        let show = "SHOW synchronous_commit";
        let on_pool = sqlx::query_scalar(show).fetch_one(&self.pool).await.unwrap();
        (on_pool, sqlx::query_scalar(show).fetch_one(&self.pending).await.unwrap())
    }

    /// The length of the TBS stored with certificate `serial`.
    pub(super) async fn tbs_len(&self, serial: &Serial) -> i64 {
        let q = "SELECT octet_length(tbs_der)::bigint FROM certificates WHERE serial = $1";
        sqlx::query_scalar(q).bind(serial.to_string()).fetch_one(&self.pool).await.unwrap()
    }
}

/// Adds to the statement `q` the part setting `log_index` on the rows of `table` whose `key` is
/// in `rows` ([key, index] each), if the tree head moved. `table` and `key` are this file's own
/// names, never input.
fn push_log_indexes(
    q: &mut QueryBuilder<Postgres>,
    table: &str,
    key: &str,
    rows: Vec<Vec<rows::Value>>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    q.push(format!(", {table}_logged AS (UPDATE {table} SET log_index = v.idx FROM ("));
    push_rows(q, rows)?;
    q.push(format!(") AS v (k, idx) WHERE {table}.{key} = v.k AND EXISTS (SELECT FROM head))"));
    Ok(())
}
