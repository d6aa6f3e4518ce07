//! `SSL_SESSION` handles: the owning reference the cache stores, what the
//! cache needs to know of a session (its key and its expiry), and libssl's
//! not-resumable flag, learned once and then written for sessions that
//! leave a cache.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering, fence};

use openssl_sys::{SSL_CTX, SSL_SESSION};

use crate::cache::{CurrentKey, Expiry, Offer, SessionKey};
use crate::errors::Error;
use crate::libssl;
use crate::sync;

/// One counted reference to an `SSL_SESSION`.
///
/// Acquiring calls `SSL_SESSION_up_ref`, dropping calls `SSL_SESSION_free`,
/// and adopting takes over a reference a libssl constructor returned: every
/// reference the library takes, owns or releases is one of these.
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

/// Where `session`'s id buffer starts (inside the session) and the id's
/// length.
fn id_of(session: NonNull<SSL_SESSION>) -> (*const u8, usize) {
    let mut len: std::ffi::c_uint = 0;
    // SAFETY: live session (every caller holds it); a plain getter.
    let id = unsafe { openssl_sys::SSL_SESSION_get_id(session.as_ptr(), &mut len) };
    (id, len as usize)
}

/// Whether libssl would resume `session` (it is not marked non-resumable).
pub fn is_resumable(session: NonNull<SSL_SESSION>) -> bool {
    // SAFETY: live session; a plain getter.
    unsafe { libssl::SSL_SESSION_is_resumable(session.as_ptr()) == 1 }
}

/// The cache key of `session`: its protocol version and session id.
pub fn key_of(session: NonNull<SSL_SESSION>) -> Result<SessionKey, Error> {
    let (ptr, len) = id_of(session);
    // SAFETY: live session; the id pointer stays valid while we copy it.
    let (version, id) = unsafe {
        let version = openssl_sys::SSL_SESSION_get_protocol_version(session.as_ptr());
        let id: &[u8] = if ptr.is_null() || len == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(ptr, len)
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
    id_of(session).1 == 0
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
/// libssl's remove, or its length by the flag write) and the two lines
/// after it, where libssl 3.0 keeps the not-resumable flag (see
/// [`NotResumableFlag`]) and the reference count (measured on 3.0.19: id at
/// offset 600, the flag 88 bytes after it, the count 120). Only a hint: a
/// prefetch cannot fault, so another layout makes it useless, not wrong.
pub fn prefetch_release(session: NonNull<SSL_SESSION>) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: live session; with a NULL length libssl only computes the
        // id's address (unlike `id_of`, which reads the length: the miss
        // this prefetch is for). A prefetch dereferences nothing.
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
/// into libssl per evicted session. Its place is not assumed from a layout
/// but learned (see [`NotResumableFlag::learn`]) by watching that call set
/// it.
#[derive(Debug, Clone, Copy)]
pub struct NotResumableFlag {
    /// Bytes from the session id (`SSL_SESSION_get_id`) to the flag's byte
    /// that libssl's call turns from 0 to 1; the id is the anchor because
    /// libssl gives its address.
    after_id: usize,
}

impl std::fmt::Display for NotResumableFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes after the session id", self.after_id)
    }
}

/// libssl's session id buffer (`SSL_MAX_SSL_SESSION_ID_LENGTH`).
const ID_BUFFER: usize = 32;
/// The bytes after the id buffer that learning compares: fields of the
/// session in every libssl 3.x (the structure runs on for hundreds of bytes).
const FLAG_WINDOW: usize = 128;

impl NotResumableFlag {
    /// Learns where the flag is: `libssl_marks` must be libssl's own way of
    /// setting it (its `SSL_CTX_remove_session` on a context that caches
    /// nothing). A probe session is marked that way; exactly one byte of
    /// [`FLAG_WINDOW`] must change, from 0 to 1, and the probe must have
    /// become non-resumable. A second probe must then become non-resumable
    /// by writing that byte alone, and libssl's call must change nothing
    /// more in the window. Anything else (another layout, a libssl that does
    /// more) gives `None`, and libssl keeps being called.
    ///
    /// The flag is an `int` in every libssl 3.x; a byte of 1 sets an `int`
    /// that is 0 or 1 (its low byte on either byte order, which is the byte
    /// that changes). A one-bit field whose neighbours are 0 on a fresh
    /// session would pass too, and the byte write would clear them: that is
    /// the layout this relies on libssl not to have.
    pub fn learn(libssl_marks: impl Fn(NonNull<SSL_SESSION>)) -> Option<Self> {
        let first = Probe::new()?;
        let before = first.window()?;
        libssl_marks(first.session());
        if first.is_resumable() {
            return None;
        }
        let after_id = ID_BUFFER + single_flag_byte(&before, &first.window()?)?;
        let flag = NotResumableFlag { after_id };
        let second = Probe::new()?;
        flag.set(second.session());
        if second.is_resumable() {
            return None;
        }
        let set = second.window()?;
        libssl_marks(second.session());
        (second.window()? == set).then_some(flag)
    }

    /// Sets the flag of `session`, as libssl's remove does: not for a
    /// session with an empty id, which libssl leaves alone.
    ///
    /// libssl writes the flag under a context's lock, whose release orders
    /// the write before the writer's later `SSL_SESSION_free` (a relaxed
    /// decrement in 3.0, with an acquire fence when it frees); the release
    /// fence here does the same for the caller's release of its reference.
    /// Readers (`SSL_SESSION_is_resumable`) take no lock, as with libssl.
    pub fn set(&self, session: NonNull<SSL_SESSION>) {
        let (id, len) = id_of(session);
        if len == 0 {
            return;
        }
        let flag = id.wrapping_add(self.after_id) as *mut u8;
        // SAFETY: the id is at a fixed place inside the session; the byte
        // was learned to be the session's flag, inside it too. libssl reads
        // the flag as a plain int on other threads, without a lock: the same
        // race as libssl's own write.
        sync::unraced_store(|| unsafe { AtomicU8::from_ptr(flag) }.store(1, Ordering::Relaxed));
        fence(Ordering::Release);
    }
}

/// The offset in `before`/`after` of the one byte that went from 0 to 1, if
/// every other byte is unchanged.
fn single_flag_byte(before: &[u8], after: &[u8]) -> Option<usize> {
    if before.len() != after.len() {
        return None;
    }
    let mut changed = (0..before.len()).filter(|&at| before[at] != after[at]);
    let at = changed.next()?;
    (changed.next().is_none() && before[at] == 0 && after[at] == 1).then_some(at)
}

/// A fresh session with a full-length id, resumable, that only learning
/// sees. (Making and freeing it runs the application's `SSL_SESSION`
/// ex_data callbacks, as for any session.)
struct Probe(SessionRef);

impl Probe {
    fn new() -> Option<Self> {
        // SAFETY: plain constructor.
        let session = NonNull::new(unsafe { libssl::SSL_SESSION_new() })?;
        // SAFETY: the constructor's reference, which nothing else owns.
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
        is_resumable(self.session())
    }

    /// The [`FLAG_WINDOW`] bytes after the id buffer (no other thread sees
    /// a probe, so none writes them meanwhile).
    fn window(&self) -> Option<[u8; FLAG_WINDOW]> {
        let (id, _) = id_of(self.session());
        if id.is_null() {
            return None;
        }
        // SAFETY: the window lies inside the live session (see FLAG_WINDOW).
        Some(unsafe {
            std::ptr::read_unaligned(id.wrapping_add(ID_BUFFER).cast::<[u8; FLAG_WINDOW]>())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::ptr::NonNull;

    use openssl_sys::SSL_SESSION;

    use super::{NotResumableFlag, Probe, single_flag_byte};
    use crate::libssl::{self, real};

    fn window_with(at: usize, value: u8) -> Vec<u8> {
        let mut w = vec![0x11u8; 64];
        w[at] = value;
        w
    }

    #[test]
    fn finds_the_one_byte_that_went_from_0_to_1() {
        assert_eq!(
            single_flag_byte(&window_with(56, 0), &window_with(56, 1)),
            Some(56)
        );
        assert_eq!(
            single_flag_byte(&window_with(0, 0), &window_with(0, 1)),
            Some(0)
        );
    }

    #[test]
    fn refuses_anything_but_one_byte_from_0_to_1() {
        let before = window_with(8, 0);
        // Nothing changed.
        assert_eq!(single_flag_byte(&before, &before), None);
        // 0 to 2, or 3 to 1.
        assert_eq!(single_flag_byte(&before, &window_with(8, 2)), None);
        assert_eq!(
            single_flag_byte(&window_with(8, 3), &window_with(8, 1)),
            None
        );
        // A second byte changed too.
        let mut after = window_with(8, 1);
        after[40] ^= 1;
        assert_eq!(single_flag_byte(&before, &after), None);
        // Windows of different lengths.
        assert_eq!(single_flag_byte(&before, &after[..60]), None);
    }

    /// libssl's own remove on a context of its own (made by libssl itself,
    /// not through this library's exports).
    fn libssl_remove() -> impl Fn(NonNull<SSL_SESSION>) {
        let remove = real::SSL_CTX_remove_session().expect("libssl's SSL_CTX_remove_session");
        let new = real::SSL_CTX_new().expect("libssl's SSL_CTX_new");
        // SAFETY: plain constructor; the context is leaked, like a marker.
        let ctx = unsafe { new(openssl_sys::TLS_method()) };
        assert!(!ctx.is_null());
        // SAFETY: libssl's remove on its own live context, with a live session.
        move |s| unsafe {
            remove(ctx, s.as_ptr());
        }
    }

    /// The id context (its length and bytes) is in the window; setting it
    /// is "libssl doing more" or something else.
    fn set_id_context(s: NonNull<SSL_SESSION>, ctx: &[u8]) {
        // SAFETY: live session; ctx.len() bytes.
        let ok = unsafe {
            libssl::SSL_SESSION_set1_id_context(s.as_ptr(), ctx.as_ptr(), ctx.len() as _)
        };
        assert_eq!(ok, 1);
    }

    #[test]
    fn learns_the_flag_and_writes_what_libssl_writes() {
        let libssl_marks = libssl_remove();
        let flag = NotResumableFlag::learn(&libssl_marks).expect("learned from this libssl");
        // On fresh sessions, the flag write and libssl's remove each change
        // the same one byte of the window, and nothing next to it. (Each
        // probe against itself: two probes' windows may differ, in the
        // creation time they hold.)
        let change = |mark: &dyn Fn(NonNull<SSL_SESSION>)| {
            let probe = Probe::new().unwrap();
            let before = probe.window().unwrap();
            mark(probe.session());
            assert!(!probe.is_resumable());
            single_flag_byte(&before, &probe.window().unwrap())
        };
        let ours = change(&|s| flag.set(s));
        assert!(ours.is_some());
        assert_eq!(ours, change(&libssl_marks));
    }

    #[test]
    fn learns_nothing_from_a_call_that_does_more_or_less() {
        let libssl_marks = libssl_remove();
        // Marks nothing.
        assert!(NotResumableFlag::learn(|_| {}).is_none());
        // Changes the window but leaves the probe resumable.
        assert!(NotResumableFlag::learn(|s| set_id_context(s, b"more")).is_none());
        // Turns exactly one byte from 0 to 1 (the id context's length; its
        // byte stays 0) and leaves the probe resumable: refused by either of
        // learn's resumability checks (the test fails without both).
        assert!(NotResumableFlag::learn(|s| set_id_context(s, b"\0")).is_none());
        // Marks, and changes another field.
        assert!(
            NotResumableFlag::learn(|s| {
                libssl_marks(s);
                set_id_context(s, b"more");
            })
            .is_none()
        );
        // Marks the first probe alone, then does more on the second.
        let calls = Cell::new(0);
        assert!(
            NotResumableFlag::learn(|s| {
                libssl_marks(s);
                calls.set(calls.get() + 1);
                if calls.get() == 2 {
                    set_id_context(s, b"more");
                }
            })
            .is_none()
        );
        assert_eq!(calls.get(), 2);
    }
}
