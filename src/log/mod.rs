//! The issued-certificate log (issue #6): an append-only Merkle tree over typed entries, with
//! signed checkpoints and a tiled read path that auditors verify themselves. Everything but
//! [`sequencer`] and [`service`] is the pure core: no I/O, no runtime, no database. Those two
//! run the log (tokio tasks) over a [`LogStore`] that `store` implements; none of it knows
//! gRPC, HTTP or SQL.
//!
//! - [`tree`]: RFC 9162 §2.1 hashing, appending, inclusion and consistency proofs, over stored
//!   hashes read through [`HashReader`] (layout: [`HashIndex`]).
//! - [`entry`]: the binary encoding of a log entry (the leaf input).
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519.
//! - [`tiles`]: C2SP tlog-tiles paths, hash tiles and entry bundles.
//! - [`audit`]: what `trustctl log verify` checks.
//! - [`sequencer`]: batches entries into the one global sequence, durable before callers return.
//! - [`service`]: the running log: checkpoints signed at most every second, and the read path.

pub mod audit;
pub mod checkpoint;
pub mod entry;
pub mod sequencer;
pub mod service;
pub mod tiles;
pub mod tree;

mod error;
mod store;
mod types;

pub use audit::{Audit, AuditEntries, AuditReport, Made, Summary, TrustedTree};
pub use checkpoint::{open_checkpoint, Checkpoint, CheckpointSigner, LogPublicKey};
pub use entry::{
    CeremonyEvent, CertificateIssued, EntryType, LogEntry, PolicyChange, Revocation, Sha256, SignatureMade,
    TimestampIssued,
};
pub use error::LogError;
pub use sequencer::{LogBatch, LogStore, LoggedRecord, NewEntry, Sequencer, StoredCheckpoint};
pub use service::{SignedCheckpoint, TileData, TransparencyLog};
pub use store::{indexes_needed, HashReader, MemoryHashes, PrefetchedHashes};
pub use tiles::{Tile, TileKind};
pub use tree::{ConsistencyProof, InclusionProof, EMPTY_ROOT};
pub use types::{Hash, HashIndex, LeafIndex, TreeSize};

#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tree_tests;
