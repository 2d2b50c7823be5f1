//! End-to-end tests of document signing (CMS/CAdES, RFC 5652, ETSI EN 319 122-1) against a real
//! daemon: trustctl and raw gRPC as clients, `openssl cms` and `openssl ts` as verifiers, and
//! asn1crypto to pull the signature time-stamp apart.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};
use tonic::Code;
use trustd::api::pb;
use trustd::api::pb::signing_client::SigningClient;
use trustd::digest::HashAlg;

/// Writes root.pem (the trust anchor, and nothing else, for the verifier) and tsa-chain.pem.
fn write_anchors(d: &Daemon) {
    let dir = d.dir.path();
    let chain = d.trustctl(&["tsa", "chain"]);
    assert!(chain.status.success(), "{}", text(&chain));
    let pem = String::from_utf8_lossy(&chain.stdout).into_owned();
    std::fs::write(dir.join("tsa-chain.pem"), &pem).unwrap();
    std::fs::write(dir.join("root.pem"), split_pem(&pem).last().unwrap()).unwrap();
}

/// `openssl cms -verify` of a DER signature, with `content` for a detached one.
fn cms_verify(dir: &Path, sig: &str, content: Option<&str>) -> Output {
    let mut args = vec!["cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-CAfile", "root.pem"];
    args.extend(["-purpose", "any", "-out", "verified.out"]);
    if let Some(c) = content {
        args.extend(["-content", c]);
    }
    Command::new("openssl").current_dir(dir).args(&args).output().unwrap()
}

fn verified(o: &Output) -> bool {
    o.status.success() && text(o).contains("Verification successful")
}

fn sign(d: &Daemon, args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_trustctl"))
        .current_dir(d.dir.path())
        .args(["--server", &d.grpc, "--data-dir"])
        .arg(d.data_dir())
        .arg("sign")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "trustctl sign {args:?}: {}", text(&out));
    out.stdout
}

/// `trustctl verify`: the report; the exit status must say whether it passed.
fn trustctl_verify(d: &Daemon, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_trustctl"))
        .current_dir(d.dir.path())
        .args(["--server", &d.grpc, "--data-dir"])
        .arg(d.data_dir())
        .arg("verify")
        .args(args)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.success(), report.starts_with("indication: TOTAL_PASSED\n"), "{}", text(&out));
    report
}

async fn signing(d: &Daemon) -> SigningClient<tonic::transport::Channel> {
    SigningClient::new(d.channel().await).max_decoding_message_size(64 << 20)
}

fn options(policy: &str, level: pb::SignatureLevel, detached: bool) -> Option<pb::SignOptions> {
    Some(pb::SignOptions { policy: policy.into(), level: level.into(), detached })
}

/// Counts recorded signatures straight from the daemon's database.
async fn recorded(d: &Daemon) -> u64 {
    use trustd::store::Store;
    let store = trustd::store::SqliteStore::open(&d.data_dir().join("trustd.db")).await.unwrap();
    store.count_signatures().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_verifies_detached_and_enveloping_signatures() {
    let d = Daemon::start();
    let dir = d.dir.path();
    write_anchors(&d);
    let doc = b"%PDF-1.7 a contract to be signed\n".repeat(1000);
    std::fs::write(dir.join("doc.pdf"), &doc).unwrap();
    let mut other = doc.clone();
    other[100] ^= 1;
    std::fs::write(dir.join("other.pdf"), &other).unwrap();

    // Detached from the streamed document, detached from a digest hashed by trustctl, and
    // enveloping from the whole document.
    std::fs::write(dir.join("streamed.p7s"), sign(&d, &["--file", "doc.pdf", "--detached"])).unwrap();
    let hashed = sign(&d, &["--file", "doc.pdf", "--detached", "--hash", "sha256"]);
    std::fs::write(dir.join("hashed.p7s"), hashed).unwrap();
    std::fs::write(dir.join("enveloping.p7s"), sign(&d, &["--file", "doc.pdf"])).unwrap();
    // And a detached signature over a digest sent with raw gRPC.
    let mut client = signing(&d).await;
    let r = client
        .sign(pb::SignRequest {
            options: options("", pb::SignatureLevel::Unspecified, true),
            content: Some(pb::sign_request::Content::Digest(pb::Digest {
                hash_algorithm: "sha256".into(),
                value: HashAlg::Sha256.digest(&doc),
            })),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.level, i32::from(pb::SignatureLevel::BB), "the policy's default level");
    assert_eq!(r.digest.as_ref().unwrap().value, HashAlg::Sha256.digest(&doc));
    assert_eq!(r.signature_id.len(), 32);
    std::fs::write(dir.join("grpc.p7s"), &r.signature_der).unwrap();

    for sig in ["streamed.p7s", "hashed.p7s", "grpc.p7s"] {
        let ok = cms_verify(dir, sig, Some("doc.pdf"));
        assert!(verified(&ok), "{sig}: {}", text(&ok));
        let bad = cms_verify(dir, sig, Some("other.pdf"));
        assert!(!verified(&bad), "{sig} must not verify for a document one bit off: {}", text(&bad));
        // trustd's own Verify agrees with openssl.
        let report = trustctl_verify(&d, &["--signature", sig, "--file", "doc.pdf"]);
        assert!(report.starts_with("indication: TOTAL_PASSED\n"), "{sig}: {report}");
        assert!(report.contains("signer: CN=trustd Document Signer") && report.contains("level: B-B"), "{report}");
        let report = trustctl_verify(&d, &["--signature", sig, "--file", "other.pdf"]);
        assert!(report.contains("indication: TOTAL_FAILED\nsub_indication: HASH_FAILURE"), "{sig}: {report}");
    }
    let report = trustctl_verify(&d, &["--signature", "enveloping.p7s"]);
    assert!(report.starts_with("indication: TOTAL_PASSED\n"), "{report}");
    let ok = cms_verify(dir, "enveloping.p7s", None);
    assert!(verified(&ok), "{}", text(&ok));
    assert_eq!(std::fs::read(dir.join("verified.out")).unwrap(), doc, "the enveloped content is the document");
    // One byte of the enveloped document changed: the signature no longer verifies.
    let mut env = std::fs::read(dir.join("enveloping.p7s")).unwrap();
    let at = env.windows(8).position(|w| w == b"contract").unwrap();
    env[at] ^= 0x20;
    std::fs::write(dir.join("tampered.p7s"), &env).unwrap();
    assert!(!verified(&cms_verify(dir, "tampered.p7s", None)));
    let report = trustctl_verify(&d, &["--signature", "tampered.p7s"]);
    assert!(report.contains("indication: TOTAL_FAILED\nsub_indication: HASH_FAILURE"), "{report}");

    // The four CAdES B-B signed attributes (ETSI EN 319 122-1 §5.2), as openssl prints them.
    for sig in ["streamed.p7s", "enveloping.p7s"] {
        let print = text(&openssl(dir, &["cms", "-cmsout", "-print", "-inform", "DER", "-in", sig]));
        for attr in ["contentType", "messageDigest", "signingTime", "id-smime-aa-signingCertificateV2"] {
            assert!(print.contains(&format!("object: {attr}")), "{sig}: {attr} missing:\n{print}");
        }
        assert!(!print.contains("id-smime-aa-timeStampToken"), "B-B has no time-stamp");
        let detached = print.contains("eContent: <ABSENT>");
        assert_eq!(detached, sig == "streamed.p7s", "{sig}:\n{print}");
    }
    assert_eq!(recorded(&d).await, 4, "every signature is recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_t_signature_time_stamp_covers_the_signature_value() {
    let d = Daemon::start();
    let dir = d.dir.path();
    write_anchors(&d);
    std::fs::write(dir.join("doc.txt"), b"signed and time-stamped\n").unwrap();
    std::fs::write(dir.join("bt.p7s"), sign(&d, &["--file", "doc.txt", "--detached", "--timestamp"])).unwrap();
    let ok = cms_verify(dir, "bt.p7s", Some("doc.txt"));
    assert!(verified(&ok), "{}", text(&ok));
    let print = text(&openssl(dir, &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "bt.p7s"]));
    assert!(print.contains("object: id-smime-aa-timeStampToken"), "{print}");

    let out = py_checker(dir, "cades_timestamp.py", &["bt.p7s", "token.der"]);
    assert!(out.status.success(), "{}", text(&out));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let (alg, digest) = line.trim().split_once(' ').unwrap();
    assert_eq!(alg, "sha256");
    let v = openssl(
        dir,
        &[
            "ts",
            "-verify",
            "-token_in",
            "-in",
            "token.der",
            "-digest",
            digest,
            "-CAfile",
            "root.pem",
            "-untrusted",
            "tsa-chain.pem",
        ],
    );
    assert!(text(&v).contains("Verification: OK"), "{}", text(&v));
    // Against any other value the token fails.
    // (Another last hex digit: replacing it with a fixed one failed whenever it was that one.)
    let last = if digest.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &digest[..digest.len() - 1]);
    let v = Command::new("openssl")
        .current_dir(dir)
        .args(["ts", "-verify", "-token_in", "-in", "token.der", "-digest", &wrong, "-CAfile", "root.pem"])
        .args(["-untrusted", "tsa-chain.pem"])
        .output()
        .unwrap();
    assert!(!text(&v).contains("Verification: OK"));
    assert_eq!(recorded(&d).await, 1);

    let report = trustctl_verify(&d, &["--signature", "bt.p7s", "--file", "doc.txt"]);
    assert!(report.starts_with("indication: TOTAL_PASSED\n") && report.contains("level: B-T"), "{report}");
    assert!(report.contains("timestamp_time: "), "{report}");

    // The document-signing certificate is revoked (keyCompromise) after both signatures were
    // made: the B-T signature's time-stamp proves it existed before, the B-B one cannot.
    std::fs::write(dir.join("bb.p7s"), sign(&d, &["--file", "doc.txt", "--detached"])).unwrap();
    let serial = {
        use der::Decode;
        let info = cms::content_info::ContentInfo::from_der(&std::fs::read(dir.join("bb.p7s")).unwrap()).unwrap();
        let sd: cms::signed_data::SignedData = info.content.decode_as().unwrap();
        let Some(cms::cert::CertificateChoices::Certificate(c)) = sd.certificates.unwrap().0.iter().next().cloned()
        else {
            panic!("no signer certificate")
        };
        trustd::serial::Serial::from_bytes(c.tbs_certificate.serial_number.as_bytes()).unwrap().to_string()
    };
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = d.trustctl(&["revoke", "--serial", &serial, "--reason", "keyCompromise"]);
    assert!(r.status.success(), "{}", text(&r));
    let report = trustctl_verify(&d, &["--signature", "bt.p7s", "--file", "doc.txt"]);
    assert!(report.starts_with("indication: TOTAL_PASSED\n"), "{report}");
    let report = trustctl_verify(&d, &["--signature", "bb.p7s", "--file", "doc.txt"]);
    assert!(report.contains("indication: INDETERMINATE\nsub_indication: REVOKED_NO_POE"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_documents_stream_in_chunks() {
    let d = Daemon::start();
    let dir = d.dir.path();
    write_anchors(&d);
    // 40 MiB: forty chunks, far over any single message limit.
    let chunk: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let mut f = std::fs::File::create(dir.join("big.bin")).unwrap();
    for i in 0..40u8 {
        use std::io::Write;
        let mut c = chunk.clone();
        c[0] = i;
        f.write_all(&c).unwrap();
    }
    drop(f);
    std::fs::write(dir.join("big.p7s"), sign(&d, &["--file", "big.bin", "--detached"])).unwrap();
    let ok = cms_verify(dir, "big.p7s", Some("big.bin"));
    assert!(verified(&ok), "{}", text(&ok));
}

/// What is verified, with what content, and the expected indication and sub-indication.
type VerifyCase = (&'static str, Vec<u8>, Option<pb::verify_request::Content>, pb::Indication, &'static str);

/// A policy that allows only small documents and no B-T, beside the default one.
const SMALL_POLICY: &str = "description = \"small documents only\"\nlevel = \"B-B\"\nlevels = [\"B-B\"]\n\
    max_document_bytes = 1000\nmax_stream_bytes = 3000\nclients = [\"*\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_record_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data/policies/signing")).unwrap();
    std::fs::write(dir.path().join("data/policies/signing/small.toml"), SMALL_POLICY).unwrap();
    let d = Daemon::start_in(dir);
    let mut client = signing(&d).await;
    let digest = |alg: &str, len: usize| {
        Some(pb::sign_request::Content::Digest(pb::Digest { hash_algorithm: alg.into(), value: vec![7; len] }))
    };
    let doc = |n: usize| Some(pb::sign_request::Content::Document(vec![b'x'; n]));
    let unspecified = pb::SignatureLevel::Unspecified;
    let cases: Vec<(&str, pb::SignRequest, Code, &str)> = vec![
        (
            "digest of the wrong length",
            pb::SignRequest { options: options("", unspecified, true), content: digest("sha256", 31) },
            Code::InvalidArgument,
            "32 bytes",
        ),
        (
            "unknown algorithm",
            pb::SignRequest { options: options("", unspecified, true), content: digest("md5", 16) },
            Code::InvalidArgument,
            "md5",
        ),
        (
            "another algorithm than the policy's",
            pb::SignRequest { options: options("", unspecified, true), content: digest("sha384", 48) },
            Code::InvalidArgument,
            "sha256",
        ),
        (
            "digest for an enveloping signature",
            pb::SignRequest { options: options("", unspecified, false), content: digest("sha256", 32) },
            Code::InvalidArgument,
            "detached",
        ),
        (
            "unknown policy",
            pb::SignRequest { options: options("nope", unspecified, true), content: digest("sha256", 32) },
            Code::InvalidArgument,
            "unknown signing policy 'nope'",
        ),
        (
            "level the policy does not allow",
            pb::SignRequest { options: options("small", pb::SignatureLevel::BT, true), content: digest("sha256", 32) },
            Code::InvalidArgument,
            "B-T",
        ),
        (
            "unknown level",
            pb::SignRequest {
                options: Some(pb::SignOptions { policy: String::new(), level: 9, detached: true }),
                content: digest("sha256", 32),
            },
            Code::InvalidArgument,
            "level",
        ),
        (
            "empty document",
            pb::SignRequest { options: options("", unspecified, false), content: doc(0) },
            Code::InvalidArgument,
            "empty",
        ),
        (
            "document over the policy's limit",
            pb::SignRequest { options: options("small", unspecified, false), content: doc(1001) },
            Code::OutOfRange,
            "1000 bytes",
        ),
        (
            "no content",
            pb::SignRequest { options: options("", unspecified, true), content: None },
            Code::InvalidArgument,
            "digest or a document",
        ),
    ];
    for (what, req, code, msg) in cases {
        let e = client.sign(req).await.expect_err(what);
        assert_eq!(e.code(), code, "{what}: {e:?}");
        assert!(e.message().contains(msg), "{what}: {:?}", e.message());
    }

    // Streams: empty, no options first, enveloping, over the limit.
    let stream = |msgs: Vec<pb::SignStreamRequest>| tokio_stream::iter(msgs);
    let chunk = |o: Option<pb::SignOptions>, n: usize| pb::SignStreamRequest { options: o, chunk: vec![b'y'; n] };
    let streams: Vec<(&str, Vec<pb::SignStreamRequest>, Code, &str)> = vec![
        ("no messages", vec![], Code::InvalidArgument, "empty"),
        ("no options", vec![chunk(None, 10)], Code::InvalidArgument, "options"),
        ("empty document", vec![chunk(options("", unspecified, true), 0)], Code::InvalidArgument, "empty"),
        ("enveloping", vec![chunk(options("", unspecified, false), 10)], Code::InvalidArgument, "detached"),
        (
            "options twice",
            vec![chunk(options("", unspecified, true), 10), chunk(options("", unspecified, true), 10)],
            Code::InvalidArgument,
            "first message only",
        ),
        (
            "over the limit",
            vec![chunk(options("small", unspecified, true), 1500), chunk(None, 1500), chunk(None, 1)],
            Code::OutOfRange,
            "3000 bytes",
        ),
    ];
    for (what, msgs, code, msg) in streams {
        let e = client.sign_stream(stream(msgs)).await.expect_err(what);
        assert_eq!(e.code(), code, "{what}: {e:?}");
        assert!(e.message().contains(msg), "{what}: {:?}", e.message());
    }
    assert_eq!(recorded(&d).await, 0, "nothing recorded for refused requests");

    // Verify answers hostile or foreign signatures with a report, not an error.
    let dir = d.dir.path();
    std::fs::write(dir.join("doc.txt"), b"signed by someone else\n").unwrap();
    let foreign = [
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout foreign.key -out foreign.pem",
        "-subj /CN=Foreign -days 1 -addext keyUsage=critical,digitalSignature,nonRepudiation",
    ]
    .join(" ");
    openssl(dir, &foreign.split(' ').collect::<Vec<_>>());
    openssl(
        dir,
        &["cms", "-sign", "-cades", "-binary", "-in", "doc.txt", "-signer", "foreign.pem", "-inkey", "foreign.key"]
            .iter()
            .chain(&["-outform", "DER", "-out", "foreign.p7s"])
            .copied()
            .collect::<Vec<_>>(),
    );
    let good = client
        .sign(pb::SignRequest {
            options: options("", unspecified, false),
            content: Some(pb::sign_request::Content::Document(b"doc".to_vec())),
        })
        .await
        .unwrap()
        .into_inner()
        .signature_der;
    let verify_cases: Vec<VerifyCase> = vec![
        ("garbage", b"not a signature".to_vec(), None, pb::Indication::TotalFailed, "FORMAT_FAILURE"),
        ("empty", Vec::new(), None, pb::Indication::TotalFailed, "FORMAT_FAILURE"),
        ("truncated", good[..good.len() / 2].to_vec(), None, pb::Indication::TotalFailed, "FORMAT_FAILURE"),
        (
            "chain to an unknown anchor",
            std::fs::read(dir.join("foreign.p7s")).unwrap(),
            Some(pb::verify_request::Content::Document(b"signed by someone else\n".to_vec())),
            pb::Indication::Indeterminate,
            "NO_CERTIFICATE_CHAIN_FOUND",
        ),
        (
            "digest of the wrong length",
            good.clone(),
            Some(pb::verify_request::Content::Digest(pb::Digest { hash_algorithm: "sha256".into(), value: vec![1] })),
            pb::Indication::Indeterminate,
            "SIGNED_DATA_NOT_FOUND",
        ),
    ];
    for (what, signature, content, indication, sub) in verify_cases {
        let r = client
            .verify(pb::VerifyRequest { signature, content, require_commitment: false })
            .await
            .expect(what)
            .into_inner();
        assert_eq!((r.indication(), r.sub_indication.as_str()), (indication, sub), "{what}: {:?}", r.reasons);
        assert!(!r.reasons.is_empty(), "{what}: a reason is given");
    }
    // A flood of Verify calls: each gets a report or, past the daemon's bound on validations in
    // flight (32 per core), RESOURCE_EXHAUSTED at once; none fails otherwise.
    let flood: Vec<_> = (0..400)
        .map(|_| {
            let (mut client, signature) = (client.clone(), good.clone());
            tokio::spawn(async move {
                client.verify(pb::VerifyRequest { signature, content: None, require_commitment: false }).await
            })
        })
        .collect();
    let mut passed = 0;
    for call in flood {
        match call.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.into_inner().indication(), pb::Indication::TotalPassed);
                passed += 1;
            }
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(e.message().contains("retry shortly"), "{:?}", e.message());
            }
        }
    }
    assert!(passed > 0);
    // The document signer's certificate has nonRepudiation: a signature with commitment.
    let r = client
        .verify(pb::VerifyRequest { signature: good.clone(), content: None, require_commitment: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.indication(), pb::Indication::TotalPassed, "{:?}", r.reasons);
    let bad_alg = client
        .verify(pb::VerifyRequest {
            signature: good,
            content: Some(pb::verify_request::Content::Digest(pb::Digest {
                hash_algorithm: "md5".into(),
                value: vec![],
            })),
            require_commitment: false,
        })
        .await
        .expect_err("unknown digest algorithm");
    assert_eq!(bad_alg.code(), Code::InvalidArgument);
    assert_eq!(recorded(&d).await, 1, "only the one signature made");

    // The daemon keeps serving; a stream exactly at the limit is fine.
    let ok = client
        .sign_stream(stream(vec![chunk(options("small", unspecified, true), 1500), chunk(None, 1500)]))
        .await
        .unwrap()
        .into_inner();
    assert!(!ok.signature_der.is_empty());
    assert_eq!(recorded(&d).await, 2);
}

/// Every signature algorithm the issue names, through `trustd init` + `serve` with RSA and
/// P-384 service keys and one signing policy per scheme.
#[test]
fn rsa_and_p384_signatures_verify() {
    for (algorithm, schemes) in [
        ("rsa-3072", &["rsa-pkcs1-sha256", "rsa-pss-sha256", "rsa-pkcs1-sha384", "rsa-pss-sha512"][..]),
        ("ecdsa-p384", &["ecdsa-sha384"][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        run(Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/softhsm-token.sh")).arg(d).arg("prod"));
        trustd::policy::Policies::install_defaults(&d.join("policies")).unwrap();
        for s in schemes {
            let policy = std::fs::read_to_string(d.join("policies/signing/default.toml"))
                .unwrap()
                .replace("# signature = \"ecdsa-sha256\"", &format!("signature = \"{s}\""));
            std::fs::write(d.join(format!("policies/signing/{s}.toml")), policy).unwrap();
        }
        let server = Server::start(d, algorithm);
        let chain = split_pem(&String::from_utf8_lossy(&server.trustctl(&["ca", "chain"]).stdout));
        std::fs::write(d.join("root.pem"), chain.last().unwrap()).unwrap();
        std::fs::write(d.join("doc.txt"), b"signed with every algorithm\n").unwrap();
        for s in schemes {
            let out = server.trustctl(&["sign", "--file", "doc.txt", "--detached", "--policy", s, "--out", "s.p7s"]);
            assert!(out.status.success(), "{s}: {}", text(&out));
            let ok = cms_verify(d, "s.p7s", Some("doc.txt"));
            assert!(verified(&ok), "{s}: {}", text(&ok));
            let print = text(&openssl(d, &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "s.p7s"]));
            let want = match *s {
                "rsa-pkcs1-sha256" => "sha256WithRSAEncryption",
                "rsa-pkcs1-sha384" => "sha384WithRSAEncryption",
                s if s.starts_with("rsa-pss") => "rsassaPss",
                _ => "ecdsa-with-SHA384",
            };
            assert!(print.contains(want), "{s}: {want} not in\n{print}");
            let v = server.trustctl(&["verify", "--signature", "s.p7s", "--file", "doc.txt"]);
            assert!(v.status.success() && text(&v).starts_with("indication: TOTAL_PASSED"), "{s}: {}", text(&v));
        }
    }
}

/// `trustd init` + `trustd serve` with a config naming the service key algorithm.
struct Server {
    child: std::process::Child,
    grpc: String,
    dir: std::path::PathBuf,
}

impl Server {
    fn start(d: &Path, service_algorithm: &str) -> Server {
        use std::io::{BufRead, BufReader};
        let cfg = d.join("trustd.toml");
        std::fs::write(
            &cfg,
            format!(
                "policies = \"{}\"\n[hsm]\nmodule = \"{}\"\ntoken_label = \"prod\"\npin_file = \"hsm-pin\"\n\
                 [store]\nsqlite = \"trustd.db\"\n[server]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n\
                 operator_credentials = \"credentials\"\n\
                 public_url = \"{PUBLIC_URL}\"\n[ceremony]\nservice_algorithm = \"{service_algorithm}\"\n\
                 [tsa]\nclock_check = \"off\"\n",
                d.join("policies").display(),
                trustd::daemon::SOFTHSM_MODULE
            ),
        )
        .unwrap();
        let trustd = || {
            let mut c = Command::new(env!("CARGO_BIN_EXE_trustd"));
            c.env("SOFTHSM2_CONF", d.join("softhsm2.conf")).current_dir(d);
            c
        };
        let init = trustd().args(["init", "--config", "trustd.toml"]).output().unwrap();
        assert!(init.status.success(), "{}", text(&init));
        let mut child = trustd()
            .args(["serve", "--config", "trustd.toml"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(d.join("serve.log")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let grpc = line.split_whitespace().find_map(|w| w.strip_prefix("grpc=")).map(str::to_owned);
        let grpc = grpc.unwrap_or_else(|| {
            let _ = child.kill();
            panic!("{line:?}: {}", std::fs::read_to_string(d.join("serve.log")).unwrap_or_default())
        });
        Server { child, grpc, dir: d.to_owned() }
    }

    fn trustctl(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trustctl"));
        c.current_dir(&self.dir).arg("--server").arg(&self.grpc).arg("--data-dir").arg(&self.dir);
        c.args(args).output().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signing policy may not sign with a key that signs for another service: the daemon does not
/// start, and says which policy and which key.
#[test]
fn a_signing_policy_naming_the_tsa_key_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("policies/signing")).unwrap();
    std::fs::write(data.join("policies/signing/stolen.toml"), format!("key = \"trustd-tsa\"\n{SMALL_POLICY}")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trustd"))
        .args(["dev", "--data-dir"])
        .arg(&data)
        .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--https", "off"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("signing policy 'stolen'") && err.contains("is the tsa key"), "{err}");
}
