//! The SQLite side: opening the writer and reader connections with their pragmas, and
//! the read/delete queries (creates live in `writer`, which group-commits them).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row, params};
use tokio_rusqlite::Connection;

use crate::api::{CreationPage, DeletionPage, Meta, PasteId, PastePath, PasteStats, ViewCount};
use crate::error::Error;
use crate::migrations;

/// How long a connection waits for a lock held by another before failing.
const BUSY_TIMEOUT_MS: i64 = 5_000;

/// Deletion-log rows kept; older ones are pruned, and a webserver that fell further
/// behind than this is told to forget its whole cache (`reset`).
pub(crate) const DELETION_LOG_KEEP: i64 = 100_000;

/// Reader connections by default: one per core (each is a thread that runs queries),
/// at least two so one slow query does not hold up the rest.
pub fn default_readers() -> usize {
    contract::defaults::sqlsvc_readers()
}

/// The columns of `Meta`, in the order `meta_from_row` reads them.
pub(crate) const META_COLUMNS: &str =
    "paste_id, paste_path, created_at, expires_at, size, burn, unlisted";

/// The column after `META_COLUMNS` in a query that selects more.
const AFTER_META: usize = 7;

/// The database handles: one writer (creates and deletes) and `readers` readers. In
/// WAL mode readers never wait for the writer, so reads run in parallel with each
/// other and with the group commit's fsyncs.
pub(crate) struct Db {
    pub(crate) writer: Connection,
    readers: Vec<Reader>,
}

/// A reader connection and the number of calls queued on it.
struct Reader {
    conn: Connection,
    in_flight: AtomicUsize,
}

/// Counts a call on a reader until it is answered or abandoned.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Db {
    /// Opens the writer (WAL, `synchronous=FULL`), migrates, then opens `readers`
    /// reader connections (at least one).
    pub(crate) async fn open(path: &Path, readers: usize) -> Result<Self, Error> {
        let open_err = |source| Error::Open {
            path: path.to_owned(),
            source,
        };
        let writer = Connection::open(path).await.map_err(open_err)?;
        writer
            .call(|conn| {
                // journal_mode answers with a row, so it is read, not just set.
                let mode: String =
                    conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
                if !mode.eq_ignore_ascii_case("wal") {
                    return Err(rusqlite::Error::InvalidParameterName(format!(
                        "journal_mode is {mode}, WAL refused"
                    )));
                }
                // FULL: every commit fsyncs the WAL, so a 201 means the row is durable.
                conn.pragma_update(None, "synchronous", "FULL")?;
                conn.pragma_update(None, "busy_timeout", BUSY_TIMEOUT_MS)?;
                Ok(())
            })
            .await
            .map_err(|err| open_err(flatten(err)))?;
        writer
            .call(migrations::migrate)
            .await
            .map_err(|err| match err {
                tokio_rusqlite::Error::Error(msg) => Error::Migration(msg),
                other => Error::Migration(other.to_string()),
            })?;

        let count = readers.max(1);
        let mut readers = Vec::with_capacity(count);
        for _ in 0..count {
            let reader = Connection::open(path).await.map_err(open_err)?;
            reader
                .call(|conn| {
                    conn.pragma_update(None, "busy_timeout", BUSY_TIMEOUT_MS)?;
                    conn.pragma_update(None, "query_only", true)?;
                    Ok(())
                })
                .await
                .map_err(|err| open_err(flatten(err)))?;
            readers.push(Reader {
                conn: reader,
                in_flight: AtomicUsize::new(0),
            });
        }
        Ok(Self { writer, readers })
    }

    /// Runs `f` on the reader with the fewest calls queued, so a slow query holds up
    /// only its own connection.
    pub(crate) async fn read<F, R>(&self, f: F) -> Result<R, tokio_rusqlite::Error>
    where
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let reader = self
            .readers
            .iter()
            .min_by_key(|r| r.in_flight.load(Ordering::Relaxed));
        let Some(reader) = reader else {
            // `open` always makes at least one reader; the writer serves regardless.
            return self.writer.call(f).await;
        };
        reader.in_flight.fetch_add(1, Ordering::Relaxed);
        let _guard = InFlight(&reader.in_flight);
        reader.conn.call(f).await
    }

    /// How many reader connections there are.
    pub(crate) fn readers(&self) -> usize {
        self.readers.len()
    }

    /// Closes the readers, then the writer last, so that its close checkpoints the WAL
    /// into the main file and removes it.
    pub(crate) async fn close(&self) -> Result<(), Error> {
        let mut failures = Vec::new();
        for reader in self.readers.iter().map(|r| r.conn.clone()) {
            if let Err(err) = reader.close().await {
                failures.push(format!("reader: {err}"));
            }
        }
        let optimized = self
            .writer
            .call(|conn| conn.execute_batch("PRAGMA optimize"))
            .await;
        if let Err(err) = optimized {
            tracing::warn!(%err, "PRAGMA optimize failed");
        }
        if let Err(err) = self.writer.clone().close().await {
            failures.push(format!("writer: {err}"));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::Close(failures.join("; ")))
        }
    }
}

/// The rusqlite error inside a tokio-rusqlite one.
fn flatten(err: tokio_rusqlite::Error) -> rusqlite::Error {
    match err {
        tokio_rusqlite::Error::Error(e) => e,
        tokio_rusqlite::Error::Close((_, e)) => e,
        other => rusqlite::Error::InvalidParameterName(other.to_string()),
    }
}

/// Reads a `Meta` from a row holding `META_COLUMNS` first.
pub(crate) fn meta_from_row(row: &Row<'_>) -> rusqlite::Result<Meta> {
    let id: String = row.get(0)?;
    let paste_id = PasteId::try_from(id)
        .map_err(|err| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(err)))?;
    let size = row
        .get::<_, Option<i64>>(4)?
        .map(u64::try_from)
        .transpose()
        .map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(4, Type::Integer, Box::new(err))
        })?;
    Ok(Meta {
        paste_id,
        paste_path: PastePath::try_from(row.get::<_, String>(1)?).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(1, Type::Text, Box::new(err))
        })?,
        created_at: row.get(2)?,
        expires_at: row.get(3)?,
        size,
        burn_after_reading: row.get::<_, i64>(5)? != 0,
        unlisted: row.get::<_, i64>(6)? != 0,
    })
}

/// The live (not expired at `now`) paste with this id.
pub(crate) fn get(
    conn: &rusqlite::Connection,
    id: &PasteId,
    now: i64,
) -> rusqlite::Result<Option<Meta>> {
    conn.prepare_cached(&format!(
        "SELECT {META_COLUMNS} FROM pastes \
         WHERE paste_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)"
    ))?
    .query_row(params![id.as_str(), now], meta_from_row)
    .optional()
}

/// Up to `limit` live pastes with `seq < before`, newest first, and the `seq` to
/// continue from when more rows may follow.
/// A page stops before its texts pass this many bytes (but holds at least one paste),
/// so that listing 500 large pastes cannot make the services above it build answers
/// of hundreds of megabytes.
pub(crate) const PAGE_TEXT_BUDGET: u64 = httpkit::limits::PAGE_BUDGET_BYTES as u64;

#[cfg(test)]
pub(crate) fn list(
    conn: &rusqlite::Connection,
    before: Option<i64>,
    limit: u32,
    now: i64,
) -> rusqlite::Result<(Vec<Meta>, Option<i64>)> {
    let (rows, next) = list_with_seqs(conn, before, limit, now)?;
    Ok((rows.into_iter().map(|(meta, _)| meta).collect(), next))
}

/// Rows with their `seq`, and the `seq` to continue from when more may follow.
pub(crate) type RowsAndNext = (Vec<(Meta, i64)>, Option<i64>);

/// Like `list`, with the `seq` of every row, so each row gets a cursor of its own.
pub(crate) fn list_with_seqs(
    conn: &rusqlite::Connection,
    before: Option<i64>,
    limit: u32,
    now: i64,
) -> rusqlite::Result<RowsAndNext> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {META_COLUMNS}, seq FROM pastes \
         WHERE seq < ?1 AND (expires_at IS NULL OR expires_at > ?2) \
         AND unlisted = 0 AND burn = 0 \
         ORDER BY seq DESC LIMIT ?3"
    ))?;
    // One row more than asked tells whether there is a next page.
    let rows = stmt.query_map(
        params![before.unwrap_or(i64::MAX), now, i64::from(limit) + 1],
        |row| Ok((meta_from_row(row)?, row.get::<_, i64>(AFTER_META)?)),
    )?;
    let mut pastes = Vec::new();
    let mut last_seq = None;
    let mut more = false;
    let mut text_bytes = 0u64;
    for row in rows {
        let (meta, seq) = row?;
        let size = meta.size.unwrap_or(0);
        if pastes.len() == limit as usize
            || (!pastes.is_empty() && text_bytes.saturating_add(size) > PAGE_TEXT_BUDGET)
        {
            more = true;
            break;
        }
        text_bytes = text_bytes.saturating_add(size);
        pastes.push((meta, seq));
        last_seq = Some(seq);
    }
    Ok((pastes, if more { last_seq } else { None }))
}

/// SHA-256 of a delete token: what is stored, and what a presented token is compared
/// against.
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest;
    #[cfg(test)]
    tests::WORK.with(|w| w.borrow_mut().push("hash"));
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// Equal, in a time that depends only on the lengths (both 32 here), so the answer
/// time tells nothing about how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    #[cfg(test)]
    tests::WORK.with(|w| w.borrow_mut().push("compare"));
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a presented token is compared with when there is no hash to compare it with
/// (no such live paste, or a row from before delete tokens): no token hashes to it
/// (finding one would mean breaking SHA-256), and comparing with it costs what a real
/// comparison does.
const NO_HASH: [u8; 32] = [0; 32];

/// Who asks for a delete.
#[derive(Debug, Clone)]
pub(crate) enum Deleter {
    /// A holder of the delete token: it must match the stored hash.
    Token(String),
    /// An operator on the private network (no token).
    Operator,
}

/// Deletes the live paste with this id and returns it, if `who` may. A wrong token
/// and an unknown id both give `None`: the caller answers both alike. The row's id
/// goes to the deletion log and its text to the trash in the same transaction (see
/// `remove_row`). An expired row is left for the sweeper and reported as absent.
pub(crate) fn delete(
    conn: &rusqlite::Connection,
    id: &PasteId,
    now: i64,
    who: &Deleter,
) -> rusqlite::Result<Option<Meta>> {
    // The presented token is hashed before the lookup, and compared whether or not
    // a row was found: an unknown id and a wrong token cost the same work, so the
    // answer time tells a prober nothing about which ids exist.
    let presented = match who {
        Deleter::Token(token) => Some(token_hash(token)),
        Deleter::Operator => None,
    };
    let tx = conn.unchecked_transaction()?;
    let found = tx
        .prepare_cached(&format!(
            "SELECT {META_COLUMNS}, delete_hash FROM pastes \
             WHERE paste_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)"
        ))?
        .query_row(params![id.as_str(), now], |row| {
            Ok((
                meta_from_row(row)?,
                row.get::<_, Option<Vec<u8>>>(AFTER_META)?,
            ))
        })
        .optional()?;
    let allowed = match presented {
        None => found.is_some(),
        Some(presented) => {
            // Rows from before delete tokens have no hash: no token opens them.
            let stored = found.as_ref().and_then(|(_, h)| h.as_deref());
            let matches = constant_time_eq(stored.unwrap_or(&NO_HASH), &presented);
            matches && stored.is_some()
        }
    };
    let Some((meta, _)) = found.filter(|_| allowed) else {
        return Ok(None);
    };
    remove_row(&tx, &meta, now)?;
    tx.commit()?;
    Ok(Some(meta))
}

/// Claims a live burn-after-reading paste: removes it and returns it to exactly one
/// caller; every other (and any paste that is not burn-after-reading) gets `None`.
/// Runs on the writer, so two claims are serialized and the second finds no row.
pub(crate) fn claim(
    conn: &rusqlite::Connection,
    id: &PasteId,
    now: i64,
) -> rusqlite::Result<Option<Meta>> {
    let tx = conn.unchecked_transaction()?;
    let claimed = tx
        .prepare_cached(&format!(
            "SELECT {META_COLUMNS} FROM pastes \
             WHERE paste_id = ?1 AND burn = 1 AND (expires_at IS NULL OR expires_at > ?2)"
        ))?
        .query_row(params![id.as_str(), now], meta_from_row)
        .optional()?;
    if let Some(meta) = &claimed {
        remove_row(&tx, meta, now)?;
    }
    tx.commit()?;
    Ok(claimed)
}

/// Removes one row inside `tx`: the row, its views, its id into the deletion log
/// (so webservers drop cached copies) and its text into the trash (so the sweeper
/// deletes it from nosqlsvc).
fn remove_row(tx: &rusqlite::Transaction<'_>, meta: &Meta, now: i64) -> rusqlite::Result<()> {
    let id = meta.paste_id.as_str();
    tx.prepare_cached("DELETE FROM pastes WHERE paste_id = ?1")?
        .execute(params![id])?;
    tx.prepare_cached("DELETE FROM views WHERE paste_id = ?1")?
        .execute(params![id])?;
    tx.prepare_cached(
        "INSERT INTO text_trash (paste_path, since) VALUES (?1, ?2) \
         ON CONFLICT (paste_path) DO NOTHING",
    )?
    .execute(params![meta.paste_path.as_str(), now])?;
    tx.prepare_cached("INSERT INTO deletions (paste_id, deleted_at) VALUES (?1, ?2)")?
        .execute(params![id, now])?;
    let seq = tx.last_insert_rowid();
    tx.prepare_cached("DELETE FROM deletions WHERE seq <= ?1")?
        .execute(params![seq - DELETION_LOG_KEEP])?;
    Ok(())
}

/// Removes up to `limit` rows expired at `now` (as `remove_row` does, in one
/// transaction) and returns how many.
pub(crate) fn sweep_expired(
    conn: &rusqlite::Connection,
    now: i64,
    limit: u32,
) -> rusqlite::Result<usize> {
    let tx = conn.unchecked_transaction()?;
    let expired: Vec<Meta> = tx
        .prepare_cached(&format!(
            "SELECT {META_COLUMNS} FROM pastes \
             WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2"
        ))?
        .query_map(params![now, limit], meta_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for meta in &expired {
        remove_row(&tx, meta, now)?;
    }
    tx.commit()?;
    Ok(expired.len())
}

/// Up to `limit` texts waiting in the trash, oldest first.
pub(crate) fn trash_batch(
    conn: &rusqlite::Connection,
    limit: u32,
) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT paste_path FROM text_trash ORDER BY since LIMIT ?1")?
        .query_map(params![limit], |r| r.get(0))?
        .collect()
}

/// Forgets trash entries whose texts nosqlsvc has deleted.
pub(crate) fn trash_done(conn: &rusqlite::Connection, paths: &[String]) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare_cached("DELETE FROM text_trash WHERE paste_path = ?1")?;
        for path in paths {
            stmt.execute(params![path])?;
        }
    }
    tx.commit()
}

/// For each path, whether a row (live or expired but not yet swept) points at it.
pub(crate) fn referenced(
    conn: &rusqlite::Connection,
    paths: &[String],
) -> rusqlite::Result<Vec<bool>> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM pastes WHERE paste_path = ?1 LIMIT 1")?;
    paths
        .iter()
        .map(|p| Ok(stmt.query_row(params![p], |_| Ok(())).optional()?.is_some()))
        .collect()
}

/// Adds view counts to the pastes that still exist; returns how many entries applied.
pub(crate) fn add_views(
    conn: &rusqlite::Connection,
    counts: &[ViewCount],
) -> rusqlite::Result<usize> {
    let tx = conn.unchecked_transaction()?;
    let mut applied = 0;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO views (paste_id, month, views) \
             SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM pastes WHERE paste_id = ?1) \
             ON CONFLICT (paste_id, month) DO UPDATE SET views = views + excluded.views",
        )?;
        for c in counts {
            let n = i64::try_from(c.count).unwrap_or(i64::MAX);
            applied += stmt.execute(params![c.paste_id.as_str(), c.month, n])?;
        }
    }
    tx.commit()?;
    Ok(applied)
}

/// The view counts of a live paste.
pub(crate) fn stats(
    conn: &rusqlite::Connection,
    id: &PasteId,
    now: i64,
) -> rusqlite::Result<Option<PasteStats>> {
    let tx = conn.unchecked_transaction()?;
    let live = tx
        .prepare_cached(
            "SELECT 1 FROM pastes WHERE paste_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
        )?
        .query_row(params![id.as_str(), now], |_| Ok(()))
        .optional()?
        .is_some();
    if !live {
        return Ok(None);
    }
    let mut stats = PasteStats {
        views: 0,
        monthly: Default::default(),
    };
    let mut stmt = tx.prepare_cached("SELECT month, views FROM views WHERE paste_id = ?1")?;
    let rows = stmt.query_map(params![id.as_str()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (month, n) = row?;
        let n = u64::try_from(n).unwrap_or(0);
        stats.views = stats.views.saturating_add(n);
        stats.monthly.insert(month, n);
    }
    Ok(Some(stats))
}

/// Rows in the metadata table (expired ones not yet swept included), and texts in
/// the trash.
pub(crate) fn counts(conn: &rusqlite::Connection) -> rusqlite::Result<(u64, u64)> {
    let count = |sql: &str| -> rusqlite::Result<u64> {
        let n: i64 = conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    Ok((
        count("SELECT COUNT(*) FROM pastes")?,
        count("SELECT COUNT(*) FROM text_trash")?,
    ))
}

/// The deletions after log position `since` (at most `limit`), read in one snapshot.
pub(crate) fn deletions(
    conn: &rusqlite::Connection,
    since: Option<u64>,
    limit: u32,
) -> rusqlite::Result<DeletionPage> {
    let tx = conn.unchecked_transaction()?;
    let epoch: i64 = tx
        .prepare_cached("SELECT epoch FROM log_epoch LIMIT 1")?
        .query_row([], |r| r.get(0))?;
    let head: i64 = tx
        .prepare_cached(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'deletions'), 0)",
        )?
        .query_row([], |r| r.get(0))?;
    let oldest: Option<i64> = tx
        .prepare_cached("SELECT MIN(seq) FROM deletions")?
        .query_row([], |r| r.get(0))?;
    let to_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
    let epoch = to_u64(epoch);
    let head_u = to_u64(head);
    let reset_page = DeletionPage {
        epoch,
        reset: true,
        ids: Vec::new(),
        next: head_u,
        more: false,
    };
    let Some(since) = since else {
        return Ok(reset_page);
    };
    if since > head_u {
        return Ok(reset_page);
    }
    if since < head_u && oldest.is_none_or(|o| to_u64(o) > since + 1) {
        // Rows the caller has not seen were pruned.
        return Ok(reset_page);
    }
    let since_i = i64::try_from(since).unwrap_or(i64::MAX);
    let mut stmt = tx.prepare_cached(
        "SELECT seq, paste_id FROM deletions WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![since_i, i64::from(limit) + 1], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut ids = Vec::new();
    let mut next = since;
    let mut more = false;
    for row in rows {
        let (seq, id) = row?;
        if ids.len() == limit as usize {
            more = true;
            break;
        }
        next = to_u64(seq);
        // Only valid ids are ever logged; a bad one would be skipped, not fatal.
        if let Ok(id) = PasteId::try_from(id) {
            ids.push(id);
        }
    }
    Ok(DeletionPage {
        epoch,
        reset: false,
        ids,
        next,
        more,
    })
}

/// The pastes a webserver may cache that were created after insertion number
/// `since` (their `seq`), oldest first, at most `limit`: not burn-after-reading, not
/// expired at `now`. Without `since`, no pastes and the newest number, to follow
/// from. A `seq` freed by deleting the newest rows can be handed out again, so a
/// follower may skip a paste: it then misses once, which is never wrong.
pub(crate) fn creations(
    conn: &rusqlite::Connection,
    since: Option<u64>,
    limit: u32,
    now: i64,
) -> rusqlite::Result<CreationPage> {
    let to_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
    let Some(since) = since else {
        let head: i64 = conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM pastes")?
            .query_row([], |r| r.get(0))?;
        return Ok(CreationPage {
            pastes: Vec::new(),
            next: to_u64(head),
            more: false,
        });
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {META_COLUMNS}, seq FROM pastes WHERE seq > ?1 \
         AND burn = 0 AND (expires_at IS NULL OR expires_at > ?2) \
         ORDER BY seq LIMIT ?3"
    ))?;
    let since_i = i64::try_from(since).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![since_i, now, i64::from(limit) + 1], |row| {
        Ok((meta_from_row(row)?, row.get::<_, i64>(AFTER_META)?))
    })?;
    let mut pastes = Vec::new();
    let mut next = since;
    let mut more = false;
    for row in rows {
        let (meta, seq) = row?;
        if pastes.len() == limit as usize {
            more = true;
            break;
        }
        next = to_u64(seq);
        pastes.push(meta);
    }
    Ok(CreationPage { pastes, next, more })
}

/// A trivial query that touches the table, for the health check.
pub(crate) fn ping(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.prepare_cached("SELECT 1 FROM pastes LIMIT 1")?
        .query_row([], |_| Ok(()))
        .optional()
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        migrations::migrate(&mut conn).unwrap();
        conn
    }

    fn insert(conn: &rusqlite::Connection, id: &str, seq: i64, expires: Option<i64>) {
        conn.execute(
            "INSERT INTO pastes (paste_id, paste_path, created_at, expires_at, size, seq) \
             VALUES (?1, 'path', 100, ?2, 5, ?3)",
            params![id, expires, seq],
        )
        .unwrap();
    }

    #[test]
    fn listing_is_newest_first_and_skips_expired() {
        let conn = db();
        insert(&conn, "aaaaaaaaa1", 1, None);
        insert(&conn, "aaaaaaaaa2", 2, Some(50));
        insert(&conn, "aaaaaaaaa3", 3, Some(500));
        insert(&conn, "aaaaaaaaa4", 4, None);
        let (page, next) = list(&conn, None, 2, 100).unwrap();
        let ids: Vec<_> = page.iter().map(|m| m.paste_id.to_string()).collect();
        assert_eq!(ids, ["aaaaaaaaa4", "aaaaaaaaa3"]);
        assert_eq!(next, Some(3));
        let (page, next) = list(&conn, next, 2, 100).unwrap();
        let ids: Vec<_> = page.iter().map(|m| m.paste_id.to_string()).collect();
        assert_eq!(ids, ["aaaaaaaaa1"]);
        assert_eq!(next, None);
    }

    #[test]
    fn a_page_stops_at_the_text_budget_but_holds_at_least_one_paste() {
        let conn = db();
        let big = (PAGE_TEXT_BUDGET / 2 + 1) as i64;
        for seq in 1..=4 {
            conn.execute(
                "INSERT INTO pastes (paste_id, paste_path, created_at, expires_at, size, seq) \
                 VALUES (?1, 'path', 100, NULL, ?2, ?3)",
                params![format!("bbbbbbbbb{seq}"), big, seq],
            )
            .unwrap();
        }
        // Two halves-plus-one do not fit: one paste a page, each page linked on.
        let (page, next) = list(&conn, None, 500, 0).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(next, Some(4));
        let (page, next) = list(&conn, Some(2), 500, 0).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(next, None);
    }

    #[test]
    fn listing_uses_the_seq_index() {
        let conn = db();
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT paste_id FROM pastes \
                 WHERE seq < ?1 AND (expires_at IS NULL OR expires_at > ?2) \
                 AND unlisted = 0 AND burn = 0 \
                 ORDER BY seq DESC LIMIT ?3",
            )
            .unwrap()
            .query_map(params![10, 0, 5], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("pastes_listed"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn creations_follow_seq_and_leave_out_burn_and_expired() {
        let conn = db();
        let start = creations(&conn, None, 10, 100).unwrap();
        assert_eq!((start.pastes.len(), start.next, start.more), (0, 0, false));
        insert(&conn, "ddddddddd1", 1, None);
        insert(&conn, "ddddddddd2", 2, Some(50)); // expired at 100
        insert(&conn, "ddddddddd3", 3, Some(500));
        insert(&conn, "ddddddddd4", 4, None);
        insert(&conn, "ddddddddd5", 5, None);
        conn.execute("UPDATE pastes SET burn = 1 WHERE seq = 4", [])
            .unwrap();
        let ids = |page: &CreationPage| -> Vec<String> {
            page.pastes.iter().map(|m| m.paste_id.to_string()).collect()
        };
        let page = creations(&conn, Some(0), 2, 100).unwrap();
        assert_eq!(ids(&page), ["ddddddddd1", "ddddddddd3"]);
        assert_eq!((page.next, page.more), (3, true));
        let page = creations(&conn, Some(page.next), 2, 100).unwrap();
        assert_eq!(ids(&page), ["ddddddddd5"]);
        assert_eq!((page.next, page.more), (5, false));
        let page = creations(&conn, Some(5), 2, 100).unwrap();
        assert!(page.pastes.is_empty() && page.next == 5 && !page.more);
        // Without a position: nothing, and where to follow from.
        let page = creations(&conn, None, 2, 100).unwrap();
        assert!(page.pastes.is_empty() && page.next == 5);
    }

    #[test]
    fn deletions_are_logged_in_order_and_paged() {
        let conn = db();
        for (seq, id) in ["ccccccccc1", "ccccccccc2", "ccccccccc3"]
            .iter()
            .enumerate()
        {
            insert(&conn, id, seq as i64 + 1, None);
        }
        let first = deletions(&conn, None, 10).unwrap();
        assert!(first.reset);
        assert_eq!(first.next, 0);
        for id in ["ccccccccc2", "ccccccccc1", "ccccccccc3"] {
            assert!(
                delete(&conn, &id.parse().unwrap(), 0, &Deleter::Operator)
                    .unwrap()
                    .is_some()
            );
        }
        // Deleting again logs nothing.
        assert!(
            delete(&conn, &"ccccccccc2".parse().unwrap(), 0, &Deleter::Operator)
                .unwrap()
                .is_none()
        );
        let page = deletions(&conn, Some(0), 2).unwrap();
        let ids: Vec<_> = page.ids.iter().map(|i| i.to_string()).collect();
        assert_eq!(ids, ["ccccccccc2", "ccccccccc1"]);
        assert_eq!((page.next, page.more, page.reset), (2, true, false));
        assert_eq!(page.epoch, first.epoch);
        let page = deletions(&conn, Some(2), 2).unwrap();
        assert_eq!(page.ids.len(), 1);
        assert_eq!((page.next, page.more), (3, false));
        let page = deletions(&conn, Some(3), 2).unwrap();
        assert!(page.ids.is_empty() && !page.reset && page.next == 3);
        // A position ahead of the log (another database) means: forget everything.
        let page = deletions(&conn, Some(9), 2).unwrap();
        assert!(page.reset && page.next == 3);
    }

    #[test]
    fn a_caller_behind_the_pruned_log_is_told_to_reset() {
        let conn = db();
        insert(&conn, "ddddddddd1", 1, None);
        insert(&conn, "ddddddddd2", 2, None);
        delete(&conn, &"ddddddddd1".parse().unwrap(), 0, &Deleter::Operator).unwrap();
        delete(&conn, &"ddddddddd2".parse().unwrap(), 0, &Deleter::Operator).unwrap();
        conn.execute("DELETE FROM deletions WHERE seq = 1", [])
            .unwrap();
        assert!(deletions(&conn, Some(0), 10).unwrap().reset);
        let page = deletions(&conn, Some(1), 10).unwrap();
        assert!(!page.reset && page.ids.len() == 1);
    }

    #[test]
    fn get_and_delete_ignore_expired_rows() {
        let conn = db();
        insert(&conn, "bbbbbbbbb1", 1, Some(50));
        let id: PasteId = "bbbbbbbbb1".parse().unwrap();
        assert_eq!(get(&conn, &id, 49).unwrap().unwrap().size, Some(5));
        assert!(get(&conn, &id, 50).unwrap().is_none());
        assert!(
            delete(&conn, &id, 50, &Deleter::Operator)
                .unwrap()
                .is_none()
        );
        assert!(
            delete(&conn, &id, 49, &Deleter::Operator)
                .unwrap()
                .is_some()
        );
        assert!(get(&conn, &id, 0).unwrap().is_none());
    }

    fn insert_full(
        conn: &rusqlite::Connection,
        id: &str,
        seq: i64,
        token: Option<&str>,
        burn: bool,
        unlisted: bool,
    ) {
        conn.execute(
            "INSERT INTO pastes (paste_id, paste_path, created_at, expires_at, size, seq, delete_hash, burn, unlisted) \
             VALUES (?1, ?2, 100, NULL, 5, ?3, ?4, ?5, ?6)",
            params![id, format!("path_{id}"), seq, token.map(|t| token_hash(t).to_vec()), burn, unlisted],
        )
        .unwrap();
    }

    fn trash(conn: &rusqlite::Connection) -> Vec<String> {
        trash_batch(conn, 1000).unwrap()
    }

    thread_local! {
        /// What `token_hash` and `constant_time_eq` did on this thread, in order.
        pub(super) static WORK: std::cell::RefCell<Vec<&'static str>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// The token work `f` did.
    fn token_work(f: impl FnOnce()) -> Vec<&'static str> {
        WORK.with(|w| w.borrow_mut().clear());
        f();
        WORK.with(|w| std::mem::take(&mut *w.borrow_mut()))
    }

    #[test]
    fn an_unknown_id_costs_the_same_token_work_as_a_wrong_token() {
        let conn = db();
        insert_full(&conn, "fffffffff1", 1, Some("secret"), false, false);
        insert_full(&conn, "fffffffff2", 2, None, false, false);
        let try_delete = |id: &str, token: &str| {
            let id: PasteId = id.parse().unwrap();
            token_work(|| {
                assert!(
                    delete(&conn, &id, 0, &Deleter::Token(token.into()))
                        .unwrap()
                        .is_none()
                );
            })
        };
        let wrong = try_delete("fffffffff1", "guess");
        assert_eq!(wrong, ["hash", "compare"]);
        assert_eq!(try_delete("ZZZZZZZZZZ", "guess"), wrong, "unknown id");
        assert_eq!(
            try_delete("fffffffff2", "guess"),
            wrong,
            "row without a hash"
        );
    }

    #[test]
    fn a_delete_needs_the_right_token_and_a_wrong_one_looks_like_an_unknown_id() {
        let conn = db();
        insert_full(&conn, "eeeeeeeee1", 1, Some("secret"), false, false);
        insert_full(&conn, "eeeeeeeee2", 2, None, false, false);
        let id: PasteId = "eeeeeeeee1".parse().unwrap();
        for wrong in ["", "Secret", "secret ", "x"] {
            assert!(
                delete(&conn, &id, 0, &Deleter::Token(wrong.into()))
                    .unwrap()
                    .is_none()
            );
        }
        assert!(get(&conn, &id, 0).unwrap().is_some());
        assert!(trash(&conn).is_empty());
        // A row without a hash opens to no token, only to an operator.
        let old: PasteId = "eeeeeeeee2".parse().unwrap();
        assert!(
            delete(&conn, &old, 0, &Deleter::Token("secret".into()))
                .unwrap()
                .is_none()
        );
        let gone = delete(&conn, &id, 7, &Deleter::Token("secret".into()))
            .unwrap()
            .unwrap();
        assert_eq!(gone.paste_path.as_str(), "path_eeeeeeeee1");
        assert!(get(&conn, &id, 0).unwrap().is_none());
        assert_eq!(trash(&conn), ["path_eeeeeeeee1"]);
        let log = deletions(&conn, Some(0), 10).unwrap();
        assert_eq!(log.ids, [id]);
    }

    #[test]
    fn a_burn_paste_is_claimed_once_and_only_burn_pastes_are() {
        let conn = db();
        insert_full(&conn, "fffffffff1", 1, None, true, false);
        insert_full(&conn, "fffffffff2", 2, None, false, false);
        let burn: PasteId = "fffffffff1".parse().unwrap();
        let plain: PasteId = "fffffffff2".parse().unwrap();
        assert!(claim(&conn, &plain, 0).unwrap().is_none());
        assert!(get(&conn, &plain, 0).unwrap().is_some());
        let won = claim(&conn, &burn, 0).unwrap().unwrap();
        assert!(won.burn_after_reading);
        assert!(claim(&conn, &burn, 0).unwrap().is_none());
        assert_eq!(trash(&conn), ["path_fffffffff1"]);
    }

    #[test]
    fn unlisted_and_burn_pastes_are_not_listed() {
        let conn = db();
        insert_full(&conn, "ggggggggg1", 1, None, false, false);
        insert_full(&conn, "ggggggggg2", 2, None, false, true);
        insert_full(&conn, "ggggggggg3", 3, None, true, false);
        let (page, _) = list(&conn, None, 10, 0).unwrap();
        let ids: Vec<_> = page.iter().map(|m| m.paste_id.to_string()).collect();
        assert_eq!(ids, ["ggggggggg1"]);
        let unlisted = get(&conn, &"ggggggggg2".parse().unwrap(), 0)
            .unwrap()
            .unwrap();
        assert!(unlisted.unlisted);
    }

    #[test]
    fn the_sweep_removes_expired_rows_in_bounded_batches() {
        let conn = db();
        for seq in 1..=5 {
            insert(&conn, &format!("hhhhhhhhh{seq}"), seq, Some(50));
        }
        insert(&conn, "hhhhhhhhh9", 9, Some(500));
        assert_eq!(sweep_expired(&conn, 100, 2).unwrap(), 2);
        assert_eq!(sweep_expired(&conn, 100, 2).unwrap(), 2);
        assert_eq!(sweep_expired(&conn, 100, 2).unwrap(), 1);
        assert_eq!(sweep_expired(&conn, 100, 2).unwrap(), 0);
        assert_eq!(counts(&conn).unwrap(), (1, 1));
        // Five rows share one path here: the trash holds it once.
        assert_eq!(trash(&conn), ["path"]);
        trash_done(&conn, &["path".into()]).unwrap();
        assert!(trash(&conn).is_empty());
        assert_eq!(
            referenced(&conn, &["path".into(), "nope".into()]).unwrap(),
            [true, false]
        );
    }

    #[test]
    fn views_count_for_live_pastes_and_go_with_them() {
        let conn = db();
        insert_full(&conn, "iiiiiiiii1", 1, Some("t"), false, false);
        let id: PasteId = "iiiiiiiii1".parse().unwrap();
        let unknown: PasteId = "iiiiiiiii2".parse().unwrap();
        let v = |id: &PasteId, month: &str, count| ViewCount {
            paste_id: id.clone(),
            month: month.into(),
            count,
        };
        let applied = add_views(
            &conn,
            &[
                v(&id, "2026-11", 3),
                v(&id, "2026-12", 1),
                v(&unknown, "2026-11", 5),
            ],
        )
        .unwrap();
        assert_eq!(applied, 2);
        add_views(&conn, &[v(&id, "2026-11", 2)]).unwrap();
        let stats = stats(&conn, &id, 0).unwrap().unwrap();
        assert_eq!(stats.views, 6);
        assert_eq!(stats.monthly["2026-11"], 5);
        assert_eq!(stats.monthly["2026-12"], 1);
        delete(&conn, &id, 0, &Deleter::Token("t".into()))
            .unwrap()
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM views", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
