//! The first request head of a connection, checked before hyper sees it, so that a malformed
//! request gets a `400` with a text body saying what was wrong (hyper's own is empty).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Largest request head accepted (request line and headers).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// Why a connection's first request was refused before reaching hyper.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// The client went away or sent nothing in time: just close.
    Gone,
    /// Answer with this status and text, then close.
    Refuse(u16, &'static str),
}

/// Reads until the first request head is complete and checks it, within `timeout` of the
/// connection's start. Returns the bytes read, to be replayed to hyper.
pub(crate) async fn read_first_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Bytes, HeadError> {
    let mut buf = BytesMut::with_capacity(4096);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check(&buf) {
            Check::Complete => return Ok(buf.freeze()),
            Check::Refuse(status, text) => return Err(HeadError::Refuse(status, text)),
            Check::Partial => {}
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::Refuse(431, "the request head is too large"));
        }
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadError::Gone),
            Ok(Ok(_)) => {}
            Err(_) if buf.is_empty() => return Err(HeadError::Gone),
            Err(_) => {
                return Err(HeadError::Refuse(
                    408,
                    "the request head did not arrive in time",
                ));
            }
        }
    }
}

enum Check {
    Complete,
    Partial,
    Refuse(u16, &'static str),
}

fn check(buf: &[u8]) -> Check {
    if buf.is_empty() {
        return Check::Partial;
    }
    // HTTP/2 with prior knowledge: hyper checks the rest
    if H2_PREFACE.starts_with(&buf[..buf.len().min(H2_PREFACE.len())]) {
        return if buf.len() >= H2_PREFACE.len() {
            Check::Complete
        } else {
            Check::Partial
        };
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => Check::Complete,
        Ok(httparse::Status::Partial) => Check::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            Check::Refuse(431, "the request has too many headers")
        }
        Err(httparse::Error::Version) => Check::Refuse(400, "malformed request: bad HTTP version"),
        Err(httparse::Error::Token) => {
            Check::Refuse(400, "malformed request: bad method or request line")
        }
        Err(httparse::Error::HeaderName | httparse::Error::HeaderValue) => {
            Check::Refuse(400, "malformed request: bad header")
        }
        Err(_) => Check::Refuse(400, "malformed request"),
    }
}

/// Runs `data`, as a connection's first bytes, through what the server does before a target
/// is asked: the head check (complete, partial, or refused with a status) and, for a complete
/// HTTP/1 head, routing its path and host through a fixed table. Answers the target chosen.
/// For the fuzz target `fuzz/fuzz_targets/http_head_route.rs`: it panics only if a route is
/// chosen whose prefix does not match the path at a segment boundary, or on a host it should
/// have matched case-blind.
#[doc(hidden)]
pub fn fuzz_head_and_route(data: &[u8]) -> Option<usize> {
    if !matches!(check(data), Check::Complete) {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // an HTTP/2 preface is complete for the check, but no HTTP/1 head
    let Ok(httparse::Status::Complete(_)) = req.parse(data) else {
        return None;
    };
    let path = req.path?.split('?').next().unwrap_or_default();
    let host = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(crate::core::host_name);
    const PREFIXES: [(Option<&str>, &str); 4] = [
        (None, "/"),
        (None, "/api"),
        (Some("admin.example"), "/"),
        (Some("Admin.Example"), "/api/v2/"),
    ];
    let mut routes = crate::core::Routes::new();
    for (i, (host, prefix)) in PREFIXES.iter().enumerate() {
        routes.add(*host, prefix, i);
    }
    let chosen = routes.resolve(host.as_deref(), path)?;
    let (route_host, prefix) = PREFIXES[chosen];
    let prefix = prefix.trim_end_matches('/');
    assert!(
        path.starts_with(prefix)
            && (prefix.is_empty()
                || path.len() == prefix.len()
                || path.as_bytes()[prefix.len()] == b'/'),
        "{path:?} routed to {prefix:?}"
    );
    if let Some(route_host) = route_host {
        assert_eq!(
            host.as_deref(),
            Some(route_host.to_ascii_lowercase().as_str())
        );
    }
    Some(chosen)
}

/// The bytes of a refusal: status line, a short text body, `connection: close`.
pub(crate) fn refusal(status: u16, text: &str) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = format!("{text}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A stream that first replays bytes already read from it.
pub(crate) struct Replay<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Replay<S> {
    pub(crate) fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn head(bytes: &[u8]) -> Result<Bytes, HeadError> {
        let mut s = bytes;
        read_first_head(&mut s, Duration::from_secs(10)).await
    }

    #[test]
    fn the_fuzz_entry_routes_complete_heads_by_path_and_host() {
        let route = |raw: &str| fuzz_head_and_route(raw.as_bytes());
        assert_eq!(route("GET /api/x?y HTTP/1.1\r\nhost: a\r\n\r\n"), Some(1));
        assert_eq!(route("GET /apix HTTP/1.1\r\nhost: a\r\n\r\n"), Some(0));
        assert_eq!(
            route("GET /api/v2/k HTTP/1.1\r\nHost: ADMIN.example:80\r\n\r\n"),
            Some(3)
        );
        assert_eq!(
            route("GET /z HTTP/1.1\r\nhost: admin.example\r\n\r\n"),
            Some(2)
        );
        assert_eq!(route("GET /z HTTP/1.1\r\nhost: a"), None);
        assert_eq!(route("GET /z HTTP/9\r\n\r\n"), None);
        assert_eq!(route("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), None);
    }

    #[tokio::test]
    async fn complete_heads_are_replayed_whole() {
        let raw = b"GET /x HTTP/1.1\r\nhost: a\r\n\r\nbody";
        assert_eq!(head(raw).await.unwrap(), Bytes::from_static(raw));
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert!(head(h2).await.is_ok());
    }

    #[tokio::test]
    async fn malformed_heads_are_refused_with_a_reason() {
        for bad in [
            &b"THIS IS NOT HTTP\r\n\r\n"[..],
            b"GET / HTTP/9.9\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
            b"G\x01T / HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(head(bad).await, Err(HeadError::Refuse(400, _))),
                "{bad:?}"
            );
        }
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..200 {
            many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(head(&many).await, Err(HeadError::Refuse(431, _))));
        // a client that closes mid-head is just gone
        assert_eq!(head(b"GET / HT").await, Err(HeadError::Gone));
    }

    #[test]
    fn refusals_carry_a_text_body() {
        let r = String::from_utf8(refusal(400, "malformed request")).unwrap();
        assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(r.ends_with("\r\n\r\nmalformed request\n"));
    }
}
