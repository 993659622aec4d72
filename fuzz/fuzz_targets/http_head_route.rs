//! Feeds arbitrary bytes to what the gateway does with a connection's first bytes before any
//! target is asked: the request head check and, for a complete HTTP/1 head, routing by its
//! path and host.
//!
//! Checks "never panics" and the routing invariants `fuzz_head_and_route` asserts: a chosen
//! route's prefix matches the path at a segment boundary, and a host-specific route is chosen
//! only for its host (case-blind, port stripped).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = troupe_proxy::fuzz_head_and_route(data);
});
