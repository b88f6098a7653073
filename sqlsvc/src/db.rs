//! The SQLite side: opening the writer and reader connections with their pragmas, and
//! the read/delete queries (creates live in `writer`, which group-commits them).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row, params};
use tokio_rusqlite::Connection;

use crate::api::{DeletionPage, Meta, PasteId, PastePath};
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
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 16)
}

/// The columns of `Meta`, in the order `meta_from_row` reads them.
pub(crate) const META_COLUMNS: &str = "paste_id, paste_path, created_at, expires_at, size";

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
         ORDER BY seq DESC LIMIT ?3"
    ))?;
    // One row more than asked tells whether there is a next page.
    let rows = stmt.query_map(
        params![before.unwrap_or(i64::MAX), now, i64::from(limit) + 1],
        |row| Ok((meta_from_row(row)?, row.get::<_, i64>(5)?)),
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

/// Deletes the live paste with this id and returns it, appending the id to the
/// deletion log in the same transaction (so a webserver that polls the log after the
/// delete answered sees it). An expired row is left for a sweeper that also removes
/// its text, and reported as absent like in `get`.
pub(crate) fn delete(
    conn: &rusqlite::Connection,
    id: &PasteId,
    now: i64,
) -> rusqlite::Result<Option<Meta>> {
    let tx = conn.unchecked_transaction()?;
    let deleted = tx
        .prepare_cached(&format!(
            "DELETE FROM pastes \
             WHERE paste_id = ?1 AND (expires_at IS NULL OR expires_at > ?2) \
             RETURNING {META_COLUMNS}"
        ))?
        .query_row(params![id.as_str(), now], meta_from_row)
        .optional()?;
    if deleted.is_some() {
        tx.prepare_cached("INSERT INTO deletions (paste_id, deleted_at) VALUES (?1, ?2)")?
            .execute(params![id.as_str(), now])?;
        let seq = tx.last_insert_rowid();
        tx.prepare_cached("DELETE FROM deletions WHERE seq <= ?1")?
            .execute(params![seq - DELETION_LOG_KEEP])?;
    }
    tx.commit()?;
    Ok(deleted)
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
                 ORDER BY seq DESC LIMIT ?3",
            )
            .unwrap()
            .query_map(params![10, 0, 5], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("pastes_seq"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
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
            assert!(delete(&conn, &id.parse().unwrap(), 0).unwrap().is_some());
        }
        // Deleting again logs nothing.
        assert!(
            delete(&conn, &"ccccccccc2".parse().unwrap(), 0)
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
        delete(&conn, &"ddddddddd1".parse().unwrap(), 0).unwrap();
        delete(&conn, &"ddddddddd2".parse().unwrap(), 0).unwrap();
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
        assert!(delete(&conn, &id, 50).unwrap().is_none());
        assert!(delete(&conn, &id, 49).unwrap().is_some());
        assert!(get(&conn, &id, 0).unwrap().is_none());
    }
}
