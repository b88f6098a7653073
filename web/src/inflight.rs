//! A bound on the memory that answers waiting for slow readers can hold: every large
//! answer (a paste, a listing page) takes a share of one budget for as long as it is
//! being sent, and waits (then gets 503) when the budget is spent. Together with the
//! server's write timeout, a handful of clients that ask for large pages and read
//! slowly cannot pin more than the budget.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use httpkit::{Body, BoxError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiError;

/// Answers smaller than this are sent without taking from the budget.
const SMALL: usize = 64 * 1024;
/// The budget is counted in KiB, so a `u32` of permits covers any answer.
const UNIT: usize = 1024;
/// Large answers are handed to the connection in pieces of this size, so the
/// budget is held until the last piece is taken, not just until the first.
const PIECE: usize = 64 * 1024;

/// The shared budget of bytes in flight.
pub(crate) struct InFlight {
    permits: Arc<Semaphore>,
    capacity: u32,
    wait: Duration,
}

impl InFlight {
    /// A budget of `bytes`; an answer waits at most `wait` for its share.
    pub(crate) fn new(bytes: usize, wait: Duration) -> Self {
        let capacity = u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
        Self {
            permits: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            wait,
        }
    }

    /// `bytes` as a response body holding its share of the budget until it is sent
    /// (or the client goes away). An answer larger than the whole budget takes all
    /// of it, so it is still served, alone.
    pub(crate) async fn body(&self, bytes: impl Into<Bytes>) -> Result<Body, ApiError> {
        let bytes: Bytes = bytes.into();
        if bytes.len() < SMALL {
            return Ok(httpkit::full(bytes));
        }
        let share = u32::try_from(bytes.len().div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .min(self.capacity);
        let permit =
            tokio::time::timeout(self.wait, self.permits.clone().acquire_many_owned(share))
                .await
                .map_err(|_| ApiError::Busy)?
                .map_err(|_| ApiError::Internal)?;
        Ok(Held {
            rest: bytes,
            permit: Some(permit),
        }
        .boxed())
    }

    /// KiB of the budget free now (for tests).
    #[cfg(test)]
    fn free(&self) -> usize {
        self.permits.available_permits()
    }
}

/// A body sent in pieces, releasing its share of the budget with its last piece.
struct Held {
    rest: Bytes,
    permit: Option<OwnedSemaphorePermit>,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.rest.is_empty() {
            self.permit = None;
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(PIECE);
        let piece = self.rest.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_answers_hold_the_budget_until_sent() {
        let budget = InFlight::new(256 * 1024, Duration::from_millis(50));
        let first = budget.body(vec![b'x'; 200 * 1024]).await.unwrap();
        assert_eq!(budget.free(), 56);
        // The second does not fit while the first is unsent: 503 (busy).
        assert!(matches!(
            budget.body(vec![b'y'; 100 * 1024]).await,
            Err(ApiError::Busy)
        ));
        // Small answers never wait.
        budget.body(vec![b'z'; 1000]).await.unwrap();
        let sent = first.collect().await.unwrap().to_bytes();
        assert_eq!(sent.len(), 200 * 1024);
        assert_eq!(budget.free(), 256);
        // Larger than the whole budget: served alone.
        let huge = budget.body(vec![b'h'; 1024 * 1024]).await.unwrap();
        assert_eq!(budget.free(), 0);
        drop(huge);
        assert_eq!(budget.free(), 256);
    }
}
