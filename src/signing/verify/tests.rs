//! Fixtures are made at test time with the `openssl` CLI: a throwaway CA (root, intermediate,
//! signers, TSA) and signatures by a CMS implementation nobody here wrote.

use super::*;
use crate::signing::report::Indication;
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use const_oid::db::rfc5911;
use der::asn1::OctetString;
use der::asn1::SetOfVec;
use der::{Decode, Encode};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use x509_cert::attr::Attribute;

mod fuzz;

const DOC: &[u8] = b"%PDF-1.7 a document to sign\n";
const EXT: &str = "\
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[signer]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[noku]
keyUsage = critical,keyAgreement
subjectKeyIdentifier = hash
[tls]
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
[docsign]
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,1.3.6.1.5.5.7.3.36
[adobe]
keyUsage = critical,nonRepudiation
extendedKeyUsage = critical,1.2.840.113583.1.1.5
[anyeku]
extendedKeyUsage = anyExtendedKeyUsage
[email]
keyUsage = digitalSignature,nonRepudiation
extendedKeyUsage = emailProtection
[tsa]
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[tsa_config]
serial = tsaserial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ess_cert_id_alg = sha256
[tsa_config_v1]
serial = tsaserial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
ess_cert_id_alg = sha1
";

struct Fixture {
    dir: PathBuf,
    counter: AtomicUsize,
    // openssl ts -reply rewrites its serial file: one reply at a time.
    ts_lock: Mutex<()>,
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        std::fs::write(dir.join("ext.cnf"), EXT).unwrap();
        std::fs::write(dir.join("tsaserial"), "01\n").unwrap();
        std::fs::write(dir.join("doc.bin"), DOC).unwrap();
        let d = dir.as_path();
        let key = |name: &str, alg: &[&str]| {
            let mut a = vec!["genpkey", "-out", name];
            a.extend_from_slice(alg);
            openssl(d, &a);
        };
        let p256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
        let p384 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];
        let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
        for (root, cn) in [("root", "Verify Test Root"), ("other", "Unrelated Test Root")] {
            key(&format!("{root}.key"), &p256);
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-new",
                    "-key",
                    &format!("{root}.key"),
                    "-subj",
                    &format!("/CN={cn}"),
                    "-days",
                    "3650",
                    "-config",
                    "ext.cnf",
                    "-extensions",
                    "root",
                    "-out",
                    &format!("{root}.pem"),
                ],
            );
        }
        let issue = |name: &str, alg: &[&str], cn: &str, ca: &str, ext: &str, days: &str, serial: &str| {
            key(&format!("{name}.key"), alg);
            openssl(
                d,
                &[
                    "req",
                    "-new",
                    "-key",
                    &format!("{name}.key"),
                    "-subj",
                    &format!("/CN={cn}"),
                    "-config",
                    "ext.cnf",
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    &format!("{ca}.pem"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-set_serial",
                    serial,
                    "-days",
                    days,
                    "-extfile",
                    "ext.cnf",
                    "-extensions",
                    ext,
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
        };
        issue("inter", &p384, "Verify Test Intermediate", "root", "inter", "3650", "4097");
        issue("ec256", &p256, "Signer P-256", "inter", "signer", "30", "4098");
        issue("ec384", &p384, "Signer P-384", "inter", "signer", "30", "4099");
        issue("rsa", &rsa, "Signer RSA", "inter", "signer", "30", "4100");
        issue("noku", &p256, "Signer Key Agreement", "inter", "noku", "30", "4101");
        issue("stranger", &p256, "Stranger", "other", "signer", "30", "4102");
        issue("tsa", &p256, "Test TSA", "inter", "tsa", "365", "4103");
        let rsa1024 = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"];
        issue("rsa1024", &rsa1024, "Signer RSA-1024", "inter", "signer", "30", "4104");
        for (i, purpose) in ["tls", "docsign", "adobe", "anyeku", "email"].iter().enumerate() {
            let serial = (4105 + i).to_string();
            issue(purpose, &p256, &format!("Signer {purpose}"), "inter", purpose, "30", &serial);
        }
        Fixture { dir, counter: AtomicUsize::new(0), ts_lock: Mutex::new(()) }
    })
}

impl Fixture {
    fn cert(&self, name: &str) -> Certificate {
        let pem = std::fs::read(self.dir.join(format!("{name}.pem"))).unwrap();
        let (_, der) = der::pem::decode_vec(&pem).unwrap();
        Certificate::from_der(&der).unwrap()
    }

    fn tmp(&self, ext: &str) -> String {
        format!("t{}.{ext}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// `openssl cms -sign -cades` by `signer` (chain: the intermediate) with `extra` options.
    fn sign(&self, signer: &str, extra: &[&str]) -> Vec<u8> {
        self.sign_with_chain(signer, if signer == "stranger" { "other.pem" } else { "inter.pem" }, extra)
    }

    /// As `sign`, with the certificates of `certfile` ("" for none) beside the signer's.
    fn sign_with_chain(&self, signer: &str, certfile: &str, extra: &[&str]) -> Vec<u8> {
        let out = self.tmp("p7s");
        let (cert, key) = (format!("{signer}.pem"), format!("{signer}.key"));
        let mut args = vec!["cms", "-sign", "-binary", "-in", "doc.bin", "-signer", &cert, "-inkey", &key];
        if !certfile.is_empty() {
            args.extend_from_slice(&["-certfile", certfile]);
        }
        args.extend_from_slice(&["-outform", "DER", "-out", &out]);
        args.extend_from_slice(extra);
        openssl(&self.dir, &args);
        std::fs::read(self.dir.join(&out)).unwrap()
    }

    /// An RFC 3161 token from `openssl ts -reply` over `imprint` (SHA-256).
    fn timestamp(&self, imprint: &[u8], section: &str) -> Vec<u8> {
        let _guard = self.ts_lock.lock().unwrap();
        let (q, t) = (self.tmp("tsq"), self.tmp("tst"));
        openssl(&self.dir, &["ts", "-query", "-digest", &hex::encode(imprint), "-sha256", "-cert", "-out", &q]);
        openssl(
            &self.dir,
            &[
                "ts",
                "-reply",
                "-config",
                "ext.cnf",
                "-section",
                section,
                "-queryfile",
                &q,
                "-signer",
                "tsa.pem",
                "-inkey",
                "tsa.key",
                "-chain",
                "inter.pem",
                "-token_out",
                "-out",
                &t,
            ],
        );
        std::fs::read(self.dir.join(&t)).unwrap()
    }
}

struct Revocations(Mutex<HashMap<Vec<u8>, RevocationStatus>>);

impl RevocationSource for Revocations {
    fn status(&self, cert: &Certificate, _issuer: &Certificate) -> RevocationStatus {
        let serial = cert.tbs_certificate.serial_number.as_bytes().to_vec();
        self.0.lock().unwrap().get(&serial).cloned().unwrap_or(RevocationStatus::Good)
    }
}

fn validator_with(anchors: &[&str], revoked: &[(&str, RevocationStatus)]) -> Validator {
    let f = fixture();
    let map = revoked
        .iter()
        .map(|(name, st)| (f.cert(name).tbs_certificate.serial_number.as_bytes().to_vec(), st.clone()))
        .collect();
    Validator::new(anchors.iter().map(|a| f.cert(a)).collect(), Arc::new(Revocations(Mutex::new(map)))).unwrap()
}

fn validator() -> Validator {
    validator_with(&["root"], &[])
}

fn now() -> u64 {
    crate::unix_time::now()
}

#[track_caller]
fn assert_passed(r: &ValidationReport) {
    assert_eq!(r.indication, Indication::TotalPassed, "{:?}", r.reasons);
    assert_eq!(r.sub_indication, None);
}

#[track_caller]
fn assert_sub(r: &ValidationReport, sub: SubIndication) {
    assert_eq!(r.sub_indication, Some(sub), "{:?}", r.reasons);
    assert_eq!(r.indication, sub.indication());
    assert!(!r.reasons.is_empty());
}

/// Rewrites the one SignerInfo of a CMS signature.
fn edit_signer_info(sig: &[u8], edit: impl FnOnce(&mut cms::signed_data::SignerInfo)) -> Vec<u8> {
    let ci = ContentInfo::from_der(sig).unwrap();
    let mut sd: SignedData = ci.content.decode_as().unwrap();
    let mut infos = sd.signer_infos.0.into_vec();
    edit(&mut infos[0]);
    sd.signer_infos = cms::signed_data::SignerInfos(SetOfVec::try_from(infos).unwrap());
    ContentInfo { content_type: ci.content_type, content: Any::encode_from(&sd).unwrap() }.to_der().unwrap()
}

fn signature_value(sig: &[u8]) -> Vec<u8> {
    let sd = parse_signed_data(sig).unwrap();
    sd.signer_infos.0.iter().next().unwrap().signature.as_bytes().to_vec()
}

fn with_timestamp(sig: &[u8], token: &[u8]) -> Vec<u8> {
    edit_signer_info(sig, |si| {
        let attr = Attribute {
            oid: ID_AA_SIGNATURE_TIME_STAMP_TOKEN,
            values: SetOfVec::try_from(vec![Any::from_der(token).unwrap()]).unwrap(),
        };
        si.unsigned_attrs = Some(SetOfVec::try_from(vec![attr]).unwrap());
    })
}

fn b_t(signer: &str, section: &str) -> Vec<u8> {
    let f = fixture();
    let sig = f.sign(signer, &["-md", "sha256", "-cades"]);
    let token = f.timestamp(&HashAlg::Sha256.digest(&signature_value(&sig)), section);
    with_timestamp(&sig, &token)
}

#[test]
fn detached_document_and_digest_pass_for_every_algorithm() {
    let f = fixture();
    let cases: [(&str, &[&str], HashAlg); 6] = [
        ("ec256", &["-md", "sha256"], HashAlg::Sha256),
        ("ec256", &["-md", "sha512"], HashAlg::Sha512),
        ("ec384", &["-md", "sha384"], HashAlg::Sha384),
        ("rsa", &["-md", "sha256"], HashAlg::Sha256),
        ("rsa", &["-md", "sha384", "-keyopt", "rsa_padding_mode:pss"], HashAlg::Sha384),
        (
            "rsa",
            &["-md", "sha256", "-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:20"],
            HashAlg::Sha256,
        ),
    ];
    let v = validator();
    for (signer, opts, hash) in cases {
        let mut args = opts.to_vec();
        args.push("-cades");
        let sig = f.sign(signer, &args);
        let r = v.validate(&sig, Content::Document(DOC), now());
        assert_passed(&r);
        assert_eq!(r.digest_algorithm, Some(hash));
        assert_eq!(r.level, Some(Level::BB));
        assert_eq!(r.signer_certificate.as_deref(), Some(f.cert(signer).to_der().unwrap().as_slice()));
        assert_eq!(r.certificate_chain.len(), 3);
        assert!(r.signer_subject.as_deref().is_some_and(|s| s.starts_with("CN=Signer")));
        assert!(r.signing_time.is_some_and(|t| t.abs_diff(now()) < 600));
        assert_eq!(r.timestamp_time, None);
        let r = v.validate(&sig, Content::Digest { alg: hash, value: &hash.digest(DOC) }, now());
        assert_passed(&r);
    }
}

#[test]
fn enveloping_and_subject_key_identifier() {
    let f = fixture();
    let v = validator();
    let sig = f.sign("ec384", &["-md", "sha384", "-cades", "-nodetach", "-keyid"]);
    assert_passed(&v.validate(&sig, Content::Enveloped, now()));
    assert_passed(&v.validate(&sig, Content::Document(DOC), now()));
    assert_sub(&v.validate(&sig, Content::Document(b"other"), now()), SubIndication::HashFailure);
    let wrong = HashAlg::Sha384.digest(b"other");
    assert_sub(
        &v.validate(&sig, Content::Digest { alg: HashAlg::Sha384, value: &wrong }, now()),
        SubIndication::HashFailure,
    );
}

#[test]
fn wrong_document_or_digest_is_hash_failure() {
    let f = fixture();
    let v = validator();
    let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
    let r = v.validate(&sig, Content::Document(b"%PDF-1.7 another document\n"), now());
    assert_sub(&r, SubIndication::HashFailure);
    assert_eq!(r.indication, Indication::TotalFailed);
    let other = HashAlg::Sha256.digest(b"x");
    assert_sub(
        &v.validate(&sig, Content::Digest { alg: HashAlg::Sha256, value: &other }, now()),
        SubIndication::HashFailure,
    );
}

#[test]
fn detached_without_content_or_with_another_digest_algorithm_is_indeterminate() {
    let f = fixture();
    let v = validator();
    let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
    assert_sub(&v.validate(&sig, Content::Enveloped, now()), SubIndication::SignedDataNotFound);
    let d = HashAlg::Sha384.digest(DOC);
    let r = v.validate(&sig, Content::Digest { alg: HashAlg::Sha384, value: &d }, now());
    assert_sub(&r, SubIndication::SignedDataNotFound);
    assert!(r.reasons[0].contains("sha256"), "{:?}", r.reasons);
    let r = v.validate(&sig, Content::Digest { alg: HashAlg::Sha256, value: &d }, now());
    assert_sub(&r, SubIndication::SignedDataNotFound);
}

#[test]
fn modified_signature_value_is_sig_crypto_failure() {
    let f = fixture();
    let v = validator();
    for (signer, opts) in [("ec256", &["-md", "sha256", "-cades"][..]), ("rsa", &["-md", "sha256", "-cades"][..])] {
        let sig = f.sign(signer, opts);
        let bad = edit_signer_info(&sig, |si| {
            let mut s = si.signature.as_bytes().to_vec();
            if let Some(b) = s.last_mut() {
                *b ^= 1;
            }
            si.signature = OctetString::new(s).unwrap();
        });
        let r = v.validate(&bad, Content::Document(DOC), now());
        assert_sub(&r, SubIndication::SigCryptoFailure);
        assert_eq!(r.indication, Indication::TotalFailed);
    }
}

#[test]
fn unknown_anchor_is_no_certificate_chain_found() {
    let f = fixture();
    let sig = f.sign("stranger", &["-md", "sha256", "-cades"]);
    assert_sub(&validator().validate(&sig, Content::Document(DOC), now()), SubIndication::NoCertificateChainFound);
    assert_passed(&validator_with(&["other"], &[]).validate(&sig, Content::Document(DOC), now()));
    // Trusting the intermediate alone is enough.
    let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
    let r = validator_with(&["inter"], &[]).validate(&sig, Content::Document(DOC), now());
    assert_passed(&r);
    assert_eq!(r.certificate_chain.len(), 2);
}

#[test]
fn configured_intermediates_complete_a_chain_the_signature_lacks() {
    let f = fixture();
    let sig = f.sign_with_chain("ec256", "", &["-md", "sha256", "-cades"]);
    assert_sub(&validator().validate(&sig, Content::Document(DOC), now()), SubIndication::NoCertificateChainFound);
    let v = validator().with_intermediates(vec![f.cert("inter")]).unwrap();
    let r = v.validate(&sig, Content::Document(DOC), now());
    assert_passed(&r);
    assert_eq!(r.certificate_chain.len(), 3);
    assert_eq!(v.verified_links.len(), 1, "the intermediate's signature by the anchor, verified once");
    // An intermediate does not make an anchor.
    let v = validator_with(&["other"], &[]).with_intermediates(vec![f.cert("inter")]).unwrap();
    assert!(v.verified_links.is_empty());
    assert_sub(&v.validate(&sig, Content::Document(DOC), now()), SubIndication::NoCertificateChainFound);
    // A configured intermediate whose signature does not verify is checked in every chain, and
    // fails it.
    let mut forged = f.cert("inter");
    forged.signature = der::asn1::BitString::from_bytes(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]).unwrap();
    let v = validator().with_intermediates(vec![forged]).unwrap();
    assert!(v.verified_links.is_empty());
    let r = v.validate(&sig, Content::Document(DOC), now());
    assert_sub(&r, SubIndication::CertificateChainGeneralFailure);
    assert!(r.reasons[0].contains("does not verify with the key of 'CN=Verify Test Root'"), "{:?}", r.reasons);
}

#[test]
fn weak_rsa_key_is_crypto_constraints_failure() {
    let sig = fixture().sign("rsa1024", &["-md", "sha256", "-cades"]);
    let r = validator().validate(&sig, Content::Document(DOC), now());
    assert_sub(&r, SubIndication::CryptoConstraintsFailure);
    assert!(r.reasons[0].contains("1024"), "{:?}", r.reasons);
}

#[test]
fn expired_and_not_yet_valid_signer() {
    let f = fixture();
    let v = validator();
    let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
    let r = v.validate(&sig, Content::Document(DOC), now() + 40 * 86400);
    assert_sub(&r, SubIndication::OutOfBoundsNoPoe);
    assert_eq!(r.indication, Indication::Indeterminate);
    let r = v.validate(&sig, Content::Document(DOC), now() - 2 * 86400);
    assert_sub(&r, SubIndication::NotYetValid);
    assert_eq!(r.indication, Indication::TotalFailed);
    // Past the intermediate's validity too: the signer is named first.
    let r = v.validate(&sig, Content::Document(DOC), now() + 4000 * 86400);
    assert_sub(&r, SubIndication::OutOfBoundsNoPoe);
    assert!(r.reasons[0].contains("signing certificate"), "{:?}", r.reasons);
}

#[test]
fn signer_without_signature_key_usage_is_sig_constraints_failure() {
    let f = fixture();
    let sig = f.sign("noku", &["-md", "sha256", "-cades"]);
    let r = validator().validate(&sig, Content::Document(DOC), now());
    assert_sub(&r, SubIndication::SigConstraintsFailure);
    assert!(r.reasons[0].contains("key usage"), "{:?}", r.reasons);
}

#[test]
fn signer_certificate_must_be_for_document_signing() {
    // RFC 5280 §4.2.1.12: a present extendedKeyUsage, critical or not, limits the key to its
    // purposes; nonRepudiation only where the validation asks a signature with commitment.
    let f = fixture();
    let v = validator();
    let commitment = Constraints { commitment: true };
    for (signer, plain, with_commitment) in [
        ("ec256", true, true),
        ("tls", false, false),
        ("docsign", true, false),
        ("adobe", true, true),
        ("anyeku", true, true),
        ("email", true, true),
        ("noku", false, false),
    ] {
        let sig = f.sign(signer, &["-md", "sha256", "-cades"]);
        for (constraints, passes) in [(Constraints::default(), plain), (commitment, with_commitment)] {
            let r = v.validate_under(&sig, Content::Document(DOC), constraints, now());
            if passes {
                assert_passed(&r);
            } else {
                assert_sub(&r, SubIndication::SigConstraintsFailure);
                let reason = r.reasons.last().unwrap();
                let subject = f.cert(signer).tbs_certificate.subject.to_string();
                assert!(reason.contains(&subject), "{signer}: {reason}");
            }
        }
    }
    let tls = v.validate(&f.sign("tls", &["-md", "sha256", "-cades"]), Content::Document(DOC), now());
    let reason = tls.reasons.last().unwrap();
    assert!(reason.contains("not for document signing") && reason.contains("id-kp-serverAuth"), "{reason}");
    let docsign = f.sign("docsign", &["-md", "sha256", "-cades"]);
    let r = v.validate_under(&docsign, Content::Document(DOC), commitment, now());
    assert!(r.reasons.last().unwrap().contains("nonRepudiation"), "{:?}", r.reasons);
}

#[test]
fn signer_certificate_as_issuer_is_a_chain_constraints_failure() {
    // A chain through a leaf certificate (CA:FALSE): openssl refuses to issue from it, so
    // the check is exercised directly.
    let f = fixture();
    let leaf = Cert::new(f.cert("ec256")).unwrap();
    let inter = Cert::new(f.cert("inter")).unwrap();
    let root = Cert::new(f.cert("root")).unwrap();
    assert!(check_chain(&[&leaf, &inter, &root], now()).is_ok());
    let err = check_chain(&[&leaf, &leaf, &inter, &root], now()).unwrap_err();
    assert_eq!(err.sub, SubIndication::ChainConstraintsFailure);
    // pathlen:0 on the intermediate forbids a CA below it.
    let err = check_chain(&[&leaf, &inter, &inter, &root], now()).unwrap_err();
    assert_eq!(err.sub, SubIndication::ChainConstraintsFailure, "{err:?}");
}

#[test]
fn revoked_signer() {
    let f = fixture();
    let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
    let t = now();
    // Revoked before the signing time the signer claims.
    let v = validator_with(
        &["root"],
        &[("ec256", RevocationStatus::Revoked { at: t - 3600, reason: Reason::KeyCompromise })],
    );
    let r = v.validate(&sig, Content::Document(DOC), t);
    assert_sub(&r, SubIndication::Revoked);
    assert!(r.reasons[0].contains("keyCompromise"), "{:?}", r.reasons);
    // Revoked after it, and no time-stamp proves when the signature was made.
    let v =
        validator_with(&["root"], &[("ec256", RevocationStatus::Revoked { at: t + 60, reason: Reason::Superseded })]);
    assert_sub(&v.validate(&sig, Content::Document(DOC), t + 3600), SubIndication::RevokedNoPoe);
    let v =
        validator_with(&["root"], &[("inter", RevocationStatus::Revoked { at: t + 60, reason: Reason::CaCompromise })]);
    assert_sub(&v.validate(&sig, Content::Document(DOC), t + 3600), SubIndication::RevokedCaNoPoe);
    let v = validator_with(&["root"], &[("ec256", RevocationStatus::Unknown)]);
    assert_sub(&v.validate(&sig, Content::Document(DOC), t), SubIndication::TryLater);
    // The anchor is never asked.
    let v = validator_with(&["root"], &[("root", RevocationStatus::Unknown)]);
    assert_passed(&v.validate(&sig, Content::Document(DOC), t));
}

#[test]
fn missing_signing_certificate_v2_is_format_failure() {
    let f = fixture();
    let sig = f.sign("ec256", &["-md", "sha256"]);
    let r = validator().validate(&sig, Content::Document(DOC), now());
    assert_sub(&r, SubIndication::FormatFailure);
    assert!(r.reasons[0].contains("signing-certificate-v2"), "{:?}", r.reasons);
}

#[test]
fn signer_certificate_missing_or_not_matching_signing_certificate_v2() {
    let f = fixture();
    let v = validator();
    let sig = f.sign("ec256", &["-md", "sha256", "-cades", "-nocerts"]);
    assert_sub(&v.validate(&sig, Content::Document(DOC), now()), SubIndication::NoSigningCertificateFound);
    // The SignerIdentifier names another certificate than signing-certificate-v2 binds.
    let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
    let ec384 = f.cert("ec384");
    let sd = parse_signed_data(&sig).unwrap();
    let mut sd2 = sd.clone();
    let mut certs = sd.certificates.clone().unwrap().0.into_vec();
    certs.push(CertificateChoices::Certificate(ec384.clone()));
    sd2.certificates = Some(cms::signed_data::CertificateSet(SetOfVec::try_from(certs).unwrap()));
    let sig2 = ContentInfo { content_type: rfc5911::ID_SIGNED_DATA, content: Any::encode_from(&sd2).unwrap() }
        .to_der()
        .unwrap();
    let sig2 = edit_signer_info(&sig2, |si| {
        si.sid = SignerIdentifier::IssuerAndSerialNumber(cms::cert::IssuerAndSerialNumber {
            issuer: ec384.tbs_certificate.issuer.clone(),
            serial_number: ec384.tbs_certificate.serial_number.clone(),
        });
    });
    let r = v.validate(&sig2, Content::Document(DOC), now());
    assert_sub(&r, SubIndication::NoSigningCertificateFound);
    assert!(r.reasons[0].contains("signing-certificate-v2"), "{:?}", r.reasons);
}

#[test]
fn two_signer_infos_are_a_format_failure() {
    let f = fixture();
    let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
    let other = parse_signed_data(&f.sign("ec384", &["-md", "sha384", "-cades"])).unwrap();
    let mut sd = parse_signed_data(&sig).unwrap();
    let mut infos = sd.signer_infos.0.into_vec();
    infos.extend(other.signer_infos.0.into_vec());
    sd.signer_infos = cms::signed_data::SignerInfos(SetOfVec::try_from(infos).unwrap());
    let der = ContentInfo { content_type: rfc5911::ID_SIGNED_DATA, content: Any::encode_from(&sd).unwrap() }
        .to_der()
        .unwrap();
    let r = validator().validate(&der, Content::Document(DOC), now());
    assert_sub(&r, SubIndication::FormatFailure);
    assert!(r.reasons[0].contains("more than one SignerInfo"), "{:?}", r.reasons);
}

#[test]
fn b_t_passes_and_validates_at_gen_time() {
    let v = validator();
    for section in ["tsa_config", "tsa_config_v1"] {
        let sig = b_t("ec256", section);
        let r = v.validate(&sig, Content::Document(DOC), now());
        assert_passed(&r);
        assert_eq!(r.level, Some(Level::BT));
        let gen = r.timestamp_time.expect("genTime");
        assert!(gen.abs_diff(now()) < 600);
        assert_eq!(r.validation_time, gen);
        // Long after the signer expired, the time-stamp still proves the signature existed
        // while it was valid.
        assert_passed(&v.validate(&sig, Content::Document(DOC), now() + 200 * 86400));
    }
}

#[test]
fn b_t_with_revocation_after_or_before_the_time_stamp() {
    let sig = b_t("ec256", "tsa_config");
    let t = now();
    let v = validator_with(
        &["root"],
        &[("ec256", RevocationStatus::Revoked { at: t + 3600, reason: Reason::KeyCompromise })],
    );
    let r = v.validate(&sig, Content::Document(DOC), t + 7200);
    assert_passed(&r);
    assert!(r.reasons.iter().any(|n| n.contains("after the signature time-stamp")), "{:?}", r.reasons);
    let v = validator_with(
        &["root"],
        &[("ec256", RevocationStatus::Revoked { at: t - 3600, reason: Reason::KeyCompromise })],
    );
    assert_sub(&v.validate(&sig, Content::Document(DOC), t), SubIndication::Revoked);
    // A TSA revoked before its own time-stamp.
    let v = validator_with(
        &["root"],
        &[("tsa", RevocationStatus::Revoked { at: t - 3600, reason: Reason::KeyCompromise })],
    );
    let r = v.validate(&sig, Content::Document(DOC), t);
    assert_sub(&r, SubIndication::Revoked);
    assert!(r.reasons[0].starts_with("signature time-stamp:"), "{:?}", r.reasons);
    // RFC 3161 §4: a TSA retired after its time-stamp leaves the token valid; a compromised
    // one does not.
    let v = validator_with(
        &["root"],
        &[("tsa", RevocationStatus::Revoked { at: t + 60, reason: Reason::CessationOfOperation })],
    );
    let r = v.validate(&sig, Content::Document(DOC), t + 3600);
    assert_passed(&r);
    assert!(r.reasons.iter().any(|n| n.contains("cessationOfOperation")), "{:?}", r.reasons);
    let v =
        validator_with(&["root"], &[("tsa", RevocationStatus::Revoked { at: t + 60, reason: Reason::KeyCompromise })]);
    let r = v.validate(&sig, Content::Document(DOC), t + 3600);
    assert_sub(&r, SubIndication::RevokedNoPoe);
    assert!(r.reasons[0].starts_with("signature time-stamp:"), "{:?}", r.reasons);
}

#[test]
fn a_tsa_key_does_not_sign_documents() {
    let sig = fixture().sign("tsa", &["-md", "sha256", "-cades"]);
    let r = validator().validate(&sig, Content::Document(DOC), now());
    assert_sub(&r, SubIndication::SigConstraintsFailure);
    assert!(r.reasons[0].contains("id-kp-timeStamping"), "{:?}", r.reasons);
}

#[test]
fn validator_is_shareable_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Validator>();
}

#[test]
fn b_t_time_stamp_over_something_else_is_hash_failure() {
    let f = fixture();
    let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
    let token = f.timestamp(&HashAlg::Sha256.digest(b"not the signature value"), "tsa_config");
    let r = validator().validate(&with_timestamp(&sig, &token), Content::Document(DOC), now());
    assert_sub(&r, SubIndication::HashFailure);
    assert!(r.reasons[0].contains("time-stamp") && r.reasons[0].contains("imprint"), "{:?}", r.reasons);
    assert_eq!(r.level, Some(Level::BT));
}

#[test]
fn b_t_with_a_broken_token_signature_or_unknown_tsa() {
    let f = fixture();
    let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
    let token = f.timestamp(&HashAlg::Sha256.digest(&signature_value(&sig)), "tsa_config");
    let bad_token = edit_signer_info(&token, |si| {
        let mut s = si.signature.as_bytes().to_vec();
        if let Some(b) = s.last_mut() {
            *b ^= 0x40;
        }
        si.signature = OctetString::new(s).unwrap();
    });
    let r = validator().validate(&with_timestamp(&sig, &bad_token), Content::Document(DOC), now());
    assert_sub(&r, SubIndication::SigCryptoFailure);
    assert!(r.reasons[0].starts_with("signature time-stamp:"), "{:?}", r.reasons);
    // Not a time-stamp token at all: the signature itself in the attribute.
    let r = validator().validate(&with_timestamp(&sig, &sig), Content::Document(DOC), now());
    assert_sub(&r, SubIndication::FormatFailure);
    assert!(r.reasons[0].contains("id-ct-TSTInfo"), "{:?}", r.reasons);
}

#[test]
fn tsa_certificate_needs_the_critical_time_stamping_eku() {
    // A signer certificate (no EKU) used as TSA: openssl ts refuses to sign with it, so
    // the token is built by signing a TSTInfo with `openssl cms`.
    let f = fixture();
    let sig = f.sign("ec256", &["-md", "sha256", "-cades"]);
    let token = f.timestamp(&HashAlg::Sha256.digest(&signature_value(&sig)), "tsa_config");
    let tst = econtent(&parse_signed_data(&token).unwrap()).unwrap().unwrap();
    let (tin, tout) = (f.tmp("tst"), f.tmp("p7s"));
    std::fs::write(f.dir.join(&tin), tst).unwrap();
    openssl(
        &f.dir,
        &[
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-in",
            &tin,
            "-econtent_type",
            "1.2.840.113549.1.9.16.1.4",
            "-signer",
            "ec384.pem",
            "-inkey",
            "ec384.key",
            "-md",
            "sha256",
            "-cades",
            "-outform",
            "DER",
            "-out",
            &tout,
        ],
    );
    let fake = std::fs::read(f.dir.join(&tout)).unwrap();
    let r = validator().validate(&with_timestamp(&sig, &fake), Content::Document(DOC), now());
    assert_sub(&r, SubIndication::SigConstraintsFailure);
    assert!(r.reasons[0].contains("id-kp-timeStamping"), "{:?}", r.reasons);
}

#[test]
fn hostile_input_never_panics() {
    let f = fixture();
    let v = validator();
    let valid = b_t("ec256", "tsa_config");
    assert_passed(&v.validate(&valid, Content::Document(DOC), now()));
    let t = now();
    let check = |bytes: &[u8]| {
        let r = v.validate(bytes, Content::Document(DOC), t);
        assert_eq!(r.sub_indication.is_none(), r.indication == Indication::TotalPassed);
        r
    };
    for len in (0..valid.len()).step_by(7) {
        let r = check(valid.get(..len).unwrap_or_default());
        assert_sub(&r, SubIndication::FormatFailure);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(5652);
    let mut passed = 0;
    for _ in 0..400 {
        let mut bytes = valid.clone();
        let i = rng.gen_range(0..bytes.len());
        bytes[i] ^= 1 << rng.gen_range(0..8);
        if check(&bytes).passed() {
            passed += 1;
        }
    }
    // Flips in unsigned, unchecked places (e.g. an unused certificate field) can pass;
    // most must not.
    assert!(passed < 100, "{passed} bit-flipped signatures passed");
    for _ in 0..200 {
        let len = rng.gen_range(0..600);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if rng.gen_bool(0.5) && bytes.len() > 4 {
            // A plausible outer SEQUENCE header, to get past the first tag check.
            bytes[0] = 0x30;
            bytes[1] = 0x82;
        }
        assert_sub(&check(&bytes), SubIndication::FormatFailure);
    }
    let _ = f;
}
