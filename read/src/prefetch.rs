//! Warming the cache with the pastes other webservers created: every
//! `POLL_INTERVAL` a webserver asks sqlsvc `GET /creations?since=N` (one request,
//! whatever the number of pastes) and fetches the texts of the new pastes it does not
//! hold in batches (`POST /texts/batch`), so that their first read here is a hit.
//!
//! Why: round robin sends a read to any webserver, so without this a paste created
//! through one webserver is fetched from sqlsvc and nosqlsvc once by every other
//! webserver that reads it (two store round trips each, 7-14% of reads with 2-4
//! webservers under a 10:1 mix; BENCHMARKS.md). A poll instead costs each webserver
//! two batched requests per interval, whatever the write rate.
//!
//! A webserver also polls early, `MIN_GAP` after the previous poll, when a read
//! missed on a paste that a poll would have brought (one the cache keeps) created in
//! the last `RECENT_SECS` seconds (`Behind`). Such a miss says that pastes are created
//! elsewhere faster than one poll per interval brings them, so the reads that follow
//! would miss on the others too. For `JOIN_WINDOW` after it, a read that misses waits
//! for the poll under way or the next (at most `JOIN_WAIT`) and looks in the cache
//! again before fetching on its own: a burst of such reads then costs one poll, two
//! store round trips in all, instead of two each. This matters most on a host that
//! gets its CPU in slices (a CPU quota): the reads of a whole slice arrive together,
//! and a poll cannot finish before them. Misses on older pastes (evicted, or from
//! before this webserver started) neither hurry polls nor open that window, and
//! neither do creates that nobody reads here: a write-only load polls exactly as often
//! as an idle one. While the window is open, any read that misses waits, whatever its
//! paste (it cannot tell a new paste from an old or unknown one before asking), so a
//! read of an old or unknown id then takes up to one poll longer.
//!
//! It changes nothing about correctness: an insert shows a `Ticket` taken before the
//! poll, exactly like a fetch on a miss, so a paste deleted meanwhile is refused or
//! dropped by the deletion log's next poll (see `invalidation`), and expiry is
//! checked on every hit. A paste the poll skipped (too large for the cache, or
//! created less than an interval ago) is fetched on its first read, as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use contract::meta::{CreationPage, Meta};
use contract::text::MAX_BATCH_PATHS;
use contract::{CallError, MetaClient, PastePath, TextClient};

use crate::cache::{ENTRY_OVERHEAD, PasteCache, may_cache};
use crate::invalidation::SqlsvcHealth;
use crate::{Paste, now_unix};

/// Time between two polls of sqlsvc's creations.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The shortest time between the start of two polls, when reads that miss on new
/// pastes hurry them (`Behind`).
pub const MIN_GAP: Duration = Duration::from_millis(25);

/// A miss on a paste created at most this many seconds ago (by sqlsvc's clock, in
/// whole seconds) hurries the next poll.
pub const RECENT_SECS: i64 = 5;

/// One poll and the text fetches it leads to are abandoned after this long.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// New pastes asked for per poll.
const PAGE_LIMIT: u32 = 1000;

/// Pages drained back to back in one interval, at most: a webserver far behind (a
/// burst of creates) catches up over a few intervals instead of in one long stall.
const MAX_PAGES_PER_TICK: usize = 4;

/// Text bytes asked of nosqlsvc in one batch call, at most (one larger paste goes
/// alone), so an answer stays far below the client's answer limit.
const BATCH_TEXT_BYTES: u64 = 1 << 20;

/// How long after a miss on a new paste the reads that miss join the next poll
/// (`Behind::worth_joining`) instead of each fetching on its own.
pub const JOIN_WINDOW: Duration = Duration::from_secs(1);

/// The longest a read that missed waits for the poll it joined before it fetches on
/// its own (a poll slower than this is behind a slow sqlsvc or nosqlsvc).
pub const JOIN_WAIT: Duration = Duration::from_millis(500);

/// What reads and the follower tell each other. A read that missed on a paste so new
/// that a poll should have brought it hurries the next poll (a signal while a poll
/// runs is kept for the next). For `JOIN_WINDOW` after such a miss, other reads that
/// miss wait for that poll first (`join_next_poll`): when pastes are read as soon as
/// they are created elsewhere, as under a steady load, one poll then brings what a
/// burst of reads would have fetched one by one, two store round trips each.
#[derive(Debug)]
pub struct Behind {
    missed: Notify,
    /// Misses on new pastes since start, for `/healthz`.
    count: AtomicU64,
    /// Reads that missed, joined a poll, and found their paste in the cache after it.
    joined: AtomicU64,
    /// Whether a follower runs (prefetching is on): without one, nothing to join.
    following: AtomicBool,
    /// When the last miss on a new paste was, in ms after `epoch`; 0 for never.
    last_new_miss_ms: AtomicU64,
    epoch: Instant,
    /// Polls started, and the last one finished (the count when it started).
    started: AtomicU64,
    finished: watch::Sender<u64>,
}

impl Default for Behind {
    fn default() -> Self {
        Self {
            missed: Notify::new(),
            count: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            following: AtomicBool::new(false),
            last_new_miss_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            started: AtomicU64::new(0),
            finished: watch::Sender::new(0),
        }
    }
}

impl Behind {
    /// A read missed on a paste created at `created_at` (unix seconds): hurries the
    /// next poll if that is within `RECENT_SECS` of `now`.
    pub fn missed(&self, created_at: i64, now: i64) {
        if created_at >= now - RECENT_SECS {
            self.count.fetch_add(1, Ordering::Relaxed);
            self.behind_now();
            self.missed.notify_one();
        }
    }

    /// Opens (or keeps open) the window in which misses join the next poll.
    fn behind_now(&self) {
        let ms = self.epoch.elapsed().as_millis().max(1);
        self.last_new_miss_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// How many misses on new pastes hurried a poll, since start.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// How many creations polls have started, since start.
    pub fn polls(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// How many reads that missed were answered by the poll they joined.
    pub fn joined(&self) -> u64 {
        self.joined.load(Ordering::Relaxed)
    }

    /// Whether a read that missed should join the next poll: a follower runs and a
    /// read missed on a new paste less than `JOIN_WINDOW` ago. Otherwise (no load
    /// of new pastes: reads of old or unknown ids) it fetches at once, as it would
    /// without prefetching.
    pub fn worth_joining(&self) -> bool {
        let last = self.last_new_miss_ms.load(Ordering::Relaxed);
        self.following.load(Ordering::Relaxed)
            && last != 0
            && self.epoch.elapsed().as_millis() < u128::from(last) + JOIN_WINDOW.as_millis()
    }

    /// Waits until the poll under way has finished (or, if none is, the next one,
    /// hurried), or until `JOIN_WAIT` has passed, whichever comes first. The poll
    /// under way may have asked sqlsvc before the paste was created: then the read
    /// fetches it on its own after all, as without joining.
    pub async fn join_next_poll(&self) {
        let mut finished = self.finished.subscribe();
        let started = self.started.load(Ordering::Acquire);
        let target = if *finished.borrow_and_update() >= started {
            started + 1
        } else {
            started
        };
        self.missed.notify_one();
        let _ = tokio::time::timeout(JOIN_WAIT, finished.wait_for(|&done| done >= target)).await;
    }

    /// A read that joined a poll found its paste after it: pastes are still read as
    /// soon as they are created, so the window stays open.
    pub fn joined_and_found(&self) {
        self.joined.fetch_add(1, Ordering::Relaxed);
        self.behind_now();
    }
}

/// Follows sqlsvc's creations forever (the caller aborts the task at shutdown);
/// `prefetched` counts the pastes it put in the cache. A poll starts `POLL_INTERVAL`
/// after the previous one, or `MIN_GAP` after it when `behind` says reads are missing
/// on new pastes.
pub async fn follow(
    sqlsvc: MetaClient,
    texts: TextClient,
    cache: Arc<PasteCache>,
    health: Arc<SqlsvcHealth>,
    prefetched: Arc<AtomicU64>,
    behind: Arc<Behind>,
) {
    let mut position: Option<u64> = None;
    behind.following.store(true, Ordering::Relaxed);
    // Reads stop joining polls once no follower runs (the task aborted at shutdown).
    let _stopped = StopFollowing(&behind);
    // The first poll at once: it sets the position that later polls follow from.
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        if let Some(last) = last {
            until_next_poll(&behind, last).await;
        }
        last = Some(tokio::time::Instant::now());
        let poll = behind.started.fetch_add(1, Ordering::AcqRel) + 1;
        // Whatever the poll's outcome, the reads that joined it go on after it.
        let _finished = Finished(&behind, poll);
        if health.is_down() {
            // Reads that need sqlsvc fail fast now; do not add to its backlog.
            continue;
        }
        for _ in 0..MAX_PAGES_PER_TICK {
            let poll = poll_once(&sqlsvc, &texts, &cache, &mut position, &prefetched);
            match tokio::time::timeout(POLL_TIMEOUT, poll).await {
                Ok(Ok(true)) => continue,
                Ok(Ok(false)) => break,
                Ok(Err(err)) => {
                    tracing::debug!(%err, "creations poll failed");
                    break;
                }
                Err(_) => {
                    tracing::debug!("creations poll timed out");
                    break;
                }
            }
        }
    }
}

/// Marks poll number `.1` finished when dropped.
struct Finished<'a>(&'a Behind, u64);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        let poll = self.1;
        self.0
            .finished
            .send_modify(|done| *done = (*done).max(poll));
    }
}

/// Marks the follower stopped when dropped.
struct StopFollowing<'a>(&'a Behind);

impl Drop for StopFollowing<'_> {
    fn drop(&mut self) {
        self.0.following.store(false, Ordering::Relaxed);
    }
}

/// Waits until the next poll is due: `POLL_INTERVAL` after the previous one started
/// (`last`), or `MIN_GAP` after it once a read missed on a new paste.
async fn until_next_poll(behind: &Behind, last: tokio::time::Instant) {
    tokio::select! {
        () = tokio::time::sleep_until(last + POLL_INTERVAL) => {}
        () = behind.missed.notified() => tokio::time::sleep_until(last + MIN_GAP).await,
    }
}

/// One poll: caches the new pastes it may and says whether more are waiting. A page
/// whose texts could not all be fetched is passed over all the same (its pastes are
/// fetched on their first read, as without prefetching), so no batch that keeps
/// failing can stop the prefetching of everything after it.
async fn poll_once(
    sqlsvc: &MetaClient,
    texts: &TextClient,
    cache: &PasteCache,
    position: &mut Option<u64>,
    prefetched: &AtomicU64,
) -> Result<bool, CallError> {
    let ticket = cache.ticket(Instant::now());
    let page: CreationPage = sqlsvc.creations(*position, PAGE_LIMIT).await?;
    if position.is_none() {
        // The first poll: follow from the newest paste. Older ones are fetched on
        // their first read, as before.
        *position = Some(page.next);
        return Ok(false);
    }
    let wanted = wanted(page.pastes, cache, now_unix());
    *position = Some(page.next);
    for batch in batches(&wanted) {
        let paths: Vec<PastePath> = batch.iter().map(|m| m.paste_path.clone()).collect();
        let got = texts.get_many(&paths).await?;
        for (meta, text) in batch.iter().zip(got.texts) {
            // None: the text is gone (deleted since); nothing to keep.
            let Some(text) = text else { continue };
            let paste = Arc::new(Paste {
                meta: meta.clone(),
                text: Arc::from(text),
            });
            if cache.insert(paste, ticket, Instant::now()) {
                prefetched.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(page.more)
}

/// The pastes of a page worth fetching: cacheable, live at `now`, small enough for
/// the cache, and not held already (the webserver that created a paste keeps it).
fn wanted(pastes: Vec<Meta>, cache: &PasteCache, now: i64) -> Vec<Meta> {
    let max_text = cache.max_entry().saturating_sub(ENTRY_OVERHEAD) as u64;
    pastes
        .into_iter()
        .filter(|m| {
            may_cache(m)
                && m.expires_at.is_none_or(|t| t > now)
                && m.size.is_some_and(|s| s <= max_text)
                && !cache.contains(&m.paste_id)
        })
        .collect()
}

/// Splits `wanted` into batch calls of at most `MAX_BATCH_PATHS` paths and about
/// `BATCH_TEXT_BYTES` of text each.
fn batches(wanted: &[Meta]) -> Vec<&[Meta]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, meta) in wanted.iter().enumerate() {
        let size = meta.size.unwrap_or(0);
        let full = i - start == MAX_BATCH_PATHS || (i > start && bytes + size > BATCH_TEXT_BYTES);
        if full {
            out.push(&wanted[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < wanted.len() {
        out.push(&wanted[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::PasteId;

    fn meta(n: usize, size: u64) -> Meta {
        Meta {
            paste_id: PasteId::try_from(format!("p{n:09}")).unwrap(),
            paste_path: PastePath::try_from(format!("t{n:09}")).unwrap(),
            created_at: 0,
            expires_at: None,
            size: Some(size),
            burn_after_reading: false,
            unlisted: false,
        }
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let small: Vec<Meta> = (0..2500).map(|n| meta(n, 10)).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);

        let big: Vec<Meta> = (0..5).map(|n| meta(n, 400 * 1024)).collect();
        let sizes: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);

        // A paste larger than a batch goes alone.
        let huge = vec![meta(0, 10), meta(1, 3 << 20), meta(2, 10)];
        let sizes: Vec<usize> = batches(&huge).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1, 1, 1]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn only_misses_on_new_pastes_hurry_the_poll() {
        let behind = Behind::default();
        let now = 1_000;
        behind.missed(now - RECENT_SECS - 1, now);
        assert_eq!(behind.count(), 0, "an old paste");
        behind.missed(now - RECENT_SECS, now);
        behind.missed(now, now);
        // A clock behind sqlsvc's sees a paste created "in the future": new too.
        behind.missed(now + 1, now);
        assert_eq!(behind.count(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn polls_come_every_interval_and_sooner_after_a_miss_on_a_new_paste() {
        let behind = Behind::default();
        let waited = |last: tokio::time::Instant| {
            let behind = &behind;
            async move {
                until_next_poll(behind, last).await;
                last.elapsed()
            }
        };
        let now = tokio::time::Instant::now;
        assert_eq!(waited(now()).await, POLL_INTERVAL, "nothing missed");
        // A miss during a poll (no one waiting) is kept for the next wait, which
        // then ends the minimum gap after the poll started.
        behind.missed(0, 0);
        assert_eq!(waited(now()).await, MIN_GAP);
        assert_eq!(waited(now()).await, POLL_INTERVAL, "the signal was used up");
        // A poll that took longer than the gap: the next one starts at once.
        let last = now();
        tokio::time::sleep(MIN_GAP * 2).await;
        behind.missed(0, 0);
        assert_eq!(waited(last).await, MIN_GAP * 2);
        // A miss while waiting cuts the wait short.
        let last = now();
        let (elapsed, ()) = tokio::join!(waited(last), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            behind.missed(0, 0);
        });
        assert_eq!(elapsed, Duration::from_millis(100));
    }

    #[test]
    fn reads_join_polls_only_while_a_follower_runs_and_new_pastes_miss() {
        let behind = Behind::default();
        assert!(!behind.worth_joining(), "nothing missed yet");
        behind.missed(0, 0);
        assert!(!behind.worth_joining(), "no follower: nothing to join");
        behind.following.store(true, Ordering::Relaxed);
        assert!(behind.worth_joining());
        // An old paste opens no window.
        let fresh = Behind::default();
        fresh.following.store(true, Ordering::Relaxed);
        fresh.missed(0, RECENT_SECS + 1);
        assert!(!fresh.worth_joining());
        fresh.joined_and_found();
        assert!(
            fresh.worth_joining(),
            "a read the poll answered keeps it open"
        );
        assert_eq!(fresh.joined(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_joins_waits_for_the_poll_under_way_or_the_next() {
        let behind = Behind::default();
        let start = tokio::time::Instant::now;
        // No poll under way: it waits for the next one to finish.
        let t0 = start();
        let (_, ()) = tokio::join!(behind.join_next_poll(), async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let poll = behind.started.fetch_add(1, Ordering::AcqRel) + 1;
            drop(Finished(&behind, poll));
        });
        assert_eq!(t0.elapsed(), Duration::from_millis(30));
        // A poll under way (started, not finished): it waits for that one.
        let poll = behind.started.fetch_add(1, Ordering::AcqRel) + 1;
        let t0 = start();
        let (_, ()) = tokio::join!(behind.join_next_poll(), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(Finished(&behind, poll));
        });
        assert_eq!(t0.elapsed(), Duration::from_millis(20));
        // No poll comes (the follower is stuck): it gives up after JOIN_WAIT.
        let t0 = start();
        behind.join_next_poll().await;
        assert_eq!(t0.elapsed(), JOIN_WAIT);
    }

    #[test]
    fn only_cacheable_live_small_unheld_pastes_are_wanted() {
        let cache = PasteCache::new(1 << 20);
        let held = meta(1, 10);
        let ticket = cache.ticket(Instant::now());
        assert!(cache.insert(
            Arc::new(Paste {
                meta: held.clone(),
                text: Arc::from("0123456789"),
            }),
            ticket,
            Instant::now()
        ));
        let mut burn = meta(2, 10);
        burn.burn_after_reading = true;
        let mut expired = meta(3, 10);
        expired.expires_at = Some(100);
        let mut later = meta(4, 10);
        later.expires_at = Some(101);
        let too_big = meta(5, cache.max_entry() as u64);
        let mut unknown_size = meta(6, 0);
        unknown_size.size = None;
        let fresh = meta(7, 10);
        let got = wanted(
            vec![held, burn, expired, later, too_big, unknown_size, fresh],
            &cache,
            100,
        );
        let ids: Vec<String> = got.iter().map(|m| m.paste_id.to_string()).collect();
        assert_eq!(ids, ["p000000004", "p000000007"]);
    }
}
