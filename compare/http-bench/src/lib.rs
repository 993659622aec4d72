//! What both sides of the HTTP comparison answer: the same 64-byte body with the same
//! content type, so wrk reads the same bytes from troupe's gateway and from nginx.

/// The body every response carries: exactly 64 bytes (the array type checks it).
pub const BODY: &[u8; 64] = b"hello from the http comparison: 64 bytes of fixed text payload.\n";

/// The content type both servers send (`HttpResponse::ok`'s, so troupe needs no extra header).
pub const CONTENT_TYPE: &str = "text/plain; charset=utf-8";
