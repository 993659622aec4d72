//! Commands, one unit per command: each parses its arguments and, beside
//! that, executes against a shard's [`Store`] (mini-redis's layout)
//!
//! Families live in their own modules — [`strings`], [`keyspace`],
//! [`hashes`], [`lists`], [`sets`] — one file per command; [`memcache`]
//! holds memcached's commands, which its text front end builds. Commands that act
//! on the connection or on every shard ([`connection`], [`all_shards`]) are
//! parsed here and run by the front end. Names, subcommands and options are
//! case-insensitive. Arity is checked first, as Redis does from its command
//! table, so the error texts match: `ERR wrong number of arguments for 'get'
//! command`.
//!
//! # Where a command runs
//!
//! A [`KeyCommand`] runs on the shard that owns its key, in one message with
//! the other commands of the same pipeline for that shard. Commands on
//! several keys ([`Multi`]: `MGET`, `DEL`, `UNLINK`, `EXISTS`, `TOUCH`) are
//! split into one command per key, run where each key lives, and their
//! answers combined: each key's part is atomic, the whole is not a snapshot
//! across shards. Commands whose atomicity Redis promises across keys
//! (`MSET`, `MSETNX`, `RENAME`, `RENAMENX`) run only when every key is on one
//! shard, and are refused otherwise with Redis Cluster's
//! `CROSSSLOT Keys in request don't hash to the same slot`; a `{tag}` in a
//! key routes it by the tag alone, as in Redis Cluster, so keys that share a
//! tag share a shard.

pub mod all_shards;
mod collection;
pub mod connection;
pub mod hashes;
pub mod keyspace;
pub mod lists;
pub mod memcache;
pub mod sets;
pub mod strings;
mod unit;

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::resp::{Frame, Parse, ParseError};
use crate::store::{Store, StoreError};

pub use all_shards::AllShards;
pub use connection::{ClientCommand, CommandCommand, ConfigCommand, ConnCommand};
pub(crate) use unit::{ReadThrough, Unit};

/// Redis's reply to a command on a key of another type
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Redis's reply to a write refused for memory
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Redis Cluster's reply to a command whose keys live on different shards
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// Now, as a command sees it: the runtime's instant (for expiry inside the
/// store) and the Unix time at that instant (for `EXPIREAT`, `EXPIRETIME`
/// and the like)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The runtime's clock
    pub at: Instant,
    /// Milliseconds since the Unix epoch at `at`
    pub unix_ms: i64,
}

impl Now {
    /// Now at `at` on the runtime's clock, with the Unix time the runtime
    /// gives that instant
    pub fn at(at: Instant) -> Self {
        Self {
            at,
            unix_ms: troupe_runtime::time::unix_millis(at),
        }
    }

    /// The instant of the Unix time `unix_ms`: `Err(())` if it is not after
    /// now (the key is to expire at once), `Ok(None)` if too far ahead to
    /// represent (never)
    #[allow(clippy::result_unit_err)]
    pub fn instant_of(&self, unix_ms: i64) -> Result<Option<Instant>, ()> {
        if unix_ms <= self.unix_ms {
            return Err(());
        }
        let ahead = Duration::from_millis(unix_ms.abs_diff(self.unix_ms));
        Ok(self.at.checked_add(ahead))
    }

    /// The Unix time, in milliseconds, of `at`
    pub fn unix_ms_of(&self, at: Instant) -> i64 {
        let ahead = at.saturating_duration_since(self.at).as_millis();
        self.unix_ms
            .saturating_add(i64::try_from(ahead).unwrap_or(i64::MAX))
    }
}

/// A command on one key, or on keys that must share its shard
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KeyCommand {
    /// String commands
    String(strings::StringCommand),
    /// Keyspace commands on one key
    Keyspace(keyspace::KeyspaceCommand),
    /// Hash commands
    Hash(hashes::HashCommand),
    /// List commands
    List(lists::ListCommand),
    /// Set commands
    Set(sets::SetCommand),
    /// memcached's commands
    Memcache(memcache::MemcacheCommand),
}

macro_rules! each_family {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            KeyCommand::String($c) => $body,
            KeyCommand::Keyspace($c) => $body,
            KeyCommand::Hash($c) => $body,
            KeyCommand::List($c) => $body,
            KeyCommand::Set($c) => $body,
            KeyCommand::Memcache($c) => $body,
        }
    };
}

impl KeyCommand {
    /// The key that decides its shard
    pub fn key(&self) -> &Bytes {
        each_family!(self, c => c.key())
    }

    /// Calls `f` with every key it touches (all must share one shard)
    pub fn for_each_key(&self, f: &mut dyn FnMut(&Bytes)) {
        each_family!(self, c => c.for_each_key(f))
    }

    /// Runs it against `store`; the reply Redis would give
    pub fn apply(self, store: &mut Store, now: &Now) -> Frame {
        each_family!(self, c => c.apply(store, now))
    }

    /// Runs it against `store` and writes the reply Redis would give to `out`: what
    /// [`apply`](Self::apply) answers, encoded, without building it where the command can
    /// write it from the store directly (`GET`)
    pub(crate) fn apply_into(self, store: &mut Store, now: &Now, out: &mut bytes::BytesMut) {
        each_family!(self, c => c.apply_into(store, now, out))
    }

    /// The lower-case command name
    pub fn name(&self) -> &'static str {
        each_family!(self, c => c.name())
    }

    /// How a read-through shard treats it
    pub(crate) fn read_through(&self) -> ReadThrough {
        each_family!(self, c => c.read_through())
    }
}

/// How the answers to a [`Multi`]'s per-key parts combine
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// An array of the parts' replies, in key order (`MGET`)
    Array,
    /// The sum of the parts' integer replies (`DEL`, `EXISTS`, ...)
    Sum,
}

/// A command on several keys, run as one [`KeyCommand`] per key wherever
/// each key lives
#[derive(Debug, Clone, PartialEq)]
pub struct Multi {
    /// The per-key commands, in the order of the keys given
    pub parts: Vec<KeyCommand>,
    /// How their replies combine
    pub combine: Combine,
}

impl Combine {
    /// The reply to the whole command from its parts' replies, in order: the
    /// first error if any part failed
    pub fn replies(self, replies: Vec<Frame>) -> Frame {
        if let Some(err) = replies.iter().find(|r| matches!(r, Frame::Error(_))) {
            return err.clone();
        }
        match self {
            Self::Array => Frame::Array(replies),
            Self::Sum => Frame::Integer(
                replies
                    .iter()
                    .map(|r| match r {
                        Frame::Integer(n) => *n,
                        _ => 0,
                    })
                    .sum(),
            ),
        }
    }
}

/// A parsed command
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Runs on its key's shard
    Key(KeyCommand),
    /// Runs per key on each key's shard
    Multi(Multi),
    /// Runs on every shard (`DBSIZE`, `KEYS`, `SCAN`, `FLUSHDB`, ...)
    AllShards(AllShards),
    /// Acts on the connection or the server (`PING`, `AUTH`, `CONFIG`, ...)
    Conn(ConnCommand),
    /// Anything else: the name as sent and its arguments
    Unknown(Bytes, Vec<Bytes>),
}

/// Why a frame is not a valid command
///
/// `Display` gives Redis's reply text (without the leading `-`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// An empty array: Redis ignores it and sends no reply
    #[error("ERR empty command")]
    Empty,
    /// Wrong argument count for the (lower-case, `cmd|sub`) command
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(&'static str),
    /// Options that do not fit together or are unknown
    #[error("ERR syntax error")]
    Syntax,
    /// An argument that must be an integer is not
    #[error("ERR value is not an integer or out of range")]
    NotAnInteger,
    /// An argument that must be a float is not
    #[error("ERR value is not a valid float")]
    NotAFloat,
    /// A non-positive or overflowing expiry for the named command
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpireTime(&'static str),
    /// An unknown `EXPIRE` option
    #[error("ERR Unsupported option {0}")]
    UnsupportedOption(String),
    /// Any other refusal, with Redis's text after `ERR `
    #[error("ERR {0}")]
    Invalid(&'static str),
    /// An unknown subcommand
    #[error("ERR unknown subcommand '{sub}'. Try {cmd} HELP.")]
    UnknownSubcommand {
        /// The subcommand as sent
        sub: String,
        /// The upper-case command
        cmd: &'static str,
    },
    /// A malformed argument frame
    #[error("{0}")]
    Parse(ParseError),
}

impl From<ParseError> for CommandError {
    fn from(err: ParseError) -> Self {
        match err {
            ParseError::NotAnInteger => Self::NotAnInteger,
            ParseError::EndOfStream | ParseError::ExtraArguments => Self::Syntax,
            other => Self::Parse(other),
        }
    }
}

/// The reply for a store's refusal of a write
pub(crate) fn store_error(err: &StoreError) -> Frame {
    match err {
        StoreError::TooLarge { .. } | StoreError::OutOfMemory => Frame::Error(OOM.into()),
    }
}

/// `+OK`
pub(crate) fn ok() -> Frame {
    Frame::Simple("OK".into())
}

/// `-WRONGTYPE ...`
pub(crate) fn wrong_type() -> Frame {
    Frame::Error(WRONGTYPE.into())
}

/// A bulk string, or the null bulk for `None`
pub(crate) fn bulk_or_null(value: Option<Bytes>) -> Frame {
    value.map_or(Frame::Null, Frame::Bulk)
}

/// An integer reply from a count
pub(crate) fn count(n: usize) -> Frame {
    Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Redis's reply to an unknown command:
/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `
///
/// As Redis 7 formats it: the name cut at 128 bytes, then each argument
/// quoted and followed by a space while the list is under 128 bytes, every
/// argument cut so the list stays within 128 bytes, CR and LF shown as
/// spaces.
pub fn unknown_command_error(name: &[u8], args: &[Bytes]) -> String {
    const LIMIT: usize = 128;
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(&name[..name.len().min(LIMIT)]);
    text.extend_from_slice(b"', with args beginning with: ");
    let mut list = Vec::new();
    for arg in args {
        if list.len() >= LIMIT {
            break;
        }
        let room = LIMIT - list.len();
        list.push(b'\'');
        list.extend_from_slice(&arg[..arg.len().min(room)]);
        list.extend_from_slice(b"' ");
    }
    text.extend_from_slice(&list);
    for b in &mut text {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The arguments of one command after its name, and their count with the
/// name (Redis's arity)
pub struct Args<'a> {
    parse: Parse<'a>,
    argc: usize,
}

impl Args<'_> {
    /// Exactly `n` arguments including the name, else `'name'`'s arity error
    ///
    /// # Errors
    ///
    /// [`CommandError::WrongArity`].
    pub fn exactly(&self, n: usize, name: &'static str) -> Result<(), CommandError> {
        if self.argc == n {
            Ok(())
        } else {
            Err(CommandError::WrongArity(name))
        }
    }

    /// At least `n` arguments including the name
    ///
    /// # Errors
    ///
    /// [`CommandError::WrongArity`].
    pub fn at_least(&self, n: usize, name: &'static str) -> Result<(), CommandError> {
        if self.argc >= n {
            Ok(())
        } else {
            Err(CommandError::WrongArity(name))
        }
    }

    /// The count of arguments including the name
    pub fn argc(&self) -> usize {
        self.argc
    }

    /// Arguments not yet taken
    pub fn remaining(&self) -> usize {
        self.parse.remaining()
    }

    /// The next argument
    ///
    /// # Errors
    ///
    /// `ERR syntax error` if there is none.
    pub fn bytes(&mut self) -> Result<Bytes, CommandError> {
        Ok(self.parse.next_bytes()?)
    }

    /// The next argument, upper-cased, for matching options
    ///
    /// # Errors
    ///
    /// As [`Args::bytes`].
    pub fn option(&mut self) -> Result<Vec<u8>, CommandError> {
        Ok(self.parse.next_bytes()?.to_ascii_uppercase())
    }

    /// The next argument as an `i64`
    ///
    /// # Errors
    ///
    /// `ERR value is not an integer or out of range`.
    pub fn int(&mut self) -> Result<i64, CommandError> {
        Ok(self.parse.next_int()?)
    }

    /// Every argument left
    ///
    /// # Errors
    ///
    /// As [`Args::bytes`].
    pub fn rest(&mut self) -> Result<Vec<Bytes>, CommandError> {
        Ok(self.parse.rest()?)
    }
}

impl Command {
    /// Parse a command from a request frame (an array of bulk strings)
    ///
    /// An unknown name is not an error: it gives [`Command::Unknown`], for
    /// which [`unknown_command_error`] builds Redis's reply.
    ///
    /// # Errors
    ///
    /// A [`CommandError`] whose `Display` is the reply Redis gives.
    pub fn from_frame(frame: Frame) -> Result<Self, CommandError> {
        Self::from_parse(Parse::new(frame)?)
    }

    /// Parse a command from its arguments, the name first; as [`Command::from_frame`]
    ///
    /// # Errors
    ///
    /// As [`Command::from_frame`].
    pub fn from_parse(mut parse: Parse<'_>) -> Result<Self, CommandError> {
        if parse.remaining() == 0 {
            return Err(CommandError::Empty);
        }
        let input = parse.input();
        let name = parse.next_name()?;
        // Arity counts the name, as in Redis's command table.
        let argc = parse.remaining() + 1;
        let mut args = Args { parse, argc };
        // lower-cased on the stack: no command name is longer
        let mut buf = [0u8; 24];
        // a name longer than any command's is unknown
        if let Some(lower) = buf.get_mut(..name.len()) {
            lower.copy_from_slice(&name);
            lower.make_ascii_lowercase();
            let lower = &*lower;
            // the first family that knows the name parses it; not an `or_else` chain,
            // which moved the parsed command through every later link
            let families = [
                strings::parse,
                keyspace::parse,
                hashes::parse,
                lists::parse,
                sets::parse,
                all_shards::parse,
                connection::parse,
            ];
            for family in families {
                if let Some(command) = family(lower, &mut args) {
                    let command = command?;
                    args.parse.finish()?;
                    return Ok(command);
                }
            }
        }
        let command = Self::Unknown(name.to_bytes(input), args.rest()?);
        args.parse.finish()?;
        Ok(command)
    }
}

/// A positive expiry of `n` units of `unit_ms` milliseconds; Redis rejects
/// non-positive times and those that overflow in milliseconds.
pub(crate) fn positive_ttl(
    n: i64,
    unit_ms: i64,
    name: &'static str,
) -> Result<Duration, CommandError> {
    let millis = n
        .checked_mul(unit_ms)
        .filter(|&ms| ms > 0)
        .ok_or(CommandError::InvalidExpireTime(name))?;
    Ok(Duration::from_millis(millis.unsigned_abs()))
}

/// Redis's glob match (`*`, `?`, `[abc]`, `[^a-z]`, `\x`), as `KEYS`,
/// `SCAN ... MATCH` and `CONFIG GET` use it
pub fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // where to resume after the last `*`: (pattern index after it, text index)
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            // how many pattern bytes match `text[t]` here, if any
            let consumed = match pattern[p] {
                b'*' => {
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                b'?' => Some(1),
                b'[' => match class_matches(&pattern[p..], text[t]) {
                    Some((true, len)) => Some(len),
                    Some((false, _)) => None,
                    // an unclosed class is a literal `[`
                    None => (text[t] == b'[').then_some(1),
                },
                b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == text[t]).then_some(2),
                c => (c == text[t]).then_some(1),
            };
            if let Some(consumed) = consumed {
                p += consumed;
                t += 1;
                continue;
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether `c` is in the class that starts `pattern` (`[...]`), and the
/// class's length; `None` if the class is not closed.
fn class_matches(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &p = pattern.get(i)?;
        if p == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p == b'\\' {
            let &escaped = pattern.get(i + 1)?;
            matched |= escaped == c;
            i += 2;
        } else if pattern.get(i + 1) == Some(&b'-')
            && pattern.get(i + 2).is_some_and(|&e| e != b']')
        {
            let (lo, hi) = (p.min(pattern[i + 2]), p.max(pattern[i + 2]));
            matched |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            matched |= p == c;
            i += 1;
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Runs commands as a client sends them against a store, for the
    //! units' tests.

    use bytes::BytesMut;

    use super::*;
    use crate::resp::Limits;

    /// A store of 1,000 entries and 1 MiB.
    pub(crate) fn store() -> Store {
        Store::new(
            std::num::NonZeroUsize::new(1000).expect("non-zero"),
            1 << 20,
        )
    }

    /// A fixed now: Unix time 1,700,000,000 s.
    pub(crate) fn now() -> Now {
        Now {
            at: Instant::now(),
            unix_ms: 1_700_000_000_000,
        }
    }

    /// `now` moved on by `ms` milliseconds.
    pub(crate) fn later(now: &Now, ms: u64) -> Now {
        Now {
            at: now.at + Duration::from_millis(ms),
            unix_ms: now.unix_ms + i64::try_from(ms).expect("small"),
        }
    }

    /// Parses `parts` from the wire and runs it: a key command against
    /// `store`, a multi-key one part by part; anything else is a test bug.
    pub(crate) fn run(store: &mut Store, now: &Now, parts: &[&str]) -> Frame {
        match parse(parts) {
            Ok(Command::Key(cmd)) => cmd.apply(store, now),
            Ok(Command::Multi(multi)) => {
                let replies = multi
                    .parts
                    .iter()
                    .cloned()
                    .map(|part| part.apply(store, now))
                    .collect();
                multi.combine.replies(replies)
            }
            Ok(other) => panic!("not a key command: {other:?}"),
            Err(err) => Frame::Error(err.to_string()),
        }
    }

    /// Parses `parts` as a client sends them: a multibulk frame on the wire.
    pub(crate) fn parse(parts: &[&str]) -> Result<Command, CommandError> {
        let mut buf = BytesMut::new();
        Frame::Array(
            parts
                .iter()
                .map(|p| Frame::Bulk(Bytes::copy_from_slice(p.as_bytes())))
                .collect(),
        )
        .encode(&mut buf);
        let frame = Frame::decode_from(&mut buf, &Limits::default())
            .expect("valid frame")
            .expect("complete");
        Command::from_frame(frame)
    }

    /// A bulk reply
    pub(crate) fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Redis's arity error for `name`
    pub(crate) fn arity(name: &str) -> String {
        format!("ERR wrong number of arguments for '{name}' command")
    }

    /// An error reply
    pub(crate) fn error(s: &str) -> Frame {
        Frame::Error(s.into())
    }

    /// An array of bulk replies
    pub(crate) fn bulks(items: &[&str]) -> Frame {
        Frame::Array(items.iter().map(|s| bulk(s)).collect())
    }

    /// The items of an array reply, sorted, for replies in no set order
    pub(crate) fn sorted(frame: Frame) -> Vec<Frame> {
        match frame {
            Frame::Array(mut items) => {
                items.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
                items
            }
            other => panic!("not an array: {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_redis_does() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "anything", true),
            ("*", "", true),
            ("max*", "maxmemory", true),
            ("max*", "timeout", false),
            ("*mem*", "maxmemory-policy", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("user:*", "user:1000", true),
            ("*:1000", "user:1000", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                glob_matches(pattern.as_bytes(), text.as_bytes()),
                *want,
                "{pattern} ~ {text}"
            );
        }
    }

    #[test]
    fn unix_times_map_to_instants_and_back() {
        let now = testing::now();
        assert_eq!(now.instant_of(now.unix_ms), Err(()));
        assert_eq!(now.instant_of(now.unix_ms - 5), Err(()));
        let at = now.instant_of(now.unix_ms + 1500).unwrap().unwrap();
        assert_eq!(at - now.at, Duration::from_millis(1500));
        assert_eq!(now.unix_ms_of(at), now.unix_ms + 1500);
    }

    proptest::proptest! {
        /// Any mix of commands on every type, in a store small enough to evict: the bounds
        /// hold and the byte count equals every key and value counted from its contents.
        #[test]
        fn accounting_stays_exact_over_every_type(
            steps in proptest::collection::vec((0usize..COMMANDS.len(), 0u8..6, 0u8..6, 0usize..40), 0..200),
            max_bytes in 64usize..2048,
        ) {
            let now = testing::now();
            let mut s = Store::new(std::num::NonZeroUsize::new(8).expect("non-zero"), max_bytes);
            for (command, key, member, len) in steps {
                let key = format!("k{key}");
                let member = format!("m{member}");
                let value = "v".repeat(len);
                let offset = len.to_string();
                let words: Vec<&str> = COMMANDS[command]
                    .split(' ')
                    .map(|w| match w {
                        "K" => key.as_str(),
                        "M" => member.as_str(),
                        "V" => value.as_str(),
                        "N" => offset.as_str(),
                        w => w,
                    })
                    .collect();
                match words[0].strip_prefix("mc-") {
                    Some(name) => memcache_step(&mut s, &now, name, &words[1..]),
                    None => {
                        testing::run(&mut s, &now, &words);
                    }
                }
                proptest::prop_assert!(s.bytes() <= max_bytes);
                proptest::prop_assert!(s.len() <= 8);
                proptest::prop_assert_eq!(s.bytes(), s.recounted_bytes());
            }
        }
    }

    /// The commands the accounting property mixes: K a key, M a member, V a value, N a number.
    const COMMANDS: &[&str] = &[
        "SET K V",
        "APPEND K V",
        "SETRANGE K N V",
        "INCR K",
        "INCRBYFLOAT K 1.5",
        "GETDEL K",
        "HSET K M V",
        "HSET K M V k2 V",
        "RPUSH K V M",
        "LPUSH K V",
        "SADD K M V",
        "DEL K",
        "RENAME K k0",
        "EXPIRE K 100",
        "MSET K V",
        "mc-set K V",
        "mc-add K V",
        "mc-append K V",
        "mc-prepend K V",
        "mc-incr K",
        "mc-decr K",
        "mc-touch K",
        "mc-gat K",
        "mc-delete K",
        "mc-toolarge K",
    ];

    /// Runs the memcached unit `name` on `args` (a key, then maybe a value).
    fn memcache_step(store: &mut Store, now: &Now, name: &str, args: &[&str]) {
        use memcache::{Arith, Concat, Delete, Get, Storage, StoreMode, TooLarge, Touch};
        let key = Bytes::copy_from_slice(args[0].as_bytes());
        let value = Bytes::copy_from_slice(args.get(1).unwrap_or(&"").as_bytes());
        let storage = |mode| Storage {
            mode,
            key: key.clone(),
            flags: 1,
            exptime: 0,
            value: value.clone(),
        };
        let concat = |prepend| Concat {
            key: key.clone(),
            value: value.clone(),
            prepend,
            max_item_size: 1 << 20,
        };
        let arith = |incr| Arith {
            key: key.clone(),
            incr,
            delta: 7,
        };
        let cmd: KeyCommand = match name {
            "set" => storage(StoreMode::Set).into(),
            "add" => storage(StoreMode::Add).into(),
            "append" => concat(false).into(),
            "prepend" => concat(true).into(),
            "incr" => arith(true).into(),
            "decr" => arith(false).into(),
            "touch" => Touch { key, exptime: 100 }.into(),
            "gat" => Get {
                key,
                touch: Some(50),
            }
            .into(),
            "delete" => Delete { key }.into(),
            "toolarge" => TooLarge { key, set: true }.into(),
            other => panic!("no memcached step {other}"),
        };
        cmd.apply(store, now);
    }

    #[test]
    fn unknown_commands_and_empty_arrays() {
        assert_eq!(testing::parse(&[]), Err(CommandError::Empty));
        assert_eq!(
            unknown_command_error(b"nope", &[Bytes::from_static(b"a")]),
            "ERR unknown command 'nope', with args beginning with: 'a' "
        );
        assert!(matches!(
            testing::parse(&["NOPE", "x"]),
            Ok(Command::Unknown(..))
        ));
    }
}
