//! Policies from `policies/`: certificate profiles, the TSA policy and signing policies (and,
//! as they land, access rules). Parsed and validated once, immutable afterwards.

pub mod profile;
pub mod signing;
pub mod tsa;

pub use profile::{AttrKind, Profile, SanKind};
pub use signing::{Format, Level, SigningPolicy};
pub use tsa::{Precision, TsaPolicy};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A policy file that could not be loaded; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct PolicyError {
    pub file: PathBuf,
    pub message: String,
}

/// The default policies shipped in the repository (path below `policies/`, text), embedded so
/// `trustd dev` works from any directory. Written to the data dir on first start, where an
/// operator may edit them.
pub const DEFAULT_FILES: &[(&str, &str)] = &[
    ("profiles/tls-server.toml", include_str!("../../policies/profiles/tls-server.toml")),
    ("profiles/internal-tls-server.toml", include_str!("../../policies/profiles/internal-tls-server.toml")),
    ("profiles/tls-client.toml", include_str!("../../policies/profiles/tls-client.toml")),
    ("profiles/document-signer.toml", include_str!("../../policies/profiles/document-signer.toml")),
    ("profiles/service-client.toml", include_str!("../../policies/profiles/service-client.toml")),
    ("profiles/qcp-n.toml", include_str!("../../policies/profiles/qcp-n.toml")),
    ("profiles/qcp-n-qscd.toml", include_str!("../../policies/profiles/qcp-n-qscd.toml")),
    ("profiles/qcp-l-qscd.toml", include_str!("../../policies/profiles/qcp-l-qscd.toml")),
    ("profiles/ncp-n.toml", include_str!("../../policies/profiles/ncp-n.toml")),
    ("profiles/qcp-l.toml", include_str!("../../policies/profiles/qcp-l.toml")),
    ("profiles/ncp-l.toml", include_str!("../../policies/profiles/ncp-l.toml")),
    ("access.toml", include_str!("../../policies/access.toml")),
    ("tsa.toml", include_str!("../../policies/tsa.toml")),
    ("signing/default.toml", include_str!("../../policies/signing/default.toml")),
    ("signing/pades.toml", include_str!("../../policies/signing/pades.toml")),
];

/// Every policy the daemon enforces.
#[derive(Debug)]
pub struct Policies {
    profiles: BTreeMap<String, Arc<Profile>>,
    /// The time-stamping policy (`tsa.toml`).
    pub tsa: TsaPolicy,
    signing: BTreeMap<String, Arc<SigningPolicy>>,
}

impl Policies {
    /// Loads `dir/profiles/*.toml`, `dir/tsa.toml` and `dir/signing/*.toml`. Any invalid file
    /// fails the whole load: a CA must not start with a policy it half understood.
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        let profiles = load_dir(&dir.join("profiles"), "certificate profiles", Profile::parse)?;
        let signing = load_dir(&dir.join("signing"), "signing policies", SigningPolicy::parse)?;
        let tsa_path = dir.join("tsa.toml");
        let err = |message: String| PolicyError { file: tsa_path.clone(), message };
        let text = std::fs::read_to_string(&tsa_path).map_err(|e| err(e.to_string()))?;
        let tsa = TsaPolicy::parse(&text).map_err(err)?;
        for p in signing.values() {
            if let Some(c) = p.certificate.as_ref().filter(|c| !profiles.contains_key(&c.profile)) {
                return Err(PolicyError {
                    file: dir.join("signing").join(format!("{}.toml", p.name)),
                    message: format!(
                        "certificate.profile: no profile '{}' in {}",
                        c.profile,
                        dir.join("profiles").display()
                    ),
                });
            }
        }
        Ok(Policies { profiles, tsa, signing })
    }

    /// Writes the embedded default policies into `dir` unless files of those names exist.
    pub fn install_defaults(dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir.join("profiles"))?;
        std::fs::create_dir_all(dir.join("signing"))?;
        for (name, text) in DEFAULT_FILES {
            let path = dir.join(name);
            if !path.exists() {
                std::fs::write(path, text)?;
            }
        }
        Ok(())
    }

    /// The profile called `name`.
    pub fn profile(&self, name: &str) -> Option<&Arc<Profile>> {
        self.profiles.get(name)
    }

    /// Names of all profiles, sorted.
    pub fn profile_names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// Every signing policy, by name.
    pub fn signing(&self) -> impl Iterator<Item = &Arc<SigningPolicy>> {
        self.signing.values()
    }
}

/// Parses every `*.toml` in `dir` (named after the file stem) with `parse`; at least one must
/// exist.
fn load_dir<T>(
    dir: &Path,
    what: &str,
    parse: impl Fn(&str, &str) -> Result<T, String>,
) -> Result<BTreeMap<String, Arc<T>>, PolicyError> {
    let err = |file: &Path, message: String| PolicyError { file: file.to_owned(), message };
    let entries = std::fs::read_dir(dir).map_err(|e| err(dir, e.to_string()))?;
    let mut out = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(|e| err(dir, e.to_string()))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| err(&path, "file name is not UTF-8".into()))?
            .to_owned();
        let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
        let item = parse(&name, &text).map_err(|m| err(&path, m))?;
        out.insert(name, Arc::new(item));
    }
    if out.is_empty() {
        return Err(err(dir, format!("no {what} (*.toml) found")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_parse() {
        for (file, text) in DEFAULT_FILES.iter().filter(|(f, _)| f.starts_with("profiles/")) {
            let name = file.trim_start_matches("profiles/").trim_end_matches(".toml");
            Profile::parse(name, text).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        Policies::install_defaults(dir.path()).unwrap();
        let p = Policies::load(dir.path()).unwrap();
        assert_eq!(
            p.profile_names().collect::<Vec<_>>(),
            [
                "document-signer",
                "internal-tls-server",
                "ncp-l",
                "ncp-n",
                "qcp-l",
                "qcp-l-qscd",
                "qcp-n",
                "qcp-n-qscd",
                "service-client",
                "tls-client",
                "tls-server"
            ]
        );
        let seal = format!(
            "{}\nkey = \"k\"\n[certificate]\nprofile = \"no-such\"\nsubject = {{ CN = \"x\" }}\n",
            include_str!("../../policies/signing/default.toml")
        );
        std::fs::write(dir.path().join("signing/seal.toml"), seal).unwrap();
        let e = Policies::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("seal.toml") && e.contains("certificate.profile: no profile 'no-such'"), "{e}");
        std::fs::remove_file(dir.path().join("signing/seal.toml")).unwrap();
        std::fs::write(dir.path().join("profiles/broken.toml"), "description = 1").unwrap();
        let e = Policies::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("broken.toml"), "{e}");
        assert!(e.contains("description"), "{e}");
    }
}
