//! The sequencer: gives entries their place in the one global sequence and makes them durable
//! in batches, the way Sunlight does, so that the log does not cap issuance throughput.
//!
//! Every entry queued while the previous batch was being committed goes into the next batch:
//! one transaction appends the entries, their new stored hashes (RFC 9162 §2.1 via
//! [`tree::append_leaf_hashes`]) and the new tree head, and marks the store records they log as
//! sequenced. A caller's [`Sequencer::append`] returns once its batch is durable, and the head
//! ([`Sequencer::head`], which checkpoints are signed over) moves only then: a store may make a
//! commit durable after it returns ([`LogStore::log_durable`]), so that its other writers get
//! its write lock meanwhile. The tree's state between batches is only the roots of its perfect
//! subtrees (at most 63 hashes), so a batch reads nothing from the store.
//!
//! Unlike the rest of `log`, this module has a runtime (tokio tasks and channels); it reaches
//! the database only through [`LogStore`], which `store` implements.
//!
//! # One sequence, even with replicas
//! The transaction is the point of serialisation: [`LogStore::append_log_batch`] must move the
//! committed tree head from `old_size` to `new_size` as a compare-and-set and fail if another
//! writer moved it first (SQLite: the `log_tree_compare_and_set` trigger refuses an update whose
//! stated `base` is not the stored size, under SQLite's single writer lock; PostgreSQL: the
//! batch's one statement updates the tree-head row only where it still has `old_size`, under
//! the row's lock, and writes nothing else unless it did). This process keeps the tree state in
//! memory and reloads it after any failure. Replicas on one database each run a sequencer: one
//! that loses the race ([`LogError::Moved`]) reloads the tree and builds the same entries again
//! on top of the other's (never retrying the old batch), and an idle one follows the store's
//! tree every [`FOLLOW_INTERVAL`], so that every replica's checkpoints cover every replica's
//! entries.

use super::{tree, Hash, HashIndex, HashReader, LeafIndex, LogError, PrefetchedHashes, TreeSize};
use crate::serial::Serial;
use crate::store::{SignatureRecord, TimestampRecord};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// The store record an entry logs. The store marks it sequenced (with the entry's index) in the
/// batch's transaction, so that start-up can tell what is still missing from the log; the
/// `New…` records it writes there, so that a time-stamp or signature and its entry are durable
/// together in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum LoggedRecord {
    /// An issued certificate stored already (the key ceremony's, or one issued while the log
    /// was off), by its serial in lower-case hex.
    Certificate(String),
    /// A certificate just signed, whose pending record the batch's transaction makes issued
    /// with it: the certificate is stored and logged together, or neither.
    IssuedCertificate { serial: Serial, cert_der: Vec<u8> },
    /// A revocation event (revoke or release), by its id in the store.
    RevocationEvent(i64),
    /// A time-stamp token to record.
    NewTimestamp(Box<TimestampRecord>),
    /// A signature to record.
    NewSignature(Box<SignatureRecord>),
    /// A time-stamp token recorded while the log was off, by serial.
    Timestamp(Serial),
    /// A signature recorded while the log was off, by its id.
    Signature(Serial),
    /// A key of the key ceremony, by the SHA-256 of its SubjectPublicKeyInfo: the store keeps
    /// which are in the log, so each is logged once.
    CeremonyKey(super::Sha256),
}

/// An entry to sequence: its encoded bytes ([`LogEntry::encode`](super::LogEntry::encode)) and
/// the record it logs, if any.
#[derive(Clone, Debug)]
pub struct NewEntry {
    /// The leaf input.
    pub entry: Vec<u8>,
    /// What to mark sequenced.
    pub record: Option<LoggedRecord>,
}

/// One batch, as the store writes it in one transaction.
#[derive(Clone, Debug)]
pub struct LogBatch {
    /// The size the batch was built on; the transaction fails unless the committed tree has it.
    pub old_size: TreeSize,
    /// The size after the batch.
    pub new_size: TreeSize,
    /// MTH of the new tree.
    pub root: Hash,
    /// Where `hashes` go (`HashIndex::end(old_size)`).
    pub first_hash: HashIndex,
    /// The new stored hashes, in index order.
    pub hashes: Vec<Hash>,
    /// The entries, at leaf indexes `old_size..new_size`.
    pub entries: Vec<NewEntry>,
}

/// A signed checkpoint as the store keeps it, for every replica to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: TreeSize,
    /// The signed note, as served.
    pub note: Vec<u8>,
    /// When it was signed, Unix milliseconds.
    pub signed_at_ms: i64,
}

/// What the sequencer and the read path need from a database.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// The committed tree head: size and root (0 and [`EMPTY_ROOT`](super::EMPTY_ROOT) when empty).
    async fn log_tree(&self) -> Result<(TreeSize, Hash), LogError>;
    /// Stored hashes by index, in the order asked; a missing one is [`LogError::MissingHash`].
    async fn log_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, LogError>;
    /// The entries with leaf indexes in `start..end` that exist, in index order, with their
    /// indexes (a gap means a deleted row: the caller decides what that means).
    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<(LeafIndex, Vec<u8>)>, LogError>;
    /// Writes a batch in one transaction: the entries, the stored hashes, the tree head moved
    /// from `old_size` to `new_size` only if it is still at `old_size` (else
    /// [`LogError::Store`], nothing written), and the logged records written or marked sequenced.
    /// Committed when this returns, and durable once [`LogStore::log_durable`] returns after it.
    async fn append_log_batch(&self, batch: &LogBatch) -> Result<(), LogError>;
    /// Returns once every batch this process committed is durable. Stores whose commits are
    /// durable when they return (PostgreSQL with `synchronous_commit` on) keep this default.
    async fn log_durable(&self) -> Result<(), LogError> {
        Ok(())
    }
    /// Records a signed checkpoint (replacing one of the same size: the same tree, signed anew
    /// after the log's key rolled over), keeping the newest few.
    async fn record_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), LogError>;
    /// The newest recorded checkpoint larger than `above`, if any.
    async fn newest_checkpoint(&self, above: TreeSize) -> Result<Option<StoredCheckpoint>, LogError>;
}

type Waiter = oneshot::Sender<Result<LeafIndex, String>>;
type Job = (NewEntry, Waiter);

/// Handle to the sequencer task. Cheap to clone.
#[derive(Clone)]
pub struct Sequencer {
    tx: mpsc::Sender<Job>,
    head: watch::Receiver<(TreeSize, Hash)>,
}

/// The in-memory tree: its size, root and the stored hashes at its subtree roots.
struct TreeState {
    size: TreeSize,
    root: Hash,
    roots: PrefetchedHashes,
}

impl TreeState {
    /// Loads the committed tree head and its subtree roots, and checks that they agree: a store
    /// whose hashes do not make its own tree head is corrupt, and sequencing on top of it would
    /// sign a tree that auditors reject.
    async fn load(store: &dyn LogStore) -> Result<Self, LogError> {
        let (size, root) = store.log_tree().await?;
        let indexes = tree::subtree_roots(size)?;
        let hashes = store.log_hashes(&indexes).await?;
        let roots: PrefetchedHashes = indexes.into_iter().zip(hashes).collect();
        if tree::tree_hash(size, &roots)? != root {
            return Err(LogError::Store(format!(
                "the stored hashes do not make the stored tree head of size {size}: the log's tables were changed"
            )));
        }
        Ok(TreeState { size, root, roots })
    }
}

impl Sequencer {
    /// Loads the tree from `store` and starts the sequencer task on the current runtime.
    pub async fn start(store: Arc<dyn LogStore>) -> Result<Self, LogError> {
        let state = TreeState::load(store.as_ref()).await?;
        let (head_tx, head) = watch::channel((state.size, state.root));
        let (tx, batches) = crate::batch::queue::<Job>("log", crate::batch::Gather::AfterYield);
        tokio::spawn(run(store, state, batches, head_tx));
        Ok(Sequencer { tx, head })
    }

    /// Sequences one entry; returns its leaf index once it is durable.
    pub async fn append(&self, entry: NewEntry) -> Result<LeafIndex, LogError> {
        let mut v = self.append_all(vec![entry]).await?;
        v.pop().ok_or_else(|| LogError::Store("sequencer returned no index".into()))
    }

    /// Sequences entries in the order given (they may share batches); returns their indexes
    /// once all are durable. Fails at the first entry that could not be sequenced; the entries
    /// before it are in the log.
    pub async fn append_all(&self, entries: Vec<NewEntry>) -> Result<Vec<LeafIndex>, LogError> {
        let stopped = || LogError::Store("the sequencer stopped".into());
        let mut waits = Vec::with_capacity(entries.len());
        // Queued one after the other by this one sender, so they keep their order.
        for e in entries {
            let (done, wait) = oneshot::channel();
            // Full only if more entries wait than `[limits] max_requests` lets in (and start-up's
            // pages of 512): refused at once rather than waited for.
            self.tx.try_send((e, done)).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => LogError::Store("too many entries waiting to be logged".into()),
                mpsc::error::TrySendError::Closed(_) => stopped(),
            })?;
            waits.push(wait);
        }
        let mut out = Vec::with_capacity(waits.len());
        for w in waits {
            out.push(w.await.map_err(|_| stopped())?.map_err(LogError::Store)?);
        }
        Ok(out)
    }

    /// How many missing records the callers of [`Sequencer::append_missing`] read and append
    /// at a time: one batch's worth, well within what the queue holds (it refuses entries past
    /// that at once).
    pub const MISSING_PAGE: u32 = crate::batch::MAX_BATCH as u32;

    /// Appends one page (at most [`Sequencer::MISSING_PAGE`]) of the records a loop reads from
    /// the store until none is left unlogged (start-up's and reconciliation's), as
    /// [`Sequencer::append_all`] does. `last` holds the record of the previous page's first
    /// entry: a page that starts with that record again was appended but not marked logged in
    /// the store, and is refused rather than appended again and again.
    pub async fn append_missing(
        &self,
        entries: Vec<NewEntry>,
        last: &mut Option<LoggedRecord>,
    ) -> Result<Vec<LeafIndex>, LogError> {
        if let Some(record) = entries.first().and_then(|e| e.record.as_ref()) {
            if last.as_ref() == Some(record) {
                return Err(LogError::Store(format!(
                    "{record:?} was appended to the log but is still unlogged in the store"
                )));
            }
            *last = Some(record.clone());
        }
        self.append_all(entries).await
    }

    /// The durable tree head, updated after each batch: what checkpoints are signed over.
    pub fn head(&self) -> watch::Receiver<(TreeSize, Hash)> {
        self.head.clone()
    }
}

/// How often an idle sequencer compares its tree with the store's, to follow what other
/// writers (replicas on the same database) appended: its head, and so the checkpoints this
/// process signs, then cover their entries within about this long.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// How long a batch keeps being built again on the store's newer tree while other writers
/// (replicas on the same database) append first, before its callers are told it failed. A time,
/// not a count: a replica under a burst commits batch after batch, and the one that lost, which
/// must reload the tree before it tries again, can lose many races within a few milliseconds.
const REBASE_FOR: Duration = Duration::from_secs(2);

/// The pause before the `n`th attempt of a batch that lost its races: none for the first two,
/// then random up to 1, 2, 4, then 8 ms, so that the loser stops meeting the other writer's
/// next commit at the same moment.
fn rebase_pause(n: u32) -> Duration {
    if n <= 2 {
        return Duration::ZERO;
    }
    let cap_us = 1000u64 << (n - 3).min(3);
    Duration::from_micros(rand::random::<u64>() % (cap_us + 1))
}

/// Moves the head to `state` and answers the callers whose entries are its last ones, once the
/// store says what was committed is durable; if it could not make it durable, fails them and
/// leaves the head where it was.
async fn publish(
    store: &dyn LogStore,
    head: &watch::Sender<(TreeSize, Hash)>,
    state: &TreeState,
    waiters: Vec<Waiter>,
) {
    if let Err(e) = store.log_durable().await {
        tracing::error!(error = %e, entries = waiters.len(), "log batch committed but not made durable");
        let msg = e.to_string();
        for done in waiters {
            let _ = done.send(Err(msg.clone()));
        }
        return;
    }
    head.send_replace((state.size, state.root));
    let first = state.size.0 - waiters.len() as u64;
    for (i, done) in waiters.into_iter().enumerate() {
        let _ = done.send(Ok(LeafIndex(first + i as u64)));
    }
}

async fn run(
    store: Arc<dyn LogStore>,
    mut state: TreeState,
    mut batches: crate::batch::Batches<Job>,
    head: watch::Sender<(TreeSize, Hash)>,
) {
    let mut follow = tokio::time::interval(FOLLOW_INTERVAL);
    follow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // `Batches::next` keeps a job it received across its yield: cancelling it loses none.
        let jobs = tokio::select! {
            jobs = batches.next() => match jobs {
                Some(jobs) => jobs,
                None => return,
            },
            _ = follow.tick() => {
                match follow_store(store.as_ref(), &mut state).await {
                    Ok(true) => publish(store.as_ref(), &head, &state, Vec::new()).await,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "the log's tree could not be compared with the store's"),
                }
                continue;
            }
        };
        let (mut entries, waiters): (Vec<NewEntry>, Vec<_>) = jobs.into_iter().unzip();
        let (mut rebases, since) = (0, std::time::Instant::now());
        let committed = loop {
            match commit(store.as_ref(), &state, entries).await {
                Ok(next) => break Ok(next),
                // Another writer moved the tree: the same entries go on top of its entries.
                Err((LogError::Moved(_), back)) if since.elapsed() < REBASE_FOR => {
                    rebases += 1;
                    tokio::time::sleep(rebase_pause(rebases)).await;
                    entries = back;
                    match TreeState::load(store.as_ref()).await {
                        Ok(s) => state = s,
                        Err(e) => break Err(e),
                    }
                }
                Err((e, _)) => break Err(e),
            }
        };
        match committed {
            Ok(next) => {
                state = next;
                publish(store.as_ref(), &head, &state, waiters).await;
            }
            Err(e) => {
                tracing::error!(error = %e, entries = waiters.len(), "log batch not sequenced");
                let msg = e.to_string();
                for done in waiters {
                    let _ = done.send(Err(msg.clone()));
                }
                // The commit may have failed after the data was written, or another writer may
                // have moved the tree: start again from what the store says.
                match TreeState::load(store.as_ref()).await {
                    Ok(s) => {
                        state = s;
                        publish(store.as_ref(), &head, &state, Vec::new()).await;
                    }
                    Err(e) => tracing::error!(error = %e, "log tree could not be reloaded; keeping the last state"),
                }
            }
        }
    }
}

/// Reloads the tree if the store's has grown past this process's (another writer appended);
/// says whether it did.
async fn follow_store(store: &dyn LogStore, state: &mut TreeState) -> Result<bool, LogError> {
    let (size, _) = store.log_tree().await?;
    if size == state.size {
        return Ok(false);
    }
    *state = TreeState::load(store).await?;
    Ok(true)
}

/// Builds and commits one batch; returns the tree after it, or why not with the entries back.
async fn commit(
    store: &dyn LogStore,
    state: &TreeState,
    entries: Vec<NewEntry>,
) -> Result<TreeState, (LogError, Vec<NewEntry>)> {
    let leaves: Vec<Hash> = entries.iter().map(|e| tree::leaf_hash(&e.entry)).collect();
    let appended = match tree::append_leaf_hashes(state.size, &leaves, &state.roots) {
        Ok(a) => a,
        Err(e) => return Err((e, entries)),
    };
    let batch = LogBatch {
        old_size: appended.old_size,
        new_size: appended.new_size,
        root: appended.root,
        first_hash: appended.first_index,
        hashes: appended.hashes,
        entries,
    };
    if let Err(e) = store.append_log_batch(&batch).await {
        return Err((e, batch.entries));
    }
    // The new tree's subtree roots are among the old roots and the hashes just written.
    let mut known = state.roots.clone();
    let first = batch.first_hash.0;
    known.extend(batch.hashes.iter().enumerate().map(|(i, h)| (HashIndex(first + i as u64), *h)));
    let roots = tree::subtree_roots(batch.new_size).and_then(|i| Ok((known.read_hashes(&i)?, i)));
    match roots {
        Ok((hashes, indexes)) => {
            Ok(TreeState { size: batch.new_size, root: batch.root, roots: indexes.into_iter().zip(hashes).collect() })
        }
        // Written, but not followed here: the caller reloads from the store.
        Err(e) => Err((e, Vec::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::MemoryHashes;
    use std::sync::Mutex;

    /// A store in memory, with switches to fail the next batch or the next flush, and a number
    /// of batches before each of which another writer appends an entry of its own first.
    #[derive(Default)]
    struct Mem {
        inner: Mutex<(Vec<Vec<u8>>, MemoryHashes, Vec<LoggedRecord>)>,
        fail_next: Mutex<bool>,
        flush_fails_next: Mutex<bool>,
        appended_first: Mutex<u32>,
        checkpoints: Mutex<Vec<StoredCheckpoint>>,
    }

    #[async_trait]
    impl LogStore for Mem {
        async fn log_tree(&self) -> Result<(TreeSize, Hash), LogError> {
            let g = self.inner.lock().unwrap();
            let size = TreeSize(g.0.len() as u64);
            Ok((size, tree::tree_hash(size, &g.1)?))
        }
        async fn log_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, LogError> {
            self.inner.lock().unwrap().1.read_hashes(indexes)
        }
        async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<(LeafIndex, Vec<u8>)>, LogError> {
            let g = self.inner.lock().unwrap();
            Ok((start..end.min(g.0.len() as u64)).map(|i| (LeafIndex(i), g.0[i as usize].clone())).collect())
        }
        async fn log_durable(&self) -> Result<(), LogError> {
            match std::mem::take(&mut *self.flush_fails_next.lock().unwrap()) {
                true => Err(LogError::Store("fdatasync failed".into())),
                false => Ok(()),
            }
        }
        async fn append_log_batch(&self, b: &LogBatch) -> Result<(), LogError> {
            if std::mem::take(&mut *self.fail_next.lock().unwrap()) {
                return Err(LogError::Store("disk full".into()));
            }
            let mut g = self.inner.lock().unwrap();
            let mut first = self.appended_first.lock().unwrap();
            if *first > 0 {
                *first -= 1;
                let size = TreeSize(g.0.len() as u64);
                let other = tree::append(size, &[b"another writer's"], &g.1)?;
                g.1.extend_at(other.first_index, &other.hashes)?;
                g.0.push(b"another writer's".to_vec());
            }
            if g.0.len() as u64 != b.old_size.0 {
                return Err(LogError::Moved(b.old_size));
            }
            g.1.extend_at(b.first_hash, &b.hashes)?;
            g.0.extend(b.entries.iter().map(|e| e.entry.clone()));
            g.2.extend(b.entries.iter().filter_map(|e| e.record.clone()));
            Ok(())
        }
        async fn record_checkpoint(&self, c: &StoredCheckpoint) -> Result<(), LogError> {
            let mut g = self.checkpoints.lock().unwrap();
            g.retain(|s| s.size != c.size);
            g.push(c.clone());
            Ok(())
        }
        async fn newest_checkpoint(&self, above: TreeSize) -> Result<Option<StoredCheckpoint>, LogError> {
            Ok(self.checkpoints.lock().unwrap().iter().filter(|c| c.size > above).max_by_key(|c| c.size).cloned())
        }
    }

    fn entry(i: u32) -> NewEntry {
        NewEntry { entry: i.to_be_bytes().to_vec(), record: Some(LoggedRecord::RevocationEvent(i64::from(i))) }
    }

    #[tokio::test]
    async fn concurrent_appends_get_distinct_indexes_and_the_head_matches_a_recomputation() {
        let store = Arc::new(Mem::default());
        let seq = Sequencer::start(store.clone()).await.unwrap();
        let tasks: Vec<_> = (0..300u32)
            .map(|i| {
                let seq = seq.clone();
                tokio::spawn(async move { (seq.append(entry(i)).await.unwrap(), i) })
            })
            .collect();
        let mut by_index = std::collections::BTreeMap::new();
        for t in tasks {
            let (idx, i) = t.await.unwrap();
            assert!(by_index.insert(idx.0, i).is_none(), "index {idx} given twice");
        }
        assert_eq!(by_index.keys().copied().collect::<Vec<_>>(), (0..300).collect::<Vec<_>>());
        // Each entry sits where the sequencer said.
        let g = store.inner.lock().unwrap();
        for (idx, i) in &by_index {
            assert_eq!(g.0[*idx as usize], i.to_be_bytes());
        }
        assert_eq!(g.2.len(), 300);
        let fresh = tree::append(TreeSize(0), &g.0, &MemoryHashes::new()).unwrap();
        assert_eq!(*seq.head().borrow(), (TreeSize(300), fresh.root));
    }

    #[tokio::test]
    async fn order_is_kept_and_a_failed_batch_leaves_the_tree_usable() {
        let store = Arc::new(Mem::default());
        let seq = Sequencer::start(store.clone()).await.unwrap();
        let idx = seq.append_all((0..10).map(entry).collect()).await.unwrap();
        assert_eq!(idx, (0..10).map(LeafIndex).collect::<Vec<_>>());
        *store.fail_next.lock().unwrap() = true;
        let e = seq.append(entry(99)).await.unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(seq.head().borrow().0, TreeSize(10));
        assert_eq!(seq.append(entry(10)).await.unwrap(), LeafIndex(10));
        // A restarted sequencer picks up where the store is.
        let again = Sequencer::start(store.clone()).await.unwrap();
        assert_eq!(again.append(entry(11)).await.unwrap(), LeafIndex(11));
    }

    #[tokio::test]
    async fn a_batch_committed_but_not_made_durable_fails_its_callers_and_the_head_stays() {
        let store = Arc::new(Mem::default());
        let seq = Sequencer::start(store.clone()).await.unwrap();
        seq.append_all((0..3).map(entry).collect()).await.unwrap();
        *store.flush_fails_next.lock().unwrap() = true;
        let e = seq.append(entry(3)).await.unwrap_err();
        assert!(e.to_string().contains("fdatasync failed"), "{e}");
        assert_eq!(seq.head().borrow().0, TreeSize(3), "no checkpoint covers the batch");
        // The batch is in the store (this store's flush failed once only): the next batch goes
        // on top of it, and the head then covers both.
        assert_eq!(seq.append(entry(4)).await.unwrap(), LeafIndex(4));
        assert_eq!(*seq.head().borrow(), store.log_tree().await.unwrap());
    }

    #[tokio::test]
    async fn a_store_whose_hashes_contradict_its_head_is_refused() {
        struct Liar(Mem);
        #[async_trait]
        impl LogStore for Liar {
            async fn log_tree(&self) -> Result<(TreeSize, Hash), LogError> {
                Ok((self.0.log_tree().await?.0, Hash([1; 32])))
            }
            async fn log_hashes(&self, i: &[HashIndex]) -> Result<Vec<Hash>, LogError> {
                self.0.log_hashes(i).await
            }
            async fn log_entries(&self, s: u64, e: u64) -> Result<Vec<(LeafIndex, Vec<u8>)>, LogError> {
                self.0.log_entries(s, e).await
            }
            async fn append_log_batch(&self, b: &LogBatch) -> Result<(), LogError> {
                self.0.append_log_batch(b).await
            }
            async fn record_checkpoint(&self, c: &StoredCheckpoint) -> Result<(), LogError> {
                self.0.record_checkpoint(c).await
            }
            async fn newest_checkpoint(&self, above: TreeSize) -> Result<Option<StoredCheckpoint>, LogError> {
                self.0.newest_checkpoint(above).await
            }
        }
        let mem = Mem::default();
        mem.append_log_batch(&{
            let a = tree::append(TreeSize(0), &[b"x"], &MemoryHashes::new()).unwrap();
            LogBatch {
                old_size: a.old_size,
                new_size: a.new_size,
                root: a.root,
                first_hash: a.first_index,
                hashes: a.hashes,
                entries: vec![NewEntry { entry: b"x".to_vec(), record: None }],
            }
        })
        .await
        .unwrap();
        let e = Sequencer::start(Arc::new(Liar(mem))).await.err().unwrap();
        assert!(e.to_string().contains("were changed"), "{e}");
    }

    /// A batch that loses race after race (another replica committing a burst) is built again
    /// on each newer tree until it lands, however many races that takes within a time bound.
    #[tokio::test]
    async fn a_batch_that_keeps_losing_races_lands_on_top_of_the_winners() {
        let store = Arc::new(Mem::default());
        let seq = Sequencer::start(store.clone()).await.unwrap();
        *store.appended_first.lock().unwrap() = 40;
        assert_eq!(seq.append(entry(7)).await.unwrap(), LeafIndex(40));
        assert_eq!(*store.appended_first.lock().unwrap(), 0);
        let g = store.inner.lock().unwrap().0.clone();
        assert_eq!(g.len(), 41);
        assert_eq!(g[40], 7u32.to_be_bytes());
        let fresh = tree::append(TreeSize(0), &g, &MemoryHashes::new()).unwrap();
        assert_eq!(*seq.head().borrow(), (TreeSize(41), fresh.root));
    }

    /// Two sequencers on one store (replicas on one database) appending at once: every entry of
    /// both lands exactly once, none fails (the one that loses a race builds its batch again on
    /// the other's), and the tree is the tree of what is stored. An idle one then follows the
    /// other's appends.
    #[tokio::test]
    async fn two_sequencers_on_one_store_both_append_and_follow_each_other() {
        let store = Arc::new(Mem::default());
        let (a, b) = (Sequencer::start(store.clone()).await.unwrap(), Sequencer::start(store.clone()).await.unwrap());
        let tasks: Vec<_> = (0..400u32)
            .map(|i| {
                let seq = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { seq.append(entry(i)).await.unwrap() })
            })
            .collect();
        let mut indexes = std::collections::BTreeSet::new();
        for t in tasks {
            assert!(indexes.insert(t.await.unwrap().0), "an index given twice");
        }
        assert_eq!(indexes.into_iter().collect::<Vec<_>>(), (0..400).collect::<Vec<u64>>());
        let (size, root) = store.log_tree().await.unwrap();
        assert_eq!(size, TreeSize(400));
        let g = store.inner.lock().unwrap().0.clone();
        assert_eq!(tree::append(TreeSize(0), &g, &MemoryHashes::new()).unwrap().root, root);

        a.append(entry(1000)).await.unwrap();
        let mut head = b.head();
        tokio::time::timeout(FOLLOW_INTERVAL * 4, head.wait_for(|(s, _)| *s == TreeSize(401)))
            .await
            .expect("the idle sequencer follows within a few intervals")
            .unwrap();
    }
}
