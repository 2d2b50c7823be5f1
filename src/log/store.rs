//! Hash storage: the one thing the tree needs from a database.
//!
//! The tree never holds the log in memory. It reads the stored hashes it needs by
//! [`HashIndex`] through [`HashReader`], a synchronous trait so that the core stays free of any
//! runtime. An async store (sqlx) serves it in two passes: [`indexes_needed`] runs an
//! operation against a recorder and returns the indexes it reads, the store fetches them in
//! one query, and the operation runs again over a [`PrefetchedHashes`].

use super::{Hash, HashIndex, LogError, TreeSize};
use std::cell::RefCell;
use std::collections::HashMap;

/// Reads stored hashes (the layout of [`HashIndex`]).
pub trait HashReader {
    /// The hashes at `indexes`, in the same order. A hash that is not stored is
    /// [`LogError::MissingHash`]; a storage failure is [`LogError::Store`].
    fn read_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, LogError>;
}

impl<T: HashReader + ?Sized> HashReader for &T {
    fn read_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, LogError> {
        (**self).read_hashes(indexes)
    }
}

/// Every stored hash of a tree, in memory: for tests, for an auditor recomputing the whole
/// tree, and as the write-ahead overlay of a batch being appended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryHashes {
    hashes: Vec<Hash>,
}

impl MemoryHashes {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored hashes of a tree, as a store would hand them back.
    pub fn from_hashes(hashes: Vec<Hash>) -> Self {
        MemoryHashes { hashes }
    }

    /// All stored hashes, index `i` at position `i`.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The number of stored hashes (the next free [`HashIndex`]).
    pub fn len(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// Whether nothing is stored yet.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Adds hashes that start at `first`, which must be the next free index: the same check a
    /// store makes before it writes a batch.
    pub fn extend_at(&mut self, first: HashIndex, hashes: &[Hash]) -> Result<(), LogError> {
        if first.0 != self.len() {
            return Err(LogError::NotContiguous { want: HashIndex(self.len()), got: first });
        }
        self.hashes.extend_from_slice(hashes);
        Ok(())
    }

    /// The tree size these hashes describe, if they are exactly the stored hashes of a tree
    /// (a batch cut in the middle of an entry's hashes is not).
    pub fn tree_size(&self) -> Option<TreeSize> {
        // Each entry adds at least one hash, so the size is at most the hash count; the count
        // grows with the size, so a binary search finds the one size that fits, if any.
        let (mut lo, mut hi) = (0u64, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if HashIndex::end(TreeSize(mid)).0 < self.len() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (HashIndex::end(TreeSize(lo)).0 == self.len()).then_some(TreeSize(lo))
    }
}

impl HashReader for MemoryHashes {
    fn read_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, LogError> {
        indexes
            .iter()
            .map(|i| {
                usize::try_from(i.0).ok().and_then(|p| self.hashes.get(p)).copied().ok_or(LogError::MissingHash(*i))
            })
            .collect()
    }
}

/// Hashes fetched ahead of an operation (see [`indexes_needed`]).
#[derive(Clone, Debug, Default)]
pub struct PrefetchedHashes(HashMap<HashIndex, Hash>);

impl FromIterator<(HashIndex, Hash)> for PrefetchedHashes {
    fn from_iter<I: IntoIterator<Item = (HashIndex, Hash)>>(iter: I) -> Self {
        PrefetchedHashes(iter.into_iter().collect())
    }
}

impl Extend<(HashIndex, Hash)> for PrefetchedHashes {
    fn extend<I: IntoIterator<Item = (HashIndex, Hash)>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl HashReader for PrefetchedHashes {
    fn read_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, LogError> {
        indexes.iter().map(|i| self.0.get(i).copied().ok_or(LogError::MissingHash(*i))).collect()
    }
}

/// The stored-hash indexes that `op` reads, sorted and without duplicates, so that an async
/// store can fetch them in one query before running `op` for real over a
/// [`PrefetchedHashes`]. `op` runs once against a recorder that answers zero hashes; the
/// tree's index arithmetic never depends on hash values, so the indexes are the real ones.
/// Whatever `op` returns in that run is discarded.
pub fn indexes_needed<T>(op: impl FnOnce(&dyn HashReader) -> Result<T, LogError>) -> Vec<HashIndex> {
    struct Recorder(RefCell<Vec<HashIndex>>);
    impl HashReader for Recorder {
        fn read_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, LogError> {
            self.0.borrow_mut().extend_from_slice(indexes);
            Ok(vec![Hash::default(); indexes.len()])
        }
    }
    let recorder = Recorder(RefCell::new(Vec::new()));
    let _ = op(&recorder);
    let mut v = recorder.0.into_inner();
    v.sort_unstable();
    v.dedup();
    v
}

/// Lets `tlog_tiles` read through a [`HashReader`]. tlog_tiles asserts (panics) when a reader
/// returns the wrong number of hashes, and its error type cannot carry ours: this adapter
/// turns a short answer into an error and keeps the reader's own error to hand back.
pub(super) struct TlogReader<'a> {
    inner: &'a dyn HashReader,
    failure: RefCell<Option<LogError>>,
}

impl<'a> TlogReader<'a> {
    pub(super) fn new(inner: &'a dyn HashReader) -> Self {
        TlogReader { inner, failure: RefCell::new(None) }
    }

    /// Maps a tlog_tiles error to ours, preferring the reader's own failure when there was one.
    pub(super) fn error(&self, e: tlog_tiles::Error) -> LogError {
        match self.failure.borrow_mut().take() {
            Some(failure) => failure,
            None => match e {
                tlog_tiles::Error::InvalidProof => LogError::InvalidProof,
                other => LogError::Store(other.to_string()),
            },
        }
    }
}

impl tlog_tiles::HashReader for TlogReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        let wanted: Vec<HashIndex> = indexes.iter().map(|&i| HashIndex(i)).collect();
        let result = self.inner.read_hashes(&wanted).and_then(|hashes| {
            if hashes.len() == wanted.len() {
                Ok(hashes)
            } else {
                Err(LogError::Store(format!("asked for {} hashes, got {}", wanted.len(), hashes.len())))
            }
        });
        match result {
            Ok(hashes) => Ok(hashes.into_iter().map(Into::into).collect()),
            Err(e) => {
                *self.failure.borrow_mut() = Some(e);
                Err(tlog_tiles::Error::IndexesNotInTree)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::tree;

    #[test]
    fn tree_size_is_recognised_only_at_entry_boundaries() {
        let mut store = MemoryHashes::new();
        assert_eq!(store.tree_size(), Some(TreeSize(0)));
        for n in 0..40u64 {
            let a = tree::append(TreeSize(n), &[n.to_be_bytes()], &store).unwrap();
            store.extend_at(a.first_index, &a.hashes).unwrap();
            assert_eq!(store.tree_size(), Some(TreeSize(n + 1)));
        }
        let mut cut = store.hashes().to_vec();
        // Size 39 → 40 writes several hashes (39 = 0b100111): dropping one leaves no tree.
        cut.pop();
        assert_eq!(MemoryHashes::from_hashes(cut).tree_size(), None);
    }

    #[test]
    fn a_batch_must_start_where_the_store_ends() {
        let mut store = MemoryHashes::new();
        assert!(matches!(store.extend_at(HashIndex(1), &[Hash::default()]), Err(LogError::NotContiguous { .. })));
    }

    #[test]
    fn prefetching_reproduces_the_direct_answer() {
        let mut store = MemoryHashes::new();
        let entries: Vec<[u8; 2]> = (0..100u16).map(|i| i.to_be_bytes()).collect();
        let a = tree::append(TreeSize(0), &entries, &store).unwrap();
        store.extend_at(a.first_index, &a.hashes).unwrap();

        let op = |r: &dyn HashReader| tree::prove_consistency(TreeSize(37), TreeSize(100), r);
        let needed = indexes_needed(op);
        let fetched: PrefetchedHashes = needed.iter().copied().zip(store.read_hashes(&needed).unwrap()).collect();
        assert_eq!(op(&fetched).unwrap(), op(&store).unwrap());
        // Nothing beyond what was recorded is read.
        assert!(needed.len() < 20);
    }

    #[test]
    fn a_sequencer_can_prefetch_what_appending_a_batch_reads() {
        // What an async store does: record the reads of the batch, fetch them, append for real.
        let entries: Vec<[u8; 2]> = (0..300u16).map(|i| i.to_be_bytes()).collect();
        let mut store = MemoryHashes::new();
        let a = tree::append(TreeSize(0), &entries[..123], &store).unwrap();
        store.extend_at(a.first_index, &a.hashes).unwrap();

        let batch = &entries[123..];
        let op = |r: &dyn HashReader| tree::append(TreeSize(123), batch, r);
        let needed = indexes_needed(op);
        // Only the subtree roots of the tree of 123 are read: 123 = 64 + 32 + 16 + 8 + 2 + 1.
        assert_eq!(needed, tree::subtree_roots(TreeSize(123)).unwrap());
        let fetched: PrefetchedHashes = needed.iter().copied().zip(store.read_hashes(&needed).unwrap()).collect();
        assert_eq!(op(&fetched).unwrap(), op(&store).unwrap());

        let tile = crate::log::Tile::hashes(0, 0, 100).unwrap();
        let op = |r: &dyn HashReader| crate::log::tiles::hash_tile(&tile, TreeSize(123), r);
        assert_eq!(indexes_needed(op).len(), 100);
    }

    #[test]
    fn short_answers_from_a_store_are_errors_not_panics() {
        struct Short;
        impl HashReader for Short {
            fn read_hashes(&self, _: &[HashIndex]) -> Result<Vec<Hash>, LogError> {
                Ok(vec![])
            }
        }
        assert!(matches!(tree::tree_hash(TreeSize(5), &Short), Err(LogError::Store(_))));
        assert!(matches!(
            tree::prove_inclusion(crate::log::LeafIndex(1), TreeSize(5), &Short),
            Err(LogError::Store(_))
        ));
        let empty = MemoryHashes::new();
        assert!(matches!(tree::tree_hash(TreeSize(5), &empty), Err(LogError::MissingHash(_))));
    }
}
