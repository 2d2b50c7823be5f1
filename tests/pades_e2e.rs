//! PAdES: a signing portal built on pyHanko (tests/py/pades.py) asks trustd's Signing.Sign, over
//! Python's grpcio, for the CMS over a PDF's byte-range digest under the shipped `pades` policy,
//! embeds it with pyHanko's interrupted signing, and pyHanko's own validation finds the signature
//! intact, valid and trusted under trustd's root, at B-B and at B-T (time-stamped by trustd's
//! TSA); trustd's Verify agrees. pyHanko then adds a document time-stamp from trustd's TSA over
//! HTTP (its own HTTPTimeStamper) and finds it valid too. A PAdES policy refuses to sign
//! enveloping.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use trustd::api::pb;
use trustd::api::pb::signing_client::SigningClient;

async fn signatures_recorded(d: &Daemon) -> u64 {
    use trustd::store::Store;
    let store = trustd::store::SqliteStore::open(&d.data_dir().join("trustd.db")).await.unwrap();
    store.count_signatures().await.unwrap()
}

#[tokio::test]
async fn pyhanko_embeds_and_validates_the_pades_signatures_trustd_makes() {
    let d = Daemon::start();
    let dir = d.dir.path().to_owned();
    let chain = split_pem(&trustctl_ok(&d, &["ca", "chain"]));
    std::fs::write(dir.join("issuing.pem"), &chain[0]).unwrap();
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let target = d.grpc.trim_start_matches("https://").to_owned();

    for level in ["B-B", "B-T"] {
        let pdf = dir.join(format!("signed-{level}.pdf"));
        let out = run(Command::new(venv_bin("python"))
            .current_dir(&dir)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/pades.py"))
            .arg(&target)
            .arg(d.credentials())
            .arg(&proto)
            .args(["root.pem", "issuing.pem", "pades", level])
            .arg(&pdf)
            .arg(format!("http://{}/tsa", d.http)));
        let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from pades.py");
        for check in ["intact", "valid", "trusted", "bottom_line"] {
            assert_eq!(seen[check], true, "{level} {check}: {seen}");
        }
        // The document time-stamp is a later revision: what the signature covers is its own
        // revision, and what came after is a time-stamp, which PAdES allows.
        assert_eq!(seen["coverage"], "ENTIRE_REVISION", "{seen}");
        assert_eq!(seen["modification_level"], "LTA_UPDATES", "{seen}");
        assert_eq!(seen["subfilter"], "/ETSI.CAdES.detached", "{seen}");
        let attrs: Vec<&str> = seen["signed_attrs"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        for a in ["content_type", "message_digest", "signing_certificate_v2"] {
            assert!(attrs.contains(&a), "{level}: {a} missing from {attrs:?}");
        }
        assert!(!attrs.contains(&"signing_time"), "PAdES forbids signing-time: {attrs:?}");
        let unsigned: Vec<&str> =
            seen["unsigned_attrs"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        let stamped = level == "B-T";
        assert_eq!(unsigned.contains(&"signature_time_stamp_token"), stamped, "{level}: {unsigned:?}");
        assert_eq!(seen["timestamp_valid"], stamped, "{level}: {seen}");
        assert_eq!(seen["timestamp_trusted"], stamped, "{level}: {seen}");
        assert_eq!(seen["trustd_verify"], "TOTAL_PASSED", "{level}: {seen}");
        assert_eq!(seen["ades"][0], "PASSED", "pyHanko's AdES validation, {level}: {seen}");
        for check in ["intact", "valid", "trusted"] {
            assert_eq!(seen["document_timestamp"][check], true, "document time-stamp {check}: {seen}");
        }
        assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
    }

    // trustctl signs a digest the portal computed (here of a whole file, which openssl then
    // checks the detached CMS against).
    std::fs::write(dir.join("range.bin"), b"the byte range of a PDF, as a portal hashed it").unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(dir.join("range.bin")).unwrap()));
    let out = dir.join("range.p7s");
    trustctl_ok(&d, &["sign", "--policy", "pades", "--digest", &digest, "--out", out.to_str().unwrap()]);
    let args = ["cms", "-verify", "-binary", "-inform", "DER", "-in", "range.p7s", "-content", "range.bin"];
    let verified = text(&openssl(&dir, &[&args[..], &["-CAfile", "root.pem", "-purpose", "any"]].concat()));
    assert!(verified.contains("Verification successful"), "{verified}");
    let printed = text(&openssl(&dir, &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "range.p7s"]));
    assert!(!printed.contains("signingTime") && printed.contains("id-smime-aa-signingCertificateV2"), "{printed}");
    for (args, says) in [
        (vec!["sign", "--policy", "pades", "--digest", "zz"], "is not hex"),
        (vec!["sign", "--policy", "pades", "--digest", "abcd"], "a sha256 digest is 32 bytes, got 2"),
        (vec!["sign", "--policy", "pades", "--digest", &digest, "--hash", "md5"], "md5"),
        (vec!["sign", "--file", "range.bin", "--hash", "sha256"], "add --detached"),
    ] {
        let out = d.trustctl(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }

    // Enveloping makes no PAdES signature: refused before anything is signed or recorded.
    let before = signatures_recorded(&d).await;
    let mut signing = SigningClient::new(d.channel().await);
    let req = pb::SignRequest {
        options: Some(pb::SignOptions { policy: "pades".into(), level: 0, detached: false }),
        content: Some(pb::sign_request::Content::Document(b"%PDF-1.7 not signed here".to_vec())),
    };
    let e = signing.sign(req).await.expect_err("a PAdES policy signs detached only");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("PAdES signatures, which are detached"), "{e:?}");
    assert_eq!(signatures_recorded(&d).await, before);
    // The CAdES policy still carries signing-time.
    let req = pb::SignRequest {
        options: Some(pb::SignOptions { policy: "default".into(), level: 0, detached: true }),
        content: Some(pb::sign_request::Content::Document(b"a CAdES document".to_vec())),
    };
    let der = signing.sign(req).await.unwrap().into_inner().signature_der;
    std::fs::write(dir.join("cades.p7s"), der).unwrap();
    let printed = text(&openssl(&dir, &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "cades.p7s"]));
    assert!(printed.contains("signingTime"), "{printed}");
}
