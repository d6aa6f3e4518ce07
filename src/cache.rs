//! The cache core: pure Rust, no FFI.
//!
//! One [`SessionCache`] per `SSL_CTX`. It stores opaque session handles `S`
//! (in production an owning `SessionRef`, in tests any `Clone + PartialEq`
//! value that knows its [`CurrentKey`]) under a [`SessionKey`], ordered by
//! [`Expiry`] for eviction and flush.
//!
//! Layout: the cache is split into [`SHARDS`] shards chosen by key hash, each
//! behind its own lock (a [`SpinLock`]: what it guards is work on memory,
//! mostly short, with no waits and no application code), so threads working
//! on different sessions never wait for each other. A shard keeps its entries in a chunked slab (no large
//! reallocations, little slack), a hash index of slab slots, and an
//! [`Order`] over `(expiry, stamp)` (a sorted run, where nearly every entry
//! goes, and a binary min-heap for the rest); the stamp is a monotonic clock reading,
//! so that sessions with equal expiry leave in insertion order, as libssl's
//! expiry list does, without a counter shared by all threads. Nothing that
//! every add or remove writes is shared between shards (see [`Counters`]).
//! Eviction, needed only when the cache is full, chooses among the shards
//! under one eviction lock (see [`Frontier`]).
//!
//! Invariants (per shard, under its lock):
//! - every live slot is in the index once and has exactly one live element
//!   in the order (same slot and seq), whose rank is at most the slot's rank;
//! - a free slot holds no session and is on the free list.
//!
//! Lock scope: one shard lock at a time, never two; eviction takes the
//! eviction lock first, then one shard lock. Nothing runs user code under a
//! lock except `S::clone` (of values that stay in the cache),
//! `CurrentKey::current_key`, `Offer::is` (for a handle offered as is, its
//! `PartialEq`) and `Offer::into_handle`; never `S::drop`, whose last
//! reference's release may run application callbacks that call back into
//! the cache (under a lock they would wait for it forever). Callers get
//! every removed handle back and drop it after the lock is released.

use crate::sync::{self, Lock, SpinLock, SpinLockGuard};
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU32, AtomicUsize, Ordering};

use hashbrown::HashTable;

/// Hashes session keys: three folded 64x64->128-bit multiplies over the
/// key's five words, keyed by a per-cache random seed (the construction of
/// wyhash/foldhash, specialised to one fixed-size input). Session ids are
/// random in practice; the seed keeps ids chosen to collide from doing so
/// in every process.
struct KeyHasher {
    seed: [u64; 3],
}

impl KeyHasher {
    fn new() -> Self {
        let random = RandomState::new();
        let draw = |n: u64| {
            let mut h = random.build_hasher();
            h.write_u64(n);
            h.finish()
        };
        KeyHasher {
            seed: [draw(1), draw(2), draw(3)],
        }
    }

    fn hash_one(&self, key: SessionKey) -> u64 {
        fn fold(a: u64, b: u64) -> u64 {
            let p = (a as u128).wrapping_mul(b as u128);
            (p as u64) ^ ((p >> 64) as u64)
        }
        let w = key.words();
        let h = fold(w[0] ^ self.seed[0], w[1] ^ self.seed[1]);
        let h = fold(h ^ w[2], w[3] ^ self.seed[2]);
        fold(h ^ w[4], self.seed[0] ^ 0x9e37_79b9_7f4a_7c15)
    }
}

/// Number of shards per cache. A power of two; 16 keeps two to eight busy
/// threads apart while an idle context costs only a few kilobytes.
pub const SHARDS: usize = 16;
// The eviction tournament (`Bounds`) is a complete binary tree over the shards;
// `Flags` holds a bit per shard, and flushes start at bit-reversed turns.
const _: () = assert!(SHARDS.is_power_of_two() && SHARDS >= 2 && SHARDS <= 32);

/// Longest session id TLS allows (`SSL_MAX_SSL_SESSION_ID_LENGTH`).
pub const MAX_ID_LEN: usize = 32;

/// What a session is cached under: protocol version and session id, as in
/// libssl (the same id under another version is another session).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SessionKey {
    version: u32,
    len: u8,
    id: [u8; MAX_ID_LEN],
}

impl SessionKey {
    /// The key as five words, for hashing.
    fn words(&self) -> [u64; 5] {
        let word =
            |i: usize| u64::from_ne_bytes(self.id[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        [
            ((self.version as u64) << 8) | self.len as u64,
            word(0),
            word(1),
            word(2),
            word(3),
        ]
    }

    /// `None` when the id is longer than TLS allows.
    pub fn new(version: i32, id: &[u8]) -> Option<Self> {
        if id.len() > MAX_ID_LEN {
            return None;
        }
        // A full-length id (what libssl makes) is one fixed-size copy; the
        // other lengths are kept out of line, or the compiler merges both
        // into a call to memcpy.
        let bytes = match <[u8; MAX_ID_LEN]>::try_from(id) {
            Ok(full) => full,
            Err(_) => padded_id(id),
        };
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

/// A shorter id, zero-padded to the key's fixed size.
#[cold]
#[inline(never)]
fn padded_id(id: &[u8]) -> [u8; MAX_ID_LEN] {
    let mut bytes = [0u8; MAX_ID_LEN];
    bytes[..id.len()].copy_from_slice(id);
    bytes
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

/// What an add offers the cache: a session that can tell whether it is
/// the very object already cached, and become a handle for the cache to
/// keep. The handle is made only when the cache keeps it, so a duplicate
/// add takes no reference it would give straight back. A handle offers
/// itself.
pub trait Offer<S> {
    fn is(&self, cached: &S) -> bool;
    fn into_handle(self) -> S;
}

impl<S: PartialEq> Offer<S> for S {
    fn is(&self, cached: &S) -> bool {
        self == cached
    }

    fn into_handle(self) -> S {
        self
    }
}

/// Result of [`SessionCache::add`]. Every handle the cache let go of is
/// returned, for the caller to report and drop outside any lock.
#[derive(Debug)]
pub enum Added<S, O = S> {
    /// A new key: the cache keeps the session. `evicted` are the sessions
    /// removed to stay within the size limit, earliest expiry first.
    New { evicted: Evicted<S> },
    /// The identical object was already cached: it was re-sorted; the
    /// offer comes back unused.
    Duplicate(O),
    /// Another object with the same key was cached: it leaves the cache.
    /// As for a new key, the size limit is then enforced (it may have been
    /// lowered since the last add).
    Replaced { old: S, evicted: Evicted<S> },
}

/// Sessions evicted by one add, earliest first. The usual case, one
/// session, needs no allocation.
#[derive(Debug)]
pub struct Evicted<S> {
    first: Option<S>,
    more: Vec<S>,
}

impl<S> Evicted<S> {
    fn new() -> Self {
        Evicted {
            first: None,
            more: Vec::new(),
        }
    }

    fn push(&mut self, s: S) {
        match self.first {
            None => self.first = Some(s),
            Some(_) => self.more.push(s),
        }
    }

    pub fn len(&self) -> usize {
        self.first.is_some() as usize + self.more.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl<S> IntoIterator for Evicted<S> {
    type Item = S;
    type IntoIter = std::iter::Chain<std::option::IntoIter<S>, std::vec::IntoIter<S>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.more)
    }
}

/// What the cache needs to know of a stored handle besides its identity
/// (`PartialEq`): the key its session has now. Entries are matched against
/// the live session rather than a copy of its key, as libssl's own table
/// does: a session whose id changes while cached is then found under
/// neither id, in both.
pub trait CurrentKey {
    fn current_key(&self) -> Option<SessionKey>;
}

/// Order of entries: earliest expiry first, then earliest stamp (when the
/// entry was added or last re-sorted).
type Rank = (Expiry, u64);

/// A rank as one integer in the same order, for eviction's comparison of
/// the shards' bounds. (i64::MAX, u64::MAX), an empty shard's, is
/// `u128::MAX`.
fn ordinal((expiry, stamp): Rank) -> u128 {
    (((expiry.0 as u64) ^ (1 << 63)) as u128) << 64 | stamp as u128
}

/// The bound an earliest element gives its shard (`u128::MAX`: none).
fn bound_of(earliest: Option<&OrderEntry>) -> u128 {
    earliest.map_or(u128::MAX, |e| ordinal(e.rank()))
}

/// A clock for [`SessionCache::with_clock`]: nanoseconds on a monotonic
/// clock, whose readings follow happens-before across threads.
pub type Clock = fn() -> u64;

/// The default [`Clock`]: `Instant`, since the first reading.
fn instant_ns() -> u64 {
    use std::sync::LazyLock;
    use std::time::Instant;
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    EPOCH.elapsed().as_nanos() as u64
}

/// Stamps order the entries of equal expiry across shards without a
/// counter that every thread writes: a reading of `clock`, made strictly
/// increasing per thread (and per shard, see [`Shard::stamp`]), so that of
/// two adds one of which happens before the other, the first has the lower
/// stamp, as with libssl's single list.
fn clock_stamp(clock: Clock) -> u64 {
    use std::cell::Cell;
    thread_local! {
        static LAST: Cell<u64> = const { Cell::new(0) };
    }
    let now = clock();
    LAST.try_with(|last| {
        let stamp = now.max(last.get() + 1);
        last.set(stamp);
        stamp
    })
    .unwrap_or(now)
}

/// An element of a shard's [`Order`]: a rank, and the slot and seq of the
/// entry it stands for. Removing an entry does not touch the order: its
/// element just goes stale (its slot is free, or holds another seq) and is
/// dropped when it comes first or when the order is compacted. Re-sorting an
/// entry to a later rank (a duplicate add, the usual case) only updates its
/// slot: the element's rank is then a lower bound, and the element is moved
/// to the slot's rank when it comes first. Re-sorting to an earlier rank
/// pushes a new element (new seq). So remove and re-sort are O(1) or a
/// push, and eviction and flush take the earliest in O(1) (from the run) or
/// O(log n) (from the heap), amortised.
#[derive(Clone, Copy)]
struct OrderEntry {
    expiry: Expiry,
    stamp: u64,
    slot: u32,
    seq: u32,
}

impl OrderEntry {
    fn rank(&self) -> Rank {
        (self.expiry, self.stamp)
    }
}

/// Every entry's element, earliest rank first: a sorted run for elements
/// that arrive no earlier than the run's last (nearly all of them: stamps
/// grow, and a context's sessions mostly share one timeout), and a binary
/// heap for the others. The earliest element is the earlier of the run's
/// front and the heap's root, so an add in rank order and the eviction of
/// the earliest entry cost O(1); only elements out of order pay O(log n).
struct Order {
    run: VecDeque<OrderEntry>,
    heap: Vec<OrderEntry>,
}

impl Order {
    const fn new() -> Self {
        Order {
            run: VecDeque::new(),
            heap: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.run.len() + self.heap.len()
    }

    /// Drops every element, keeping the allocations.
    fn clear(&mut self) {
        self.run.clear();
        self.heap.clear();
    }

    /// Whether the earliest element is the run's front (rather than the
    /// heap's root).
    fn first_in_run(&self) -> bool {
        match (self.run.front(), self.heap.first()) {
            (Some(r), Some(h)) => r.rank() <= h.rank(),
            (r, _) => r.is_some(),
        }
    }

    /// The earliest element.
    fn first(&self) -> Option<&OrderEntry> {
        if self.first_in_run() {
            self.run.front()
        } else {
            self.heap.first()
        }
    }

    /// Adds `e`; true when it is now the earliest element.
    fn push(&mut self, e: OrderEntry) -> bool {
        match self.run.back() {
            Some(last) if e.rank() < last.rank() => {
                self.heap.push(e);
                let pushed = self.heap.len() - 1;
                let at = sift_up(&mut self.heap, pushed);
                at == 0 && self.run.front().is_none_or(|r| e.rank() <= r.rank())
            }
            _ => {
                let alone = self.run.is_empty();
                self.run.push_back(e);
                alone && self.heap.first().is_none_or(|h| e.rank() <= h.rank())
            }
        }
    }

    /// Puts back an element no later than any other (one `pop_first` took).
    fn push_first(&mut self, e: OrderEntry) {
        self.run.push_front(e);
    }

    fn pop_first(&mut self) -> Option<OrderEntry> {
        if self.first_in_run() {
            return self.run.pop_front();
        }
        if self.heap.is_empty() {
            return None;
        }
        let root = self.heap.swap_remove(0);
        if !self.heap.is_empty() {
            sift_down(&mut self.heap, 0);
        }
        Some(root)
    }

    /// Takes every element out, in no particular order.
    fn take_all(&mut self) -> Vec<OrderEntry> {
        let mut all = Vec::from(std::mem::take(&mut self.run));
        all.append(&mut self.heap);
        all
    }

    /// An order holding `sorted` (earliest first) as its run.
    fn from_sorted(sorted: Vec<OrderEntry>) -> Self {
        Order {
            run: VecDeque::from(sorted),
            heap: Vec::new(),
        }
    }
}

/// Moves the element at `pos` up to its place, which it returns.
fn sift_up(heap: &mut [OrderEntry], mut pos: usize) -> usize {
    let moving = heap[pos];
    while pos > 0 {
        let parent = (pos - 1) / 2;
        if moving.rank() >= heap[parent].rank() {
            break;
        }
        heap[pos] = heap[parent];
        pos = parent;
    }
    heap[pos] = moving;
    pos
}

fn sift_down(heap: &mut [OrderEntry], mut pos: usize) {
    let moving = heap[pos];
    let n = heap.len();
    loop {
        let left = 2 * pos + 1;
        if left >= n {
            break;
        }
        let right = left + 1;
        let child = if right < n && heap[right].rank() < heap[left].rank() {
            right
        } else {
            left
        };
        if heap[child].rank() >= moving.rank() {
            break;
        }
        heap[pos] = heap[child];
        pos = child;
    }
    heap[pos] = moving;
}

/// A slab slot: 32 bytes. No copy of the key: the index finds candidates
/// by hash, and the session itself says whether it has the key.
struct Slot<S> {
    session: Option<S>,
    /// The entry's rank; its element's rank is this or earlier.
    expiry: Expiry,
    stamp: u64,
    /// The key's table hash, to find the slot's index entry on removal; in
    /// a free slot, the next free slot.
    hash: u32,
    /// The seq of this entry's one live element. A u32 per shard:
    /// seqs are drawn only by pushes, and the order is compacted (dropping
    /// every stale element) at least every 2^31 of them, so no stale element
    /// meets its seq again.
    seq: u32,
}

const CHUNK_BITS: u32 = 8;
const CHUNK: usize = 1 << CHUNK_BITS;
/// No slot: the end of the free list.
const NO_SLOT: u32 = u32::MAX;

/// The hash the index works with, from the key's 32-bit table hash in both
/// halves (hashbrown takes its bucket from the low bits and its tag from the
/// top ones), so that it can be rebuilt from `Slot::hash`.
fn index_hash(hash: u32) -> u64 {
    hash as u64 | (hash as u64) << 32
}

/// How far a shard's count may drift from the cache-wide count before it
/// is folded in (see [`Counters`]).
const BATCH: isize = 32;
/// The most the cache-wide count can be off by, all shards together.
const SLACK: isize = BATCH * SHARDS as isize;

/// One shard: a chunked slab of slots (filled in insertion order, no large
/// reallocations), a hash index of slot numbers (4 bytes each, so that it
/// stays in cache), and the order. All methods run under the shard lock,
/// or on a shard [`Self::detach`] returned (see [`Self::drain_all`]).
struct Shard<S> {
    chunks: Vec<Vec<Slot<S>>>,
    /// First free slot (`NO_SLOT`: none); a free slot's `hash` links to the
    /// next one, so freeing never allocates.
    free_head: u32,
    index: HashTable<u32>,
    order: Order,
    live: usize,
    next_seq: u32,
    /// Set every 2^31 seqs: the next push compacts the order, so that no
    /// stale element lives to see its seq drawn again.
    compact_due: bool,
    last_stamp: u64,
    /// Adds minus removes not yet folded into `Counters::len`.
    pending: isize,
}

fn slot_in<S>(chunks: &[Vec<Slot<S>>], i: u32) -> &Slot<S> {
    &chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
}

/// Whether slot `i` holds the session with `key`; `same` is a fast yes for
/// the caller's own object (whose key is `key`).
fn holds<S: CurrentKey>(
    chunks: &[Vec<Slot<S>>],
    i: u32,
    hash: u32,
    key: &SessionKey,
    same: &impl Fn(&S) -> bool,
) -> bool {
    let slot = slot_in(chunks, i);
    slot.hash == hash
        && slot
            .session
            .as_ref()
            .is_some_and(|s| same(s) || s.current_key().as_ref() == Some(key))
}

impl<S> Shard<S> {
    const fn new() -> Self {
        Shard {
            chunks: Vec::new(),
            free_head: NO_SLOT,
            index: HashTable::new(),
            order: Order::new(),
            live: 0,
            next_seq: 0,
            compact_due: false,
            last_stamp: 0,
            pending: 0,
        }
    }

    fn slot(&self, i: u32) -> &Slot<S> {
        slot_in(&self.chunks, i)
    }

    fn slot_mut(&mut self, i: u32) -> &mut Slot<S> {
        &mut self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }

    /// A seq for a new element (drawn only by `push`).
    fn seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        if self.next_seq & (u32::MAX >> 1) == 0 {
            self.compact_due = true;
        }
        self.next_seq
    }

    /// A stamp at or after `now`, later than any this shard gave out.
    fn stamp(&mut self, now: u64) -> u64 {
        self.last_stamp = now.max(self.last_stamp + 1);
        self.last_stamp
    }

    /// The slot holding the session with `key`.
    fn find(&self, hash: u32, key: &SessionKey, same: impl Fn(&S) -> bool) -> Option<u32>
    where
        S: CurrentKey,
    {
        let chunks = &self.chunks;
        self.index
            .find(index_hash(hash), |&i| holds(chunks, i, hash, key, &same))
            .copied()
    }

    /// Stores `offer`'s handle under `key` unless the key is present: then
    /// returns the slot that holds it, and the offer back. One probe either
    /// way.
    fn insert_or_find<O: Offer<S>>(
        &mut self,
        hash: u32,
        key: &SessionKey,
        offer: O,
        rank: Rank,
    ) -> Result<u32, (u32, O)>
    where
        S: CurrentKey,
    {
        let chunks = &self.chunks;
        let same = |s: &S| offer.is(s);
        let vacant = match self.index.entry(
            index_hash(hash),
            |&i| holds(chunks, i, hash, key, &same),
            |&i| index_hash(slot_in(chunks, i).hash),
        ) {
            hashbrown::hash_table::Entry::Occupied(found) => {
                return Err((*found.get(), offer));
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => vacant,
        };
        let slot = Slot {
            session: Some(offer.into_handle()),
            expiry: rank.0,
            stamp: rank.1,
            hash,
            // Set by the push that follows.
            seq: 0,
        };
        let i = match self.free_head {
            NO_SLOT => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                let n = self.chunks.len() - 1;
                self.chunks[n].push(slot);
                ((n << CHUNK_BITS) + self.chunks[n].len() - 1) as u32
            }
            i => {
                let target = &mut self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)];
                self.free_head = target.hash;
                *target = slot;
                i
            }
        };
        vacant.insert(i);
        self.live += 1;
        Ok(i)
    }

    /// Removes slot `i` from the index and the slab; returns its session.
    fn take(&mut self, i: u32) -> S {
        let hash = self.slot(i).hash;
        if let Ok(entry) = self.index.find_entry(index_hash(hash), |&e| e == i) {
            entry.remove();
        }
        self.free_slot(i)
    }

    /// Removes the entry holding the session with `key` (one probe of the
    /// index), returning its session.
    fn take_matching(&mut self, hash: u32, key: &SessionKey, same: impl Fn(&S) -> bool) -> Option<S>
    where
        S: CurrentKey,
    {
        let chunks = &self.chunks;
        let found = self
            .index
            .find_entry(index_hash(hash), |&i| holds(chunks, i, hash, key, &same))
            .ok()?;
        let (i, _) = found.remove();
        Some(self.free_slot(i))
    }

    /// Puts slot `i`, already out of the index, on the free list and returns
    /// its session. Its element goes stale; an emptied shard drops its
    /// order at once.
    fn free_slot(&mut self, i: u32) -> S {
        let next = self.free_head;
        let slot = self.slot_mut(i);
        let session = slot.session.take().expect("live slot holds a session");
        slot.hash = next;
        self.free_head = i;
        self.live -= 1;
        if self.live == 0 {
            self.order.clear();
        }
        session
    }

    fn is_live(&self, e: &OrderEntry) -> bool {
        let slot = self.slot(e.slot);
        slot.session.is_some() && slot.seq == e.seq
    }

    /// The rank of slot `i`'s entry.
    fn rank_of(&self, i: u32) -> Rank {
        let slot = self.slot(i);
        (slot.expiry, slot.stamp)
    }

    /// Gives the entry in slot `i` a new rank. True when a new element
    /// became the shard's earliest (the eviction frontier must be told).
    fn rerank(&mut self, i: u32, rank: Rank) -> bool {
        let old = self.rank_of(i);
        let slot = self.slot_mut(i);
        (slot.expiry, slot.stamp) = rank;
        if rank >= old {
            // The element's rank stays a lower bound.
            return false;
        }
        self.push(rank, i)
    }

    /// Pushes an element; true when it became the first. Adds and re-sorts
    /// are where the order grows, so they keep it within twice the live count.
    fn push(&mut self, rank: Rank, slot: u32) -> bool {
        let seq = self.seq();
        self.slot_mut(slot).seq = seq;
        let first = self.order.push(OrderEntry {
            expiry: rank.0,
            stamp: rank.1,
            slot,
            seq,
        });
        self.compact_if_stale();
        first
    }

    /// Drops stale elements from the front and moves outdated ones back to
    /// their entry's rank, so that the first element (if any) is live and exact.
    fn clean_front(&mut self) {
        while let Some(&first) = self.order.first() {
            if !self.is_live(&first) {
                self.order.pop_first();
                continue;
            }
            let rank = self.rank_of(first.slot);
            if rank == first.rank() {
                break;
            }
            self.order.pop_first();
            self.order.push(OrderEntry {
                expiry: rank.0,
                stamp: rank.1,
                ..first
            });
        }
    }

    /// Rebuilds the order from its live elements, sorted into one run, once
    /// stale ones dominate, keeping it within twice the live count, and when
    /// `compact_due` says so. A rebuild sorts at most twice the live count
    /// of elements, after at least as many operations made stale elements
    /// (removes, evictions, re-sorts): amortised O(log n) per operation.
    fn compact_if_stale(&mut self) {
        if !self.compact_due && self.order.len() <= 2 * self.live + 64 {
            return;
        }
        self.compact_due = false;
        let live = self.take_live_sorted();
        self.order = Order::from_sorted(live);
    }

    /// Takes every element out of the order and returns the live ones, each
    /// at its entry's rank, earliest first.
    fn take_live_sorted(&mut self) -> Vec<OrderEntry> {
        let mut live = self.order.take_all();
        live.retain(|e| self.is_live(e));
        for e in &mut live {
            (e.expiry, e.stamp) = self.rank_of(e.slot);
        }
        live.sort_unstable_by_key(OrderEntry::rank);
        live
    }

    /// The live first element, after dropping stale elements before it.
    fn earliest(&mut self) -> Option<OrderEntry> {
        self.clean_front();
        self.order.first().copied()
    }

    /// The earliest live element other than `except` (slot, seq).
    fn earliest_except(&mut self, except: Option<(u32, u32)>) -> Option<OrderEntry> {
        let first = self.earliest()?;
        if Some((first.slot, first.seq)) != except {
            return Some(first);
        }
        // Set the excepted first element aside, look, and put it back.
        self.order.pop_first();
        let next = self.earliest();
        self.order.push_first(first);
        next
    }

    /// Empties the shard and returns what it held, to be drained (see
    /// [`Self::drain_all`]) after the lock is let go. Seqs and stamps
    /// outlive the entries: they keep growing in the emptied shard. (The
    /// caller has taken the count not yet folded.)
    fn detach(&mut self) -> Shard<S> {
        let mut emptied = Shard::new();
        (emptied.next_seq, emptied.last_stamp) = (self.next_seq, self.last_stamp);
        std::mem::replace(self, emptied)
    }

    /// Takes every entry of a detached shard (in rank order when
    /// `in_order`): at most one sort instead of taking the earliest per
    /// entry.
    fn drain_all(mut self, out: &mut Vec<(Rank, S)>, in_order: bool) {
        if in_order {
            for e in self.take_live_sorted() {
                let session = self.slot_mut(e.slot).session.take().expect("live slot");
                out.push((e.rank(), session));
            }
        } else {
            // Ranks are only needed to sort.
            let none = (Expiry(0), 0);
            for chunk in &mut self.chunks {
                out.extend(
                    chunk
                        .iter_mut()
                        .filter_map(|s| Some((none, s.session.take()?))),
                );
            }
        }
    }

    /// Takes live entries in rank order while `take_it` says so; returns how
    /// many it took.
    fn drain_while(&mut self, out: &mut Vec<(Rank, S)>, take_it: impl Fn(Expiry) -> bool) -> usize {
        let mut taken = 0;
        while let Some(first) = self.earliest() {
            if !take_it(first.expiry) {
                break;
            }
            self.order.pop_first();
            out.push((first.rank(), self.take(first.slot)));
            taken += 1;
        }
        taken
    }
}

/// A shard, padded to its own cache line, and its entry count, which
/// `len` reads without the lock.
#[repr(align(64))]
struct ShardCell<S> {
    shard: SpinLock<Shard<S>>,
    /// `Shard::live`, stored under the lock.
    live: AtomicUsize,
}

impl<S> ShardCell<S> {
    fn new() -> Self {
        ShardCell {
            shard: SpinLock::new(Shard::new()),
            live: AtomicUsize::new(0),
        }
    }
}

/// Where eviction looks: a lower bound of every shard's earliest rank, as
/// an [`ordinal`] (`u128::MAX`: empty), kept under the eviction lock.
///
/// A bound goes stale-low when entries leave (remove, flush), which is safe:
/// eviction locks the shard with the lowest bound and checks it exactly. It
/// would go stale-high when an entry becomes a shard's earliest, so that
/// shard then raises its flag in `dirty` (under its own lock), and eviction
/// folds flagged shards in before each choice. A flag already raised is not
/// written again, so far from the limit (no eviction lowers them) adds and
/// removes write nothing here.
///
/// Lock order: the eviction lock, then one shard lock.
struct Frontier {
    earliest: SpinLock<Bounds>,
    dirty: Flags,
}

/// Bit i: shard i has a new earliest element since eviction last looked. On a
/// line of its own: adds read it, evictions write the bounds.
#[repr(align(64))]
struct Flags(AtomicU32);

/// What the eviction lock guards: the shards' bounds, and the number of
/// sessions evicted (`SSL_CTX_sess_cache_full`), kept here so that an
/// eviction writes no other shared line for it.
///
/// The bounds form a tournament, so that choosing a victim costs a walk of
/// four levels rather than a scan of every shard: in a complete binary tree
/// whose node `n` has children `2n` and `2n + 1` and whose leaves
/// `SHARDS + i` are the shards, `won[n]` is the shard with the lowest bound
/// below node `n` (ties: the lower shard). Indices are masked into range, so
/// the walks carry no bounds checks.
struct Bounds {
    rank: [u128; SHARDS],
    won: [u8; 2 * SHARDS],
    evicted: u64,
}

impl Bounds {
    fn new() -> Self {
        // All bounds equal: every node's winner is its leftmost leaf.
        let mut won = [0u8; 2 * SHARDS];
        for (node, w) in won.iter_mut().enumerate().skip(1) {
            let mut leaf = node;
            while leaf < SHARDS {
                leaf *= 2;
            }
            *w = (leaf - SHARDS) as u8;
        }
        Bounds {
            rank: [u128::MAX; SHARDS],
            won,
            evicted: 0,
        }
    }

    fn rank_of_winner(&self, node: usize) -> u128 {
        self.rank[self.won[node & (2 * SHARDS - 1)] as usize & (SHARDS - 1)]
    }

    /// Sets `shard`'s bound and replays its matches up to the root.
    fn set(&mut self, shard: usize, rank: u128) {
        let shard = shard & (SHARDS - 1);
        if self.rank[shard] == rank {
            return;
        }
        self.rank[shard] = rank;
        let mut node = (SHARDS + shard) / 2;
        while node >= 1 {
            let left = 2 * node;
            let winner = if self.rank_of_winner(left + 1) < self.rank_of_winner(left) {
                left + 1
            } else {
                left
            };
            self.won[node] = self.won[winner & (2 * SHARDS - 1)];
            node /= 2;
        }
    }

    /// The shard with the lowest bound, that bound, and the second lowest
    /// bound (`u128::MAX` if none): the lowest among those the winner beat
    /// on its way up, one per level.
    fn lowest_two(&self) -> (usize, u128, u128) {
        let best = self.won[1] as usize & (SHARDS - 1);
        let mut second = u128::MAX;
        let mut node = SHARDS + best;
        while node > 1 {
            second = second.min(self.rank_of_winner(node ^ 1));
            node /= 2;
        }
        (best, self.rank[best], second)
    }
}

impl Frontier {
    fn new() -> Self {
        Frontier {
            earliest: SpinLock::new(Bounds::new()),
            dirty: Flags(AtomicU32::new(0)),
        }
    }

    /// Flags `shard` (call with its lock held, after its first element changed).
    /// Reading first is enough: a fold that has cleared the bit and read this
    /// shard did so under this lock before we took it, so the load sees the
    /// bit cleared; a fold that has not read the shard yet will see the new
    /// first element when it does.
    fn flag(&self, shard: usize) {
        let bit = 1 << shard;
        if self.dirty.0.load(Ordering::Relaxed) & bit == 0 {
            self.dirty.0.fetch_or(bit, Ordering::Release);
        }
    }
}

/// What one eviction pass found (see `SessionCache::eviction_pass`).
enum Pass<'a, S> {
    /// Nothing left to evict.
    Empty,
    /// A bound was made exact; choose again.
    Again,
    /// The victim: its shard (still locked), the shard's index, its slot.
    Victim(SpinLockGuard<'a, Shard<S>>, usize, u32),
}

/// The bounds as one eviction call uses them (eviction lock held). Once the
/// call has seen, under its lock, the earliest entry of the excepted entry's
/// shard other than that entry, the tournament ranks the shard by it, and the
/// shard's real bound is held back here; dropping the choice puts it back.
struct Choice<'a> {
    bounds: &'a mut Bounds,
    held_back: Option<(usize, u128)>,
}

impl Choice<'_> {
    /// Records `shard`'s bound. For the excepted entry's shard the real bound
    /// is held back; the rank shown is a snapshot, taken under the shard's
    /// lock, which only a new earliest entry (a flag, folded here) can
    /// undercut: then the shard is shown by that, to be looked at again.
    /// (An entry another thread adds behind the shard's earliest raises no
    /// flag: like any add after the last fold, it is concurrent with this
    /// eviction, which may rank it as not yet there.)
    fn set(&mut self, shard: usize, rank: u128) {
        match &mut self.held_back {
            Some((held, real)) if *held == shard => {
                *real = rank;
                if rank < self.bounds.rank[shard] {
                    self.bounds.set(shard, rank);
                }
            }
            _ => self.bounds.set(shard, rank),
        }
    }

    /// Ranks `shard` by `other` for the rest of the call; `real` is its bound.
    fn rank_excepted_by(&mut self, shard: usize, real: u128, other: u128) {
        self.held_back = Some((shard, real));
        self.bounds.set(shard, other);
    }
}

impl Drop for Choice<'_> {
    fn drop(&mut self) {
        if let Some((shard, real)) = self.held_back.take() {
            self.bounds.set(shard, real);
        }
    }
}

/// The sessions of one context.
pub struct SessionCache<S> {
    shards: [ShardCell<S>; SHARDS],
    frontier: Frontier,
    /// Read on every call: kept off the counters' line.
    hasher: KeyHasher,
    counters: Counters,
    /// Serialises switches between batched and exact counting.
    switching: Lock<()>,
    /// Flushes taken so far: where the next one starts (see `flush`).
    flushes: AtomicUsize,
    /// Where stamps come from.
    clock: Clock,
}

/// The cache-wide count, on a cache line of its own.
///
/// Far from the size limit, the count is batched: each shard keeps its own
/// difference (`Shard::pending`, under its lock) and folds it into `len`
/// only when it reaches [`BATCH`], so threads on different shards write no
/// common line; `len` is then within [`SLACK`] of the truth, which is enough
/// to know that no eviction is due. Near the limit (and for every cache
/// with a limit below `SLACK`) counting is exact: every add and remove
/// changes `len` under its shard lock, and evictions are claimed on it.
/// The exact count of entries is always the sum of the shards' `live`.
#[repr(align(64))]
struct Counters {
    /// Signed: a claimed eviction is counted before its victim leaves, so a
    /// concurrent flush can take the count briefly below zero.
    len: AtomicIsize,
    exact: AtomicBool,
    /// The size limit the last add passed (for flush's switch back).
    limit: AtomicUsize,
}

impl<S: PartialEq + CurrentKey> Default for SessionCache<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: PartialEq + CurrentKey> SessionCache<S> {
    pub fn new() -> Self {
        Self::with_clock(instant_ns)
    }

    /// A cache that reads `clock` for its stamps (one reading per add or
    /// re-time).
    pub fn with_clock(clock: Clock) -> Self {
        SessionCache {
            shards: std::array::from_fn(|_| ShardCell::new()),
            frontier: Frontier::new(),
            hasher: KeyHasher::new(),
            counters: Counters {
                len: AtomicIsize::new(0),
                exact: AtomicBool::new(false),
                limit: AtomicUsize::new(0),
            },
            switching: Lock::new(()),
            flushes: AtomicUsize::new(0),
            clock,
        }
    }

    /// Takes the cache's atomics, and its spin locks' flags, out of a race
    /// detector's checks (see `sync::exempt_from_race_checks`): atomics are
    /// read without a lock by design, and the flags are the locks, which the
    /// detector is told of. Call it at the cache's final address.
    pub(crate) fn exempt_atomics_from_race_checks(&self) {
        for cell in &self.shards {
            sync::exempt_from_race_checks(&cell.live);
            cell.shard.exempt_from_race_checks();
        }
        sync::exempt_from_race_checks(&self.frontier.dirty);
        self.frontier.earliest.exempt_from_race_checks();
        sync::exempt_from_race_checks(&self.counters);
        sync::exempt_from_race_checks(&self.flushes);
    }

    /// Number of sessions cached (exact whenever the cache is quiescent).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|c| c.live.load(Ordering::Relaxed))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards
            .iter()
            .all(|c| c.live.load(Ordering::Relaxed) == 0)
    }

    pub fn cache_full(&self) -> u64 {
        self.frontier.earliest.lock().evicted
    }

    fn lock(&self, shard: usize) -> SpinLockGuard<'_, Shard<S>> {
        self.shards[shard].shard.lock()
    }

    /// The table hash (low 32 bits) and shard (bits 48..) of `key`.
    fn locate(&self, key: &SessionKey) -> (u32, usize) {
        let hash = self.hasher.hash_one(*key);
        (hash as u32, (hash >> 48) as usize % SHARDS)
    }

    /// Records `delta` entries added to (or removed from) `shard`, under its
    /// lock, and stores its new live count for lock-free readers.
    fn count(&self, cell: &ShardCell<S>, shard: &mut Shard<S>, delta: isize) {
        cell.live.store(shard.live, Ordering::Relaxed);
        if self.counters.exact.load(Ordering::Relaxed) {
            self.counters.len.fetch_add(delta, Ordering::Relaxed);
        } else {
            shard.pending += delta;
            if shard.pending.abs() >= BATCH {
                self.counters
                    .len
                    .fetch_add(shard.pending, Ordering::Relaxed);
                shard.pending = 0;
            }
        }
    }

    /// Counts an entry just added to `shard`, under its lock. When counting
    /// exactly, the count is left to [`Self::enforce`], which makes it part
    /// of the eviction claim (one write of `len` per add); returns whether
    /// it was left.
    fn count_added(&self, cell: &ShardCell<S>, shard: &mut Shard<S>) -> bool {
        if self.counters.exact.load(Ordering::Relaxed) {
            cell.live.store(shard.live, Ordering::Relaxed);
            true
        } else {
            self.count(cell, shard, 1);
            false
        }
    }

    /// Switches to exact counting: folds every shard's difference into
    /// `len`. A shard counts exactly from the moment it is folded (it reads
    /// the flag under the same lock), so `len` is exact once all are.
    fn count_exactly(&self) {
        let _switching = self.switching.lock();
        if self.counters.exact.load(Ordering::Relaxed) {
            return;
        }
        self.counters.exact.store(true, Ordering::Relaxed);
        for shard in 0..SHARDS {
            let mut guard = self.lock(shard);
            self.counters
                .len
                .fetch_add(std::mem::take(&mut guard.pending), Ordering::Relaxed);
        }
    }

    /// Back to batched counting once the cache is far below its limit (after
    /// a flush): then no add can be due an eviction before `len` shows it.
    fn count_in_batches_if_far(&self) {
        if !self.counters.exact.load(Ordering::Relaxed) {
            return;
        }
        let _switching = self.switching.lock();
        let limit = self.counters.limit.load(Ordering::Relaxed) as isize;
        if limit == 0 || self.counters.len.load(Ordering::Relaxed) + 2 * SLACK < limit {
            self.counters.exact.store(false, Ordering::Relaxed);
        }
    }

    /// Adds the session `offer` stands for under `key` (which must be its
    /// current key). With
    /// `limit > 0` the cache then holds at most `limit` sessions, evicting
    /// the earliest-expiring ones other than the one just added. Adding the
    /// object already cached re-sorts it as the newest of its expiry, as
    /// libssl 3.0 does (the man page calls it a no-op; libssl's order is
    /// observable through the remove callback).
    pub fn add<O: Offer<S>>(
        &self,
        key: SessionKey,
        expiry: Expiry,
        offer: O,
        limit: usize,
    ) -> Added<S, O> {
        let (hash, shard) = self.locate(&key);
        let now = clock_stamp(self.clock);
        let cell = &self.shards[shard];
        let mut guard = self.lock(shard);
        let rank = (expiry, guard.stamp(now));
        let (slot, replaced, uncounted) = match guard.insert_or_find(hash, &key, offer, rank) {
            Ok(i) => {
                let uncounted = self.count_added(cell, &mut guard);
                // The eviction frontier only needs refreshing when the new
                // element is the first: otherwise the old first (maybe stale
                // now) is still a lower bound.
                if guard.push(rank, i) {
                    self.frontier.flag(shard);
                }
                (i, None, uncounted)
            }
            Err((i, offer)) => {
                // Same key: re-sort, and swap the object if it is another one.
                if guard.rerank(i, rank) {
                    self.frontier.flag(shard);
                }
                let cached = guard.slot_mut(i).session.as_mut().expect("live slot");
                if offer.is(cached) {
                    return Added::Duplicate(offer);
                }
                (
                    i,
                    Some(std::mem::replace(cached, offer.into_handle())),
                    false,
                )
            }
        };
        // The entry's live element, which its own eviction spares.
        let spare = (shard, slot, guard.slot(slot).seq);
        drop(guard);
        let evicted = self.enforce(limit, spare, uncounted);
        match replaced {
            None => Added::New { evicted },
            Some(old) => Added::Replaced { old, evicted },
        }
    }

    /// Evicts down to `limit` (0: none), sparing the entry just added
    /// (shard, slot, seq: should that entry leave and its slot be reused
    /// meanwhile, the slot's new entry is not spared); first counts that entry if `uncounted`.
    fn enforce(&self, limit: usize, added: (usize, u32, u32), uncounted: bool) -> Evicted<S> {
        let mut evicted = Evicted::new();
        if uncounted {
            // Count the new entry, unless the cache is full: then it and the
            // victim it now owes cancel out, and `len` is not written at all.
            let owes_victim = self
                .counters
                .len
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |len| {
                    (limit == 0 || len < limit as isize).then_some(len + 1)
                })
                .is_err();
            if owes_victim {
                match self.evict_earliest(Some(added)) {
                    Some(s) => evicted.push(s),
                    None => {
                        self.counters.len.fetch_add(1, Ordering::Relaxed);
                        return evicted;
                    }
                }
            }
        }
        if limit == 0 {
            return evicted;
        }
        if self.counters.limit.load(Ordering::Relaxed) != limit {
            self.counters.limit.store(limit, Ordering::Relaxed);
        }
        if !self.counters.exact.load(Ordering::Relaxed) {
            if self.counters.len.load(Ordering::Relaxed) + SLACK < limit as isize {
                return evicted;
            }
            self.count_exactly();
        }
        while self.claim_eviction(limit) {
            match self.evict_earliest(Some(added)) {
                Some(s) => evicted.push(s),
                None => {
                    // Nothing left to evict but the new session: give back
                    // the claimed count.
                    self.counters.len.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        evicted
    }

    /// Takes one unit of excess over `limit` off `len`, if there is any, so
    /// that concurrent adders never evict more than the excess between them.
    fn claim_eviction(&self, limit: usize) -> bool {
        self.counters
            .len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |len| {
                (len > limit as isize).then(|| len - 1)
            })
            .is_ok()
    }

    /// Removes the earliest-expiring session other than the one in `except`
    /// (shard, slot, seq), counting it in `Bounds::evicted`. The caller has already
    /// taken it off `len` (see `claim_eviction`).
    fn evict_earliest(&self, except: Option<(usize, u32, u32)>) -> Option<S> {
        // Under the eviction lock, once flagged shards are folded in, the
        // frontier's bounds never overstate how early a shard's earliest
        // entry is. Each pass folds, then locks the shard with the lowest
        // bound, makes its bound exact, and takes its earliest entry if it is
        // no later than every other bound; otherwise it chooses again. The
        // excepted entry's shard is ranked by its earliest other entry once
        // that was seen under its lock (its bound may be the excepted entry
        // itself), for this call only: a snapshot, like every bound between
        // two folds (see `Choice::set`). Each pass evicts or makes a bound
        // exact; other threads' removes make bounds stale-low and their adds
        // raise flags meanwhile, which the pass limit covers.
        let mut frontier = self.frontier.earliest.lock();
        let mut choice = Choice {
            bounds: &mut frontier,
            held_back: None,
        };
        for _ in 0..4 * SHARDS {
            match self.eviction_pass(&mut choice, except) {
                Pass::Empty => return None,
                Pass::Again => continue,
                Pass::Victim(mut guard, shard, slot) => {
                    // The victim is chosen and its shard stays locked until
                    // it is gone, so the eviction lock can go first: the next
                    // eviction need not wait for the slab and index work.
                    drop(choice);
                    drop(frontier);
                    let s = guard.take(slot);
                    self.shards[shard].live.store(guard.live, Ordering::Relaxed);
                    return Some(s);
                }
            }
        }
        None
    }

    /// One pass of [`Self::evict_earliest`] (eviction lock held): folds
    /// flagged shards into `choice`, locks the shard with the lowest bound
    /// and makes its bound exact; if its earliest entry other than `except`
    /// is no later than every other bound, pops its element if it is the
    /// shard's first (else leaves it stale), counts the eviction and returns
    /// it with its shard still locked. Inlined: as a
    /// call it cost each evicting add about 5 instructions (callgrind).
    #[inline(always)]
    fn eviction_pass(
        &self,
        choice: &mut Choice<'_>,
        except: Option<(usize, u32, u32)>,
    ) -> Pass<'_, S> {
        self.fold_flagged(choice);
        let (shard, best, second) = choice.bounds.lowest_two();
        if best == u128::MAX {
            return Pass::Empty;
        }
        let mut guard = self.lock(shard);
        let earliest = guard.earliest();
        let exact = bound_of(earliest.as_ref());
        let found = match except {
            Some((s, slot, seq)) if s == shard => {
                let other = guard.earliest_except(Some((slot, seq)));
                choice.rank_excepted_by(shard, exact, bound_of(other.as_ref()));
                other
            }
            _ => {
                choice.set(shard, exact);
                earliest
            }
        };
        let Some(e) = found.filter(|e| ordinal(e.rank()) <= second) else {
            return Pass::Again;
        };
        // The victim is usually the first: pop its element now rather than
        // leave it stale for the next eviction.
        if guard.order.first().is_some_and(|r| r.slot == e.slot) {
            guard.order.pop_first();
        }
        choice.set(shard, bound_of(guard.order.first()));
        choice.bounds.evicted += 1;
        Pass::Victim(guard, shard, e.slot)
    }

    /// Brings the bounds of flagged shards up to date in `choice` (eviction
    /// lock held).
    fn fold_flagged(&self, choice: &mut Choice<'_>) {
        if self.frontier.dirty.0.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut flagged = self.frontier.dirty.0.swap(0, Ordering::Acquire);
        while flagged != 0 {
            let shard = flagged.trailing_zeros() as usize;
            flagged &= flagged - 1;
            let guard = self.lock(shard);
            choice.set(shard, bound_of(guard.order.first()));
        }
    }

    /// Removes the session under `key`, returning it; `same` is a fast yes
    /// for the caller's own object (whose key is `key`).
    pub fn remove(&self, key: &SessionKey, same: impl Fn(&S) -> bool) -> Option<S> {
        let (hash, shard) = self.locate(key);
        let cell = &self.shards[shard];
        let mut guard = self.lock(shard);
        let s = guard.take_matching(hash, key, same)?;
        self.count(cell, &mut guard, -1);
        // The shard's bound in the eviction frontier stays a lower bound.
        drop(guard);
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
        let i = guard.find(hash, key, |_| false)?;
        guard.slot(i).session.clone()
    }

    pub fn contains(&self, key: &SessionKey) -> bool {
        let (hash, shard) = self.locate(key);
        self.lock(shard).find(hash, key, |_| false).is_some()
    }

    /// Removes the sessions `scope` selects. With `in_order` they are returned
    /// earliest expiry first (ties in insertion order), for callers that
    /// report them; otherwise in no particular order, which saves the sorts.
    /// O(k log n) for k expired sessions, O(n log n) or O(n) for all.
    ///
    /// Flushes that run at once start at shards far apart (the n-th flush at
    /// shard bit-reverse(n)): each drains the shards it reaches first and
    /// releases what it took in parallel with the others, instead of one
    /// draining every shard while the others queue behind it for nothing.
    pub fn flush(&self, scope: FlushScope, in_order: bool) -> Vec<S> {
        let mut out = Vec::new();
        let turn = self.flushes.fetch_add(1, Ordering::Relaxed);
        let first = turn.reverse_bits() >> (usize::BITS - SHARDS.trailing_zeros());
        for shard in (0..SHARDS).map(|i| (first + i) % SHARDS) {
            let cell = &self.shards[shard];
            let mut guard = self.lock(shard);
            // Folding the shard's difference is right in either counting
            // mode; dropping it would skew the batched count.
            let pending = std::mem::take(&mut guard.pending);
            let (taken, detached) = match scope {
                // The shard is emptied at once and drained (a sort, a pass
                // over its slab, freeing its buffers) once its lock is let go.
                FlushScope::All => {
                    let detached = guard.detach();
                    (detached.live, Some(detached))
                }
                FlushScope::ExpiredAt(t) => {
                    (guard.drain_while(&mut out, |e| e.is_expired_at(t)), None)
                }
            };
            self.counters
                .len
                .fetch_add(pending - taken as isize, Ordering::Relaxed);
            cell.live.store(guard.live, Ordering::Relaxed);
            drop(guard);
            if let Some(detached) = detached {
                detached.drain_all(&mut out, in_order);
            }
        }
        self.count_in_batches_if_far();
        if in_order {
            // Each shard's run is already sorted: a stable sort merges runs.
            out.sort_by_key(|(rank, _)| *rank);
        }
        out.into_iter().map(|(_, s)| s).collect()
    }

    /// Gives the entry under `key` a new expiry, if it holds the session
    /// `is_it` picks (a session's time changed behind the cache's back). Like
    /// libssl's re-sort, it then ranks as the newest among equal expiries.
    pub fn reexpire_one(&self, key: &SessionKey, is_it: impl Fn(&S) -> bool, expiry: Expiry) {
        let (hash, shard) = self.locate(key);
        let mut guard = self.lock(shard);
        let Some(i) = guard.find(hash, key, &is_it) else {
            return;
        };
        if guard.slot(i).session.as_ref().is_some_and(&is_it) {
            let rank = (expiry, guard.stamp(clock_stamp(self.clock)));
            if guard.rerank(i, rank) {
                self.frontier.flag(shard);
            }
        }
    }

    /// Number of entries actually stored, counted shard by shard.
    #[cfg(test)]
    fn stored(&self) -> usize {
        (0..SHARDS).map(|s| self.lock(s).live).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A session handle whose clones are counted through the Arc. Its
    /// number is its key unless given another one (as a session whose id
    /// is set differently).
    #[derive(Clone, Debug)]
    struct Sess(Arc<u32>, Arc<std::sync::atomic::AtomicU32>);

    impl PartialEq for Sess {
        fn eq(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.0, &other.0)
        }
    }

    impl CurrentKey for Sess {
        fn current_key(&self) -> Option<SessionKey> {
            Some(key(self.1.load(Ordering::Relaxed)))
        }
    }

    /// Session `n` with key `k`.
    fn sess_keyed(n: u32, k: u32) -> Sess {
        Sess(Arc::new(n), Arc::new(std::sync::atomic::AtomicU32::new(k)))
    }

    fn key(n: u32) -> SessionKey {
        SessionKey::new(0x0303, &n.to_be_bytes()).unwrap()
    }

    fn sess(n: u32) -> Sess {
        sess_keyed(n, n)
    }

    fn ids(v: &[Sess]) -> Vec<u32> {
        v.iter().map(|s| *s.0).collect()
    }

    fn evicted_ids(e: Evicted<Sess>) -> Vec<u32> {
        e.into_iter().map(|s| *s.0).collect()
    }

    /// Adds session `n` under key `n`, which must be new to `c`; returns
    /// the ids of the sessions that add evicted.
    fn add_new(c: &SessionCache<Sess>, n: u32, expiry: i64, limit: usize) -> Vec<u32> {
        match c.add(key(n), Expiry(expiry), sess(n), limit) {
            Added::New { evicted } => evicted_ids(evicted),
            other => panic!("adding {n}: {other:?}"),
        }
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
    fn key_keeps_ids_of_every_length() {
        // 32 bytes take the fixed-size copy, shorter ones the padded one.
        let bytes: Vec<u8> = (1..=32).collect();
        for len in 0..=MAX_ID_LEN {
            let key = SessionKey::new(0x0303, &bytes[..len]).unwrap();
            assert_eq!(key.id(), &bytes[..len]);
            assert_eq!(key.is_empty_id(), len == 0);
            if len > 0 {
                let shorter = SessionKey::new(0x0303, &bytes[..len - 1]).unwrap();
                assert_ne!(key, shorter, "a key is not its id's prefix");
            }
        }
    }

    #[test]
    fn key_hash_spreads_sequential_ids_over_shards_and_buckets() {
        let h = KeyHasher::new();
        let mut per_shard = [0usize; SHARDS];
        let mut low = std::collections::HashSet::new();
        for n in 0..64_000u32 {
            let hash = h.hash_one(key(n));
            per_shard[(hash >> 48) as usize % SHARDS] += 1;
            low.insert(hash as u32);
        }
        // 4000 expected per shard; a poor hash of sequential ids piles up.
        assert!(
            per_shard.iter().all(|&c| (3500..4500).contains(&c)),
            "{per_shard:?}"
        );
        // Birthday bound for 64k draws from 2^32: about 0.5 collisions.
        assert!(low.len() >= 64_000 - 8, "{} distinct of 64000", low.len());
        // Same key, same hash; another version, another hash.
        assert_eq!(h.hash_one(key(7)), h.hash_one(key(7)));
        let other = SessionKey::new(0x0304, &7u32.to_be_bytes()).unwrap();
        assert_ne!(h.hash_one(key(7)), h.hash_one(other));
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
            Added::Replaced { old, evicted } => {
                assert_eq!(old, s1);
                assert!(evicted.is_empty());
            }
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
        assert_eq!(c.remove(&key(7), |_| false).map(|s| *s.0), Some(7));
        assert!(c.remove(&key(7), |_| false).is_none());
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
                evicted.extend(ev.into_iter());
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
                evicted.extend(ev.into_iter());
            }
        }
        assert_eq!(ids(&evicted), (0..30).collect::<Vec<_>>());
    }

    #[test]
    fn replacing_enforces_a_lowered_limit() {
        let c = SessionCache::new();
        for n in 1..=3 {
            c.add(key(n), Expiry(n as i64), sess(n), 0);
        }
        match c.add(key(3), Expiry(3), sess_keyed(30, 3), 2) {
            Added::Replaced { old, evicted } => {
                assert_eq!(*old.0, 3);
                assert_eq!(evicted_ids(evicted), vec![1]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key(3)).map(|s| *s.0), Some(30));
    }

    #[test]
    fn the_new_session_is_never_its_own_victim() {
        let c = SessionCache::new();
        c.add(key(1), Expiry(100), sess(1), 1);
        assert_eq!(add_new(&c, 2, 5, 1), vec![1]);
        assert!(c.contains(&key(2)));
    }

    #[test]
    fn duplicate_add_resorts_to_newest() {
        let c = SessionCache::new();
        let s1 = sess(1);
        c.add(key(1), Expiry(5), s1.clone(), 0);
        c.add(key(2), Expiry(5), sess(2), 0);
        assert!(matches!(
            c.add(key(1), Expiry(5), s1, 0),
            Added::Duplicate(_)
        ));
        assert_eq!(ids(&c.flush(FlushScope::All, true)), vec![2, 1]);
    }

    #[test]
    fn flush_takes_expired_in_order_and_keeps_live() {
        let c = SessionCache::new();
        for n in 0..100u32 {
            c.add(key(n), Expiry(1000 - n as i64), sess(n), 0);
        }
        let gone = c.flush(FlushScope::ExpiredAt(950), true);
        // Expired at 950: expiry < 950, i.e. n > 50.
        assert_eq!(ids(&gone), (51..100).rev().collect::<Vec<_>>());
        assert_eq!(c.len(), 51);
        assert_eq!(c.stored(), 51);
        assert!(c.flush(FlushScope::ExpiredAt(900), true).is_empty());
        assert_eq!(c.flush(FlushScope::All, false).len(), 51);
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
        assert_eq!(ids(&c.flush(FlushScope::ExpiredAt(1300), true)), vec![2]);
        assert_eq!(ids(&c.flush(FlushScope::ExpiredAt(5101), true)), vec![1]);
    }

    #[test]
    fn slots_are_reused_and_the_order_stays_consistent_under_churn() {
        let c = SessionCache::new();
        let mut live = std::collections::BTreeMap::new();
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 500) as u32;
            if x % 3 == 0 {
                assert_eq!(
                    c.remove(&key(n), |_| false).is_some(),
                    live.remove(&n).is_some()
                );
            } else {
                let e = (x >> 32) as i64 % 1000;
                c.add(key(n), Expiry(e), sess(n), 0);
                live.insert(n, e);
            }
        }
        assert_eq!(c.len(), live.len());
        assert_eq!(c.stored(), live.len());
        let expiries: Vec<i64> = c
            .flush(FlushScope::All, true)
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
    fn stale_elements_are_skipped_and_compacted() {
        let c = SessionCache::new();
        let sessions: Vec<Sess> = (0..50).map(sess).collect();
        for (n, s) in sessions.iter().enumerate() {
            c.add(key(n as u32), Expiry(100), s.clone(), 0);
        }
        // Re-add every session many times: each re-sort leaves a stale
        // element behind; removing half leaves more.
        for round in 0..100 {
            for (n, s) in sessions.iter().enumerate() {
                c.add(key(n as u32), Expiry(100 + round), s.clone(), 0);
            }
        }
        for n in 0..25 {
            assert!(c.remove(&key(n), |_| false).is_some());
        }
        let elements: usize = (0..SHARDS).map(|s| c.lock(s).order.len()).sum();
        assert!(
            elements <= 2 * 25 + 64 * SHARDS,
            "order compacted: {elements}"
        );
        // Flush sees only live entries, each once, in their final order.
        assert_eq!(
            ids(&c.flush(FlushScope::All, true)),
            (25..50).collect::<Vec<_>>()
        );
        assert!(c.is_empty());
    }

    #[test]
    fn add_remove_cycles_keep_the_order_bounded() {
        let c = SessionCache::new();
        for n in 0..64 {
            c.add(key(n), Expiry(1_000_000), sess(n), 0);
        }
        for n in 64..200_064 {
            c.add(key(n), Expiry(n as i64), sess(n), 0);
            assert!(c.remove(&key(n), |_| false).is_some());
        }
        let elements: usize = (0..SHARDS).map(|s| c.lock(s).order.len()).sum();
        assert!(
            elements <= 2 * 64 + 65 * SHARDS,
            "the order holds {elements} elements for 64 live"
        );
        assert_eq!(c.len(), 64);
    }

    #[test]
    fn excepting_the_earliest_looks_past_it_and_keeps_it() {
        let c = SessionCache::new();
        c.add(key(1), Expiry(1), sess(1), 0);
        c.add(key(2), Expiry(5), sess(2), 0);
        // Limit 2 with a third session that expires earliest of all: the
        // newcomer is never its own victim, so 1 goes and 3 stays.
        assert_eq!(add_new(&c, 3, 0, 2), vec![1]);
        assert!(c.contains(&key(3)));
        assert_eq!(ids(&c.flush(FlushScope::All, true)), vec![3, 2]);
    }

    #[test]
    fn an_earliest_newcomer_still_evicts_when_its_shard_holds_others() {
        let c = SessionCache::new();
        for n in 0..200 {
            c.add(key(n), Expiry(1000 + n as i64), sess(n), 200);
        }
        // Each newcomer expires before everything cached, so it is the
        // lowest bound of its shard: the eviction must look past it.
        for n in 200..400u32 {
            match c.add(key(n), Expiry(1000 - n as i64), sess(n), 200) {
                // The earliest other: the previous newcomer (the first
                // time, the earliest of the rest).
                Added::New { evicted } => {
                    assert_eq!(evicted_ids(evicted), vec![if n == 200 { 0 } else { n - 1 }])
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((c.len(), c.stored()), (200, 200));
    }

    #[test]
    fn limits_above_the_batching_slack_are_exact() {
        let c = SessionCache::new();
        let limit = 3 * SLACK as usize;
        let mut evicted = Vec::new();
        for round in 0..2 {
            for n in 0..(limit as u32 + 700) {
                if let Added::New { evicted: ev } = c.add(key(n), Expiry(5), sess(n), limit) {
                    evicted.extend(ev.into_iter());
                }
                assert!(c.len() <= limit);
            }
            assert_eq!((c.len(), c.stored()), (limit, limit), "round {round}");
            assert_eq!(ids(&evicted), (0..700).collect::<Vec<_>>());
            evicted.clear();
            // Emptied far below the limit: counting goes back to batches.
            assert_eq!(c.flush(FlushScope::All, false).len(), limit);
            assert!(!c.counters.exact.load(Ordering::Relaxed));
        }
    }

    #[test]
    fn a_rekeyed_session_matches_neither_key_but_still_leaves() {
        let c = SessionCache::new();
        let s = sess(1);
        c.add(key(1), Expiry(5), s.clone(), 0);
        c.add(key(2), Expiry(9), sess(2), 0);
        s.1.store(77, Ordering::Relaxed);
        assert!(!c.contains(&key(1)) && !c.contains(&key(77)));
        assert!(c.remove(&key(1), |_| false).is_none());
        assert_eq!(c.len(), 2);
        assert_eq!(ids(&c.flush(FlushScope::ExpiredAt(6), true)), vec![1]);
    }

    #[test]
    fn resorting_to_an_earlier_expiry_moves_the_entry_forward() {
        let c = SessionCache::new();
        let a = sess(1);
        c.add(key(1), Expiry(50), a.clone(), 0);
        c.add(key(2), Expiry(20), sess(2), 0);
        c.add(key(1), Expiry(10), a, 0);
        assert_eq!(ids(&c.flush(FlushScope::All, true)), vec![1, 2]);
    }

    #[test]
    fn eviction_sees_entries_that_became_a_shards_earliest() {
        // Bounds go stale-low on removes and flushes, and entries that
        // become a shard's earliest (new, re-sorted, re-timed) must reach
        // eviction however the frontier looked before: each case below is
        // the one entry eviction must pick.
        let c = SessionCache::new();
        let limit = 64;
        for n in 0..limit as u32 {
            c.add(key(n), Expiry(1000 + n as i64), sess(n), limit);
        }
        // Stale-low bounds: remove the 8 earliest, then evict once.
        for n in 0..8 {
            assert!(c.remove(&key(n), |_| false).is_some());
        }
        for n in 100..108 {
            c.add(key(n), Expiry(5000), sess(n), limit);
        }
        assert_eq!(add_new(&c, 200, 5000, limit), vec![8]);
        // A duplicate add re-sorted to an earlier expiry.
        let forty = c.get(&key(40)).unwrap();
        c.add(key(40), Expiry(10), forty, limit);
        assert_eq!(add_new(&c, 201, 5000, limit), vec![40]);
        // A session re-timed behind the cache's back.
        c.reexpire_one(&key(50), |s| *s.0 == 50, Expiry(20));
        assert_eq!(add_new(&c, 202, 5000, limit), vec![50]);
        // After a flush, into emptied shards.
        c.flush(FlushScope::All, false);
        for n in 300..300 + limit as u32 {
            c.add(key(n), Expiry(9000 - n as i64), sess(n), limit);
        }
        assert_eq!(add_new(&c, 999, 9999, limit), vec![300 + limit as u32 - 1]);
        assert_eq!(c.len(), limit);
    }

    /// An offer that counts the handles made from it.
    struct CountingOffer<'a>(Sess, &'a std::cell::Cell<u32>);

    impl Offer<Sess> for CountingOffer<'_> {
        fn is(&self, cached: &Sess) -> bool {
            self.0 == *cached
        }

        fn into_handle(self) -> Sess {
            self.1.set(self.1.get() + 1);
            self.0
        }
    }

    #[test]
    fn a_handle_is_made_only_when_the_cache_keeps_the_session() {
        let c = SessionCache::new();
        let made = std::cell::Cell::new(0);
        let a = sess(1);
        assert!(matches!(
            c.add(key(1), Expiry(10), CountingOffer(a.clone(), &made), 0),
            Added::New { .. }
        ));
        assert_eq!(made.get(), 1);
        // The very object again: re-sorted, no handle made.
        assert!(matches!(
            c.add(key(1), Expiry(10), CountingOffer(a, &made), 0),
            Added::Duplicate(_)
        ));
        assert_eq!(made.get(), 1);
        // Another object under the key: it replaces the cached one.
        assert!(matches!(
            c.add(
                key(1),
                Expiry(10),
                CountingOffer(sess_keyed(2, 1), &made),
                0
            ),
            Added::Replaced { .. }
        ));
        assert_eq!(made.get(), 2);
        assert_eq!(*c.get(&key(1)).unwrap().0, 2);
    }

    #[test]
    fn adds_ordered_across_threads_leave_in_that_order() {
        // Equal expiries, each add made after the previous one finished in
        // another thread: flush and eviction follow that order, as with
        // libssl's single list, although no counter is shared.
        let fill = || {
            let c = Arc::new(SessionCache::new());
            for n in 0..40u32 {
                let other = Arc::clone(&c);
                std::thread::spawn(move || drop(other.add(key(n), Expiry(9), sess(n), 0)))
                    .join()
                    .unwrap();
                c.add(key(1000 + n), Expiry(9), sess(1000 + n), 0);
            }
            c
        };
        let order: Vec<u32> = (0..40).flat_map(|n| [n, 1000 + n]).collect();
        assert_eq!(ids(&fill().flush(FlushScope::All, true)), order);
        let c = fill();
        for (i, n) in (5000..5003).enumerate() {
            assert_eq!(add_new(&c, n, 9, 80), vec![order[i]]);
        }
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
                            assert!(c.remove(&key(n), |_| false).is_some());
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
        let evicted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
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

    /// A small xorshift generator for the randomised tests.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn random_operations_match_a_model_of_libssls_list() {
        // The model: key -> (session, expiry, order of its last add or
        // re-sort). Evictions take the earliest (expiry, order) other than
        // the key just added; flushes return (expiry, order) order.
        for seed in 1..400u64 {
            let c = SessionCache::new();
            let mut model: std::collections::BTreeMap<u32, (Sess, i64, u64)> = Default::default();
            let mut order = 0u64;
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut limit = 1 + rng.below(30) as usize;
            let mut next_obj = 1000u32;
            for _ in 0..3000 {
                let op = rng.below(100);
                let k = rng.below(60) as u32;
                let e = rng.below(50) as i64;
                if op < 2 {
                    limit = 1 + rng.below(30) as usize;
                }
                if op < 45 {
                    let obj = sess_keyed(next_obj, k);
                    next_obj += 1;
                    let res = c.add(key(k), Expiry(e), obj.clone(), limit);
                    let was = model.insert(k, (obj, e, order));
                    order += 1;
                    let mut expect = vec![];
                    while model.len() > limit {
                        let (&victim, _) = model
                            .iter()
                            .filter(|(other, _)| **other != k)
                            .min_by_key(|(_, v)| (v.1, v.2))
                            .unwrap();
                        expect.push(*model.remove(&victim).unwrap().0.0);
                    }
                    match res {
                        Added::New { evicted } => {
                            assert!(was.is_none());
                            assert_eq!(evicted_ids(evicted), expect, "seed {seed}");
                        }
                        Added::Replaced { old, evicted } => {
                            assert_eq!(old, was.unwrap().0);
                            assert_eq!(evicted_ids(evicted), expect, "seed {seed}");
                        }
                        other => panic!("seed {seed}: {other:?}"),
                    }
                } else if op < 60 {
                    if let Some(v) = model.get_mut(&k) {
                        let res = c.add(key(k), Expiry(e), v.0.clone(), limit);
                        assert!(matches!(res, Added::Duplicate(_)), "seed {seed}");
                        (v.1, v.2) = (e, order);
                        order += 1;
                    }
                } else if op < 75 {
                    let got = c.remove(&key(k), |_| false).map(|s| *s.0);
                    assert_eq!(got, model.remove(&k).map(|v| *v.0.0), "seed {seed}");
                } else if op < 88 {
                    if let Some(v) = model.get_mut(&k) {
                        let obj = v.0.clone();
                        c.reexpire_one(&key(k), |s| *s == obj, Expiry(e));
                        (v.1, v.2) = (e, order);
                        order += 1;
                    }
                } else {
                    let t = if op < 97 {
                        rng.below(40) as i64
                    } else {
                        i64::MAX
                    };
                    let scope = if op < 97 {
                        FlushScope::ExpiredAt(t)
                    } else {
                        FlushScope::All
                    };
                    let got = ids(&c.flush(scope, true));
                    let mut expect: Vec<(i64, u64, u32)> = model
                        .values()
                        .filter(|v| v.1 < t)
                        .map(|v| (v.1, v.2, *v.0.0))
                        .collect();
                    expect.sort();
                    model.retain(|_, v| v.1 >= t);
                    let expect: Vec<u32> = expect.iter().map(|x| x.2).collect();
                    assert_eq!(got, expect, "seed {seed}");
                }
                assert_eq!(c.len(), model.len(), "seed {seed}");
                assert_eq!(c.stored(), model.len(), "seed {seed}");
            }
        }
    }

    #[test]
    fn concurrent_mixed_operations_account_for_every_handle() {
        // Four threads add, re-add, remove, re-time and flush at limits
        // small and large: every handle made comes back exactly once or is
        // still cached, evictions are counted, and the limit holds.
        for round in 0..20u64 {
            let c = Arc::new(SessionCache::new());
            let (limit, keys) = if round % 2 == 0 {
                (40, 200)
            } else {
                (700, 2000)
            };
            let made = Arc::new(AtomicUsize::new(0));
            let returned = Arc::new(AtomicUsize::new(0));
            let evicted = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..4u32)
                .map(|t| {
                    let c = Arc::clone(&c);
                    let (made, returned, evicted) = (
                        Arc::clone(&made),
                        Arc::clone(&returned),
                        Arc::clone(&evicted),
                    );
                    std::thread::spawn(move || {
                        let mut rng = Rng((round + 1) * 7919 + t as u64 * 104_729);
                        let count = |res: Added<Sess>, new: bool| match res {
                            Added::New { evicted: gone } => {
                                made.fetch_add(new as usize, Ordering::Relaxed);
                                evicted.fetch_add(gone.len(), Ordering::Relaxed);
                                returned.fetch_add(gone.len(), Ordering::Relaxed);
                            }
                            Added::Replaced { evicted: gone, .. } => {
                                made.fetch_add(new as usize, Ordering::Relaxed);
                                evicted.fetch_add(gone.len(), Ordering::Relaxed);
                                returned.fetch_add(gone.len() + 1, Ordering::Relaxed);
                            }
                            Added::Duplicate(_) => assert!(!new),
                        };
                        for _ in 0..20_000 {
                            let k = rng.below(keys) as u32;
                            let e = rng.below(100) as i64;
                            match rng.below(10) {
                                0..=4 => {
                                    made.fetch_add(1, Ordering::Relaxed);
                                    let s = sess_keyed(k + 1000 * (t + 1), k);
                                    count(c.add(key(k), Expiry(e), s, limit), false);
                                }
                                5 => {
                                    if let Some(s) = c.get(&key(k)) {
                                        // Gone meanwhile: cached anew, one more handle.
                                        let res = c.add(key(k), Expiry(e), s, limit);
                                        let new = !matches!(res, Added::Duplicate(_));
                                        count(res, new);
                                    }
                                }
                                6 | 7 => {
                                    if c.remove(&key(k), |_| false).is_some() {
                                        returned.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                8 => c.reexpire_one(&key(k), |_| true, Expiry(e)),
                                _ => {
                                    // Now and then a flush of expired
                                    // entries, rarely one of everything (a
                                    // detached shard drained outside its
                                    // lock), in rank order or not.
                                    let scope = match rng.below(400) {
                                        0 => Some(FlushScope::All),
                                        1..8 => Some(FlushScope::ExpiredAt(e / 4)),
                                        _ => None,
                                    };
                                    if let Some(scope) = scope {
                                        let gone = c.flush(scope, rng.below(2) == 0);
                                        returned.fetch_add(gone.len(), Ordering::Relaxed);
                                    }
                                }
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(c.len(), c.stored());
            assert!(
                c.len() <= limit,
                "round {round}: {} cached, limit {limit}",
                c.len()
            );
            assert_eq!(c.cache_full() as usize, evicted.load(Ordering::Relaxed));
            assert_eq!(
                made.load(Ordering::Relaxed),
                returned.load(Ordering::Relaxed) + c.len(),
                "round {round}"
            );
            assert_eq!(c.counters.len.load(Ordering::Relaxed) as usize, c.len());
        }
    }

    #[test]
    fn the_order_is_compacted_before_a_seq_can_come_round_again() {
        // A stale element deep in the order outlives pushes until compaction;
        // drawing seqs past each 2^31 boundary schedules one.
        let mut shard: Shard<Sess> = Shard::new();
        shard.next_seq = (1 << 31) - 2;
        shard.seq();
        assert!(!shard.compact_due);
        assert_eq!(shard.seq(), 1 << 31);
        assert!(shard.compact_due);
        shard.compact_if_stale();
        assert!(!shard.compact_due);
        shard.next_seq = u32::MAX;
        assert_eq!(shard.seq(), 0);
        assert!(shard.compact_due);
    }

    #[test]
    fn tournament_finds_the_lowest_two_bounds() {
        // Against a scan, after every change: few distinct values, so that
        // ties (lowest == second) and empty shards (u128::MAX) come up often.
        let mut rng = Rng(0x5eed_0f_b0da);
        let mut b = Bounds::new();
        let mut plain = [u128::MAX; SHARDS];
        assert_eq!(b.lowest_two(), (0, u128::MAX, u128::MAX));
        for _ in 0..20_000 {
            let shard = rng.below(SHARDS as u64) as usize;
            let rank = match rng.below(6) {
                0 => u128::MAX,
                v => (v as u128) << 64 | rng.below(4) as u128,
            };
            b.set(shard, rank);
            plain[shard] = rank;
            let (at, best, second) = b.lowest_two();
            let mut sorted = plain;
            sorted.sort();
            assert_eq!((best, second), (sorted[0], sorted[1]), "bounds {plain:?}");
            assert_eq!(plain[at], best);
            assert_eq!(
                at,
                plain.iter().position(|&r| r == best).unwrap(),
                "ties: lowest shard"
            );
        }
    }

    #[test]
    fn successive_flushes_start_at_shards_far_apart() {
        // One entry per shard; an unordered flush returns them shard by
        // shard from where it started.
        let c = SessionCache::new();
        let first_shard = |c: &SessionCache<Sess>| {
            let mut n = 0;
            while (0..SHARDS).any(|s| c.shards[s].live.load(Ordering::Relaxed) == 0) {
                c.add(key(n), Expiry(1), sess(n), 0);
                n += 1;
            }
            let out = c.flush(FlushScope::All, false);
            c.locate(&key(*out[0].0)).1
        };
        assert_eq!(first_shard(&c), 0);
        assert_eq!(first_shard(&c), SHARDS / 2);
        assert_eq!(first_shard(&c), SHARDS / 4);
        assert_eq!(first_shard(&c), 3 * SHARDS / 4);
    }

    #[test]
    fn order_takes_elements_earliest_first_wherever_they_went() {
        // Mostly ascending ranks (the run) with some earlier ones (the
        // heap), interleaved with takes and put-backs: against a sorted model.
        let mut rng = Rng(0x0bde_12ab);
        for _ in 0..200 {
            let mut order = Order::new();
            let mut model: Vec<Rank> = Vec::new();
            let mut next = 1_000u64;
            for _ in 0..300 {
                match rng.below(10) {
                    0..=5 => {
                        next += 1;
                        let stamp = if rng.below(4) == 0 {
                            next - rng.below(900)
                        } else {
                            next
                        };
                        let rank = (Expiry(rng.below(2) as i64), stamp);
                        if model.contains(&rank) {
                            continue; // ranks are unique within a shard
                        }
                        let e = OrderEntry {
                            expiry: rank.0,
                            stamp: rank.1,
                            slot: 0,
                            seq: 0,
                        };
                        let first = order.push(e);
                        assert_eq!(first, model.iter().all(|&r| rank <= r), "push {rank:?}");
                        model.push(rank);
                    }
                    6..=8 => {
                        model.sort();
                        let want = (!model.is_empty()).then(|| model.remove(0));
                        assert_eq!(order.first().map(OrderEntry::rank), want);
                        assert_eq!(order.pop_first().map(|e| e.rank()), want);
                    }
                    _ => {
                        // earliest_except's set-aside: take the first, put it back.
                        if let Some(e) = order.pop_first() {
                            order.push_first(e);
                        }
                    }
                }
                assert_eq!(order.len(), model.len());
            }
            model.sort();
            let rest: Vec<Rank> =
                std::iter::from_fn(|| order.pop_first().map(|e| e.rank())).collect();
            assert_eq!(rest, model);
        }
    }

    #[test]
    fn flush_all_keeps_what_the_batched_count_had_not_folded() {
        // Batched counting: each shard folds its adds every BATCH; a flush
        // of everything must fold the rest too, or the cache-wide count
        // drifts, and with it the size limit.
        let c = SessionCache::new();
        let mut n = 0;
        for _ in 0..20 {
            for _ in 0..200 {
                add_new(&c, n, 1, 100_000);
                n += 1;
            }
            assert_eq!(c.flush(FlushScope::All, false).len(), 200);
        }
        assert_eq!(
            c.counters.len.load(Ordering::Relaxed),
            0,
            "count after flushes"
        );
        for _ in 0..2000 {
            add_new(&c, n, 1, 1000);
            n += 1;
        }
        assert_eq!(c.len(), 1000);
    }

    #[test]
    fn a_new_earliest_in_the_excepted_shard_is_seen_by_the_next_pass() {
        // evict_earliest, pass by pass: S holds O (100) and the adder's own
        // X (10), T holds V (50). Pass 1 ranks S by O; then another thread
        // adds B (5) to S, which becomes S's earliest and flags it. Pass 2
        // must not show S later than B.
        let c: SessionCache<Sess> = SessionCache::new();
        let mut by: Vec<Vec<u32>> = vec![Vec::new(); SHARDS];
        for n in 0..4000 {
            by[c.locate(&key(n)).1].push(n);
        }
        let (s, t) = (0, 1);
        add_new(&c, by[s][0], 100, 0);
        add_new(&c, by[t][0], 50, 0);
        add_new(&c, by[s][1], 10, 0);
        let spare = {
            let g = c.lock(s);
            let (hash, _) = c.locate(&key(by[s][1]));
            let i = g.find(hash, &key(by[s][1]), |_| false).unwrap();
            (i, g.slot(i).seq)
        };
        let mut frontier = c.frontier.earliest.lock();
        let mut choice = Choice {
            bounds: &mut frontier,
            held_back: None,
        };
        c.fold_flagged(&mut choice);
        assert_eq!(choice.bounds.lowest_two().0, s, "pass 1 looks at S");
        let except = Some((s, spare.0, spare.1));
        assert!(
            matches!(c.eviction_pass(&mut choice, except), Pass::Again),
            "pass 1 evicts nothing"
        );
        add_new(&c, by[s][2], 5, 0);
        c.fold_flagged(&mut choice);
        let b = ordinal((Expiry(5), 0));
        assert!(
            choice.bounds.rank[s] <= ordinal((Expiry(5), u64::MAX)) && choice.bounds.rank[s] >= b
        );
        assert_eq!(choice.bounds.lowest_two().0, s, "pass 2 looks at S again");
        let victim = match c.eviction_pass(&mut choice, except) {
            Pass::Victim(g, shard, slot) => (shard, g.slot(slot).session.as_ref().map(|x| *x.0)),
            _ => panic!("pass 2 evicts"),
        };
        assert_eq!(victim, (s, Some(by[s][2])), "pass 2 evicts B");
    }
}
