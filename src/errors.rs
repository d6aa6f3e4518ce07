//! Errors of the library and how they reach OpenSSL's error queue.
//!
//! The boundary is the only place that raises: an entry point's `Result`
//! becomes its C return value, and its `Err` one entry on the queue, with
//! library `ERR_LIB_SSL`, the nearest libssl reason, and the entry point's
//! name, file and line. A 0 that is not an error (duplicate add, absent
//! remove) is an `Ok` value and leaves the queue untouched.

use std::ffi::{CStr, CString, c_int};
use std::fmt;

// Reason codes as `<openssl/err.h>` 3.0 defines them.
const ERR_LIB_SSL: c_int = 20;
const ERR_RFLAG_FATAL: c_int = 0x1 << 18;
const ERR_RFLAG_COMMON: c_int = 0x2 << 18;
const ERR_R_FATAL: c_int = ERR_RFLAG_FATAL | ERR_RFLAG_COMMON;
const ERR_R_PASSED_NULL_PARAMETER: c_int = 258 | ERR_R_FATAL;
const ERR_R_INTERNAL_ERROR: c_int = 259 | ERR_R_FATAL;
const ERR_R_PASSED_INVALID_ARGUMENT: c_int = 262 | ERR_RFLAG_COMMON;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A required pointer argument was NULL.
    NullArgument(&'static str),
    /// An argument is present but unusable.
    InvalidArgument(String),
    /// libssl lacks a function we forward to (not an OpenSSL 3.0 libssl?).
    Unresolved(&'static str),
    /// libssl failed a call we forwarded and said nothing about it.
    LibsslFailed(&'static str),
    /// OpenSSL could not give us what we asked for (ex_data, a context).
    Internal(&'static str),
    /// A bug in libsslsess: a panic was caught at the boundary.
    Panic,
}

impl Error {
    fn reason(&self) -> c_int {
        match self {
            Error::NullArgument(_) => ERR_R_PASSED_NULL_PARAMETER,
            Error::InvalidArgument(_) => ERR_R_PASSED_INVALID_ARGUMENT,
            Error::Unresolved(_) | Error::LibsslFailed(_) | Error::Internal(_) | Error::Panic => {
                ERR_R_INTERNAL_ERROR
            }
        }
    }

    /// Pushes this error onto the calling thread's OpenSSL error queue,
    /// attributed to `func` at `file:line`.
    pub fn raise(&self, func: &CStr, file: &CStr, line: u32) {
        let text = CString::new(format!("libsslsess: {self}")).unwrap_or_default();
        // SAFETY: all strings are NUL-terminated and outlive the calls;
        // ERR_set_error copies the formatted text.
        unsafe {
            openssl_sys::ERR_new();
            openssl_sys::ERR_set_debug(file.as_ptr(), line as c_int, func.as_ptr());
            openssl_sys::ERR_set_error(ERR_LIB_SSL, self.reason(), c"%s".as_ptr(), text.as_ptr());
        }
    }
}

/// Runs `f`, then drops whatever it left on the calling thread's error
/// queue: for work on libsslsess's own behalf (a marker context, learning),
/// whose failures have a fallback and are not the application's errors.
/// The queue is restored even if `f` panics (the boundary catches it).
pub fn leaving_queue_as_found<T>(f: impl FnOnce() -> T) -> T {
    /// Pops the queue back to the mark set just before it was made.
    struct Mark;
    impl Drop for Mark {
        fn drop(&mut self) {
            // SAFETY: no preconditions; the pop goes back to this value's mark.
            unsafe { crate::libssl::ERR_pop_to_mark() };
        }
    }
    // SAFETY: no preconditions.
    unsafe { crate::libssl::ERR_set_mark() };
    let _mark = Mark;
    f()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NullArgument(name) => write!(f, "argument '{name}' is NULL"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::Unresolved(sym) => {
                write!(f, "libssl does not provide {sym}@OPENSSL_3.0.0")
            }
            Error::LibsslFailed(call) => write!(f, "libssl's {call} failed"),
            Error::Internal(what) => write!(f, "{what}"),
            Error::Panic => write!(f, "internal error (caught panic)"),
        }
    }
}
