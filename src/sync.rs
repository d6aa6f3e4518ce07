//! Locks and shared atomics, as a race detector sees them.
//!
//! libsslsess's locks are `std::sync`'s, built on bare futexes, which
//! helgrind (valgrind's race detector) cannot see: to it, every access they
//! protect is a race. Built with the `helgrind` feature (for the stress
//! suite's helgrind run), [`Lock`] and [`SharedLock`] tell helgrind when
//! they are taken and let go, as the reader-writer locks it knows (so it
//! also checks their order), and [`exempt_from_race_checks`] takes atomics
//! (whose plain loads and stores cannot race) and write-once cells out of
//! its checks, so that what it still reports is a missing synchronisation.
//! Without the feature all of that compiles to nothing.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A mutex. A panic under one of libsslsess's locks leaves what it guards
/// consistent (every mutation completes before anything that can panic), so
/// poisoning carries no information here and is ignored.
pub struct Lock<T>(Mutex<T>);

/// A reader-writer lock, poisoning ignored as for [`Lock`].
pub struct SharedLock<T>(RwLock<T>);

/// A std guard `G` of the lock at address `lock`, whose release the race
/// detector is told of before `G` unlocks.
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
}

#[cfg(not(feature = "helgrind"))]
mod detector {
    #[inline(always)]
    pub fn acquired(_lock: *const (), _exclusive: bool) {}
    #[inline(always)]
    pub fn releasing(_lock: *const ()) {}
    #[inline(always)]
    pub fn unchecked(_start: *const std::ffi::c_void, _len: usize) {}
}
