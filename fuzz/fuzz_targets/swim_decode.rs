//! Feeds arbitrary bytes to what a node does with a membership datagram from an authenticated
//! peer: the packet codec, the identity filter, then foca itself.
//!
//! Checks "never panics", that whatever the filter lets through it can read back, and that no
//! identity it did not vouch for (a certificate-checked name at its generation) survives the
//! filter (`fuzz_swim_datagram` asserts both).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = troupe_runtime::remote::fuzz_swim_datagram(data);
});
