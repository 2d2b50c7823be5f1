//! Reloading the access policy while serving: on SIGHUP, and when its file changes (checked
//! every [`POLL`]). The new policy replaces the old one whole ([`PolicyInForce`]); an invalid
//! file is refused with its file and field in one log line, and the policy in force stays.
//! With the log on, each policy that takes effect (at start and on reload) is first a
//! `policy_change` entry of it, so an auditor sees who could do what when.

use super::{AccessPolicy, Known, PolicyInForce};
use crate::log::{LogEntry, NewEntry, PolicyChange, Sequencer};
use sha2::Digest;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the file is looked at for a change.
pub const POLL: Duration = Duration::from_secs(2);

/// The policy file and what it may refer to (fixed at start, like the profiles).
pub struct PolicyFile {
    pub path: PathBuf,
    pub profiles: Vec<String>,
    pub signing_policies: Vec<String>,
}

impl PolicyFile {
    /// Reads and validates the file: the policy and the text it came from. The error names the
    /// file and the field.
    pub fn load(&self) -> Result<(AccessPolicy, String), String> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok((self.parse(&text)?, text))
    }

    /// Validates `text`, read from the file; the error names the file and the field.
    fn parse(&self, text: &str) -> Result<AccessPolicy, String> {
        let known = Known { profiles: &self.profiles, signing_policies: &self.signing_policies };
        AccessPolicy::parse(text, &known).map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// States in the log that `text` of this file takes effect now; returns once sequenced.
    pub async fn log_change(&self, log: &Sequencer, text: &str) -> Result<(), String> {
        let file =
            self.path.file_name().map_or_else(|| self.path.display().to_string(), |f| f.to_string_lossy().into());
        let entry = LogEntry::PolicyChange(PolicyChange {
            at: crate::unix_time::now(),
            file,
            sha256: sha2::Sha256::digest(text.as_bytes()).into(),
        });
        let entry = entry.encode().map_err(|e| e.to_string())?;
        log.append(NewEntry { entry, record: None }).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Keeps `in_force` up to date with the file for ever; `loaded` is the text in force now.
    /// A new policy takes effect only once `log` (when on) has its entry.
    pub async fn watch(self, in_force: Arc<PolicyInForce>, mut loaded: String, log: Option<Sequencer>) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: the access policy reloads on file change only");
                None
            }
        };
        // The last text refused, so that a bad file is reported once, not every poll.
        let mut refused: Option<String> = None;
        loop {
            let asked = tokio::select! {
                _ = tokio::time::sleep(POLL) => false,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => true,
            };
            let text = match std::fs::read_to_string(&self.path) {
                Ok(t) => t,
                Err(e) if asked => {
                    tracing::error!(
                        audit = true,
                        "access policy not reloaded, the one in force stays: {}: {e}",
                        self.path.display()
                    );
                    continue;
                }
                Err(_) => continue,
            };
            if !asked && (text == loaded || refused.as_ref() == Some(&text)) {
                continue;
            }
            match self.parse(&text) {
                Ok(policy) => {
                    if let Some(log) = &log {
                        if let Err(e) = self.log_change(log, &text).await {
                            // Tried again at the next poll: the file is valid, the log is not.
                            tracing::error!(
                                audit = true,
                                error = %e,
                                "access policy not reloaded, the one in force stays: its log entry failed"
                            );
                            continue;
                        }
                    }
                    in_force.replace(policy);
                    tracing::info!(audit = true, file = %self.path.display(), "access policy reloaded");
                    loaded = text;
                    refused = None;
                }
                Err(e) => {
                    tracing::error!(audit = true, "access policy not reloaded, the one in force stays: {e}");
                    refused = Some(text);
                }
            }
        }
    }
}
