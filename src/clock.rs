//! The clock the caches of real contexts order their entries by (see
//! `cache::SessionCache::with_clock`): a monotonic clock in nanoseconds.
//!
//! Read on every add while a cache is far from its size limit (near it,
//! stamps come from a counter), so it is `clock_gettime(CLOCK_MONOTONIC)`
//! itself (a vDSO call) rather than the cache core's default
//! `Instant::elapsed`, which costs about as much again in conversions. Its
//! readings are all the cache needs: a total order consistent with
//! happens-before across threads.

/// Nanoseconds on the monotonic clock (since an unspecified start).
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-parameter; CLOCK_MONOTONIC always exists
    // on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}
