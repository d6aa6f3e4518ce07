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
//! on different sessions never wait for each other. A shard keeps its
//! entries in a chunked slab (no large reallocations, little slack) and a
//! hash index of slab slots. Entries are ordered by `(expiry, stamp)` in an
//! [`Order`] (a sorted run, where nearly every entry goes, and a binary
//! min-heap for the rest), so that sessions with equal expiry leave in
//! insertion order, as libssl's expiry list does.
//!
//! Far from the size limit, each shard keeps its own order, its stamps are
//! monotonic clock readings, and its count is batched: nothing that every
//! add or remove writes is shared between shards (see
//! [`CountedEvictions`]). Near
//! the limit, where evictions happen, counting is exact, and the entries'
//! elements move to one cache-wide order under the eviction lock, with
//! stamps from a counter (see [`Evictions`]): each eviction takes its first.
//!
//! Invariants (per shard, under its lock):
//! - every live slot is in the index once and has exactly one live element
//!   (same slot and seq), whose rank is at most the slot's rank: in the
//!   shard's order, or while counting is exact in the cache-wide one, or on
//!   its way there (made under the shard lock, placed once that is let go;
//!   or taken out by an eviction that has yet to check it);
//! - a free slot holds no session and is on the free list.
//!
//! Lock scope: one shard lock at a time, except the switches between
//! counting modes, which take all of them in order; the eviction lock, when
//! needed, is taken first. Nothing runs user code under a
//! lock except `S::clone` (of values that stay in the cache),
//! `CurrentKey::current_key`, `Offer::is` (for a handle offered as is, its
//! `PartialEq`) and `Offer::into_handle`; never `S::drop`, whose last
//! reference's release may run application callbacks that call back into
//! the cache (under a lock they would wait for it forever). Callers get
//! every removed handle back and drop it after the lock is released.

use crate::sync::{self, FlagFirstSpinLock, SharedLock, SpinLock, SpinLockGuard};
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};

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
// Flushes start at bit-reversed turns; stamps carry the shard's number.
const _: () = assert!(SHARDS.is_power_of_two() && SHARDS >= 2 && SHARDS <= 256);
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

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

/// Stamps order the entries of equal expiry across shards. While counting
/// is batched, without a counter that every thread writes: a reading of
/// `clock`, no lower than `floor` (one past the last stamp exact counting
/// gave out, see `Evictions::next_stamp`), made strictly increasing per thread
/// (and per shard, see [`Shard::stamp`]), so that of two adds one of which
/// happens before the other, the first has the lower stamp, as with
/// libssl's single list.
fn clock_stamp(clock: Clock, floor: u64) -> u64 {
    use std::cell::Cell;
    thread_local! {
        static LAST: Cell<u64> = const { Cell::new(0) };
    }
    let now = clock().max(floor);
    LAST.try_with(|last| {
        let stamp = now.max(last.get() + 1);
        last.set(stamp);
        stamp
    })
    .unwrap_or(now)
}

/// A stamp: `n` with the number of the shard it was given out for in its
/// low bits, so that stamps are unique cache-wide and an element names its
/// shard without growing. `n` stays below 2^(64 - SHARD_BITS).
fn shard_stamp(n: u64, shard: u8) -> u64 {
    n << SHARD_BITS | shard as u64
}

/// The stamp of an entry whose element was made while counting was exact,
/// until it is placed (see [`SessionCache::place`]): later than any drawn
/// stamp, with the shard's number in its low bits like them.
fn provisional_stamp(shard: u8) -> u64 {
    shard_stamp(u64::MAX >> SHARD_BITS, shard)
}

fn is_provisional(stamp: u64) -> bool {
    stamp >> SHARD_BITS == u64::MAX >> SHARD_BITS
}

/// An element of an [`Order`] (a shard's, or the cache-wide one of
/// [`Evictions`]): a rank, and the slot and seq of the entry it stands for
/// (its stamp names the shard, see [`Shard::stamp`]). Removing an entry does not touch the order: its element just
/// goes stale (its slot is free, or holds another seq) and is dropped when
/// it comes first or when the order is compacted. While counting is
/// batched, re-sorting an entry to a later rank (a duplicate add, the usual
/// case) only updates its slot: the element's rank is then a lower bound,
/// and the element is moved to the slot's rank when it comes first.
/// Re-sorting to an earlier rank, and any re-sort while counting is exact
/// (see [`Slot::stamp`]), pushes a new element (new seq), and the old one
/// goes stale. So remove and re-sort are O(1) or a push, and
/// eviction and flush take the earliest in O(1) (from the run) or O(log n)
/// (from the heap), amortised.
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

    fn shard(&self) -> usize {
        self.stamp as usize & (SHARDS - 1)
    }

    /// The same element at `rank`.
    fn at(self, (expiry, stamp): Rank) -> OrderEntry {
        OrderEntry {
            expiry,
            stamp,
            ..self
        }
    }
}

/// Brings `order`'s first element to a live one at its entry's rank and
/// returns it: drops stale elements and moves outdated ones to their
/// entry's rank on the way. `look` says what an element stands for now (see
/// [`current_in`]), with whatever it holds for it (a shard's lock), which
/// is returned with the first element and dropped for the others.
fn settle_front<H>(
    order: &mut Order,
    mut look: impl FnMut(&OrderEntry) -> (Option<OrderEntry>, H),
) -> Option<(OrderEntry, H)> {
    loop {
        let first = *order.first()?;
        let (now, held) = look(&first);
        match now {
            Some(now) if now.rank() == first.rank() => return Some((first, held)),
            Some(now) => {
                order.pop_first();
                order.push(now);
            }
            None => {
                order.pop_first();
            }
        }
    }
}

/// [`Order::back_expiry`] while the run is empty (never read then).
const NO_BACK: Expiry = Expiry(i64::MIN);

/// Every entry's element, earliest rank first: a sorted run for elements
/// that arrive no earlier than the run's last (nearly all of them: stamps
/// grow, and a context's sessions mostly share one timeout), and a binary
/// heap for the others. The earliest element is the earlier of the run's
/// front and the heap's root, so an add in rank order and the eviction of
/// the earliest entry cost O(1); only elements out of order pay O(log n).
/// The expiry of the run's last element and the run's header come first
/// (`repr(C)`, see [`CountedEvictions`]).
#[repr(C)]
struct Order {
    /// The expiry of the run's last element, while the run has one: so that
    /// [`Self::push_fresh`] need not read that element, whose line, in the
    /// cache-wide order, the eviction lock's previous holder (often another
    /// thread) just wrote.
    back_expiry: Expiry,
    run: VecDeque<OrderEntry>,
    heap: Vec<OrderEntry>,
}

impl Order {
    const fn new() -> Self {
        Order {
            back_expiry: NO_BACK,
            run: VecDeque::new(),
            heap: Vec::new(),
        }
    }

    fn push_back(&mut self, e: OrderEntry) {
        self.back_expiry = e.expiry;
        self.run.push_back(e);
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

    fn push(&mut self, e: OrderEntry) {
        match self.run.back() {
            Some(last) if e.rank() < last.rank() => self.push_heap(e),
            _ => self.push_back(e),
        }
    }

    fn push_heap(&mut self, e: OrderEntry) {
        self.heap.push(e);
        let pushed = self.heap.len() - 1;
        sift_up(&mut self.heap, pushed);
    }

    /// [`Self::push`] for an element whose stamp is later than every stamp
    /// in the order (one just drawn; the caller's promise, not checked): it
    /// belongs after the run's last element exactly when its expiry is no
    /// earlier, and in the heap otherwise, which takes only that element's
    /// expiry, never the element.
    fn push_fresh(&mut self, e: OrderEntry) {
        if self.run.is_empty() || e.expiry >= self.back_expiry {
            self.push_back(e);
        } else {
            self.push_heap(e);
        }
    }

    /// Puts back an element no later than any other (one `pop_first` took).
    fn push_first(&mut self, e: OrderEntry) {
        if self.run.is_empty() {
            self.back_expiry = e.expiry;
        }
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
            back_expiry: sorted.last().map_or(NO_BACK, |e| e.expiry),
            run: VecDeque::from(sorted),
            heap: Vec::new(),
        }
    }
}

/// Moves the element at `pos` up to its place.
fn sift_up(heap: &mut [OrderEntry], mut pos: usize) {
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
    /// The entry's rank; its element's rank is this or earlier. Except that
    /// an entry added or re-sorted while counting is exact gets a provisional
    /// stamp (see [`provisional_stamp`]); its element draws the real one when
    /// placed, under the eviction lock, so that adds write no cache-wide line
    /// under their shard locks: the element then holds the rank, and every
    /// re-sort while exact makes a new one. A switch back to batches (or a
    /// flush that reports in order) copies the drawn stamps into the slots;
    /// an element still on its way then is stamped from the clock when it
    /// is placed. Entries carried into exact counting keep their stamps.
    expiry: Expiry,
    stamp: u64,
    /// The key's table hash, to find the slot's index entry on removal; in
    /// a free slot, the next free slot.
    hash: u32,
    /// The seq of this entry's one live element. A u32 per shard: seqs are
    /// drawn only by pushes, and the order that holds stale elements is
    /// compacted (dropping them) at least every 2^31 draws (the shard's
    /// order, see `compact_due`; the cache-wide one, see
    /// `Evictions::is_compaction_due`). A stale element can then meet its
    /// seq again only if its entry lived nearly 2^32 of the shard's draws
    /// and the seq came round to the same slot before the next compaction:
    /// it then stands for that slot's new entry too: a second element that
    /// the rank checks treat as an outdated one, or, if that entry's stamp
    /// is provisional (see [`Self::stamp`]), as a live one at its own rank,
    /// which can then be evicted or flushed at that rank.
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
/// is folded in (see [`CountedEvictions`]).
const BATCH: isize = 32;
/// The most the cache-wide count can be off by, all shards together.
const SLACK: isize = BATCH * SHARDS as isize;

/// Which order a shard's new elements join: its own (while counting is
/// batched), or the cache-wide one (while it is exact).
#[derive(Clone, Copy)]
enum Target {
    Shard,
    CacheWide,
}

/// One shard: a chunked slab of slots (filled in insertion order, no large
/// reallocations), a hash index of slot numbers (4 bytes each, so that it
/// stays in cache), and the order. All methods run under the shard lock,
/// or on a shard [`Self::detach`] returned (see [`Self::drain_all`]).
///
/// Laid out in this order (`repr(C)`), which keeps `last_stamp`, written by
/// every add and duplicate add while counting is batched, off the line of
/// the lock's flag (which comes after the shard) and on the index header's,
/// as the compiler had laid it out up to 017cd92 (a test pins both; other
/// fields moved: `live` is now on the flag's line). A first version of
/// a0f1d21, whose `Order` grew by 8 bytes, left the layout to the compiler,
/// which put `last_stamp` on the flag's line: single-thread duplicate adds
/// then ran 0.875x and 0.903x as fast (paired hand runs of `cachebench ops
/// 1`, not kept; why is not known).
#[repr(C)]
struct Shard<S> {
    chunks: Vec<Vec<Slot<S>>>,
    order: Order,
    index: HashTable<u32>,
    /// The last stamp drawn, before the shard's number was added.
    last_stamp: u64,
    live: usize,
    /// Adds minus removes not yet folded into `CountedEvictions::len`.
    pending: isize,
    /// First free slot (`NO_SLOT`: none); a free slot's `hash` links to the
    /// next one, so freeing never allocates.
    free_head: u32,
    next_seq: u32,
    /// Set every 2^31 seqs: the next push into the shard's order compacts
    /// it, so that no stale element lives to see its seq drawn again.
    compact_due: bool,
    /// Where the shard sits in the cache.
    number: u8,
}

fn slot_in<S>(chunks: &[Vec<Slot<S>>], i: u32) -> &Slot<S> {
    &chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
}

/// `e` at its entry's rank, if it stands for a live entry of the shard whose
/// slab `chunks` is (else it is stale). Elements of the cache-wide order can
/// outlive their shard's slab (see [`Shard::detach`]): slots are looked up
/// with bounds checks. A slot whose stamp is provisional has its rank in
/// its one live element (see [`Slot::stamp`]).
fn current_in<S>(chunks: &[Vec<Slot<S>>], e: &OrderEntry) -> Option<OrderEntry> {
    let slot = chunks
        .get((e.slot >> CHUNK_BITS) as usize)?
        .get(e.slot as usize & (CHUNK - 1))?;
    if slot.session.is_none() || slot.seq != e.seq {
        return None;
    }
    Some(if is_provisional(slot.stamp) {
        *e
    } else {
        e.at((slot.expiry, slot.stamp))
    })
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
    const fn new(number: u8) -> Self {
        Shard {
            chunks: Vec::new(),
            order: Order::new(),
            index: HashTable::new(),
            last_stamp: 0,
            live: 0,
            pending: 0,
            free_head: NO_SLOT,
            next_seq: 0,
            compact_due: false,
            number,
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

    /// A stamp at or after `now` (below 2^(64 - SHARD_BITS): 36 years of a
    /// clock in nanoseconds with 16 shards), later than any this shard gave
    /// out (see [`shard_stamp`]).
    fn stamp(&mut self, now: u64) -> u64 {
        self.last_stamp = now.max(self.last_stamp + 1);
        shard_stamp(self.last_stamp, self.number)
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

    /// `e` at its entry's rank, if it stands for a live entry of this shard
    /// (see [`current_in`]).
    fn current(&self, e: &OrderEntry) -> Option<OrderEntry> {
        current_in(&self.chunks, e)
    }

    /// The rank of slot `i`'s entry.
    fn rank_of(&self, i: u32) -> Rank {
        let slot = self.slot(i);
        (slot.expiry, slot.stamp)
    }

    /// Gives the entry in slot `i` a new rank; returns the new element to
    /// place in the cache-wide order, if `to` says it goes there (always: its
    /// stamp is drawn there).
    fn rerank(&mut self, i: u32, rank: Rank, to: Target) -> Option<OrderEntry> {
        let old = self.rank_of(i);
        let slot = self.slot_mut(i);
        (slot.expiry, slot.stamp) = rank;
        if matches!(to, Target::Shard) && rank >= old {
            // The element's rank stays a lower bound.
            return None;
        }
        self.push(rank, i, to)
    }

    /// Makes slot `i`'s entry a new element (new seq) and pushes it into the
    /// shard's order, or returns it for the cache-wide one. Adds and re-sorts
    /// are where the shard's order grows, so they keep it within twice the
    /// live count.
    fn push(&mut self, rank: Rank, i: u32, to: Target) -> Option<OrderEntry> {
        let seq = self.seq();
        self.slot_mut(i).seq = seq;
        let e = OrderEntry {
            expiry: rank.0,
            stamp: rank.1,
            slot: i,
            seq,
        };
        match to {
            Target::CacheWide => Some(e),
            Target::Shard => {
                self.order.push(e);
                self.compact_if_stale();
                None
            }
        }
    }

    /// Keeps the elements of `elements` that stand for live entries of this
    /// shard, each moved to its entry's rank.
    fn keep_live(&self, elements: &mut Vec<OrderEntry>) {
        elements.retain_mut(|e| self.current(e).map(|now| *e = now).is_some());
    }

    /// [`Self::keep_live`], and gives each provisional slot the stamp its
    /// live element drew (see [`Slot::stamp`]).
    fn adopt_live(&mut self, elements: &mut Vec<OrderEntry>) {
        self.keep_live(elements);
        for e in elements.iter() {
            let slot = self.slot_mut(e.slot);
            if is_provisional(slot.stamp) {
                slot.stamp = e.stamp;
            }
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
        self.keep_live(&mut live);
        live.sort_unstable_by_key(OrderEntry::rank);
        live
    }

    /// The first element, once live and at its entry's rank (see
    /// [`settle_front`]).
    fn earliest(&mut self) -> Option<OrderEntry> {
        let Shard { order, chunks, .. } = self;
        settle_front(order, |e| (current_in(chunks, e), ())).map(|(first, ())| first)
    }

    /// Empties the shard and returns what it held, to be drained (see
    /// [`Self::drain_all`]) after the lock is let go. Seqs and stamps
    /// outlive the entries: they keep growing in the emptied shard. The
    /// count not yet folded (`pending`) goes with what it held, for the
    /// caller to fold.
    fn detach(&mut self) -> Shard<S> {
        let mut emptied = Shard::new(self.number);
        (emptied.next_seq, emptied.last_stamp) = (self.next_seq, self.last_stamp);
        std::mem::replace(self, emptied)
    }

    /// Takes every entry of a detached shard (in rank order when
    /// `in_order`), at its slot's rank: one pass over the slab, and at most
    /// one sort, whichever order holds the shard's elements.
    fn drain_all(mut self, out: &mut Vec<(Rank, S)>, in_order: bool) {
        let start = out.len();
        for chunk in &mut self.chunks {
            out.extend(chunk.iter_mut().filter_map(|slot| {
                let rank = (slot.expiry, slot.stamp);
                Some((rank, slot.session.take()?))
            }));
        }
        if in_order {
            // Stamps are unique within a shard, but for provisional ones
            // (see `SessionCache::flush_all`), whose ties come out in no
            // particular order.
            out[start..].sort_unstable_by_key(|(rank, _)| *rank);
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
    /// Sessions evicted from this shard (`SSL_CTX_sess_cache_full` is the
    /// sum), stored under the lock.
    evicted: AtomicU64,
}

impl<S> ShardCell<S> {
    fn new(number: u8) -> Self {
        ShardCell {
            shard: SpinLock::new(Shard::new(number)),
            live: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
        }
    }
}

/// What the eviction lock guards: while counting is exact (`active`), the
/// cache-wide order of the entries' elements.
///
/// Evictions happen only while counting is exact (near the size limit), and
/// each takes the cache's earliest entry: with one order for the whole cache
/// that is its first element, where per-shard orders would need a choice
/// among the shards on every eviction. Far from the limit the shards keep
/// their own orders and adds write nothing shared. The switches between the
/// two move every element, with every lock held (see
/// `SessionCache::count_exactly`): inactive, this order is empty.
///
/// While active, a shard makes an entry's new element under its own lock and
/// the caller places it here once that lock is let go (lock order: this
/// lock, then one shard lock). So an element may arrive stale, or after
/// counting went back to batches (it then joins its shard's order). An
/// eviction takes the first element out under this lock and checks it
/// against its shard, under that shard's lock, after letting this one go:
/// the lock is held for two order operations per evicting add.
///
/// The stamp counter, the run's back expiry and the run's header, which an
/// evicting add writes, come first (`repr(C)`): they share a cache line with
/// the count and the lock's flag (see [`CountedEvictions`]).
#[repr(C)]
struct Evictions {
    /// The next stamp while counting is exact, drawn by each element placed
    /// here (see [`Slot::stamp`]) rather than read from the clock (a variant
    /// reading the clock here churned slower on one thread in hand runs, see
    /// the README). Each switch to exact counting starts it above every
    /// stamp given out.
    next_stamp: u64,
    order: Order,
    /// The order's length beyond which it is compacted.
    compact_at: usize,
    active: bool,
}

impl Evictions {
    fn new() -> Self {
        Evictions {
            next_stamp: 0,
            order: Order::new(),
            compact_at: 0,
            active: false,
        }
    }

    /// A stamp for an element of `shard` that joins the order now.
    fn draw_stamp(&mut self, shard: usize) -> u64 {
        let stamp = shard_stamp(self.next_stamp, shard as u8);
        self.next_stamp += 1;
        stamp
    }

    /// Makes `live` (earliest first) the order, returning the one it
    /// replaces; the next compaction is due once stale elements could be as
    /// many again.
    fn reset(&mut self, live: Vec<OrderEntry>) -> Order {
        self.compact_at = 2 * live.len() + 64;
        std::mem::replace(&mut self.order, Order::from_sorted(live))
    }

    /// Whether to compact after `pushed` joined the order: when stale
    /// elements could make half of it, and whenever a shard's seqs reach a
    /// multiple of 2^30 (while the order is active, a shard draws seqs only
    /// for elements placed here), so that a stale element is dropped within
    /// 2^31 of its shard's draws of going stale (see `Slot::seq`).
    fn is_compaction_due(&self, pushed: &OrderEntry) -> bool {
        self.order.len() > self.compact_at || pushed.seq.is_multiple_of(1 << 30)
    }
}

/// Elements sorted by shard, for one lock of each shard.
fn by_shard(elements: Vec<OrderEntry>) -> [Vec<OrderEntry>; SHARDS] {
    let mut out: [Vec<OrderEntry>; SHARDS] = std::array::from_fn(|_| Vec::new());
    for e in elements {
        out[e.shard()].push(e);
    }
    out
}

/// The sessions of one context.
pub struct SessionCache<S> {
    shards: [ShardCell<S>; SHARDS],
    /// The count and the eviction lock.
    evictions: CountedEvictions,
    /// Read on every call: kept off the lines that adds write.
    hasher: KeyHasher,
    mode: Mode,
    /// Switches between batched and exact counting take it exclusively;
    /// flushes of expired entries share it, so that no switch moves
    /// elements under them.
    switching: SharedLock<()>,
    /// Flushes taken so far: where the next one starts (see `flush`).
    flushes: AtomicUsize,
    /// Where stamps come from while counting is batched.
    clock: Clock,
}

/// The cache-wide count and the eviction lock.
///
/// Far from the size limit, the count is batched: each shard keeps its own
/// difference (`Shard::pending`, under its lock) and folds it into `len`
/// only when it reaches [`BATCH`], so threads on different shards write no
/// common line; `len` is then within [`SLACK`] of the truth, which is enough
/// to know that no eviction is due. Near the limit (and for every cache
/// with a limit below `SLACK`) counting is exact: every remove changes `len`
/// under its shard lock, every add once its element is in the cache-wide
/// order (see `enforce`), and evictions are claimed on it.
/// The exact count of entries is always the sum of the shards' `live`.
///
/// Near the limit, every add holds the eviction lock to place its element,
/// count itself and take its victim's element, and the other threads'
/// evictions wait for it: so what it writes there sits on one cache line
/// (`repr(C)`, a layout test checks it): the count, the lock's flag, the
/// stamp counter, the run's back expiry and its header; the heap's header
/// (read, and written only by elements out of rank order) is on the next
/// line (checked too), with what the holder only reads (`compact_at`,
/// `active`). A waiter that reads the flag meanwhile shares that line with
/// the holder, whose next write takes it back; on two threads that cost
/// less than a second line per hold did, in hand runs (see the README).
/// (The shard locks keep their flags after their shards: moving those too
/// coincided with single-thread duplicate adds failing in two of four
/// benchmark runs.) Besides these, the holder writes the run's back and
/// reads its front; it places a new element by the back's expiry kept on
/// the line, without reading the back element, whose line the previous
/// holder wrote (see [`Order::push_fresh`]), so the hold does not wait for
/// that line, though the release still shows only once the write of the
/// new back has it (reasoned; the measurement is a0f1d21's, in the
/// README). A remove while counting is exact writes the count without the
/// lock, which is rarer than adds near the limit. (The README gives the hand runs that moved the
/// count here from a line of its own, and the flag next to it.)
#[repr(C, align(64))]
struct CountedEvictions {
    /// Signed: a claimed eviction is counted before its victim leaves, so a
    /// concurrent flush can take the count briefly below zero.
    len: AtomicIsize,
    /// The eviction lock, its flag first: right after the count, and
    /// right before what it guards.
    lock: FlagFirstSpinLock<Evictions>,
}

impl CountedEvictions {
    fn lock(&self) -> SpinLockGuard<'_, Evictions> {
        self.lock.lock()
    }
}

/// How the cache counts: read on every call, written only by the switches
/// (and when the limit changes), so on a line of its own, apart from the
/// count that exact counting writes on every add.
#[repr(align(64))]
struct Mode {
    /// Written with every lock held (see `count_exactly`): read under any
    /// shard lock, it says which order that shard's new elements join.
    exact: AtomicBool,
    /// The size limit the last add passed (for flush's switch back).
    limit: AtomicUsize,
    /// Clock stamps are no lower than this: one past the last stamp exact
    /// counting drew (set when counting goes back to batches).
    floor: AtomicU64,
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

    /// A cache that reads `clock` for its stamps while counting is batched
    /// (one reading per add or re-time).
    pub fn with_clock(clock: Clock) -> Self {
        SessionCache {
            shards: std::array::from_fn(|i| ShardCell::new(i as u8)),
            evictions: CountedEvictions {
                len: AtomicIsize::new(0),
                lock: FlagFirstSpinLock::new(Evictions::new()),
            },
            hasher: KeyHasher::new(),
            mode: Mode {
                exact: AtomicBool::new(false),
                limit: AtomicUsize::new(0),
                floor: AtomicU64::new(0),
            },
            switching: SharedLock::new(()),
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
            sync::exempt_from_race_checks(&cell.evicted);
            cell.shard.exempt_from_race_checks();
        }
        self.evictions.lock.exempt_from_race_checks();
        sync::exempt_from_race_checks(&self.evictions.len);
        sync::exempt_from_race_checks(&self.mode);
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
        self.shards
            .iter()
            .map(|c| c.evicted.load(Ordering::Relaxed))
            .sum()
    }

    fn lock(&self, shard: usize) -> SpinLockGuard<'_, Shard<S>> {
        self.shards[shard].shard.lock()
    }

    /// Every shard lock, in index order: only the switches between counting
    /// modes hold more than one (with the eviction lock taken first).
    fn lock_all(&self) -> Vec<SpinLockGuard<'_, Shard<S>>> {
        (0..SHARDS).map(|shard| self.lock(shard)).collect()
    }

    /// The table hash (low 32 bits) and shard (bits 48..) of `key`.
    fn locate(&self, key: &SessionKey) -> (u32, usize) {
        let hash = self.hasher.hash_one(*key);
        (hash as u32, (hash >> 48) as usize % SHARDS)
    }

    /// A clock stamp for an add about to lock its shard, when counting is
    /// batched (a hint: [`Self::stamp`] decides under the lock). Read
    /// before the lock, to keep the lock short.
    fn early_reading(&self) -> Option<u64> {
        (!self.mode.exact.load(Ordering::Relaxed)).then(|| self.clock_stamp())
    }

    fn clock_stamp(&self) -> u64 {
        clock_stamp(self.clock, self.mode.floor.load(Ordering::Relaxed))
    }

    /// A stamp for an entry of a (locked) shard and the order its new
    /// element joins: while counting is exact, a provisional one (the
    /// element draws its stamp when placed, see [`Slot::stamp`]); else a
    /// clock stamp (`early`, if one was taken).
    fn stamp(&self, guard: &mut Shard<S>, early: Option<u64>) -> (u64, Target) {
        if self.mode.exact.load(Ordering::Relaxed) {
            return (provisional_stamp(guard.number), Target::CacheWide);
        }
        // The floor again: read outside the lock, it could predate the
        // switch back to batches.
        let floor = self.mode.floor.load(Ordering::Relaxed);
        let reading = early.unwrap_or_else(|| self.clock_stamp());
        (guard.stamp(reading.max(floor)), Target::Shard)
    }

    /// Records `delta` entries added to (or removed from) `shard`, under its
    /// lock, and stores its new live count for lock-free readers.
    fn count(&self, cell: &ShardCell<S>, shard: &mut Shard<S>, delta: isize) {
        cell.live.store(shard.live, Ordering::Relaxed);
        if self.mode.exact.load(Ordering::Relaxed) {
            self.evictions.len.fetch_add(delta, Ordering::Relaxed);
        } else {
            shard.pending += delta;
            if shard.pending.abs() >= BATCH {
                self.evictions
                    .len
                    .fetch_add(shard.pending, Ordering::Relaxed);
                shard.pending = 0;
            }
        }
    }

    /// Switches to exact counting, and to the cache-wide order: with the
    /// eviction lock and every shard lock held, folds each shard's count
    /// difference into `len`, moves its elements into the cache-wide order,
    /// and starts the stamp counter above every stamp given out.
    fn count_exactly(&self) {
        let _switching = self.switching.write();
        if self.mode.exact.load(Ordering::Relaxed) {
            return;
        }
        let mut evictions = self.evictions.lock();
        let mut shards = self.lock_all();
        let mut floor = self.clock_stamp();
        let mut all = Vec::new();
        for guard in &mut shards {
            self.evictions
                .len
                .fetch_add(std::mem::take(&mut guard.pending), Ordering::Relaxed);
            floor = floor.max(guard.last_stamp);
            all.append(&mut guard.take_live_sorted());
            guard.order = Order::new();
        }
        // The shards' runs are sorted: a stable sort merges them.
        all.sort_by_key(OrderEntry::rank);
        evictions.reset(all);
        evictions.active = true;
        evictions.next_stamp = floor + 1;
        self.mode.exact.store(true, Ordering::Relaxed);
    }

    /// Back to batched counting, and to the shards' own orders, once the
    /// cache is far below its limit (after a flush): then no add can be due
    /// an eviction before `len` shows it. Far: 2 x [`SLACK`] below the limit
    /// and no more than half of it. Exact counting resumes once the batched
    /// count, within `SLACK` of the truth, comes within `SLACK` of the
    /// limit, so at least half the limit less 2 x `SLACK` adds come between
    /// (few, for limits just above 4 x `SLACK`), and each flush switches
    /// back at most once: the moves of the two switches (O(n log n) with
    /// every lock held) are not paid for add by add. Clock stamps go on
    /// above the counter's last (see [`clock_stamp`]).
    fn count_in_batches_if_far(&self) {
        let far = || {
            let limit = self.mode.limit.load(Ordering::Relaxed) as isize;
            let len = self.evictions.len.load(Ordering::Relaxed);
            let exact = self.mode.exact.load(Ordering::Relaxed);
            exact && (limit == 0 || (len + 2 * SLACK < limit && 2 * len <= limit))
        };
        if !far() {
            return;
        }
        let _switching = self.switching.write();
        if !far() {
            return;
        }
        let mut evictions = self.evictions.lock();
        let mut shards = self.lock_all();
        let mut moving = by_shard(evictions.reset(Vec::new()).take_all());
        evictions.active = false;
        for (guard, mine) in shards.iter_mut().zip(&mut moving) {
            guard.adopt_live(mine);
            mine.sort_unstable_by_key(OrderEntry::rank);
            guard.order = Order::from_sorted(std::mem::take(mine));
        }
        self.mode
            .floor
            .store(evictions.next_stamp, Ordering::Relaxed);
        self.mode.exact.store(false, Ordering::Relaxed);
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
        let early = self.early_reading();
        let cell = &self.shards[shard];
        let mut guard = self.lock(shard);
        let (stamp, to) = self.stamp(&mut guard, early);
        let rank = (expiry, stamp);
        let (slot, replaced, placing) = match guard.insert_or_find(hash, &key, offer, rank) {
            Ok(i) => {
                match to {
                    Target::Shard => self.count(cell, &mut guard, 1),
                    // Counted once placed (see `enforce`), so that the
                    // count and the eviction claim are one write.
                    Target::CacheWide => cell.live.store(guard.live, Ordering::Relaxed),
                }
                (i, None, guard.push(rank, i, to))
            }
            Err((i, offer)) => {
                // Same key: re-sort, and swap the object if it is
                // another one. The offer's code runs first: should it
                // panic, the entry still has its element.
                let cached = guard.slot(i).session.as_ref().expect("live slot");
                if offer.is(cached) {
                    let placing = guard.rerank(i, rank, to);
                    drop(guard);
                    if let Some(e) = placing {
                        self.place(&mut self.evictions.lock(), e);
                    }
                    return Added::Duplicate(offer);
                }
                let handle = offer.into_handle();
                let placing = guard.rerank(i, rank, to);
                let cached = guard.slot_mut(i).session.as_mut().expect("live slot");
                (i, Some(std::mem::replace(cached, handle)), placing)
            }
        };
        // The entry's live element, which its own eviction spares.
        let spare = (shard, slot, guard.slot(slot).seq);
        drop(guard);
        let evicted = self.enforce(limit, placing, spare, replaced.is_none());
        match replaced {
            None => Added::New { evicted },
            Some(old) => Added::Replaced { old, evicted },
        }
    }

    /// Places `e`, an element a shard made while counting was exact, in the
    /// cache-wide order (eviction lock held), where a provisional stamp is
    /// drawn; if counting went back to batches since, in its shard's order,
    /// unless it is stale.
    fn place(&self, evictions: &mut Evictions, mut e: OrderEntry) {
        if evictions.active {
            if is_provisional(e.stamp) {
                e.stamp = evictions.draw_stamp(e.shard());
                evictions.order.push_fresh(e);
            } else {
                evictions.order.push(e);
            }
            if evictions.is_compaction_due(&e) {
                self.compact(evictions);
            }
            return;
        }
        let mut guard = self.lock(e.shard());
        let Some(mut now) = guard.current(&e) else {
            return;
        };
        if is_provisional(now.stamp) {
            // Its entry is stamped now, as an add while batched is.
            now.stamp = guard.stamp(self.clock_stamp());
            guard.slot_mut(now.slot).stamp = now.stamp;
        }
        guard.order.push(now);
        guard.compact_if_stale();
    }

    /// Rebuilds the cache-wide order from its live elements, each at its
    /// entry's rank (eviction lock held; each shard locked once). Stale
    /// elements then make at most half of it, and a rebuild follows at
    /// least as many pushes as it keeps: amortised O(log n) per push.
    fn compact(&self, evictions: &mut Evictions) {
        let mut live = Vec::new();
        for (shard, mut mine) in by_shard(evictions.order.take_all()).into_iter().enumerate() {
            self.lock(shard).keep_live(&mut mine);
            live.append(&mut mine);
        }
        live.sort_unstable_by_key(OrderEntry::rank);
        evictions.reset(live);
    }

    /// Evicts down to `limit` (0: none), sparing the entry just added
    /// (shard, slot, seq: should that entry leave and its slot be reused
    /// meanwhile, the slot's new entry is not spared); first places the
    /// entry's new element, if it made one for the cache-wide order, and
    /// then counts the entry if it is `new` (a new entry made such an
    /// element exactly when counting was exact, and was not counted yet).
    fn enforce(
        &self,
        limit: usize,
        placing: Option<OrderEntry>,
        added: (usize, u32, u32),
        new: bool,
    ) -> Evicted<S> {
        let mut evicted = Evicted::new();
        let mut counted = None;
        if let Some(e) = placing {
            // One hold of the eviction lock places, counts and evicts.
            let mut evictions = self.evictions.lock();
            self.place(&mut evictions, e);
            // Counted only once it is placed (an add that owes a victim
            // then never finds nothing to evict while another new entry is
            // counted but not yet evictable; a re-sort while exact, or to an
            // earlier rank, still leaves its entry without a placed element
            // for a moment, see the README's Known gaps), unless the cache is
            // full: then it and the victim it now owes cancel out, and `len`
            // is not written at all.
            counted = new.then(|| {
                self.evictions
                    .len
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |len| {
                        (limit == 0 || len < limit as isize).then_some(len + 1)
                    })
            });
            if let Some(Err(_)) = counted {
                match self.evict_claimed(evictions, added) {
                    Some(s) => evicted.push(s),
                    None => return evicted,
                }
            }
        }
        if self.mode.limit.load(Ordering::Relaxed) != limit {
            self.mode.limit.store(limit, Ordering::Relaxed);
        }
        if limit == 0 {
            return evicted;
        }
        if !self.mode.exact.load(Ordering::Relaxed) {
            if self.evictions.len.load(Ordering::Relaxed) + SLACK < limit as isize {
                return evicted;
            }
            self.count_exactly();
        } else if let Some(Ok(len) | Err(len)) = counted {
            // The count this add saw: when it was within the limit, the
            // count is now too (the add counted itself, or its eviction
            // made up for it), and the count need not be read
            // again. Above it (the limit was lowered), claim the excess.
            if len <= limit as isize {
                return evicted;
            }
        }
        while self.claim_eviction(limit) {
            match self.evict_claimed(self.evictions.lock(), added) {
                Some(s) => evicted.push(s),
                None => break,
            }
        }
        evicted
    }

    /// Evicts for a victim already taken off `len` (an add that owes one, or
    /// a claimed excess); with nothing left to evict but the entry just
    /// added, gives the count back.
    fn evict_claimed<'a>(
        &'a self,
        evictions: SpinLockGuard<'a, Evictions>,
        added: (usize, u32, u32),
    ) -> Option<S> {
        let victim = self.evict_earliest(evictions, added);
        if victim.is_none() {
            self.evictions.len.fetch_add(1, Ordering::Relaxed);
        }
        victim
    }

    /// Takes one unit of excess over `limit` off `len`, if there is any, so
    /// that concurrent adders never evict more than the excess between them.
    fn claim_eviction(&self, limit: usize) -> bool {
        self.evictions
            .len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |len| {
                (len > limit as isize).then(|| len - 1)
            })
            .is_ok()
    }

    /// The cache-wide order's first element, live and at its entry's rank,
    /// with its shard locked (eviction lock held); stale elements before it
    /// are dropped and outdated ones moved to their entry's rank. `None`
    /// when the order is empty, as it is while counting is batched.
    fn first_exact<'a>(
        &'a self,
        evictions: &mut Evictions,
    ) -> Option<(OrderEntry, SpinLockGuard<'a, Shard<S>>)> {
        settle_front(&mut evictions.order, |e| {
            let guard = self.lock(e.shard());
            (guard.current(e), guard)
        })
    }

    /// Removes the earliest-expiring session other than the one in `except`
    /// (shard, slot, seq), counting it in its shard's `evicted`. The caller
    /// has already taken it off `len` (see `evict_claimed`). Nothing is
    /// evicted while counting is batched (the order is empty).
    ///
    /// Under the eviction lock it only takes the first element out of the
    /// cache-wide order; the lock is let go before the element's shard is
    /// locked to check it and take its entry, so that the next eviction
    /// need not wait for that (the lines of a shard another thread wrote
    /// last). An element found stale (its entry left, or was re-sorted while
    /// exact, meanwhile) or outdated (its entry's rank is later: it goes
    /// back in at that rank; rare here, as every re-sort while exact makes
    /// a new element, but possible across switches of counting mode) makes
    /// it take the next one.
    fn evict_earliest<'a>(
        &'a self,
        mut evictions: SpinLockGuard<'a, Evictions>,
        except: (usize, u32, u32),
    ) -> Option<S> {
        loop {
            let e = Self::take_first_except(&mut evictions, except)?;
            drop(evictions);
            let cell = &self.shards[e.shard()];
            let mut guard = cell.shard.lock();
            let now = guard.current(&e);
            if now.is_some_and(|now| now.rank() == e.rank()) {
                let s = guard.take(e.slot);
                cell.live.store(guard.live, Ordering::Relaxed);
                // Written under the shard lock only: no locked instruction.
                let evicted = cell.evicted.load(Ordering::Relaxed);
                cell.evicted.store(evicted + 1, Ordering::Relaxed);
                return Some(s);
            }
            drop(guard);
            evictions = self.evictions.lock();
            if let Some(now) = now {
                self.place(&mut evictions, now);
            }
        }
    }

    /// Takes the first element out of the cache-wide order, other than the
    /// one `except` names (shard, slot, seq), which stays first.
    fn take_first_except(
        evictions: &mut Evictions,
        except: (usize, u32, u32),
    ) -> Option<OrderEntry> {
        let first = evictions.order.pop_first()?;
        if except != (first.shard(), first.slot, first.seq) {
            return Some(first);
        }
        let next = evictions.order.pop_first();
        evictions.order.push_first(first);
        next
    }

    /// Removes the session under `key`, returning it; `same` is a fast yes
    /// for the caller's own object (whose key is `key`).
    pub fn remove(&self, key: &SessionKey, same: impl Fn(&S) -> bool) -> Option<S> {
        let (hash, shard) = self.locate(key);
        let cell = &self.shards[shard];
        let mut guard = self.lock(shard);
        let s = guard.take_matching(hash, key, same)?;
        self.count(cell, &mut guard, -1);
        // The entry's element, wherever it is, just goes stale.
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
    /// shard bit-reverse(n)): each empties the shards it reaches first and
    /// releases what it took in parallel with the others, instead of one
    /// draining every shard while the others queue behind it for nothing.
    pub fn flush(&self, scope: FlushScope, in_order: bool) -> Vec<S> {
        let mut out = match scope {
            FlushScope::All => self.flush_all(in_order),
            FlushScope::ExpiredAt(t) => self.flush_expired(t),
        };
        self.count_in_batches_if_far();
        if in_order {
            // Each shard's part is already sorted: a stable sort merges them.
            out.sort_by_key(|(rank, _)| *rank);
        }
        out.into_iter().map(|(_, s)| s).collect()
    }

    /// Takes every entry: the cache-wide order is emptied, and each shard
    /// swapped for an empty one under its lock, and drained (a pass over its
    /// slab, a sort, freeing its buffers) once its lock is let go, before
    /// the next is taken: so flushes that run at once each drain a share. A
    /// switch of counting mode meanwhile moves only elements that go stale
    /// with their shard's entries, or that stand for entries added since.
    /// Reported in order, an entry placed while counting was exact first
    /// gets the stamp its element drew (see [`Slot::stamp`]); one added or
    /// re-sorted during the flush, or whose element an eviction had taken
    /// out of the order to check it, may still have a provisional stamp,
    /// and then comes after the others of its expiry (among themselves, in
    /// no particular order).
    fn flush_all(&self, in_order: bool) -> Vec<(Rank, S)> {
        let mut old_order = self.evictions.lock().reset(Vec::new());
        let mut placed = in_order.then(|| by_shard(old_order.take_all()));
        drop(old_order);
        let mut out = Vec::new();
        for shard in self.flush_turn() {
            let mut guard = self.lock(shard);
            let mut emptied = guard.detach();
            self.count_flushed(shard, &guard, emptied.pending, emptied.live);
            drop(guard);
            if let Some(placed) = &mut placed {
                emptied.adopt_live(&mut placed[shard]);
            }
            emptied.drain_all(&mut out, in_order);
        }
        out
    }

    /// Takes the entries expired at `t`, each shard's in rank order, with no
    /// switch of counting mode meanwhile (which would move elements between
    /// the orders behind the flush's back): while counting is exact, from
    /// the cache-wide order, in batches, so that adds need not wait for the
    /// whole flush; otherwise from each shard's order under its lock.
    fn flush_expired(&self, t: i64) -> Vec<(Rank, S)> {
        let mut out = Vec::new();
        let _switching = self.switching.read();
        if self.mode.exact.load(Ordering::Relaxed) {
            while self.drain_expired(&mut self.evictions.lock(), t, &mut out, 64) {}
            return out;
        }
        for shard in self.flush_turn() {
            let mut guard = self.lock(shard);
            let taken = guard.drain_while(&mut out, |e| e.is_expired_at(t));
            let pending = std::mem::take(&mut guard.pending);
            self.count_flushed(shard, &guard, pending, taken);
        }
        out
    }

    /// Counts what a flush took from `shard` (locked, `guard`): its batched
    /// difference `pending` (folded, not dropped, in either counting mode)
    /// less the `taken` entries go into `len`.
    fn count_flushed(&self, shard: usize, guard: &Shard<S>, pending: isize, taken: usize) {
        self.evictions
            .len
            .fetch_add(pending - taken as isize, Ordering::Relaxed);
        self.shards[shard].live.store(guard.live, Ordering::Relaxed);
    }

    /// The shards in the order this flush visits them: flushes that run at
    /// once start far apart (see [`Self::flush`]).
    fn flush_turn(&self) -> impl Iterator<Item = usize> {
        let turn = self.flushes.fetch_add(1, Ordering::Relaxed);
        let first = turn.reverse_bits() >> (usize::BITS - SHARDS.trailing_zeros());
        (0..SHARDS).map(move |i| (first + i) % SHARDS)
    }

    /// Takes up to `most` entries expired at `t` from the cache-wide order,
    /// earliest first (eviction lock held; one shard lock at a time); true
    /// when there may be more.
    fn drain_expired(
        &self,
        evictions: &mut Evictions,
        t: i64,
        out: &mut Vec<(Rank, S)>,
        most: usize,
    ) -> bool {
        for _ in 0..most {
            let Some((e, mut guard)) = self.first_exact(evictions) else {
                return false;
            };
            if !e.expiry.is_expired_at(t) {
                return false;
            }
            evictions.order.pop_first();
            out.push((e.rank(), guard.take(e.slot)));
            self.count(&self.shards[e.shard()], &mut guard, -1);
        }
        true
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
        if !guard.slot(i).session.as_ref().is_some_and(&is_it) {
            return;
        }
        let (stamp, to) = self.stamp(&mut guard, None);
        let placing = guard.rerank(i, (expiry, stamp), to);
        drop(guard);
        if let Some(e) = placing {
            self.place(&mut self.evictions.lock(), e);
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

    /// The line an evicting add takes with the eviction lock (see
    /// [`CountedEvictions`]): the count, the lock's flag, the stamp counter,
    /// the run's back expiry and the run's header; the heap's header on the
    /// next line.
    #[test]
    fn count_flag_and_order_headers_share_a_line() {
        use std::mem::{offset_of, size_of};
        let (flag, value) = FlagFirstSpinLock::<Evictions>::layout();
        let lock = offset_of!(CountedEvictions, lock);
        let (flag, value) = (lock + flag, lock + value);
        assert_eq!(offset_of!(CountedEvictions, len), 0);
        assert!(flag < 64, "flag at {flag}");
        assert_eq!(offset_of!(Evictions, next_stamp), 0);
        assert_eq!(offset_of!(Order, back_expiry), 0);
        let order = value + offset_of!(Evictions, order);
        let run = order + offset_of!(Order, run);
        assert_eq!(run, order + size_of::<Expiry>());
        assert!(
            run + size_of::<VecDeque<OrderEntry>>() <= 64,
            "run header ends past {run}"
        );
        let heap = order + offset_of!(Order, heap);
        assert!(
            heap >= 64 && heap + size_of::<Vec<OrderEntry>>() <= 128,
            "heap header at {heap}"
        );
        assert_eq!(std::mem::align_of::<CountedEvictions>(), 64);
    }

    /// A shard's `last_stamp` is not on the line of its lock's flag (see
    /// [`Shard`]), but on its index header's.
    #[test]
    fn the_shard_stamp_stays_off_the_flag_line() {
        use std::mem::offset_of;
        type Cell = ShardCell<Sess>;
        let (flag, value) = SpinLock::<Shard<Sess>>::layout();
        let lock = offset_of!(Cell, shard);
        let line = |at: usize| at / 64;
        let field = |at: usize| lock + value + at;
        assert_eq!(std::mem::align_of::<Cell>(), 64);
        assert_ne!(
            line(field(offset_of!(Shard<Sess>, last_stamp))),
            line(lock + flag)
        );
        assert_eq!(
            line(field(offset_of!(Shard<Sess>, last_stamp))),
            line(field(offset_of!(Shard<Sess>, index)))
        );
    }

    /// An element of slot 0 at rank (`expiry`, `stamp`), with `seq`.
    fn element(expiry: i64, stamp: u64, seq: u32) -> OrderEntry {
        OrderEntry {
            expiry: Expiry(expiry),
            stamp,
            slot: 0,
            seq,
        }
    }

    /// Takes every element out of `order`, earliest first: their ranks.
    fn drain_ranks(order: &mut Order) -> Vec<Rank> {
        std::iter::from_fn(|| order.pop_first().map(|e| e.rank())).collect()
    }

    #[test]
    fn a_fresh_element_follows_the_back_only_when_it_expires_no_earlier() {
        let e = |expiry, stamp| element(expiry, stamp, 0);
        let drain = |order: &mut Order| {
            drain_ranks(order)
                .into_iter()
                .map(|(_, stamp)| stamp)
                .collect::<Vec<_>>()
        };
        let mut order = Order::new();
        for (expiry, stamp) in [(10, 1), (10, 2), (5, 3), (12, 4)] {
            order.push_fresh(e(expiry, stamp));
        }
        assert_eq!(drain(&mut order), [3, 1, 2, 4]);
        // An element put back first on an emptied run is its back now.
        order.push_first(e(20, 5));
        order.push_fresh(e(15, 6));
        assert_eq!(drain(&mut order), [6, 5]);
        let mut order = Order::from_sorted(vec![e(7, 1), e(9, 2)]);
        order.push_fresh(e(8, 3));
        order.push_fresh(e(9, 4));
        assert_eq!(drain(&mut order), [1, 3, 2, 4]);
        // A check of how push_fresh works, not of an order anyone may
        // rely on: an element of the back's expiry goes after it without
        // the stamps being compared (so without reading the back). This
        // one breaks push_fresh's promise (its stamp is the lower), so that
        // a comparison would show; the order it gets is wrong on purpose.
        let mut order = Order::from_sorted(vec![e(9, 5)]);
        order.push_fresh(e(9, 3));
        assert_eq!(drain(&mut order), [5, 3]);
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
        // Each newcomer expires before everything cached, so its element
        // comes first: the eviction must look past it.
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
            assert!(!c.mode.exact.load(Ordering::Relaxed));
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
    fn eviction_sees_entries_that_became_the_earliest() {
        // Elements go stale on removes and flushes, and entries that become
        // the earliest (new, re-sorted, re-timed) must reach eviction
        // however the order looked before: each case below is the one entry
        // eviction must pick.
        let c = SessionCache::new();
        let limit = 64;
        for n in 0..limit as u32 {
            c.add(key(n), Expiry(1000 + n as i64), sess(n), limit);
        }
        // Stale elements: remove the 8 earliest, then evict once.
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
        // At the smallest limits an add that owes a victim finds little
        // else to evict: each new entry must be evictable before it counts,
        // or the count is seen above the limit after an add. Removes leave
        // room, so that adds count themselves too. (One add first, so that
        // counting is exact throughout.)
        for limit in [1, 2, 100] {
            let c = Arc::new(SessionCache::new());
            add_new(&c, 900_000, 0, limit);
            let gone = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..4u32)
                .map(|t| {
                    let (c, gone) = (Arc::clone(&c), Arc::clone(&gone));
                    std::thread::spawn(move || {
                        for i in 0..3000u32 {
                            let n = t * 100_000 + i;
                            match c.add(key(n), Expiry(i as i64), sess(n), limit) {
                                Added::New { evicted } => {
                                    gone.fetch_add(evicted.len(), Ordering::Relaxed);
                                }
                                other => panic!("{other:?}"),
                            }
                            if i % 3 == 2 && c.remove(&key(n - 1), |_| false).is_some() {
                                gone.fetch_add(1, Ordering::Relaxed);
                            }
                            let len = c.evictions.len.load(Ordering::Relaxed);
                            assert!(len <= limit as isize, "{len} counted, limit {limit}");
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert!(c.len() <= limit, "limit {limit}");
            assert_eq!(c.stored(), c.len());
            assert_eq!(c.evictions.len.load(Ordering::Relaxed) as usize, c.len());
            assert_eq!(gone.load(Ordering::Relaxed) + c.len(), 12_001);
        }
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
        // still cached, evictions are counted, and the limit holds. At the
        // largest limit, full flushes switch counting (and the order
        // evictions take from) back to batches, and adds switch it to exact
        // again.
        for round in 0..30u64 {
            let c = Arc::new(SessionCache::new());
            let (limit, keys) = match round % 3 {
                0 => (40, 200),
                1 => (700, 2000),
                _ => (3 * SLACK as usize, 6000),
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
            let pending: isize = (0..SHARDS).map(|s| c.lock(s).pending).sum();
            assert_eq!(
                (c.evictions.len.load(Ordering::Relaxed) + pending) as usize,
                c.len()
            );
        }
    }

    #[test]
    fn the_order_is_compacted_before_a_seq_can_come_round_again() {
        // A stale element deep in the order outlives pushes until compaction;
        // drawing seqs past each 2^31 boundary schedules one.
        let mut shard: Shard<Sess> = Shard::new(0);
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
                        let e = element(rank.0.0, rank.1, 0);
                        // A stamp later than every other is a fresh one.
                        if stamp == next {
                            order.push_fresh(e);
                        } else {
                            order.push(e);
                        }
                        model.push(rank);
                    }
                    6..=8 => {
                        model.sort();
                        let want = (!model.is_empty()).then(|| model.remove(0));
                        assert_eq!(order.first().map(OrderEntry::rank), want);
                        assert_eq!(order.pop_first().map(|e| e.rank()), want);
                    }
                    _ => {
                        // Eviction's set-aside: take the first, put it back.
                        if let Some(e) = order.pop_first() {
                            order.push_first(e);
                        }
                    }
                }
                assert_eq!(order.len(), model.len());
            }
            model.sort();
            assert_eq!(drain_ranks(&mut order), model);
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
            c.evictions.len.load(Ordering::Relaxed),
            0,
            "count after flushes"
        );
        for _ in 0..2000 {
            add_new(&c, n, 1, 1000);
            n += 1;
        }
        assert_eq!(c.len(), 1000);
    }

    /// A re-sort of entry `n` while counting is exact, as an add makes it
    /// (a provisional stamp), up to the placing: the entry's old element
    /// goes stale.
    fn unplaced_element(c: &SessionCache<Sess>, n: u32) -> OrderEntry {
        let (hash, shard) = c.locate(&key(n));
        let mut g = c.lock(shard);
        let i = g.find(hash, &key(n), |_| false).unwrap();
        let rank = (g.rank_of(i).0, provisional_stamp(g.number));
        g.rerank(i, rank, Target::CacheWide).unwrap()
    }

    #[test]
    fn an_element_placed_after_a_switch_joins_the_order_in_use() {
        // The element an add made under its shard lock while counting was
        // exact is placed once that lock is let go: by then counting may be
        // batched (the shard's order takes it) or exact again (the
        // cache-wide order does). Either way the entry still expires, and
        // gets its stamp there: before that of an add of the same expiry
        // that follows.
        for exact in [false, true] {
            let c = SessionCache::new();
            for n in 0..10 {
                add_new(&c, n, 100 + n as i64, 0);
            }
            let e = unplaced_element(&c, 3);
            if exact {
                c.count_exactly();
            }
            c.place(&mut c.evictions.lock(), e);
            assert_eq!(c.evictions.lock().order.len(), if exact { 10 } else { 0 });
            add_new(&c, 10, 103, 0);
            assert_eq!(
                ids(&c.flush(FlushScope::ExpiredAt(104), true)),
                vec![0, 1, 2, 3, 10],
                "exact: {exact}"
            );
            // A stale element is dropped wherever it lands.
            let stale = unplaced_element(&c, 5);
            c.remove(&key(5), |_| false).unwrap();
            c.place(&mut c.evictions.lock(), stale);
            assert_eq!(ids(&c.flush(FlushScope::All, true)), vec![4, 6, 7, 8, 9]);
        }
    }

    #[test]
    fn ties_keep_insertion_order_across_switches_of_counting() {
        // A clock that stands still: stamps come only from the counter and
        // the per-thread and per-shard increments, so each switch must carry
        // the stamps on from where the other mode left them.
        let c: SessionCache<Sess> = SessionCache::with_clock(|| 0);
        let limit = 3 * SLACK as usize;
        let mut evicted = Vec::new();
        for n in 0..limit as u32 + 100 {
            if let Added::New { evicted: ev } = c.add(key(n), Expiry(5), sess(n), limit) {
                evicted.extend(ev);
            }
        }
        assert!(c.mode.exact.load(Ordering::Relaxed));
        assert_eq!(ids(&evicted), (0..100).collect::<Vec<_>>());
        let last = limit as u32 + 100;
        for n in 100..last - 300 {
            c.remove(&key(n), |_| false).unwrap();
        }
        // Far below the limit: a flush (of nothing) switches back.
        assert!(c.flush(FlushScope::ExpiredAt(1), true).is_empty());
        assert!(!c.mode.exact.load(Ordering::Relaxed));
        for n in last..last + 200 {
            add_new(&c, n, 5, limit);
        }
        assert_eq!(
            ids(&c.flush(FlushScope::All, true)),
            (last - 300..last + 200).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_cache_wide_order_is_compacted() {
        // At the limit, every add that is removed again leaves a stale
        // element in the cache-wide order; compaction keeps it within twice
        // the live count (plus 64), and evictions still go in order.
        let c = SessionCache::new();
        let limit = 100;
        for n in 0..limit as u32 {
            add_new(&c, n, 1_000_000, limit);
        }
        for n in 1000..50_000 {
            add_new(&c, n, 1_000_000, limit);
            c.remove(&key(n), |_| false).unwrap();
            let held = c.evictions.lock().order.len();
            assert!(held <= 2 * limit + 64 + 1, "{held} elements for {limit}");
        }
        // The first add over the limit evicted 0; each remove since left
        // room for the next add.
        assert_eq!(add_new(&c, 99_999, 1_000_000, limit), Vec::<u32>::new());
        assert_eq!(add_new(&c, 100_000, 1_000_000, limit), vec![1]);
        // A shard's seqs reaching a multiple of 2^30 compact it too.
        let mut e = Evictions::new();
        e.compact_at = 100;
        let at = |seq| element(0, 0, seq);
        assert!(!e.is_compaction_due(&at((1 << 30) + 1)));
        assert!(e.is_compaction_due(&at(1 << 30)));
        assert!(e.is_compaction_due(&at(3 << 30)));
    }
}
