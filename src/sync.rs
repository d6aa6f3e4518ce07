//! Locks and shared atomics, as a race detector sees them.
//!
//! libsslsess's locks are `std::sync`'s, built on bare futexes, and for the
//! cache's hot paths [`SpinLock`] and [`FlagFirstSpinLock`], built on one
//! atomic flag; helgrind (valgrind's race detector) sees neither: to it,
//! every access they protect is a race. Built with the `helgrind` feature
//! (for the stress suite's helgrind run), [`Lock`], the spin locks and
//! [`SharedLock`] tell helgrind when they are taken and let go, as the
//! reader-writer locks it knows (so it also checks their order), and
//! [`exempt_from_race_checks`]
//! takes atomics (whose plain loads and stores cannot race) and write-once
//! cells out of its checks, so that what it still reports is a missing
//! synchronisation. Without the feature all of that compiles to nothing.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A mutex. A panic under one of libsslsess's locks leaves what it guards
/// consistent (every mutation completes before anything that can panic), so
/// poisoning carries no information here and is ignored.
pub struct Lock<T>(Mutex<T>);

/// A reader-writer lock, poisoning ignored as for [`Lock`].
pub struct SharedLock<T>(RwLock<T>);

/// A guard `G` (std's, or a [`SpinGuard`]) of the lock at address `lock`,
/// whose release the race detector is told of before `G` unlocks.
pub struct Guard<G> {
    lock: *const (),
    guard: G,
}

pub type LockGuard<'a, T> = Guard<MutexGuard<'a, T>>;

impl<G> Guard<G> {
    /// `guard`, just taken on `lock` (exclusively or shared).
    fn acquired<L>(lock: &L, guard: G, exclusive: bool) -> Self {
        let lock = (lock as *const L).cast();
        detector::acquired(lock, exclusive);
        Guard { lock, guard }
    }
}

impl<T> Lock<T> {
    pub const fn new(value: T) -> Self {
        Lock(Mutex::new(value))
    }

    pub fn lock(&self) -> LockGuard<'_, T> {
        let guard = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        Guard::acquired(&self.0, guard, true)
    }
}

/// A lock for the cache's critical sections (a shard's or the cache-wide
/// eviction order's): work on memory that waits for no other thread and
/// calls no application code, mostly short (the longest: a shard's hash
/// table growing, the compaction of an order, a flush's drain of expired
/// entries, a switch of counting mode). Taking it free is one
/// compare-and-swap, and letting it go one plain store. A futex mutex
/// (`Lock`) must swap on release to learn whether to wake a sleeper; without
/// that locked instruction remove ran 1.2x as fast and add, duplicate add
/// and churn 1.01-1.04x (paired hand runs of `cachebench ops 1` and `ops 2`
/// against the futex build, not kept). A waiter spins briefly, then yields
/// the processor, then sleeps in short naps: a preempted holder gets to
/// run, and a waiter of higher real-time priority cannot starve it (by
/// design: no test runs threads of different priorities). Like `Lock`, it
/// is not re-entrant, and it is not fair: a waiter past its spins that
/// finds it taken again starts over at yielding.
///
/// The value comes first and the flag after it (`repr(C)`), so that a
/// container can tell which cache line each lands on (see
/// [`FlagFirstSpinLock`] for the other order).
#[repr(C)]
pub struct SpinLock<T> {
    value: UnsafeCell<T>,
    locked: AtomicBool,
}

/// A [`SpinLock`] with its flag first and the value right after it
/// (`repr(C)`): for a lock whose holder writes the value's first bytes on
/// every hold, which then share the line the flag's compare-and-swap
/// fetched (the cache's eviction lock).
#[repr(C)]
pub struct FlagFirstSpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

/// Holds a [`SpinLock`] or a [`FlagFirstSpinLock`]; dropping it lets the
/// lock go.
pub struct SpinGuard<'a, T> {
    locked: &'a AtomicBool,
    value: &'a UnsafeCell<T>,
    /// Neither `Send` nor `Sync` (stricter than std's `MutexGuard`, which is
    /// `Sync` for a `T: Sync`): shared, it would otherwise hand out `&T` on
    /// two threads whatever `T` is.
    _not_shared: PhantomData<*mut ()>,
}

pub type SpinLockGuard<'a, T> = Guard<SpinGuard<'a, T>>;

/// Spins (each a `spin_loop` hint) before a waiter starts to yield.
const SPINS: u32 = 64;
/// Yields before a waiter starts to nap.
const YIELDS: u32 = 16;
/// A nap (plus the kernel's timer slack, 50 µs by default): long enough
/// that a holder preempted on this processor runs.
const NAP: std::time::Duration = std::time::Duration::from_micros(20);

/// What the two spin lock types share, written once: they differ only in
/// the order of their fields.
macro_rules! spin_lock_impls {
    ($lock:ident) => {
        // SAFETY: the value is reached only through a `SpinGuard`, and the
        // flag lets one guard exist at a time, so it is sent between
        // threads, never shared.
        unsafe impl<T: Send> Sync for $lock<T> {}

        impl<T> $lock<T> {
            pub const fn new(value: T) -> Self {
                $lock {
                    locked: AtomicBool::new(false),
                    value: UnsafeCell::new(value),
                }
            }

            #[inline]
            pub fn lock(&self) -> SpinLockGuard<'_, T> {
                // SAFETY: `locked` is this lock's flag, which guards `value`.
                unsafe { take_spin_lock(self, &self.locked, &self.value) }
            }

            /// Takes the lock's flag out of a race detector's checks (see
            /// [`exempt_from_race_checks`]); the detector is told of the
            /// lock itself.
            pub fn exempt_from_race_checks(&self) {
                exempt_from_race_checks(&self.locked);
            }

            /// Where the flag and the value sit in the lock: (flag, value)
            /// offsets.
            #[cfg(test)]
            pub(crate) fn layout() -> (usize, usize) {
                (
                    std::mem::offset_of!(Self, locked),
                    std::mem::offset_of!(Self, value),
                )
            }
        }
    };
}

spin_lock_impls!(SpinLock);
spin_lock_impls!(FlagFirstSpinLock);

/// Takes `lock` (its flag `locked`, guarding `value`) and returns its guard.
///
/// # Safety
/// `locked` must be the flag that guards `value`, both parts of `lock`:
/// the guard hands out `&mut` to `value` on the flag's word alone.
#[inline]
unsafe fn take_spin_lock<'a, L, T>(
    lock: &'a L,
    locked: &'a AtomicBool,
    value: &'a UnsafeCell<T>,
) -> SpinLockGuard<'a, T> {
    if !try_take(locked) {
        wait_and_take(locked);
    }
    let guard = SpinGuard {
        locked,
        value,
        _not_shared: PhantomData,
    };
    Guard::acquired(lock, guard, true)
}

#[inline]
fn try_take(locked: &AtomicBool) -> bool {
    locked
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// Waits (reading, not writing, the flag) until the lock looks free and
/// takes it.
#[cold]
fn wait_and_take(locked: &AtomicBool) {
    let mut waited = 0u32;
    loop {
        while locked.load(Ordering::Relaxed) {
            if waited < SPINS {
                std::hint::spin_loop();
            } else if waited < SPINS + YIELDS {
                std::thread::yield_now();
            } else {
                std::thread::sleep(NAP);
            }
            waited = waited.saturating_add(1);
        }
        if try_take(locked) {
            return;
        }
        // Taken again before this waiter got it: the holder is running,
        // so yield rather than nap.
        waited = waited.min(SPINS);
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock.
        unsafe { &*self.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard holds the lock, and `&mut self` is unique.
        unsafe { &mut *self.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.locked.store(false, Ordering::Release);
    }
}

impl<T> SharedLock<T> {
    pub const fn new(value: T) -> Self {
        SharedLock(RwLock::new(value))
    }

    pub fn read(&self) -> Guard<RwLockReadGuard<'_, T>> {
        let guard = self.0.read().unwrap_or_else(|poison| poison.into_inner());
        Guard::acquired(&self.0, guard, false)
    }

    pub fn write(&self) -> Guard<RwLockWriteGuard<'_, T>> {
        let guard = self.0.write().unwrap_or_else(|poison| poison.into_inner());
        Guard::acquired(&self.0, guard, true)
    }
}

impl<G: Deref> Deref for Guard<G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Guard<G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

impl<G> Drop for Guard<G> {
    // Runs before the guard field unlocks.
    fn drop(&mut self) {
        detector::releasing(self.lock);
    }
}

/// Takes `value`'s memory out of the race detector's checks: for atomics,
/// read and written without a lock by design, and for cells written once
/// under std's own synchronisation.
pub fn exempt_from_race_checks<T>(value: &T) {
    detector::unchecked((value as *const T).cast(), std::mem::size_of_val(value));
}

/// `cell.get_or_init(init)`, the cell exempt from race checks (see
/// [`exempt_from_race_checks`]) before its value is published.
pub fn get_or_init<T>(cell: &OnceLock<T>, init: impl FnOnce() -> T) -> &T {
    cell.get_or_init(|| {
        exempt_from_race_checks(cell);
        init()
    })
}

/// Runs `store`, an atomic store to memory that another thread may store to
/// at the same moment outside any lock (a session's not-resumable flag,
/// which a remove and an eviction of the same session, re-added meanwhile,
/// can both set). Atomic stores do not race, but helgrind cannot tell them
/// from plain ones: with the `helgrind` feature they run under one lock it
/// is told of. Without it this is just `store`.
#[inline(always)]
pub fn unraced_store(store: impl FnOnce()) {
    detector::ordered(store)
}

#[cfg(feature = "helgrind")]
mod detector {
    use std::ffi::{c_int, c_void};

    // src/helgrind.c: helgrind's client requests (valgrind/helgrind.h),
    // which do nothing outside valgrind.
    unsafe extern "C" {
        fn sslsess_hg_lock_acquired(lock: *const c_void, exclusive: c_int);
        fn sslsess_hg_lock_releasing(lock: *const c_void);
        fn sslsess_hg_disable_checking(start: *const c_void, len: usize);
    }

    pub fn acquired(lock: *const (), exclusive: bool) {
        // SAFETY: a client request only records the address.
        unsafe { sslsess_hg_lock_acquired(lock.cast(), exclusive as c_int) }
    }

    pub fn releasing(lock: *const ()) {
        // SAFETY: as above.
        unsafe { sslsess_hg_lock_releasing(lock.cast()) }
    }

    pub fn unchecked(start: *const c_void, len: usize) {
        // SAFETY: as above; the memory is not touched.
        unsafe { sslsess_hg_disable_checking(start, len) }
    }

    pub fn ordered(store: impl FnOnce()) {
        static STORES: super::Lock<()> = super::Lock::new(());
        let _ordered = STORES.lock();
        store()
    }
}

#[cfg(not(feature = "helgrind"))]
mod detector {
    #[inline(always)]
    pub fn acquired(_lock: *const (), _exclusive: bool) {}
    #[inline(always)]
    pub fn releasing(_lock: *const ()) {}
    #[inline(always)]
    pub fn unchecked(_start: *const std::ffi::c_void, _len: usize) {}
    #[inline(always)]
    pub fn ordered(store: impl FnOnce()) {
        store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::time::Duration;

    /// Increments of a plain integer under the lock from four threads at
    /// once all count: any overlap of two critical sections would lose some.
    #[test]
    fn spin_lock_excludes() {
        const THREADS: usize = 4;
        const EACH: u64 = 200_000;
        let lock = SpinLock::new(0u64);
        let start = Barrier::new(THREADS);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..EACH {
                        let mut n = lock.lock();
                        // A read and a later write, not one add.
                        let seen = *n;
                        std::hint::black_box(&mut *n);
                        *n = seen + 1;
                    }
                });
            }
        });
        assert_eq!(*lock.lock(), THREADS as u64 * EACH);
    }

    /// A waiter behind a long holder goes through spinning, yielding and
    /// napping, and takes the lock only once it is let go: it sees what the
    /// holder wrote last, after 30 ms.
    #[test]
    fn spin_lock_waits_for_a_long_holder() {
        let lock = SpinLock::new(0u32);
        let held = Barrier::new(2);
        let hold = Duration::from_millis(30);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut g = lock.lock();
                held.wait();
                std::thread::sleep(hold);
                *g = 7;
            });
            held.wait();
            let g = lock.lock();
            assert_eq!(*g, 7, "took the lock while it was held");
        });
    }
}
