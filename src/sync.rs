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

pub struct LockGuard<'a, T> {
    lock: &'a Mutex<T>,
    guard: MutexGuard<'a, T>,
}

impl<T> Lock<T> {
    pub const fn new(value: T) -> Self {
        Lock(Mutex::new(value))
    }

    pub fn lock(&self) -> LockGuard<'_, T> {
        let guard = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        detector::acquired(&self.0, true);
        LockGuard {
            lock: &self.0,
            guard,
        }
    }
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for LockGuard<'_, T> {
    // Runs before the guard field unlocks.
    fn drop(&mut self) {
        detector::releasing(self.lock);
    }
}

/// A reader-writer lock, poisoning ignored as for [`Lock`].
pub struct SharedLock<T>(RwLock<T>);

pub struct ReadGuard<'a, T> {
    lock: &'a RwLock<T>,
    guard: RwLockReadGuard<'a, T>,
}

pub struct WriteGuard<'a, T> {
    lock: &'a RwLock<T>,
    guard: RwLockWriteGuard<'a, T>,
}

impl<T> SharedLock<T> {
    pub const fn new(value: T) -> Self {
        SharedLock(RwLock::new(value))
    }

    pub fn read(&self) -> ReadGuard<'_, T> {
        let guard = self.0.read().unwrap_or_else(|poison| poison.into_inner());
        detector::acquired(&self.0, false);
        ReadGuard {
            lock: &self.0,
            guard,
        }
    }

    pub fn write(&self) -> WriteGuard<'_, T> {
        let guard = self.0.write().unwrap_or_else(|poison| poison.into_inner());
        detector::acquired(&self.0, true);
        WriteGuard {
            lock: &self.0,
            guard,
        }
    }
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        detector::releasing(self.lock);
    }
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for WriteGuard<'_, T> {
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

    pub fn acquired<L>(lock: &L, exclusive: bool) {
        // SAFETY: a client request only records the address.
        unsafe { sslsess_hg_lock_acquired((lock as *const L).cast(), exclusive as c_int) }
    }

    pub fn releasing<L>(lock: &L) {
        // SAFETY: as above.
        unsafe { sslsess_hg_lock_releasing((lock as *const L).cast()) }
    }

    pub fn unchecked(start: *const c_void, len: usize) {
        // SAFETY: as above; the memory is not touched.
        unsafe { sslsess_hg_disable_checking(start, len) }
    }
}

#[cfg(not(feature = "helgrind"))]
mod detector {
    #[inline(always)]
    pub fn acquired<L>(_lock: &L, _exclusive: bool) {}
    #[inline(always)]
    pub fn releasing<L>(_lock: &L) {}
    #[inline(always)]
    pub fn unchecked(_start: *const std::ffi::c_void, _len: usize) {}
}
