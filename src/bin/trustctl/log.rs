//! `trustctl log …`: the issued-certificate log from an auditor's side.
//!
//! `verify` reads the log through the gRPC read RPCs (`TransparencyLog.GetCheckpoint` and
//! `GetEntries`), the same read-only, unauthenticated surface as the HTTP tiles: trustctl is
//! the gRPC client, so one `--server` (and later one set of TLS settings) reaches everything,
//! and `GetEntries` returns each entry with its index, so a deleted row shows as a gap. Nothing
//! the server says is trusted: the checkpoint's signature is checked with the key the auditor
//! pinned, the tree is recomputed from the entries (`trustd::log::Audit`), and the new tree
//! must extend the one saved last time. Plain-HTTP auditors do the same with the tiles.

use clap::Subcommand;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::path::{Path, PathBuf};
use tonic::transport::Channel;
use trustd::api::pb;
use trustd::api::pb::transparency_log_client::TransparencyLogClient;
use trustd::log::{Audit, AuditEntries, Hash, LeafIndex, LogError, LogPublicKey, Made, TreeSize, TrustedTree};

#[derive(Subcommand)]
pub enum LogCommand {
    /// The latest signed checkpoint (C2SP signed note), as GET /log/checkpoint serves it.
    Checkpoint,
    /// An auditor's independent check: the checkpoint's signature with the pinned key, every
    /// entry since the saved state recomputed into the signed tree, consistency with the saved
    /// state; prints what was issued by CA and profile, what each client and key made, and
    /// the policy changes, and updates the state. A new log key stated in the log (a
    /// rollover) is pinned once it signs the checkpoint.
    Verify {
        /// JSON file with the tree verified last time (and the pinned key); read if it exists,
        /// written on success. Without it, the whole log is checked.
        #[arg(long)]
        state: Option<PathBuf>,
        /// The log's verifier key (`<name>+<id>+<base64>`), or a file holding it. Get it out of
        /// band; needed unless the state file already pins one.
        #[arg(long)]
        key: Option<String>,
        /// The log's origin line; by default the key's name.
        #[arg(long)]
        origin: Option<String>,
    },
    /// Every entry of the latest checkpoint's tree, for an offline audit: FILE holds the
    /// entries in index order, each a big-endian uint16 length and the entry (the C2SP
    /// tlog-tiles entry-bundle encoding); FILE.checkpoint holds the signed checkpoint.
    Export {
        #[arg(long)]
        out: PathBuf,
    },
}

/// What `verify --state` keeps between runs.
#[derive(Serialize, Deserialize)]
struct State {
    /// The log's origin.
    origin: String,
    /// The pinned verifier key.
    key: String,
    /// A new log key the log stated (a rollover) that signed no checkpoint yet: pinned once
    /// one is signed by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_key: Option<String>,
    /// The verified tree: size, root (hex), and the roots of its perfect subtrees (hex), with
    /// which the next run checks only the new entries.
    tree_size: u64,
    root: String,
    subtree_roots: Vec<String>,
}

fn status(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

fn log_err(e: LogError) -> String {
    e.to_string()
}

/// The entries `start..end` and the log's leaf hashes for them, page by page. A gap in the
/// indexes the server sends is a missing entry, reported as such.
async fn fetch(
    client: &mut TransparencyLogClient<Channel>,
    start: u64,
    end: u64,
) -> Result<(Vec<Vec<u8>>, Vec<Hash>), String> {
    let mut entries = Vec::new();
    let mut leaves = Vec::new();
    let mut next = start;
    while next < end {
        let page = client
            .get_entries(pb::GetEntriesRequest { start: next, end, include_leaf_hashes: true })
            .await
            .map_err(status)?
            .into_inner();
        if page.entries.is_empty() {
            return Err(log_err(LogError::MissingEntry(LeafIndex(next))));
        }
        for h in &page.leaf_hashes {
            leaves.push(Hash::from_slice(h).map_err(log_err)?);
        }
        for e in page.entries {
            if e.index != next {
                return Err(format!(
                    "{} (the log served entry {} in its place)",
                    LogError::MissingEntry(LeafIndex(next)),
                    e.index
                ));
            }
            entries.push(e.entry);
            next += 1;
        }
    }
    Ok((entries, leaves))
}

fn read_key(arg: &str) -> Result<LogPublicKey, String> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).map_err(|e| format!("--key {arg}: {e}"))?
    } else {
        arg.to_owned()
    };
    LogPublicKey::from_vkey(text.trim()).map_err(|e| format!("--key: {e}"))
}

fn hex_hash(s: &str) -> Result<Hash, String> {
    Hash::from_hex(s).map_err(|e| format!("state file: {e}"))
}

async fn verify(
    channel: Channel,
    state_path: Option<PathBuf>,
    key: Option<String>,
    origin: Option<String>,
) -> Result<String, String> {
    let saved: Option<State> = match &state_path {
        Some(p) if p.exists() => {
            let text = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Some(serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        _ => None,
    };
    let key = match (&key, &saved) {
        (Some(k), _) => read_key(k)?,
        (None, Some(s)) => LogPublicKey::from_vkey(&s.key).map_err(|e| format!("state file key: {e}"))?,
        (None, None) => {
            return Err("the log's public key is needed (--key VKEY or FILE); get it out of band, \
                        not from the log itself"
                .into())
        }
    };
    if let Some(s) = &saved {
        if s.key != key.vkey() {
            return Err(format!("the state file pins key {}, not {}", s.key, key.vkey()));
        }
    }
    let origin = origin.or_else(|| saved.as_ref().map(|s| s.origin.clone())).unwrap_or_else(|| key.name().to_owned());
    let next_key = match saved.as_ref().and_then(|s| s.next_key.as_deref()) {
        Some(k) => Some(LogPublicKey::from_vkey(k).map_err(|e| format!("state file next_key: {e}"))?),
        None => None,
    };
    let trusted = saved
        .as_ref()
        .map(|s| {
            Ok::<_, String>(TrustedTree {
                size: TreeSize(s.tree_size),
                root: hex_hash(&s.root)?,
                subtree_roots: s.subtree_roots.iter().map(|h| hex_hash(h)).collect::<Result<_, _>>()?,
            })
        })
        .transpose()?;

    let mut client = TransparencyLogClient::new(channel);
    let cp = client.get_checkpoint(pb::GetCheckpointRequest::default()).await.map_err(status)?.into_inner();
    // The size to fetch up to comes from the note only after the audit checks its signature;
    // until then it is a hint, and entries beyond or short of it fail the audit.
    let start = trusted.as_ref().map_or(0, |t| t.size.0);
    if cp.tree_size < start {
        return Err(log_err(LogError::Shrunk { old: TreeSize(start), new: TreeSize(cp.tree_size) }));
    }
    let (entries, leaves) = fetch(&mut client, start, cp.tree_size).await?;
    let audit = Audit {
        origin: &origin,
        key: &key,
        checkpoint: &cp.signed_note,
        trusted: trusted.as_ref(),
        entries: if trusted.is_some() { AuditEntries::Since(&entries) } else { AuditEntries::All(&entries) },
        published_leaves: Some(&leaves),
    };
    let report = audit.run().map_err(|e| format!("log verification FAILED: {e}"))?;

    let mut out = format!(
        "log {origin}: tree size {} verified (root {}), signature by {}+{:08x} good\n",
        report.checkpoint.size(),
        report.checkpoint.root().to_hex(),
        key.name(),
        key.key_id()
    );
    match &trusted {
        Some(t) => out.push_str(&format!(
            "consistent with the saved tree of size {}: nothing before it was removed or rewritten\n",
            t.size
        )),
        None => out.push_str("no saved state: every entry from 0 checked\n"),
    }
    out.push_str(&format!("entries checked: {}..{}\n", report.checked.start, report.checked.end));
    let s = &report.summary;
    let line = |title: &str, m: &std::collections::BTreeMap<String, u64>| {
        let items: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!("{title}: {}\n", if items.is_empty() { "none".into() } else { items.join(", ") })
    };
    let by_type: std::collections::BTreeMap<String, u64> =
        s.by_type.iter().map(|(t, n)| (t.name().to_owned(), *n)).collect();
    out.push_str(&line("entries by type", &by_type));
    out.push_str(&line("certificates by CA", &s.certificates_by_issuer));
    out.push_str(&line("certificates by profile", &s.certificates_by_profile));
    out.push_str(&line("revocations by CA", &s.revocations_by_issuer));
    out.push_str(&made_by(
        "made by client",
        s.by_client.iter().map(|(c, m)| (if c.is_empty() { "(anonymous)".to_owned() } else { c.clone() }, m)),
    ));
    out.push_str(&made_by(
        "made by key (SHA-256 of its certificate)",
        s.by_key.iter().map(|(k, m)| {
            let subject = s
                .key_subjects
                .get(k)
                .map_or_else(|| " (certificate not among these entries)".into(), |n| format!(" {n}"));
            (format!("{}{subject}", hex::encode(k)), m)
        }),
    ));
    for (index, k) in &s.ceremony_keys {
        out.push_str(&format!(
            "key of the ceremony at entry {index}: {} {} with public key SHA-256 {}, in service from {}\n",
            k.role,
            k.key,
            hex::encode(sha2::Sha256::digest(&k.public_key_der)),
            humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(k.at))
        ));
    }
    for (index, p) in &s.policy_changes {
        out.push_str(&format!(
            "policy change at entry {index}: {} with SHA-256 {} in force from {}\n",
            p.file,
            hex::encode(p.sha256),
            humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(p.at))
        ));
    }
    if !s.unknown_types.is_empty() {
        let unknown: std::collections::BTreeMap<String, u64> =
            s.unknown_types.iter().map(|(t, n)| (format!("type {t}"), *n)).collect();
        out.push_str(&line("entries of types this trustctl cannot read (tree still verified)", &unknown));
    }

    // A log key rolled over is stated in the log, in a tree the pinned key signed; it is pinned
    // once it signs the checkpoint too (the log cosigns with the old key and the new).
    let stated = stated_log_key(&report.summary, &key)?;
    let (pinned, next_key) = match stated.map(|(i, k)| (Some(i), k)).or(next_key.map(|k| (None, k))) {
        Some((_, next)) if next == key => (key, None),
        Some((index, next)) if trustd::log::open_checkpoint(&cp.signed_note, &origin, &next).is_ok() => {
            let at = index.map_or_else(String::new, |i| format!(" at entry {i}"));
            let pinned = if state_path.is_some() { ", pinned from now on" } else { "" };
            out.push_str(&format!("the log's key rolled over{at}: {} signs its checkpoints{pinned}\n", next.vkey()));
            (next, None)
        }
        Some((_, next)) => {
            out.push_str(&format!("the log states its next key {}, which signs no checkpoint yet\n", next.vkey()));
            (key, Some(next))
        }
        None => (key, None),
    };
    if let Some(p) = &state_path {
        let state = State {
            origin: origin.clone(),
            key: pinned.vkey(),
            next_key: next_key.map(|k| k.vkey()),
            tree_size: report.trusted.size.0,
            root: report.trusted.root.to_hex(),
            subtree_roots: report.trusted.subtree_roots.iter().map(Hash::to_hex).collect(),
        };
        let json = serde_json::to_vec_pretty(&state).map_err(|e| e.to_string())?;
        // Written aside and renamed: a crash never leaves a half-written state.
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, json).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, p).map_err(|e| format!("{}: {e}", p.display()))?;
        out.push_str(&format!("state saved to {}\n", p.display()));
    }
    Ok(out)
}

/// The newest log key stated among the entries just verified (a `log` ceremony_event), with
/// its entry; its name is the pinned key's.
fn stated_log_key(
    summary: &trustd::log::Summary,
    pinned: &LogPublicKey,
) -> Result<Option<(LeafIndex, LogPublicKey)>, String> {
    let Some((index, event)) = summary.ceremony_keys.iter().rev().find(|(_, k)| k.role == "log") else {
        return Ok(None);
    };
    let stated = LogPublicKey::from_spki_der(pinned.name(), &event.public_key_der)
        .map_err(|e| format!("the log key stated at entry {index}: {e}"))?;
    Ok(Some((*index, stated)))
}

/// `title:` and one line per client or key: what it made, zero counts left out.
fn made_by<'a>(title: &str, rows: impl Iterator<Item = (String, &'a Made)>) -> String {
    let mut out = format!("{title}:");
    let mut any = false;
    for (name, m) in rows {
        any = true;
        let counts: Vec<String> =
            [("certificates", m.certificates), ("signatures", m.signatures), ("time-stamps", m.timestamps)]
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(what, n)| format!("{what} {n}"))
                .collect();
        out.push_str(&format!("\n  {name}: {}", counts.join(", ")));
    }
    if !any {
        out.push_str(" none");
    }
    out.push('\n');
    out
}

async fn export(channel: Channel, out: PathBuf) -> Result<String, String> {
    let mut client = TransparencyLogClient::new(channel);
    let cp = client.get_checkpoint(pb::GetCheckpointRequest::default()).await.map_err(status)?.into_inner();
    let (entries, _) = fetch(&mut client, 0, cp.tree_size).await?;
    let mut bytes = Vec::new();
    for e in &entries {
        let len = u16::try_from(e.len()).map_err(|_| log_err(LogError::EntryTooLarge(e.len())))?;
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(e);
    }
    std::fs::write(&out, &bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut cp_path = out.clone().into_os_string();
    cp_path.push(".checkpoint");
    std::fs::write(&cp_path, &cp.signed_note).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(format!(
        "{} entries ({} bytes) to {}; the signed checkpoint of size {} to {}\n",
        entries.len(),
        bytes.len(),
        out.display(),
        cp.tree_size,
        PathBuf::from(cp_path).display()
    ))
}

/// Runs a `trustctl log` command; returns what to print.
pub async fn run(channel: Channel, cmd: LogCommand) -> Result<Vec<u8>, String> {
    match cmd {
        LogCommand::Checkpoint => {
            let mut client = TransparencyLogClient::new(channel);
            Ok(client
                .get_checkpoint(pb::GetCheckpointRequest { fresh: true })
                .await
                .map_err(status)?
                .into_inner()
                .signed_note)
        }
        LogCommand::Verify { state, key, origin } => verify(channel, state, key, origin).await.map(String::into_bytes),
        LogCommand::Export { out } => export(channel, out).await.map(String::into_bytes),
    }
}
