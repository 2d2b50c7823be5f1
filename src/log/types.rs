//! The value types of the log: hashes, tree sizes, leaf indexes and stored-hash indexes.

use super::LogError;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use std::fmt;

/// A SHA-256 Merkle tree hash: a leaf hash, an interior node hash or a tree head
/// (RFC 9162 §2.1.1, where the hash algorithm of the log is SHA-256).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The length of a hash in bytes.
    pub const LEN: usize = 32;

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A hash from exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self, LogError> {
        <[u8; 32]>::try_from(b).map(Hash).map_err(|_| LogError::BadHash(format!("{} bytes, not 32", b.len())))
    }

    /// Standard base64 with padding, as in a C2SP tlog-checkpoint's root hash line.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Parses standard base64 with padding; anything that is not exactly 32 bytes is an error.
    pub fn from_base64(s: &str) -> Result<Self, LogError> {
        let b = BASE64.decode(s).map_err(|e| LogError::BadHash(e.to_string()))?;
        Self::from_slice(&b)
    }

    /// Lower-case hex, for people and JSON state files.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, LogError> {
        let b = hex::decode(s).map_err(|e| LogError::BadHash(e.to_string()))?;
        Self::from_slice(&b)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<tlog_tiles::Hash> for Hash {
    fn from(h: tlog_tiles::Hash) -> Self {
        Hash(h.0)
    }
}

impl From<Hash> for tlog_tiles::Hash {
    fn from(h: Hash) -> Self {
        tlog_tiles::Hash(h.0)
    }
}

/// The number of entries in a tree (RFC 9162 §2.1.1's n; a checkpoint's tree size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TreeSize(pub u64);

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The zero-based position of an entry in the log (RFC 9162 §2.1.3's m).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeafIndex(pub u64);

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a hash lives in hash storage: the dense linear order of Go's sumdb `tlog`
/// (`StoredHashIndex`; Crosby and Wallach, "Efficient Data Structures for Tamper-Evident
/// Logging", §3.3). Appending entry n writes the hashes from `HashIndex::of(0, n)` on, so the
/// stored hashes of a tree of n entries are exactly the indexes `0..HashIndex::end(n)` and a
/// store can keep them as one append-only table keyed by this number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashIndex(pub u64);

impl HashIndex {
    /// The index of the hash at `level` (0 = leaf hashes) and position `n` in that level:
    /// the root of the perfect subtree over entries `n·2^level .. (n+1)·2^level`. Defined for
    /// trees up to [`MAX_TREE_SIZE`](super::tree::MAX_TREE_SIZE) entries, which every tree
    /// function checks before it gets here.
    pub fn of(level: u8, n: u64) -> Self {
        HashIndex(tlog_tiles::stored_hash_index(level, n))
    }

    /// The first index after the stored hashes of a tree of `size` entries: their number, and
    /// where the hashes of entry `size` go.
    pub fn end(size: TreeSize) -> Self {
        HashIndex(tlog_tiles::stored_hash_count(size.0))
    }
}

impl fmt::Display for HashIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_hex_round_trip_and_reject_wrong_lengths() {
        let h = Hash([7; 32]);
        assert_eq!(Hash::from_base64(&h.to_base64()).unwrap(), h);
        assert_eq!(Hash::from_hex(&h.to_hex()).unwrap(), h);
        assert!(Hash::from_base64("AAAA").is_err());
        assert!(Hash::from_hex("00").is_err());
        assert!(Hash::from_base64("not base64!").is_err());
    }

    #[test]
    fn stored_hashes_of_a_tree_are_a_dense_prefix() {
        // The layout promise the store relies on: entry n's hashes start right after the
        // hashes of the tree of n entries.
        for n in 0..300 {
            assert_eq!(HashIndex::of(0, n), HashIndex::end(TreeSize(n)));
        }
    }
}
