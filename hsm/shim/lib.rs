//! A PKCS#11 module that forwards every call to the module named by `TRUSTD_SHIM_MODULE`
//! (SoftHSM in the tests) and injects, as the file named by `TRUSTD_SHIM_CONTROL` says at the
//! time of each call, the faults physical HSMs are known for (one `key=value` a line):
//!
//! - `removed=1`: the device is gone (a network HSM unplugged, a PCIe card reset): signing and
//!   opening sessions fail with CKR_DEVICE_REMOVED, the token's information with
//!   CKR_TOKEN_NOT_PRESENT, until the line goes.
//! - `max-sessions=N`: the token allows N sessions (ulMaxSessionCount; a YubiHSM 2 allows 16)
//!   and refuses more with CKR_SESSION_COUNT.
//! - `close-sessions=TAG`: whenever TAG changes, the next signature finds every open session
//!   closed by the device (an HSM that drops idle sessions): CKR_SESSION_HANDLE_INVALID.
//! - `logout=TAG`: whenever TAG changes, the next signature finds the token logged out (a
//!   device that restarted, or another application's C_Logout): CKR_USER_NOT_LOGGED_IN.
//!
//! Hand-written because it is a C ABI module by nature; tests only, never built into trustd.

#![allow(non_snake_case, clippy::missing_safety_doc)]

use cryptoki_sys::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

struct Real {
    _library: libloading::Library,
    list: CK_FUNCTION_LIST,
}

// SAFETY: the function list is a table of function pointers into the loaded library, which
// PKCS#11 modules initialised with CKF_OS_LOCKING_OK allow to be called from any thread.
unsafe impl Send for Real {}
unsafe impl Sync for Real {}

static REAL: OnceLock<Result<Real, CK_RV>> = OnceLock::new();
static OPEN: AtomicU64 = AtomicU64::new(0);
static CLOSED_TAG: Mutex<String> = Mutex::new(String::new());
static LOGOUT_TAG: Mutex<String> = Mutex::new(String::new());

/// Whether the control file's `key` has a new value since the last call (`seen` keeps it).
fn changed(key: &str, seen: &Mutex<String>) -> bool {
    let Some(tag) = control(key) else { return false };
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    if *seen == tag {
        return false;
    }
    *seen = tag;
    true
}

fn real() -> Result<&'static CK_FUNCTION_LIST, CK_RV> {
    let loaded = REAL.get_or_init(|| {
        let path = std::env::var_os("TRUSTD_SHIM_MODULE").ok_or(CKR_GENERAL_ERROR)?;
        // SAFETY: loading the real PKCS#11 module and asking it for its function list, as
        // PKCS#11 v2.40 §5.2 defines C_GetFunctionList.
        unsafe {
            let library = libloading::Library::new(path).map_err(|_| CKR_GENERAL_ERROR)?;
            let get: libloading::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
                library.get(b"C_GetFunctionList\0").map_err(|_| CKR_GENERAL_ERROR)?;
            let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
            let rv = get(&mut list);
            if rv != CKR_OK || list.is_null() {
                return Err(CKR_GENERAL_ERROR);
            }
            let list = *list;
            Ok(Real { _library: library, list })
        }
    });
    loaded.as_ref().map(|r| &r.list).map_err(|e| *e)
}

/// The control file's value of `key`, read now.
fn control(key: &str) -> Option<String> {
    let path = std::env::var_os("TRUSTD_SHIM_CONTROL")?;
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=').map(|v| v.trim().to_owned()))
}

fn removed() -> bool {
    control("removed").is_some_and(|v| v == "1")
}

macro_rules! forward {
    ($name:ident($($arg:expr),*)) => {
        match real() {
            Ok(list) => match list.$name {
                Some(f) => f($($arg),*),
                None => CKR_FUNCTION_NOT_SUPPORTED,
            },
            Err(rv) => rv,
        }
    };
}

unsafe extern "C" fn finalize(reserved: *mut std::os::raw::c_void) -> CK_RV {
    OPEN.store(0, Ordering::SeqCst);
    forward!(C_Finalize(reserved))
}

unsafe extern "C" fn get_token_info(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    if removed() {
        return CKR_TOKEN_NOT_PRESENT;
    }
    let rv = forward!(C_GetTokenInfo(slot, info));
    if let (CKR_OK, Some(n), Some(info)) =
        (rv, control("max-sessions").and_then(|v| v.parse::<CK_ULONG>().ok()), info.as_mut())
    {
        info.ulMaxSessionCount = n;
    }
    rv
}

unsafe extern "C" fn open_session(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    application: *mut std::os::raw::c_void,
    notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    if removed() {
        return CKR_DEVICE_REMOVED;
    }
    if control("max-sessions").and_then(|v| v.parse::<u64>().ok()).is_some_and(|n| OPEN.load(Ordering::SeqCst) >= n) {
        return CKR_SESSION_COUNT;
    }
    let rv = forward!(C_OpenSession(slot, flags, application, notify, session));
    if rv == CKR_OK {
        OPEN.fetch_add(1, Ordering::SeqCst);
    }
    rv
}

unsafe extern "C" fn close_session(session: CK_SESSION_HANDLE) -> CK_RV {
    let rv = forward!(C_CloseSession(session));
    if rv == CKR_OK {
        let _ = OPEN.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_sub(1)));
    }
    rv
}

unsafe extern "C" fn close_all_sessions(slot: CK_SLOT_ID) -> CK_RV {
    let rv = forward!(C_CloseAllSessions(slot));
    if rv == CKR_OK {
        OPEN.store(0, Ordering::SeqCst);
    }
    rv
}

unsafe extern "C" fn sign_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    if removed() {
        return CKR_DEVICE_REMOVED;
    }
    if changed("close-sessions", &CLOSED_TAG) {
        let mut info = CK_SESSION_INFO::default();
        if forward!(C_GetSessionInfo(session, &mut info)) == CKR_OK {
            close_all_sessions(info.slotID);
        }
    }
    if changed("logout", &LOGOUT_TAG) {
        // A logout ends the login of every session of the application (PKCS#11 v2.40 §5.6).
        forward!(C_Logout(session));
    }
    forward!(C_SignInit(session, mechanism, key))
}

unsafe extern "C" fn sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    if removed() {
        return CKR_DEVICE_REMOVED;
    }
    forward!(C_Sign(session, data, len, signature, signature_len))
}

/// The module's entry point (PKCS#11 v2.40 §5.2): the real module's functions, with the
/// faults' wrappers in place of the calls they affect.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    static LIST: OnceLock<usize> = OnceLock::new();
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let real = match real() {
        Ok(r) => *r,
        Err(rv) => return rv,
    };
    let table = *LIST.get_or_init(|| {
        let mut mine = real;
        mine.C_GetFunctionList = Some(C_GetFunctionList);
        mine.C_Finalize = Some(finalize);
        mine.C_GetTokenInfo = Some(get_token_info);
        mine.C_OpenSession = Some(open_session);
        mine.C_CloseSession = Some(close_session);
        mine.C_CloseAllSessions = Some(close_all_sessions);
        mine.C_SignInit = Some(sign_init);
        mine.C_Sign = Some(sign);
        Box::leak(Box::new(mine)) as *mut CK_FUNCTION_LIST as usize
    });
    *list = table as *mut CK_FUNCTION_LIST;
    CKR_OK
}
