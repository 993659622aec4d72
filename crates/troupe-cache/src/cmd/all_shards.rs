//! Commands that run on every shard: `DBSIZE`, `FLUSHDB`, `FLUSHALL`,
//! `KEYS`, `SCAN` — each parsed here, run by the front end across the
//! shards, with the part each shard runs beside it
//!
//! `SCAN`'s cursor names a shard and a position in that shard's scan order
//! (`position × shards + shard`): a scan walks the shards one after the
//! other, and each shard walks its keys in an order where a key keeps its
//! place while it exists, so every key present for the whole scan is
//! returned exactly once, as Redis guarantees (at least once).

use bytes::Bytes;

use super::{Args, Command, CommandError, count, glob_matches, ok};
use crate::client::CacheClient;
use crate::resp::Frame;
use crate::store::{Kind, Store};

/// `SCAN`'s default `COUNT`
pub const DEFAULT_SCAN_COUNT: usize = 10;

/// A command on every shard
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllShards {
    /// `DBSIZE`
    DbSize,
    /// `FLUSHDB`/`FLUSHALL [ASYNC|SYNC]` (one database: the same)
    Flush,
    /// `KEYS pattern`
    Keys(Bytes),
    /// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`
    Scan(Scan),
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Where to go on from (0 starts)
    pub cursor: u64,
    /// `MATCH`: a glob keys must match
    pub pattern: Option<Bytes>,
    /// `COUNT`: how many keys to look at
    pub count: usize,
    /// `TYPE`: the type keys must have (`Some(None)`: a name Redis 7.2
    /// accepts but no key has)
    pub kind: Option<Option<Kind>>,
}

impl AllShards {
    /// Runs it across the shards of `client`; the reply Redis gives
    ///
    /// # Cancel safety
    ///
    /// As the [`CacheClient`] calls it makes: a flush may reach some shards.
    pub(crate) async fn run(self, client: &CacheClient) -> Frame {
        let bulks = |keys: Vec<Bytes>| Frame::Array(keys.into_iter().map(Frame::Bulk).collect());
        let reply = match self {
            Self::DbSize => client
                .dbsize()
                .await
                .map(|n| count(usize::try_from(n).unwrap_or(usize::MAX))),
            Self::Flush => client.flushall().await.map(|()| ok()),
            Self::Keys(pattern) => client.keys(pattern).await.map(bulks),
            Self::Scan(scan) => {
                let shards = client.shards().len();
                let (shard, position) = Scan::position(scan.cursor, shards);
                client
                    .scan_shard(shard, position, scan.count, scan.pattern, scan.kind)
                    .await
                    .map(|(keys, next)| {
                        let cursor = match next {
                            Some(next) => Scan::cursor(shard, next, shards),
                            None => Scan::cursor(shard + 1, 0, shards),
                        };
                        Frame::Array(vec![Frame::Bulk(cursor.to_string().into()), bulks(keys)])
                    })
            }
        };
        reply.unwrap_or_else(|err| Frame::Error(err.to_string()))
    }
}

/// The command `name` (lower-case) parsed from `args`, if it runs on every
/// shard
pub(crate) fn parse(name: &[u8], args: &mut Args) -> Option<Result<Command, CommandError>> {
    let parsed = match name {
        b"dbsize" => args.exactly(1, "dbsize").map(|()| AllShards::DbSize),
        b"flushdb" => parse_flush(args),
        b"flushall" => parse_flush(args),
        b"keys" => args
            .exactly(2, "keys")
            .and_then(|()| args.bytes())
            .map(AllShards::Keys),
        b"scan" => Scan::parse(args).map(AllShards::Scan),
        _ => return None,
    };
    Some(parsed.map(Command::AllShards))
}

/// # Format
/// `FLUSHDB [ASYNC|SYNC]`, `FLUSHALL [ASYNC|SYNC]`
fn parse_flush(args: &mut Args) -> Result<AllShards, CommandError> {
    if args.remaining() > 1 {
        return Err(CommandError::Syntax);
    }
    if args.remaining() == 1 {
        let mode = args.option()?;
        if mode != b"ASYNC" && mode != b"SYNC" {
            return Err(CommandError::Syntax);
        }
    }
    Ok(AllShards::Flush)
}

impl Scan {
    /// # Format
    /// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`: a cursor that is
    /// not an unsigned integer is `ERR invalid cursor`, a `COUNT` below 1
    /// `ERR syntax error`
    fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.at_least(2, "scan")?;
        let cursor = std::str::from_utf8(&args.bytes()?)
            .ok()
            .and_then(|c| c.parse::<u64>().ok())
            .ok_or(CommandError::Invalid("invalid cursor"))?;
        let mut scan = Self {
            cursor,
            pattern: None,
            count: DEFAULT_SCAN_COUNT,
            kind: None,
        };
        while args.remaining() > 0 {
            let option = args.option()?;
            if args.remaining() == 0 {
                return Err(CommandError::Syntax);
            }
            match option.as_slice() {
                b"MATCH" => scan.pattern = Some(args.bytes()?),
                b"COUNT" => {
                    scan.count = usize::try_from(args.int()?)
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or(CommandError::Syntax)?;
                }
                b"TYPE" => scan.kind = Some(Kind::from_name(&args.bytes()?)),
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(scan)
    }

    /// The shard and the position in it that `cursor` names, for a cache
    /// of `shards` shards (a cursor past the last shard starts over)
    pub fn position(cursor: u64, shards: usize) -> (usize, u64) {
        let shards = shards.max(1) as u64;
        // below the shard count, so it fits a usize
        ((cursor % shards) as usize, cursor / shards)
    }

    /// The cursor naming `position` in `shard`, or 0 when the scan is
    /// over (past the last shard, or a position too large to name)
    pub fn cursor(shard: usize, position: u64, shards: usize) -> u64 {
        if shard >= shards {
            return 0;
        }
        position
            .checked_mul(shards as u64)
            .and_then(|c| c.checked_add(shard as u64))
            .unwrap_or(0)
    }
}

/// One shard's part of `SCAN`: the keys among the next `count` from
/// `position` that match, and where this shard goes on (`None`: done)
pub fn scan_shard(
    store: &Store,
    position: u64,
    count: usize,
    pattern: Option<&[u8]>,
    kind: Option<Option<Kind>>,
    now: std::time::Instant,
) -> (Vec<Bytes>, Option<u64>) {
    let step = store.scan(position, count, now);
    let keys = step
        .entries
        .into_iter()
        .filter(|(key, value)| {
            pattern.is_none_or(|p| glob_matches(p, key))
                && kind.is_none_or(|k| k == Some(value.kind()))
        })
        .map(|(key, _)| key.clone())
        .collect();
    (keys, step.next)
}

/// One shard's part of `KEYS`: every live key matching `pattern`
pub fn keys_shard(store: &Store, pattern: &[u8], now: std::time::Instant) -> Vec<Bytes> {
    store
        .entries(now)
        .filter(|(key, _)| glob_matches(pattern, key))
        .map(|(key, _)| key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::cmd::testing::{now, parse, run, store};
    use crate::resp::Frame;

    #[test]
    fn cursors_name_a_shard_and_a_position() {
        for shards in [1, 3, 16] {
            for shard in 0..shards {
                for position in [0, 1, 77] {
                    let cursor = Scan::cursor(shard, position, shards);
                    if shard == 0 && position == 0 {
                        assert_eq!(cursor, 0);
                    }
                    assert_eq!(Scan::position(cursor, shards), (shard, position));
                }
            }
            assert_eq!(Scan::cursor(shards, 5, shards), 0);
        }
    }

    #[test]
    fn scan_options_parse_as_redis() {
        let Ok(Command::AllShards(AllShards::Scan(scan))) =
            parse(&["SCAN", "7", "match", "u*", "COUNT", "100", "TYPE", "hash"])
        else {
            panic!("not a scan");
        };
        assert_eq!(scan.cursor, 7);
        assert_eq!(scan.pattern.as_deref(), Some(&b"u*"[..]));
        assert_eq!(scan.count, 100);
        assert_eq!(scan.kind, Some(Some(Kind::Hash)));
        let err = |parts: &[&str]| parse(parts).unwrap_err().to_string();
        assert_eq!(err(&["SCAN", "x"]), "ERR invalid cursor");
        assert_eq!(err(&["SCAN", "-1"]), "ERR invalid cursor");
        assert_eq!(err(&["SCAN", "0", "COUNT", "0"]), "ERR syntax error");
        assert_eq!(err(&["SCAN", "0", "COUNT"]), "ERR syntax error");
        assert_eq!(err(&["SCAN", "0", "BOGUS", "1"]), "ERR syntax error");
        assert_eq!(
            err(&["KEYS"]),
            "ERR wrong number of arguments for 'keys' command"
        );
        assert_eq!(err(&["FLUSHDB", "NOW"]), "ERR syntax error");
        assert!(matches!(
            parse(&["flushall", "async"]),
            Ok(Command::AllShards(AllShards::Flush))
        ));
    }

    #[test]
    fn a_scan_returns_every_lasting_key_once_while_keys_change() {
        let (mut s, now) = (store(), now());
        for i in 0..100 {
            run(&mut s, &now, &["SET", &format!("k{i}"), "v"]);
        }
        let mut seen = Vec::new();
        let mut position = 0;
        let mut round = 0;
        loop {
            let (keys, next) = scan_shard(&s, position, 7, None, None, now.at);
            seen.extend(keys);
            // churn between steps: overwrite, delete and add keys
            run(&mut s, &now, &["SET", &format!("k{}", round * 3), "w"]);
            run(&mut s, &now, &["DEL", &format!("k{}", 99 - round)]);
            run(&mut s, &now, &["SET", &format!("new{round}"), "v"]);
            round += 1;
            match next {
                Some(next) => position = next,
                None => break,
            }
        }
        let seen_set: HashSet<_> = seen.iter().cloned().collect();
        assert_eq!(seen_set.len(), seen.len(), "a key came back twice");
        // every key never deleted during the scan was seen
        for i in 0..(99 - round + 1) {
            assert!(seen_set.contains(format!("k{i}").as_bytes()), "k{i} missed");
        }
    }

    #[test]
    fn keys_and_filters() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["SET", "user:1", "a"]);
        run(&mut s, &now, &["HSET", "user:2", "f", "v"]);
        run(&mut s, &now, &["SET", "other", "b"]);
        let mut keys = keys_shard(&s, b"user:*", now.at);
        keys.sort();
        assert_eq!(keys, vec![Bytes::from("user:1"), Bytes::from("user:2")]);
        let (keys, next) = scan_shard(&s, 0, 10, Some(b"user:*"), Some(Some(Kind::Hash)), now.at);
        assert_eq!((keys, next), (vec![Bytes::from("user:2")], None));
        let (keys, _) = scan_shard(&s, 0, 10, None, Some(None), now.at);
        assert!(keys.is_empty());
        assert_eq!(run(&mut s, &now, &["EXISTS", "other"]), Frame::Integer(1));
    }
}
