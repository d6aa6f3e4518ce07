//! `SSL_SESSION` handles: the owning reference the cache stores, and what
//! the cache needs to know of a session (its key and its expiry).

use std::ptr::NonNull;

use openssl_sys::{SSL_CTX, SSL_SESSION};

use crate::cache::{CurrentKey, Expiry, Offer, SessionKey};
use crate::errors::Error;
use crate::libssl;

/// One counted reference to an `SSL_SESSION`.
///
/// Acquiring calls `SSL_SESSION_up_ref`, dropping calls `SSL_SESSION_free`:
/// every reference the library takes or releases is one of these.
/// Equality is object identity.
#[derive(Debug, PartialEq, Eq)]
pub struct SessionRef(NonNull<SSL_SESSION>);

// SAFETY: SSL_SESSION reference counting is atomic in OpenSSL 3.0 and the
// fields the cache reads (id, version, time) are read under the same rules
// as libssl's own cache.
unsafe impl Send for SessionRef {}
unsafe impl Sync for SessionRef {}

impl SessionRef {
    /// Takes a new reference to `session`.
    ///
    /// # Safety
    /// `session` must be a live `SSL_SESSION`.
    pub unsafe fn acquire(session: NonNull<SSL_SESSION>) -> Self {
        // SAFETY: live per the contract.
        unsafe { openssl_sys::SSL_SESSION_up_ref(session.as_ptr()) };
        SessionRef(session)
    }

    /// The session this reference is to.
    pub fn session(&self) -> NonNull<SSL_SESSION> {
        self.0
    }

    /// Hands this reference over to C (e.g. a get-session callback's result
    /// with `*copy = 0`): it will be released by whoever receives it.
    pub fn into_raw(self) -> *mut SSL_SESSION {
        let ptr = self.0.as_ptr();
        std::mem::forget(self);
        ptr
    }

    pub fn is(&self, session: NonNull<SSL_SESSION>) -> bool {
        self.0 == session
    }
}

impl CurrentKey for SessionRef {
    fn current_key(&self) -> Option<SessionKey> {
        key_of(self.0).ok()
    }
}

impl Clone for SessionRef {
    fn clone(&self) -> Self {
        // SAFETY: self holds a reference, so the session is live.
        unsafe { SessionRef::acquire(self.0) }
    }
}

impl Drop for SessionRef {
    fn drop(&mut self) {
        // SAFETY: releases the reference this value owns.
        unsafe { openssl_sys::SSL_SESSION_free(self.0.as_ptr()) }
    }
}

/// A session offered to the cache by `SSL_CTX_add_session`: no reference
/// yet; one is taken (a [`SessionRef`]) only if the cache keeps it.
pub struct SessionOffer(NonNull<SSL_SESSION>);

impl SessionOffer {
    /// # Safety
    /// `session` must stay live as long as this value exists.
    pub unsafe fn new(session: NonNull<SSL_SESSION>) -> Self {
        SessionOffer(session)
    }
}

impl Offer<SessionRef> for SessionOffer {
    fn is(&self, cached: &SessionRef) -> bool {
        cached.is(self.0)
    }

    fn into_handle(self) -> SessionRef {
        // SAFETY: live per `new`'s contract.
        unsafe { SessionRef::acquire(self.0) }
    }
}

/// The cache key of `session`: its protocol version and session id.
pub fn key_of(session: NonNull<SSL_SESSION>) -> Result<SessionKey, Error> {
    let mut len: std::ffi::c_uint = 0;
    // SAFETY: live session; the id pointer stays valid while we copy it.
    let (version, id) = unsafe {
        let ptr = openssl_sys::SSL_SESSION_get_id(session.as_ptr(), &mut len);
        let version = openssl_sys::SSL_SESSION_get_protocol_version(session.as_ptr());
        let id: &[u8] = if ptr.is_null() || len == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(ptr, len as usize)
        };
        (version, id)
    };
    SessionKey::new(version, id)
        .ok_or_else(|| Error::InvalidArgument(format!("session id of {len} bytes")))
}

/// When `session` expires, by its current time and timeout.
pub fn expiry_of(session: NonNull<SSL_SESSION>) -> Expiry {
    // SAFETY: live session; plain getters.
    let (time, timeout) = unsafe {
        (
            openssl_sys::SSL_SESSION_get_time(session.as_ptr()),
            openssl_sys::SSL_SESSION_get_timeout(session.as_ptr()),
        )
    };
    Expiry::from_time_and_timeout(time as i64, timeout as i64)
}

pub fn now() -> i64 {
    // SAFETY: time(NULL) has no preconditions.
    unsafe { libc::time(std::ptr::null_mut()) as i64 }
}

/// Whether `session` has an empty session id.
pub fn has_empty_id(session: NonNull<SSL_SESSION>) -> bool {
    let mut len: std::ffi::c_uint = 0;
    // SAFETY: live session.
    unsafe { openssl_sys::SSL_SESSION_get_id(session.as_ptr(), &mut len) };
    len == 0
}

/// Calls `ctx`'s remove-session callback, if it has one, with `session`.
pub fn report_removed(ctx: NonNull<SSL_CTX>, session: NonNull<SSL_SESSION>) {
    // SAFETY: ctx is live; the callback receives what libssl would give it.
    unsafe {
        if let Some(cb) = libssl::SSL_CTX_sess_get_remove_cb(ctx.as_ptr()) {
            cb(ctx.as_ptr(), session.as_ptr());
        }
    }
}

/// Starts fetching what releasing `session` will touch: its id (read by
/// libssl's remove) and the two lines after it, where libssl 3.0 keeps the
/// flag that remove sets and the reference count (measured on 3.0.19: id at
/// offset 600, the flag 88 bytes after it, the count 120). Only a hint: a
/// prefetch cannot fault, so another layout makes it useless, not wrong.
pub fn prefetch_release(session: NonNull<SSL_SESSION>) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: live session; with a NULL length libssl only computes the
        // id's address. A prefetch dereferences nothing.
        unsafe {
            let id = openssl_sys::SSL_SESSION_get_id(session.as_ptr(), std::ptr::null_mut())
                as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(id);
            _mm_prefetch::<_MM_HINT_T0>(id.wrapping_add(64));
            _mm_prefetch::<_MM_HINT_T0>(id.wrapping_add(128));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = session;
}
