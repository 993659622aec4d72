//! The upstream nginx proxies to in the HTTP comparison: a minimal hyper 1 HTTP/1.1 server
//! (keep-alive) answering every request with the same 64-byte body and content type as
//! troupe-http's responders. hyper adds `date` and `content-length`, as it does behind
//! troupe's gateway. `GET /big` answers 10 MiB instead (one shared buffer, sent in 64 KiB
//! chunks), for the large-body streaming runs.
//!
//!   upstream --listen 127.0.0.1:0
//!
//! Prints `listening ADDR` once bound; runs until SIGINT/SIGTERM.

use bytes::Bytes;
use clap::Parser;
use http_bench::{BODY, CONTENT_TYPE};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE as CONTENT_TYPE_HEADER, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

#[derive(Parser, Debug)]
#[command(about = "fixed-body hyper server for nginx to proxy to")]
struct Args {
    /// TCP address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

/// The size of `GET /big`'s body.
const BIG: usize = 10 << 20;

/// A body of `chunks` frames of `chunk`, in turn.
struct Repeat {
    chunk: Bytes,
    left: usize,
}

impl hyper::body::Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return std::task::Poll::Ready(None);
        }
        this.left -= 1;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(this.chunk.clone()))))
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact((self.left * self.chunk.len()) as u64)
    }
}

async fn answer(
    req: Request<Incoming>,
) -> Result<Response<http_body_util::Either<Full<Bytes>, Repeat>>, Infallible> {
    if req.uri().path() == "/big" {
        static CHUNK: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
        let chunk = CHUNK
            .get_or_init(|| Bytes::from(vec![b'x'; 64 << 10]))
            .clone();
        let left = BIG / chunk.len();
        return Ok(Response::new(http_body_util::Either::Right(Repeat {
            chunk,
            left,
        })));
    }
    let mut response = Response::new(http_body_util::Either::Left(Full::new(Bytes::from_static(
        BODY,
    ))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    http_bench::accept_until_signalled(&args.listen, |stream| {
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    })
    .await
}
