//! The messages between the proxy and the actors it fronts.

use serde::{Deserialize, Serialize};
use troupe_runtime::Message;

/// An HTTP request, as the proxy hands it to a target actor.
///
/// Any actor whose message type is `HttpRequest` (and so replies with [`HttpResponse`]) can be
/// a proxy target, directly or behind a balancer, on this node or another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// The method, upper case (`GET`, `PUT`, ...).
    pub method: String,
    /// The path, percent-encoded as received, starting with `/`.
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// The request's host (from `Host` or the URI authority), without port.
    pub host: Option<String>,
    /// Header names (lower case) and values that are valid UTF-8, in order.
    pub headers: Vec<(String, String)>,
    /// The body (at most the proxy's body limit).
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// The client's IP address, as the proxy saw it.
    pub client: Option<std::net::IpAddr>,
}

impl HttpRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Message for HttpRequest {
    const NAME: &'static str = "troupe.http.Request";
    const VERSION: u16 = 1;
    type Reply = HttpResponse;
}

/// What a target actor answers; the proxy writes it back to the client as is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with `status` and a `text/plain` body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: body.into().into_bytes(),
        }
    }

    /// A `200 OK` with a `text/plain` body.
    pub fn ok(body: impl Into<String>) -> Self {
        Self::text(200, body)
    }

    /// A response with `status` and an `application/json` body.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }
}
