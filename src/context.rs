//! Per-`SSL_CTX` state and the session-cache operations on it, with
//! libssl 3.0's semantics (see README, "Compatibility").
//!
//! A [`CtxCache`] lives in its context's ex_data: an ex_data "new" callback
//! creates it in `SSL_CTX_new`, before the context is shared, and the "free"
//! callback drops it (releasing any reference still held) when the context
//! dies. The connection's *session context* is the `SSL_CTX` it was
//! created from, which a servername callback's `SSL_set_SSL_CTX` does not
//! change; it is recorded in the `SSL`'s ex_data when such a switch happens
//! (until then it is simply the connection's context).
//!
//! No lock of ours is held while libssl or an application callback runs:
//! the cache core returns every session it lets go of, and the callers here
//! report and release them afterwards.

use std::cell::Cell;
use std::ffi::{c_int, c_long, c_uchar, c_void};
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use openssl_sys::{SSL, SSL_CTX, SSL_SESSION};

use crate::cache::{Added, FlushScope, SessionCache, SessionKey};
use crate::config::{self, trace};
use crate::errors::{self, Error};
use crate::libssl::{self, GetSessionCb, real};
use crate::session::{self, NotResumableFlag, SessionOffer, SessionRef};
use crate::sync::{self, Lock, SharedLock};

/// The state libsslsess keeps for one `SSL_CTX`.
pub struct CtxCache {
    sessions: SessionCache<SessionRef>,
    /// The application's get-session callback (libssl's slot holds ours).
    app_get_cb: AtomicUsize,
    /// Sessions our lookup handed to libssl through the get-session
    /// callback. libssl counted each as a miss and a callback hit; plain
    /// libssl would have counted neither, so the statistics subtract them.
    served: AtomicU64,
    /// The context's cache mode and size limit, as libssl holds them, read
    /// once and re-read after every `SSL_CTX_ctrl` that sets them (all of
    /// which pass through libsslsess; libssl never sets them itself). -1:
    /// not read yet.
    mode: AtomicI64,
    size_limit: AtomicI64,
    /// Serialises refreshes, so that the last one stores what libssl holds
    /// after the last set.
    refreshing: Lock<()>,
}

/// What a context's ex_data slot points to while the context is being
/// freed: ex_data free callbacks that run after ours, and callbacks run by
/// the final release, may still call into the cache; they must neither find
/// the freed state nor create a new one.
fn dead() -> &'static CtxCache {
    static DEAD: OnceLock<CtxCache> = OnceLock::new();
    sync::get_or_init(&DEAD, CtxCache::new)
}

/// Bumped whenever a context's state is freed: invalidates every thread's
/// `last_used`.
static FREED_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Takes the statics' atomics out of a race detector's checks (see
/// `sync::exempt_from_race_checks`); called at load time.
pub fn exempt_atomics_from_race_checks() {
    sync::exempt_from_race_checks(&FREED_GENERATION);
    sync::exempt_from_race_checks(&NEXT_STRIPE);
    sync::exempt_from_race_checks(&LEARNING_CLAIMED);
}

/// What each thread remembers (one thread-local, so one TLS lookup).
struct ThreadMemory {
    /// (context, its state, FREED_GENERATION when recorded): saves the
    /// ex_data lookup when a thread works on one context, the usual case.
    last_used: Cell<(usize, usize, u64)>,
    /// The (context, session, its key) our lookup just handed to libssl.
    /// libssl then "imports" it with `SSL_CTX_add_session`; plain libssl,
    /// having found it in its own cache, would not, so that one add is a
    /// no-op, whatever happened to the cache meanwhile: re-adding a session
    /// another thread has just removed would undo TLS 1.3 anti-replay. The
    /// key tells a later session allocated at the same address apart.
    just_served: Cell<Option<(usize, usize, SessionKey)>>,
}

thread_local! {
    static THREAD: ThreadMemory = const {
        ThreadMemory {
            last_used: Cell::new((0, 0, 0)),
            just_served: Cell::new(None),
        }
    };
}

impl CtxCache {
    fn new() -> Self {
        CtxCache {
            sessions: SessionCache::with_clock(crate::clock::monotonic_ns),
            app_get_cb: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            mode: AtomicI64::new(-1),
            size_limit: AtomicI64::new(-1),
            refreshing: Lock::new(()),
        }
    }

    /// The state of `ctx`, created on first use for a context that was born
    /// before libsslsess registered its ex_data index.
    pub fn of<'a>(ctx: NonNull<SSL_CTX>) -> Result<&'a CtxCache, Error> {
        // Fast path: the context this thread used last, unless any context
        // died since (its address could have been reused).
        let generation = FREED_GENERATION.load(Ordering::Acquire);
        if let Ok((last_ctx, state, seen)) = THREAD.try_with(|t| t.last_used.get()) {
            if last_ctx == ctx.as_ptr() as usize && seen == generation && state != 0 {
                // SAFETY: no state was freed since it was recorded, and ctx is
                // live for this call.
                return Ok(unsafe { &*(state as *const CtxCache) });
            }
        }
        Self::of_and_remember(ctx, generation)
    }

    /// [`Self::of`] for a context this thread did not use last.
    #[cold]
    #[inline(never)]
    fn of_and_remember<'a>(ctx: NonNull<SSL_CTX>, generation: u64) -> Result<&'a CtxCache, Error> {
        let state = Self::lookup_slow(ctx)?;
        if std::ptr::eq(state, dead()) {
            return Err(Error::Internal("the SSL_CTX is being freed"));
        }
        let record = (
            ctx.as_ptr() as usize,
            state as *const _ as usize,
            generation,
        );
        let _ = THREAD.try_with(|t| t.last_used.set(record));
        Ok(state)
    }

    fn lookup_slow<'a>(ctx: NonNull<SSL_CTX>) -> Result<&'a CtxCache, Error> {
        let idx = indices()?.ctx;
        // SAFETY: ctx is live for the duration of the call that asked; the
        // state it points to is freed only with the context.
        let found = unsafe { openssl_sys::SSL_CTX_get_ex_data(ctx.as_ptr(), idx) };
        if let Some(state) = NonNull::new(found as *mut CtxCache) {
            return Ok(unsafe { &*state.as_ptr() });
        }
        static CREATING: Lock<()> = Lock::new(());
        let _serialised = CREATING.lock();
        let again = unsafe { openssl_sys::SSL_CTX_get_ex_data(ctx.as_ptr(), idx) };
        if let Some(state) = NonNull::new(again as *mut CtxCache) {
            return Ok(unsafe { &*state.as_ptr() });
        }
        let state = attach(ctx, idx)?;
        Ok(unsafe { &*state })
    }

    /// Takes this state's atomics out of a race detector's checks (see
    /// `sync::exempt_from_race_checks`); call it at the state's final address.
    fn exempt_atomics_from_race_checks(&self) {
        sync::exempt_from_race_checks(&self.app_get_cb);
        sync::exempt_from_race_checks(&self.served);
        sync::exempt_from_race_checks(&self.mode);
        sync::exempt_from_race_checks(&self.size_limit);
        self.sessions.exempt_atomics_from_race_checks();
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn cache_full(&self) -> u64 {
        self.sessions.cache_full()
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// `SSL_CTX_get_session_cache_mode(ctx)`.
    pub fn mode(&self, ctx: NonNull<SSL_CTX>) -> Result<c_long, Error> {
        match self.mode.load(Ordering::Relaxed) {
            -1 => self.refresh_settings(ctx).map(|(mode, _)| mode),
            mode => Ok(mode as c_long),
        }
    }

    /// The cache's size limit, 0 for unbounded.
    pub fn size_limit(&self, ctx: NonNull<SSL_CTX>) -> Result<usize, Error> {
        match self.size_limit.load(Ordering::Relaxed) {
            -1 => self.refresh_settings(ctx).map(|(_, size)| size),
            size => Ok(size as usize),
        }
    }

    /// Re-reads mode and size limit from libssl (after a control set them).
    pub fn refresh_settings(&self, ctx: NonNull<SSL_CTX>) -> Result<(c_long, usize), Error> {
        let _serialised = self.refreshing.lock();
        let mode = libssl::cache_mode(ctx.as_ptr())?;
        let size = libssl::cache_size_limit(ctx.as_ptr())?;
        self.mode.store(mode as i64, Ordering::Relaxed);
        self.size_limit.store(size as i64, Ordering::Relaxed);
        Ok((mode, size))
    }

    pub fn app_get_cb(&self) -> Option<GetSessionCb> {
        let f = self.app_get_cb.load(Ordering::Acquire);
        // SAFETY: only ever stores a GetSessionCb or 0.
        (f != 0).then(|| unsafe { std::mem::transmute::<usize, GetSessionCb>(f) })
    }

    pub fn set_app_get_cb(&self, cb: Option<GetSessionCb>) {
        self.app_get_cb
            .store(cb.map_or(0, |f| f as usize), Ordering::Release);
    }
}

/// Creates, stores and registers the state of `ctx`.
fn attach(ctx: NonNull<SSL_CTX>, idx: c_int) -> Result<*mut CtxCache, Error> {
    let state = Box::new(CtxCache::new());
    // A box's contents stay where they are: this is their final address.
    state.exempt_atomics_from_race_checks();
    let state = Box::into_raw(state);
    // SAFETY: ctx is live; on failure we still own the box.
    if unsafe { openssl_sys::SSL_CTX_set_ex_data(ctx.as_ptr(), idx, state.cast()) } != 1 {
        drop(unsafe { Box::from_raw(state) });
        return Err(Error::Internal(
            "cannot store the session cache in the SSL_CTX's ex_data",
        ));
    }
    registry().write().push(state as usize);
    // Route the server's lookup through our cache (see `lookup`).
    // SAFETY: live ctx; sets a field.
    unsafe {
        real::SSL_CTX_sess_set_get_cb()?(
            ctx.as_ptr(),
            Some(crate::boundary::sslsess_get_session_cb),
        )
    };
    Ok(state)
}

/// Every live `CtxCache`, for the rare calls that must find a session in
/// whichever cache holds it (a session's time changing). Read-mostly.
fn registry() -> &'static SharedLock<Vec<usize>> {
    static LIVE: SharedLock<Vec<usize>> = SharedLock::new(Vec::new());
    &LIVE
}

struct Indices {
    ctx: c_int,
    ssl: c_int,
}

/// Registers our ex_data indices once. Called from `SSL_CTX_new`, so the
/// "new" callbacks run for every context and connection created after.
fn indices() -> Result<&'static Indices, Error> {
    static INDICES: OnceLock<Option<Indices>> = OnceLock::new();
    sync::get_or_init(&INDICES, || {
        // SAFETY: registering callbacks with the prototypes OpenSSL wants.
        let ctx = unsafe {
            openssl_sys::CRYPTO_get_ex_new_index(
                openssl_sys::CRYPTO_EX_INDEX_SSL_CTX,
                0,
                std::ptr::null_mut(),
                Some(ctx_state_new),
                Some(ex_data_dup_empty),
                Some(ctx_state_free),
            )
        };
        let ssl = unsafe {
            openssl_sys::CRYPTO_get_ex_new_index(
                openssl_sys::CRYPTO_EX_INDEX_SSL,
                0,
                std::ptr::null_mut(),
                None,
                Some(ex_data_dup_empty),
                None,
            )
        };
        (ctx >= 0 && ssl >= 0).then_some(Indices { ctx, ssl })
    })
    .as_ref()
    .ok_or(Error::Internal(
        "cannot register libsslsess's ex_data indices",
    ))
}

/// Makes sure our ex_data indices exist before a context is created, and
/// learns how libssl binds its own calls.
pub fn prepare_for_new_context() {
    let _ = indices();
    libssl::binds_internally();
}

unsafe extern "C" fn ctx_state_new(
    parent: *mut c_void,
    _ptr: *mut c_void,
    _ad: *mut openssl_sys::CRYPTO_EX_DATA,
    idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    // A failure leaves the slot empty; `CtxCache::of` then creates it later.
    let _ = std::panic::catch_unwind(|| {
        if let Some(ctx) = NonNull::new(parent as *mut SSL_CTX) {
            let _ = attach(ctx, idx);
        }
    });
}

/// ex_data "dup" callback of both indices: the copy starts with an empty
/// slot. A context's cache is never shared with another context; and
/// `SSL_dup` makes its copy with `SSL_new` on the original's current context,
/// which is then the copy's session context, so no record is carried over.
unsafe extern "C" fn ex_data_dup_empty(
    _to: *mut openssl_sys::CRYPTO_EX_DATA,
    _from: *const openssl_sys::CRYPTO_EX_DATA,
    from_d: *mut *mut c_void,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) -> c_int {
    unsafe { *from_d = std::ptr::null_mut() };
    1
}

unsafe extern "C" fn ctx_state_free(
    parent: *mut c_void,
    ptr: *mut c_void,
    _ad: *mut openssl_sys::CRYPTO_EX_DATA,
    idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    if ptr.is_null() || std::ptr::eq(ptr as *const CtxCache, dead()) {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        let ctx = NonNull::new(parent as *mut SSL_CTX);
        // From here on the context answers "being freed". The slot exists,
        // so setting it reallocates nothing.
        if let Some(ctx) = ctx {
            // SAFETY: the context is live until its ex_data is freed.
            let dead = dead() as *const CtxCache as *mut c_void;
            unsafe { openssl_sys::SSL_CTX_set_ex_data(ctx.as_ptr(), idx, dead) };
        }
        registry().write().retain(|&p| p != ptr as usize);
        FREED_GENERATION.fetch_add(1, Ordering::AcqRel);
        // SAFETY: created by `attach`, unreachable from here on.
        let state = unsafe { Box::from_raw(ptr as *mut CtxCache) };
        // SSL_CTX_free flushed the cache (through our SSL_CTX_flush_sessions)
        // before freeing ex_data, unless libssl binds that call internally:
        // then the sessions are reported here, as SSL_CTX_free would have.
        if let Some(ctx) = ctx {
            if libssl::binds_internally() {
                retire_flushed(ctx, state.sessions.flush(FlushScope::All, true));
            }
        }
        drop(state);
    });
}

/// Before `ssl` switches to another context: records its session context,
/// the first time only (a second switch does not change it either).
pub fn remember_session_ctx(ssl: NonNull<SSL>) -> Result<(), Error> {
    let idx = indices()?.ssl;
    // SAFETY: live ssl; the context it holds a reference to outlives it.
    unsafe {
        if openssl_sys::SSL_get_ex_data(ssl.as_ptr(), idx).is_null() {
            let current = openssl_sys::SSL_get_SSL_CTX(ssl.as_ptr());
            if openssl_sys::SSL_set_ex_data(ssl.as_ptr(), idx, current as *mut c_void) != 1 {
                return Err(Error::Internal("cannot record the SSL's session context"));
            }
        }
    }
    Ok(())
}

/// The session context of `ssl`.
pub fn session_ctx_of(ssl: NonNull<SSL>) -> Result<NonNull<SSL_CTX>, Error> {
    let recorded = match indices() {
        // SAFETY: ssl is live; the recorded context outlives it (the SSL
        // holds a reference to its session context).
        Ok(i) => unsafe { openssl_sys::SSL_get_ex_data(ssl.as_ptr(), i.ssl) as *mut SSL_CTX },
        Err(_) => std::ptr::null_mut(),
    };
    NonNull::new(recorded)
        .or_else(|| NonNull::new(unsafe { openssl_sys::SSL_get_SSL_CTX(ssl.as_ptr()) }))
        .ok_or_else(|| Error::InvalidArgument("SSL has no SSL_CTX".into()))
}

/// Takes the "just served" mark: whether it was for (ctx, session, key).
fn take_served_mark(
    ctx: NonNull<SSL_CTX>,
    session: NonNull<SSL_SESSION>,
    key: &SessionKey,
) -> bool {
    let this = (ctx.as_ptr() as usize, session.as_ptr() as usize, *key);
    THREAD
        .try_with(|t| t.just_served.take() == Some(this))
        .unwrap_or(false)
}

/// Makes `session` non-resumable and reports it to `ctx`'s remove callback,
/// as libssl does for every session that leaves a cache or is removed.
///
/// libssl has no setter for the flag: its own `SSL_CTX_remove_session` sets
/// it on the session given (and then calls that context's remove callback,
/// after releasing its lock). Where the flag is was learned from that call
/// (see [`learned_flag`]), so it is written here. Otherwise libssl's call
/// is made: libssl's own cache in `ctx` is empty, so on a marker context
/// (see [`marker`]) instead of `ctx`, which takes the marker's lock rather
/// than `ctx`'s, which every thread removing from `ctx` would otherwise take
/// in turn; the remove callback is then `ctx`'s, called here. Under
/// `-Bsymbolic`, libssl's cache in `ctx` holds what libssl stored itself,
/// which must go too, so the call is made on `ctx`. libssl skips a session
/// with an empty id (neither marking nor reporting it): such a session is
/// non-resumable anyway unless it carries a ticket, and is reported here
/// all the same.
///
/// Returns whether libssl's own cache held a session with that key. When
/// libssl lacks `SSL_CTX_remove_session`, the session cannot be marked, but
/// is still reported, so that an application's own cache stays in step.
fn release_session(ctx: NonNull<SSL_CTX>, session: NonNull<SSL_SESSION>) -> Result<bool, Error> {
    let remove = real::SSL_CTX_remove_session().inspect_err(|_| {
        session::report_removed(ctx, session);
    })?;
    if (!libssl::binds_internally() && mark_outside(session, remove))
        || session::has_empty_id(session)
    {
        session::report_removed(ctx, session);
        return Ok(false);
    }
    // SAFETY: live ctx and session.
    Ok(unsafe { remove(ctx.as_ptr(), session.as_ptr()) } == 1)
}

/// Marks `session` non-resumable without `ctx`'s own cache: by writing the
/// learned flag, else through libssl's remove on a marker context (whose
/// cache is always empty, so that only marks it; libssl itself skips a
/// session with an empty id). False if neither is at hand.
fn mark_outside(session: NonNull<SSL_SESSION>, remove: libssl::RemoveSessionFn) -> bool {
    if let Some(flag) = learned_flag(remove) {
        flag.set(session);
        return true;
    }
    let Some(marker) = marker() else {
        return false;
    };
    // SAFETY: live marker context and session.
    unsafe { remove(marker.as_ptr(), session.as_ptr()) };
    true
}

/// libssl's not-resumable flag, learned on first use from libssl's own
/// `SSL_CTX_remove_session` on a marker context (see
/// `NotResumableFlag::learn`); `None` when that failed (for the life of the
/// process) or when `SSLSESS_MARK_VIA_LIBSSL` is set: the marker call is then
/// made for every session. Learning leaves OpenSSL's error queue as it found
/// it.
///
/// One thread learns; until it is done, every other call (another thread's,
/// or its own from inside learning) gets `None` and the marker call rather
/// than waiting: the probes run the application's `SSL_SESSION` ex_data
/// callbacks, which may wait for the caller of a remove, or be one.
fn learned_flag(remove: libssl::RemoveSessionFn) -> Option<&'static NotResumableFlag> {
    if let Some(flag) = LEARNED_FLAG.get() {
        return flag.as_ref();
    }
    if LEARNING_CLAIMED.swap(true, Ordering::Acquire) {
        return None;
    }
    let via_libssl = config::mark_via_libssl();
    let flag = if via_libssl { None } else { learn_flag(remove) };
    match (&flag, via_libssl) {
        (Some(flag), _) => trace!("not-resumable flag: learned from libssl's remove, {flag}"),
        (None, true) => trace!(
            "not-resumable flag: SSLSESS_MARK_VIA_LIBSSL is set, sessions are marked by libssl's remove"
        ),
        (None, false) => {
            trace!("not-resumable flag: not learned, sessions are marked by libssl's remove")
        }
    }
    sync::get_or_init(&LEARNED_FLAG, || flag).as_ref()
}

/// What [`learned_flag`] learned, once it is done.
static LEARNED_FLAG: OnceLock<Option<NotResumableFlag>> = OnceLock::new();
/// Taken by the one thread that learns (a thread that panics while learning
/// leaves it taken, and the marker call in use).
static LEARNING_CLAIMED: AtomicBool = AtomicBool::new(false);

/// Learns the flag with `remove`, libssl's own `SSL_CTX_remove_session`.
fn learn_flag(remove: libssl::RemoveSessionFn) -> Option<NotResumableFlag> {
    let marker = marker()?;
    errors::leaving_queue_as_found(|| {
        // SAFETY: live marker context, which caches nothing; the probes are
        // live sessions.
        NotResumableFlag::learn(|s| unsafe {
            remove(marker.as_ptr(), s.as_ptr());
        })
    })
}

/// Marker contexts: `SSL_CTX`s that never cache anything, used only to have
/// libssl mark sessions non-resumable (see [`release_session`]). Each thread
/// uses one of them, so that threads rarely share a marker's lock. They are
/// made on first use and live as long as the process; being `SSL_CTX`s, they
/// run the ex_data "new" callbacks (the application's and ours) when made.
const MARKERS: usize = 16;

/// The stripe the next thread to use a marker takes.
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

fn marker() -> Option<NonNull<SSL_CTX>> {
    static POOL: [OnceLock<usize>; MARKERS] = [const { OnceLock::new() }; MARKERS];
    thread_local! {
        static STRIPE: usize = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % MARKERS;
    }
    let stripe = STRIPE.try_with(|s| *s).unwrap_or(0);
    NonNull::new(*sync::get_or_init(&POOL[stripe], new_marker) as *mut SSL_CTX)
}

/// A marker context, or 0 when none can be made (callers then fall back to
/// the context itself). Leaves OpenSSL's error queue as it found it.
fn new_marker() -> usize {
    errors::leaving_queue_as_found(|| {
        // SAFETY: plain constructors; a failure is NULL.
        real::SSL_CTX_new().map_or(0, |new| unsafe { new(openssl_sys::TLS_method()) } as usize)
    })
}

/// Releases sessions that left `ctx`'s cache by eviction, in order.
/// A failure to mark one (libssl unresolved) does not stop the others.
fn retire(ctx: NonNull<SSL_CTX>, gone: impl IntoIterator<Item = SessionRef>) {
    for s in gone {
        let _ = release_session(ctx, s.session());
        drop(s);
    }
}

/// [`retire`] for what a flush took, often many sessions that are no longer
/// in the CPU's caches: each is released while the one [`RELEASE_AHEAD`]
/// places later is being fetched (a flush of 100,000 sessions that the
/// application still holds then runs about twice as fast here; freeing a
/// session's last reference touches more than what is fetched).
fn retire_flushed(ctx: NonNull<SSL_CTX>, gone: Vec<SessionRef>) {
    for s in gone.iter().take(RELEASE_AHEAD) {
        session::prefetch_release(s.session());
    }
    let mut rest = gone.into_iter();
    while let Some(s) = rest.next() {
        if let Some(later) = rest.as_slice().get(RELEASE_AHEAD - 1) {
            session::prefetch_release(later.session());
        }
        let _ = release_session(ctx, s.session());
        drop(s);
    }
}

/// How many sessions ahead [`retire_flushed`] fetches.
const RELEASE_AHEAD: usize = 4;
const _: () = assert!(RELEASE_AHEAD >= 1);

/// `SSL_CTX_add_session`: 1 for a new key (or a replaced object), 0 when
/// this very object is already cached.
pub fn add(ctx: NonNull<SSL_CTX>, session: NonNull<SSL_SESSION>) -> Result<c_int, Error> {
    let state = CtxCache::of(ctx)?;
    let key = session::key_of(session)?;
    // libssl's import of the session our lookup just served: a no-op, as
    // for plain libssl's internal hit.
    if take_served_mark(ctx, session, &key) {
        return Ok(0);
    }
    let update_time = state.mode(ctx)? & libssl::SSL_SESS_CACHE_UPDATE_TIME != 0;
    if update_time {
        // SAFETY: live session.
        unsafe { real::SSL_SESSION_set_time()?(session.as_ptr(), session::now() as c_long) };
    }
    let limit = state.size_limit(ctx)?;
    // SAFETY: the caller passed a session that is live for this call.
    let offer = unsafe { SessionOffer::new(session) };
    let expiry = session::expiry_of(session);
    match state.sessions.add(key, expiry, offer, limit) {
        Added::New { evicted } => {
            if !evicted.is_empty() {
                retire(ctx, evicted);
            }
            Ok(1)
        }
        // Re-sorted; no reference was taken.
        Added::Duplicate(_) => Ok(0),
        Added::Replaced { old, evicted } => {
            drop(old);
            retire(ctx, evicted);
            Ok(1)
        }
    }
}

/// `SSL_CTX_remove_session`: 1 when a session with `session`'s key was
/// cached (and is now released), 0 otherwise. As in libssl, `session` is
/// made non-resumable and reported to the remove callback either way, unless
/// its id is empty, in which case nothing happens.
pub fn remove(ctx: NonNull<SSL_CTX>, session: NonNull<SSL_SESSION>) -> Result<c_int, Error> {
    let state = CtxCache::of(ctx)?;
    let key = session::key_of(session)?;
    if key.is_empty_id() {
        return Ok(0);
    }
    let removed = state.sessions.remove(&key, |s| s.is(session));
    let in_libssl = release_session(ctx, session)?;
    let found = removed.is_some() || in_libssl;
    drop(removed);
    Ok(found as c_int)
}

/// `SSL_CTX_flush_sessions`: removes every session expired at `t` (all of
/// them when `t` is 0), earliest expiry first.
pub fn flush(ctx: NonNull<SSL_CTX>, t: c_long) -> Result<(), Error> {
    let state = CtxCache::of(ctx)?;
    let scope = if t == 0 {
        FlushScope::All
    } else {
        FlushScope::ExpiredAt(t as i64)
    };
    // The order of removal is observable only through the remove callback.
    // SAFETY: live ctx.
    let in_order = unsafe { libssl::SSL_CTX_sess_get_remove_cb(ctx.as_ptr()) }.is_some();
    retire_flushed(ctx, state.sessions.flush(scope, in_order));
    if libssl::binds_internally() {
        // SAFETY: live ctx.
        unsafe { real::SSL_CTX_flush_sessions()?(ctx.as_ptr(), t) };
    }
    Ok(())
}

/// `SSL_has_matching_session_id`: is (ssl's version, id) cached in ssl's
/// session context?
pub fn has_matching_id(ssl: NonNull<SSL>, id: &[u8]) -> Result<c_int, Error> {
    // SAFETY: live ssl.
    let version = unsafe { openssl_sys::SSL_version(ssl.as_ptr()) };
    let Some(key) = SessionKey::new(version, id) else {
        return Ok(0);
    };
    let state = CtxCache::of(session_ctx_of(ssl)?)?;
    if state.sessions.contains(&key) {
        return Ok(1);
    }
    if libssl::binds_internally() {
        let len = id.len() as std::ffi::c_uint;
        // SAFETY: live ssl; id has id.len() bytes (at most 32 here).
        return Ok(unsafe { real::SSL_has_matching_session_id()?(ssl.as_ptr(), id.as_ptr(), len) });
    }
    Ok(0)
}

/// The server's session lookup, installed as every context's get-session
/// callback: our cache first (unless `SSL_SESS_CACHE_NO_INTERNAL_LOOKUP`),
/// then the application's callback, as libssl does with its own cache.
pub fn lookup(
    ssl: NonNull<SSL>,
    id: *const c_uchar,
    len: c_int,
    copy: *mut c_int,
) -> Result<*mut SSL_SESSION, Error> {
    let _ = THREAD.try_with(|t| t.just_served.set(None));
    let ctx = session_ctx_of(ssl)?;
    let state = CtxCache::of(ctx)?;
    let mode = state.mode(ctx)?;
    if mode & libssl::SSL_SESS_CACHE_NO_INTERNAL_LOOKUP == 0 && !id.is_null() && len >= 0 {
        // SAFETY: libssl passes the client's id and its length.
        let id = unsafe { std::slice::from_raw_parts(id, len as usize) };
        let version = unsafe { openssl_sys::SSL_version(ssl.as_ptr()) };
        if let Some(key) = SessionKey::new(version, id) {
            // A libssl that binds its own calls (-Bsymbolic) imports the
            // session into its own cache: move it there rather than have it
            // in both (and reported twice when the context dies).
            let moves =
                libssl::binds_internally() && mode & libssl::SSL_SESS_CACHE_NO_INTERNAL_STORE == 0;
            let found = if moves {
                state.sessions.remove(&key, |_| false)
            } else {
                state.sessions.get(&key)
            };
            if let Some(found) = found {
                if let Some(served) = serve(ctx, state, &key, found, mode, copy) {
                    return Ok(served);
                }
            }
        }
    }
    match state.app_get_cb() {
        // SAFETY: the application's callback, called as libssl would.
        Some(cb) => Ok(unsafe { cb(ssl.as_ptr(), id, len, copy) }),
        None => Ok(std::ptr::null_mut()),
    }
}

/// Hands a cached session to libssl's lookup, if it can be resumed. (The
/// cache matched it by its current id, so it carries the key looked up.)
fn serve(
    ctx: NonNull<SSL_CTX>,
    state: &CtxCache,
    key: &SessionKey,
    found: SessionRef,
    mode: c_long,
    copy: *mut c_int,
) -> Option<*mut SSL_SESSION> {
    let ptr = found.session();
    if !session::is_resumable(ptr) {
        return None;
    }
    state.served.fetch_add(1, Ordering::Relaxed);
    if mode & libssl::SSL_SESS_CACHE_NO_INTERNAL_STORE == 0 {
        let mark = (ctx.as_ptr() as usize, ptr.as_ptr() as usize, *key);
        let _ = THREAD.try_with(|t| t.just_served.set(Some(mark)));
    }
    // libssl takes over our reference.
    if !copy.is_null() {
        unsafe { *copy = 0 };
    }
    Some(found.into_raw())
}

/// After a session's time or timeout changed: re-sort it in every cache
/// that holds it, as libssl 3.0 re-sorts its own list.
pub fn session_time_changed(session: NonNull<SSL_SESSION>) {
    let Ok(key) = session::key_of(session) else {
        return;
    };
    let expiry = session::expiry_of(session);
    let live = registry().read();
    for &state in live.iter() {
        // SAFETY: registered states are live until removed under this lock.
        let state = unsafe { &*(state as *const CtxCache) };
        if !state.sessions.is_empty() {
            state.sessions.reexpire_one(&key, |s| s.is(session), expiry);
        }
    }
}
