//! The operator credential the daemon keeps for bootstrap (`[server] operator_credentials`, and
//! every `trustd dev`): what `trustctl --data-dir` connects with before any operator has a
//! credential of their own. The key is made as any client makes its own, in software: it is the
//! operator's key, not a key of the service, and the daemon never signs with it. Its
//! certificate comes from the CA through the ordinary issuance path (CSR, profile
//! `service-client`, store, log).

use crate::ca::{CertificateAuthority, IssueRequest, NameScope};
use der::Encode;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The client of `policies/access.toml` the credential names.
pub const OPERATOR: &str = "operator";
/// The profile client credentials are issued under.
pub const PROFILE: &str = "service-client";
/// What the store records as the requester of the bootstrap credential.
const REQUESTER: &str = "trustd";

/// The directory of a data dir that holds its operator credential.
pub const CREDENTIALS_DIR: &str = "credentials";

/// The files of a credential directory: the root CA certificate (the trust anchor for the
/// server's certificate), the client's certificate with the issuing CA, and its key (PKCS#8).
pub const CA_FILE: &str = "ca.crt";
pub const CERT_FILE: &str = "operator.crt";
pub const KEY_FILE: &str = "operator.key";

/// A client key pair, made in software as a client makes its own.
pub fn client_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng)
}

/// A PKCS#10 request (RFC 2986) for `key` with the subject commonName `cn` and one SAN URI, the
/// client's identity: what the `service-client` profile asks for.
pub fn client_csr(key: &p256::ecdsa::SigningKey, cn: &str, uri: &str) -> Result<Vec<u8>, String> {
    use x509_cert::builder::{Builder, RequestBuilder};
    use x509_cert::ext::pkix::{name::GeneralName, SubjectAltName};
    let e = |e: &dyn std::fmt::Display| format!("client CSR: {e}");
    let subject = format!("CN={cn}").parse::<x509_cert::name::Name>().map_err(|x| e(&x))?;
    let mut b = RequestBuilder::new(subject, key).map_err(|x| e(&x))?;
    let san = GeneralName::UniformResourceIdentifier(der::asn1::Ia5String::new(uri).map_err(|x| e(&x))?);
    b.add_extension(&SubjectAltName(vec![san])).map_err(|x| e(&x))?;
    b.build::<p256::ecdsa::DerSignature>().map_err(|x| e(&x))?.to_der().map_err(|x| e(&x))
}

fn pem(label: &str, der: &[u8]) -> Result<String, String> {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).map_err(|e| e.to_string())
}

/// Writes `text` to `path` through a temporary file and a rename, so that a reader never sees
/// half a file; `mode` applies from creation.
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Whether the certificate in `path` is not yet due for renewal at `now`.
fn still_fresh(path: &Path, now: u64) -> bool {
    let Ok(text) = std::fs::read(path) else { return false };
    let Ok(certs) = x509_cert::Certificate::load_pem_chain(&text) else { return false };
    certs.first().is_some_and(|leaf| now < crate::ca::cert::renewal_time(leaf))
}

/// Whether `dir` holds an operator credential not yet due for renewal.
pub fn operator_is_fresh(dir: &Path) -> bool {
    dir.join(KEY_FILE).exists() && still_fresh(&dir.join(CERT_FILE), crate::unix_time::now())
}

/// Keeps an operator credential for `identity` (a SAN URI) in `dir`: issued when missing or
/// due for renewal ([`renewal_time`](crate::ca::cert::renewal_time)), kept otherwise. Returns the new certificate's DER when it
/// issued one.
pub async fn ensure_operator(ca: &CertificateAuthority, dir: &Path, identity: &str) -> Result<Option<Vec<u8>>, String> {
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| io(dir, e))?;
    let root = ca.certificates().root().der.clone();
    write_file(&dir.join(CA_FILE), &pem("CERTIFICATE", &root)?, 0o644)?;
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if operator_is_fresh(dir) {
        return Ok(None);
    }
    let key = client_key();
    let csr = client_csr(&key, OPERATOR, identity)?;
    let issued = ca
        .issue(IssueRequest {
            profile: PROFILE.into(),
            csr,
            validity: None,
            requester: REQUESTER.into(),
            scope: NameScope::Any,
        })
        .await
        .map_err(|e| format!("operator credential: {e}"))?;
    let key_pem = {
        use p256::pkcs8::EncodePrivateKey;
        let der = key.to_pkcs8_der().map_err(|e| format!("operator key: {e}"))?;
        pem("PRIVATE KEY", der.as_bytes())?
    };
    // The key first: a certificate on disk always has its key beside it.
    write_file(&key_path, &key_pem, 0o600)?;
    let mut chain = pem("CERTIFICATE", &issued.cert_der)?;
    if let Some(issuing) = ca.chain(issued.ca).as_ref().and_then(|c| c.first()) {
        chain.push_str(&pem("CERTIFICATE", issuing)?);
    }
    write_file(&cert_path, &chain, 0o644)?;
    tracing::info!(serial = %issued.serial, dir = %dir.display(), audit = true, "operator credential issued");
    Ok(Some(issued.cert_der))
}
