//! The paste cache of one webserver: metadata and text by paste id, bounded in bytes,
//! so that repeated reads of a paste are answered from memory without asking sqlsvc
//! or nosqlsvc.
//!
//! What keeps it right (see the README, "The read path and its cache"):
//! - expiry is checked against the clock on every hit, so an expired paste is never
//!   served, whatever is cached;
//! - deletions come from sqlsvc's deletion log (see `invalidation`) and are applied
//!   with `forget`; a fetch that was under way when a delete was applied must not put
//!   the deleted paste back, so every insert shows the `Ticket` taken before its
//!   fetch, and is refused if the id was forgotten (a tombstone) or the whole cache
//!   was reset since;
//! - a miss on an unknown id is not cached at all.
//!
//! Storage and eviction are quick_cache's: a sharded table with a CLOCK-Pro-like
//! policy (close to S3-FIFO) that keeps entries read again over entries read once, so
//! a hot set survives a stream of one-off reads; see BENCHMARKS.md for the comparison
//! with the FIFO cache it replaced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use contract::PasteId;
use contract::meta::Meta;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::Paste;

/// Bytes counted per entry beyond its strings: the `Meta` and `Paste` structs, two
/// `Arc` headers and the table slot, rounded up.
pub const ENTRY_OVERHEAD: usize = 160;

/// How long a deleted id stays refused. Longer than any fetch may take (a fetch that
/// took longer is never cached), so no fetch that read the paste before its delete
/// can put it back.
const TOMBSTONE_TTL: Duration = Duration::from_secs(30);

/// Shards of the table: more means less lock contention, but each shard holds an
/// equal share of the bytes, and an entry must fit in one (see `max_entry`).
const SHARDS: usize = 4;

/// Whether a paste may be kept in memory at all: not a burn-after-reading paste, whose
/// every read is a claim in sqlsvc (`ReadApi::read`). Concurrent readers of one may
/// share a fetch (the single flight): each still makes its own claim, and only the
/// one that wins gets the text.
pub fn may_cache(meta: &Meta) -> bool {
    !meta.burn_after_reading
}

/// Bytes an entry is charged: its text, path and id, and the fixed overhead.
pub fn entry_bytes(paste: &Paste) -> usize {
    paste.text.len()
        + paste.meta.paste_path.as_str().len()
        + paste.meta.paste_id.as_str().len()
        + ENTRY_OVERHEAD
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<PasteId, Arc<Paste>> for ByBytes {
    fn weight(&self, _key: &PasteId, paste: &Arc<Paste>) -> u64 {
        entry_bytes(paste) as u64
    }
}

/// What the cache knows about an id at a given time.
#[derive(Debug)]
pub enum Lookup {
    /// Cached and live: serve it.
    Live(Arc<Paste>),
    /// Cached but expired: it is gone for good (404), no need to ask.
    Expired,
    /// Not cached.
    Miss,
}

/// Taken before a fetch whose result may be inserted: the insert is refused if the
/// cache was reset, or the id deleted, after this was taken.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    generation: u64,
    taken: Instant,
}

/// Deleted ids and the reset count, changed and checked under one lock so that an
/// insert cannot slip between a delete's check and its removal.
#[derive(Default)]
struct Fence {
    generation: u64,
    tombstones: HashMap<PasteId, Instant>,
}

/// The pastes one webserver holds in memory, at most `capacity_bytes` of them.
pub struct PasteCache {
    entries: Option<Cache<PasteId, Arc<Paste>, ByBytes>>,
    capacity_bytes: usize,
    fence: Mutex<Fence>,
}

impl PasteCache {
    /// A cache of at most `capacity_bytes` (entries charged by `entry_bytes`); 0
    /// turns caching off.
    pub fn new(capacity_bytes: usize) -> Self {
        let entries = (capacity_bytes > 0).then(|| {
            let weight = u64::try_from(capacity_bytes).unwrap_or(u64::MAX);
            // A guess at the item count only sizes the first table allocation.
            let items = (capacity_bytes / 2048).clamp(16, 1 << 20);
            let options = quick_cache::OptionsBuilder::new()
                .estimated_items_capacity(items)
                .weight_capacity(weight)
                .shards(SHARDS)
                .build();
            match options {
                Ok(options) => {
                    Cache::with_options(options, ByBytes, Default::default(), Default::default())
                }
                // Only a zero shard count is refused; keep the defaults then.
                Err(_) => Cache::with_weighter(items, weight, ByBytes),
            }
        });
        Self {
            entries,
            capacity_bytes,
            fence: Mutex::new(Fence::default()),
        }
    }

    /// The largest entry kept: an eighth of the capacity, so that one big paste
    /// cannot flush the rest (and it fits in one shard).
    pub fn max_entry(&self) -> usize {
        (self.capacity_bytes / 8).min(self.capacity_bytes / SHARDS)
    }

    /// What the cache holds for `id`, judged at `now_unix` (seconds): an entry whose
    /// `expires_at` is not after `now_unix` is expired, as in sqlsvc.
    pub fn lookup(&self, id: &PasteId, now_unix: i64) -> Lookup {
        let Some(entries) = &self.entries else {
            return Lookup::Miss;
        };
        match entries.get(id) {
            Some(paste) if paste.meta.expires_at.is_some_and(|t| t <= now_unix) => Lookup::Expired,
            Some(paste) => Lookup::Live(paste),
            None => Lookup::Miss,
        }
    }

    /// Whether `id` is held, without counting it as a read (the eviction policy
    /// keeps what is read again, and this is no read).
    pub fn contains(&self, id: &PasteId) -> bool {
        self.entries.as_ref().is_some_and(|e| e.contains_key(id))
    }

    /// A ticket for a fetch starting `now`.
    pub fn ticket(&self, now: Instant) -> Ticket {
        Ticket {
            generation: self.lock().generation,
            taken: now,
        }
    }

    /// Keeps `paste`, read by the fetch that took `ticket`, unless it is too large,
    /// may not be cached, or was deleted (or the cache reset) since the ticket was
    /// taken. Returns whether it was kept.
    pub fn insert(&self, paste: Arc<Paste>, ticket: Ticket, now: Instant) -> bool {
        let Some(entries) = &self.entries else {
            return false;
        };
        if entry_bytes(&paste) > self.max_entry() || !may_cache(&paste.meta) {
            return false;
        }
        // A fetch older than the tombstones' lifetime could predate a delete whose
        // tombstone is gone already.
        if now.saturating_duration_since(ticket.taken) >= TOMBSTONE_TTL {
            return false;
        }
        let fence = self.lock();
        if fence.generation != ticket.generation
            || fence.tombstones.contains_key(&paste.meta.paste_id)
        {
            return false;
        }
        entries.insert(paste.meta.paste_id.clone(), paste);
        true
    }

    /// Drops deleted pastes and refuses them for `TOMBSTONE_TTL` from `now`.
    pub fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a PasteId>, now: Instant) {
        let mut fence = self.lock();
        fence
            .tombstones
            .retain(|_, at| now.saturating_duration_since(*at) < TOMBSTONE_TTL);
        for id in ids {
            if let Some(entries) = &self.entries {
                entries.remove(id);
            }
            fence.tombstones.insert(id.clone(), now);
        }
    }

    /// Forgets everything, and refuses the results of fetches already under way.
    pub fn reset(&self) {
        let mut fence = self.lock();
        fence.generation += 1;
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }

    /// The most bytes held.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Bytes charged for the entries held now.
    pub fn bytes(&self) -> u64 {
        self.entries.as_ref().map_or(0, |e| e.weight())
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Fence> {
        self.fence.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paste(id: &str, text_len: usize, expires_at: Option<i64>) -> Arc<Paste> {
        Arc::new(Paste {
            meta: Meta {
                paste_id: id.parse().unwrap(),
                paste_path: format!("path_{id}").parse().unwrap(),
                created_at: 1,
                expires_at,
                size: Some(text_len as u64),
                burn_after_reading: false,
                unlisted: false,
            },
            text: Arc::from("x".repeat(text_len)),
        })
    }

    fn id(s: &str) -> PasteId {
        s.parse().unwrap()
    }

    fn live(cache: &PasteCache, s: &str) -> bool {
        matches!(cache.lookup(&id(s), 0), Lookup::Live(_))
    }

    #[test]
    fn a_paste_is_served_until_its_expiry_second_and_not_from_it_on() {
        let cache = PasteCache::new(1 << 20);
        let now = Instant::now();
        assert!(cache.insert(paste("AAAAAAAAAA", 10, Some(1000)), cache.ticket(now), now));
        assert!(matches!(
            cache.lookup(&id("AAAAAAAAAA"), 999),
            Lookup::Live(_)
        ));
        // sqlsvc's rule: live while expires_at > now.
        assert!(matches!(
            cache.lookup(&id("AAAAAAAAAA"), 1000),
            Lookup::Expired
        ));
        assert!(matches!(
            cache.lookup(&id("AAAAAAAAAA"), 5000),
            Lookup::Expired
        ));
        assert!(cache.insert(paste("BBBBBBBBBB", 10, None), cache.ticket(now), now));
        assert!(matches!(
            cache.lookup(&id("BBBBBBBBBB"), i64::MAX),
            Lookup::Live(_)
        ));
    }

    #[test]
    fn the_byte_bound_holds_and_hot_entries_survive_a_scan() {
        let entry = entry_bytes(&paste("AAAAAAAAAA", 1000, None));
        let cache = PasteCache::new(entry * 64);
        let now = Instant::now();
        let hot: Vec<String> = (0..8).map(|i| format!("HOT{i:07}")).collect();
        for h in &hot {
            cache.insert(paste(h, 1000, None), cache.ticket(now), now);
        }
        for round in 0..20 {
            // The hot set is read again and again...
            for h in &hot {
                assert!(live(&cache, h), "round {round}: {h} was evicted");
            }
            // ...between bursts of pastes read once.
            for i in 0..40 {
                let cold = format!("C{round:03}{i:06}");
                cache.insert(paste(&cold, 1000, None), cache.ticket(now), now);
                assert!(cache.bytes() as usize <= entry * 64);
            }
        }
        assert!(cache.len() <= 64);
    }

    #[test]
    fn large_entries_are_not_kept_and_zero_turns_caching_off() {
        let cache = PasteCache::new(8000);
        let now = Instant::now();
        assert!(!cache.insert(paste("AAAAAAAAAA", 2000, None), cache.ticket(now), now));
        assert!(cache.insert(paste("BBBBBBBBBB", 500, None), cache.ticket(now), now));
        assert!(!live(&cache, "AAAAAAAAAA"));
        assert!(live(&cache, "BBBBBBBBBB"));

        let off = PasteCache::new(0);
        assert!(!off.insert(paste("AAAAAAAAAA", 1, None), off.ticket(now), now));
        assert!(matches!(off.lookup(&id("AAAAAAAAAA"), 0), Lookup::Miss));
    }

    #[test]
    fn a_fetch_under_way_cannot_put_back_a_deleted_paste() {
        let cache = PasteCache::new(1 << 20);
        let t0 = Instant::now();
        let ticket = cache.ticket(t0);
        // The delete is applied while the fetch is under way...
        cache.forget([&id("AAAAAAAAAA")], t0 + Duration::from_millis(5));
        // ...so what the fetch read before it is refused.
        assert!(!cache.insert(
            paste("AAAAAAAAAA", 10, None),
            ticket,
            t0 + Duration::from_millis(10)
        ));
        assert!(!live(&cache, "AAAAAAAAAA"));
        // Other ids are not affected.
        assert!(cache.insert(paste("BBBBBBBBBB", 10, None), ticket, t0));
    }

    #[test]
    fn forget_drops_a_cached_paste() {
        let cache = PasteCache::new(1 << 20);
        let now = Instant::now();
        cache.insert(paste("AAAAAAAAAA", 10, None), cache.ticket(now), now);
        cache.forget([&id("AAAAAAAAAA")], now);
        assert!(matches!(cache.lookup(&id("AAAAAAAAAA"), 0), Lookup::Miss));
    }

    #[test]
    fn a_reset_refuses_fetches_started_before_it() {
        let cache = PasteCache::new(1 << 20);
        let now = Instant::now();
        cache.insert(paste("AAAAAAAAAA", 10, None), cache.ticket(now), now);
        let before = cache.ticket(now);
        cache.reset();
        assert!(cache.is_empty());
        assert!(!cache.insert(paste("BBBBBBBBBB", 10, None), before, now));
        assert!(cache.insert(paste("BBBBBBBBBB", 10, None), cache.ticket(now), now));
    }

    #[test]
    fn a_fetch_older_than_the_tombstones_is_not_cached() {
        let cache = PasteCache::new(1 << 20);
        let t0 = Instant::now();
        let ticket = cache.ticket(t0);
        assert!(!cache.insert(paste("AAAAAAAAAA", 10, None), ticket, t0 + TOMBSTONE_TTL));
        // Tombstones expire: a later fetch (after the delete) may cache the id.
        cache.forget([&id("BBBBBBBBBB")], t0);
        let later = t0 + TOMBSTONE_TTL;
        cache.forget([], later);
        assert!(cache.insert(paste("BBBBBBBBBB", 10, None), cache.ticket(later), later));
    }
}
