//! The messages between the proxy and the actors it fronts.

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
#[request(name = "troupe.http.Request", version = 1, response = HttpResponse)]
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
        first_header(&self.headers, name)
    }
}

/// The first value of header `name` (case-insensitive) among `headers`.
pub(crate) fn first_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
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
