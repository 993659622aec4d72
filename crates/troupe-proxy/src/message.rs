//! The messages between the proxy and the actors it fronts.
//!
//! They are built on the [`http`] crate's types ([`Method`], [`Uri`], [`HeaderMap`],
//! [`StatusCode`]) and [`Bytes`] bodies, so a request is handed over as hyper parsed it — no
//! header or body is copied on the way to a target in this process — and a target's headers
//! need not be UTF-8. Over the wire they travel as their text and bytes, checked again on
//! arrival: a peer's invalid method, URI, header or status fails the decoding, never a target.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use troupe_runtime::{Ask, Request};

/// The message type of a proxy target: an [`HttpRequest`] with the port for its
/// [`HttpResponse`].
///
/// Any actor with `type Msg = HttpCall;` can be a proxy target, directly or behind a balancer,
/// on this node or another; the proxy calls it with
/// [`Addr::ask`](troupe_runtime::Addr::ask).
pub type HttpCall = Ask<HttpRequest>;

/// An HTTP request, as the proxy hands it to a target actor, answered with an
/// [`HttpResponse`].
///
/// It travels as [`HttpCall`] (`Ask<HttpRequest>`): the target answers `ask.reply`, and the
/// request can be forwarded or balanced without its reply port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Request)]
#[request(name = "troupe.http.Request", version = 2, response = HttpResponse)]
pub struct HttpRequest {
    /// The method.
    #[serde(with = "crate::wire::method")]
    pub method: Method,
    /// The request target as received: the path (percent-encoded, starting with `/`) and the
    /// query, or the absolute form with scheme and authority (HTTP/2 requests always carry
    /// both).
    #[serde(with = "crate::wire::uri")]
    pub uri: Uri,
    /// The headers, in the order received.
    #[serde(with = "crate::wire::headers")]
    pub headers: HeaderMap,
    /// The body (at most the proxy's body limit).
    pub body: Bytes,
    /// The client's IP address, as the proxy saw it.
    pub client: Option<std::net::IpAddr>,
}

impl HttpRequest {
    /// A request with `method` for `uri` (a path such as `Uri::from_static("/items/7")`), no
    /// headers, no body and no client.
    ///
    /// For targets' tests and for actors that ask a target themselves; the proxy builds its
    /// requests from what hyper parsed.
    pub fn new(method: Method, uri: Uri) -> Self {
        Self {
            method,
            uri,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            client: None,
        }
    }

    /// This request with `body`.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// This request with header `name: value` added.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The path, percent-encoded as received, starting with `/`.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    /// The request's host, without port, as the client wrote it (from the URI's authority or
    /// the `Host` header); hosts are case-insensitive, so compare with `eq_ignore_ascii_case`.
    pub fn host(&self) -> Option<&str> {
        host_of(&self.uri, &self.headers)
    }

    /// The first value of header `name` (any case), if it is there and is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        first_header(&self.headers, name)
    }
}

/// The request's host without port: the URI's authority, else the `Host` header.
pub(crate) fn host_of<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    host_in(uri, headers.get(http::header::HOST))
}

/// The host without port of a request with `uri` and `host` header: the URI's authority,
/// else the header.
pub(crate) fn host_in<'a>(uri: &'a Uri, host: Option<&'a HeaderValue>) -> Option<&'a str> {
    match uri.host() {
        Some(host) => Some(host),
        None => host
            .and_then(|h| h.to_str().ok())
            .map(crate::core::without_port),
    }
}

/// The first value of header `name` (any case) among `headers`, if it is valid UTF-8.
pub(crate) fn first_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// What a target actor answers; the proxy writes it back to the client as is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// The status.
    #[serde(with = "crate::wire::status")]
    pub status: StatusCode,
    /// The headers.
    #[serde(with = "crate::wire::headers")]
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response with `status`, no headers and `body` (a `&'static str` or `String`, a
    /// `Vec<u8>` or [`Bytes`]: none is copied).
    pub fn new(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    /// A response with `status` and a `text/plain` body.
    pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self::new(status, body).with_header(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )
    }

    /// A `200 OK` with a `text/plain` body.
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Self::text(StatusCode::OK, body)
    }

    /// A response with `status` and an `application/json` body.
    pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self::new(status, body).with_header(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )
    }

    /// This response with header `name: value` added (after any of the same name).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The first value of header `name` (any case), if it is there and is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        first_header(&self.headers, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What crosses the wire comes back equal: method, URI, repeated and non-UTF-8 headers,
    /// body, status.
    #[test]
    fn requests_and_responses_cross_the_wire_unchanged() {
        let request = HttpRequest::new(
            Method::from_bytes(b"PURGE").unwrap(),
            Uri::from_static("/a/b?c=1"),
        )
        .with_header(
            http::header::HOST,
            HeaderValue::from_static("Example.COM:8080"),
        )
        .with_header(http::header::COOKIE, HeaderValue::from_static("a=1"))
        .with_header(http::header::COOKIE, HeaderValue::from_static("b=2"))
        .with_header(
            HeaderName::from_static("x-raw"),
            HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        )
        .with_body(&b"\x00\xffbody"[..]);
        let bytes = rmp_serde::to_vec(&request).unwrap();
        let back: HttpRequest = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, request);
        assert_eq!(back.path(), "/a/b");
        assert_eq!(back.query(), Some("c=1"));
        assert_eq!(back.host(), Some("Example.COM"));
        assert_eq!(back.header("Cookie"), Some("a=1"));
        assert_eq!(back.header("x-raw"), None, "not UTF-8, so not as text");
        assert_eq!(back.headers.get_all("cookie").iter().count(), 2);

        let response = HttpResponse::json(StatusCode::CREATED, "{}")
            .with_header(http::header::ETAG, HeaderValue::from_static("\"7\""));
        let bytes = rmp_serde::to_vec(&response).unwrap();
        let back: HttpResponse = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, response);
        assert_eq!(back.header("content-type"), Some("application/json"));
    }

    /// A peer's invalid status, header name or method fails the decoding with a reason.
    #[test]
    fn invalid_parts_from_a_peer_fail_the_decoding() {
        #[derive(Serialize)]
        struct Raw<'a> {
            status: u16,
            headers: Vec<(&'a str, &'a serde_bytes::Bytes)>,
            body: &'a serde_bytes::Bytes,
        }
        let value = serde_bytes::Bytes::new(b"v");
        let empty = serde_bytes::Bytes::new(b"");
        for (status, name, why) in [(1000, "ok", "status"), (200, "bad name", "header name")] {
            let raw = Raw {
                status,
                headers: vec![(name, value)],
                body: empty,
            };
            let bytes = rmp_serde::to_vec(&raw).unwrap();
            let err = rmp_serde::from_slice::<HttpResponse>(&bytes).unwrap_err();
            assert!(err.to_string().contains(why), "{why}: {err}");
        }
        let newline = serde_bytes::Bytes::new(b"a\nb");
        let raw = Raw {
            status: 200,
            headers: vec![("ok", newline)],
            body: empty,
        };
        let bytes = rmp_serde::to_vec(&raw).unwrap();
        let err = rmp_serde::from_slice::<HttpResponse>(&bytes).unwrap_err();
        assert!(err.to_string().contains("header value"), "{err}");
        // more headers than a message may carry: refused, not a panic or a huge map
        let raw = Raw {
            status: 200,
            headers: vec![("a", empty); crate::wire::MAX_HEADERS + 1],
            body: empty,
        };
        let bytes = rmp_serde::to_vec(&raw).unwrap();
        let err = rmp_serde::from_slice::<HttpResponse>(&bytes).unwrap_err();
        assert!(err.to_string().contains("more than 1000 headers"), "{err}");
        // 40,000 distinct names would overflow the map's table: refused at the limit as well
        let names: Vec<String> = (0..40_000).map(|i| format!("x-{i}")).collect();
        let raw = Raw {
            status: 200,
            headers: names.iter().map(|n| (n.as_str(), empty)).collect(),
            body: empty,
        };
        let bytes = rmp_serde::to_vec(&raw).unwrap();
        assert!(rmp_serde::from_slice::<HttpResponse>(&bytes).is_err());
    }

    /// The host comes from the URI's authority when it has one (HTTP/2, absolute form), else
    /// from the `Host` header, without its port either way.
    #[test]
    fn the_host_is_the_authority_or_the_host_header_without_port() {
        let absolute =
            HttpRequest::new(Method::GET, Uri::from_static("https://Shop.example:8443/x"))
                .with_header(
                    http::header::HOST,
                    HeaderValue::from_static("other.example"),
                );
        assert_eq!(absolute.host(), Some("Shop.example"));
        let origin = HttpRequest::new(Method::GET, Uri::from_static("/x"))
            .with_header(http::header::HOST, HeaderValue::from_static("[::1]:8080"));
        assert_eq!(origin.host(), Some("[::1]"));
        assert_eq!(
            HttpRequest::new(Method::GET, Uri::from_static("/x")).host(),
            None
        );
    }
}
