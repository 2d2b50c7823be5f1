//! What trustd reads of a token (C_GetTokenInfo, PKCS#11 v2.40 §5.5): its label, whether it
//! is initialised, and how many sessions it allows.
//!
//! Written by hand over the raw function list because cryptoki 0.12's `get_token_info` refuses
//! the whole structure when the token says it has a clock (CKF_CLOCK_ON_TOKEN) and its utcTime
//! is not "YYYYMMDDhhmmss": opencryptoki's soft token gives "hh:mm:ss", and the module is then
//! unusable through cryptoki. trustd reads no time of the token's, so it reads only the fields
//! it needs, from the module cryptoki already loaded and initialised.

use super::HsmError;
use cryptoki::error::{Error as CkError, Rv};
use cryptoki::slot::{Limit, Slot};
use cryptoki_sys::{CKF_TOKEN_INITIALIZED, CK_EFFECTIVELY_INFINITE, CK_FUNCTION_LIST, CK_TOKEN_INFO};
use std::path::Path;

/// The fields of CK_TOKEN_INFO that trustd uses.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    /// The label, without its padding.
    pub label: String,
    pub initialized: bool,
    /// ulMaxSessionCount.
    pub max_sessions: Limit,
}

/// Reads the token in `slot` of the module at `path` (loaded and initialised by cryptoki).
pub fn read(path: &Path, slot: Slot) -> Result<TokenInfo, HsmError> {
    let module = |source| HsmError::Module { path: path.to_owned(), source };
    // SAFETY: the module is a PKCS#11 library cryptoki loaded from the same path (dlopen hands
    // back the same handle and counts it); C_GetFunctionList and C_GetTokenInfo are called as
    // PKCS#11 v2.40 §5.2 and §5.5 define them, the token info into memory owned here, after the
    // module was initialised. The library outlives both calls.
    unsafe {
        let library = libloading::Library::new(path).map_err(|e| module(CkError::LibraryLoading(e)))?;
        let get_function_list: libloading::Symbol<
            unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> cryptoki_sys::CK_RV,
        > = library.get(b"C_GetFunctionList\0").map_err(|e| module(CkError::LibraryLoading(e)))?;
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        Rv::from(get_function_list(&mut list))
            .into_result(cryptoki::context::Function::GetFunctionList)
            .map_err(HsmError::Pkcs11)?;
        let get_token_info =
            list.as_ref().and_then(|l| l.C_GetTokenInfo).ok_or(HsmError::Pkcs11(CkError::NullFunctionPointer))?;
        let mut info = CK_TOKEN_INFO::default();
        Rv::from(get_token_info(slot.into(), &mut info))
            .into_result(cryptoki::context::Function::GetTokenInfo)
            .map_err(HsmError::Pkcs11)?;
        Ok(TokenInfo {
            label: String::from_utf8_lossy(&info.label).trim_end().to_owned(),
            initialized: info.flags & CKF_TOKEN_INITIALIZED != 0,
            max_sessions: match info.ulMaxSessionCount {
                CK_EFFECTIVELY_INFINITE => Limit::Infinite,
                cryptoki_sys::CK_UNAVAILABLE_INFORMATION => Limit::Unavailable,
                n => Limit::Max(n),
            },
        })
    }
}
