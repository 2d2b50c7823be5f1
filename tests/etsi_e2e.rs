//! eIDAS certificate profiles (issue #18): qualified and normalized certificates for natural
//! persons (EN 319 412-2: qcp-n, ncp-n) and legal persons (EN 319 412-3: qcp-l, ncp-l), issued
//! by a real daemon from openssl CSRs, linted by pkilint's ETSI linter with the certificate
//! type it detects, their qcStatements read by asn1crypto, their chains verified by openssl;
//! and the requests EN 319 412-1 and the profiles refuse, refused with INVALID_ARGUMENT naming
//! the field, nothing stored.

mod common;

use common::*;
use std::path::Path;
use tonic::Code;
use trustd::api::pb;

const QC_COMPLIANCE: &str = "0.4.0.1862.1.1";
const QC_TYPE: &str = "0.4.0.1862.1.6";
const QC_PDS: &str = "0.4.0.1862.1.5";
const PKIX_QC_SYNTAX_V2: &str = "1.3.6.1.5.5.7.11.2";

fn qc_statements(dir: &Path, pem: &Path) -> serde_json::Value {
    let out = py_checker(dir, "qc_statements.py", &[pem.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("JSON from qc_statements.py")
}

async fn issue(d: &Daemon, profile: &str, csr: &Path) -> Result<pb::IssueCertificateResponse, tonic::Status> {
    let req =
        pb::IssueCertificateRequest { profile: profile.into(), csr: std::fs::read(csr).unwrap(), validity_seconds: 0 };
    d.client().await.issue_certificate(req).await.map(|r| r.into_inner())
}

async fn stored(d: &Daemon) -> usize {
    let req = pb::ListCertificatesRequest { page_size: 1000, ..Default::default() };
    d.client().await.list_certificates(req).await.unwrap().into_inner().certificates.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qualified_and_normalized_certificates_for_persons_and_organisations() {
    let d = Daemon::start_with(tempfile::tempdir().unwrap(), &["--country", "DK"]);
    let dir = d.dir.path().to_owned();
    let chain = split_pem(&trustctl_ok(&d, &["ca", "chain"]));
    std::fs::write(dir.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();
    let person =
        openssl_csr(&dir, "person", P256, "/C=DK/GN=Jens/SN=Hansen/CN=Jens Hansen/serialNumber=PNODK-1234567890", None);
    let org = openssl_csr(
        &dir,
        "org",
        P256,
        "/C=DK/O=Example ApS/organizationIdentifier=NTRDK-12345678/CN=Example ApS",
        None,
    );

    // (profile, CSR, pkilint type, policy, QcCompliance/QcType/QcPDS expected, semantics id)
    let cases = [
        (
            "qcp-n",
            &person,
            "NCP-NATURAL-PERSON-CERTIFICATE",
            "0.4.0.194112.1.0",
            Some("0.4.0.1862.1.6.1"),
            "0.4.0.194121.1.1",
        ),
        ("ncp-n", &person, "NCP-NATURAL-PERSON-CERTIFICATE", "0.4.0.2042.1.1", None, "0.4.0.194121.1.1"),
        (
            "qcp-l",
            &org,
            "NCP-LEGAL-PERSON-CERTIFICATE",
            "0.4.0.194112.1.1",
            Some("0.4.0.1862.1.6.2"),
            "0.4.0.194121.1.2",
        ),
        ("ncp-l", &org, "NCP-LEGAL-PERSON-CERTIFICATE", "0.4.0.2042.1.1", None, "0.4.0.194121.1.2"),
    ];
    for (profile, csr, lint_type, policy, qc_type, semantics) in cases {
        let issued = issue(&d, profile, csr).await.unwrap_or_else(|e| panic!("{profile}: {e:?}"));
        let der = dir.join(format!("{profile}.der"));
        std::fs::write(&der, issued.certificate_der).unwrap();
        let pem = dir.join(format!("{profile}.pem"));
        openssl(&dir, &["x509", "-inform", "DER", "-in", der.to_str().unwrap(), "-out", pem.to_str().unwrap()]);
        // pkilint detects the type from the policy and statements: the one we expect.
        let detected = std::process::Command::new(venv_bin("lint_etsi_cert"))
            .args(["lint", "-d", "-o"])
            .arg(&pem)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&detected.stderr).contains(lint_type), "{profile}: {}", text(&detected));
        pkilint_no_errors("lint_etsi_cert", &["-t", lint_type], &pem);
        pkilint_no_errors("lint_pkix_cert", &[], &pem);
        let verified =
            openssl(&dir, &["verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", pem.to_str().unwrap()]);
        assert!(text(&verified).contains(": OK"), "{profile}: {}", text(&verified));

        let qc = qc_statements(&dir, &pem);
        assert_eq!(qc["critical"], false, "{profile}: {qc}");
        assert_eq!(qc["policies"], serde_json::json!([policy]), "{profile}: {qc}");
        let statements = qc["statements"].as_array().unwrap();
        let find = |id: &str| statements.iter().find(|s| s["id"] == id);
        assert_eq!(find(PKIX_QC_SYNTAX_V2).unwrap()["semantics"], semantics, "{profile}: {qc}");
        match qc_type {
            Some(t) => {
                assert!(find(QC_COMPLIANCE).is_some(), "{profile}: {qc}");
                assert_eq!(find(QC_TYPE).unwrap()["types"], serde_json::json!([t]), "{profile}: {qc}");
                let pds = &find(QC_PDS).unwrap()["pds"];
                assert_eq!(pds[0][1], "en", "{profile}: {qc}");
                assert!(pds[0][0].as_str().unwrap().starts_with("https://"), "{profile}: {qc}");
                assert_eq!(statements.len(), 4, "{profile}: {qc}");
            }
            None => assert_eq!(statements.len(), 1, "an NCP certificate is not qualified: {profile}: {qc}"),
        }
        assert!(statements.iter().all(|s| s.get("unexpected_info").is_none()), "{profile}: {qc}");
        assert!(find("0.4.0.1862.1.4").is_none(), "no QcSSCD without a QSCD: {profile}: {qc}");
    }

    // Refused, naming the field, with nothing stored.
    let before = stored(&d).await;
    let bad = |name: &str, subj: &str| openssl_csr(&dir, name, P256, subj, None);
    let refusals = [
        ("qcp-n", bad("no-id", "/C=DK/GN=Jens/SN=Hansen/CN=Jens Hansen"), "requires subject attribute serialNumber"),
        (
            "qcp-n",
            bad("not-etsi", "/C=DK/GN=Jens/SN=Hansen/CN=Jens Hansen/serialNumber=1234567890"),
            "serialNumber='1234567890'",
        ),
        (
            "qcp-n",
            bad("swedish", "/C=DK/GN=Jens/SN=Hansen/CN=Jens Hansen/serialNumber=PNOSE-1234567890"),
            "serialNumber='PNOSE-1234567890' does not match",
        ),
        (
            "ncp-n",
            bad("person-org", "/C=DK/GN=Jens/SN=Hansen/CN=Jens Hansen/serialNumber=VATDK-12345678"),
            "not a natural person's identifier",
        ),
        (
            "qcp-l",
            bad("org-no-id", "/C=DK/O=Example ApS/CN=Example ApS"),
            "requires subject attribute organizationIdentifier",
        ),
        (
            "qcp-l",
            bad("org-as-id", "/C=DK/O=NTRDK-12345678/organizationIdentifier=NTRDK-12345678/CN=Example ApS"),
            "subject O='NTRDK-12345678'",
        ),
        (
            "ncp-l",
            bad("org-pno", "/C=DK/O=Example ApS/organizationIdentifier=PNODK-12345678/CN=Example ApS"),
            "organizationIdentifier='PNODK-12345678'",
        ),
        ("qcp-n-qscd", person.clone(), "qc_statements.qscd"),
    ];
    for (profile, csr, says) in &refusals {
        let e = issue(&d, profile, csr).await.expect_err(profile);
        assert_eq!(e.code(), Code::InvalidArgument, "{profile} {csr:?}: {e:?}");
        assert!(e.message().contains(says), "{profile} {csr:?}: {e:?}");
    }
    assert_eq!(stored(&d).await, before, "a refused request stores nothing");
}

/// A CA whose name has no country cannot issue what EN 319 412-2/-3 profiles: refused with
/// FAILED_PRECONDITION saying how to make one that can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_without_a_country_refuses_the_etsi_profiles() {
    let d = Daemon::start();
    let dir = d.dir.path().to_owned();
    let csr =
        openssl_csr(&dir, "p", P256, "/C=DK/GN=Jens/SN=Hansen/CN=Jens Hansen/serialNumber=PNODK-1234567890", None);
    let e = issue(&d, "ncp-n", &csr).await.expect_err("no country, no ETSI certificate");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("--country"), "{e:?}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trustd"))
        .args(["dev", "--data-dir"])
        .arg(dir.join("other"))
        .args(["--country", "Denmark"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("--country: 'Denmark' is not an ISO 3166 two-letter code"), "{}", text(&out));
}

/// A signing policy of the signer's own `[certificate]`.
fn policy_with_certificate(description: &str, key: &str, profile: &str, subject: &str) -> String {
    format!(
        "description = \"{description}\"\nkey = \"{key}\"\nlevel = \"B-B\"\nlevels = [\"B-B\", \"B-T\"]\n\
         max_document_bytes = 1048576\nmax_stream_bytes = 1048576\nclients = [\"*\"]\n\
         [certificate]\nprofile = \"{profile}\"\nsubject = {{ {subject} }}\n"
    )
}

/// Signing policies whose own keys, generated in the HSM by the key ceremony, get qualified
/// certificates from trustd's CA at start: a legal person's seal under qcp-l-qscd and a natural
/// person's signing key under qcp-n-qscd (QcSSCD: the key is in the HSM). pkilint lints the
/// person's as QCP-N-QSCD-EIDAS-FINAL-CERTIFICATE; seals made with the policy verify with
/// openssl and trustd; a restart keeps the certificates stored beside the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_policies_get_qualified_certificates_for_their_hsm_keys() {
    let dir = tempfile::tempdir().unwrap();
    let signing = dir.path().join("data/policies/signing");
    std::fs::create_dir_all(&signing).unwrap();
    let seal = policy_with_certificate(
        "Electronic seals of Example ApS",
        "example-seal",
        "qcp-l-qscd",
        "C = \"DK\", O = \"Example ApS\", organizationIdentifier = \"NTRDK-12345678\", CN = \"Example ApS\"",
    );
    std::fs::write(signing.join("seal.toml"), seal).unwrap();
    let person = policy_with_certificate(
        "Jens Hansen's electronic signatures",
        "signer-jens-hansen",
        "qcp-n-qscd",
        "C = \"DK\", GN = \"Jens\", SN = \"Hansen\", CN = \"Jens Hansen\", serialNumber = \"PNODK-1234567890\"",
    );
    std::fs::write(signing.join("jens.toml"), person).unwrap();
    let d = Daemon::start_with(dir, &["--country", "DK"]);
    let dir = d.dir.path().to_owned();
    let chain = split_pem(&trustctl_ok(&d, &["ca", "chain"]));
    std::fs::write(dir.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();

    let certificate_of = |profile: &str| {
        let listed = trustctl_ok(&d, &["cert", "list", "--profile", profile]);
        let serials: Vec<&str> = listed.lines().filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(serials.len(), 1, "one certificate under {profile}: {listed}");
        let pem = dir.join(format!("{profile}.pem"));
        std::fs::write(&pem, trustctl_ok(&d, &["cert", "get", "--serial", serials[0]])).unwrap();
        pem
    };
    let person_pem = certificate_of("qcp-n-qscd");
    pkilint_no_errors("lint_etsi_cert", &["-t", "QCP-N-QSCD-EIDAS-FINAL-CERTIFICATE"], &person_pem);
    let seal_pem = certificate_of("qcp-l-qscd");
    pkilint_no_errors("lint_etsi_cert", &["-t", "NCP-LEGAL-PERSON-CERTIFICATE"], &seal_pem);
    pkilint_no_errors("lint_pkix_cert", &[], &seal_pem);
    for pem in [&person_pem, &seal_pem] {
        let qc = qc_statements(&dir, pem);
        let ids: Vec<&str> = qc["statements"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"0.4.0.1862.1.4"), "QcSSCD: {qc}");
        assert!(ids.contains(&QC_COMPLIANCE), "{qc}");
    }

    // A seal of Example ApS, checked by openssl and by trustd's validation.
    std::fs::write(dir.join("doc.txt"), b"invoice 2026-117").unwrap();
    let (doc, sig) = (dir.join("doc.txt"), dir.join("seal.p7s"));
    trustctl_ok(
        &d,
        &["sign", "--policy", "seal", "--file", doc.to_str().unwrap(), "--detached", "--out", sig.to_str().unwrap()],
    );
    let args =
        "cms -verify -binary -inform DER -in seal.p7s -content doc.txt -CAfile root.pem -purpose any -out /dev/null";
    let verified = openssl(&dir, &args.split(' ').collect::<Vec<_>>());
    assert!(text(&verified).contains("Verification successful"), "{}", text(&verified));
    let signer = text(&openssl(&dir, &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "seal.p7s"]));
    assert!(signer.contains("NTRDK-12345678"), "sealed by Example ApS's certificate:\n{signer}");
    let report = trustctl_ok(&d, &["verify", "--signature", sig.to_str().unwrap(), "--file", doc.to_str().unwrap()]);
    assert!(report.contains("TOTAL_PASSED"), "{report}");

    // Restarted, the certificates stored beside the keys serve again: none issued anew.
    let (_, kept) = d.stop();
    let d = Daemon::start_with(kept, &["--country", "DK"]);
    let listed = trustctl_ok(&d, &["cert", "list", "--profile", "qcp-l-qscd"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
}
