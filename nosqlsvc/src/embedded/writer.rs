//! The group-committing writer: one thread takes the first queued write, drains what
//! else is already queued, applies it all in ONE durable redb write transaction, then
//! answers every waiter. One fsync serves many pastes.

use std::sync::Arc;

use redb::{Database, Durability, ReadableTable};
use tokio::sync::{mpsc, oneshot};

use super::{GroupCommit, TEXTS, UNSETTLED, UNSETTLED_AT, internal};
use crate::paths::new_path;
use crate::store::StoreError;

/// Attempts at drawing a fresh path before giving up (96 random bits: never needed).
const PATH_ATTEMPTS: usize = 8;

/// One queued write and where its answer goes.
pub(crate) enum Op {
    Insert {
        text: String,
        reply: oneshot::Sender<Result<String, StoreError>>,
    },
    Delete {
        path: String,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    DeleteMany {
        paths: Vec<String>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    Settle {
        paths: Vec<String>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
}

/// What an applied op answers once the transaction commits.
enum Answer {
    Inserted(String),
    Deleted(bool),
    Count(u64),
}

/// The tables one write transaction works on.
struct Tables<'t> {
    texts: redb::Table<'t, &'static str, &'static str>,
    unsettled: redb::Table<'t, (u64, &'static str), ()>,
    unsettled_at: redb::Table<'t, &'static str, u64>,
}

impl Tables<'_> {
    /// Forgets that `path` is unsettled; whether it was.
    fn settle(&mut self, path: &str) -> Result<bool, StoreError> {
        let at = self
            .unsettled_at
            .remove(path)
            .map_err(internal)?
            .map(|v| v.value());
        if let Some(at) = at {
            self.unsettled.remove((at, path)).map_err(internal)?;
        }
        Ok(at.is_some())
    }

    /// Removes the text under `path` and its unsettled mark; whether it was there.
    fn delete(&mut self, path: &str) -> Result<bool, StoreError> {
        self.settle(path)?;
        Ok(self.texts.remove(path).map_err(internal)?.is_some())
    }
}

/// Seconds since the unix epoch, the unit of the unsettled marks.
fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) struct Writer {
    db: Arc<Database>,
    rx: mpsc::Receiver<Op>,
    group: GroupCommit,
}

impl Writer {
    pub(crate) fn new(db: Arc<Database>, rx: mpsc::Receiver<Op>, group: GroupCommit) -> Self {
        Self { db, rx, group }
    }

    /// Commits batches until every sender is gone and the queue is empty.
    pub(crate) fn run(mut self) {
        let mut batch = Vec::with_capacity(self.group.max_ops);
        while let Some(first) = self.rx.blocking_recv() {
            let mut bytes = op_bytes(&first);
            batch.push(first);
            while batch.len() < self.group.max_ops.max(1) && bytes < self.group.max_bytes {
                match self.rx.try_recv() {
                    Ok(op) => {
                        bytes += op_bytes(&op);
                        batch.push(op);
                    }
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
        }
        tracing::debug!("embedded writer stopped");
    }

    /// Applies and commits `batch` (emptying it), then answers every waiter. Waiters
    /// that hung up are skipped: a failed oneshot send is not an error.
    fn commit(&self, batch: &mut Vec<Op>) {
        match self.apply(batch) {
            Ok(answers) => {
                for (op, answer) in batch.drain(..).zip(answers) {
                    match (op, answer) {
                        (Op::Insert { reply, .. }, Answer::Inserted(path)) => {
                            let _ = reply.send(Ok(path));
                        }
                        (Op::Delete { reply, .. }, Answer::Deleted(found)) => {
                            let _ = reply.send(Ok(found));
                        }
                        (
                            Op::DeleteMany { reply, .. } | Op::Settle { reply, .. },
                            Answer::Count(n),
                        ) => {
                            let _ = reply.send(Ok(n));
                        }
                        (op, _) => op.fail(mismatch()),
                    }
                }
            }
            Err(err) => {
                tracing::error!(%err, ops = batch.len(), "group commit failed");
                for op in batch.drain(..) {
                    op.fail(err.clone());
                }
            }
        }
    }

    /// One durable write transaction for the whole batch: all of it or nothing.
    fn apply(&self, batch: &[Op]) -> Result<Vec<Answer>, StoreError> {
        let mut answers = Vec::with_capacity(batch.len());
        let mut txn = self.db.begin_write().map_err(internal)?;
        txn.set_durability(Durability::Immediate)
            .map_err(internal)?;
        {
            let mut t = Tables {
                texts: txn.open_table(TEXTS).map_err(internal)?,
                unsettled: txn.open_table(UNSETTLED).map_err(internal)?,
                unsettled_at: txn.open_table(UNSETTLED_AT).map_err(internal)?,
            };
            let now = now_unix();
            for op in batch {
                match op {
                    Op::Insert { text, .. } => {
                        let path = fresh_path(&t.texts)?;
                        t.texts
                            .insert(path.as_str(), text.as_str())
                            .map_err(internal)?;
                        t.unsettled
                            .insert((now, path.as_str()), ())
                            .map_err(internal)?;
                        t.unsettled_at
                            .insert(path.as_str(), now)
                            .map_err(internal)?;
                        answers.push(Answer::Inserted(path));
                    }
                    Op::Delete { path, .. } => {
                        answers.push(Answer::Deleted(t.delete(path)?));
                    }
                    Op::DeleteMany { paths, .. } => {
                        let mut n = 0;
                        for path in paths {
                            n += u64::from(t.delete(path)?);
                        }
                        answers.push(Answer::Count(n));
                    }
                    Op::Settle { paths, .. } => {
                        let mut n = 0;
                        for path in paths {
                            n += u64::from(t.settle(path)?);
                        }
                        answers.push(Answer::Count(n));
                    }
                }
            }
        }
        txn.commit().map_err(internal)?;
        Ok(answers)
    }
}

/// Answers are built in op order, so a mismatch is a bug, reported rather than panicked on.
fn mismatch() -> StoreError {
    StoreError::Internal("writer answer out of order".into())
}

/// A random path not yet in the table (nor earlier in this transaction).
fn fresh_path(table: &redb::Table<&str, &str>) -> Result<String, StoreError> {
    for _ in 0..PATH_ATTEMPTS {
        let path = new_path()
            .map_err(|err| StoreError::Internal(format!("OS random source failed: {err}")))?;
        if table.get(path.as_str()).map_err(internal)?.is_none() {
            return Ok(path);
        }
    }
    Err(StoreError::Internal("could not draw an unused path".into()))
}

fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Insert { text, .. } => text.len(),
        Op::Delete { path, .. } => path.len(),
        Op::DeleteMany { paths, .. } | Op::Settle { paths, .. } => {
            paths.iter().map(String::len).sum()
        }
    }
}

impl Op {
    /// Answers the waiter with `err`.
    fn fail(self, err: StoreError) {
        match self {
            Op::Insert { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Op::Delete { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Op::DeleteMany { reply, .. } | Op::Settle { reply, .. } => {
                let _ = reply.send(Err(err));
            }
        }
    }
}
