//! View counts: every read a webserver serves counts one view of the paste in the
//! current month (UTC), in memory; a task flushes the counts to sqlsvc in one
//! `POST /views` every `FLUSH_INTERVAL`, so counting adds no store round trip to a
//! read and a view shows in the stats within about one interval.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use contract::PasteId;
use contract::meta::{MAX_VIEW_ENTRIES, ViewCount, ViewCounts};
use contract::{CallError, MetaClient};

/// Time between two flushes: views show in the stats within this and one round trip.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// Most `(paste, month)` entries held; beyond, views of pastes not counted yet are
/// dropped (only while sqlsvc cannot take them: a flush empties the table).
const MAX_ENTRIES: usize = 100_000;

/// Counts not yet flushed.
#[derive(Default)]
pub struct ViewCounter {
    pending: Mutex<HashMap<(PasteId, String), u64>>,
}

impl ViewCounter {
    /// Counts one view of `id` now.
    pub fn count(&self, id: &PasteId) {
        self.add(id.clone(), month_of(now_unix()), 1);
    }

    fn add(&self, id: PasteId, month: String, n: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let full = pending.len() >= MAX_ENTRIES;
        match pending.get_mut(&(id.clone(), month.clone())) {
            Some(count) => *count = count.saturating_add(n),
            None if full => {}
            None => {
                pending.insert((id, month), n);
            }
        }
    }

    /// Takes every pending count.
    fn take(&self) -> Vec<ViewCount> {
        let pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        pending
            .into_iter()
            .map(|((paste_id, month), count)| ViewCount {
                paste_id,
                month,
                count,
            })
            .collect()
    }

    /// Flushes every `FLUSH_INTERVAL` until dropped; counts a failed flush could not
    /// deliver are put back for the next one.
    pub async fn flush_forever(&self, meta: MetaClient) {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.flush(&meta).await;
        }
    }

    /// One flush, in batches of at most `MAX_VIEW_ENTRIES`.
    pub async fn flush(&self, meta: &MetaClient) {
        let mut views = self.take();
        while !views.is_empty() {
            let rest = views.split_off(views.len().min(MAX_VIEW_ENTRIES));
            let batch = ViewCounts { views };
            let sent = meta.add_views(&batch).await;
            if let Err(err) = sent {
                // `POST /views` adds: sent twice, a batch counts twice. So it is sent
                // again only when the failure proves sqlsvc did not apply it
                // (`keep_after`); after a timeout or a dropped connection it may have
                // been applied, and the batch is dropped: a count may come out
                // short, never doubled. The rest was not sent at all: always kept.
                let keep = keep_after(&err);
                let n = batch.views.len();
                if keep {
                    tracing::warn!(%err, "view counts not flushed; kept for the next flush");
                } else {
                    tracing::warn!(%err, entries = n, "view counts not flushed and perhaps applied; dropped, not sent twice");
                }
                let again = if keep { batch.views } else { Vec::new() };
                for v in again.into_iter().chain(rest) {
                    self.add(v.paste_id, v.month, v.count);
                }
                return;
            }
            views = rest;
        }
    }
}

/// Whether a batch whose `POST /views` failed with `err` is sent again: only when
/// sqlsvc certainly did not apply it ([`CallError::not_applied`]: it answered an
/// error, in which case its transaction rolled back, or the connection was refused),
/// and the error is not sqlsvc refusing the batch itself (a 4xx), which sending it
/// again would not change.
fn keep_after(err: &CallError) -> bool {
    err.not_applied()
        && !matches!(
            err,
            CallError::Invalid { .. } | CallError::NotFound | CallError::Conflict(_)
        )
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `YYYY-MM` (UTC) of a unix time (days to civil date: Howard Hinnant's algorithm).
pub fn month_of(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months() {
        assert_eq!(month_of(0), "1970-01");
        // 2026-11-30T23:59:59Z and the next second.
        assert_eq!(month_of(1_796_083_199), "2026-11");
        assert_eq!(month_of(1_796_083_200), "2026-12");
        // 2024-02-29T12:00:00Z (a leap day).
        assert_eq!(month_of(1_709_208_000), "2024-02");
        assert_eq!(month_of(951_782_400), "2000-02"); // 2000-02-29
        assert_eq!(month_of(951_868_800), "2000-03");
    }

    #[test]
    fn a_batch_is_sent_again_only_when_it_was_certainly_not_applied() {
        use http::StatusCode;
        let again = [
            CallError::NotSent("connection refused".into()),
            CallError::Overloaded("busy".into()),
            CallError::Failed {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "disk I/O error".into(),
            },
        ];
        let dropped = [
            CallError::Timeout,
            CallError::Unavailable("connection reset".into()),
            CallError::BadResponse("truncated".into()),
            CallError::Invalid {
                status: StatusCode::BAD_REQUEST,
                message: "bad month".into(),
            },
        ];
        for err in again {
            assert!(keep_after(&err), "{err:?}");
        }
        for err in dropped {
            assert!(!keep_after(&err), "{err:?}");
        }
    }

    fn client_to(addr: std::net::SocketAddr) -> MetaClient {
        let http = httpkit::JsonClient::new(httpkit::ClientConfig {
            request_timeout: Duration::from_millis(300),
            ..httpkit::ClientConfig::default()
        });
        MetaClient::new(http, format!("http://{addr}"))
    }

    fn pending(c: &ViewCounter) -> u64 {
        c.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }

    #[tokio::test]
    async fn a_refused_flush_keeps_its_counts_and_an_unanswered_one_drops_them() {
        let id: PasteId = "AAAAAAAAAA".parse().unwrap();
        // Nothing listens: connection refused, the batch was never sent. The port
        // stays bound (not listening) meanwhile: a port freed here could be handed to
        // a parallel test's server, which would answer.
        let reserved = tokio::net::TcpSocket::new_v4().unwrap();
        reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let refused = reserved.local_addr().unwrap();
        let c = ViewCounter::default();
        c.count(&id);
        c.count(&id);
        c.flush(&client_to(refused)).await;
        assert_eq!(pending(&c), 2, "a batch never sent must be kept");
        drop(reserved);

        // A listener that takes the connection (the kernel accepts it) and never
        // answers: the request was sent and may have been applied.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        c.flush(&client_to(silent.local_addr().unwrap())).await;
        assert_eq!(
            pending(&c),
            0,
            "a batch perhaps applied must not be sent twice"
        );
    }

    #[test]
    fn counts_add_up_per_paste_and_month() {
        let c = ViewCounter::default();
        let a: PasteId = "AAAAAAAAAA".parse().unwrap();
        let b: PasteId = "BBBBBBBBBB".parse().unwrap();
        c.count(&a);
        c.count(&a);
        c.count(&b);
        c.add(a.clone(), "2020-01".into(), 5);
        let mut got: Vec<_> = c
            .take()
            .into_iter()
            .map(|v| (v.paste_id.to_string(), v.month.len(), v.count))
            .collect();
        got.sort();
        assert_eq!(got.len(), 3);
        assert!(got.contains(&("AAAAAAAAAA".into(), 7, 2)));
        assert!(got.contains(&("AAAAAAAAAA".into(), 7, 5)));
        assert!(got.contains(&("BBBBBBBBBB".into(), 7, 1)));
        assert!(c.take().is_empty());
    }
}
