//! The auditor's checks against an honest log, a tampered database and a log that rewrites
//! its history.

use super::*;

const ORIGIN: &str = "ca.example.com/log";

fn signer() -> CheckpointSigner {
    CheckpointSigner::new(ORIGIN, std::sync::Arc::new(crate::keys::software::SoftwareKey::ed25519(1))).unwrap()
}

fn entry(i: u64) -> Vec<u8> {
    let issuer = if i.is_multiple_of(3) { "issuing-b" } else { "issuing-a" };
    let e = if i % 5 == 4 {
        LogEntry::Revocation(Revocation {
            serial: i.to_be_bytes().to_vec(),
            issuer: issuer.into(),
            revoked_at: i,
            reason: 1,
        })
    } else {
        LogEntry::CertificateIssued(CertificateIssued {
            certificate_der: format!("certificate {i}").into_bytes(),
            issued_at: 1_700_000_000 + i,
            profile: if i.is_multiple_of(2) { "tls-server" } else { "tls-client" }.into(),
            requester: format!("client-{i}"),
            issuer: issuer.into(),
        })
    };
    e.encode().unwrap()
}

/// A log as the daemon keeps it: entries, stored hashes, and a way to sign its head.
struct Log {
    entries: Vec<Vec<u8>>,
    hashes: MemoryHashes,
    signer: CheckpointSigner,
}

impl Log {
    fn with(entries: Vec<Vec<u8>>) -> Self {
        let mut hashes = MemoryHashes::new();
        let a = tree::append(TreeSize(0), &entries, &hashes).unwrap();
        hashes.extend_at(a.first_index, &a.hashes).unwrap();
        Log { entries, hashes, signer: signer() }
    }

    fn new(n: u64) -> Self {
        Self::with((0..n).map(entry).collect())
    }

    fn checkpoint(&self) -> Vec<u8> {
        let size = TreeSize(self.entries.len() as u64);
        let root = tree::tree_hash(size, &self.hashes).unwrap();
        crate::testing::block_on(self.signer.sign(&Checkpoint::new(ORIGIN, size, root).unwrap())).unwrap()
    }

    /// The leaf hashes the log publishes in its level-0 tiles, from its stored hashes.
    fn leaves(&self, range: std::ops::Range<u64>) -> Vec<Hash> {
        let idx: Vec<HashIndex> = range.map(|i| HashIndex::of(0, i)).collect();
        self.hashes.read_hashes(&idx).unwrap()
    }
}

fn audit<'a>(
    log: &'a Log,
    checkpoint: &'a [u8],
    trusted: Option<&'a TrustedTree>,
    entries: AuditEntries<'a, Vec<u8>>,
    published: Option<&'a [Hash]>,
) -> Result<AuditReport, LogError> {
    Audit { origin: ORIGIN, key: log.signer.public_key(), checkpoint, trusted, entries, published_leaves: published }
        .run()
}

#[test]
fn a_full_audit_counts_what_the_log_holds() {
    let log = Log::new(30);
    let cp = log.checkpoint();
    let r = audit(&log, &cp, None, AuditEntries::All(&log.entries), None).unwrap();
    assert_eq!(r.checked, 0..30);
    assert_eq!(r.checkpoint.size(), TreeSize(30));
    let s = &r.summary;
    assert_eq!(s.by_type[&EntryType::CertificateIssued], 24);
    assert_eq!(s.by_type[&EntryType::Revocation], 6);
    assert_eq!(s.certificates_by_issuer["issuing-a"] + s.certificates_by_issuer["issuing-b"], 24);
    assert_eq!(s.certificates_by_issuer["issuing-b"], (0..30).filter(|i| i % 3 == 0 && i % 5 != 4).count() as u64);
    assert_eq!(s.certificates_by_profile["tls-server"], (0..30).filter(|i| i % 2 == 0 && i % 5 != 4).count() as u64);
    assert_eq!(s.revocations_by_issuer.values().sum::<u64>(), 6);
    assert!(s.unknown_types.is_empty());
    let idx = tree::subtree_roots(TreeSize(30)).unwrap();
    assert_eq!(r.trusted.subtree_roots, log.hashes.read_hashes(&idx).unwrap());
    assert_eq!(r.trusted.root, tree::tree_hash(TreeSize(30), &log.hashes).unwrap());
}

#[test]
fn an_incremental_audit_needs_only_the_new_entries() {
    let old = Log::new(10);
    let first = audit(&old, &old.checkpoint(), None, AuditEntries::All(&old.entries), None).unwrap();
    let log = Log::new(25);
    let cp = log.checkpoint();
    let r = audit(&log, &cp, Some(&first.trusted), AuditEntries::Since(&log.entries[10..]), None).unwrap();
    assert_eq!(r.checked, 10..25);
    assert_eq!(r.summary.by_type.values().sum::<u64>(), 15);
    // The same state as a full audit reaches.
    let full = audit(&log, &cp, Some(&first.trusted), AuditEntries::All(&log.entries), None).unwrap();
    assert_eq!(r.trusted, full.trusted);
    // Nothing new is fine too.
    let again = audit(&log, &cp, Some(&r.trusted), AuditEntries::Since(&[]), None).unwrap();
    assert_eq!(again.trusted, r.trusted);
    assert_eq!(again.checked, 25..25);
}

#[test]
fn an_edited_entry_is_named() {
    let log = Log::new(40);
    let cp = log.checkpoint();
    let all_leaves = log.leaves(0..40);
    let mut edited = log.entries.clone();
    edited[17][5] ^= 1;
    let r = audit(&log, &cp, None, AuditEntries::All(&edited), Some(&all_leaves));
    assert!(matches!(r, Err(LogError::EntryMismatch(LeafIndex(17)))), "{r:?}");
    // Without the log's leaf hashes, the mismatch is found but not placed.
    let r = audit(&log, &cp, None, AuditEntries::All(&edited), None);
    assert!(matches!(r, Err(LogError::RootMismatch(TreeSize(40)))), "{r:?}");
    // Incrementally too.
    let old = Log::new(10);
    let trusted = audit(&old, &old.checkpoint(), None, AuditEntries::All(&old.entries), None).unwrap().trusted;
    let since_leaves = log.leaves(10..40);
    let r = audit(&log, &cp, Some(&trusted), AuditEntries::Since(&edited[10..]), Some(&since_leaves));
    assert!(matches!(r, Err(LogError::EntryMismatch(LeafIndex(17)))), "{r:?}");
}

#[test]
fn deleted_and_reordered_entries_are_named() {
    let log = Log::new(40);
    let cp = log.checkpoint();
    let leaves = log.leaves(0..40);

    let mut deleted = log.entries.clone();
    deleted.remove(23);
    let r = audit(&log, &cp, None, AuditEntries::All(&deleted), Some(&leaves));
    assert!(matches!(r, Err(LogError::EntryMismatch(LeafIndex(23)))), "{r:?}");
    let r = audit(&log, &cp, None, AuditEntries::All(&deleted), None);
    assert!(matches!(r, Err(LogError::EntryCount { expected: 40, got: 39 })), "{r:?}");

    let mut last_deleted = log.entries.clone();
    last_deleted.pop();
    let r = audit(&log, &cp, None, AuditEntries::All(&last_deleted), Some(&leaves));
    assert!(matches!(r, Err(LogError::MissingEntry(LeafIndex(39)))), "{r:?}");

    let mut reordered = log.entries.clone();
    reordered.swap(8, 30);
    let r = audit(&log, &cp, None, AuditEntries::All(&reordered), Some(&leaves));
    assert!(matches!(r, Err(LogError::EntryMismatch(LeafIndex(8)))), "{r:?}");

    let mut added = log.entries.clone();
    added.insert(5, entry(99));
    let r = audit(&log, &cp, None, AuditEntries::All(&added), Some(&leaves));
    assert!(matches!(r, Err(LogError::EntryMismatch(LeafIndex(5)))), "{r:?}");
}

#[test]
fn a_rewritten_history_is_inconsistent() {
    let honest = Log::new(10);
    let trusted = audit(&honest, &honest.checkpoint(), None, AuditEntries::All(&honest.entries), None).unwrap().trusted;
    // The operator edits entry 3, recomputes every hash and signs the new tree with the real key.
    let mut entries: Vec<Vec<u8>> = (0..20).map(entry).collect();
    entries[3] = entry(1003);
    let forged = Log::with(entries);
    let cp = forged.checkpoint();
    let r = audit(&forged, &cp, Some(&trusted), AuditEntries::All(&forged.entries), None);
    assert!(matches!(r, Err(LogError::Inconsistent { old: TreeSize(10), new: TreeSize(20) })), "{r:?}");
    let leaves = forged.leaves(10..20);
    let r = audit(&forged, &cp, Some(&trusted), AuditEntries::Since(&forged.entries[10..]), Some(&leaves));
    assert!(matches!(r, Err(LogError::Inconsistent { .. })), "{r:?}");
    let r = audit(&forged, &cp, Some(&trusted), AuditEntries::Since(&forged.entries[10..]), None);
    assert!(matches!(r, Err(LogError::RootMismatch(_))), "{r:?}");
    // A fork at the same size.
    let fork = Log::with((0..10).map(|i| entry(i + 500)).collect());
    let r = audit(&fork, &fork.checkpoint(), Some(&trusted), AuditEntries::All(&fork.entries), None);
    assert!(matches!(r, Err(LogError::Inconsistent { .. })), "{r:?}");
}

#[test]
fn a_shrunk_log_and_bad_checkpoints_fail() {
    let big = Log::new(20);
    let trusted = audit(&big, &big.checkpoint(), None, AuditEntries::All(&big.entries), None).unwrap().trusted;
    let small = Log::new(10);
    let r = audit(&small, &small.checkpoint(), Some(&trusted), AuditEntries::All(&small.entries), None);
    assert!(matches!(r, Err(LogError::Shrunk { .. })), "{r:?}");

    let cp = String::from_utf8(big.checkpoint()).unwrap().replacen("\n20\n", "\n21\n", 1);
    let r = audit(&big, cp.as_bytes(), None, AuditEntries::All(&big.entries), None);
    assert!(matches!(r, Err(LogError::BadSignature(_))), "{r:?}");
    let cp = big.checkpoint();
    let r = Audit {
        origin: "other.example/log",
        key: big.signer.public_key(),
        checkpoint: &cp,
        trusted: None,
        entries: AuditEntries::All(&big.entries),
        published_leaves: None,
    }
    .run();
    assert!(matches!(r, Err(LogError::WrongOrigin { .. })), "{r:?}");
}

#[test]
fn a_damaged_trusted_state_is_refused() {
    let log = Log::new(20);
    let cp = log.checkpoint();
    let mut trusted = audit(&log, &cp, None, AuditEntries::All(&log.entries[..]), None).unwrap().trusted;
    let r = audit(&log, &cp, None, AuditEntries::Since(&[]), None);
    assert!(matches!(r, Err(LogError::BadTrustedState(_))), "{r:?}");
    trusted.subtree_roots[0].0[0] ^= 1;
    let r = audit(&log, &cp, Some(&trusted), AuditEntries::Since(&[]), None);
    assert!(matches!(r, Err(LogError::BadTrustedState(_))), "{r:?}");
    trusted.subtree_roots.clear();
    let r = audit(&log, &cp, Some(&trusted), AuditEntries::Since(&[]), None);
    assert!(matches!(r, Err(LogError::BadTrustedState(_))), "{r:?}");
    // A state of size and root alone still allows a full audit.
    assert!(audit(&log, &cp, Some(&trusted), AuditEntries::All(&log.entries), None).is_ok());
}

#[test]
fn hashes_that_contradict_the_checkpoint_are_the_log_s_fault() {
    let log = Log::new(12);
    let cp = log.checkpoint();
    let mut edited = log.entries.clone();
    edited[4][3] ^= 1;
    let mut lying = log.leaves(0..12);
    lying[4] = tree::leaf_hash(&edited[4]);
    let r = audit(&log, &cp, None, AuditEntries::All(&edited), Some(&lying));
    assert!(matches!(r, Err(LogError::PublishedHashesMismatch(TreeSize(12)))), "{r:?}");
}

#[test]
fn future_entry_types_are_counted_and_garbage_is_named() {
    let mut entries: Vec<Vec<u8>> = (0..6).map(entry).collect();
    entries[2] = vec![1, 7, 0xde, 0xad];
    let log = Log::with(entries);
    let r = audit(&log, &log.checkpoint(), None, AuditEntries::All(&log.entries), None).unwrap();
    assert_eq!(r.summary.unknown_types[&7], 1);
    assert_eq!(r.summary.by_type.values().sum::<u64>(), 5);

    let mut entries: Vec<Vec<u8>> = (0..6).map(entry).collect();
    entries[4] = vec![9, 1];
    let log = Log::with(entries);
    let r = audit(&log, &log.checkpoint(), None, AuditEntries::All(&log.entries), None);
    assert!(matches!(r, Err(LogError::UnreadableEntry { index: LeafIndex(4), .. })), "{r:?}");
}
