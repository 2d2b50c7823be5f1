//! The CSC API on a running `trustd dev` (HTTPS, client certificates), driven by pyHanko's own
//! CSCSigner: a PAdES B-T PDF that pyHanko validates against trustd's root, raw signatures that
//! openssl verifies, each signature in the log, and every bad request answered in the API's
//! error format with nothing signed.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

#[test]
fn a_portal_signs_pdfs_through_the_csc_api_and_bad_requests_sign_nothing() {
    let d = Daemon::start();
    let dir = d.dir.path().to_path_buf();
    let chain = split_pem(&trustctl_ok(&d, &["ca", "chain"]));
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();
    let (cert, key) = credential(&d, "portal");
    let (other_cert, other_key) = credential(&d, "auditor");
    let https = d.https.clone().expect("the dev daemon's HTTPS listener");
    let (_, _, vkey) = d.http_get("/log/key");
    let vkey = String::from_utf8(vkey).unwrap().trim().to_owned();
    let before = trustctl_ok(&d, &["log", "verify", "--key", &vkey]);

    let csc = |other: (&Path, &Path), credential: &str, probe: bool| {
        let base = format!("{https}/csc/v1/");
        let tsa = format!("http://{}/tsa", d.http);
        let mut args = vec![
            base.as_str(),
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "root.pem",
            tsa.as_str(),
            "signed.pdf",
            other.0.to_str().unwrap(),
            other.1.to_str().unwrap(),
            credential,
        ];
        if probe {
            args.push("probe");
        }
        let out = py_checker(&dir, "csc.py", &args);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let out = csc((&other_cert, &other_key), "default", false);
    let r = out;
    let ok = |v: &Value| v[0] == 200;
    let refused = |v: &Value, status: u16, error: &str, says: &str| {
        assert_eq!(v[0], status, "{v}");
        assert_eq!(v[1]["error"], error, "{v}");
        assert!(v[1]["error_description"].as_str().unwrap().contains(says), "{v}");
    };

    assert!(ok(&r["info"]) && r["info"][1]["specs"] == "1.0.4.0", "{}", r["info"]);
    assert_eq!(r["list"][1]["credentialIDs"], serde_json::json!(["default"]), "the portal's credentials");
    let c = &r["credential"];
    assert_eq!(c["signer"], "Common Name: trustd Document Signer, Organization: trustd", "{c}");
    assert_eq!(c["chain"], 2, "its CA and the root");
    assert_eq!(c["mechanisms"], serde_json::json!(["sha256_ecdsa"]));
    assert_eq!(c["hash_pinning"], true, "SCAL 2");
    let pdf = &r["pdf"];
    for field in ["intact", "valid", "trusted", "timestamp_valid", "timestamp_trusted"] {
        assert_eq!(pdf[field], true, "{field}: {pdf}");
    }
    assert_eq!(pdf["subfilter"], "/ETSI.CAdES.detached");
    assert_eq!(pdf["authorizations"], 1);
    // The same signer without a time-stamper: B-B. pyHanko's AdES validation (EN 319 102-1,
    // revocation asked of trustd's OCSP and CRLs) passes both.
    let bb = &r["pdf_b_b"];
    assert_eq!(bb, &serde_json::json!({"intact": true, "valid": true, "trusted": true, "timestamped": false}));
    assert_eq!(r["ades_b_t"][0], "PASSED", "{}", r["ades_b_t"]);
    assert_eq!(r["ades_b_b"][0], "PASSED", "{}", r["ades_b_b"]);

    // Two raw signatures of one call, each verified by openssl over the data hashed.
    let bad = &r["bad"];
    assert!(ok(&bad["first_use"]), "{}", bad["first_use"]);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    std::fs::write(dir.join("signer.der"), b64.decode(c["signer_der"].as_str().unwrap()).unwrap()).unwrap();
    openssl(&dir, &["x509", "-inform", "DER", "-in", "signer.der", "-noout", "-pubkey", "-out", "signer.pub"]);
    for (i, data) in [b"one", b"two"].iter().enumerate() {
        use base64::Engine;
        let sig =
            base64::engine::general_purpose::STANDARD.decode(bad["first_use"][1]["signatures"][i].as_str().unwrap());
        std::fs::write(dir.join("tbs.bin"), data).unwrap();
        std::fs::write(dir.join("tbs.sig"), sig.unwrap()).unwrap();
        let v = openssl(&dir, &["dgst", "-sha256", "-verify", "signer.pub", "-signature", "tbs.sig", "tbs.bin"]);
        assert_eq!(text(&v).trim(), "Verified OK");
    }

    // Every bad request: the API's error object, the right status, nothing signed.
    let sad = "Invalid parameter SAD";
    refused(&bad["reused_sad"], 400, "invalid_request", sad);
    refused(&bad["hash_not_authorized"], 400, "invalid_request", "does not authorize the hash");
    refused(&bad["after_refusal"], 400, "invalid_request", sad);
    refused(&bad["forged_sad"], 400, "invalid_request", sad);
    refused(&bad["wrong_sign_algo"], 400, "invalid_request", "does not sign with 1.2.840.113549.1.1.11");
    refused(&bad["wrong_hash_algo"], 400, "invalid_request", "signs sha256 hashes, not 2.16.840.1.101.3.4.2.3");
    refused(&bad["short_hash"], 400, "invalid_request", "is 32 bytes, got 31");
    refused(&bad["not_base64"], 400, "invalid_request", "Invalid Base64 hash");
    refused(&bad["too_many_hashes"], 400, "invalid_request", "give 1 to 32 hashes, not 33");
    refused(&bad["count_mismatch"], 400, "invalid_request", "numSignatures is 2, but 1 hashes");
    refused(&bad["no_hashes_at_scal2"], 400, "invalid_request", "SCAL 2");
    refused(&bad["unknown_credential"], 400, "invalid_request", "Invalid parameter credentialID");
    refused(&bad["not_a_credential_of_the_client"], 400, "invalid_request", "Invalid parameter credentialID");
    refused(&bad["malformed_json"], 400, "invalid_request", "malformed request");
    refused(&bad["wrong_type"], 400, "invalid_request", "malformed request");
    refused(&bad["negative_count"], 400, "invalid_request", "malformed request");
    refused(&bad["unknown_method"], 404, "invalid_request", "no method signatures/signDoc");
    refused(&bad["timestamp_wrong_length"], 400, "invalid_request", "is 32 bytes, got 20");
    refused(&bad["timestamp_md5"], 400, "invalid_request", "is not a hash the TSA takes");
    refused(&bad["timestamp_bad_nonce"], 400, "invalid_request", "Invalid parameter nonce");

    // signatures/timestamp: an RFC 3161 token over the hash with the nonce asked, which openssl
    // verifies against the root alone (it carries the TSA's certificate and its CA).
    assert!(ok(&r["timestamp"]), "{}", r["timestamp"]);
    let token = b64.decode(r["timestamp"][1]["timestamp"].as_str().unwrap()).unwrap();
    std::fs::write(dir.join("csc.tst"), token).unwrap();
    std::fs::write(dir.join("one.txt"), b"one").unwrap();
    let args = ["ts", "-verify", "-token_in", "-in", "csc.tst", "-data", "one.txt", "-CAfile", "root.pem"];
    assert!(text(&openssl(&dir, &args)).contains("Verification: OK"));
    let printed = text(&openssl(&dir, &["ts", "-reply", "-token_in", "-in", "csc.tst", "-token_out", "-text"]));
    assert!(printed.contains("Nonce: 0x0A1B2C3D4E5F"), "{printed}");
    assert!(ok(&bad["still_good"]), "{}", bad["still_good"]);
    refused(&r["anonymous_list"], 401, "invalid_token", "neither a client certificate nor a bearer token");
    assert!(ok(&r["anonymous_info"]), "info is for anyone");
    refused(&r["other_client"], 403, "access_denied", "auditor");

    // Over plain HTTP the API is refused, pointing at HTTPS.
    let (code, _, body) = d.http_post("/csc/v1/credentials/list", "application/json", b"{}");
    assert_eq!(code, 403);
    assert!(String::from_utf8_lossy(&body).contains("HTTPS"));

    // The PDFs' signatures, the two raw ones and the last good one are in the log, as signatures
    // of the portal under the default policy; nothing refused is.
    let count = |log: &str| {
        log.lines()
            .find(|l| l.contains("entries by type"))
            .and_then(|l| l.split("signature_made ").nth(1))
            .and_then(|n| n.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let start = std::time::Instant::now();
    loop {
        let after = trustctl_ok(&d, &["log", "verify", "--key", &vkey]);
        if count(&after) == count(&before) + 5 {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "{before}\n{after}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // A credential of the portal's own: a key made in the HSM for it alone, certified with the
    // signer's name. The portal lists it beside the policy and signs a PDF with it; the operator,
    // who may sign under every policy, cannot use it; disabled, it signs nothing more.
    let create = ["credential", "create", "--client", "portal", "--policy", "default", "--country", "DK"];
    let id = trustctl_ok(&d, &[&create[..], &["--name", "Jens Hansen"]].concat());
    let id = id.trim().to_owned();
    assert!(id.starts_with("cred-"), "{id}");
    let listed = trustctl_ok(&d, &["credential", "list", "--client", "portal"]);
    assert!(listed.contains(&format!("{id}\tportal\tdefault\tpkcs11:object=trustd-{id}\tenabled")), "{listed}");
    let operator = (d.credentials().join("operator.crt"), d.credentials().join("operator.key"));
    let r = csc((&operator.0, &operator.1), &id, false);
    assert_eq!(r["list"][1]["credentialIDs"], serde_json::json!(["default", id]));
    assert_eq!(r["credential"]["signer"], "Common Name: Jens Hansen, Country: DK", "{}", r["credential"]);
    for field in ["intact", "valid", "trusted", "timestamp_valid", "timestamp_trusted"] {
        assert_eq!(r["pdf"][field], true, "{field}: {}", r["pdf"]);
    }
    assert_eq!(r["ades_b_t"][0], "PASSED", "{}", r["ades_b_t"]);
    refused(&r["other_authorize"], 400, "invalid_request", "Invalid parameter credentialID");
    let disabled = trustctl_ok(&d, &["credential", "disable", "--id", &id]);
    assert!(disabled.ends_with("disabled\n"), "{disabled}");
    let probe = csc((&operator.0, &operator.1), &id, true);
    assert_eq!(probe["list"][1]["credentialIDs"], serde_json::json!(["default"]));
    refused(&probe["authorize"], 400, "invalid_request", "Invalid parameter credentialID");
    // What the operator gets wrong is refused, naming it.
    for (args, says) in [
        (&["--client", "nobody", "--policy", "default", "--name", "x"][..], "no client 'nobody'"),
        (&["--client", "portal", "--policy", "nope", "--name", "x"][..], "no signing policy 'nope'"),
        (&["--client", "portal", "--policy", "default", "--name", ""][..], "common name"),
        (&["--client", "portal", "--policy", "default", "--name", "x"][..], "requires subject attribute C"),
    ] {
        let out = d.trustctl(&[&["credential", "create"][..], args].concat());
        assert!(!out.status.success() && text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    // The key made for the credential whose subject the profile refused is gone from the token.
    let keys = token_private_key_labels(&d);
    let credential_keys: Vec<_> = keys.iter().filter(|l| l.starts_with("trustd-cred-")).collect();
    assert_eq!(credential_keys, [&format!("trustd-{id}")], "{keys:?}");
    let out = d.trustctl(&["credential", "disable", "--id", "cred-0000"]);
    assert!(!out.status.success() && text(&out).contains("no credential 'cred-0000'"), "{}", text(&out));

    // A credential whose record the store refuses (here a trigger, as a full disk would): the
    // operator is told of an internal failure, its key leaves the token, and its certificate,
    // issued and logged already, is revoked.
    let db = format!("sqlite://{}", d.data_dir().join("trustd.db").display());
    let fail_inserts = "CREATE TRIGGER refuse_credentials BEFORE INSERT ON csc_credentials \
                        BEGIN SELECT RAISE(ABORT, 'disk full'); END";
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = sqlx::SqlitePool::connect(&db).await.unwrap();
        sqlx::query(fail_inserts).execute(&db).await.unwrap();
    });
    let out = d.trustctl(&[&create[..], &["--name", "Unrecorded Signer"]].concat());
    assert!(!out.status.success() && text(&out).contains("Internal"), "{}", text(&out));
    let keys = token_private_key_labels(&d);
    assert_eq!(keys.iter().filter(|l| l.starts_with("trustd-cred-")).count(), 1, "{keys:?}");
    let listed = trustctl_ok(&d, &["cert", "list", "--subject", "Unrecorded Signer"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("revoked"), "{listed}");
}

/// The CSC API v2 with OAuth 2.0 client credentials: the portal's client secret (made by
/// trustctl, its hash in the access policy) gets an access token from `oauth2/token` through
/// requests-oauthlib, with which the portal lists, authorizes and signs over `/csc/v2/`
/// (`cryptography` verifies the signatures); the token endpoint refuses each mistake with RFC
/// 6749's error, and the token dies as soon as its secret leaves the policy.
#[test]
fn a_portal_with_a_client_secret_signs_over_csc_v2_with_oauth2_tokens() {
    let d = Daemon::start();
    let dir = d.dir.path().to_path_buf();
    let chain = split_pem(&trustctl_ok(&d, &["ca", "chain"]));
    std::fs::write(dir.join("root.pem"), &chain[1]).unwrap();
    let https = d.https.clone().expect("the dev daemon's HTTPS listener");

    let made = trustctl_ok(&d, &["client", "secret"]);
    let secret = made.lines().next().and_then(|l| l.rsplit(' ').next()).unwrap().to_owned();
    let hash = made.split('"').nth(1).unwrap().to_owned();
    let file = d.data_dir().join("policies/access.toml");
    let shipped = std::fs::read_to_string(&file).unwrap();
    let portal = "[clients.portal]\nroles = [\"signer\", \"timestamper\"]";
    let with_secret = shipped.replace(portal, &format!("{portal}\nclient_secrets_sha256 = [\"{hash}\"]"));
    assert_ne!(with_secret, shipped);
    let replace = |text: &str| {
        std::fs::write(file.with_extension("new"), text).unwrap();
        std::fs::rename(file.with_extension("new"), &file).unwrap();
    };
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "root.pem"])
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let until = |what: &str, f: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !f() {
            assert!(start.elapsed() < std::time::Duration::from_secs(20), "{what}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    replace(&with_secret);
    let token_url = format!("{https}/csc/v2/oauth2/token");
    let basic = format!("portal:{secret}");
    until("the secret is taken once the policy is reloaded", &|| {
        curl(&["-u", &basic, "-d", "grant_type=client_credentials", &token_url]) == "200"
    });

    let base = format!("{https}/csc/v2/");
    let out = py_checker(&dir, "csc_v2.py", &[&base, "root.pem", "portal", &secret]);
    assert!(out.status.success(), "{}", text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();

    let info = &r["info"];
    assert_eq!(info["specs"], "2.0.0.2", "{info}");
    assert_eq!(info["oauth2"], base.as_str(), "{info}");
    assert!(info["methods"].as_array().unwrap().contains(&"oauth2/token".into()), "{info}");
    assert!(info["signAlgorithms"]["algos"].as_array().unwrap().contains(&"1.2.840.10045.4.3.2".into()), "{info}");
    // (oauthlib hands the scope over as a list.)
    assert_eq!(r["token"], serde_json::json!({"token_type": "Bearer", "expires_in": 3600, "scope": ["service"]}));
    let listed = &r["list"];
    assert_eq!(listed[0], 200, "{listed}");
    assert_eq!(listed[1]["credentialIDs"], serde_json::json!(["default"]));
    let credential = &listed[1]["credentialInfos"][0];
    assert_eq!(credential["credentialID"], "default");
    assert_eq!(credential["cert"]["certificates"].as_array().unwrap().len(), 3, "signer, CA, root: {credential}");
    assert!(credential["cert"]["subjectDN"].as_str().unwrap().contains("trustd Document Signer"), "{credential}");
    assert_eq!(credential["auth"]["mode"], "implicit");
    assert_eq!(r["credential_info"][1]["SCAL"], "2");
    assert!(r["credential_info"][1].get("authMode").is_none(), "v1's name is not v2's");
    assert_eq!(r["authorize"][1]["expiresIn"], 300);
    assert_eq!(r["verified"], 2, "both signatures verify with the credential's certificate");
    assert_eq!(r["body_secret"][0], 200, "the secret in the body: {}", r["body_secret"]);
    assert_eq!(r["body_secret"][2]["Cache-Control"], "no-store", "{}", r["body_secret"]);

    let bad = &r["bad"];
    let refused = |name: &str, status: u16, error: &str, says: &str| {
        let v = &bad[name];
        assert_eq!(v[0], status, "{name}: {v}");
        assert_eq!(v[1]["error"], error, "{name}: {v}");
        assert!(v[1]["error_description"].as_str().unwrap().contains(says), "{name}: {v}");
    };
    refused("wrong_secret", 401, "invalid_client", "not a client of the access policy");
    assert_eq!(bad["wrong_secret"][2]["WWW-Authenticate"], "Basic realm=\"trustd\"");
    refused("another_clients_name", 401, "invalid_client", "not a client of the access policy");
    refused("no_credentials", 401, "invalid_client", "client_id and client_secret");
    refused("password_grant", 400, "unsupported_grant_type", "only client_credentials");
    refused("no_grant_type", 400, "invalid_request", "missing grant_type");
    refused("credential_scope", 400, "invalid_scope", "scope 'service'");
    refused("json_body", 400, "invalid_request", "application/x-www-form-urlencoded");
    refused("grant_type_twice", 400, "invalid_request", "more than once");
    refused("basic_and_body", 400, "invalid_request", "not both");
    refused("bearer_at_token_endpoint", 401, "invalid_client", "Basic");
    refused("forged_token", 401, "invalid_token", "nor an unexpired access token");
    refused("secret_as_bearer", 401, "invalid_token", "nor an unexpired access token");
    refused("asynchronous", 400, "invalid_request", "only synchronous");
    refused("no_sad", 400, "invalid_request", "Missing string parameter SAD");
    refused("auth_data", 400, "invalid_request", "no PIN or OTP");
    refused("sha384_for_a_sha256_key", 400, "invalid_request", "signs sha256 hashes, not 2.16.840.1.101.3.4.2.2");
    refused("unknown_version", 404, "invalid_request", "/csc/v1/ and /csc/v2/");
    assert_eq!(bad["sad_still_good"][0], 200, "a refusal before the SAD is taken leaves it: {}", bad["sad_still_good"]);

    // The token names the portal on every HTTPS route, until its secret leaves the policy.
    let token = r["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Authorization: Bearer {token}");
    let list = format!("{base}credentials/list");
    let listing = || curl(&["-H", &bearer, "-H", "Content-Type: application/json", "-d", "{}", &list]);
    assert_eq!(listing(), "200");
    replace(&shipped);
    until("the token is refused once its secret is gone", &|| listing() == "401");
    assert_eq!(curl(&["-u", &basic, "-d", "grant_type=client_credentials", &token_url]), "401");

    let log = d.log();
    assert!(log.contains("OAuth 2.0 access token granted"), "grants are on record");
    assert!(!log.contains(&secret) && !log.contains(&token), "no secret or token in the log");
}
