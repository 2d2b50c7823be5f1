//! End-to-end tests of the RFC 3161 time-stamping authority: openssl as the client and the
//! verifier, rfc3161-client and asn1crypto as a second, independent verifier, over HTTP and gRPC.

mod common;

use common::*;
use der::Encode;
use std::path::Path;
use std::process::Command;
use trustd::api::pb;
use trustd::api::pb::time_stamping_client::TimeStampingClient;

const TSQ: &str = "application/timestamp-query";

/// Writes root.pem, issuing.pem, tsa.pem and tsa-chain.pem (TSA, issuing, root) into the dir.
fn write_chain(d: &Daemon) {
    let out = d.trustctl(&["tsa", "chain"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pem = String::from_utf8_lossy(&out.stdout).into_owned();
    let certs = split_pem(&pem);
    assert_eq!(certs.len(), 3);
    let dir = d.dir.path();
    std::fs::write(dir.join("tsa-chain.pem"), &pem).unwrap();
    for (name, c) in ["tsa.pem", "issuing.pem", "root.pem"].iter().zip(&certs) {
        std::fs::write(dir.join(name), c).unwrap();
    }
}

fn reply_text(dir: &Path, resp: &str) -> String {
    text(&openssl(dir, &["ts", "-reply", "-in", resp, "-text"]))
}

/// Counts recorded tokens straight from the daemon's database.
async fn recorded(d: &Daemon) -> u64 {
    use trustd::store::Store;
    let store = trustd::store::SqliteStore::open(&d.data_dir().join("trustd.db")).await.unwrap();
    store.count_timestamps().await.unwrap()
}

#[test]
fn openssl_clients_get_tokens_that_verify() {
    let d = Daemon::start();
    let dir = d.dir.path();
    write_chain(&d);
    std::fs::write(dir.join("doc.pdf"), b"%PDF-1.7 a contract worth time-stamping\n").unwrap();
    std::fs::write(dir.join("other.pdf"), b"%PDF-1.7 a different contract\n").unwrap();
    let mut n = 0;
    for hash in ["sha256", "sha384", "sha512"] {
        for (nonce, cert) in [(true, true), (false, false), (true, false)] {
            n += 1;
            let (q, r) = (format!("q{n}.tsq"), format!("r{n}.tsr"));
            let mut args = vec!["ts", "-query", "-data", "doc.pdf", "-out", &q];
            let flag = format!("-{hash}");
            args.push(&flag);
            if !nonce {
                args.push("-no_nonce");
            }
            if cert {
                args.push("-cert");
            }
            openssl(dir, &args);
            let (code, head, body) = d.http_post("/tsa", TSQ, &std::fs::read(dir.join(&q)).unwrap());
            assert_eq!(code, 200, "{hash}");
            assert!(head.to_ascii_lowercase().contains("content-type: application/timestamp-reply"), "{head}");
            std::fs::write(dir.join(&r), &body).unwrap();

            // With certReq the token carries the TSA's certificate and its CA: the root alone
            // verifies it.
            let untrusted: &[&str] = if cert { &[] } else { &["-untrusted", "tsa-chain.pem"] };
            let base = [&["ts", "-verify", "-in", &r, "-CAfile", "root.pem"][..], untrusted].concat();
            let v = openssl(dir, &[&base[..], &["-data", "doc.pdf"]].concat());
            assert!(text(&v).contains("Verification: OK"), "{hash} nonce={nonce} cert={cert}: {}", text(&v));
            let digest = hex::encode(
                hash.parse::<trustd::digest::HashAlg>().unwrap().digest(&std::fs::read(dir.join("doc.pdf")).unwrap()),
            );
            let v = openssl(dir, &[&base[..], &["-digest", &digest]].concat());
            assert!(text(&v).contains("Verification: OK"), "{}", text(&v));
            // -queryfile checks that the imprint, the nonce and the policy match the request.
            let v = openssl(dir, &[&base[..], &["-queryfile", &q]].concat());
            assert!(text(&v).contains("Verification: OK"), "{}", text(&v));
            let wrong = Command::new("openssl")
                .current_dir(dir)
                .args([&base[..], &["-data", "other.pdf"]].concat())
                .output()
                .unwrap();
            assert!(!text(&wrong).contains("Verification: OK"), "a token verifies only for its own document");

            let reply = reply_text(dir, &r);
            assert!(reply.contains("Status: Granted."), "{reply}");
            assert!(reply.contains("Policy OID: 0.4.0.2023.1.1"), "{reply}");
            assert!(reply.contains(&format!("Hash Algorithm: {hash}")), "{reply}");
            assert!(reply.contains("Accuracy: 0x01 seconds"), "{reply}");
            assert!(reply.contains("Ordering: no"), "{reply}");
            assert_eq!(!reply.contains("Nonce: unspecified"), nonce, "{reply}");
            let certs = text(
                &Command::new("sh")
                    .current_dir(dir)
                    .arg("-c")
                    .arg(format!("openssl ts -reply -in {r} -token_out | openssl pkcs7 -inform DER -print_certs"))
                    .output()
                    .unwrap(),
            );
            let mut subjects: Vec<String> =
                certs.lines().filter(|l| l.starts_with("subject=")).map(|l| l.replace(" = ", "=")).collect();
            // In DER's SET OF order.
            subjects.sort();
            let want: &[&str] = if cert {
                &["subject=O=trustd, CN=trustd Issuing CA", "subject=O=trustd, CN=trustd Time-Stamping Authority"]
            } else {
                &[]
            };
            assert_eq!(subjects, want, "the TSA certificate and its CA iff certReq");
        }
    }
    // The signed attributes of a token, as openssl's CMS printer sees them.
    let cms = text(
        &Command::new("sh")
            .current_dir(dir)
            .arg("-c")
            .arg("openssl ts -reply -in r1.tsr -token_out | openssl cms -inform DER -cmsout -print")
            .output()
            .unwrap(),
    );
    for attr in ["contentType", "messageDigest", "id-smime-aa-signingCertificateV2"] {
        assert!(cms.contains(attr), "{attr} missing:\n{cms}");
    }
    assert!(cms.contains("eContentType: id-smime-ct-TSTInfo"), "{cms}");
}

#[test]
fn independent_verifier_accepts_tokens() {
    let d = Daemon::start();
    let dir = d.dir.path();
    write_chain(&d);
    std::fs::write(dir.join("doc.txt"), b"independently verified\n").unwrap();
    for hash in ["sha256", "sha384", "sha512"] {
        let q = format!("{hash}.tsq");
        openssl(dir, &["ts", "-query", "-data", "doc.txt", &format!("-{hash}"), "-cert", "-out", &q]);
        let (_, _, body) = d.http_post("/tsa", TSQ, &std::fs::read(dir.join(&q)).unwrap());
        let r = format!("{hash}.tsr");
        std::fs::write(dir.join(&r), &body).unwrap();
        let nonce = reply_text(dir, &r).lines().find_map(|l| l.strip_prefix("Nonce: 0x").map(str::to_owned)).unwrap();
        let out = independent_verify(dir, &r, "doc.txt", &nonce);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK", "{hash}: {}", text(&out));
    }
}

/// `tests/py/verify_tsr.py` (rfc3161-client and asn1crypto) on a response in `dir`, against
/// root.pem, issuing.pem and tsa.pem there.
fn independent_verify(dir: &Path, response: &str, document: &str, nonce_hex: &str) -> std::process::Output {
    py_checker(dir, "verify_tsr.py", &[response, document, "root.pem", "issuing.pem", "tsa.pem", nonce_hex])
}

/// A DER TimeStampReq built by hand, for requests openssl refuses to make.
fn request(hash_oid: &str, imprint: &[u8], critical_extension: bool) -> Vec<u8> {
    let req = x509_tsp::TimeStampReq {
        version: x509_tsp::TspVersion::V1,
        message_imprint: x509_tsp::MessageImprint {
            hash_algorithm: spki::AlgorithmIdentifier { oid: hash_oid.parse().unwrap(), parameters: None },
            hashed_message: der::asn1::OctetString::new(imprint).unwrap(),
        },
        req_policy: None,
        nonce: None,
        cert_req: false,
        extensions: critical_extension.then(|| {
            vec![x509_cert::ext::Extension {
                extn_id: "1.2.3.4.5".parse().unwrap(),
                critical: true,
                extn_value: der::asn1::OctetString::new(vec![5, 0]).unwrap(),
            }]
        }),
    };
    req.to_der().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_rfc3161_statuses_and_record_nothing() {
    let d = Daemon::start();
    let dir = d.dir.path();
    std::fs::write(dir.join("doc.txt"), b"doc\n").unwrap();
    openssl(dir, &["ts", "-query", "-data", "doc.txt", "-sha1", "-out", "sha1.tsq"]);
    openssl(dir, &["ts", "-query", "-data", "doc.txt", "-md5", "-out", "md5.tsq"]);
    openssl(dir, &["ts", "-query", "-data", "doc.txt", "-sha256", "-tspolicy", "1.2.3.4", "-out", "policy.tsq"]);
    openssl(dir, &["ts", "-query", "-data", "doc.txt", "-sha256", "-out", "good.tsq"]);
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let good = read("good.tsq");
    let sha256 = "2.16.840.1.101.3.4.2.1";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("SHA-1", read("sha1.tsq"), "unrecognized or unsupported algorithm identifier"),
        ("MD5", read("md5.tsq"), "unrecognized or unsupported algorithm identifier"),
        (
            "unknown algorithm",
            request("1.2.3.4.5.6", &[0; 32], false),
            "unrecognized or unsupported algorithm identifier",
        ),
        ("imprint too short", request(sha256, &[0; 31], false), "the data submitted has the wrong format"),
        ("imprint too long", request(sha256, &[0; 48], false), "the data submitted has the wrong format"),
        ("unaccepted policy", read("policy.tsq"), "the requested TSA policy is not supported by the TSA"),
        ("critical extension", request(sha256, &[0; 32], true), "the requested extension is not supported by the TSA"),
        ("garbage", b"this is not DER".to_vec(), "transaction not permitted or supported"),
        ("empty body", Vec::new(), "transaction not permitted or supported"),
        ("truncated", good[..good.len() - 3].to_vec(), "transaction not permitted or supported"),
        ("trailing garbage", [&good[..], b"junk"].concat(), "transaction not permitted or supported"),
    ];
    for (what, body, failure) in cases {
        let (code, _, resp) = d.http_post("/tsa", TSQ, &body);
        assert_eq!(code, 200, "{what}: RFC 3161 clients expect the rejection in a 200 reply");
        let f = format!("{}.tsr", what.replace(' ', "-"));
        std::fs::write(dir.join(&f), &resp).unwrap();
        let reply = reply_text(dir, &f);
        assert!(reply.contains("Status: Rejected."), "{what}: {reply}");
        assert!(reply.contains(&format!("Failure info: {failure}")), "{what}: {reply}");
    }
    let (code, _, _) = d.http_post("/tsa", "text/plain", &good);
    assert_eq!(code, 415, "wrong media type");
    assert_eq!(d.http_get("/tsa").0, 405, "wrong method");
    let (code, _, _) = d.http_post("/tsa", TSQ, &vec![0x30; 100 * 1024]);
    assert_eq!(code, 413, "over the configured size limit");
    assert_eq!(recorded(&d).await, 0, "nothing recorded for refused requests");

    // gRPC: the same statuses, plus errors for calls that are malformed as calls.
    let mut client = TimeStampingClient::new(d.channel().await);
    let digest = |hash: &str, len: usize| pb::TimestampRequest {
        request: Some(pb::timestamp_request::Request::Digest(pb::DigestRequest {
            hash_algorithm: hash.into(),
            digest: vec![1; len],
            nonce: vec![0xff, 1],
            cert_req: true,
            policy: String::new(),
        })),
    };
    for (req, failure) in [(digest("sha1", 20), "badAlg"), (digest("sha256", 20), "badDataFormat")] {
        let r = client.timestamp(req).await.unwrap().into_inner();
        assert_eq!((r.status(), r.failure.as_str()), (pb::TimestampStatus::Rejected, failure), "{}", r.reason);
    }
    let err = client.timestamp(digest("whirlpool", 64)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client.timestamp(pb::TimestampRequest { request: None }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(recorded(&d).await, 0);

    // The daemon keeps serving, and records what it grants.
    let (code, _, resp) = d.http_post("/tsa", TSQ, &good);
    std::fs::write(dir.join("good.tsr"), &resp).unwrap();
    assert!(code == 200 && reply_text(dir, "good.tsr").contains("Status: Granted."));
    let r = client.timestamp(digest("sha384", 48)).await.unwrap().into_inner();
    assert_eq!(r.status(), pb::TimestampStatus::Granted);
    assert_eq!(r.serial.len(), 32);
    assert_eq!(recorded(&d).await, 2);
}

#[test]
fn trustctl_timestamps_a_file() {
    let d = Daemon::start();
    let dir = d.dir.path();
    write_chain(&d);
    std::fs::write(dir.join("doc.pdf"), vec![7u8; 3 * 1024 * 1024]).unwrap();
    for hash in ["sha256", "sha512"] {
        let out = d.trustctl(&[
            "timestamp",
            "--file",
            dir.join("doc.pdf").to_str().unwrap(),
            "--hash",
            hash,
            "--out",
            dir.join("t.tsr").to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let v = openssl(
            dir,
            &["ts", "-verify", "-data", "doc.pdf", "-in", "t.tsr", "-CAfile", "root.pem", "-untrusted", "issuing.pem"],
        );
        assert!(text(&v).contains("Verification: OK"));
    }
    let out = d.trustctl(&["timestamp", "--digest", "abcd"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("badDataFormat"), "{}", text(&out));
}

/// Whether the kernel reports the clock synchronised, read with ctypes: independent of trustd.
fn kernel_clock_synchronised() -> bool {
    let script = "import ctypes,ctypes.util\n\
        buf=ctypes.create_string_buffer(512)\n\
        state=ctypes.CDLL(ctypes.util.find_library('c')).adjtimex(buf)\n\
        status=int.from_bytes(buf.raw[40:44],'little',signed=True)\n\
        print('yes' if state!=5 and not status&0x40 else 'no')";
    let out = Command::new("python3").args(["-c", script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[test]
fn clock_check_refuses_when_the_kernel_clock_is_unsynchronised() {
    let d = Daemon::start_with(tempfile::tempdir().unwrap(), &["--clock-check", "kernel"]);
    let dir = d.dir.path();
    std::fs::write(dir.join("doc.txt"), b"doc\n").unwrap();
    openssl(dir, &["ts", "-query", "-data", "doc.txt", "-sha256", "-out", "q.tsq"]);
    let (_, _, resp) = d.http_post("/tsa", TSQ, &std::fs::read(dir.join("q.tsq")).unwrap());
    std::fs::write(dir.join("q.tsr"), &resp).unwrap();
    let reply = reply_text(dir, "q.tsr");
    let (ready, _, body) = d.http_get("/readyz");
    let body = String::from_utf8_lossy(&body).into_owned();
    if kernel_clock_synchronised() {
        assert!(reply.contains("Status: Granted."), "{reply}");
        assert_eq!(ready, 200, "{body}");
        assert!(body.contains("clock: synchronised"));
    } else {
        assert!(reply.contains("Failure info: the TSA's time source is not available"), "{reply}");
        assert_eq!(ready, 503, "{body}");
        assert!(body.contains("clock: unsynchronised"), "{body}");
    }
}

/// genTime with milliseconds (`precision = "1ms"`): openssl prints and verifies it, the
/// independent verifier accepts it, and trustd's own Verify reads it in a B-T signature.
#[test]
fn gen_time_carries_milliseconds_when_the_policy_says_so() {
    let dir = tempfile::tempdir().unwrap();
    trustd::policy::Policies::install_defaults(&dir.path().join("data/policies")).unwrap();
    let policy = dir.path().join("data/policies/tsa.toml");
    let shipped = std::fs::read_to_string(&policy).unwrap();
    let changed = shipped
        .replace("precision = \"1s\"", "precision = \"1ms\"")
        .replace("accuracy = \"1s\"", "accuracy = \"10ms\"");
    std::fs::write(&policy, changed).unwrap();
    let d = Daemon::start_in(dir);
    let dir = d.dir.path();
    write_chain(&d);
    std::fs::write(dir.join("doc.txt"), b"precise\n").unwrap();
    let mut fractions = 0;
    for i in 0..5 {
        let (q, r) = (format!("q{i}.tsq"), format!("r{i}.tsr"));
        openssl(dir, &["ts", "-query", "-data", "doc.txt", "-sha256", "-cert", "-out", &q]);
        let (_, _, body) = d.http_post("/tsa", TSQ, &std::fs::read(dir.join(&q)).unwrap());
        std::fs::write(dir.join(&r), &body).unwrap();
        let reply = reply_text(dir, &r);
        assert!(reply.contains("Accuracy: unspecified seconds, 0x0A millis"), "{reply}");
        let time = reply.lines().find_map(|l| l.strip_prefix("Time stamp: ")).unwrap().to_owned();
        // "Nov 24 07:01:02.345 2026 GMT"; a whole millisecond of .000 is written without fraction.
        fractions += usize::from(time.contains('.'));
        let v = openssl(
            dir,
            &["ts", "-verify", "-in", &r, "-data", "doc.txt", "-CAfile", "root.pem", "-untrusted", "issuing.pem"],
        );
        assert!(text(&v).contains("Verification: OK"), "{}", text(&v));
        let nonce = reply.lines().find_map(|l| l.strip_prefix("Nonce: 0x").map(str::to_owned)).unwrap();
        let out = independent_verify(dir, &r, "doc.txt", &nonce);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK", "{}", text(&out));
    }
    assert!(fractions >= 4, "genTime carries milliseconds");

    let out = d.trustctl(&["sign", "--file", dir.join("doc.txt").to_str().unwrap(), "--detached", "--timestamp"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(dir.join("bt.p7s"), &out.stdout).unwrap();
    let v = d.trustctl(&[
        "verify",
        "--signature",
        dir.join("bt.p7s").to_str().unwrap(),
        "--file",
        dir.join("doc.txt").to_str().unwrap(),
    ]);
    assert!(v.status.success() && text(&v).contains("TOTAL_PASSED"), "{}", text(&v));
}

/// A TSA policy marked qualified: every token's TSTInfo carries the qcStatements extension
/// with esi4-qtstStatement-1 (ETSI EN 319 422 §9.1), as asn1crypto reads it, and openssl and
/// rfc3161-client accept the token; the shipped policy carries none.
#[test]
fn a_qualified_tsa_states_it_in_every_token() {
    let extensions = |dir: &Path, response: &str| {
        let out = py_checker(dir, "tst_extensions.py", &[response]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    trustd::policy::Policies::install_defaults(&dir.path().join("data/policies")).unwrap();
    let policy = dir.path().join("data/policies/tsa.toml");
    let shipped = std::fs::read_to_string(&policy).unwrap();
    assert!(shipped.contains("qualified = false"), "best practices by default");
    std::fs::write(&policy, shipped.replace("qualified = false", "qualified = true")).unwrap();
    let d = Daemon::start_in(dir);
    let dir = d.dir.path();
    write_chain(&d);
    std::fs::write(dir.join("doc.txt"), b"qualified\n").unwrap();
    for cert in [true, false] {
        let mut args = vec!["ts", "-query", "-data", "doc.txt", "-sha256", "-out", "q.tsq"];
        if cert {
            args.push("-cert");
        }
        openssl(dir, &args);
        let (_, _, body) = d.http_post("/tsa", TSQ, &std::fs::read(dir.join("q.tsq")).unwrap());
        std::fs::write(dir.join("r.tsr"), &body).unwrap();
        assert_eq!(extensions(dir, "r.tsr"), "1.3.6.1.5.5.7.1.3 critical=False statements=0.4.0.19422.1.1");
        let untrusted = if cert { "issuing.pem" } else { "tsa-chain.pem" };
        let v = openssl(
            dir,
            &["ts", "-verify", "-in", "r.tsr", "-data", "doc.txt", "-CAfile", "root.pem", "-untrusted", untrusted],
        );
        assert!(text(&v).contains("Verification: OK"), "{}", text(&v));
        let nonce =
            reply_text(dir, "r.tsr").lines().find_map(|l| l.strip_prefix("Nonce: 0x").map(str::to_owned)).unwrap();
        let out = independent_verify(dir, "r.tsr", "doc.txt", &nonce);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK", "{}", text(&out));
    }
}
