//! Checkpoints: the signed tree head of the log, as a C2SP tlog-checkpoint body in a C2SP
//! signed note with an Ed25519 signature.
//!
//! The note format, key IDs and Ed25519 verification are `signed_note` (Cloudflare's port of
//! Go's `sumdb/note`); strict body parsing is `tlog_tiles`. The private key is never here:
//! [`CheckpointSigner`] calls out to whatever holds it (in the daemon, the HSM key labelled
//! `trustd-log` through `crate::hsm::HsmSigner`).

use super::{Hash, LogError, TreeSize};
use crate::keys::{SignatureScheme, SigningKey};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use const_oid::db::rfc8410::ID_ED_25519;
use der::{Decode, Encode};
use signed_note::{Note, StandardVerifier, VerifierList};
use std::fmt;
use std::sync::Arc;

/// The signature type byte of Ed25519 in signed-note key IDs and verifier keys.
const ALG_ED25519: u8 = 0x01;

/// A checkpoint body (C2SP tlog-checkpoint): `<origin>\n<tree size>\n<base64 root hash>\n`.
/// This log writes no extension lines and ignores those of others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: TreeSize,
    root: Hash,
}

impl Checkpoint {
    /// A checkpoint for the tree of `size` entries with head `root`. The origin names the log
    /// (C2SP tlog-checkpoint: e.g. `ca.example.com/log`); like a signed-note key name, it must
    /// be non-empty and contain neither whitespace nor `+`.
    pub fn new(origin: &str, size: TreeSize, root: Hash) -> Result<Self, LogError> {
        check_name("origin", origin).map_err(LogError::BadCheckpoint)?;
        Ok(Checkpoint { origin: origin.to_owned(), size, root })
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size.
    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// The tree head, MTH of the first `size` entries.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The body, the exact bytes that are signed.
    pub fn to_body(&self) -> String {
        // Formatted here rather than through tlog_tiles::Checkpoint, whose constructor is
        // fallible (it re-checks what `new` checked) and which is not Clone; parsing, where
        // strictness matters, is tlog_tiles'. The tests hold the two to the same bytes.
        format!("{}\n{}\n{}\n", self.origin, self.size.0, self.root.to_base64())
    }

    /// Parses a body strictly: decimal size without leading zeros, 32-byte standard base64
    /// root, every line ended by a newline, nothing after.
    pub fn parse_body(text: &[u8]) -> Result<Self, LogError> {
        let c = tlog_tiles::Checkpoint::from_bytes(text).map_err(|e| LogError::BadCheckpoint(e.to_string()))?;
        Self::new(c.origin(), TreeSize(c.size()), Hash::from(*c.hash()))
    }
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if !signed_note::is_key_name_valid(name) || name.chars().any(char::is_control) {
        return Err(format!(
            "{what} '{}' must be non-empty, without spaces, '+' or control characters",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// The log's public key with the name it signs under (C2SP signed-note): what an auditor is
/// given, most simply as the one [`LogPublicKey::vkey`] string.
#[derive(Clone, PartialEq, Eq)]
pub struct LogPublicKey {
    name: String,
    key: [u8; 32],
}

impl fmt::Debug for LogPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.vkey())
    }
}

impl LogPublicKey {
    /// From the raw 32-byte Ed25519 public key (RFC 8032 §5.1.5). The key name is usually the
    /// log's origin.
    pub fn from_raw(name: &str, key: [u8; 32]) -> Result<Self, LogError> {
        check_name("key name", name).map_err(LogError::BadPublicKey)?;
        let k = LogPublicKey { name: name.to_owned(), key };
        // Refuse at once what the verifier would refuse later (not a curve point).
        k.verifier()?;
        Ok(k)
    }

    /// From a DER SubjectPublicKeyInfo with algorithm id-Ed25519 (RFC 8410 §4), as the HSM
    /// reports the key (`HsmSigner::public_key_info`) and as `openssl pkey -pubout` writes it.
    pub fn from_spki_der(name: &str, der: &[u8]) -> Result<Self, LogError> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|e| LogError::BadPublicKey(e.to_string()))?;
        if spki.algorithm.oid != ID_ED_25519 || spki.algorithm.parameters.is_some() {
            return Err(LogError::BadPublicKey(format!("algorithm {} is not id-Ed25519", spki.algorithm.oid)));
        }
        let raw = spki
            .subject_public_key
            .as_bytes()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| LogError::BadPublicKey("an Ed25519 public key is 32 bytes".into()))?;
        Self::from_raw(name, raw)
    }

    /// Parses a verifier key `<name>+<hex key ID>+<base64(0x01 ‖ key)>` (C2SP signed-note),
    /// checking that the key ID matches.
    pub fn from_vkey(vkey: &str) -> Result<Self, LogError> {
        StandardVerifier::new(vkey).map_err(|e| LogError::BadPublicKey(e.to_string()))?;
        // StandardVerifier has checked the shape, the ID and the algorithm byte.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(_), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(LogError::BadPublicKey("malformed verifier key".into()));
        };
        let b = BASE64.decode(b64).map_err(|e| LogError::BadPublicKey(e.to_string()))?;
        let key = b
            .strip_prefix(&[ALG_ED25519])
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| LogError::BadPublicKey("not an Ed25519 verifier key".into()))?;
        Self::from_raw(name, key)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw Ed25519 public key.
    pub fn raw(&self) -> &[u8; 32] {
        &self.key
    }

    /// The key ID (C2SP signed-note "key hash"): the first 4 bytes of
    /// SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key), big-endian.
    pub fn key_id(&self) -> u32 {
        signed_note::key_id(&self.name, &self.typed_key())
    }

    /// The verifier key string (C2SP signed-note): `<name>+<8 hex digits of the key ID>+<base64(0x01 ‖ key)>`.
    pub fn vkey(&self) -> String {
        format!("{}+{:08x}+{}", self.name, self.key_id(), BASE64.encode(self.typed_key()))
    }

    fn typed_key(&self) -> Vec<u8> {
        [&[ALG_ED25519][..], &self.key].concat()
    }

    fn verifier(&self) -> Result<StandardVerifier, LogError> {
        StandardVerifier::new(&self.vkey()).map_err(|e| LogError::BadPublicKey(e.to_string()))
    }
}

/// Signs checkpoints with the log's Ed25519 key, through the key seam (the HSM in the daemon),
/// and after a rollover also with the key before it, so that auditors who pinned that one keep
/// verifying and learn the new key from the log.
pub struct CheckpointSigner {
    key: LogPublicKey,
    signer: Arc<dyn SigningKey>,
    /// The previous log key, which cosigns every checkpoint until the next rollover.
    previous: Option<(LogPublicKey, Arc<dyn SigningKey>)>,
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous = self.previous.as_ref().map(|(k, _)| k);
        f.debug_struct("CheckpointSigner").field("key", &self.key).field("previous", &previous).finish()
    }
}

impl CheckpointSigner {
    /// Signs the checkpoints of the log called `origin` with `signer`, a pure Ed25519 key
    /// (RFC 8032 §5.1); the verifier key is derived from its public key, so the two cannot
    /// disagree.
    pub fn new(origin: &str, signer: Arc<dyn SigningKey>) -> Result<Self, LogError> {
        if signer.scheme() != SignatureScheme::Ed25519 {
            return Err(LogError::BadPublicKey(format!("a log key signs with ed25519, not {}", signer.scheme())));
        }
        let spki = signer.public_key().to_der().map_err(|e| LogError::BadPublicKey(e.to_string()))?;
        Ok(CheckpointSigner { key: LogPublicKey::from_spki_der(origin, &spki)?, signer, previous: None })
    }

    /// This signer with `previous`'s key (not the one before that) cosigning each checkpoint:
    /// the log's key rolled over from `previous` to this one.
    pub fn after(self, previous: &CheckpointSigner) -> Self {
        CheckpointSigner { previous: Some((previous.key.clone(), previous.signer.clone())), ..self }
    }

    /// The public key.
    pub fn public_key(&self) -> &LogPublicKey {
        &self.key
    }

    /// The signed note of `checkpoint`: the body, a blank line and
    /// `— <key name> <base64(key ID ‖ signature)>`, a line for this key and one for the
    /// previous (C2SP signed-note: a verifier ignores signatures by keys it does not know).
    /// Each signature is checked against its public key before the note is returned, so a
    /// misbehaving HSM never publishes a checkpoint that auditors would reject.
    pub async fn sign(&self, checkpoint: &Checkpoint) -> Result<Vec<u8>, LogError> {
        let text = checkpoint.to_body();
        let mut signatures = vec![(&self.key, sign_with(self.signer.as_ref(), &text).await?)];
        if let Some((key, signer)) = &self.previous {
            signatures.push((key, sign_with(signer.as_ref(), &text).await?));
        }
        let note = signed_note_of(text.as_bytes(), &signatures)?;
        for (key, _) in &signatures {
            verify_note(&note, key)?;
        }
        Ok(note)
    }
}

async fn sign_with(signer: &dyn SigningKey, text: &str) -> Result<Vec<u8>, LogError> {
    let signature = signer.sign(text.as_bytes()).await.map_err(|e| LogError::Signer(e.to_string()))?;
    Ok(signature.as_bytes().to_vec())
}

/// The signed note of `text` with `signatures`, each made by its key's private half, formatted
/// by signed_note.
fn signed_note_of(text: &[u8], signatures: &[(&LogPublicKey, Vec<u8>)]) -> Result<Vec<u8>, LogError> {
    let signers: Vec<NoteSigner<'_>> = signatures
        .iter()
        .map(|(key, signature)| NoteSigner { name: &key.name, id: key.key_id(), text, signature })
        .collect();
    let signers: Vec<&dyn signed_note::Signer> = signers.iter().map(|s| s as &dyn signed_note::Signer).collect();
    let mut note = Note::new(text, &[]).map_err(|e| LogError::BadCheckpoint(e.to_string()))?;
    note.add_sigs(&signers).map_err(|e| LogError::Signer(e.to_string()))?;
    Ok(note.to_bytes())
}

/// signed_note's signer interface over a signature made beforehand (signed_note's interface is
/// blocking; the key seam is not). It signs only the text it was made for, and refuses anything
/// but a 64-byte signature, which is all Ed25519 produces.
struct NoteSigner<'a> {
    name: &'a str,
    id: u32,
    text: &'a [u8],
    signature: &'a [u8],
}

impl signed_note::Signer for NoteSigner<'_> {
    fn name(&self) -> &str {
        self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        if msg != self.text {
            return Err(signature::Error::from_source("the note's message is not the checkpoint signed"));
        }
        if self.signature.len() != 64 {
            return Err(signature::Error::from_source(format!(
                "{} bytes, not a 64-byte Ed25519 signature",
                self.signature.len()
            )));
        }
        Ok(self.signature.to_vec())
    }
}

/// Checks a signed note for a valid signature by `key` and returns its text. Signatures by
/// other keys (witnesses, say) are allowed and ignored.
pub fn verify_note(note: &[u8], key: &LogPublicKey) -> Result<Vec<u8>, LogError> {
    let note = Note::from_bytes(note).map_err(|e| LogError::BadCheckpoint(e.to_string()))?;
    let verifiers = VerifierList::new(vec![Box::new(key.verifier()?)]);
    note.verify(&verifiers).map_err(|_| LogError::BadSignature(format!("{}+{:08x}", key.name, key.key_id())))?;
    Ok(note.text().to_vec())
}

/// Verifies a signed checkpoint from the log named `origin` with key `key` and returns its
/// body. The origin must match exactly: a checkpoint of another log signed with the same key
/// is not this log's.
pub fn open_checkpoint(note: &[u8], origin: &str, key: &LogPublicKey) -> Result<Checkpoint, LogError> {
    let text = verify_note(note, key)?;
    let checkpoint = Checkpoint::parse_body(&text)?;
    if checkpoint.origin != origin {
        return Err(LogError::WrongOrigin { expected: origin.to_owned(), found: checkpoint.origin });
    }
    Ok(checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::software::SoftwareKey;
    use crate::keys::{KeyError, Signature};
    use ed25519_dalek::SigningKey;
    use sha2::{Digest, Sha256};

    const ORIGIN: &str = "ca.example.com/log";

    fn test_key() -> (SigningKey, LogPublicKey) {
        let sk = SigningKey::from_bytes(&[42; 32]);
        let pk = LogPublicKey::from_raw(ORIGIN, sk.verifying_key().to_bytes()).unwrap();
        (sk, pk)
    }

    fn signer() -> CheckpointSigner {
        CheckpointSigner::new(ORIGIN, Arc::new(SoftwareKey::ed25519(42))).unwrap()
    }

    fn sign(s: &CheckpointSigner, c: &Checkpoint) -> Result<Vec<u8>, LogError> {
        crate::testing::block_on(s.sign(c))
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint::new(ORIGIN, TreeSize(1234), Hash([0xab; 32])).unwrap()
    }

    #[test]
    fn body_format() {
        let c = checkpoint();
        assert_eq!(c.to_body(), format!("{ORIGIN}\n1234\n{}\n", BASE64.encode([0xab; 32])));
        assert_eq!(Checkpoint::parse_body(c.to_body().as_bytes()).unwrap(), c);
        let theirs = tlog_tiles::Checkpoint::new(ORIGIN, 1234, tlog_tiles::Hash([0xab; 32]), "").unwrap();
        assert_eq!(theirs.to_bytes(), c.to_body().as_bytes());
        for bad in [
            "ca.example.com/log\n01234\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n",
            "ca.example.com/log\n1234\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=",
            "ca.example.com/log\n1234\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n",
            "ca.example.com/log\n-1\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n",
            "\n1234\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n",
            "ca.example.com/log\n1234\n",
        ] {
            assert!(Checkpoint::parse_body(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(Checkpoint::new("two words", TreeSize(1), Hash::default()).is_err());
        assert!(Checkpoint::new("a\nb", TreeSize(1), Hash::default()).is_err());
        assert!(Checkpoint::new("", TreeSize(1), Hash::default()).is_err());
    }

    #[test]
    fn sign_and_verify() {
        let s = signer();
        assert_eq!(s.public_key(), &test_key().1);
        let note = sign(&s, &checkpoint()).unwrap();
        let text = String::from_utf8(note.clone()).unwrap();
        let (body, sig) = text.split_once("\n\n").unwrap();
        assert_eq!(format!("{body}\n"), checkpoint().to_body());
        // — <key name> <base64(4-byte key ID ‖ 64-byte signature)>
        let sig = sig.strip_prefix(&format!("\u{2014} {ORIGIN} ")).unwrap().strip_suffix('\n').unwrap();
        let raw = BASE64.decode(sig).unwrap();
        assert_eq!(raw.len(), 68);
        assert_eq!(raw[..4], s.public_key().key_id().to_be_bytes());
        assert_eq!(open_checkpoint(&note, ORIGIN, s.public_key()).unwrap(), checkpoint());
    }

    /// After a rollover a checkpoint carries the new key's signature and the previous key's,
    /// each verifiable alone; the key before that no longer signs.
    #[test]
    fn a_rolled_over_key_cosigns_with_the_previous_one() {
        let first = signer();
        let second = CheckpointSigner::new(ORIGIN, Arc::new(SoftwareKey::ed25519(43))).unwrap().after(&first);
        let third = CheckpointSigner::new(ORIGIN, Arc::new(SoftwareKey::ed25519(44))).unwrap().after(&second);
        let note = sign(&second, &checkpoint()).unwrap();
        let text = String::from_utf8(note.clone()).unwrap();
        assert_eq!(text.matches('\u{2014}').count(), 2, "{text}");
        for key in [first.public_key(), second.public_key()] {
            assert_eq!(open_checkpoint(&note, ORIGIN, key).unwrap(), checkpoint());
        }
        let note = sign(&third, &checkpoint()).unwrap();
        assert_eq!(String::from_utf8(note.clone()).unwrap().matches('\u{2014}').count(), 2);
        assert!(open_checkpoint(&note, ORIGIN, second.public_key()).is_ok());
        assert!(open_checkpoint(&note, ORIGIN, third.public_key()).is_ok());
        assert!(matches!(open_checkpoint(&note, ORIGIN, first.public_key()), Err(LogError::BadSignature(_))));
    }

    #[test]
    fn tampering_is_rejected() {
        let s = signer();
        let pk = s.public_key();
        let note = String::from_utf8(sign(&s, &checkpoint()).unwrap()).unwrap();
        let b64 = BASE64.encode([0xab; 32]);
        let tampered = [
            note.replacen("1234", "1235", 1),
            note.replacen("1234", "123", 1),
            note.replacen(&b64, &BASE64.encode([0xac; 32]), 1),
            note.replacen("ca.example.com", "cb.example.com", 1),
        ];
        for t in &tampered {
            assert!(matches!(open_checkpoint(t.as_bytes(), ORIGIN, pk), Err(LogError::BadSignature(_))), "{t}");
        }
        // A flipped bit anywhere in the signature.
        let (head, sig) = note.rsplit_once(' ').unwrap();
        let mut raw = BASE64.decode(sig.trim_end()).unwrap();
        for i in 4..raw.len() {
            raw[i] ^= 1;
            let t = format!("{head} {}\n", BASE64.encode(&raw));
            assert!(open_checkpoint(t.as_bytes(), ORIGIN, pk).is_err(), "byte {i}");
            raw[i] ^= 1;
        }
        // The right signature but a different expected origin, or another key.
        assert!(matches!(open_checkpoint(note.as_bytes(), "other.example/log", pk), Err(LogError::WrongOrigin { .. })));
        let other =
            LogPublicKey::from_raw(ORIGIN, SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes()).unwrap();
        assert!(open_checkpoint(note.as_bytes(), ORIGIN, &other).is_err());
        // The same key under another name has another key ID: not the log's signature.
        let renamed = LogPublicKey::from_raw("other.example/log", *pk.raw()).unwrap();
        assert!(open_checkpoint(note.as_bytes(), ORIGIN, &renamed).is_err());
        // Garbage never panics.
        for cut in 0..note.len() {
            if note.is_char_boundary(cut) {
                assert!(open_checkpoint(&note.as_bytes()[..cut], ORIGIN, pk).is_err());
            }
        }
    }

    /// A misbehaving device: it claims one public key and signs with another, or returns a
    /// signature of the wrong length.
    #[derive(Debug)]
    struct Misbehaving {
        claims: SoftwareKey,
        signs: Option<SoftwareKey>,
    }

    #[async_trait::async_trait]
    impl crate::keys::SigningKey for Misbehaving {
        fn scheme(&self) -> SignatureScheme {
            SignatureScheme::Ed25519
        }
        fn public_key(&self) -> &spki::SubjectPublicKeyInfoOwned {
            self.claims.public_key()
        }
        async fn sign(&self, msg: &[u8]) -> Result<Signature, KeyError> {
            match &self.signs {
                Some(k) => k.sign(msg).await,
                None => Ok(Signature::new(vec![0; 63])),
            }
        }
    }

    #[test]
    fn a_misbehaving_key_cannot_publish() {
        let wrong = Misbehaving { claims: SoftwareKey::ed25519(42), signs: Some(SoftwareKey::ed25519(9)) };
        let wrong = CheckpointSigner::new(ORIGIN, Arc::new(wrong)).unwrap();
        assert!(matches!(sign(&wrong, &checkpoint()), Err(LogError::BadSignature(_))));
        let short =
            CheckpointSigner::new(ORIGIN, Arc::new(Misbehaving { claims: SoftwareKey::ed25519(42), signs: None }));
        assert!(matches!(sign(&short.unwrap(), &checkpoint()), Err(LogError::Signer(_))));
        let failing = CheckpointSigner::new(ORIGIN, Arc::new(SoftwareKey::ed25519(42).failing("device error")));
        assert!(matches!(sign(&failing.unwrap(), &checkpoint()), Err(LogError::Signer(_))));
        // Only an Ed25519 key signs checkpoints.
        assert!(CheckpointSigner::new(ORIGIN, Arc::new(SoftwareKey::p256(1))).is_err());
    }

    #[test]
    fn key_id_by_hand() {
        let (_, pk) = test_key();
        let mut h = Sha256::new();
        h.update(ORIGIN.as_bytes());
        h.update([0x0a, 0x01]);
        h.update(pk.raw());
        let d = h.finalize();
        assert_eq!(pk.key_id(), u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
        let vkey = pk.vkey();
        assert_eq!(
            vkey,
            format!("{ORIGIN}+{}+{}", hex::encode(&d[..4]), BASE64.encode([&[1u8][..], pk.raw()].concat()))
        );
        assert_eq!(LogPublicKey::from_vkey(&vkey).unwrap(), pk);
    }

    // The example key and note of Go's golang.org/x/mod/sumdb/note documentation, which the
    // signed-note spec grew out of: our key IDs, verifier keys and signatures match Go's.
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY_B64: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn go_note_vectors() {
        let pk = LogPublicKey::from_vkey(PETER_VKEY).unwrap();
        assert_eq!(pk.key_id(), 0xc74f_20a3);
        assert_eq!(pk.vkey(), PETER_VKEY);
        let note = format!("{PETER_TEXT}\n{PETER_SIG}");
        assert_eq!(verify_note(note.as_bytes(), &pk).unwrap(), PETER_TEXT.as_bytes());

        let seed = BASE64.decode(PETER_SKEY_B64).unwrap();
        let sk = SigningKey::from_bytes(&<[u8; 32]>::try_from(&seed[1..]).unwrap());
        assert_eq!(sk.verifying_key().to_bytes(), *pk.raw());
        let signature = signature::Signer::<ed25519_dalek::Signature>::sign(&sk, PETER_TEXT.as_bytes());
        let signatures = [(&pk, signature.to_bytes().to_vec())];
        assert_eq!(signed_note_of(PETER_TEXT.as_bytes(), &signatures).unwrap(), note.as_bytes());
    }

    #[test]
    fn public_key_from_spki() {
        use der::{asn1::BitString, Encode};
        let (_, pk) = test_key();
        let spki = spki::SubjectPublicKeyInfoOwned {
            algorithm: spki::AlgorithmIdentifierOwned { oid: ID_ED_25519, parameters: None },
            subject_public_key: BitString::from_bytes(pk.raw()).unwrap(),
        };
        let der = spki.to_der().unwrap();
        assert_eq!(LogPublicKey::from_spki_der(ORIGIN, &der).unwrap(), pk);
        // The same bytes as openssl writes them: 302a300506032b6570032100 ‖ key.
        assert_eq!(der[..12], hex::decode("302a300506032b6570032100").unwrap()[..]);

        let p256 = spki::SubjectPublicKeyInfoOwned {
            algorithm: spki::AlgorithmIdentifierOwned {
                oid: const_oid::db::rfc5912::ID_EC_PUBLIC_KEY,
                parameters: None,
            },
            subject_public_key: BitString::from_bytes(pk.raw()).unwrap(),
        };
        assert!(LogPublicKey::from_spki_der(ORIGIN, &p256.to_der().unwrap()).is_err());
        assert!(LogPublicKey::from_spki_der(ORIGIN, &der[..20]).is_err());
        assert!(LogPublicKey::from_raw("bad name", *pk.raw()).is_err());
        assert!(LogPublicKey::from_vkey("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
    }
}
