//! The Merkle tree of RFC 9162 §2.1: hashing, appending, and inclusion and consistency
//! proofs, over stored hashes read through a [`HashReader`].
//!
//! The arithmetic is `tlog_tiles` (Cloudflare's port of Go's sumdb `tlog`, whose proofs are
//! RFC 6962's, as its tests against a CT log show); this file adds strong types, input checks
//! and errors instead of panics. The tests check it against the RFC's own recursive
//! definitions and against the RFC 6962 reference vectors.

use super::store::TlogReader;
use super::{Hash, HashIndex, HashReader, LeafIndex, LogError, TreeSize};

/// The root of the empty tree, SHA-256 of the empty string (RFC 9162 §2.1.1).
pub const EMPTY_ROOT: Hash = Hash(tlog_tiles::EMPTY_HASH.0);

/// A proof of inclusion of one leaf, audit path order: from the leaf's sibling up to the
/// root's child (RFC 9162 §2.1.3.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InclusionProof(pub Vec<Hash>);

/// A proof that a tree is a prefix of a larger one (RFC 9162 §2.1.4.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsistencyProof(pub Vec<Hash>);

/// The largest tree the log handles: 2^62 entries. Beyond it the stored-hash index
/// arithmetic (about two hashes per entry) would overflow a u64; every function that reads
/// stored hashes refuses larger sizes first.
pub const MAX_TREE_SIZE: TreeSize = TreeSize(1 << 62);

fn check_size(size: TreeSize) -> Result<(), LogError> {
    if size > MAX_TREE_SIZE {
        return Err(LogError::TreeTooLarge);
    }
    Ok(())
}

/// No valid proof in a tree of at most 2^64 leaves has more hashes than this; longer ones are
/// refused before any hashing, so a hostile proof costs nothing.
const MAX_PROOF_LEN: usize = 64;

/// The leaf hash of an entry: SHA-256(0x00 ‖ entry) (RFC 9162 §2.1.1).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    tlog_tiles::record_hash(entry).into()
}

/// The hash of an interior node: SHA-256(0x01 ‖ left ‖ right) (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    tlog_tiles::node_hash((*left).into(), (*right).into()).into()
}

/// The tree head MTH(D[0:size]) (RFC 9162 §2.1.1) from stored hashes. Reads at most
/// 1 + log2(size) hashes: the roots of the perfect subtrees that make up the tree.
pub fn tree_hash(size: TreeSize, r: &dyn HashReader) -> Result<Hash, LogError> {
    check_size(size)?;
    let reader = TlogReader::new(r);
    tlog_tiles::tree_hash(size.0, &reader).map(Hash::from).map_err(|e| reader.error(e))
}

/// The stored hashes that make up a tree of `size` entries: the roots of its perfect
/// subtrees, largest (leftmost) first. With them and nothing else, the tree can be extended
/// and its head computed; an auditor keeps them between runs instead of the whole tree.
pub fn subtree_roots(size: TreeSize) -> Result<Vec<HashIndex>, LogError> {
    check_size(size)?;
    Ok(tlog_tiles::sub_tree_index(0, size.0, Vec::new()).into_iter().map(HashIndex).collect())
}

/// What appending a batch produces. The sequencer writes `hashes` at stored-hash indexes
/// `first_index..` in the same transaction as the entries, then signs `root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The size before the batch; its first entry gets this index.
    pub old_size: TreeSize,
    /// The size after the batch.
    pub new_size: TreeSize,
    /// Where `hashes` go: always `HashIndex::end(old_size)`.
    pub first_index: HashIndex,
    /// The new stored hashes, in index order.
    pub hashes: Vec<Hash>,
    /// MTH of the tree of `new_size` entries.
    pub root: Hash,
}

/// Appends `entries` (encoded entries: the leaf inputs) to the tree of `size` entries.
pub fn append<E: AsRef<[u8]>>(size: TreeSize, entries: &[E], r: &dyn HashReader) -> Result<Appended, LogError> {
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e.as_ref())).collect();
    append_leaf_hashes(size, &leaves, r)
}

/// Like [`append`], with the leaf hashes already computed.
pub fn append_leaf_hashes(size: TreeSize, leaves: &[Hash], r: &dyn HashReader) -> Result<Appended, LogError> {
    let new_size = size.0.checked_add(leaves.len() as u64).ok_or(LogError::TreeTooLarge)?;
    check_size(TreeSize(new_size))?;
    let first = HashIndex::end(size);
    let mut overlay = Overlay { base: first.0, old: r, new: Vec::new() };
    for (i, leaf) in leaves.iter().enumerate() {
        let n = size.0 + i as u64;
        let reader = TlogReader::new(&overlay);
        let hashes =
            tlog_tiles::stored_hashes_for_record_hash(n, (*leaf).into(), &reader).map_err(|e| reader.error(e))?;
        overlay.new.extend(hashes.into_iter().map(Hash::from));
    }
    let root = tree_hash(TreeSize(new_size), &overlay)?;
    Ok(Appended { old_size: size, new_size: TreeSize(new_size), first_index: first, hashes: overlay.new, root })
}

/// The batch being appended, in front of the store: reads below `base` go to the store.
struct Overlay<'a> {
    base: u64,
    old: &'a dyn HashReader,
    new: Vec<Hash>,
}

impl HashReader for Overlay<'_> {
    fn read_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, LogError> {
        let stored: Vec<HashIndex> = indexes.iter().copied().filter(|i| i.0 < self.base).collect();
        let mut from_store = if stored.is_empty() { Vec::new() } else { self.old.read_hashes(&stored)? }.into_iter();
        indexes
            .iter()
            .map(|i| {
                if i.0 < self.base {
                    from_store.next().ok_or(LogError::MissingHash(*i))
                } else {
                    usize::try_from(i.0 - self.base)
                        .ok()
                        .and_then(|p| self.new.get(p))
                        .copied()
                        .ok_or(LogError::MissingHash(*i))
                }
            })
            .collect()
    }
}

/// The inclusion proof of `leaf` in the tree of `size` entries (RFC 9162 §2.1.3.1).
pub fn prove_inclusion(leaf: LeafIndex, size: TreeSize, r: &dyn HashReader) -> Result<InclusionProof, LogError> {
    if leaf.0 >= size.0 {
        return Err(LogError::LeafOutOfRange { leaf, size });
    }
    check_size(size)?;
    let reader = TlogReader::new(r);
    let proof = tlog_tiles::prove_record(size.0, leaf.0, &reader).map_err(|e| reader.error(e))?;
    Ok(InclusionProof(proof.into_iter().map(Hash::from).collect()))
}

/// The consistency proof between the trees of `old` and `new` entries (RFC 9162 §2.1.4.1).
/// From the empty tree, or between equal sizes, it is empty.
pub fn prove_consistency(old: TreeSize, new: TreeSize, r: &dyn HashReader) -> Result<ConsistencyProof, LogError> {
    if old > new {
        return Err(LogError::SizesOutOfOrder { old, new });
    }
    check_size(new)?;
    if old.0 == 0 {
        return Ok(ConsistencyProof::default());
    }
    let reader = TlogReader::new(r);
    let proof = tlog_tiles::prove_tree(new.0, old.0, &reader).map_err(|e| reader.error(e))?;
    Ok(ConsistencyProof(proof.into_iter().map(Hash::from).collect()))
}

/// Checks that `proof` shows the leaf with hash `leaf_hash` at index `leaf` in the tree of
/// `size` entries with head `root` (RFC 9162 §2.1.3.2). The computation is tlog_tiles'
/// `check_record`, the recursive form of the RFC's iterative algorithm; the tests hold the two
/// to the same answers.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    leaf: LeafIndex,
    size: TreeSize,
    root: &Hash,
    proof: &InclusionProof,
) -> Result<(), LogError> {
    if leaf.0 >= size.0 {
        return Err(LogError::LeafOutOfRange { leaf, size });
    }
    if proof.0.len() > MAX_PROOF_LEN {
        return Err(LogError::InvalidProof);
    }
    let p: Vec<tlog_tiles::Hash> = proof.0.iter().map(|&h| h.into()).collect();
    tlog_tiles::check_record(&p, size.0, (*root).into(), leaf.0, (*leaf_hash).into())
        .map_err(|_| LogError::InvalidProof)
}

/// Checks that `proof` shows the tree of `old` entries with head `old_root` to be a prefix of
/// the tree of `new` entries with head `new_root` (RFC 9162 §2.1.4.2, as tlog_tiles'
/// `check_tree`). The empty tree is a prefix of every tree: from size 0 the proof must be
/// empty and `old_root` must be [`EMPTY_ROOT`].
pub fn verify_consistency(
    old: TreeSize,
    old_root: &Hash,
    new: TreeSize,
    new_root: &Hash,
    proof: &ConsistencyProof,
) -> Result<(), LogError> {
    if old > new {
        return Err(LogError::SizesOutOfOrder { old, new });
    }
    if proof.0.len() > MAX_PROOF_LEN {
        return Err(LogError::InvalidProof);
    }
    if old.0 == 0 {
        return if proof.0.is_empty() && *old_root == EMPTY_ROOT { Ok(()) } else { Err(LogError::InvalidProof) };
    }
    let p: Vec<tlog_tiles::Hash> = proof.0.iter().map(|&h| h.into()).collect();
    tlog_tiles::check_tree(&p, new.0, (*new_root).into(), old.0, (*old_root).into()).map_err(|_| LogError::InvalidProof)
}
