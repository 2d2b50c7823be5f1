//! `policies/access.toml`: its format and its validation. Every error names the field.

use super::{AccessPolicy, Client, Identity, Known, Names, Role, RPCS};
use crate::ca::scope::IpRange;
use crate::ca::{NameConstraints, RevokeScope};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessFile {
    #[serde(default = "default_trust_domain")]
    trust_domain: String,
    #[serde(default)]
    clients: BTreeMap<String, ClientFile>,
    #[serde(default)]
    roles: BTreeMap<String, RoleFile>,
}

fn default_trust_domain() -> String {
    "trustd".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    /// Default: `spiffe://{trust_domain}/{name}`.
    #[serde(default)]
    identities: Option<Vec<String>>,
    roles: Vec<String>,
    /// SHA-256 (hex) of bearer tokens the client may present over HTTPS instead of a
    /// certificate (`trustctl client token` makes one).
    #[serde(default)]
    bearer_tokens_sha256: Vec<String>,
    /// SHA-256 (hex) of client secrets with which the client gets short-lived OAuth 2.0
    /// access tokens (RFC 6749 §4.4, `client_id` its name; `trustctl client secret` makes one).
    #[serde(default)]
    client_secrets_sha256: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    #[serde(default)]
    rpcs: Vec<String>,
    #[serde(default)]
    profiles: Vec<String>,
    #[serde(default)]
    names: Option<NamesFile>,
    #[serde(default)]
    signing_policies: Vec<String>,
    #[serde(default)]
    revoke: Option<RevokeFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamesFile {
    #[serde(default)]
    dns: Vec<String>,
    #[serde(default)]
    ip: Vec<String>,
    #[serde(default)]
    email: Vec<String>,
    #[serde(default)]
    uri: Vec<String>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RevokeFile {
    Own,
    Any,
}

/// A client or role name: what records, log entries and SPIFFE paths carry.
fn valid_name(field: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!("{field}: '{name}' must be 1-64 letters, digits, '-', '_' or '.'"))
    }
}

fn name_set(field: &str, list: &[String], known: &[String]) -> Result<Names, String> {
    if list.iter().any(|n| n == "*") {
        return Ok(Names::Any);
    }
    for n in list {
        if !known.contains(n) {
            return Err(format!("{field}: '{n}' does not exist (known: {})", known.join(", ")));
        }
    }
    Ok(Names::Only(list.iter().cloned().collect()))
}

fn role(name: &str, f: RoleFile, known: &Known<'_>) -> Result<Role, String> {
    let field = |k: &str| format!("roles.{name}.{k}");
    for p in &f.rpcs {
        let service_known = |svc: &str| RPCS.iter().any(|r| r.split('/').next() == Some(svc));
        let ok = p == "*" || RPCS.contains(&p.as_str()) || p.strip_suffix("/*").is_some_and(service_known);
        if !ok {
            return Err(format!("{}: '{p}' is not an RPC (write Service/Method or Service/*)", field("rpcs")));
        }
    }
    let names = match f.names {
        None => None,
        Some(n) => {
            let ip =
                n.ip.iter()
                    .map(|r| r.parse::<IpRange>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("{}: {e}", field("names.ip")))?;
            for (k, list) in [("dns", &n.dns), ("email", &n.email), ("uri", &n.uri)] {
                if let Some(bad) = list.iter().find(|v| v.is_empty() || v.contains(char::is_whitespace)) {
                    return Err(format!("{}: '{bad}' is not a name", field(&format!("names.{k}"))));
                }
            }
            Some(NameConstraints { dns: n.dns, ip, email: n.email, uri: n.uri })
        }
    };
    Ok(Role {
        rpcs: f.rpcs,
        profiles: name_set(&field("profiles"), &f.profiles, known.profiles)?,
        names,
        signing_policies: name_set(&field("signing_policies"), &f.signing_policies, known.signing_policies)?,
        revoke: f.revoke.map(|r| match r {
            RevokeFile::Own => RevokeScope::Own,
            RevokeFile::Any => RevokeScope::Any,
        }),
    })
}

pub(super) fn parse(text: &str, known: &Known<'_>) -> Result<AccessPolicy, String> {
    let f: AccessFile = toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))?;
    let domain_ok = !f.trust_domain.is_empty()
        && f.trust_domain.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !domain_ok {
        return Err(format!("trust_domain: '{}' must be lower-case letters, digits, '-' or '.'", f.trust_domain));
    }
    let mut roles = HashMap::new();
    for (name, r) in f.roles {
        valid_name("roles", &name)?;
        let parsed = role(&name, r, known)?;
        roles.insert(name, Arc::new(parsed));
    }
    let mut by_identity: HashMap<Identity, Arc<Client>> = HashMap::new();
    let mut by_bearer: HashMap<[u8; 32], Arc<Client>> = HashMap::new();
    let mut by_secret: HashMap<[u8; 32], Arc<Client>> = HashMap::new();
    for (name, c) in f.clients {
        valid_name("clients", &name)?;
        let field = format!("clients.{name}");
        if c.roles.is_empty() {
            return Err(format!("{field}.roles: at least one role"));
        }
        let client_roles = c
            .roles
            .iter()
            .map(|r| roles.get(r).cloned().ok_or_else(|| format!("{field}.roles: no role '{r}' in [roles]")))
            .collect::<Result<Vec<_>, _>>()?;
        let client = Arc::new(Client { name: name.clone(), roles: client_roles });
        let identities = c.identities.unwrap_or_else(|| vec![format!("spiffe://{}/{name}", f.trust_domain)]);
        if identities.is_empty() {
            return Err(format!("{field}.identities: at least one (or leave it out for the default)"));
        }
        for id in identities {
            let id: Identity = id.parse().map_err(|e| format!("{field}.identities: {e}"))?;
            if let Some(other) = by_identity.insert(id.clone(), client.clone()) {
                return Err(format!("{field}.identities: {id} is also client '{}'", other.name));
            }
        }
        for (list, hashes) in
            [("bearer_tokens_sha256", &c.bearer_tokens_sha256), ("client_secrets_sha256", &c.client_secrets_sha256)]
        {
            for h in hashes {
                let hash = hex::decode(h)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| format!("{field}.{list}: '{h}' is not a SHA-256 in hex (64 hex digits)"))?;
                // A value is a bearer token or a client secret, of one client: never both.
                if let Some(other) = by_bearer.get(&hash).or_else(|| by_secret.get(&hash)) {
                    return Err(format!("{field}.{list}: {h} is also a token or secret of client '{}'", other.name));
                }
                let by = if list == "bearer_tokens_sha256" { &mut by_bearer } else { &mut by_secret };
                by.insert(hash, client.clone());
            }
        }
    }
    Ok(AccessPolicy { by_identity, by_bearer, by_secret, trust_domain: f.trust_domain })
}
