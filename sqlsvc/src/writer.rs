//! Group commit for creates: requests queue `(CreateMeta, reply)` jobs; one writer
//! task takes whatever is queued (up to `MAX_BATCH`), inserts it all in ONE
//! transaction (one fsync), then answers every waiter.

use std::sync::Arc;

use rusqlite::{TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};
use tokio_rusqlite::Connection;

use crate::api::{CreateMeta, Created, Meta, PasteId, RandomIdError};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::stats::Stats;

/// Most creates committed together; bounds the time one transaction holds the lock.
pub(crate) const MAX_BATCH: usize = 256;

/// Ids tried per row before giving up on that row (a collision among 62^10 ids is
/// already astronomically rare; several in a row means something is broken).
const ID_ATTEMPTS: usize = 8;

/// One queued create and where to send its answer.
pub(crate) struct CreateJob {
    pub(crate) row: NewRow,
    /// The token whose hash is in `row`, handed back in the answer.
    pub(crate) token: String,
    pub(crate) reply: oneshot::Sender<Result<Created, ApiError>>,
}

/// What a create stores: the caller's fields and the delete token's hash.
pub(crate) struct NewRow {
    pub(crate) meta: CreateMeta,
    pub(crate) delete_hash: [u8; 32],
}

/// Why one row of a batch could not be inserted (the others still are).
#[derive(Debug)]
pub(crate) enum RowError {
    /// The OS random source failed.
    Random(RandomIdError),
    /// Every id tried was taken.
    Collisions,
}

/// Runs until `stop` fires (or its sender is dropped) and the queue is drained.
pub(crate) async fn run(
    conn: Connection,
    mut jobs: mpsc::Receiver<CreateJob>,
    mut stop: oneshot::Receiver<()>,
    stats: Arc<Stats>,
) {
    let mut stopping = false;
    loop {
        let first = if stopping {
            jobs.recv().await
        } else {
            tokio::select! {
                job = jobs.recv() => job,
                _ = &mut stop => {
                    // Refuse new jobs but still commit those already queued.
                    stopping = true;
                    jobs.close();
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        let mut batch = Vec::with_capacity(MAX_BATCH.min(jobs.len() + 1));
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Clients that already hung up need no row.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        commit_batch(&conn, batch, &stats).await;
    }
    tracing::debug!("writer stopped");
}

/// Inserts one batch and answers its waiters; a failed transaction fails them all.
async fn commit_batch(conn: &Connection, batch: Vec<CreateJob>, stats: &Stats) {
    let (metas, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|job| (job.row, (job.token, job.reply)))
        .unzip();
    let size = metas.len();
    let result = conn
        .call(move |conn| insert_batch(conn, metas, now_unix(), &mut PasteId::random))
        .await;
    match result {
        Ok(rows) => {
            let created = rows.iter().filter(|r| r.is_ok()).count();
            stats.record_commit(size, created);
            for ((delete_token, reply), row) in replies.into_iter().zip(rows) {
                let answer = row
                    .map(|meta| Created { meta, delete_token })
                    .map_err(|err| ApiError::Internal(format!("create: {err}")));
                // The client may have hung up meanwhile; that is its business.
                let _ = reply.send(answer);
            }
        }
        Err(err) => {
            tracing::error!(%err, size, "create batch failed; nothing was written");
            stats.record_failed_batch();
            for (_, reply) in replies {
                let _ = reply.send(Err(ApiError::Internal("create batch failed".into())));
            }
        }
    }
}

/// Inserts `metas` in one IMMEDIATE transaction, each with a fresh id from `new_id`,
/// retrying a row on a primary-key collision. A row that cannot get an id fails
/// alone; any other database error rolls the whole batch back.
pub(crate) fn insert_batch(
    conn: &mut rusqlite::Connection,
    metas: Vec<NewRow>,
    now: i64,
    new_id: &mut dyn FnMut() -> Result<PasteId, RandomIdError>,
) -> rusqlite::Result<Vec<Result<Meta, RowError>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(metas.len());
    {
        // The write lock is held, so MAX(seq) + 1.. is ours alone.
        let mut seq: i64 =
            tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM pastes", [], |r| r.get(0))?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO pastes (paste_id, paste_path, created_at, expires_at, size, seq, \
             delete_hash, burn, unlisted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for NewRow { meta, delete_hash } in metas {
            // Validated by the handler; a failure here is a bug, not bad input.
            let size = meta
                .size
                .map(i64::try_from)
                .transpose()
                .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
            let mut outcome = Err(RowError::Collisions);
            for _ in 0..ID_ATTEMPTS {
                let id = match new_id() {
                    Ok(id) => id,
                    Err(err) => {
                        outcome = Err(RowError::Random(err));
                        break;
                    }
                };
                let inserted = insert.execute(params![
                    id.as_str(),
                    meta.paste_path.as_str(),
                    now,
                    meta.expires_at,
                    size,
                    seq + 1,
                    &delete_hash[..],
                    meta.burn_after_reading,
                    meta.unlisted
                ]);
                match inserted {
                    Ok(_) => {
                        seq += 1;
                        outcome = Ok(Meta {
                            paste_id: id,
                            paste_path: meta.paste_path.clone(),
                            created_at: now,
                            expires_at: meta.expires_at,
                            size: meta.size,
                            burn_after_reading: meta.burn_after_reading,
                            unlisted: meta.unlisted,
                        });
                        break;
                    }
                    // Only this statement is undone; the transaction goes on.
                    Err(err) if is_primary_key_collision(&err) => {
                        tracing::warn!(%id, "paste id collision; drawing another");
                    }
                    Err(err) => return Err(err),
                }
            }
            results.push(outcome);
        }
    }
    tx.commit()?;
    Ok(results)
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowError::Random(err) => write!(f, "no id: {err}"),
            RowError::Collisions => write!(f, "no free id after {ID_ATTEMPTS} attempts"),
        }
    }
}

fn is_primary_key_collision(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::migrate;

    fn db() -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn
    }

    fn meta(path: &str) -> NewRow {
        NewRow {
            meta: CreateMeta {
                paste_path: path.parse().unwrap(),
                expires_at: None,
                size: Some(3),
                burn_after_reading: false,
                unlisted: false,
            },
            delete_hash: [0; 32],
        }
    }

    /// An id source that hands out the given ids in order, then random ones.
    fn scripted(ids: &[&str]) -> impl FnMut() -> Result<PasteId, RandomIdError> {
        let mut ids: Vec<PasteId> = ids.iter().rev().map(|s| s.parse().unwrap()).collect();
        move || match ids.pop() {
            Some(id) => Ok(id),
            None => PasteId::random(),
        }
    }

    #[test]
    fn a_collision_is_retried_without_failing_the_batch() {
        let mut conn = db();
        let mut ids = scripted(&["AAAAAAAAAA"]);
        insert_batch(&mut conn, vec![meta("first")], 1, &mut ids).unwrap();
        // Second batch: row 1 collides with the stored id, then within the batch.
        let mut ids = scripted(&["AAAAAAAAAA", "BBBBBBBBBB", "BBBBBBBBBB", "CCCCCCCCCC"]);
        let rows = insert_batch(&mut conn, vec![meta("a"), meta("b")], 2, &mut ids).unwrap();
        let got: Vec<String> = rows
            .into_iter()
            .map(|r| r.unwrap().paste_id.to_string())
            .collect();
        assert_eq!(got, ["BBBBBBBBBB", "CCCCCCCCCC"]);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM pastes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        // seq kept increasing with no gaps despite the failed inserts.
        let seqs: Vec<i64> = conn
            .prepare("SELECT seq FROM pastes ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    #[test]
    fn a_row_out_of_ids_fails_alone() {
        let mut conn = db();
        let mut ids = scripted(&["AAAAAAAAAA"]);
        insert_batch(&mut conn, vec![meta("first")], 1, &mut ids).unwrap();
        let mut ids = scripted(&["AAAAAAAAAA"; ID_ATTEMPTS]);
        let rows = insert_batch(&mut conn, vec![meta("x"), meta("y")], 2, &mut ids).unwrap();
        assert!(matches!(rows[0], Err(RowError::Collisions)));
        assert_eq!(rows[1].as_ref().unwrap().paste_path.as_str(), "y");
    }

    #[test]
    fn a_failing_random_source_fails_the_row_only() {
        let mut conn = db();
        let mut calls = 0;
        let mut ids = || {
            calls += 1;
            if calls == 1 {
                Err(RandomIdError::for_test())
            } else {
                PasteId::random()
            }
        };
        let rows = insert_batch(&mut conn, vec![meta("x"), meta("y")], 2, &mut ids).unwrap();
        assert!(matches!(rows[0], Err(RowError::Random(_))));
        assert!(rows[1].is_ok());
    }

    #[test]
    fn a_database_error_rolls_back_the_whole_batch() {
        let mut conn = db();
        // Make every insert fail for a reason other than a collision.
        conn.execute_batch(
            "CREATE TRIGGER no_y BEFORE INSERT ON pastes WHEN NEW.paste_path = 'y' \
             BEGIN SELECT RAISE(ABORT, 'no'); END;",
        )
        .unwrap();
        let mut ids = scripted(&[]);
        assert!(insert_batch(&mut conn, vec![meta("x"), meta("y")], 2, &mut ids).is_err());
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM pastes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
