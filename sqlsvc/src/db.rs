//! The SQLite side: opening the writer and reader connections with their pragmas, and
//! the read/delete queries (creates live in `writer`, which group-commits them).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row, params};
use tokio_rusqlite::Connection;

use crate::api::{Meta, PasteId};
use crate::error::Error;
use crate::migrations;

/// How long a connection waits for a lock held by another before failing.
const BUSY_TIMEOUT_MS: i64 = 5_000;

/// Reader connections, used round robin, so reads are not queued behind fsyncs.
const READERS: usize = 2;

/// The columns of `Meta`, in the order `meta_from_row` reads them.
pub(crate) const META_COLUMNS: &str = "paste_id, paste_path, created_at, expires_at, size";

/// The database handles: one writer (creates and deletes) and a few readers.
pub(crate) struct Db {
    pub(crate) writer: Connection,
    readers: Vec<Connection>,
    next_reader: AtomicUsize,
}

impl Db {
    /// Opens the writer (WAL, `synchronous=FULL`), migrates, then opens the readers.
    pub(crate) async fn open(path: &Path) -> Result<Self, Error> {
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

        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open(path).await.map_err(open_err)?;
            reader
                .call(|conn| {
                    conn.pragma_update(None, "busy_timeout", BUSY_TIMEOUT_MS)?;
                    conn.pragma_update(None, "query_only", true)?;
                    Ok(())
                })
                .await
                .map_err(|err| open_err(flatten(err)))?;
            readers.push(reader);
        }
        Ok(Self {
            writer,
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    /// The next reader connection, round robin.
    pub(crate) fn reader(&self) -> &Connection {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len().max(1);
        // `readers` is never empty (READERS > 0); fall back to the writer regardless.
        self.readers.get(i).unwrap_or(&self.writer)
    }

    /// Closes the readers, then the writer last, so that its close checkpoints the WAL
    /// into the main file and removes it.
    pub(crate) async fn close(&self) -> Result<(), Error> {
        let mut failures = Vec::new();
        for reader in self.readers.iter().cloned() {
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
        paste_path: row.get(1)?,
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

/// Deletes the live paste with this id and returns it. An expired row is left for a
/// sweeper that also removes its text, and reported as absent like in `get`.
pub(crate) fn delete(
    conn: &rusqlite::Connection,
    id: &PasteId,
    now: i64,
) -> rusqlite::Result<Option<Meta>> {
    conn.prepare_cached(&format!(
        "DELETE FROM pastes \
         WHERE paste_id = ?1 AND (expires_at IS NULL OR expires_at > ?2) \
         RETURNING {META_COLUMNS}"
    ))?
    .query_row(params![id.as_str(), now], meta_from_row)
    .optional()
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
