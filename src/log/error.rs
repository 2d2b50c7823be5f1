//! The one error type of the log module.

use super::{HashIndex, LeafIndex, TreeSize};

/// Everything that can go wrong in the log's pure core. Variants that come from untrusted
/// input (proofs, paths, notes, entries) say what was wrong so that an API can answer
/// INVALID_ARGUMENT / OUT_OF_RANGE / 404 and an auditor can show it.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("malformed hash: {0}")]
    BadHash(String),
    #[error("stored hash {0} is missing")]
    MissingHash(HashIndex),
    #[error("hash store: {0}")]
    Store(String),
    /// The tree-head compare-and-set failed: another writer (a replica) appended first.
    #[error("the log's tree is no longer at size {0}: another writer appended")]
    Moved(TreeSize),
    #[error("leaf {leaf} is not in a tree of size {size}")]
    LeafOutOfRange { leaf: LeafIndex, size: TreeSize },
    #[error("tree size {old} is not a prefix of tree size {new}")]
    SizesOutOfOrder { old: TreeSize, new: TreeSize },
    #[error("the hashes of the batch start at stored hash {got}, but the store ends at {want}")]
    NotContiguous { want: HashIndex, got: HashIndex },
    #[error("tree size overflow")]
    TreeTooLarge,
    #[error("the proof does not verify")]
    InvalidProof,
    #[error("{requested} is beyond the log's tree of size {size}")]
    BeyondTree { requested: u64, size: TreeSize },
    #[error("{0}")]
    BadRequest(String),

    #[error("malformed log entry: {0}")]
    BadEntry(String),
    #[error("log entry type {0} is not known to this version")]
    UnknownEntryType(u8),
    #[error("log entry of {0} bytes exceeds the 65535 bytes an entry bundle can carry")]
    EntryTooLarge(usize),

    #[error("malformed tile path: {0}")]
    BadTilePath(String),
    #[error("tile {0} is not in a tree of size {1}")]
    TileNotInTree(String, TreeSize),
    #[error("malformed entry bundle: {0}")]
    BadEntryBundle(String),

    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(String),
    #[error("checkpoint origin is '{found}', expected '{expected}'")]
    WrongOrigin { expected: String, found: String },
    #[error("the checkpoint carries no valid signature by {0}")]
    BadSignature(String),
    #[error("invalid log public key: {0}")]
    BadPublicKey(String),
    #[error("checkpoint signer: {0}")]
    Signer(String),

    #[error("expected {expected} entries, got {got}")]
    EntryCount { expected: u64, got: u64 },
    #[error("entry {0} is missing")]
    MissingEntry(LeafIndex),
    #[error("the trusted state: {0}")]
    BadTrustedState(String),
    #[error("entry {0} differs from the one the log's tree commits to")]
    EntryMismatch(LeafIndex),
    #[error("entry {index} in the log is unreadable: {reason}")]
    UnreadableEntry { index: LeafIndex, reason: String },
    #[error("the checkpoint's root hash for size {0} does not match the entries")]
    RootMismatch(TreeSize),
    #[error("the log's hashes do not match its own signed checkpoint of size {0}")]
    PublishedHashesMismatch(TreeSize),
    #[error("the log's tree of size {new} does not extend the trusted tree of size {old}: entries before {old} were removed or rewritten")]
    Inconsistent { old: TreeSize, new: TreeSize },
    #[error("the log shrank from trusted size {old} to {new}")]
    Shrunk { old: TreeSize, new: TreeSize },
}
