//! `CONFIG GET` and `CONFIG SET`: the parameters this server has, by Redis's
//! names, values and error texts
//!
//! - `maxmemory`: the whole cache's byte bound, split evenly over the shards
//!   (`0`: no bound); lowering it evicts at once under the policy
//! - `maxmemory-policy`: `allkeys-lru` (the default: a cache),
//!   `volatile-lru`, `noeviction`
//! - `maxclients`, `timeout` (seconds idle; `0`: never),
//!   `client-query-buffer-limit`, `proto-max-bulk-len`
//! - `save` (`""`) and `appendonly` (`no`): the cache keeps nothing on disk; tools that read
//!   them (`redis-benchmark` does) get Redis's answer for a server without persistence, and
//!   `CONFIG SET` takes only those values
//!
//! `CONFIG SET` checks every pair before applying any, as Redis 7 does, runs
//! one at a time, and changes the shards first: if a shard cannot be reached
//! the error is the reply and the client limits are unchanged (shards reached
//! keep the new memory settings; setting them again converges). The memory
//! settings live in the shards and outlive their restarts; the client limits
//! live in the RESP server and apply to new reads at once.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::cmd::{glob_matches, ok};
use crate::resp::Frame;
use crate::server::Shared;
use crate::store::EvictionPolicy;

/// The smallest `client-query-buffer-limit` and `proto-max-bulk-len` Redis
/// accepts.
const MIN_BUFFER_LIMIT: u64 = 1024 * 1024;

/// A parameter this server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    MaxMemory,
    MaxMemoryPolicy,
    MaxClients,
    Timeout,
    ClientQueryBufferLimit,
    ProtoMaxBulkLen,
    Save,
    AppendOnly,
}

impl Param {
    const ALL: [Self; 8] = [
        Self::MaxMemory,
        Self::MaxMemoryPolicy,
        Self::MaxClients,
        Self::Timeout,
        Self::ClientQueryBufferLimit,
        Self::ProtoMaxBulkLen,
        Self::Save,
        Self::AppendOnly,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::MaxMemory => "maxmemory",
            Self::MaxMemoryPolicy => "maxmemory-policy",
            Self::MaxClients => "maxclients",
            Self::Timeout => "timeout",
            Self::ClientQueryBufferLimit => "client-query-buffer-limit",
            Self::ProtoMaxBulkLen => "proto-max-bulk-len",
            Self::Save => "save",
            Self::AppendOnly => "appendonly",
        }
    }

    fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// A checked value for one parameter.
#[derive(Debug, Clone, Copy)]
enum Setting {
    MaxMemory(u64),
    Policy(EvictionPolicy),
    MaxClients(usize),
    Timeout(u64),
    QueryBufferLimit(usize),
    MaxBulkLen(usize),
    /// `save ""` or `appendonly no`: what the cache does already
    NoPersistence,
}

/// `CONFIG GET pattern [pattern ...]`: the parameters matching any pattern
/// (case-insensitive globs), as a flat array of names and values.
/// Parameters this server does not have are left out, as Redis leaves out
/// unknown ones.
pub(crate) async fn get(shared: &Shared, patterns: &[Bytes]) -> Frame {
    let patterns: Vec<Vec<u8>> = patterns.iter().map(|p| p.to_ascii_lowercase()).collect();
    let wanted: Vec<Param> = Param::ALL
        .into_iter()
        .filter(|p| {
            patterns
                .iter()
                .any(|pat| glob_matches(pat, p.name().as_bytes()))
        })
        .collect();
    let memory = if wanted
        .iter()
        .any(|p| matches!(p, Param::MaxMemory | Param::MaxMemoryPolicy))
    {
        match shared.client.configure(None, None).await {
            Ok(configs) => Some(configs),
            Err(err) => return Frame::Error(err.to_string()),
        }
    } else {
        None
    };
    let mut out = Vec::new();
    for param in wanted {
        let value = match param {
            Param::MaxMemory => {
                let configs = memory.as_deref().unwrap_or_default();
                if configs.iter().any(|c| c.max_bytes == usize::MAX) {
                    "0".to_string()
                } else {
                    let total = configs
                        .iter()
                        .fold(0usize, |sum, c| sum.saturating_add(c.max_bytes));
                    total.to_string()
                }
            }
            Param::MaxMemoryPolicy => memory
                .as_deref()
                .and_then(|configs| configs.first())
                .map_or(EvictionPolicy::default(), |c| c.policy)
                .name()
                .to_string(),
            Param::MaxClients => shared.max_connections.get().to_string(),
            // whole seconds, rounded up: a sub-second timeout is not `0` (never)
            Param::Timeout => shared
                .idle_timeout_ms
                .load(Ordering::Relaxed)
                .div_ceil(1000)
                .to_string(),
            Param::ClientQueryBufferLimit => shared
                .query_buffer_limit
                .load(Ordering::Relaxed)
                .to_string(),
            Param::ProtoMaxBulkLen => shared.max_bulk_len.load(Ordering::Relaxed).to_string(),
            Param::Save => String::new(),
            Param::AppendOnly => "no".to_string(),
        };
        out.push(Frame::Bulk(Bytes::from_static(param.name().as_bytes())));
        out.push(Frame::Bulk(Bytes::from(value)));
    }
    Frame::Array(out)
}

/// `CONFIG SET parameter value [parameter value ...]`: every pair checked,
/// then all applied; `OK`, or Redis's error naming the first bad one (and
/// nothing changed).
pub(crate) async fn set(shared: &Shared, pairs: Vec<(Bytes, Bytes)>) -> Frame {
    let mut settings: Vec<(Param, Setting)> = Vec::with_capacity(pairs.len());
    for (name, value) in &pairs {
        let Some(param) = Param::from_name(name) else {
            return Frame::Error(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(name)
            ));
        };
        let failed = |why: &str| {
            Frame::Error(format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - {why}",
                param.name()
            ))
        };
        if settings.iter().any(|(p, _)| *p == param) {
            return failed("duplicate parameter");
        }
        let setting = match check(param, value) {
            Ok(setting) => setting,
            Err(why) => return failed(&why),
        };
        settings.push((param, setting));
    }
    // one CONFIG SET at a time, so two never leave the shards with a mix of their settings
    let _one_at_a_time = shared.config_lock.lock().await;
    let mut max_bytes = None;
    let mut policy = None;
    for (_, setting) in &settings {
        match *setting {
            Setting::MaxMemory(0) => max_bytes = Some(usize::MAX),
            Setting::MaxMemory(n) => max_bytes = Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Setting::Policy(p) => policy = Some(p),
            _ => {}
        }
    }
    // the shards first: if one cannot be reached, the client limits stay as they were
    if (max_bytes.is_some() || policy.is_some())
        && let Err(err) = shared.client.configure(max_bytes, policy).await
    {
        return Frame::Error(err.to_string());
    }
    for (_, setting) in &settings {
        match *setting {
            Setting::MaxClients(n) => shared.max_connections.set(n),
            Setting::Timeout(secs) => shared
                .idle_timeout_ms
                .store(secs.saturating_mul(1000), Ordering::Relaxed),
            Setting::QueryBufferLimit(n) => shared.query_buffer_limit.store(n, Ordering::Relaxed),
            Setting::MaxBulkLen(n) => shared.max_bulk_len.store(n, Ordering::Relaxed),
            Setting::MaxMemory(_) | Setting::Policy(_) | Setting::NoPersistence => {}
        }
    }
    tracing::info!(?settings, "CONFIG SET applied");
    ok()
}

/// `value` checked for `param`, or why not (Redis's words).
fn check(param: Param, value: &[u8]) -> Result<Setting, String> {
    let text = std::str::from_utf8(value).unwrap_or("");
    let integer = || {
        text.parse::<u64>()
            .map_err(|_| "argument couldn't be parsed into an integer".to_string())
    };
    let memory = || parse_memory(text).ok_or_else(|| "argument must be a memory value".to_string());
    let at_least = |n: u64, min: u64| {
        if n >= min {
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        } else {
            Err(format!(
                "argument must be between {min} and {} inclusive",
                i64::MAX
            ))
        }
    };
    Ok(match param {
        Param::MaxMemory => Setting::MaxMemory(memory()?),
        Param::MaxMemoryPolicy => {
            Setting::Policy(EvictionPolicy::from_name(value).ok_or_else(|| {
                let names: Vec<&str> = EvictionPolicy::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "argument(s) must be one of the following: {}",
                    names.join(", ")
                )
            })?)
        }
        Param::MaxClients => Setting::MaxClients(at_least(integer()?, 1)?),
        Param::Timeout => Setting::Timeout(integer()?),
        Param::ClientQueryBufferLimit => {
            Setting::QueryBufferLimit(at_least(memory()?, MIN_BUFFER_LIMIT)?)
        }
        Param::ProtoMaxBulkLen => Setting::MaxBulkLen(at_least(memory()?, MIN_BUFFER_LIMIT)?),
        Param::Save if text.trim().is_empty() => Setting::NoPersistence,
        Param::AppendOnly if text.eq_ignore_ascii_case("no") => Setting::NoPersistence,
        Param::Save | Param::AppendOnly => {
            return Err("troupe's cache keeps nothing on disk".to_string());
        }
    })
}

/// A memory value as Redis reads one: digits and an optional unit, `k`/`m`/`g`
/// for powers of 1000 and `kb`/`mb`/`gb` for powers of 1024 (any case).
fn parse_memory(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    let factor: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_values_read_as_redis_reads_them() {
        assert_eq!(parse_memory("100"), Some(100));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("1KB"), Some(1024));
        assert_eq!(parse_memory("10mb"), Some(10 << 20));
        assert_eq!(parse_memory("2g"), Some(2_000_000_000));
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("0"), Some(0));
        for bad in ["", "mb", "-1", "1.5mb", "1tb", "1 mb", "x"] {
            assert_eq!(parse_memory(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn checks_name_the_problem_as_redis_does() {
        assert!(matches!(
            check(Param::Timeout, b"30"),
            Ok(Setting::Timeout(30))
        ));
        assert_eq!(
            check(Param::Timeout, b"x").unwrap_err(),
            "argument couldn't be parsed into an integer"
        );
        assert_eq!(
            check(Param::ProtoMaxBulkLen, b"1000").unwrap_err(),
            "argument must be between 1048576 and 9223372036854775807 inclusive"
        );
        assert_eq!(
            check(Param::MaxMemoryPolicy, b"allkeys-lfu").unwrap_err(),
            "argument(s) must be one of the following: allkeys-lru, volatile-lru, noeviction"
        );
        assert!(matches!(
            check(Param::MaxMemoryPolicy, b"NOEVICTION"),
            Ok(Setting::Policy(EvictionPolicy::NoEviction))
        ));
        assert!(matches!(
            check(Param::MaxMemory, b"1mb"),
            Ok(Setting::MaxMemory(1_048_576))
        ));
        assert!(matches!(
            check(Param::Save, b""),
            Ok(Setting::NoPersistence)
        ));
        assert!(matches!(
            check(Param::AppendOnly, b"NO"),
            Ok(Setting::NoPersistence)
        ));
        assert_eq!(
            check(Param::Save, b"3600 1").unwrap_err(),
            "troupe's cache keeps nothing on disk"
        );
        assert_eq!(
            check(Param::AppendOnly, b"yes").unwrap_err(),
            "troupe's cache keeps nothing on disk"
        );
    }
}
