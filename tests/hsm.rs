//! The HSM layer against a real SoftHSM2 token, in-process: key generation and protection,
//! lookup by RFC 7512 URI, and `HsmSigner` driving x509-cert's own `CertificateBuilder` for every
//! scheme, with the results checked by openssl. One test function: the PKCS#11 module may be
//! initialised only once per process.

mod common;

use common::openssl;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use trustd::hsm::{Hsm, HsmConfig, HsmError, HsmSignature, HsmSigner, KeyAlgorithm, KeyRef, Pin, SignatureScheme};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

#[test]
fn softhsm_keys_signing_and_pool() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tokens")).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(&conf, format!("directories.tokendir = {}/tokens\nlog.level = ERROR\n", dir.path().display()))
        .unwrap();
    // Before the module loads; this test binary runs this one test only.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let module = std::path::PathBuf::from(trustd::daemon::SOFTHSM_MODULE);
    Hsm::init_token(&module, "hsm-test", &Pin::new("so-secret".into()), &Pin::new("user-pin\n".into())).unwrap();
    let cfg = HsmConfig { module, token_label: "hsm-test".into(), max_sessions: 2, session_key_copies: true };
    assert!(matches!(Hsm::open(&cfg, Pin::new("wrong".into())), Err(HsmError::Login(_))));
    // Opening a token that works logs no error: cryptoki, through the `log` bridge the daemon's
    // subscriber installs, reports each mechanism it cannot name as one.
    let logs = Captured::install();
    let hsm = Hsm::open(&cfg, Pin::new("user-pin".into())).unwrap();
    assert!(hsm.is_ready());
    let logged = logs.text();
    assert!(logged.contains("HSM token opened") && !logged.contains("ERROR"), "{logged}");

    for (label, alg) in [
        ("ec", KeyAlgorithm::EcP256),
        ("ec384", KeyAlgorithm::EcP384),
        ("rsa", KeyAlgorithm::Rsa(2048)),
        ("ed", KeyAlgorithm::Ed25519),
    ] {
        hsm.generate_key(&KeyRef::label(label), alg).unwrap();
        let p = hsm.key_protection(&KeyRef::label(label)).unwrap();
        assert!(p.sensitive && !p.extractable && p.always_sensitive && p.never_extractable, "{label}: {p:?}");
    }
    // What the token cannot do is refused before the module is asked, naming the mechanism
    // and its range as the token reports them (C_GetMechanismInfo).
    let e = hsm.generate_key(&KeyRef::label("huge"), KeyAlgorithm::Rsa(1 << 20)).unwrap_err();
    assert!(matches!(e, HsmError::Unsupported { .. }), "{e}");
    let e = e.to_string();
    assert!(e.contains("1048576-bit RSA keys with CKM_RSA_PKCS_KEY_PAIR_GEN") && e.contains("huge"), "{e}");
    assert!(!hsm.has_private_key(&KeyRef::label("huge")).unwrap());
    let key = |uri: &str| KeyRef::parse(uri).unwrap();
    let gen = |uri: &str| hsm.generate_key(&key(uri), KeyAlgorithm::EcP256);
    assert!(matches!(gen("ec"), Err(HsmError::KeyExists(_))), "never overwrites");
    gen("pkcs11:object=with-id;id=%0A%0B").unwrap();
    assert!(matches!(gen("pkcs11:object=other;id=%0a%0b"), Err(HsmError::KeyExists(_))), "CKA_ID clash");
    assert!(matches!(gen("pkcs11:id=%01"), Err(HsmError::NeedsLabel(_))));
    assert_eq!(hsm.public_key(&key("pkcs11:id=%0A%0B")).unwrap(), hsm.public_key(&key("with-id")).unwrap());
    assert!(hsm.has_private_key(&KeyRef::parse("pkcs11:token=hsm-test;object=ec").unwrap()).unwrap());
    assert!(!hsm.has_private_key(&KeyRef::parse("pkcs11:object=nope").unwrap()).unwrap());
    assert!(matches!(
        HsmSigner::new(&hsm, KeyRef::parse("pkcs11:token=other;object=ec").unwrap(), None),
        Err(HsmError::KeyNotFound(_))
    ));
    assert!(matches!(
        HsmSigner::new(&hsm, KeyRef::label("ec"), Some(SignatureScheme::RsaPkcs1Sha256)),
        Err(HsmError::SchemeMismatch { .. })
    ));

    // Every scheme through a RustCrypto builder: a self-signed certificate that openssl verifies.
    for (label, scheme, openssl_name) in [
        ("ec", "ecdsa-sha256", "ecdsa-with-SHA256"),
        ("ec384", "ecdsa-sha384", "ecdsa-with-SHA384"),
        ("rsa", "rsa-pkcs1-sha256", "sha256WithRSAEncryption"),
        ("rsa", "rsa-pkcs1-sha512", "sha512WithRSAEncryption"),
        ("rsa", "rsa-pss-sha256", "rsassaPss"),
        ("rsa", "rsa-pss-sha384", "rsassaPss"),
    ] {
        let signer =
            HsmSigner::new(&hsm, KeyRef::label(label), Some(SignatureScheme::from_str(scheme).unwrap())).unwrap();
        let builder = CertificateBuilder::new(
            Profile::Root,
            SerialNumber::from(42u32),
            Validity::from_now(Duration::from_secs(3600)).unwrap(),
            Name::from_str(&format!("CN={label} {scheme}")).unwrap(),
            signer.public_key_info().clone(),
            &signer,
        )
        .unwrap();
        let cert = builder.build::<HsmSignature>().unwrap();
        let pem = der::EncodePem::to_pem(&cert, der::pem::LineEnding::LF).unwrap();
        let file = format!("{scheme}.pem");
        std::fs::write(dir.path().join(&file), pem).unwrap();
        let v = openssl(dir.path(), &["verify", "-CAfile", &file, &file]);
        assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), format!("{file}: OK"));
        let text = String::from_utf8_lossy(&openssl(dir.path(), &["x509", "-in", &file, "-noout", "-text"]).stdout)
            .into_owned();
        assert!(text.contains(&format!("Signature Algorithm: {openssl_name}")), "{scheme}:\n{text}");
    }

    // A digest the caller computed (a CSC client's signHash) signs to the signature of its
    // message, as openssl checks it: CKM_ECDSA, CKM_RSA_PKCS over RFC 8017's DigestInfo,
    // CKM_RSA_PKCS_PSS. A digest of the wrong length, and an Ed25519 key, are refused.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let msg = b"the signed attributes a portal hashed";
    std::fs::write(dir.path().join("tbs"), msg).unwrap();
    for (label, scheme, dgst, pss) in [
        ("ec", "ecdsa-sha256", "-sha256", false),
        ("ec384", "ecdsa-sha384", "-sha384", false),
        ("rsa", "rsa-pkcs1-sha256", "-sha256", false),
        ("rsa", "rsa-pkcs1-sha512", "-sha512", false),
        ("rsa", "rsa-pss-sha256", "-sha256", true),
        ("rsa", "rsa-pss-sha384", "-sha384", true),
    ] {
        let scheme = SignatureScheme::from_str(scheme).unwrap();
        let signer = HsmSigner::new(&hsm, KeyRef::label(label), Some(scheme)).unwrap();
        let digest = scheme.hash().digest(msg);
        let sig = rt.block_on(trustd::keys::SigningKey::sign_digest(&signer, &digest)).unwrap();
        std::fs::write(dir.path().join("tbs.sig"), sig.as_bytes()).unwrap();
        let pem = der::EncodePem::to_pem(signer.public_key_info(), der::pem::LineEnding::LF).unwrap();
        std::fs::write(dir.path().join("pub.pem"), pem).unwrap();
        let mut args = vec!["dgst", dgst, "-verify", "pub.pem", "-signature", "tbs.sig"];
        if pss {
            args.extend(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]);
        }
        args.push("tbs");
        let v = openssl(dir.path(), &args);
        assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "Verified OK", "{scheme}");
        let short = rt.block_on(trustd::keys::SigningKey::sign_digest(&signer, &digest[1..])).unwrap_err();
        assert!(short.to_string().contains("over a digest of"), "{scheme}: {short}");
    }
    let ed = HsmSigner::new(&hsm, KeyRef::label("ed"), None).unwrap();
    assert!(rt.block_on(trustd::keys::SigningKey::sign_digest(&ed, &[0; 32])).is_err(), "pure EdDSA signs messages");

    // Ed25519 (the log key's algorithm) has no certificate builder use: check a raw signature.
    let ed = HsmSigner::new(&hsm, KeyRef::label("ed"), None).unwrap();
    assert_eq!(ed.scheme(), SignatureScheme::Ed25519);
    let spki_pem = der::EncodePem::to_pem(ed.public_key_info(), der::pem::LineEnding::LF).unwrap();
    std::fs::write(dir.path().join("ed.pub.pem"), spki_pem).unwrap();
    std::fs::write(dir.path().join("msg"), b"a checkpoint").unwrap();
    std::fs::write(dir.path().join("msg.sig"), ed.sign(b"a checkpoint").unwrap().as_bytes()).unwrap();
    let v = openssl(
        dir.path(),
        &["pkeyutl", "-verify", "-pubin", "-inkey", "ed.pub.pem", "-rawin", "-in", "msg", "-sigfile", "msg.sig"],
    );
    assert!(String::from_utf8_lossy(&v.stdout).contains("Signature Verified Successfully"));
    assert!(matches!(
        HsmSigner::new(&hsm, KeyRef::label("ed"), Some(SignatureScheme::RsaPkcs1Sha256)),
        Err(HsmError::SchemeMismatch { .. })
    ));

    // Many threads, two sessions: the pool hands sessions out one thread at a time.
    let signer = Arc::new(HsmSigner::new(&hsm, KeyRef::label("ec"), None).unwrap());
    let vk =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(signer.public_key_info().subject_public_key.raw_bytes()).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let signer = signer.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        let msg = format!("message {t}/{i}");
                        (msg.clone(), signer.sign(msg.as_bytes()).unwrap())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for (msg, sig) in t.join().unwrap() {
            let sig = p256::ecdsa::Signature::from_der(sig.as_bytes()).unwrap();
            signature::Verifier::verify(&vk, msg.as_bytes(), &sig).unwrap();
        }
    }
    hsm.probe().unwrap();

    // `session_key_copies`: the sessions sign with private session copies of the key, as
    // sensitive and non-extractable as it is, which a lookup of the key never finds. A key
    // stripped of CKA_SIGN, or destroyed, in the token stops signing within a second.
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    hsm.generate_key(&KeyRef::label("doomed"), KeyAlgorithm::EcP256).unwrap();
    let doomed = HsmSigner::new(&hsm, KeyRef::label("doomed"), None).unwrap();
    doomed.sign(b"with a copy").unwrap();
    let find = |token: bool| {
        let t =
            [Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(b"doomed".to_vec()), Attribute::Token(token)];
        hsm.with_session(|s| s.find_objects(&t)).unwrap()
    };
    let copies = find(false);
    assert!(!copies.is_empty(), "signed with a session copy");
    for copy in copies {
        let attrs = hsm
            .with_session(|s| s.get_attributes(copy, &[AttributeType::Sensitive, AttributeType::Extractable]))
            .unwrap();
        assert!(
            attrs.contains(&Attribute::Sensitive(true)) && attrs.contains(&Attribute::Extractable(false)),
            "{attrs:?}"
        );
    }
    assert!(hsm.has_private_key(&KeyRef::label("doomed")).unwrap(), "the token object alone is found");
    let [token_key] = find(true)[..] else { panic!("one token object") };
    hsm.with_session(|s| s.update_attributes(token_key, &[Attribute::Sign(false)])).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let e = doomed.sign(b"after CKA_SIGN was cleared").unwrap_err();
    use cryptoki::error::{Error as CkError, RvError};
    assert!(matches!(e, HsmError::Pkcs11(CkError::Pkcs11(RvError::KeyFunctionNotPermitted, _))), "{e}");
    hsm.with_session(|s| s.update_attributes(token_key, &[Attribute::Sign(true)])).unwrap();
    doomed.sign(b"allowed again").unwrap();
    assert_eq!(hsm.destroy_key(&KeyRef::label("doomed")).unwrap(), 2, "the private and the public key");
    assert!(find(true).is_empty() && !hsm.has_private_key(&KeyRef::label("doomed")).unwrap());
    assert_eq!(hsm.destroy_key(&KeyRef::label("doomed")).unwrap(), 0, "nothing left to destroy");
    std::thread::sleep(Duration::from_millis(1100));
    let e = doomed.sign(b"after the key was destroyed").unwrap_err();
    assert!(matches!(e, HsmError::KeyNotFound(_)), "{e}");

    // A job that panics while it holds a session (a bug, a module failing mid-call) closes the
    // session and frees its slot: after more panics than sessions the pool still serves (it
    // would otherwise wait SESSION_WAIT and answer Busy).
    for _ in 0..3 {
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            hsm.with_session(|_| -> cryptoki::error::Result<()> { panic!("a job's bug") })
        }));
        assert!(panicked.is_err());
    }
    hsm.probe().unwrap();
    signer.sign(b"after panics").unwrap();

    // The device forgets the login (as an HSM does when it restarts): the pool notices, reopens
    // sessions, logs in again, and the next signature works without a restart.
    hsm.with_session(|s| s.logout()).unwrap();
    let sig = signer.sign(b"after logout").unwrap();
    let sig = p256::ecdsa::Signature::from_der(sig.as_bytes()).unwrap();
    signature::Verifier::verify(&vk, b"after logout", &sig).unwrap();
    assert!(hsm.is_ready());

    // The module itself stops (C_Finalize behind the pool's back, as when a device driver
    // resets) while a thread is inside it: sessions are gone and none can be opened. The layer
    // re-initialises the module, but only once that thread has left it (C_Finalize under a
    // thread in the library is undefined), finds the token again, and both sign.
    let before = hsm.reinitializations();
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let first_call = std::sync::atomic::AtomicBool::new(true);
    let inside = std::thread::scope(|scope| {
        let busy = scope.spawn(|| {
            hsm.with_session(|s| {
                if first_call.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    entered_tx.send(()).unwrap();
                    go_rx.lock().unwrap().recv().unwrap();
                }
                s.get_session_info().map(|_| ())
            })
        });
        entered.recv().unwrap();
        cryptoki::context::Pkcs11::new(trustd::daemon::SOFTHSM_MODULE).unwrap().finalize().unwrap();
        let signing = scope.spawn(|| signer.sign(b"after the module reset"));
        // Time for the signer to fail and reach the re-initialisation, which must wait.
        std::thread::sleep(Duration::from_millis(300));
        let seen = hsm.reinitializations();
        go.send(()).unwrap();
        let sig = signing.join().unwrap().unwrap();
        let sig = p256::ecdsa::Signature::from_der(sig.as_bytes()).unwrap();
        signature::Verifier::verify(&vk, b"after the module reset", &sig).unwrap();
        // The busy thread's first call failed (the module was gone); its retry worked.
        busy.join().unwrap().unwrap();
        seen
    });
    assert_eq!(inside, before, "not re-initialised while a thread was inside the module");
    assert_eq!(hsm.reinitializations(), before + 1, "re-initialised once");
    assert!(hsm.is_ready());
    // Sessions and key handles from before are gone: signatures from every thread verify
    // under their own key.
    std::thread::scope(|scope| {
        for i in 0..4u8 {
            let (signer, vk) = (&signer, &vk);
            scope.spawn(move || {
                for j in 0..20u8 {
                    let msg = [i, j];
                    let sig = signer.sign(&msg).unwrap();
                    let sig = p256::ecdsa::Signature::from_der(sig.as_bytes()).unwrap();
                    signature::Verifier::verify(vk, &msg, &sig).unwrap();
                }
            });
        }
    });
    hsm.probe().unwrap();

    // A second failure within REINIT_INTERVAL is not retried at once: the layer reports
    // not-ready and refuses fast instead of hammering the device.
    cryptoki::context::Pkcs11::new(trustd::daemon::SOFTHSM_MODULE).unwrap().finalize().unwrap();
    assert!(matches!(signer.sign(b"too soon"), Err(HsmError::Unavailable(_))));
    assert!(!hsm.is_ready());
}

/// What the process logs from here on, formatted as the daemon's subscriber formats it.
#[derive(Clone)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn install() -> Self {
        let c = Captured(Arc::default());
        let writer = c.clone();
        tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).init();
        c
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
