//! `SSL_SESSION` handles: the owning reference the cache stores, and what
//! the cache needs to know of a session (its key and its expiry).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering};

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

    /// Takes over the reference a libssl constructor returned (no count
    /// change: the constructor's reference becomes this value's).
    ///
    /// # Safety
    /// `session` must be a live `SSL_SESSION` whose reference the caller
    /// owns and gives up.
    pub unsafe fn adopt(session: NonNull<SSL_SESSION>) -> Self {
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

/// Where libssl keeps a session's "not resumable" flag, which it sets on
/// every session that leaves its cache and which `SSL_SESSION_is_resumable`
/// reads. libssl 3.0 has no setter for it other than its own
/// `SSL_CTX_remove_session`; writing it here instead saves a locked call
/// into libssl per evicted session. It is not assumed from a layout but
/// learned (see [`NotResumableFlag::learn`]) by watching that call set it.
#[derive(Debug, Clone, Copy)]
pub struct NotResumableFlag {
    /// Bytes from the session id (`SSL_SESSION_get_id`) to the flag, an
    /// `int`; the id is the anchor because libssl gives its address.
    after_id: usize,
}

/// libssl's session id buffer (`SSL_MAX_SSL_SESSION_ID_LENGTH`).
const ID_BUFFER: usize = 32;
/// The bytes after the id buffer that learning compares: fields of the
/// session in every libssl 3.x (the structure runs on for hundreds of bytes).
const FLAG_WINDOW: usize = 128;

impl NotResumableFlag {
    /// Learns where the flag is: `libssl_marks` must be libssl's own way of
    /// setting it (its `SSL_CTX_remove_session` on a context that caches
    /// nothing). A probe session is marked that way; exactly one `int` of
    /// [`FLAG_WINDOW`] must change, from 0 to 1, and the probe must have
    /// become non-resumable. A second probe must then become non-resumable
    /// by that write alone, and libssl's call must find nothing more to
    /// change on it. Anything else (another layout, a libssl that does more)
    /// gives `None`, and libssl keeps being called.
    pub fn learn(libssl_marks: impl Fn(NonNull<SSL_SESSION>)) -> Option<Self> {
        let first = Probe::new()?;
        let before = first.window()?;
        libssl_marks(first.session());
        if first.is_resumable() {
            return None;
        }
        let after_id = ID_BUFFER + single_flag_word(&before, &first.window()?)?;
        let flag = NotResumableFlag { after_id };
        let second = Probe::new()?;
        if !flag.set(second.session()) || second.is_resumable() {
            return None;
        }
        let set = second.window()?;
        libssl_marks(second.session());
        (second.window()? == set).then_some(flag)
    }

    /// Sets the flag of `session`, as libssl's remove does: not for a
    /// session with an empty id, which libssl leaves alone. False (nothing
    /// written) if the flag's address is not aligned for an `int`, which
    /// libssl's never is.
    ///
    /// libssl writes the flag under a context's lock but reads it under
    /// none; a relaxed store is the same plain store, and it is ordered
    /// before the caller's release of its reference.
    pub fn set(&self, session: NonNull<SSL_SESSION>) -> bool {
        let mut len: std::ffi::c_uint = 0;
        // SAFETY: live session; the id is at a fixed place inside it.
        let id = unsafe { openssl_sys::SSL_SESSION_get_id(session.as_ptr(), &mut len) };
        if len == 0 {
            return true;
        }
        let flag = id.wrapping_add(self.after_id) as *mut i32;
        if !flag.is_aligned() {
            return false;
        }
        // SAFETY: learned to be the session's flag, an aligned int inside
        // the live session; libssl accesses it as a plain int.
        unsafe { AtomicI32::from_ptr(flag) }.store(1, Ordering::Relaxed);
        true
    }
}

/// The offset in `before`/`after` of the one aligned `int` that went from 0
/// to 1, if every other byte is unchanged.
pub fn single_flag_word(before: &[u8], after: &[u8]) -> Option<usize> {
    const INT: usize = std::mem::size_of::<i32>();
    if before.len() != after.len() || before.len() % INT != 0 {
        return None;
    }
    let word = |b: &[u8], at: usize| i32::from_ne_bytes(b[at..at + INT].try_into().unwrap());
    let mut changed = (0..before.len())
        .step_by(INT)
        .filter(|&at| before[at..at + INT] != after[at..at + INT]);
    let at = changed.next()?;
    (changed.next().is_none() && word(before, at) == 0 && word(after, at) == 1).then_some(at)
}

/// A fresh session with a full-length id, resumable, that only learning
/// sees.
struct Probe(SessionRef);

impl Probe {
    fn new() -> Option<Self> {
        // SAFETY: plain constructor; its reference becomes the probe's.
        let session = NonNull::new(unsafe { libssl::SSL_SESSION_new() })?;
        let probe = Probe(unsafe { SessionRef::adopt(session) });
        let id = [0x5a_u8; ID_BUFFER];
        // SAFETY: live session; id has ID_BUFFER bytes.
        let set =
            unsafe { libssl::SSL_SESSION_set1_id(session.as_ptr(), id.as_ptr(), ID_BUFFER as _) };
        (set == 1 && probe.is_resumable()).then_some(probe)
    }

    fn session(&self) -> NonNull<SSL_SESSION> {
        self.0.session()
    }

    fn is_resumable(&self) -> bool {
        // SAFETY: live session.
        unsafe { libssl::SSL_SESSION_is_resumable(self.session().as_ptr()) == 1 }
    }

    /// The [`FLAG_WINDOW`] bytes after the id buffer (the id must be at
    /// least as aligned as an int for learning to go on).
    fn window(&self) -> Option<[u8; FLAG_WINDOW]> {
        // SAFETY: live session, that no other thread sees; the window lies
        // inside the session (see FLAG_WINDOW).
        unsafe {
            let id = openssl_sys::SSL_SESSION_get_id(self.session().as_ptr(), std::ptr::null_mut());
            let start = id.wrapping_add(ID_BUFFER);
            if id.is_null() || !start.cast::<i32>().is_aligned() {
                return None;
            }
            Some(std::ptr::read(start.cast::<[u8; FLAG_WINDOW]>()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::single_flag_word;

    fn window_with(at: usize, value: i32) -> Vec<u8> {
        let mut w = vec![0x11u8; 64];
        w[at..at + 4].copy_from_slice(&value.to_ne_bytes());
        w
    }

    #[test]
    fn finds_the_one_int_that_went_from_0_to_1() {
        assert_eq!(
            single_flag_word(&window_with(56, 0), &window_with(56, 1)),
            Some(56)
        );
        assert_eq!(
            single_flag_word(&window_with(0, 0), &window_with(0, 1)),
            Some(0)
        );
    }

    #[test]
    fn refuses_anything_but_one_int_from_0_to_1() {
        let before = window_with(8, 0);
        // Nothing changed.
        assert_eq!(single_flag_word(&before, &before), None);
        // 0 to 2, or 3 to 1.
        assert_eq!(single_flag_word(&before, &window_with(8, 2)), None);
        assert_eq!(
            single_flag_word(&window_with(8, 3), &window_with(8, 1)),
            None
        );
        // A second word changed too.
        let mut after = window_with(8, 1);
        after[40] ^= 1;
        assert_eq!(single_flag_word(&before, &after), None);
        // A change across a word boundary is two words.
        let mut after = before.clone();
        after[7] = 0;
        after[8] = 1;
        assert_eq!(single_flag_word(&before, &after), None);
        // Windows of different or unaligned lengths.
        assert_eq!(single_flag_word(&before, &after[..60]), None);
        assert_eq!(
            single_flag_word(&before[..62], &window_with(8, 1)[..62]),
            None
        );
    }
}
