//! Feeds arbitrary bytes to the cache's memcached text decoder, whole and cut in two
//!
//! Checks, besides "never panics": a decoded request consumed at least one byte; `Ok(None)`
//! kept the buffer within one request's limit; and decoding the input in two pieces gives the
//! same requests, in order, as decoding it whole (the decoder resumes where it stopped).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use troupe_cache::memcache::{Decoder, Limits, Request};

/// Every request of `pieces`, fed one after another, and whether the decoder gave up.
fn decode(pieces: &[&[u8]], limits: Limits) -> (Vec<Request>, bool) {
    let mut decoder = Decoder::new(limits);
    let mut input = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        input.extend_from_slice(piece);
        loop {
            let before = input.len();
            match decoder.decode(&mut input) {
                Ok(Some(request)) => {
                    assert!(input.len() < before, "a request consumed nothing");
                    out.push(request);
                }
                Ok(None) => {
                    assert!(input.len() <= limits.max_request(), "buffer past the limit");
                    break;
                }
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let small = Limits {
        max_line: 64,
        max_get_line: 256,
        max_item_size: 32,
    };
    for limits in [Limits::default(), small] {
        let (whole, whole_refused) = decode(&[data], limits);
        let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
        let (split, split_refused) = decode(&[&data[..cut], &data[cut..]], limits);
        // a refusal may come sooner when a long line arrives in pieces: compare what both saw
        if !whole_refused && !split_refused {
            assert_eq!(whole, split);
        } else {
            let n = whole.len().min(split.len());
            assert_eq!(whole[..n], split[..n]);
        }
    }
});
