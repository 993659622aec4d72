//! Feeds arbitrary bytes to the cache's RESP decoder and command parser
//!
//! Checks, besides "never panics": a decoded frame consumed at least one byte and no more than
//! was given, and parsing it into a command never panics either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use troupe_cache::cmd::Command;
use troupe_cache::resp::{Frame, Limits};

fuzz_target!(|data: &[u8]| {
    let small = Limits {
        max_bulk_len: 64,
        max_array_len: 16,
        ..Limits::default()
    };
    for limits in [Limits::default(), small] {
        let mut rest = data;
        while let Ok(Some((frame, used))) = Frame::decode(rest, &limits) {
            assert!(used > 0 && used <= rest.len());
            let _ = Command::from_frame(frame);
            rest = &rest[used..];
        }
    }
});
