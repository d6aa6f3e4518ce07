//! The C boundary: every function libsslsess exports, and the callbacks it
//! gives libssl.
//!
//! Each entry point only checks its arguments and calls `context`. The
//! `entry!` macro around each body catches panics (none may cross into C),
//! traces the call when `SSLSESS_LOG=debug`, and turns the body's `Result`
//! into the C return value, raising the error on OpenSSL's error queue.
//!
//! Prototypes are libssl 3.0's, exactly, so that `include/sslsess.h`
//! (generated from this file by cbindgen) compiles next to <openssl/ssl.h>.

#![allow(non_snake_case)]

use std::ffi::{CStr, c_char, c_int, c_long, c_uchar, c_uint, c_void};
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

use openssl_sys::{OSSL_LIB_CTX, SSL, SSL_CTX, SSL_METHOD, SSL_SESSION};

use crate::config::{debug_enabled, trace};
use crate::context::{self, CtxCache};
use crate::errors::Error;
use crate::libssl::{self, real};

/// Where an entry point is, for the error queue.
pub struct Site {
    pub func: &'static CStr,
    pub file: &'static CStr,
    pub line: u32,
}

/// Runs an entry point's body: no panic escapes, errors are raised, the
/// call is traced.
pub fn guard<T: Debug>(
    site: &Site,
    fail: T,
    args: impl FnOnce() -> String,
    body: impl FnOnce() -> Result<T, Error>,
) -> T {
    let args = debug_enabled().then(args);
    let (value, error) = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => (v, None),
        Ok(Err(e)) => (fail, Some(e)),
        Err(_) => (fail, Some(Error::Panic)),
    };
    if let Some(e) = &error {
        e.raise(site.func, site.file, site.line);
    }
    if let Some(args) = args {
        let func = site.func.to_string_lossy();
        match &error {
            None => trace!("{func}({args}) = {value:?}"),
            Some(e) => trace!("{func}({args}) = {value:?} [error: {e}]"),
        }
    }
    value
}

macro_rules! cstr {
    ($s:expr) => {
        match CStr::from_bytes_with_nul(concat!($s, "\0").as_bytes()) {
            Ok(c) => c,
            Err(_) => panic!("string with an interior NUL"),
        }
    };
}

/// `entry!(name, fail_value, "fmt", args.. => body)`: see the module docs.
macro_rules! entry {
    ($name:ident, $fail:expr, $fmt:literal $(, $arg:expr)* => $body:block) => {{
        const SITE: Site = Site {
            func: cstr!(stringify!($name)),
            file: cstr!(file!()),
            line: line!(),
        };
        guard(&SITE, $fail, || format!($fmt $(, $arg)*), || $body)
    }};
}

fn required<T>(ptr: *mut T, name: &'static str) -> Result<NonNull<T>, Error> {
    NonNull::new(ptr).ok_or(Error::NullArgument(name))
}

// --- Adding and removing sessions ----------------------------------------

/// Adds `session` to `ctx`'s cache: 1 when added (or replacing another
/// object with the same id), 0 when this object is already cached or on
/// error (then with an error queued).
#[unsafe(no_mangle)]
pub extern "C" fn SSL_CTX_add_session(ctx: *mut SSL_CTX, session: *mut SSL_SESSION) -> c_int {
    entry!(SSL_CTX_add_session, 0, "ctx={ctx:?}, session={session:?}" => {
        context::add(required(ctx, "ctx")?, required(session, "session")?)
    })
}

/// Synonym of `SSL_CTX_add_session` (the old pages name it; libssl 3.0 no
/// longer exports it).
#[unsafe(no_mangle)]
pub extern "C" fn SSL_add_session(ctx: *mut SSL_CTX, session: *mut SSL_SESSION) -> c_int {
    entry!(SSL_add_session, 0, "ctx={ctx:?}, session={session:?}" => {
        context::add(required(ctx, "ctx")?, required(session, "session")?)
    })
}

/// Removes the session with `session`'s id from `ctx`'s cache: 1 when one
/// was cached, 0 when none was or on error (then with an error queued).
#[unsafe(no_mangle)]
pub extern "C" fn SSL_CTX_remove_session(ctx: *mut SSL_CTX, session: *mut SSL_SESSION) -> c_int {
    entry!(SSL_CTX_remove_session, 0, "ctx={ctx:?}, session={session:?}" => {
        context::remove(required(ctx, "ctx")?, required(session, "session")?)
    })
}

/// Synonym of `SSL_CTX_remove_session`.
#[unsafe(no_mangle)]
pub extern "C" fn SSL_remove_session(ctx: *mut SSL_CTX, session: *mut SSL_SESSION) -> c_int {
    entry!(SSL_remove_session, 0, "ctx={ctx:?}, session={session:?}" => {
        context::remove(required(ctx, "ctx")?, required(session, "session")?)
    })
}

/// Removes the sessions of `ctx` expired at `tm` (all when `tm` is 0).
#[unsafe(no_mangle)]
pub extern "C" fn SSL_CTX_flush_sessions(ctx: *mut SSL_CTX, tm: c_long) {
    entry!(SSL_CTX_flush_sessions, (), "ctx={ctx:?}, tm={tm}" => {
        context::flush(required(ctx, "ctx")?, tm)
    })
}

/// Sets the session a connection will try to resume (NULL clears it).
/// libssl does the work, and calls back into our `SSL_CTX_remove_session`
/// for a "bad" previous session.
#[unsafe(no_mangle)]
pub extern "C" fn SSL_set_session(to: *mut SSL, session: *mut SSL_SESSION) -> c_int {
    entry!(SSL_set_session, 0, "ssl={to:?}, session={session:?}" => {
        let ssl = required(to, "ssl")?;
        // SAFETY: ssl is non-NULL; session may be NULL (clears).
        let set = unsafe { real::SSL_set_session()?(ssl.as_ptr(), session) };
        // libssl's only failure leaves its own error; make sure there is one.
        if set != 1 && unsafe { libssl::ERR_peek_error() } == 0 {
            return Err(Error::LibsslFailed("SSL_set_session"));
        }
        Ok(set)
    })
}

/// 1 when a session with this id (and `ssl`'s protocol version) is cached
/// in `ssl`'s session context.
#[unsafe(no_mangle)]
pub extern "C" fn SSL_has_matching_session_id(
    s: *const SSL,
    id: *const c_uchar,
    id_len: c_uint,
) -> c_int {
    entry!(SSL_has_matching_session_id, 0, "ssl={s:?}, id={id:?}, id_len={id_len}" => {
        let ssl = required(s as *mut SSL, "ssl")?;
        if id_len == 0 {
            return context::has_matching_id(ssl, &[]);
        }
        let id = required(id as *mut c_uchar, "id")?;
        // SAFETY: the caller passes id_len readable bytes; an id longer than
        // TLS allows matches nothing and is not read past its 33rd byte.
        let len = (id_len as usize).min(crate::cache::MAX_ID_LEN + 1);
        context::has_matching_id(ssl, unsafe { std::slice::from_raw_parts(id.as_ptr(), len) })
    })
}

// --- Controls and statistics ---------------------------------------------

/// libssl's `SSL_CTX_ctrl`, answering the session count and cache
/// statistics from libsslsess's cache; every other control goes to libssl.
#[unsafe(no_mangle)]
pub extern "C" fn SSL_CTX_ctrl(
    ctx: *mut SSL_CTX,
    cmd: c_int,
    larg: c_long,
    parg: *mut c_void,
) -> c_long {
    let answered_here = matches!(
        cmd,
        libssl::SSL_CTRL_SESS_NUMBER
            | libssl::SSL_CTRL_SESS_CACHE_FULL
            | libssl::SSL_CTRL_SESS_MISSES
            | libssl::SSL_CTRL_SESS_CB_HIT
    );
    if !answered_here {
        // The hot path for every other control: no tracing, no state.
        let result = match real::SSL_CTX_ctrl() {
            // SAFETY: forwarded unchanged.
            Ok(ctrl) => unsafe { ctrl(ctx, cmd, larg, parg) },
            Err(e) => return entry!(SSL_CTX_ctrl, 0, "ctx={ctx:?}, cmd={cmd}" => { Err(e) }),
        };
        if matches!(
            cmd,
            libssl::SSL_CTRL_SET_SESS_CACHE_SIZE | libssl::SSL_CTRL_SET_SESS_CACHE_MODE
        ) {
            // Keep libsslsess's copy of the cache settings in step.
            entry!(SSL_CTX_ctrl, (), "ctx={ctx:?}, cmd={cmd}, larg={larg}" => {
                if let Some(ctx) = NonNull::new(ctx) {
                    CtxCache::of(ctx)?.refresh_settings(ctx)?;
                }
                Ok(())
            });
        }
        return result;
    }
    entry!(SSL_CTX_ctrl, 0, "ctx={ctx:?}, cmd={cmd}, larg={larg}" => {
        let ctx = required(ctx, "ctx")?;
        let state = CtxCache::of(ctx)?;
        // libssl's own figure: zero unless libssl cached sessions itself.
        let libssl_own = libssl::ctx_ctrl(ctx.as_ptr(), cmd, larg)?;
        Ok(match cmd {
            libssl::SSL_CTRL_SESS_NUMBER => libssl_own + state.len() as c_long,
            libssl::SSL_CTRL_SESS_CACHE_FULL => libssl_own + state.cache_full() as c_long,
            // Sessions our lookup served count as misses and callback hits
            // in libssl; plain libssl would have found them in its cache.
            _ => (libssl_own - state.served() as c_long).max(0),
        })
    })
}

// --- Context creation and the server's lookup ----------------------------

/// libssl's `SSL_CTX_new`, after making sure every new context gets a
/// libsslsess cache.
#[unsafe(no_mangle)]
pub extern "C" fn SSL_CTX_new(meth: *const SSL_METHOD) -> *mut SSL_CTX {
    entry!(SSL_CTX_new, std::ptr::null_mut(), "meth={meth:?}" => {
        context::prepare_for_new_context();
        // SAFETY: forwarded unchanged; libssl checks meth.
        Ok(unsafe { real::SSL_CTX_new()?(meth) })
    })
}

/// libssl's `SSL_CTX_new_ex`, likewise.
#[unsafe(no_mangle)]
pub extern "C" fn SSL_CTX_new_ex(
    libctx: *mut OSSL_LIB_CTX,
    propq: *const c_char,
    meth: *const SSL_METHOD,
) -> *mut SSL_CTX {
    entry!(SSL_CTX_new_ex, std::ptr::null_mut(), "libctx={libctx:?}, meth={meth:?}" => {
        context::prepare_for_new_context();
        // SAFETY: forwarded unchanged.
        Ok(unsafe { real::SSL_CTX_new_ex()?(libctx, propq, meth) })
    })
}

/// Records the application's get-session callback; libssl keeps calling
/// ours, which consults libsslsess's cache and then the application's.
#[unsafe(no_mangle)]
pub extern "C" fn SSL_CTX_sess_set_get_cb(
    ctx: *mut SSL_CTX,
    get_session_cb: Option<
        unsafe extern "C" fn(*mut SSL, *const c_uchar, c_int, *mut c_int) -> *mut SSL_SESSION,
    >,
) {
    entry!(SSL_CTX_sess_set_get_cb, (), "ctx={ctx:?}" => {
        let ctx = required(ctx, "ctx")?;
        CtxCache::of(ctx)?.set_app_get_cb(get_session_cb);
        // SAFETY: live ctx; keeps our lookup installed.
        unsafe { real::SSL_CTX_sess_set_get_cb()?(ctx.as_ptr(), Some(sslsess_get_session_cb)) };
        Ok(())
    })
}

/// The get-session callback the application set (not libsslsess's own).
#[unsafe(no_mangle)]
pub extern "C" fn SSL_CTX_sess_get_get_cb(
    ctx: *mut SSL_CTX,
) -> Option<unsafe extern "C" fn(*mut SSL, *const c_uchar, c_int, *mut c_int) -> *mut SSL_SESSION> {
    entry!(SSL_CTX_sess_get_get_cb, None, "ctx={ctx:?}" => {
        Ok(CtxCache::of(required(ctx, "ctx")?)?.app_get_cb())
    })
}

/// libssl's `SSL_set_SSL_CTX` (a servername callback switching the
/// connection to another context), after recording the connection's session
/// context, which the switch does not change.
#[unsafe(no_mangle)]
pub extern "C" fn SSL_set_SSL_CTX(ssl: *mut SSL, ctx: *mut SSL_CTX) -> *mut SSL_CTX {
    entry!(SSL_set_SSL_CTX, std::ptr::null_mut(), "ssl={ssl:?}, ctx={ctx:?}" => {
        let ssl = required(ssl, "ssl")?;
        context::remember_session_ctx(ssl)?;
        // SAFETY: forwarded unchanged; libssl checks ctx.
        Ok(unsafe { real::SSL_set_SSL_CTX()?(ssl.as_ptr(), ctx) })
    })
}

/// The get-session callback libsslsess installs on every context: the
/// server's way into libsslsess's cache (see `context::lookup`).
pub(crate) unsafe extern "C" fn sslsess_get_session_cb(
    ssl: *mut SSL,
    id: *const c_uchar,
    len: c_int,
    copy: *mut c_int,
) -> *mut SSL_SESSION {
    entry!(sslsess_get_session_cb, std::ptr::null_mut(), "ssl={ssl:?}, len={len}" => {
        context::lookup(required(ssl, "ssl")?, id, len, copy)
    })
}

// --- Session times -------------------------------------------------------

/// libssl's `SSL_SESSION_set_time`; a cached session is re-sorted.
#[unsafe(no_mangle)]
pub extern "C" fn SSL_SESSION_set_time(s: *mut SSL_SESSION, t: c_long) -> c_long {
    entry!(SSL_SESSION_set_time, 0, "session={s:?}, t={t}" => {
        let session = required(s, "session")?;
        // SAFETY: live session.
        let r = unsafe { real::SSL_SESSION_set_time()?(session.as_ptr(), t) };
        context::session_time_changed(session);
        Ok(r)
    })
}

/// libssl's `SSL_SESSION_set_timeout`; a cached session is re-sorted.
#[unsafe(no_mangle)]
pub extern "C" fn SSL_SESSION_set_timeout(s: *mut SSL_SESSION, t: c_long) -> c_long {
    entry!(SSL_SESSION_set_timeout, 0, "session={s:?}, t={t}" => {
        let session = required(s, "session")?;
        // SAFETY: live session.
        let r = unsafe { real::SSL_SESSION_set_timeout()?(session.as_ptr(), t) };
        context::session_time_changed(session);
        Ok(r)
    })
}

// --- libsslsess's own API ------------------------------------------------

/// The version of libsslsess, e.g. "0.1.0".
#[unsafe(no_mangle)]
pub extern "C" fn sslsess_version() -> *const c_char {
    const VERSION: &CStr = cstr!(env!("CARGO_PKG_VERSION"));
    VERSION.as_ptr()
}

/// 1 when libsslsess is in place and found every libssl function it
/// forwards to, 0 otherwise.
#[unsafe(no_mangle)]
pub extern "C" fn sslsess_is_active() -> c_int {
    entry!(sslsess_is_active, 0, "" => { Ok(libssl::all_resolved() as c_int) })
}
