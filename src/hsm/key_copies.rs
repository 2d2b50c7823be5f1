//! Session copies of signing keys (`[hsm] session_key_copies`), for software tokens whose token
//! objects are slow to use.
//!
//! SoftHSM keeps every token object in a file of its own and, before each use of one, checks
//! whether another process changed it: C_SignInit opens, locks and reads the token's and the
//! key's generation files, and that cost more than the signature itself. A private session
//! object made from the key by C_CopyObject (PKCS#11 v2.40 §5.7) lives in the module's memory and
//! skips those checks. It is the key in the token still: C_CopyObject cannot make a copy less
//! sensitive or extractable than its original (§4.4.1: CKA_SENSITIVE only ever becomes true,
//! CKA_EXTRACTABLE only false), a session object is visible to this process alone, and C_CloseSession
//! (or C_Logout, or C_Finalize) destroys it.
//!
//! Each pooled session keeps its own copies, so a copy's handle never outlives its session. Once
//! a second ([`CHECK_EVERY`]) a session reads CKA_SIGN of the token object before it signs with
//! the copy: a key destroyed in the token, or stripped of CKA_SIGN by another tool, stops signing
//! within that time. (Checked, not copied again: SoftHSM keeps a destroyed session object's
//! memory until C_Finalize, so a copy made every second would grow the daemon without bound.) A
//! token that refuses the copy (CKA_COPYABLE false, or a module without C_CopyObject) signs
//! with the token object.

use cryptoki::error::Error as CkError;
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a copy signs before the token object is read again.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The copies one session signs with, by the token object's raw handle (`ObjectHandle` is not
/// `Hash`).
pub(super) struct KeyCopies {
    enabled: bool,
    copies: HashMap<cryptoki_sys::CK_OBJECT_HANDLE, Copy>,
}

enum Copy {
    Made {
        handle: ObjectHandle,
        checked: Instant,
    },
    /// The token refused to copy the key: sign with the token object.
    Refused,
}

impl KeyCopies {
    pub(super) fn new(enabled: bool) -> Self {
        KeyCopies { enabled, copies: HashMap::new() }
    }

    /// The handle to sign with for the token key `key`: this session's copy of it, made when
    /// there is none, after a check of the token object when the last is older than
    /// [`CHECK_EVERY`]; `key` itself when copies are off, the token refuses them, or the key
    /// may no longer sign (C_SignInit then says so). An error means the token object could not
    /// be read (destroyed, or a handle from before the module renumbered its objects).
    pub(super) fn handle(&mut self, s: &Session, key: ObjectHandle) -> cryptoki::error::Result<ObjectHandle> {
        if !self.enabled {
            return Ok(key);
        }
        match self.copies.get_mut(&key.handle()) {
            Some(Copy::Refused) => return Ok(key),
            Some(Copy::Made { handle, checked }) if checked.elapsed() < CHECK_EVERY => return Ok(*handle),
            Some(Copy::Made { handle, checked }) => {
                let signs = s.get_attributes(key, &[AttributeType::Sign]).map(|a| a.contains(&Attribute::Sign(true)));
                if let Ok(true) = signs {
                    *checked = Instant::now();
                    return Ok(*handle);
                }
                // The session would keep it until closed otherwise; a failure leaves only that.
                let _ = s.destroy_object(*handle);
                self.copies.remove(&key.handle());
                return signs.map(|_| key);
            }
            None => {}
        }
        match s.copy_object(key, &[Attribute::Token(false)]) {
            Ok(handle) => {
                self.copies.insert(key.handle(), Copy::Made { handle, checked: Instant::now() });
                Ok(handle)
            }
            // The object is gone or the module forgot the login, not unable to copy it.
            Err(e) if super::may_be_logged_out(&e) || super::is_session_fault(&e) => Err(e),
            Err(e) => {
                tracing::info!(error = %e, "the token does not copy this key into a session: signing with the token object");
                self.copies.insert(key.handle(), Copy::Refused);
                Ok(key)
            }
        }
    }

    /// Forgets every copy after a signature with one failed for its handle: the module dropped
    /// them (a lost login destroys private session objects, §5.6 C_Logout).
    pub(super) fn forget_after(&mut self, e: &CkError) {
        if super::may_be_logged_out(e) {
            self.copies.clear();
        }
    }
}
