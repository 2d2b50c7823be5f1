//! The running log: the sequencer, signed checkpoints and the read path, over a [`LogStore`].
//! The gRPC `TransparencyLog` service and the HTTP `/log/` routes are thin adapters over this.
//!
//! What is served is the tree of the latest signed checkpoint: proofs, entries and tiles for
//! larger sizes do not exist yet for an auditor (they could not check them against anything),
//! so they are [`LogError::BeyondTree`].
//!
//! Replicas of one database serve one sequence of checkpoints: every checkpoint is recorded in
//! the store before it is served, one replica signs them on the schedule (the daemon's
//! publishing lease), and the others serve the newest recorded, which they look up when asked
//! for the checkpoint or for a tree larger than the one they know. So the tree an auditor is
//! shown never shrinks, whichever replica answers.

use super::sequencer::{LogStore, Sequencer, StoredCheckpoint};
use super::tiles::{entry_bundle, hash_tile};
use super::{
    indexes_needed, tree, Checkpoint, CheckpointSigner, ConsistencyProof, Hash, HashIndex, HashReader, InclusionProof,
    LeafIndex, LogError, LogPublicKey, PrefetchedHashes, Tile, TileKind, TreeSize,
};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Most entries one `entries` call returns; larger ranges are paged.
pub const MAX_ENTRIES_PER_PAGE: u64 = 1000;

/// C2SP tlog-checkpoint: a log should publish a new checkpoint promptly; this one signs at most
/// once per interval while entries arrive, so a burst of issuance costs one HSM signature a
/// second, and an issuance is in a signed checkpoint within about this long.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// A checkpoint and its signed note (C2SP signed-note), as served.
#[derive(Clone, Debug)]
pub struct SignedCheckpoint {
    /// The checkpoint body's values.
    pub checkpoint: Checkpoint,
    /// The signed note: body, blank line, signature line.
    pub note: Vec<u8>,
    /// When it was signed (here or by another replica): how old the checkpoint auditors fetch is.
    pub signed_at: Instant,
}

impl SignedCheckpoint {
    /// A checkpoint another replica (or this one) recorded in the store, of the log `origin`.
    fn from_stored(stored: StoredCheckpoint, origin: &str) -> Result<Self, LogError> {
        let damaged = |why: &str| LogError::Store(format!("the stored checkpoint of size {}: {why}", stored.size));
        let end = stored.note.windows(2).position(|w| w == b"\n\n").ok_or_else(|| damaged("not a signed note"))?;
        let checkpoint = Checkpoint::parse_body(&stored.note[..=end])?;
        if checkpoint.origin() != origin || checkpoint.size() != stored.size {
            return Err(damaged("another log's, or another size's"));
        }
        let age_ms = (crate::unix_time::now_millis() - stored.signed_at_ms).max(0);
        let signed_at = Instant::now().checked_sub(Duration::from_millis(age_ms as u64)).unwrap_or_else(Instant::now);
        Ok(SignedCheckpoint { checkpoint, note: stored.note, signed_at })
    }
}

/// A tile's bytes and whether it is full (immutable: cacheable forever).
#[derive(Clone, Debug)]
pub struct TileData {
    /// The tile or entry bundle (C2SP tlog-tiles).
    pub bytes: Vec<u8>,
    /// Whether it holds 256 hashes or entries.
    pub full: bool,
}

/// The log of one trustd: origin, key, sequencer and the latest signed checkpoint.
pub struct TransparencyLog {
    origin: String,
    /// Replaced whole when the log's key rolls over ([`TransparencyLog::rotate`]).
    signer: arc_swap::ArcSwap<CheckpointSigner>,
    store: Arc<dyn LogStore>,
    sequencer: Sequencer,
    latest: RwLock<Arc<SignedCheckpoint>>,
    /// Held while a checkpoint is signed (see [`TransparencyLog::publish`]).
    publishing: tokio::sync::Mutex<()>,
}

impl TransparencyLog {
    /// Loads the tree from `store`, starts the sequencer and signs a first checkpoint (recorded,
    /// and replaced by a newer one another replica recorded), so that the log has one to serve
    /// from the start. The checkpoint schedule is [`TransparencyLog::run_checkpoints`].
    pub async fn start(
        origin: &str,
        signer: CheckpointSigner,
        store: Arc<dyn LogStore>,
    ) -> Result<Arc<Self>, LogError> {
        let sequencer = Sequencer::start(store.clone()).await?;
        let (size, root) = *sequencer.head().borrow();
        let first = sign(&signer, Checkpoint::new(origin, size, root)?).await?;
        let log = Arc::new(TransparencyLog {
            origin: origin.to_owned(),
            signer: arc_swap::ArcSwap::from_pointee(signer),
            store,
            sequencer,
            latest: RwLock::new(Arc::new(first.clone())),
            publishing: tokio::sync::Mutex::new(()),
        });
        log.settle(first).await;
        Ok(log)
    }

    /// Records `signed` in the store and serves it, or a larger one another replica recorded.
    /// Where it cannot be recorded (a read-only standby, a lost database), this replica serves
    /// it unrecorded rather than nothing newer.
    async fn settle(&self, signed: SignedCheckpoint) {
        let stored = StoredCheckpoint {
            size: signed.checkpoint.size(),
            note: signed.note.clone(),
            signed_at_ms: crate::unix_time::now_millis(),
        };
        if let Err(e) = self.store.record_checkpoint(&stored).await {
            tracing::debug!(error = %e, size = %stored.size, "checkpoint not recorded; served by this replica only");
        }
        self.serve(signed);
        if let Err(e) = self.adopt().await {
            tracing::debug!(error = %e, "stored checkpoints cannot be read; serving this replica's");
        }
    }

    /// Serves `signed` if it is not smaller than the checkpoint served now.
    fn serve(&self, signed: SignedCheckpoint) {
        let mut latest = self.latest.write().unwrap_or_else(|p| p.into_inner());
        if signed.checkpoint.size() >= latest.checkpoint.size() {
            *latest = Arc::new(signed);
        }
    }

    /// Serves the newest checkpoint recorded in the store, where it is larger than the one
    /// served now.
    pub async fn adopt(&self) -> Result<(), LogError> {
        let served = self.size();
        if let Some(stored) = self.store.newest_checkpoint(served).await? {
            self.serve(SignedCheckpoint::from_stored(stored, &self.origin)?);
        }
        Ok(())
    }

    /// The checkpoint to hand an auditor: the newest any replica recorded, so that it is never
    /// smaller than one another replica served (this replica's own when the store cannot be
    /// read).
    pub async fn current(&self) -> Arc<SignedCheckpoint> {
        if let Err(e) = self.adopt().await {
            tracing::debug!(error = %e, "stored checkpoints cannot be read; serving this replica's");
        }
        self.checkpoint()
    }

    /// Where entries are appended.
    pub fn sequencer(&self) -> &Sequencer {
        &self.sequencer
    }

    /// The log's origin line (C2SP tlog-checkpoint).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key auditors check checkpoints with (the newest, after a rollover).
    pub fn public_key(&self) -> LogPublicKey {
        self.signer.load().public_key().clone()
    }

    /// Signs checkpoints from now on with `key`, the log's next key, together with `previous`,
    /// the key it rolled over from (two signed-note signatures), and signs the current tree so
    /// at once: auditors who pinned the previous key keep verifying, and find the new key
    /// stated in the log (the caller waits until this tree includes the statement).
    pub async fn rotate(
        &self,
        key: Arc<dyn crate::keys::SigningKey>,
        previous: Option<Arc<dyn crate::keys::SigningKey>>,
    ) -> Result<(), LogError> {
        let mut next = CheckpointSigner::new(&self.origin, key)?;
        if let Some(previous) = previous {
            next = next.after(&CheckpointSigner::new(&self.origin, previous)?);
        }
        let _one = self.publishing.lock().await;
        let (size, root) = *self.sequencer.head().borrow();
        let signed = sign(&next, Checkpoint::new(&self.origin, size, root)?).await?;
        self.signer.store(Arc::new(next));
        self.settle(signed).await;
        Ok(())
    }

    /// Entries sequenced that no signed checkpoint covers yet: normally those of the last
    /// second; growing, it means checkpoints are not being signed.
    pub fn awaiting_checkpoint(&self) -> u64 {
        let sequenced = self.sequencer.head().borrow().0;
        sequenced.0.saturating_sub(self.size().0)
    }

    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> Arc<SignedCheckpoint> {
        self.latest.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Signs a checkpoint of the sequenced tree now, unless the latest one already covers it:
    /// at start-up after the log caught up with the store, and from the schedule.
    pub async fn publish(&self) -> Result<(), LogError> {
        // One signer at a time: callers that asked meanwhile find the tree covered and sign
        // nothing, so requests for a fresh checkpoint cost at most one signature per change.
        let _one = self.publishing.lock().await;
        let (size, root) = *self.sequencer.head().borrow();
        // The tree only grows: a served checkpoint as large (this replica's, or one another
        // replica recorded while this one's sequencer had not followed yet) covers it.
        if size <= self.size() {
            return Ok(());
        }
        let signed = sign(&self.signer.load_full(), Checkpoint::new(&self.origin, size, root)?).await?;
        self.settle(signed).await;
        Ok(())
    }

    /// Every [`CHECKPOINT_INTERVAL`]: while `publishes()` (this replica holds the publishing
    /// lease), signs a checkpoint of the sequenced tree if it grew; otherwise serves the newest
    /// another replica recorded. A failing HSM or store is retried at the next tick, so that
    /// sequenced entries get a checkpoint once it recovers. Runs until the daemon stops.
    pub async fn run_checkpoints(self: Arc<Self>, publishes: impl Fn() -> bool + Send + 'static) {
        let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let done = if publishes() { self.publish().await } else { self.adopt().await };
            match done {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(error = %e, "checkpoint could not be signed or read; retrying");
                }
                Err(_) => {}
            }
        }
    }

    fn size(&self) -> TreeSize {
        self.checkpoint().checkpoint.size()
    }

    /// Refuses sizes beyond the latest checkpoint (after looking for a newer one another
    /// replica recorded: an auditor may have been shown it).
    async fn within(&self, size: u64) -> Result<TreeSize, LogError> {
        if size > self.size().0 {
            self.adopt().await?;
        }
        let tree = self.size();
        if size > tree.0 {
            return Err(LogError::BeyondTree { requested: size, size: tree });
        }
        Ok(TreeSize(size))
    }

    /// Checks a range `start..end` of leaf indexes in the current checkpoint's tree; returns the
    /// page actually served (at most [`MAX_ENTRIES_PER_PAGE`]).
    async fn page(&self, start: u64, end: u64) -> Result<(u64, u64), LogError> {
        if start >= end {
            return Err(LogError::BadRequest(format!("start {start} must be below end {end}")));
        }
        self.within(end).await?;
        Ok((start, end.min(start.saturating_add(MAX_ENTRIES_PER_PAGE))))
    }

    /// The entries `start..end` (paged: at most [`MAX_ENTRIES_PER_PAGE`], from `start`), with
    /// their indexes. A gap in what the store returns is passed on, not hidden: an auditor
    /// names the missing entry.
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<(LeafIndex, Vec<u8>)>, LogError> {
        let (start, end) = self.page(start, end).await?;
        self.store.log_entries(start, end).await
    }

    /// The log's stored leaf hashes for `start..end` (paged like [`TransparencyLog::entries`]):
    /// what the level-0 tiles hold. With them an auditor whose recomputed tree disagrees with
    /// the checkpoint can name the entry that was changed.
    pub async fn leaf_hashes(&self, start: u64, end: u64) -> Result<Vec<Hash>, LogError> {
        let (start, end) = self.page(start, end).await?;
        let indexes: Vec<HashIndex> = (start..end).map(|i| HashIndex::of(0, i)).collect();
        self.store.log_hashes(&indexes).await
    }

    /// Runs a tree operation over stored hashes: learns which it reads, fetches those in one
    /// query, runs it again over them.
    async fn over_store<T>(&self, op: impl Fn(&dyn HashReader) -> Result<T, LogError>) -> Result<T, LogError> {
        let needed = indexes_needed(&op);
        let hashes = self.store.log_hashes(&needed).await?;
        let fetched: PrefetchedHashes = needed.into_iter().zip(hashes).collect();
        op(&fetched)
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries (RFC 9162 §2.1.3.1).
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof, LogError> {
        if size == 0 {
            return Err(LogError::BadRequest("tree_size must be at least 1".into()));
        }
        let size = self.within(size).await?;
        if index >= size.0 {
            return Err(LogError::BadRequest(format!("index {index} is not below tree_size {size}")));
        }
        self.over_store(|r| tree::prove_inclusion(LeafIndex(index), size, r)).await
    }

    /// The consistency proof between the trees of `first` and `second` entries
    /// (RFC 9162 §2.1.4.1).
    pub async fn consistency_proof(&self, first: u64, second: u64) -> Result<ConsistencyProof, LogError> {
        if first == 0 {
            return Err(LogError::BadRequest(
                "first must be at least 1: every tree extends the empty one, no proof needed".into(),
            ));
        }
        if first > second {
            return Err(LogError::BadRequest(format!("first {first} must not exceed second {second}")));
        }
        let second = self.within(second).await?;
        self.over_store(|r| tree::prove_consistency(TreeSize(first), second, r)).await
    }

    /// A hash tile or entry bundle by its path under the log's prefix (C2SP tlog-tiles),
    /// e.g. `tile/0/x001/234` or `tile/entries/000.p/5`. Paths that do not parse and tiles not
    /// in the current checkpoint's tree are errors ([`LogError::BadTilePath`],
    /// [`LogError::TileNotInTree`]): both mean "no such tile".
    pub async fn tile(&self, path: &str) -> Result<TileData, LogError> {
        let tile = Tile::parse(path)?;
        let mut size = self.size();
        if !tile.in_tree(size) {
            // Perhaps in a tree another replica recorded and served.
            self.adopt().await?;
            size = self.size();
        }
        if !tile.in_tree(size) {
            return Err(LogError::TileNotInTree(path.to_owned(), size));
        }
        let bytes = match tile.kind() {
            TileKind::Hashes { .. } => self.over_store(|r| hash_tile(&tile, size, r)).await?,
            TileKind::Entries => {
                let range = tile.entry_range().ok_or_else(|| LogError::TileNotInTree(path.to_owned(), size))?;
                let entries = self.store.log_entries(range.start, range.end).await?;
                // A bundle must hold every entry of its range; a deleted row cannot be served.
                for (i, (index, _)) in entries.iter().enumerate() {
                    if index.0 != range.start + i as u64 {
                        return Err(LogError::MissingEntry(LeafIndex(range.start + i as u64)));
                    }
                }
                if (entries.len() as u64) < range.end - range.start {
                    return Err(LogError::MissingEntry(LeafIndex(range.start + entries.len() as u64)));
                }
                let bytes: Vec<&[u8]> = entries.iter().map(|(_, e)| e.as_slice()).collect();
                entry_bundle(&tile, &bytes)?
            }
        };
        Ok(TileData { bytes, full: tile.is_full() })
    }
}

/// Signs a checkpoint (the key seam schedules the HSM's work).
async fn sign(signer: &CheckpointSigner, checkpoint: Checkpoint) -> Result<SignedCheckpoint, LogError> {
    let note = signer.sign(&checkpoint).await?;
    Ok(SignedCheckpoint { checkpoint, note, signed_at: Instant::now() })
}
