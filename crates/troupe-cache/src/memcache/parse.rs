//! memcached's text protocol, decoded: a pure, resumable [`Decoder`] from
//! bytes to [`Request`]s, with [`Limits`] checked before anything is kept
//!
//! # Format
//!
//! A request is a line of words separated by spaces, ended by `\n` (a `\r`
//! before it is dropped), as memcached 1.6 reads it:
//!
//! ```text
//! get|gets <key>*                                        retrieval
//! gat|gats <exptime> <key>*
//! set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply]
//! cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]
//!   then <bytes> bytes of data and \r\n
//! delete <key> [0] [noreply]
//! incr|decr <key> <delta> [noreply]
//! touch <key> <exptime> [noreply]
//! flush_all [delay] [noreply]
//! version | stats [reset|settings] | verbosity <level> [noreply] | quit
//! ```
//!
//! A line memcached answers with an error becomes [`Request::Invalid`] with
//! memcached's text: `ERROR` for an unknown command or a wrong word count,
//! `CLIENT_ERROR bad command line format` for a key over 250 bytes (or, here,
//! holding a NUL: see [`MAX_KEY_LEN`]) or a malformed number, `CLIENT_ERROR bad data
//! chunk` for data not followed by `\r\n` (the announced bytes and two more
//! are consumed, as memcached does, and what follows is read as the next
//! line). A storage command announcing more than [`Limits::max_item_size`]
//! bytes becomes [`Request::TooLarge`] and its data is read past without
//! being kept. Numbers are read as memcached's `safe_strto*` read them
//! ([`parse_u64`], [`parse_flags`], [`parse_i32`]).
//!
//! # Limits
//!
//! A line longer than [`Limits::max_line`] (or, for a retrieval command,
//! [`Limits::max_get_line`]) is a [`DecodeError`]: the connection is closed,
//! as memcached closes one that sends 2,048 bytes without a newline. So the
//! bytes a decoder needs buffered for one request are at most
//! [`Limits::max_request`].

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::cmd::memcache::{StoreMode, parse_flags, parse_i32, parse_u64};

/// The longest key memcached accepts
///
/// A key may hold any byte but a space, a newline (which end it) or a NUL:
/// memcached takes control characters, and `memaslap` sends them.
pub const MAX_KEY_LEN: usize = 250;

/// Default of [`Limits::max_line`]: memcached's 2,048 bytes
pub const DEFAULT_MAX_LINE: usize = 2048;

/// Default of [`Limits::max_get_line`]: 1 MiB of keys in one retrieval
pub const DEFAULT_MAX_GET_LINE: usize = 1 << 20;

/// Default of [`Limits::max_item_size`]: memcached's 1 MiB item size limit
pub const DEFAULT_MAX_ITEM_SIZE: usize = 1 << 20;

/// memcached's reply to a line it cannot read
pub const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";

/// memcached's reply to an exptime it cannot read
pub const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument";

/// Bounds on what one request may hold
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line of any command but a retrieval, without its `\n`
    pub max_line: usize,
    /// Longest `get`/`gets`/`gat`/`gats` line, without its `\n`
    pub max_get_line: usize,
    /// Most data bytes a storage command may store (larger ones are answered
    /// `SERVER_ERROR object too large for cache`, their data discarded)
    pub max_item_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line: DEFAULT_MAX_LINE,
            max_get_line: DEFAULT_MAX_GET_LINE,
            max_item_size: DEFAULT_MAX_ITEM_SIZE,
        }
    }
}

impl Limits {
    /// The most bytes one request needs buffered before it decodes: its line
    /// and `\n`, then its data and `\r\n`
    pub fn max_request(&self) -> usize {
        let storage = self
            .max_line
            .saturating_add(1)
            .saturating_add(self.max_item_size)
            .saturating_add(2);
        storage.max(self.max_get_line.saturating_add(1))
    }
}

/// Why the decoder gave up on a connection's input
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A line went past its limit without ending
    #[error("a request line longer than {limit} bytes")]
    LineTooLong {
        /// The limit it went past
        limit: usize,
    },
}

/// A decoded request
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `get`/`gets` (`touch: None`), `gat`/`gats` (`touch: Some(exptime)`)
    Get {
        /// The keys, in order (none for `gat <exptime>` alone, answered `END`)
        keys: Vec<Bytes>,
        /// `gets`/`gats`: answer each item's CAS unique too
        cas: bool,
        /// `gat`/`gats`: the exptime each hit gets
        touch: Option<i64>,
    },
    /// `set`, `add`, `replace`, `cas` with its data
    Store {
        /// Which one
        mode: StoreMode,
        /// The key
        key: Bytes,
        /// The client flags
        flags: u32,
        /// The exptime
        exptime: i64,
        /// The data
        value: Bytes,
        /// Send no reply
        noreply: bool,
    },
    /// `append`, `prepend` with its data
    Concat {
        /// The key
        key: Bytes,
        /// The data
        value: Bytes,
        /// `prepend` (else `append`)
        prepend: bool,
        /// Send no reply
        noreply: bool,
    },
    /// A storage command whose data is over [`Limits::max_item_size`]; the
    /// decoder reads past the data
    TooLarge {
        /// The key
        key: Bytes,
        /// Whether it was a `set` (which memcached answers by dropping the
        /// old item too)
        set: bool,
        /// Send no reply
        noreply: bool,
    },
    /// `delete`
    Delete {
        /// The key
        key: Bytes,
        /// Send no reply
        noreply: bool,
    },
    /// `incr`, `decr`
    Arith {
        /// The key
        key: Bytes,
        /// `incr` (else `decr`)
        incr: bool,
        /// The amount
        delta: u64,
        /// Send no reply
        noreply: bool,
    },
    /// `touch`
    Touch {
        /// The key
        key: Bytes,
        /// The exptime
        exptime: i64,
        /// Send no reply
        noreply: bool,
    },
    /// `flush_all [delay]`
    FlushAll {
        /// memcached's exptime for the flush (0: now)
        delay: i64,
        /// Send no reply
        noreply: bool,
    },
    /// `version`
    Version,
    /// `stats`, with its argument if any (`reset`, `settings`, ...)
    Stats(Option<Bytes>),
    /// `verbosity <level>`: accepted and ignored (`OK`)
    Verbosity {
        /// Send no reply
        noreply: bool,
    },
    /// `quit`: close the connection
    Quit,
    /// A line that looks like HTTP: memcached closes the connection without
    /// a word
    Http,
    /// A line answered with an error line and nothing else
    Invalid {
        /// memcached's reply, without `\r\n`
        reply: &'static str,
        /// Send no reply (memcached suppresses even errors once it has read
        /// `noreply` off the line)
        noreply: bool,
    },
}

impl Request {
    /// Whether its reply is suppressed
    pub fn noreply(&self) -> bool {
        match self {
            Self::Store { noreply, .. }
            | Self::Concat { noreply, .. }
            | Self::TooLarge { noreply, .. }
            | Self::Delete { noreply, .. }
            | Self::Arith { noreply, .. }
            | Self::Touch { noreply, .. }
            | Self::FlushAll { noreply, .. }
            | Self::Verbosity { noreply }
            | Self::Invalid { noreply, .. } => *noreply,
            Self::Get { .. } | Self::Version | Self::Stats(_) | Self::Quit | Self::Http => false,
        }
    }
}

/// A storage command's line, read, waiting for its data.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    kind: StorageKind,
    /// The key, as a range of the line
    key: Range<usize>,
    flags: u32,
    exptime: i64,
    len: usize,
    noreply: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageKind {
    Store(StoreMode),
    Append,
    Prepend,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading a line; the first `scanned` bytes hold no `\n`
    Line { scanned: usize },
    /// The first `line` bytes are a storage command's line (with its `\n`),
    /// kept until its data and `\r\n` are in too
    Data { line: usize, pending: Pending },
    /// Discarding this many more bytes of a data block too large to keep
    Swallow { left: usize },
}

/// What one line is.
enum Line {
    Request(Request),
    Storage(Pending),
}

/// Decodes a connection's requests as their bytes arrive
///
/// Resumable: a line is searched for its end once however it trickles in,
/// and a storage command's line is read once while its data arrives.
/// [`Decoder::decode`] takes from the front of the buffer only what it
/// decodes, and the bytes of a too-large data block, which it discards as
/// they come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoder {
    limits: Limits,
    state: State,
}

impl Decoder {
    /// A decoder at the start of a connection's input
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::Line { scanned: 0 },
        }
    }

    /// Its limits
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether it is between requests: nothing read of a next one
    pub fn is_idle(&self) -> bool {
        self.state == State::Line { scanned: 0 }
    }

    /// The next request from the front of `input`, removing its bytes;
    /// `Ok(None)` if more bytes are needed (having removed only the bytes of
    /// a too-large data block, which are discarded)
    ///
    /// Give it the same buffer, grown at its end, until it answers: the
    /// decoder remembers how far it read.
    ///
    /// # Errors
    ///
    /// [`DecodeError::LineTooLong`]: the input is not memcached's protocol,
    /// or asks for more than the limits allow; close the connection. The
    /// decoder stays in error: a later call may say anything.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<Request>, DecodeError> {
        loop {
            match &mut self.state {
                State::Swallow { left } => {
                    let n = (*left).min(input.len());
                    input.advance(n);
                    *left -= n;
                    if *left > 0 {
                        return Ok(None);
                    }
                    self.state = State::Line { scanned: 0 };
                }
                State::Data { line, pending } => {
                    let end = *line + pending.len;
                    let Some(total) = end.checked_add(2).filter(|&t| input.len() >= t) else {
                        return Ok(None);
                    };
                    let pending = pending.clone();
                    let line = *line;
                    self.state = State::Line { scanned: 0 };
                    let request = input.split_to(total).freeze();
                    if &request[end..total] != b"\r\n" {
                        return Ok(Some(Request::Invalid {
                            reply: "CLIENT_ERROR bad data chunk",
                            noreply: pending.noreply,
                        }));
                    }
                    return Ok(Some(storage(&request, line, end, pending)));
                }
                State::Line { scanned } => {
                    let from = *scanned;
                    let limit = line_limit(&self.limits, input);
                    let Some(at) = input[from..].iter().position(|&b| b == b'\n') else {
                        if input.len() > limit {
                            return Err(DecodeError::LineTooLong { limit });
                        }
                        *scanned = input.len();
                        return Ok(None);
                    };
                    let newline = from + at;
                    if newline > limit {
                        return Err(DecodeError::LineTooLong { limit });
                    }
                    match parse_line(&input[..newline]) {
                        Line::Request(request) => {
                            input.advance(newline + 1);
                            self.state = State::Line { scanned: 0 };
                            return Ok(Some(request));
                        }
                        Line::Storage(pending) if pending.len > self.limits.max_item_size => {
                            let key = Bytes::copy_from_slice(&input[pending.key.clone()]);
                            input.advance(newline + 1);
                            // the data and its \r\n, whatever they hold
                            self.state = State::Swallow {
                                left: pending.len.saturating_add(2),
                            };
                            let set = pending.kind == StorageKind::Store(StoreMode::Set);
                            return Ok(Some(Request::TooLarge {
                                key,
                                set,
                                noreply: pending.noreply,
                            }));
                        }
                        Line::Storage(pending) => {
                            self.state = State::Data {
                                line: newline + 1,
                                pending,
                            };
                        }
                    }
                }
            }
        }
    }

    /// Decodes every complete request at the front of `input` into `out`, in
    /// order
    ///
    /// # Errors
    ///
    /// As [`Decoder::decode`], after the requests before the bad line are in
    /// `out`.
    pub fn decode_all(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<Request>,
    ) -> Result<(), DecodeError> {
        while let Some(request) = self.decode(input)? {
            out.push(request);
        }
        Ok(())
    }
}

/// The longest the line at the front of `input` may be: longer for a
/// retrieval, which names many keys.
fn line_limit(limits: &Limits, input: &[u8]) -> usize {
    let start = input.iter().take_while(|&&b| b == b' ').count();
    let word = &input[start..];
    let retrieval = [&b"get "[..], b"gets ", b"gat ", b"gats ", b"bget "]
        .iter()
        .any(|name| word.starts_with(name));
    if retrieval {
        limits.max_get_line.max(limits.max_line)
    } else {
        limits.max_line
    }
}

/// The request a storage line and its data make: the line is
/// `request[..line]`, the data `request[line..end]`.
fn storage(request: &Bytes, line: usize, end: usize, pending: Pending) -> Request {
    let key = request.slice(pending.key);
    let value = request.slice(line..end);
    let noreply = pending.noreply;
    match pending.kind {
        StorageKind::Store(mode) => Request::Store {
            mode,
            key,
            flags: pending.flags,
            exptime: pending.exptime,
            value,
            noreply,
        },
        StorageKind::Append | StorageKind::Prepend => Request::Concat {
            key,
            value,
            prepend: pending.kind == StorageKind::Prepend,
            noreply,
        },
    }
}

/// The words of a line, as ranges of it: split on spaces only (a tab is
/// part of a word, as in memcached).
fn word_spans(line: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        at += line[at..].iter().take_while(|&&b| b == b' ').count();
        if at == line.len() {
            return None;
        }
        let start = at;
        at += line[at..].iter().take_while(|&&b| b != b' ').count();
        Some(start..at)
    })
}

/// Words kept by position: no command but a retrieval reads further.
const KEPT_WORDS: usize = 8;

/// A line's first words and its last, and how many it has: without
/// allocating, since every request is read this way.
struct Words {
    kept: [(usize, usize); KEPT_WORDS],
    last: (usize, usize),
    count: usize,
}

impl Words {
    fn of(line: &[u8]) -> Self {
        let mut words = Self {
            kept: [(0, 0); KEPT_WORDS],
            last: (0, 0),
            count: 0,
        };
        for span in word_spans(line) {
            if let Some(kept) = words.kept.get_mut(words.count) {
                *kept = (span.start, span.end);
            }
            words.last = (span.start, span.end);
            words.count += 1;
        }
        words
    }

    /// Word `i`'s range, if the line has it and it is kept (or the last).
    fn span(&self, i: usize) -> Option<Range<usize>> {
        let (start, end) = if i + 1 == self.count {
            self.last
        } else if i < self.count {
            *self.kept.get(i)?
        } else {
            return None;
        };
        Some(start..end)
    }
}

/// Whether `key` is taken: at most 250 bytes, and no NUL.
///
/// memcached's protocol text forbids control characters, but memcached
/// itself takes any byte but a space or a newline (which end the word), and
/// `memaslap` starts every key with eight binary bytes: refusing control
/// characters would refuse every request of that load tool. A NUL is
/// refused because memcached would read the line as ending there, a
/// different command from the one sent.
fn valid_key(key: &[u8]) -> bool {
    key.len() <= MAX_KEY_LEN && !key.contains(&0)
}

fn invalid(reply: &'static str, noreply: bool) -> Line {
    Line::Request(Request::Invalid { reply, noreply })
}

/// Reads one line (without its `\n`).
fn parse_line(line: &[u8]) -> Line {
    let line = match line {
        [rest @ .., b'\r'] if !rest.is_empty() => rest,
        _ => line,
    };
    let words = Words::of(line);
    let word = |i: usize| words.span(i).map(|r| &line[r]);
    let Some(name) = word(0).filter(|n| n.len() >= 2) else {
        return invalid("ERROR", false);
    };
    let n = words.count;
    // memcached reads `noreply` off the last word before looking further
    let noreply = word(n - 1) == Some(b"noreply");
    let error = || invalid("ERROR", false);
    let span = |i: usize| words.span(i).unwrap_or_default();
    let key = |i: usize| Bytes::copy_from_slice(&line[span(i)]);
    match name {
        b"get" | b"gets" | b"bget" | b"gat" | b"gats" => {
            if n < 2 {
                return error();
            }
            let touch = name.starts_with(b"gat");
            let mut first = 1;
            let exptime = if touch {
                first = 2;
                match word(1).and_then(parse_i32) {
                    Some(exptime) => Some(i64::from(exptime)),
                    None => return invalid(BAD_EXPTIME, false),
                }
            } else {
                None
            };
            let mut keys = Vec::with_capacity(n - first);
            for r in word_spans(line).skip(first) {
                let key = &line[r];
                if !valid_key(key) {
                    return invalid(BAD_FORMAT, false);
                }
                keys.push(Bytes::copy_from_slice(key));
            }
            Line::Request(Request::Get {
                keys,
                cas: name.ends_with(b"s"),
                touch: exptime,
            })
        }
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
            let cas = name == b"cas";
            let (min, max) = if cas { (6, 7) } else { (5, 6) };
            if n != min && n != max {
                return error();
            }
            let key_range = span(1);
            if !valid_key(&line[key_range.clone()]) {
                return invalid(BAD_FORMAT, noreply);
            }
            let numbers = (
                word(2).and_then(parse_flags),
                word(3).and_then(parse_i32),
                word(4).and_then(parse_i32),
            );
            let (Some(flags), Some(exptime), Some(len)) = numbers else {
                return invalid(BAD_FORMAT, noreply);
            };
            let kind = match name {
                b"set" => StorageKind::Store(StoreMode::Set),
                b"add" => StorageKind::Store(StoreMode::Add),
                b"replace" => StorageKind::Store(StoreMode::Replace),
                b"append" => StorageKind::Append,
                b"prepend" => StorageKind::Prepend,
                _ => match word(5).and_then(parse_u64) {
                    Some(unique) => StorageKind::Store(StoreMode::Cas(unique)),
                    None => return invalid(BAD_FORMAT, noreply),
                },
            };
            // memcached refuses what it could not add its \r\n to
            let Some(len) = usize::try_from(len).ok().filter(|_| len <= i32::MAX - 2) else {
                return invalid(BAD_FORMAT, noreply);
            };
            Line::Storage(Pending {
                kind,
                key: key_range,
                flags,
                exptime: i64::from(exptime),
                len,
                noreply,
            })
        }
        b"delete" => {
            if !(2..=4).contains(&n) {
                return error();
            }
            // memcached reads `noreply` here only past the key: a key named so is a key
            let noreply = noreply && n > 2;
            if n > 2 {
                let hold_is_zero = word(2) == Some(b"0");
                let valid =
                    (n == 3 && (hold_is_zero || noreply)) || (n == 4 && hold_is_zero && noreply);
                if !valid {
                    return invalid(
                        "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                        noreply,
                    );
                }
            }
            if !valid_key(&line[span(1)]) {
                return invalid(BAD_FORMAT, noreply);
            }
            Line::Request(Request::Delete {
                key: key(1),
                noreply,
            })
        }
        b"incr" | b"decr" => {
            if n != 3 && n != 4 {
                return error();
            }
            if !valid_key(&line[span(1)]) {
                return invalid(BAD_FORMAT, noreply);
            }
            let Some(delta) = word(2).and_then(parse_u64) else {
                return invalid("CLIENT_ERROR invalid numeric delta argument", noreply);
            };
            Line::Request(Request::Arith {
                key: key(1),
                incr: name == b"incr",
                delta,
                noreply,
            })
        }
        b"touch" => {
            if n != 3 && n != 4 {
                return error();
            }
            if !valid_key(&line[span(1)]) {
                return invalid(BAD_FORMAT, noreply);
            }
            let Some(exptime) = word(2).and_then(parse_i32) else {
                return invalid(BAD_EXPTIME, noreply);
            };
            Line::Request(Request::Touch {
                key: key(1),
                exptime: i64::from(exptime),
                noreply,
            })
        }
        b"flush_all" => {
            if !(1..=3).contains(&n) {
                return error();
            }
            let delay = if n == if noreply { 2 } else { 1 } {
                0
            } else {
                match word(1).and_then(parse_i32) {
                    Some(delay) => i64::from(delay),
                    None => return invalid(BAD_EXPTIME, noreply),
                }
            };
            Line::Request(Request::FlushAll { delay, noreply })
        }
        b"verbosity" => {
            if n != 2 && n != 3 {
                return error();
            }
            if word(1).and_then(parse_flags).is_none() {
                return invalid(BAD_FORMAT, noreply);
            }
            Line::Request(Request::Verbosity { noreply })
        }
        b"version" => Line::Request(Request::Version),
        b"stats" => Line::Request(Request::Stats(word(1).map(Bytes::copy_from_slice))),
        b"quit" => Line::Request(Request::Quit),
        b"shutdown" => invalid("ERROR: shutdown not enabled", false),
        _ if word(n - 1).is_some_and(|w| w.starts_with(b"HTTP/")) => Line::Request(Request::Http),
        _ => error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_one(input: &[u8]) -> Result<Option<Request>, DecodeError> {
        let mut buf = BytesMut::from(input);
        Decoder::new(Limits::default()).decode(&mut buf)
    }

    fn one(input: &str) -> Request {
        decode_one(input.as_bytes())
            .expect("decodes")
            .expect("complete")
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn invalid(reply: &'static str) -> Request {
        Request::Invalid {
            reply,
            noreply: false,
        }
    }

    #[test]
    fn every_command_reads_as_memcached_reads_it() {
        assert_eq!(
            one("get a bb ccc\r\n"),
            Request::Get {
                keys: vec![b("a"), b("bb"), b("ccc")],
                cas: false,
                touch: None
            }
        );
        assert_eq!(
            one("gats -1 k\n"),
            Request::Get {
                keys: vec![b("k")],
                cas: true,
                touch: Some(-1)
            }
        );
        assert_eq!(
            one("set k 5 100 3 noreply\r\nabc\r\n"),
            Request::Store {
                mode: StoreMode::Set,
                key: b("k"),
                flags: 5,
                exptime: 100,
                value: b("abc"),
                noreply: true
            }
        );
        assert_eq!(
            one("cas k 0 0 1 77\r\nx\r\n"),
            Request::Store {
                mode: StoreMode::Cas(77),
                key: b("k"),
                flags: 0,
                exptime: 0,
                value: b("x"),
                noreply: false
            }
        );
        assert_eq!(
            one("prepend k 0 0 0\r\n\r\n"),
            Request::Concat {
                key: b("k"),
                value: b(""),
                prepend: true,
                noreply: false
            }
        );
        assert_eq!(
            one("delete k 0 noreply\r\n"),
            Request::Delete {
                key: b("k"),
                noreply: true
            }
        );
        assert_eq!(
            one("decr k 18446744073709551615\r\n"),
            Request::Arith {
                key: b("k"),
                incr: false,
                delta: u64::MAX,
                noreply: false
            }
        );
        assert_eq!(
            one("touch k 10\r\n"),
            Request::Touch {
                key: b("k"),
                exptime: 10,
                noreply: false
            }
        );
        assert_eq!(
            one("flush_all\r\n"),
            Request::FlushAll {
                delay: 0,
                noreply: false
            }
        );
        assert_eq!(
            one("flush_all 10 noreply\r\n"),
            Request::FlushAll {
                delay: 10,
                noreply: true
            }
        );
        assert_eq!(one("version\r\n"), Request::Version);
        assert_eq!(one("stats\r\n"), Request::Stats(None));
        assert_eq!(one("stats reset\r\n"), Request::Stats(Some(b("reset"))));
        assert_eq!(one("quit\r\n"), Request::Quit);
        assert_eq!(one("GET / HTTP/1.1\r\n"), Request::Http);
    }

    #[test]
    fn errors_are_memcached_texts() {
        for line in [
            "\r\n",
            "x\r\n",
            "nope\r\n",
            "get\r\n",
            "set k 0 0\r\n",
            "set k 0 0 1 noreply extra\r\n",
            "incr k\r\n",
            "delete\r\n",
            "touch k\r\n",
            "flush_all 1 2 3\r\n",
            "GET k\r\n",
            "mg k v\r\n",
        ] {
            assert_eq!(one(line), invalid("ERROR"), "{line:?}");
        }
        let long = format!("get {}\r\n", "k".repeat(251));
        assert_eq!(one(&long), invalid(BAD_FORMAT));
        for line in [
            "set k x 0 1\r\n",
            "set k 0 x 1\r\n",
            "set k 0 0 -1\r\n",
            "set k -1 0 1\r\n",
            "cas k 0 0 1 x\r\n",
            "get a\0b\r\n",
        ] {
            assert_eq!(one(line), invalid(BAD_FORMAT), "{line:?}");
        }
        assert_eq!(
            one("set k 0 x 1 noreply\r\n"),
            Request::Invalid {
                reply: BAD_FORMAT,
                noreply: true
            }
        );
        assert_eq!(
            one("incr k x\r\n"),
            invalid("CLIENT_ERROR invalid numeric delta argument")
        );
        assert_eq!(one("touch k x\r\n"), invalid(BAD_EXPTIME));
        assert_eq!(one("gat x k\r\n"), invalid(BAD_EXPTIME));
        assert_eq!(
            one("delete k 1\r\n"),
            invalid("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]")
        );
        assert_eq!(
            one("set k 0 0 3\r\nabcde\r\n"),
            invalid("CLIENT_ERROR bad data chunk")
        );
    }

    #[test]
    fn bad_data_is_consumed_and_the_rest_read_as_lines() {
        let mut input = BytesMut::from(&b"set k 0 0 3\r\nabcde\r\nversion\r\n"[..]);
        let mut decoder = Decoder::new(Limits::default());
        let mut out = Vec::new();
        decoder.decode_all(&mut input, &mut out).unwrap();
        assert_eq!(
            out,
            [
                invalid("CLIENT_ERROR bad data chunk"),
                invalid("ERROR"),
                Request::Version
            ]
        );
        assert!(input.is_empty());
    }

    #[test]
    fn too_large_data_is_discarded_as_it_comes() {
        let limits = Limits {
            max_item_size: 4,
            ..Limits::default()
        };
        let mut decoder = Decoder::new(limits);
        let mut input = BytesMut::from(&b"set k 0 0 10\r\n0123"[..]);
        assert_eq!(
            decoder.decode(&mut input),
            Ok(Some(Request::TooLarge {
                key: b("k"),
                set: true,
                noreply: false
            }))
        );
        assert_eq!(decoder.decode(&mut input), Ok(None));
        assert!(input.is_empty(), "swallowed bytes are not kept");
        input.extend_from_slice(b"456789\r\nversion\r\n");
        assert_eq!(decoder.decode(&mut input), Ok(Some(Request::Version)));
        assert!(decoder.is_idle());
    }

    #[test]
    fn long_lines_close_the_connection() {
        let mut decoder = Decoder::new(Limits::default());
        let mut input = BytesMut::from(vec![b'x'; DEFAULT_MAX_LINE + 1].as_slice());
        assert_eq!(
            decoder.decode(&mut input),
            Err(DecodeError::LineTooLong {
                limit: DEFAULT_MAX_LINE
            })
        );
        // a retrieval may name many keys
        let keys = vec!["k"; 5000].join(" ");
        let line = format!("get {keys}\r\n");
        assert!(matches!(
            decode_one(line.as_bytes()),
            Ok(Some(Request::Get { keys, .. })) if keys.len() == 5000
        ));
    }

    proptest::proptest! {
        /// However the bytes of a pipeline are cut, the decoder gives the same requests as from
        /// the whole, and the buffer never holds more than one request's limit.
        #[test]
        fn any_split_decodes_the_same(
            cuts in proptest::collection::vec(0usize..200, 0..8),
            values in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..20), 1..6),
        ) {
            let limits = Limits { max_item_size: 12, ..Limits::default() };
            let mut wire = Vec::new();
            for (i, value) in values.iter().enumerate() {
                wire.extend_from_slice(format!("set k{i} {i} 0 {} noreply\r\n", value.len()).as_bytes());
                wire.extend_from_slice(value);
                wire.extend_from_slice(b"\r\n");
                wire.extend_from_slice(format!("gets k{i} other\r\nincr k{i} 1\r\nbogus\r\n").as_bytes());
            }
            let whole = {
                let mut decoder = Decoder::new(limits);
                let mut input = BytesMut::from(wire.as_slice());
                let mut out = Vec::new();
                decoder.decode_all(&mut input, &mut out).unwrap();
                proptest::prop_assert!(input.is_empty());
                out
            };
            let mut decoder = Decoder::new(limits);
            let mut input = BytesMut::new();
            let mut out = Vec::new();
            let mut rest = wire.as_slice();
            for cut in cuts.into_iter().chain([usize::MAX]) {
                let (now, later) = rest.split_at(cut.min(rest.len()));
                input.extend_from_slice(now);
                rest = later;
                decoder.decode_all(&mut input, &mut out).unwrap();
                proptest::prop_assert!(input.len() <= limits.max_request());
            }
            proptest::prop_assert_eq!(out, whole);
        }

        /// Any bytes: the decoder never panics, consumes only what it decodes (or discards as
        /// too large), and keeps within its limits.
        #[test]
        fn any_bytes_are_answered_or_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let limits = Limits { max_line: 64, max_get_line: 128, max_item_size: 16 };
            let mut decoder = Decoder::new(limits);
            let mut input = BytesMut::from(bytes.as_slice());
            loop {
                let before = input.len();
                match decoder.decode(&mut input) {
                    Ok(Some(_)) => proptest::prop_assert!(input.len() < before),
                    Ok(None) => {
                        proptest::prop_assert!(input.len() <= limits.max_request());
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }
}
