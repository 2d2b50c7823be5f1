//! What an auditor checks (`trustctl log verify`), as a pure function of what it fetched and
//! what it trusted last time: the checkpoint's signature, that the entries hash to the signed
//! tree head, that the tree extends the trusted one, and what the entries say.

use super::checkpoint::open_checkpoint;
use super::entry::{CeremonyEvent, PolicyChange, Sha256};
use super::{
    tree, Checkpoint, EntryType, Hash, HashIndex, HashReader, LeafIndex, LogEntry, LogError, LogPublicKey,
    MemoryHashes, PrefetchedHashes, TreeSize,
};
use der::Decode;
use sha2::Digest;
use std::collections::BTreeMap;
use std::ops::Range;

/// What an auditor trusts after a successful run, to keep for the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedTree {
    /// The verified tree size.
    pub size: TreeSize,
    /// The verified tree head.
    pub root: Hash,
    /// The heads of the perfect subtrees of the tree, at [`tree::subtree_roots`]`(size)`: with
    /// them the next run needs only the entries after `size` ([`AuditEntries::Since`]). Empty
    /// when unknown (a checkpoint saved by hand), which allows only [`AuditEntries::All`].
    pub subtree_roots: Vec<Hash>,
}

/// The entries an auditor fetched, encoded as the log serves them.
#[derive(Clone, Copy, Debug)]
pub enum AuditEntries<'a, E> {
    /// Every entry, from index 0 to the checkpoint's size.
    All(&'a [E]),
    /// The entries from the trusted size to the checkpoint's size; needs the trusted tree's
    /// subtree roots.
    Since(&'a [E]),
}

/// One audit: everything comes from the caller, nothing is fetched here.
#[derive(Clone, Copy, Debug)]
pub struct Audit<'a, E> {
    /// The log's origin line.
    pub origin: &'a str,
    /// The log's public key.
    pub key: &'a LogPublicKey,
    /// The signed checkpoint just fetched.
    pub checkpoint: &'a [u8],
    /// What the last run trusted, if any.
    pub trusted: Option<&'a TrustedTree>,
    /// The entries fetched.
    pub entries: AuditEntries<'a, E>,
    /// The log's leaf hashes for the same positions as `entries` (its level-0 tiles), if
    /// fetched: when the entries do not match the signed tree, they name the first entry
    /// that differs.
    pub published_leaves: Option<&'a [Hash]>,
}

/// What the audited entries contain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Entries by type.
    pub by_type: BTreeMap<EntryType, u64>,
    /// Entry types this version cannot read (newer than it), by type byte.
    pub unknown_types: BTreeMap<u8, u64>,
    /// Issued certificates by issuing CA.
    pub certificates_by_issuer: BTreeMap<String, u64>,
    /// Issued certificates by profile.
    pub certificates_by_profile: BTreeMap<String, u64>,
    /// Revocations by issuing CA.
    pub revocations_by_issuer: BTreeMap<String, u64>,
    /// What each client had made, by its configured name (empty: anonymous time-stamp
    /// requests). Certificates count for the client that asked for them.
    pub by_client: BTreeMap<String, Made>,
    /// Time-stamps and signatures by the key that made them, named by the SHA-256 of its
    /// certificate (as the entries name it).
    pub by_key: BTreeMap<Sha256, Made>,
    /// The subjects (RFC 4514) of the certificates among the audited entries whose hashes are
    /// keys of `by_key`: which key each one is, when its certificate was audited too.
    pub key_subjects: BTreeMap<Sha256, String>,
    /// Policy files that took effect, in log order, with their entries' indexes.
    pub policy_changes: Vec<(LeafIndex, PolicyChange)>,
    /// The key ceremony's keys, in log order, with their entries' indexes.
    pub ceremony_keys: Vec<(LeafIndex, CeremonyEvent)>,
}

/// How many certificates, signatures and time-stamps one client or key made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Made {
    pub certificates: u64,
    pub signatures: u64,
    pub timestamps: u64,
}

/// The outcome of a successful audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// The verified checkpoint.
    pub checkpoint: Checkpoint,
    /// The entries this run read and checked.
    pub checked: Range<u64>,
    /// What the checked entries contain.
    pub summary: Summary,
    /// What to trust next time.
    pub trusted: TrustedTree,
}

impl<E: AsRef<[u8]>> Audit<'_, E> {
    /// Runs the audit. Every failure is an error that says what is wrong: a bad signature, a
    /// log that shrank, an entry that differs from the tree ([`LogError::EntryMismatch`] or
    /// [`LogError::MissingEntry`] with its index, when `published_leaves` allow pinning it), a
    /// tree that does not extend the trusted one ([`LogError::Inconsistent`]).
    pub fn run(&self) -> Result<AuditReport, LogError> {
        let checkpoint = open_checkpoint(self.checkpoint, self.origin, self.key)?;
        let new_size = checkpoint.size();
        if let Some(t) = self.trusted {
            if new_size < t.size {
                return Err(LogError::Shrunk { old: t.size, new: new_size });
            }
        }
        let (start, base, entries) = match self.entries {
            AuditEntries::All(entries) => (TreeSize(0), PrefetchedHashes::default(), entries),
            AuditEntries::Since(entries) => {
                let t = self.trusted.ok_or_else(|| bad_state("auditing entries since a size needs a trusted tree"))?;
                (t.size, trusted_subtree_roots(t)?, entries)
            }
        };
        let since = matches!(self.entries, AuditEntries::Since(_));
        let expected = new_size.0 - start.0;
        let leaves: Vec<Hash> = entries.iter().map(|e| tree::leaf_hash(e.as_ref())).collect();

        let appended = tree::append_leaf_hashes(start, &leaves, &base)?;
        if appended.new_size != new_size || appended.root != checkpoint.root() {
            let fallback = if leaves.len() as u64 != expected {
                LogError::EntryCount { expected, got: leaves.len() as u64 }
            } else {
                LogError::RootMismatch(new_size)
            };
            return Err(self.pin_down(&checkpoint, start, &base, &leaves, since).unwrap_or(fallback));
        }

        // The entries make the signed tree. With all of them, check that it extends the
        // trusted tree; from the trusted subtree roots on, it does by construction.
        let roots = tree::subtree_roots(new_size)?;
        let subtree_roots = if since {
            let mut known = base;
            let first = appended.first_index.0;
            known.extend(appended.hashes.iter().enumerate().map(|(i, h)| (HashIndex(first + i as u64), *h)));
            known.read_hashes(&roots)?
        } else {
            let full = MemoryHashes::from_hashes(appended.hashes);
            if let Some(t) = self.trusted {
                if tree::tree_hash(t.size, &full)? != t.root {
                    return Err(LogError::Inconsistent { old: t.size, new: new_size });
                }
            }
            full.read_hashes(&roots)?
        };

        let mut summary = Summary::default();
        for (i, e) in entries.iter().enumerate() {
            summary.add(LeafIndex(start.0 + i as u64), e.as_ref())?;
        }
        summary.name_keys(entries);
        let trusted = TrustedTree { size: new_size, root: checkpoint.root(), subtree_roots };
        Ok(AuditReport { checkpoint, checked: start.0..new_size.0, summary, trusted })
    }

    /// After a mismatch, names the entry at fault when the log's own leaf hashes say which:
    /// if they make the signed tree, the first entry whose hash differs from them (or is
    /// missing) is the one that was changed, reordered or deleted.
    fn pin_down(
        &self,
        checkpoint: &Checkpoint,
        start: TreeSize,
        base: &PrefetchedHashes,
        leaves: &[Hash],
        since: bool,
    ) -> Option<LogError> {
        let published = self.published_leaves?;
        let signed = tree::append_leaf_hashes(start, published, base)
            .is_ok_and(|p| p.new_size == checkpoint.size() && p.root == checkpoint.root());
        if !signed {
            // From a trusted tree, the log's leaves do not lead to its own signed head: the
            // tree under the checkpoint does not extend what was trusted. From nothing, the
            // log serves hashes that contradict its checkpoint.
            return Some(if since {
                LogError::Inconsistent { old: start, new: checkpoint.size() }
            } else {
                LogError::PublishedHashesMismatch(checkpoint.size())
            });
        }
        let at = |i: usize| LeafIndex(start.0 + i as u64);
        match leaves.iter().zip(published).position(|(a, b)| a != b) {
            Some(i) => Some(LogError::EntryMismatch(at(i))),
            None if leaves.len() < published.len() => Some(LogError::MissingEntry(at(leaves.len()))),
            None => None,
        }
    }
}

fn bad_state(why: &str) -> LogError {
    LogError::BadTrustedState(why.into())
}

/// The trusted subtree roots, checked against the trusted root before anything is built on
/// them: a damaged state file must not vouch for a different tree.
fn trusted_subtree_roots(t: &TrustedTree) -> Result<PrefetchedHashes, LogError> {
    let indexes = tree::subtree_roots(t.size)?;
    if indexes.len() != t.subtree_roots.len() {
        return Err(bad_state("the trusted tree's subtree roots are missing or incomplete"));
    }
    let roots: PrefetchedHashes = indexes.into_iter().zip(t.subtree_roots.iter().copied()).collect();
    if tree::tree_hash(t.size, &roots)? != t.root {
        return Err(bad_state("the trusted subtree roots do not hash to the trusted root"));
    }
    Ok(roots)
}

impl Summary {
    fn add(&mut self, index: LeafIndex, entry: &[u8]) -> Result<(), LogError> {
        let unreadable = |e: LogError| LogError::UnreadableEntry { index, reason: e.to_string() };
        match LogEntry::decode(entry) {
            Ok(e) => {
                *self.by_type.entry(e.entry_type()).or_default() += 1;
                match e {
                    LogEntry::CertificateIssued(c) => {
                        *self.certificates_by_issuer.entry(c.issuer).or_default() += 1;
                        *self.certificates_by_profile.entry(c.profile).or_default() += 1;
                        self.by_client.entry(c.requester).or_default().certificates += 1;
                    }
                    LogEntry::Revocation(r) => *self.revocations_by_issuer.entry(r.issuer).or_default() += 1,
                    LogEntry::TimestampIssued(t) => {
                        self.by_client.entry(t.requester).or_default().timestamps += 1;
                        self.by_key.entry(t.signer).or_default().timestamps += 1;
                    }
                    LogEntry::SignatureMade(s) => {
                        self.by_client.entry(s.requester).or_default().signatures += 1;
                        self.by_key.entry(s.signer).or_default().signatures += 1;
                    }
                    LogEntry::PolicyChange(p) => self.policy_changes.push((index, p)),
                    LogEntry::CeremonyEvent(c) => self.ceremony_keys.push((index, c)),
                }
            }
            Err(LogError::UnknownEntryType(t)) => *self.unknown_types.entry(t).or_default() += 1,
            Err(e) => return Err(unreadable(e)),
        }
        Ok(())
    }

    /// Fills `key_subjects` from the certificates among `entries`: a second pass, because
    /// which certificates name a key is known only once every entry is counted, and keeping
    /// the hash of every certificate for it would grow with the log.
    fn name_keys<E: AsRef<[u8]>>(&mut self, entries: &[E]) {
        if self.by_key.is_empty() {
            return;
        }
        for e in entries {
            let Ok(LogEntry::CertificateIssued(c)) = LogEntry::decode(e.as_ref()) else { continue };
            let hash: Sha256 = sha2::Sha256::digest(&c.certificate_der).into();
            if self.by_key.contains_key(&hash) {
                if let Ok(cert) = x509_cert::Certificate::from_der(&c.certificate_der) {
                    self.key_subjects.insert(hash, cert.tbs_certificate.subject.to_string());
                }
            }
        }
    }
}
