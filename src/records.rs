//! Where a time-stamp token or a signature is recorded before its reply leaves (issue #19:
//! nothing is handed out that the log does not state). With the log on, the record travels with
//! its `timestamp_issued` or `signature_made` entry through the sequencer, and the store writes
//! both in the batch's one transaction: a reply means the record and its entry are durable
//! together, and the log costs no transaction of its own. With the log off (`[log] enabled =
//! false`, to measure its cost), records are group-committed to the store alone, and the next
//! start with the log on appends their entries ([`log_unsequenced`]).

use crate::log::{LogEntry, LogError, LoggedRecord, NewEntry, Sequencer, SignatureMade, TimestampIssued};
use crate::store::{GroupCommit, SignatureRecord, Store, StoreError, TimestampRecord};
use sha2::{Digest, Sha256};

/// A record the log states.
pub trait Logged: Send + Sized + 'static {
    /// The entry stating it.
    fn entry(&self) -> Result<LogEntry, LogError>;
    /// The record, for the store to write in the log batch's transaction.
    fn into_new(self) -> LoggedRecord;
    /// The record, stored already, for the store to mark sequenced.
    fn stored(&self) -> LoggedRecord;
}

impl Logged for TimestampRecord {
    fn entry(&self) -> Result<LogEntry, LogError> {
        Ok(LogEntry::TimestampIssued(TimestampIssued {
            gen_time_us: u64::try_from(self.gen_time.as_micros())
                .map_err(|_| LogError::BadEntry("genTime beyond the year 500000".into()))?,
            signer: self.signer,
            requester: self.requester.clone(),
            serial: self.serial.as_bytes().to_vec(),
            policy: self.policy,
            token_hash: Sha256::digest(&self.token_der).into(),
        }))
    }
    fn into_new(self) -> LoggedRecord {
        LoggedRecord::NewTimestamp(Box::new(self))
    }
    fn stored(&self) -> LoggedRecord {
        LoggedRecord::Timestamp(self.serial.clone())
    }
}

impl Logged for SignatureRecord {
    fn entry(&self) -> Result<LogEntry, LogError> {
        Ok(LogEntry::SignatureMade(SignatureMade {
            signed_at: u64::try_from(self.signed_at)
                .map_err(|_| LogError::BadEntry(format!("signing time {} before 1970", self.signed_at)))?,
            signer: self.signer,
            requester: self.requester.clone(),
            policy: self.policy.clone(),
            signature_id: self.signature_id.as_bytes().to_vec(),
            level: self.level,
            signature_hash: self.signature_hash,
        }))
    }
    fn into_new(self) -> LoggedRecord {
        LoggedRecord::NewSignature(Box::new(self))
    }
    fn stored(&self) -> LoggedRecord {
        LoggedRecord::Signature(self.signature_id.clone())
    }
}

/// Records time-stamps or signatures, durably before [`RecordWriter::record`] returns.
pub enum RecordWriter<R> {
    /// With their log entries, in the sequencer's batches.
    Logged(Sequencer),
    /// To the store alone: the log is off.
    Unlogged(GroupCommit<R>),
}

impl<R> Clone for RecordWriter<R> {
    fn clone(&self) -> Self {
        match self {
            Self::Logged(s) => Self::Logged(s.clone()),
            Self::Unlogged(g) => Self::Unlogged(g.clone()),
        }
    }
}

impl<R: Logged> RecordWriter<R> {
    /// Through `log` when it runs, else through the store writer `unlogged` makes.
    pub fn new(log: Option<&Sequencer>, unlogged: impl FnOnce() -> GroupCommit<R>) -> Self {
        match log {
            Some(log) => Self::Logged(log.clone()),
            None => Self::Unlogged(unlogged()),
        }
    }

    /// Records `r` (and, with the log on, its entry); returns once durable.
    pub async fn record(&self, r: R) -> Result<(), StoreError> {
        match self {
            Self::Unlogged(g) => g.record(r).await,
            Self::Logged(log) => {
                let entry = r.entry().and_then(|e| e.encode()).map_err(logged)?;
                log.append(NewEntry { entry, record: Some(r.into_new()) }).await.map_err(logged)?;
                Ok(())
            }
        }
    }
}

fn logged(e: LogError) -> StoreError {
    StoreError::Database(format!("log: {e}"))
}

/// Appends the entries of the time-stamps and signatures recorded while the log was off, in
/// the order they were recorded; run at start-up before the daemon says it is ready. Returns
/// how many.
pub async fn log_unsequenced(store: &dyn Store, log: &Sequencer) -> Result<u64, LogError> {
    let store_err = |e: StoreError| LogError::Store(e.to_string());
    let (mut appended, mut last) = (0, None);
    loop {
        let page = store.unlogged_timestamps(Sequencer::MISSING_PAGE).await.map_err(store_err)?;
        if page.is_empty() {
            break;
        }
        appended += append_stored(log, &page, &mut last).await?;
    }
    loop {
        let page = store.unlogged_signatures(Sequencer::MISSING_PAGE).await.map_err(store_err)?;
        if page.is_empty() {
            break;
        }
        appended += append_stored(log, &page, &mut last).await?;
    }
    Ok(appended)
}

/// Appends the entries of `records`, one page ([`Sequencer::append_missing`]).
async fn append_stored<R: Logged>(
    log: &Sequencer,
    records: &[R],
    last: &mut Option<LoggedRecord>,
) -> Result<u64, LogError> {
    let entries = records
        .iter()
        .map(|r| Ok(NewEntry { entry: r.entry()?.encode()?, record: Some(r.stored()) }))
        .collect::<Result<Vec<_>, LogError>>()?;
    Ok(log.append_missing(entries, last).await?.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::HashAlg;
    use crate::log::TreeSize;
    use crate::policy::Level;
    use crate::serial::Serial;
    use std::time::{Duration, UNIX_EPOCH};

    fn timestamp(requester: &str) -> TimestampRecord {
        let at = UNIX_EPOCH + Duration::new(1_767_225_600, 123_456_000);
        TimestampRecord {
            serial: Serial::time_ordered(at),
            gen_time: Duration::new(1_767_225_600, 123_456_000),
            policy: const_oid::ObjectIdentifier::new_unwrap("0.4.0.2023.1.1"),
            hash_alg: HashAlg::Sha256,
            imprint: vec![7; 32],
            nonce: None,
            requester: requester.into(),
            token_der: vec![0x30, 0x03, 1, 2, 3],
            signer: [9; 32],
        }
    }

    fn signature() -> SignatureRecord {
        SignatureRecord {
            signature_id: Serial::random(),
            signed_at: 1_767_225_601,
            policy: "default".into(),
            level: Level::BB,
            detached: true,
            digest_alg: HashAlg::Sha256,
            digest: vec![8; 32],
            signer_serial: Serial::random(),
            signer_issuer: "CN=issuing".into(),
            signature_hash: [5; 32],
            timestamp_serial: None,
            requester: "portal".into(),
            signer: [6; 32],
        }
    }

    async fn entries(store: &dyn Store) -> Vec<LogEntry> {
        let (size, _) = store.log_tree().await.unwrap();
        let rows = store.log_entries(0, size.0).await.unwrap();
        rows.iter().map(|(_, e)| LogEntry::decode(e).unwrap()).collect()
    }

    #[tokio::test]
    async fn with_the_log_on_a_record_and_its_entry_are_written_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::testing::sqlite_store(&dir).await;
        let log = Sequencer::start(store.clone()).await.unwrap();
        let ts = RecordWriter::new(Some(&log), || unreachable!());
        let sig = RecordWriter::new(Some(&log), || unreachable!());
        let (t, s) = (timestamp(""), signature());
        ts.record(t.clone()).await.unwrap();
        sig.record(s.clone()).await.unwrap();

        assert_eq!(store.count_timestamps().await.unwrap(), 1);
        assert_eq!(store.count_signatures().await.unwrap(), 1);
        assert!(store.unlogged_timestamps(10).await.unwrap().is_empty(), "recorded with its log index");
        assert!(store.unlogged_signatures(10).await.unwrap().is_empty());
        let logged = entries(store.as_ref()).await;
        assert_eq!(logged, vec![t.entry().unwrap(), s.entry().unwrap()]);
        let LogEntry::TimestampIssued(e) = &logged[0] else { panic!("{logged:?}") };
        assert_eq!(e.gen_time_us, 1_767_225_600_123_456);
        assert_eq!(e.token_hash, <[u8; 32]>::from(Sha256::digest(&t.token_der)));
        assert_eq!((e.requester.as_str(), e.signer, &e.serial[..]), ("", [9; 32], t.serial.as_bytes()));

        // A serial used before fails the batch whole: no record, no entry.
        assert!(ts.record(t).await.is_err());
        assert_eq!(store.count_timestamps().await.unwrap(), 1);
        assert_eq!(store.log_tree().await.unwrap().0, TreeSize(2));
    }

    #[tokio::test]
    async fn records_made_with_the_log_off_are_appended_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::testing::sqlite_store(&dir).await;
        let off: RecordWriter<TimestampRecord> =
            RecordWriter::new(None, || crate::store::TimestampWriter::spawn(store.clone()));
        let stamps: Vec<_> = (0..700).map(|i| timestamp(&format!("client-{}", i % 3))).collect();
        for t in &stamps {
            off.record(t.clone()).await.unwrap();
        }
        store.record_signatures(&[signature()]).await.unwrap();
        assert_eq!(store.unlogged_timestamps(1000).await.unwrap().len(), 700);
        let back = &store.unlogged_timestamps(1).await.unwrap()[0];
        assert_eq!(back.entry().unwrap(), stamps[0].entry().unwrap(), "read back as written");

        let log = Sequencer::start(store.clone()).await.unwrap();
        assert_eq!(
            log_unsequenced(store.as_ref(), &log).await.unwrap(),
            701,
            "in pages of {}",
            Sequencer::MISSING_PAGE
        );
        assert_eq!(log_unsequenced(store.as_ref(), &log).await.unwrap(), 0, "each once");
        let logged = entries(store.as_ref()).await;
        let want: Vec<_> = stamps.iter().map(|t| t.entry().unwrap()).collect();
        assert_eq!(logged[..700], want[..], "in the order they were recorded");
        assert!(matches!(logged[700], LogEntry::SignatureMade(_)));
    }

    /// Records appended but still unlogged in the store stop the start with an error, rather
    /// than being appended again and again.
    #[tokio::test]
    async fn records_appended_but_not_marked_logged_are_not_appended_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::testing::sqlite_store(&dir).await;
        store.record_timestamps(&[timestamp("a"), timestamp("b")]).await.unwrap();
        let flaky = std::sync::Arc::new(crate::testing::FlakyLog::new(store.clone()));
        flaky.forgetful.store(true, std::sync::atomic::Ordering::SeqCst);
        let log = Sequencer::start(flaky).await.unwrap();
        let e = log_unsequenced(store.as_ref(), &log).await.unwrap_err();
        assert!(e.to_string().contains("still unlogged"), "{e}");
        assert_eq!(store.log_tree().await.unwrap().0, TreeSize(2), "appended once");
    }
}
