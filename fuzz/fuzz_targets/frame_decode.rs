//! Feeds arbitrary bytes to `FrameCodec::decode`
//!
//! Checks, besides "never panics": `Ok(None)` and `Err` consume nothing, and every frame that
//! decodes re-encodes to exactly the bytes it was decoded from (one encoding per frame).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use troupe_wire::FrameCodec;

fuzz_target!(|data: &[u8]| {
    // A small limit as well as the default, so the limit check is reached with short inputs.
    for codec in [FrameCodec::default(), FrameCodec::new(64)] {
        let mut src = BytesMut::from(data);
        // Each iteration consumes at least the 4-byte prefix, so this ends.
        loop {
            let before = src.clone();
            match codec.decode(&mut src) {
                Ok(Some(frame)) => {
                    let consumed = before.len() - src.len();
                    let mut again = BytesMut::new();
                    codec
                        .encode(&frame, &mut again)
                        .expect("a decoded frame is within the limit");
                    assert_eq!(&again[..], &before[..consumed], "non-canonical: {frame:?}");
                }
                Ok(None) | Err(_) => {
                    assert_eq!(src, before, "Ok(None) and Err consume nothing");
                    break;
                }
            }
        }
    }
});
