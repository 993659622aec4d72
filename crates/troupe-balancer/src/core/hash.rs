//! The fixed hash that places keys and virtual nodes on the consistent-hash ring
//!
//! The ring must put a key on the same member in every process, on every machine and after every
//! Rust upgrade, or a restarted balancer would reshuffle keys that caches and shards depend on.
//! `std::hash::DefaultHasher` does not promise that (its algorithm may change between Rust
//! releases, and `RandomState` is seeded per process), so troupe owns a fixed algorithm:
//!
//! ```text
//! key_hash(bytes) = fmix64(fnv1a64(bytes))
//! fnv1a64: offset basis 0xcbf29ce484222325, prime 0x100000001b3, xor then multiply, per byte
//! fmix64:  MurmurHash3's 64-bit finalizer (xor-shift 33, * 0xff51afd7ed558ccd, xor-shift 33,
//!          * 0xc4ceb9fe1a85ec53, xor-shift 33)
//! ```
//!
//! FNV-1a alone mixes the last bytes of an input weakly into the high bits, which would cluster
//! the virtual nodes of one member (their inputs differ only in the last bytes); the finalizer
//! spreads every input bit over the whole word. Both steps are a few lines with published test
//! vectors, pinned by this crate's tests. This hash is not collision resistant against an
//! adversary choosing keys; it only has to spread keys evenly.

/// FNV-1a 64-bit offset basis
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The 64-bit FNV-1a hash of `bytes`
///
/// Stable forever: the value for a given input never changes between releases or platforms.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET_BASIS;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// MurmurHash3's 64-bit finalizer: a bijection on `u64` in which every input bit affects every
/// output bit
///
/// Stable forever, like [`fnv1a64`].
pub fn fmix64(mut word: u64) -> u64 {
    word ^= word >> 33;
    word = word.wrapping_mul(0xff51_afd7_ed55_8ccd);
    word ^= word >> 33;
    word = word.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    word ^= word >> 33;
    word
}

/// The position of `key` on the consistent-hash ring: `fmix64(fnv1a64(key))`
///
/// Stable forever: the same key has the same position in every process and every release, so a
/// restarted balancer maps keys to the same members as before.
///
/// # Examples
///
/// ```
/// use troupe_balancer::core::hash::key_hash;
///
/// assert_eq!(key_hash(b"user:42"), key_hash(b"user:42"));
/// assert_ne!(key_hash(b"user:42"), key_hash(b"user:43"));
/// ```
pub fn key_hash(key: &[u8]) -> u64 {
    fmix64(fnv1a64(key))
}

/// The ring position of virtual node `replica` of the member with raw id `member`
///
/// It is [`key_hash`] of the member id's 8 little-endian bytes followed by the replica index's 4
/// little-endian bytes, so a member's points depend only on its id and weight, never on the
/// order members were added in or on the other members.
pub(crate) fn vnode_point(member: u64, replica: u32) -> u64 {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&member.to_le_bytes());
    bytes[8..].copy_from_slice(&replica.to_le_bytes());
    key_hash(&bytes)
}
