//! The system libssl as libsslsess sees it: the real versions of the
//! functions we also export, and the few declarations `openssl-sys` lacks.
//!
//! Every function we export is also defined by libssl; calling it by name
//! from inside this library would call ourselves. The real ones are found
//! with `dlvsym(RTLD_NEXT, name, "OPENSSL_3.0.0")` once per symbol, with a
//! fallback to libssl's own handle, and an address inside this library is
//! never accepted.

use std::ffi::{CStr, c_char, c_int, c_long, c_uchar, c_void};
use std::sync::OnceLock;

use openssl_sys::{OSSL_LIB_CTX, SSL, SSL_CTX, SSL_METHOD, SSL_SESSION};

use crate::errors::Error;

pub const LIBSSL_VERSION_NODE: &CStr = c"OPENSSL_3.0.0";

// Controls and modes from <openssl/ssl.h> 3.0.
pub const SSL_CTRL_SESS_NUMBER: c_int = 20;
pub const SSL_CTRL_SESS_CB_HIT: c_int = 28;
pub const SSL_CTRL_SESS_MISSES: c_int = 29;
pub const SSL_CTRL_SESS_CACHE_FULL: c_int = 31;
pub const SSL_CTRL_SET_SESS_CACHE_SIZE: c_int = 42;
pub const SSL_CTRL_GET_SESS_CACHE_SIZE: c_int = 43;
pub const SSL_CTRL_SET_SESS_CACHE_MODE: c_int = 44;
pub const SSL_CTRL_GET_SESS_CACHE_MODE: c_int = 45;
pub const SSL_SESS_CACHE_NO_INTERNAL_LOOKUP: c_long = 0x0100;
pub const SSL_SESS_CACHE_NO_INTERNAL_STORE: c_long = 0x0200;
pub const SSL_SESS_CACHE_UPDATE_TIME: c_long = 0x0400;

/// `SSL_CTX_sess_set_get_cb`'s callback type.
pub type GetSessionCb =
    unsafe extern "C" fn(*mut SSL, *const c_uchar, c_int, *mut c_int) -> *mut SSL_SESSION;
/// `SSL_CTX_sess_set_remove_cb`'s callback type.
pub type RemoveSessionCb = unsafe extern "C" fn(*mut SSL_CTX, *mut SSL_SESSION);
/// libssl's `SSL_CTX_remove_session` (see [`real::SSL_CTX_remove_session`]).
pub type RemoveSessionFn = unsafe extern "C" fn(*mut SSL_CTX, *mut SSL_SESSION) -> c_int;

// Functions of libssl/libcrypto/libc that we call but do not export, and that
// `openssl-sys` or `libc` do not declare.
unsafe extern "C" {
    pub fn dlvsym(
        handle: *mut c_void,
        symbol: *const c_char,
        version: *const c_char,
    ) -> *mut c_void;
    pub fn SSL_CTX_sess_get_remove_cb(ctx: *mut SSL_CTX) -> Option<RemoveSessionCb>;
    pub fn SSL_SESSION_is_resumable(s: *const SSL_SESSION) -> c_int;
    pub fn SSL_SESSION_new() -> *mut SSL_SESSION;
    pub fn SSL_SESSION_set1_id(
        s: *mut SSL_SESSION,
        id: *const c_uchar,
        len: std::ffi::c_uint,
    ) -> c_int;
    /// Only the unit tests set an id context.
    #[cfg(test)]
    pub fn SSL_SESSION_set1_id_context(
        s: *mut SSL_SESSION,
        ctx: *const c_uchar,
        len: std::ffi::c_uint,
    ) -> c_int;
    pub fn ERR_peek_error() -> std::ffi::c_ulong;
    pub fn ERR_set_mark() -> c_int;
    pub fn ERR_pop_to_mark() -> c_int;
}

/// Where `name@OPENSSL_3.0.0` lives outside this library, or 0.
fn resolve(name: &CStr) -> usize {
    // SAFETY: dlvsym/dlopen take NUL-terminated strings; a handle from
    // RTLD_NOLOAD is not a new reference we must close (it is, but libssl
    // stays loaded for the process anyway because we link it).
    let found = unsafe {
        let next = dlvsym(libc::RTLD_NEXT, name.as_ptr(), LIBSSL_VERSION_NODE.as_ptr());
        if !next.is_null() {
            next
        } else {
            let handle = libc::dlopen(c"libssl.so.3".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
            if handle.is_null() {
                std::ptr::null_mut()
            } else {
                dlvsym(handle, name.as_ptr(), LIBSSL_VERSION_NODE.as_ptr())
            }
        }
    };
    if found.is_null() || is_inside_this_library(found) {
        0
    } else {
        found as usize
    }
}

fn is_inside_this_library(addr: *mut c_void) -> bool {
    fn base_of(addr: *const c_void) -> *mut c_void {
        // SAFETY: dladdr only reads the loader's tables.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        if unsafe { libc::dladdr(addr, &mut info) } == 0 {
            return std::ptr::null_mut();
        }
        info.dli_fbase
    }
    let ours = base_of(resolve as *const c_void);
    !ours.is_null() && base_of(addr) == ours
}

/// Declares accessors for the real libssl functions: `real::NAME()` gives
/// the function pointer, resolved on first use, or `Error::Unresolved`
/// (reported once on stderr, since a missing libssl function means the
/// program is not running against an OpenSSL 3.0 libssl).
macro_rules! real_functions {
    ($( $name:ident : fn($($arg:ty),*) $(-> $ret:ty)?; )*) => {
        $(
            #[allow(non_snake_case)]
            pub fn $name() -> Result<unsafe extern "C" fn($($arg),*) $(-> $ret)?, Error> {
                static SLOT: OnceLock<usize> = OnceLock::new();
                let addr = *crate::sync::get_or_init(&SLOT, || {
                    let name = concat!(stringify!($name), "\0");
                    let addr = super::resolve(CStr::from_bytes_with_nul(name.as_bytes()).unwrap());
                    if addr == 0 {
                        crate::config::say(format_args!(
                            "cannot find libssl's {}@OPENSSL_3.0.0; \
                             calls to it fail with an error (is libssl 3.0 loaded?)",
                            stringify!($name)
                        ));
                    }
                    addr
                });
                if addr == 0 {
                    return Err(Error::Unresolved(stringify!($name)));
                }
                // SAFETY: the symbol has this prototype in libssl 3.0.
                Ok(unsafe {
                    std::mem::transmute::<usize, unsafe extern "C" fn($($arg),*) $(-> $ret)?>(addr)
                })
            }
        )*
    };
}

pub mod real {
    use super::*;

    real_functions! {
        SSL_CTX_ctrl: fn(*mut SSL_CTX, c_int, c_long, *mut c_void) -> c_long;
        SSL_CTX_remove_session: fn(*mut SSL_CTX, *mut SSL_SESSION) -> c_int;
        SSL_set_session: fn(*mut SSL, *mut SSL_SESSION) -> c_int;
        SSL_CTX_new: fn(*const SSL_METHOD) -> *mut SSL_CTX;
        SSL_CTX_new_ex: fn(*mut OSSL_LIB_CTX, *const c_char, *const SSL_METHOD) -> *mut SSL_CTX;
        SSL_CTX_sess_set_get_cb: fn(*mut SSL_CTX, Option<GetSessionCb>);
        SSL_SESSION_set_time: fn(*mut SSL_SESSION, c_long) -> c_long;
        SSL_SESSION_set_timeout: fn(*mut SSL_SESSION, c_long) -> c_long;
        SSL_CTX_flush_sessions: fn(*mut SSL_CTX, c_long);
        SSL_set_SSL_CTX: fn(*mut SSL, *mut SSL_CTX) -> *mut SSL_CTX;
        SSL_has_matching_session_id: fn(*const SSL, *const c_uchar, std::ffi::c_uint) -> c_int;
    }
}

/// `SSL_CTX_ctrl` on libssl itself, for the controls we do not answer.
pub fn ctx_ctrl(ctx: *mut SSL_CTX, cmd: c_int, larg: c_long) -> Result<c_long, Error> {
    // SAFETY: ctx is a live context (checked non-NULL by the caller); these
    // controls take no pointer argument.
    Ok(unsafe { real::SSL_CTX_ctrl()?(ctx, cmd, larg, std::ptr::null_mut()) })
}

/// The session cache mode of `ctx` (`SSL_CTX_get_session_cache_mode`).
pub fn cache_mode(ctx: *mut SSL_CTX) -> Result<c_long, Error> {
    ctx_ctrl(ctx, SSL_CTRL_GET_SESS_CACHE_MODE, 0)
}

/// The size limit of `ctx`'s cache, 0 for unbounded.
pub fn cache_size_limit(ctx: *mut SSL_CTX) -> Result<usize, Error> {
    Ok(ctx_ctrl(ctx, SSL_CTRL_GET_SESS_CACHE_SIZE, 0)?.max(0) as usize)
}

/// True when this libssl binds its own session-cache calls at link time
/// (`-Bsymbolic`), so the handshake's adds and removes never reach us.
/// Decided once, at the first context, and announced on stderr: such a
/// libssl keeps the sessions it stores itself in its own cache, and
/// libsslsess then forwards removes, flushes and id checks to libssl too so
/// that both caches stay consistent and resumption keeps working.
pub fn binds_internally() -> bool {
    static SYMBOLIC: OnceLock<bool> = OnceLock::new();
    *crate::sync::get_or_init(&SYMBOLIC, || {
        let symbolic = crate::binding::has_relocation_against("libssl.so", "SSL_CTX_add_session")
            == Some(false);
        if symbolic {
            crate::config::say(format_args!(
                "warning: this libssl binds SSL_CTX_add_session and friends \
                 internally (-Bsymbolic); sessions stored by handshakes stay in libssl's own \
                 cache, and libsslsess keeps the two caches consistent"
            ));
        }
        symbolic
    })
}

/// True when every real function libsslsess needs is present.
pub fn all_resolved() -> bool {
    real::SSL_CTX_ctrl().is_ok()
        && real::SSL_CTX_remove_session().is_ok()
        && real::SSL_set_session().is_ok()
        && real::SSL_CTX_new().is_ok()
        && real::SSL_CTX_new_ex().is_ok()
        && real::SSL_CTX_sess_set_get_cb().is_ok()
        && real::SSL_SESSION_set_time().is_ok()
        && real::SSL_SESSION_set_timeout().is_ok()
        && real::SSL_CTX_flush_sessions().is_ok()
        && real::SSL_has_matching_session_id().is_ok()
        && real::SSL_set_SSL_CTX().is_ok()
}
