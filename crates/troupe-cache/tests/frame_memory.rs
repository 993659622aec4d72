//! What decoding costs in memory when a client lies about lengths: nested arrays that
//! declare a million elements each, sent in a few hundred bytes, must not reserve memory for
//! the declared counts (a client could otherwise make the server reserve gigabytes per read,
//! before it has even authenticated). Measured as the growth of the process's peak virtual
//! size (`VmPeak`: a reservation counts even where no page is touched), in a test binary of
//! its own so nothing else allocates meanwhile.

use bytes::BytesMut;
use troupe_cache::resp::{Frame, Limits};

/// The process's peak virtual size, in bytes (Linux).
fn vm_peak() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

#[test]
fn declared_array_lengths_reserve_nothing_past_the_bytes_received() {
    let Some(before) = vm_peak() else {
        eprintln!("skipped: no /proc/self/status VmPeak on this system");
        return;
    };
    let limits = Limits {
        max_depth: 64,
        ..Limits::default()
    };
    let mut buf = BytesMut::from(&b"*1048576\r\n".repeat(30)[..]);
    let mut frames = Vec::new();
    assert_eq!(Frame::decode_all(&mut buf, &limits, &mut frames), Ok(()));
    assert!(frames.is_empty(), "an incomplete frame");
    assert_eq!(buf.len(), 300, "nothing consumed");
    let grown = vm_peak().unwrap_or(before).saturating_sub(before);
    assert!(
        grown < 256 << 20,
        "decoding 300 bytes grew the peak virtual size by {} MiB",
        grown >> 20
    );
}
