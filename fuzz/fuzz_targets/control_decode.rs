//! Feeds arbitrary bytes to what a node does with a control frame's body from an authenticated
//! peer (gossip of members, announced names): decoding and the member and name limits.
//!
//! Checks "never panics" and that an accepted member list never makes the table outgrow its
//! limit (`fuzz_control_body` refuses anything else).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = troupe_runtime::remote::fuzz_control_body(data);
});
