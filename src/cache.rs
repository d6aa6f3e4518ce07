//! The cache core: pure Rust, no FFI.
//!
//! One [`SessionCache`] per `SSL_CTX`. It stores opaque session handles `S`
//! (in production an owning `SessionRef`, in tests any `Clone + PartialEq`
//! value) under a [`SessionKey`], ordered by [`Expiry`] for eviction and flush.
//!
//! Layout: the cache is split into [`SHARDS`] shards chosen by key hash, each
//! behind its own mutex, so threads working on different sessions never wait
//! for each other. A shard keeps its entries in a chunked slab (no large
//! reallocations, little slack), a hash index of slab slots, and an indexed
//! binary min-heap over `(expiry, seq)`; `seq` is a per-cache insertion counter
//! so that sessions with equal expiry leave in insertion order, as libssl's
//! expiry list does.
//!
//! Invariants (per shard, under its lock):
//! - every live slot is in the index and in the heap exactly once, and
//!   `slots[heap[i]].heap_pos == i`;
//! - a free slot holds no session and is on the free list.
//!
//! Lock scope: one shard lock at a time, never two; nothing runs user code
//! under a lock except `S::clone`/`S::drop` of values that stay in the cache
//! (callers get every removed handle back and drop it after the lock is
//! released).

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use hashbrown::HashTable;

/// Number of shards per cache. A power of two; 16 keeps two to eight busy
/// threads apart while an idle context costs only a few kilobytes.
pub const SHARDS: usize = 16;

/// Longest session id TLS allows (`SSL_MAX_SSL_SESSION_ID_LENGTH`).
pub const MAX_ID_LEN: usize = 32;

/// What a session is cached under: protocol version and session id, as in
/// libssl (the same id under another version is another session).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionKey {
    version: u32,
    len: u8,
    id: [u8; MAX_ID_LEN],
}

impl SessionKey {
    /// `None` when the id is longer than TLS allows.
    pub fn new(version: i32, id: &[u8]) -> Option<Self> {
        if id.len() > MAX_ID_LEN {
            return None;
        }
        let mut bytes = [0u8; MAX_ID_LEN];
        bytes[..id.len()].copy_from_slice(id);
        Some(SessionKey {
            version: version as u32,
            len: id.len() as u8,
            id: bytes,
        })
    }

    pub fn id(&self) -> &[u8] {
        &self.id[..self.len as usize]
    }

    pub fn is_empty_id(&self) -> bool {
        self.len == 0
    }
}

/// The second at which a session stops being valid: `time + timeout`.
/// A session is expired at `t` when `t > expiry`; a sum past `i64::MAX`
/// saturates and so never expires, as libssl's overflow rule says.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Expiry(pub i64);

impl Expiry {
    /// libssl forces a negative timeout to 0.
    pub fn from_time_and_timeout(time: i64, timeout: i64) -> Self {
        Expiry(time.saturating_add(timeout.max(0)))
    }

    pub fn is_expired_at(self, t: i64) -> bool {
        t > self.0
    }
}

/// Which sessions a flush takes.
#[derive(Clone, Copy, Debug)]
pub enum FlushScope {
    /// Every session (`SSL_CTX_flush_sessions(ctx, 0)`).
    All,
    /// Sessions expired at this second.
    ExpiredAt(i64),
}

/// Result of [`SessionCache::add`]. Every handle the cache let go of is
/// returned, for the caller to report and drop outside any lock.
#[derive(Debug)]
pub enum Added<S> {
    /// A new key: the cache keeps the session. `evicted` are the sessions
    /// removed to stay within the size limit, earliest expiry first.
    New { evicted: Vec<S> },
    /// The identical object was already cached: it was re-sorted; the
    /// caller's handle comes back unused.
    Duplicate(S),
    /// Another object with the same key was cached: it leaves the cache.
    Replaced(S),
}

/// Order of a cached entry: earliest expiry first, then first inserted.
type Rank = (Expiry, u32);

struct Slot<S> {
    session: Option<S>,
    expiry: Expiry,
    seq: u32,
    heap_pos: u32,
    key: SessionKey,
}

const CHUNK_BITS: u32 = 8;
const CHUNK: usize = 1 << CHUNK_BITS;

/// One shard: slab + hash index + heap. All methods run under the shard lock.
struct Shard<S> {
    chunks: Vec<Vec<Slot<S>>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    heap: Vec<u32>,
}

impl<S> Shard<S> {
    const fn new() -> Self {
        Shard {
            chunks: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            heap: Vec::new(),
        }
    }

    fn slot(&self, i: u32) -> &Slot<S> {
        &self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }

    fn slot_mut(&mut self, i: u32) -> &mut Slot<S> {
        &mut self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }

    fn rank(&self, i: u32) -> Rank {
        let s = self.slot(i);
        (s.expiry, s.seq)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }

    fn find(&self, hash: u64, key: &SessionKey) -> Option<u32> {
        let chunks = &self.chunks;
        self.index
            .find(hash, |&i| {
                chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)].key == *key
            })
            .copied()
    }

    /// Stores a new entry; the key must not be present.
    fn insert(&mut self, hasher: &RandomState, key: SessionKey, session: S, rank: Rank) {
        let slot = Slot {
            session: Some(session),
            expiry: rank.0,
            seq: rank.1,
            heap_pos: self.heap.len() as u32,
            key,
        };
        let i = match self.free.pop() {
            Some(i) => {
                *self.slot_mut(i) = slot;
                i
            }
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                let n = self.chunks.len() - 1;
                self.chunks[n].push(slot);
                ((n << CHUNK_BITS) + self.chunks[n].len() - 1) as u32
            }
        };
        let chunks = &self.chunks;
        self.index.insert_unique(hasher.hash_one(key), i, |&j| {
            hasher.hash_one(chunks[(j >> CHUNK_BITS) as usize][j as usize & (CHUNK - 1)].key)
        });
        self.heap.push(i);
        self.sift_up(self.heap.len() - 1);
    }

    /// Removes slot `i` from index, heap and slab; returns its session.
    fn take(&mut self, hasher: &RandomState, i: u32) -> S {
        let key = self.slot(i).key;
        if let Ok(entry) = self.index.find_entry(hasher.hash_one(key), |&j| j == i) {
            entry.remove();
        }
        let pos = self.slot(i).heap_pos as usize;
        let last = self.heap.pop().expect("live slot is in the heap");
        if last != i {
            self.heap[pos] = last;
            self.slot_mut(last).heap_pos = pos as u32;
            self.resift(pos);
        }
        self.free.push(i);
        self.slot_mut(i)
            .session
            .take()
            .expect("live slot holds a session")
    }

    /// Gives slot `i` a new rank and restores heap order.
    fn rerank(&mut self, i: u32, rank: Rank) {
        let s = self.slot_mut(i);
        s.expiry = rank.0;
        s.seq = rank.1;
        let pos = s.heap_pos as usize;
        self.resift(pos);
    }

    /// The earliest entry other than `except`, if any. The earliest entry
    /// is the heap root; when that is `except`, the next is a root child.
    fn earliest_except(&self, except: Option<u32>) -> Option<u32> {
        let root = *self.heap.first()?;
        if Some(root) != except {
            return Some(root);
        }
        self.heap[1..self.heap.len().min(3)]
            .iter()
            .copied()
            .min_by_key(|&j| self.rank(j))
    }

    fn resift(&mut self, pos: usize) {
        if pos > 0 && self.rank(self.heap[pos]) < self.rank(self.heap[(pos - 1) / 2]) {
            self.sift_up(pos);
        } else {
            self.sift_down(pos);
        }
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.rank(self.heap[pos]) >= self.rank(self.heap[parent]) {
                break;
            }
            self.swap(pos, parent);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * pos + 1, 2 * pos + 2);
            let mut least = pos;
            if l < n && self.rank(self.heap[l]) < self.rank(self.heap[least]) {
                least = l;
            }
            if r < n && self.rank(self.heap[r]) < self.rank(self.heap[least]) {
                least = r;
            }
            if least == pos {
                break;
            }
            self.swap(pos, least);
            pos = least;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        let (ia, ib) = (self.heap[a], self.heap[b]);
        self.slot_mut(ia).heap_pos = a as u32;
        self.slot_mut(ib).heap_pos = b as u32;
    }

    /// Pops entries in rank order while `take_it` says so.
    fn drain_while(
        &mut self,
        hasher: &RandomState,
        out: &mut Vec<(Rank, S)>,
        take_it: impl Fn(Expiry) -> bool,
    ) {
        while let Some(&root) = self.heap.first() {
            let rank = self.rank(root);
            if !take_it(rank.0) {
                break;
            }
            out.push((rank, self.take(hasher, root)));
        }
    }
}

/// Cache line sized wrapper so shards do not share lines.
#[repr(align(64))]
struct Padded<T>(T);

/// The sessions of one context.
pub struct SessionCache<S> {
    shards: [Padded<Mutex<Shard<S>>>; SHARDS],
    hasher: RandomState,
    /// Entries in all shards. Updated after the shard change, so it may lag a
    /// concurrent operation by one; exact whenever the cache is quiescent.
    len: AtomicUsize,
    next_seq: AtomicU32,
    /// Sessions evicted to respect the size limit (`SSL_CTX_sess_cache_full`).
    cache_full: AtomicU64,
}

impl<S: PartialEq> Default for SessionCache<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: PartialEq> SessionCache<S> {
    pub fn new() -> Self {
        SessionCache {
            shards: std::array::from_fn(|_| Padded(Mutex::new(Shard::new()))),
            hasher: RandomState::new(),
            len: AtomicUsize::new(0),
            next_seq: AtomicU32::new(0),
            cache_full: AtomicU64::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn cache_full(&self) -> u64 {
        self.cache_full.load(Ordering::Relaxed)
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard<S>> {
        // A panic under a shard lock leaves the shard consistent (every
        // mutation completes before anything that can panic), so poisoning
        // carries no information here.
        self.shards[shard]
            .0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn locate(&self, key: &SessionKey) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        // The index uses the low bits; shard by the high ones.
        (hash, (hash >> 60) as usize % SHARDS)
    }

    fn next_rank(&self, expiry: Expiry) -> Rank {
        (expiry, self.next_seq.fetch_add(1, Ordering::Relaxed))
    }

    /// Adds `session` under `key`. With `limit > 0` the cache then holds at
    /// most `limit` sessions, evicting the earliest-expiring ones other than
    /// the one just added.
    pub fn add(&self, key: SessionKey, expiry: Expiry, session: S, limit: usize) -> Added<S> {
        let (hash, shard) = self.locate(&key);
        let rank = self.next_rank(expiry);
        let mut guard = self.lock(shard);
        if let Some(i) = guard.find(hash, &key) {
            // Same key: re-sort, and swap the object if it is another one.
            guard.rerank(i, rank);
            let slot = guard.slot_mut(i);
            let cached = slot.session.as_mut().expect("live slot");
            if *cached == session {
                return Added::Duplicate(session);
            }
            return Added::Replaced(std::mem::replace(cached, session));
        }
        guard.insert(&self.hasher, key, session, rank);
        drop(guard);
        self.len.fetch_add(1, Ordering::Relaxed);
        let mut evicted = Vec::new();
        while limit > 0 && self.claim_eviction(limit) {
            match self.evict_earliest(Some(&key)) {
                Some(s) => evicted.push(s),
                None => {
                    // Nothing left to evict but the new session: give back
                    // the claimed count.
                    self.len.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        Added::New { evicted }
    }

    /// Takes one unit of excess over `limit` off `len`, if there is any, so
    /// that concurrent adders never evict more than the excess between them.
    fn claim_eviction(&self, limit: usize) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |len| {
                (len > limit).then(|| len - 1)
            })
            .is_ok()
    }

    /// Removes the earliest-expiring session other than the one under
    /// `except`, counting it in `cache_full`. The caller has already taken it
    /// off `len` (see `claim_eviction`).
    fn evict_earliest(&self, except: Option<&SessionKey>) -> Option<S> {
        // Shards are inspected one lock at a time; a concurrent change can
        // invalidate the choice, in which case the search is repeated.
        for _ in 0..8 {
            let mut best: Option<(Rank, usize)> = None;
            for shard in 0..SHARDS {
                let guard = self.lock(shard);
                let skip = except.and_then(|k| guard.find(self.hasher.hash_one(k), k));
                if let Some(i) = guard.earliest_except(skip) {
                    let rank = guard.rank(i);
                    if best.is_none_or(|(b, _)| rank < b) {
                        best = Some((rank, shard));
                    }
                }
            }
            let (rank, shard) = best?;
            let mut guard = self.lock(shard);
            let skip = except.and_then(|k| guard.find(self.hasher.hash_one(k), k));
            if let Some(i) = guard.earliest_except(skip) {
                if guard.rank(i) == rank {
                    let s = guard.take(&self.hasher, i);
                    drop(guard);
                    self.cache_full.fetch_add(1, Ordering::Relaxed);
                    return Some(s);
                }
            }
        }
        None
    }

    /// Removes the session under `key`, returning it.
    pub fn remove(&self, key: &SessionKey) -> Option<S> {
        let (hash, shard) = self.locate(key);
        let mut guard = self.lock(shard);
        let i = guard.find(hash, key)?;
        let s = guard.take(&self.hasher, i);
        drop(guard);
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(s)
    }

    /// A new handle to the session under `key` (cloned under the shard lock,
    /// so the session cannot be released in between).
    pub fn get(&self, key: &SessionKey) -> Option<S>
    where
        S: Clone,
    {
        let (hash, shard) = self.locate(key);
        let guard = self.lock(shard);
        let i = guard.find(hash, key)?;
        guard.slot(i).session.clone()
    }

    pub fn contains(&self, key: &SessionKey) -> bool {
        let (hash, shard) = self.locate(key);
        self.lock(shard).find(hash, key).is_some()
    }

    /// Removes the sessions `scope` selects, returned earliest expiry first
    /// (ties in insertion order). O(k log n) for k removed sessions.
    pub fn flush(&self, scope: FlushScope) -> Vec<S> {
        let mut out = Vec::new();
        for shard in 0..SHARDS {
            let before = out.len();
            self.lock(shard)
                .drain_while(&self.hasher, &mut out, |e| match scope {
                    FlushScope::All => true,
                    FlushScope::ExpiredAt(t) => e.is_expired_at(t),
                });
            self.len.fetch_sub(out.len() - before, Ordering::Relaxed);
        }
        // Each shard's run is already sorted: a stable sort merges runs.
        out.sort_by_key(|(rank, _)| *rank);
        out.into_iter().map(|(_, s)| s).collect()
    }

    /// Gives the entry under `key` a new expiry, if it holds the session
    /// `is_it` picks (a session's time changed behind the cache's back).
    /// Its tie-break order stays as it was.
    pub fn reexpire_one(&self, key: &SessionKey, is_it: impl Fn(&S) -> bool, expiry: Expiry) {
        let (hash, shard) = self.locate(key);
        let mut guard = self.lock(shard);
        if let Some(i) = guard.find(hash, key) {
            if guard.slot(i).session.as_ref().is_some_and(&is_it) {
                let seq = guard.slot(i).seq;
                guard.rerank(i, (expiry, seq));
            }
        }
    }

    /// Number of entries actually stored, counted shard by shard.
    #[cfg(test)]
    fn stored(&self) -> usize {
        (0..SHARDS).map(|s| self.lock(s).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A session handle whose clones are counted through the Arc.
    #[derive(Clone, Debug)]
    struct Sess(Arc<u32>);

    impl PartialEq for Sess {
        fn eq(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.0, &other.0)
        }
    }

    fn key(n: u32) -> SessionKey {
        SessionKey::new(0x0303, &n.to_be_bytes()).unwrap()
    }

    fn sess(n: u32) -> Sess {
        Sess(Arc::new(n))
    }

    fn ids(v: &[Sess]) -> Vec<u32> {
        v.iter().map(|s| *s.0).collect()
    }

    #[test]
    fn key_rejects_long_ids_and_separates_versions() {
        assert!(SessionKey::new(0x0303, &[0; 33]).is_none());
        let a = SessionKey::new(0x0303, b"abc").unwrap();
        let b = SessionKey::new(0x0304, b"abc").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.id(), b"abc");
        assert!(SessionKey::new(0x0303, b"").unwrap().is_empty_id());
    }

    #[test]
    fn expiry_saturates_and_clamps_negative_timeouts() {
        assert_eq!(Expiry::from_time_and_timeout(10, -5), Expiry(10));
        let never = Expiry::from_time_and_timeout(i64::MAX - 1, 100);
        assert!(!never.is_expired_at(i64::MAX));
        assert!(Expiry(10).is_expired_at(11));
        assert!(!Expiry(10).is_expired_at(10));
    }

    #[test]
    fn add_new_duplicate_and_replace() {
        let c = SessionCache::new();
        let s1 = sess(1);
        assert!(
            matches!(c.add(key(1), Expiry(100), s1.clone(), 0), Added::New { ref evicted } if evicted.is_empty())
        );
        assert_eq!(Arc::strong_count(&s1.0), 2);
        match c.add(key(1), Expiry(100), s1.clone(), 0) {
            Added::Duplicate(back) => assert_eq!(back, s1),
            other => panic!("{other:?}"),
        }
        let s1b = sess(1);
        match c.add(key(1), Expiry(100), s1b.clone(), 0) {
            Added::Replaced(old) => assert_eq!(old, s1),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Arc::strong_count(&s1.0),
            1,
            "replaced handle was returned and dropped"
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&key(1)), Some(s1b));
    }

    #[test]
    fn remove_returns_the_cached_handle_once() {
        let c = SessionCache::new();
        c.add(key(7), Expiry(1), sess(7), 0);
        assert!(c.contains(&key(7)));
        assert_eq!(c.remove(&key(7)).map(|s| *s.0), Some(7));
        assert!(c.remove(&key(7)).is_none());
        assert!(!c.contains(&key(7)));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn limit_holds_exactly_n_and_evicts_earliest_expiry_first() {
        let c = SessionCache::new();
        let mut evicted = Vec::new();
        // Expiries deliberately out of insertion order.
        for (n, e) in [(1, 50), (2, 10), (3, 30), (4, 40), (5, 20)] {
            if let Added::New { evicted: ev } = c.add(key(n), Expiry(e), sess(n), 3) {
                evicted.extend(ev);
            }
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.stored(), 3);
        // 5 (expiry 20) is the one being added, so 3 (expiry 30) goes.
        assert_eq!(ids(&evicted), vec![2, 3]);
        assert_eq!(c.cache_full(), 2);
    }

    #[test]
    fn ties_are_evicted_in_insertion_order() {
        let c = SessionCache::new();
        let mut evicted = Vec::new();
        for n in 0..40 {
            if let Added::New { evicted: ev } = c.add(key(n), Expiry(7), sess(n), 10) {
                evicted.extend(ev);
            }
        }
        assert_eq!(ids(&evicted), (0..30).collect::<Vec<_>>());
    }

    #[test]
    fn the_new_session_is_never_its_own_victim() {
        let c = SessionCache::new();
        c.add(key(1), Expiry(100), sess(1), 1);
        match c.add(key(2), Expiry(5), sess(2), 1) {
            Added::New { evicted } => assert_eq!(ids(&evicted), vec![1]),
            other => panic!("{other:?}"),
        }
        assert!(c.contains(&key(2)));
    }

    #[test]
    fn duplicate_add_resorts_to_newest() {
        let c = SessionCache::new();
        let s1 = sess(1);
        c.add(key(1), Expiry(5), s1.clone(), 0);
        c.add(key(2), Expiry(5), sess(2), 0);
        c.add(key(1), Expiry(5), s1, 0);
        assert_eq!(ids(&c.flush(FlushScope::All)), vec![2, 1]);
    }

    #[test]
    fn flush_takes_expired_in_order_and_keeps_live() {
        let c = SessionCache::new();
        for n in 0..100u32 {
            c.add(key(n), Expiry(1000 - n as i64), sess(n), 0);
        }
        let gone = c.flush(FlushScope::ExpiredAt(950));
        // Expired at 950: expiry < 950, i.e. n > 50.
        assert_eq!(ids(&gone), (51..100).rev().collect::<Vec<_>>());
        assert_eq!(c.len(), 51);
        assert_eq!(c.stored(), 51);
        assert!(c.flush(FlushScope::ExpiredAt(900)).is_empty());
        assert_eq!(c.flush(FlushScope::All).len(), 51);
        assert!(c.is_empty());
    }

    #[test]
    fn reexpire_follows_changed_times() {
        let c = SessionCache::new();
        let (a, b) = (sess(1), sess(2));
        c.add(key(1), Expiry(1100), a, 0);
        c.add(key(2), Expiry(1200), b, 0);
        // Session 1 was given a later time behind the cache's back.
        c.reexpire_one(&key(1), |s| *s.0 == 1, Expiry(5100));
        // The wrong object under the key is left alone.
        c.reexpire_one(&key(2), |s| *s.0 == 99, Expiry(0));
        assert_eq!(ids(&c.flush(FlushScope::ExpiredAt(1300))), vec![2]);
        assert_eq!(ids(&c.flush(FlushScope::ExpiredAt(5101))), vec![1]);
    }

    #[test]
    fn slots_are_reused_and_heap_stays_consistent_under_churn() {
        let c = SessionCache::new();
        let mut live = std::collections::BTreeMap::new();
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 500) as u32;
            if x % 3 == 0 {
                assert_eq!(c.remove(&key(n)).is_some(), live.remove(&n).is_some());
            } else {
                let e = (x >> 32) as i64 % 1000;
                c.add(key(n), Expiry(e), sess(n), 0);
                live.insert(n, e);
            }
        }
        assert_eq!(c.len(), live.len());
        assert_eq!(c.stored(), live.len());
        let expiries: Vec<i64> = c
            .flush(FlushScope::All)
            .iter()
            .map(|s| live[&*s.0])
            .collect();
        assert_eq!(expiries.len(), live.len());
        assert!(
            expiries.windows(2).all(|w| w[0] <= w[1]),
            "flush is in expiry order"
        );
    }

    #[test]
    fn concurrent_adds_and_removes_keep_counts_exact() {
        let c = Arc::new(SessionCache::new());
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..5000u32 {
                        let n = t * 100_000 + i;
                        c.add(key(n), Expiry(i as i64), sess(n), 0);
                        if i % 2 == 0 {
                            assert!(c.remove(&key(n)).is_some());
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.len(), 4 * 2500);
        assert_eq!(c.stored(), 4 * 2500);
    }

    #[test]
    fn concurrent_bounded_adds_respect_the_limit() {
        let c = Arc::new(SessionCache::new());
        let evicted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let (c, evicted) = (Arc::clone(&c), Arc::clone(&evicted));
                std::thread::spawn(move || {
                    for i in 0..3000u32 {
                        let n = t * 100_000 + i;
                        if let Added::New { evicted: ev } =
                            c.add(key(n), Expiry(i as i64), sess(n), 100)
                        {
                            evicted.fetch_add(ev.len(), Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.len(), 100);
        assert_eq!(c.stored(), 100);
        assert_eq!(evicted.load(Ordering::Relaxed), 12_000 - 100);
        assert_eq!(c.cache_full(), 12_000 - 100);
    }
}
