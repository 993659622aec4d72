//! Bodies that stream through the gateway: the one response body type every path answers
//! with, and the guards a streamed body passes through (a byte limit and a deadline, enforced
//! frame by frame, so nothing is buffered whole to enforce them).

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The error a body in the gateway may end with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the gateway writes: whole (a gateway answer, an actor's reply), held as is, or
/// streamed (an upstream's), boxed.
pub(crate) enum Body {
    /// Whole bytes, sent as one frame (`None` once sent)
    Whole(Option<Bytes>),
    /// Any other body
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    /// `body`, boxed.
    pub(crate) fn boxed<B>(body: B) -> Self
    where
        B: HttpBody<Data = Bytes, Error = BoxError> + Send + 'static,
    {
        Self::Boxed(body.boxed_unsync())
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Whole(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Self::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Whole(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Self::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Self::Boxed(body) => body.size_hint(),
        }
    }
}

/// `bytes` as a whole body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Body::Whole(Some(bytes.into()))
}

/// Why a guarded body stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyError {
    /// More bytes than the limit
    #[error("the body is over the limit")]
    TooLarge,
    /// The deadline passed before the body ended
    #[error("the body did not arrive in time")]
    TimedOut,
    /// The other side broke off
    #[error("the body broke off")]
    Broken,
}

/// When a guarded body must end.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// The whole body by this instant
    At(Instant),
    /// Each frame within this long of the moment the body began waiting for it: time the
    /// reader spends elsewhere between frames (a slow client being written to) is not counted
    Idle(Duration),
}

/// A body passed on frame by frame, ended with a [`BodyError`] once more than `limit` bytes
/// arrive or its deadline passes; the error is also left in a shared slot, so whoever sent the
/// body on can tell why its request failed.
pub(crate) struct Guarded<B> {
    inner: B,
    limit: Option<u64>,
    seen: u64,
    deadline: Deadline,
    /// Made when the body first has to wait, so bodies that never wait cost no timer and no
    /// clock read; an idle deadline's is reset for each later wait
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether `timer` holds the deadline of the wait at hand: cleared by each frame of an
    /// idle deadline (a whole-body deadline stays armed once set)
    armed: bool,
    /// Made when someone asks for it, so bodies nobody watches cost no allocation for it
    verdict: Option<Arc<OnceLock<BodyError>>>,
    done: bool,
}

impl<B> Guarded<B> {
    /// `inner`, limited to `limit` bytes (none if `None`) and to `deadline`.
    pub(crate) fn new(inner: B, limit: Option<u64>, deadline: Deadline) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
            deadline,
            timer: None,
            armed: false,
            verdict: None,
            done: false,
        }
    }

    /// Polls the deadline of the wait at hand, arming it if the body has just begun waiting.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        let at = move || match deadline {
            Deadline::At(at) => at,
            Deadline::Idle(idle) => Instant::now() + idle,
        };
        if !self.armed
            && let Some(timer) = &mut self.timer
        {
            timer.as_mut().reset(at());
        }
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at())));
        self.armed = true;
        timer.as_mut().poll(cx)
    }

    /// Where the reason the body stopped will be, once it has.
    pub(crate) fn verdict(&mut self) -> Arc<OnceLock<BodyError>> {
        self.verdict
            .get_or_insert_with(|| Arc::new(OnceLock::new()))
            .clone()
    }

    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        if let Some(verdict) = &self.verdict {
            let _ = verdict.set(error);
        }
        Poll::Ready(Some(Err(Box::new(error))))
    }
}

impl<B> HttpBody for Guarded<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.limit.is_some_and(|limit| this.seen > limit) {
                        return this.fail(BodyError::TooLarge);
                    }
                }
                // the next wait gets its own deadline (a whole-body one stays where it is)
                if let Deadline::Idle(_) = this.deadline {
                    this.armed = false;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                tracing::debug!(cause = %err.into(), "a streamed body broke off");
                this.fail(BodyError::Broken)
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.poll_deadline(cx));
                this.fail(BodyError::TimedOut)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that counts the bytes it passes on and, when dropped (written out in full, or
/// abandoned), hands the count to `on_end`: the access log learns how much was sent.
pub(crate) struct Counted<B> {
    inner: B,
    sent: u64,
    on_end: Option<Box<dyn FnOnce(u64) + Send>>,
}

impl<B> Counted<B> {
    pub(crate) fn new(inner: B, on_end: impl FnOnce(u64) + Send + 'static) -> Self {
        Self {
            inner,
            sent: 0,
            on_end: Some(Box::new(on_end)),
        }
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.sent);
        }
    }
}

impl<B> HttpBody for Counted<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            this.sent += data.len() as u64;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// `n` data frames of `size` bytes each, at once.
    struct Chunks(usize, usize);

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            let this = self.get_mut();
            if this.0 == 0 {
                return Poll::Ready(None);
            }
            this.0 -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![7; this.1])))))
        }
    }

    fn chunks(n: usize, size: usize) -> Chunks {
        Chunks(n, size)
    }

    /// A whole body is its bytes in one frame, with its exact length; an empty one ends at
    /// once; a boxed one passes its frames on.
    #[tokio::test]
    async fn whole_bodies_are_one_frame_and_boxed_ones_pass_through() {
        let whole = full(Bytes::from_static(b"sixty-four"));
        assert_eq!(whole.size_hint().exact(), Some(10));
        assert!(!whole.is_end_stream());
        let collected = whole.collect().await.unwrap().to_bytes();
        assert_eq!(collected, Bytes::from_static(b"sixty-four"));

        let mut empty = full(Bytes::new());
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
        assert!(empty.frame().await.is_none());

        let boxed = Body::boxed(chunks(3, 5));
        assert_eq!(boxed.collect().await.unwrap().to_bytes().len(), 15);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_stops_with_the_reason_left_behind() {
        let mut guarded = Guarded::new(
            chunks(10, 100),
            Some(950),
            Deadline::Idle(Duration::from_secs(5)),
        );
        let verdict = guarded.verdict();
        assert!(guarded.collect().await.is_err());
        assert_eq!(verdict.get(), Some(&BodyError::TooLarge));
        let within = Guarded::new(
            chunks(10, 100),
            Some(1_000),
            Deadline::Idle(Duration::from_secs(5)),
        );
        assert_eq!(
            within.collect().await.map(|c| c.to_bytes().len()).ok(),
            Some(1_000)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_past_its_deadline_times_out() {
        let (mut tx, rx) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
        let mut guarded = Guarded::new(rx, None, Deadline::Idle(Duration::from_secs(2)));
        let verdict = guarded.verdict();
        let sender = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if tx.send_data(Bytes::from_static(b"x")).await.is_err() {
                    return;
                }
            }
            // then silence, holding the body open
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let got = guarded.collect().await;
        assert!(got.is_err());
        assert_eq!(verdict.get(), Some(&BodyError::TimedOut));
        sender.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_body_deadline_holds_however_often_frames_come() {
        let (mut tx, rx) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
        let at = Instant::now() + Duration::from_millis(2_500);
        let mut guarded = Guarded::new(rx, None, Deadline::At(at));
        let verdict = guarded.verdict();
        // a frame every second, for longer than the deadline
        let sender = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if tx.send_data(Bytes::from_static(b"x")).await.is_err() {
                    return;
                }
            }
        });
        assert!(guarded.collect().await.is_err());
        assert_eq!(verdict.get(), Some(&BodyError::TimedOut));
        assert_eq!(
            Instant::now(),
            at,
            "cut off at the deadline, not before or after"
        );
        sender.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_reader_spends_elsewhere_is_not_the_bodys_delay() {
        let (mut tx, rx) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
        let mut guarded = Guarded::new(rx, None, Deadline::Idle(Duration::from_secs(2)));
        let sender = tokio::spawn(async move {
            tx.send_data(Bytes::from_static(b"a")).await?;
            // the second frame comes half a second after the reader is back
            tokio::time::sleep(Duration::from_millis(3_500)).await;
            tx.send_data(Bytes::from_static(b"b")).await
        });
        let first = guarded.frame().await.map(|f| f.map(|f| f.into_data().ok()));
        assert!(matches!(first, Some(Ok(Some(_)))));
        // a slow client: the body is not read for longer than its idle deadline
        tokio::time::sleep(Duration::from_secs(3)).await;
        let second = guarded.frame().await.map(|f| f.map(|f| f.into_data().ok()));
        assert!(
            matches!(&second, Some(Ok(Some(b))) if b == "b"),
            "{second:?}"
        );
        assert!(sender.await.is_ok_and(|sent| sent.is_ok()));
    }

    #[tokio::test]
    async fn a_counted_body_reports_what_it_sent_when_dropped() {
        let total = Arc::new(AtomicU64::new(0));
        let seen = total.clone();
        let counted = Counted::new(chunks(4, 25), move |n| seen.store(n, Ordering::SeqCst));
        let _ = counted.collect().await;
        assert_eq!(total.load(Ordering::SeqCst), 100);
    }
}
