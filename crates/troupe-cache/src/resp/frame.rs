//! RESP2 frames: two-phase decoding with limits, inline commands, encoding
//!
//! Decoding first walks the input without allocating ([`Frame::check`]) to
//! find where a complete frame ends, then builds it from exactly those bytes.
//! Every length prefix is compared with its [`Limits`] entry as soon as its
//! header line is complete, before the body is waited for or allocated.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Redis's default `proto-max-bulk-len`
pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Default limit on the element count of one array
pub const DEFAULT_MAX_ARRAY_LEN: usize = 1024 * 1024;
/// Default limit on array nesting
pub const DEFAULT_MAX_DEPTH: usize = 32;
/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline command or header line
pub const DEFAULT_MAX_INLINE_LEN: usize = 64 * 1024;
/// Ceiling on [`Limits::max_depth`]: the decoder recurses once per level, so
/// a configured depth above this is clamped to keep the stack bounded.
pub const MAX_DEPTH_CEILING: usize = 256;

/// Bounds the decoder enforces before allocating
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string payload, in bytes
    pub max_bulk_len: usize,
    /// Most elements in one array
    pub max_array_len: usize,
    /// Deepest array nesting (a flat command array is depth 1); clamped to
    /// [`MAX_DEPTH_CEILING`]
    pub max_depth: usize,
    /// Longest line: an inline command, a simple string, or a length header
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_array_len: DEFAULT_MAX_ARRAY_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
            max_inline_len: DEFAULT_MAX_INLINE_LEN,
        }
    }
}

/// A RESP2 frame
///
/// Serializable: a shard answers the commands of a pipeline with their reply
/// frames, which may cross nodes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Frame {
    /// `+OK\r\n`
    Simple(String),
    /// `-ERR message\r\n`
    Error(String),
    /// `:42\r\n`
    Integer(i64),
    /// `$3\r\nfoo\r\n`
    Bulk(Bytes),
    /// `$-1\r\n`
    Null,
    /// `*2\r\n...`
    Array(Vec<Self>),
    /// `*-1\r\n`
    NullArray,
}

/// Why input is not valid RESP2
///
/// `Display` gives the text Redis replies with where Redis has one; the
/// peer is then dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// A bulk length above [`Limits::max_bulk_len`]
    #[error("Protocol error: invalid bulk length")]
    BulkTooLong {
        /// The announced length
        len: u64,
        /// The limit
        max: usize,
    },
    /// An array length above [`Limits::max_array_len`]
    #[error("Protocol error: invalid multibulk length")]
    ArrayTooLong {
        /// The announced length
        len: u64,
        /// The limit
        max: usize,
    },
    /// Arrays nested deeper than [`Limits::max_depth`]
    #[error("Protocol error: nesting deeper than {max}")]
    TooDeep {
        /// The limit
        max: usize,
    },
    /// A bulk length that is not a number, or negative other than `-1`
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An array length that is not a number, or negative other than `-1`
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// An array element with a prefix byte that starts no RESP2 type
    #[error("Protocol error: expected '$', got '{}'", char::from(*got))]
    UnexpectedByte {
        /// The byte found
        got: u8,
    },
    /// An inline command longer than [`Limits::max_inline_len`]
    #[error("Protocol error: too big inline request")]
    InlineTooLong,
    /// A header or simple line longer than [`Limits::max_inline_len`]
    #[error("Protocol error: too big count string")]
    LineTooLong,
    /// An integer frame whose body is not an `i64`
    #[error("Protocol error: invalid integer")]
    InvalidInteger,
    /// A bulk payload not followed by `\r\n`
    #[error("Protocol error: expected CRLF after bulk payload")]
    MissingCrlf,
    /// Anything else
    #[error("Protocol error: {0}")]
    Protocol(String),
}

/// Outcome of walking one frame: `Ok(None)` means more bytes are needed.
pub(super) type Step<T> = Result<Option<T>, RespError>;

impl Frame {
    /// Check that `buf` starts with a complete frame, without allocating
    ///
    /// `Ok(Some(n))`: the first `n` bytes are one valid frame. `Ok(None)`:
    /// the frame is incomplete so far (every proper prefix of a valid frame
    /// gives this). Blank inline lines before the frame are skipped and
    /// included in `n`.
    ///
    /// # Errors
    ///
    /// A [`RespError`] as soon as the bytes seen cannot start a valid frame
    /// within `limits`; a length over its limit is reported from the header
    /// alone.
    pub fn check(buf: &[u8], limits: &Limits) -> Result<Option<usize>, RespError> {
        Ok(walk_top(buf, limits, None)?.map(|(_, end)| end))
    }

    /// Decode the frame at the start of `buf`; returns it with the bytes it
    /// used
    ///
    /// `Ok(None)` means incomplete; nothing is consumed then. The frame's
    /// bytes are copied once into a shared buffer that bulk payloads slice.
    ///
    /// # Errors
    ///
    /// As [`Frame::check`].
    pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Self, usize)>, RespError> {
        let Some(end) = Self::check(buf, limits)? else {
            return Ok(None);
        };
        let bytes = Bytes::copy_from_slice(&buf[..end]);
        Ok(Self::build(&bytes, limits)?.map(|frame| (frame, end)))
    }

    /// Decode the frame at the start of `buf` and advance past it
    ///
    /// `Ok(None)` means incomplete and leaves `buf` untouched. Bulk payloads
    /// share `buf`'s allocation instead of being copied.
    ///
    /// # Errors
    ///
    /// As [`Frame::check`]; `buf` is then left untouched.
    pub fn decode_from(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Self>, RespError> {
        let Some(end) = Self::check(buf, limits)? else {
            return Ok(None);
        };
        let bytes = buf.split_to(end).freeze();
        Self::build(&bytes, limits)
    }

    /// Decodes every complete frame at the start of `buf` into `frames`, advancing past
    /// them; what is left in `buf` is an incomplete frame (or nothing). Frames from input
    /// of at most [`ONE_PASS_UP_TO`] bytes are built in one pass (their bulk payloads share
    /// the input's allocation); larger input is checked before it is built, frame by frame
    /// as [`decode_from`](Self::decode_from), so an incomplete large frame is only scanned.
    ///
    /// # Errors
    ///
    /// As [`Frame::check`], for the first frame that breaks it; the frames before it are
    /// in `frames` and consumed from `buf`, the bad one and the rest stay in `buf`.
    pub fn decode_all(
        buf: &mut BytesMut,
        limits: &Limits,
        frames: &mut Vec<Self>,
    ) -> Result<(), RespError> {
        if buf.len() > ONE_PASS_UP_TO {
            while let Some(frame) = Self::decode_from(buf, limits)? {
                frames.push(frame);
            }
            return Ok(());
        }
        let input = buf.split().freeze();
        let mut pos = 0;
        let outcome = loop {
            let rest = input.slice(pos..);
            match walk_top(&rest, limits, Some(&rest)) {
                Ok(Some((Some(frame), used))) => {
                    frames.push(frame);
                    pos += used;
                }
                Ok(Some((None, _))) => {
                    break Err(RespError::Protocol(
                        "a frame was checked but not built".into(),
                    ));
                }
                Ok(None) => break Ok(()),
                Err(err) => break Err(err),
            }
        };
        // what was not consumed goes back (an incomplete frame, or a bad one and the rest)
        if pos < input.len() {
            buf.extend_from_slice(&input[pos..]);
        }
        outcome
    }

    /// Build from bytes that passed `check`
    fn build(bytes: &Bytes, limits: &Limits) -> Result<Option<Self>, RespError> {
        match walk_top(bytes, limits, Some(bytes))? {
            Some((Some(frame), _)) => Ok(Some(frame)),
            // Unreachable after a successful check; reported, not panicked on.
            _ => Err(RespError::Protocol(
                "frame changed between check and parse".into(),
            )),
        }
    }

    /// Append the wire form of `self` to `dst`
    ///
    /// Carriage returns and line feeds inside simple strings and errors are
    /// written as spaces (as Redis does for error texts), so the output
    /// always decodes.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Self::Simple(s) => put_line(dst, b'+', s.as_bytes()),
            Self::Error(s) => put_line(dst, b'-', s.as_bytes()),
            Self::Integer(n) => put_header(dst, b':', *n),
            Self::Bulk(data) => encode_bulk(data, dst),
            Self::Null => dst.put_slice(b"$-1\r\n"),
            Self::Array(items) => {
                put_header(dst, b'*', len_i64(items.len()));
                for item in items {
                    item.encode(dst);
                }
            }
            Self::NullArray => dst.put_slice(b"*-1\r\n"),
        }
    }
}

/// Input of at most this many bytes is decoded in one pass by [`Frame::decode_all`].
pub const ONE_PASS_UP_TO: usize = 64 << 10;

/// How far the check of an incomplete array frame got, so that the bytes that arrive next
/// resume it there instead of walking the frame again from its start: a client that trickles
/// a large array in costs work in proportion to its bytes, not their square.
///
/// Keep one per connection and pass it to [`Frame::check_resuming`] with the same buffer (grown
/// only at its end) until that answers `Some`; it starts afresh by itself then.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resume {
    /// Where the next element starts
    pos: usize,
    /// Elements still to come in each array opened and not yet complete, outermost first
    open: Vec<usize>,
    /// Bytes examined so far, over every call
    examined: u64,
}

impl Resume {
    /// Whether a check is under way (an array frame begun and not complete).
    pub fn is_resuming(&self) -> bool {
        !self.open.is_empty()
    }

    /// Bytes the checks have examined so far, every call counted (what a test compares
    /// with the bytes received).
    pub fn examined(&self) -> u64 {
        self.examined
    }

    fn restart(&mut self) {
        self.pos = 0;
        self.open.clear();
    }
}

impl Frame {
    /// As [`Frame::check`], resuming where `resume` says an earlier call on a prefix of `buf`
    /// stopped: array elements already checked are not examined again (blank lines before an
    /// array included). A frame that is not an array is checked whole, as by
    /// [`Frame::check`]: it is one line or one bulk string, bounded by the limits.
    ///
    /// # Errors
    ///
    /// As [`Frame::check`]; `resume` starts afresh after an error.
    pub fn check_resuming(
        buf: &[u8],
        limits: &Limits,
        resume: &mut Resume,
    ) -> Result<Option<usize>, RespError> {
        let outcome = check_from(buf, limits, resume);
        if !matches!(outcome, Ok(None)) {
            resume.restart();
        }
        outcome
    }
}

/// The body of [`Frame::check_resuming`]; leaves `resume` where the check stopped.
fn check_from(
    buf: &[u8],
    limits: &Limits,
    resume: &mut Resume,
) -> Result<Option<usize>, RespError> {
    if resume.open.is_empty() {
        // blank lines first (telnet users press enter), as `walk_top` skips them
        let mut start = 0;
        loop {
            match buf.get(start) {
                None => return Ok(None),
                Some(b'*') => break,
                Some(b'+' | b'-' | b':' | b'$') => {
                    resume.examined += buf.len() as u64;
                    return Frame::check(buf, limits);
                }
                Some(_) => match inline(buf, start, limits, false)? {
                    None => return Ok(None),
                    Some((_, end, 0)) => {
                        resume.examined += (end - start) as u64;
                        start = end;
                        if start > limits.max_inline_len {
                            return Err(RespError::InlineTooLong);
                        }
                    }
                    // an inline command: one line, bounded by the inline limit
                    Some(_) => {
                        resume.examined += buf.len() as u64;
                        return Frame::check(buf, limits);
                    }
                },
            }
        }
        resume.pos = start;
        match resumed_header(buf, start, 0, limits, resume)? {
            None => return Ok(None),
            Some((end, 0)) => return Ok(Some(end)),
            Some((end, count)) => {
                resume.open.push(count);
                resume.pos = end;
            }
        }
    }
    loop {
        // close every array whose last element is in; the frame ends with the outermost
        while resume.open.last() == Some(&0) {
            resume.open.pop();
            match resume.open.last_mut() {
                Some(parent) => *parent -= 1,
                None => return Ok(Some(resume.pos)),
            }
        }
        let pos = resume.pos;
        let depth = resume.open.len();
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'*') => match resumed_header(buf, pos, depth, limits, resume)? {
                None => return Ok(None),
                Some((end, 0)) => {
                    resume.pos = end;
                    if let Some(left) = resume.open.last_mut() {
                        *left -= 1;
                    }
                }
                Some((end, count)) => {
                    resume.pos = end;
                    resume.open.push(count);
                }
            },
            Some(_) => match walk(buf, pos, depth, limits, None)? {
                None => {
                    resume.examined += (buf.len() - pos) as u64;
                    return Ok(None);
                }
                Some((_, end)) => {
                    resume.examined += (end - pos) as u64;
                    resume.pos = end;
                    if let Some(left) = resume.open.last_mut() {
                        *left -= 1;
                    }
                }
            },
        }
    }
}

/// An array header at `pos`, inside `depth` arrays: where its elements start and how many
/// there are (`None` for a null array); `None` while the header is incomplete. Both the walk
/// and the resumed check read headers here, so they agree on every limit.
pub(super) fn array_header(
    buf: &[u8],
    pos: usize,
    depth: usize,
    limits: &Limits,
) -> Step<(usize, Option<usize>)> {
    let start = pos + 1;
    let Some((len, cr)) = count_line(buf, start, limits, RespError::InvalidMultibulkLength)? else {
        return Ok(None);
    };
    if len == -1 {
        return Ok(Some((cr + 2, None)));
    }
    let len = u64::try_from(len).map_err(|_| RespError::InvalidMultibulkLength)?;
    let count = usize::try_from(len)
        .ok()
        .filter(|&n| n <= limits.max_array_len)
        .ok_or(RespError::ArrayTooLong {
            len,
            max: limits.max_array_len,
        })?;
    let max_depth = limits.max_depth.min(MAX_DEPTH_CEILING);
    if depth + 1 > max_depth {
        return Err(RespError::TooDeep { max: max_depth });
    }
    Ok(Some((cr + 2, Some(count))))
}

/// [`array_header`] for the resumed check: the element count (0 for a null array too), and
/// the bytes looked at counted in `resume`.
fn resumed_header(
    buf: &[u8],
    pos: usize,
    depth: usize,
    limits: &Limits,
    resume: &mut Resume,
) -> Step<(usize, usize)> {
    let header = array_header(buf, pos, depth, limits)?;
    resume.examined += match header {
        Some((end, _)) => end - pos,
        None => buf.len() - pos,
    } as u64;
    Ok(header.map(|(end, count)| (end, count.unwrap_or(0))))
}

/// Append the wire form of `frame` to `dst`
pub fn encode(frame: &Frame, dst: &mut BytesMut) {
    frame.encode(dst);
}

/// Append the wire form of a bulk string holding `data` to `dst`, as [`Frame::Bulk`] encodes
pub fn encode_bulk(data: &[u8], dst: &mut BytesMut) {
    dst.reserve(data.len() + 16);
    put_header(dst, b'$', len_i64(data.len()));
    dst.put_slice(data);
    dst.put_slice(b"\r\n");
}

fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

fn put_line(dst: &mut BytesMut, prefix: u8, text: &[u8]) {
    dst.reserve(text.len() + 3);
    dst.put_u8(prefix);
    for &b in text {
        dst.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    dst.put_slice(b"\r\n");
}

fn put_header(dst: &mut BytesMut, prefix: u8, n: i64) {
    dst.put_u8(prefix);
    dst.put_slice(itoa::Buffer::new().format(n).as_bytes());
    dst.put_slice(b"\r\n");
}

/// The number on the line at `start` (a length or an integer) and the index of the line's
/// `\r`; `None` while the line is incomplete. `invalid` if it is not a strict decimal `i64`.
fn count_line(buf: &[u8], start: usize, limits: &Limits, invalid: RespError) -> Step<(i64, usize)> {
    if let Some(found) = short_count(buf, start, limits) {
        return Ok(Some(found));
    }
    let Some(cr) = line_end(buf, start, limits.max_inline_len, RespError::LineTooLong)? else {
        return Ok(None);
    };
    let n = parse_i64(&buf[start..cr]).ok_or(invalid)?;
    Ok(Some((n, cr)))
}

/// The count line at `start` read in one pass when it has the shape nearly every client
/// sends: up to 18 digits without a leading zero, then `\r\n`, all received. `None`
/// otherwise, for [`line_end`] and [`parse_i64`] to judge: for this shape they find the same
/// line end and number, so both paths agree on every input.
fn short_count(buf: &[u8], start: usize, limits: &Limits) -> Option<(i64, usize)> {
    let digits = buf.get(start..)?;
    let mut n: i64 = 0;
    let mut len = 0;
    for &b in digits.iter().take(18) {
        if !b.is_ascii_digit() {
            break;
        }
        n = n * 10 + i64::from(b - b'0');
        len += 1;
    }
    let cr = start + len;
    let shaped = len > 0
        && len <= limits.max_inline_len
        && !(len > 1 && digits[0] == b'0')
        && buf.get(cr..cr + 2) == Some(b"\r\n");
    shaped.then_some((n, cr))
}

/// Parse a strict decimal `i64`, as Redis's `string2ll`: an optional `-`,
/// then digits without a leading zero (except `0` itself); no spaces, no `+`.
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!negative).then_some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut n: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        let d = i64::from(b - b'0');
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

/// Find the `\r\n`-terminated line starting at `pos`; returns the index of
/// its `\r`. Lines longer than `max` are an error as soon as that many bytes
/// are buffered without a terminator.
fn line_end(buf: &[u8], pos: usize, max: usize, too_long: RespError) -> Step<usize> {
    let rest = buf.get(pos..).unwrap_or_default();
    let window = &rest[..rest.len().min(max.saturating_add(2))];
    // the first `\r` followed by `\n`; a lone `\r` is part of the line
    let mut from = 0;
    let found = loop {
        match memchr::memchr(b'\r', &window[from..]) {
            Some(i) if window.get(from + i + 1) == Some(&b'\n') => break Some(from + i),
            Some(i) => from += i + 1,
            None => break None,
        }
    };
    match found {
        Some(i) if i <= max => Ok(Some(pos + i)),
        Some(_) => Err(too_long),
        None if rest.len() > max.saturating_add(1) => Err(too_long),
        None => Ok(None),
    }
}

/// Walk the top-level frame, skipping blank inline lines first.
///
/// With `out` set (the same bytes as `buf`), the frame is built; otherwise
/// only validated.
pub(super) fn walk_top(
    buf: &[u8],
    limits: &Limits,
    out: Option<&Bytes>,
) -> Step<(Option<Frame>, usize)> {
    let mut pos = 0;
    loop {
        let Some(&first) = buf.get(pos) else {
            return Ok(None);
        };
        if matches!(first, b'+' | b'-' | b':' | b'$' | b'*') {
            return walk(buf, pos, 0, limits, out);
        }
        let Some((frame, end, argc)) = inline(buf, pos, limits, out.is_some())? else {
            return Ok(None);
        };
        // Blankness comes from the same split in both phases, so check and
        // build always agree on where the frame ends.
        if argc > 0 {
            return Ok(Some((frame, end)));
        }
        // A blank line: telnet users press enter; Redis skips these. The
        // skipped prefix still counts against the inline limit so a stream
        // of blank lines cannot grow the buffer without bound.
        pos = end;
        if pos > limits.max_inline_len {
            return Err(RespError::InlineTooLong);
        }
    }
}

/// An inline command: one `\n`-terminated line (an optional `\r` before it is
/// dropped), split on spaces and tabs into bulk strings. Also returns the
/// argument count.
fn inline(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
    build: bool,
) -> Step<(Option<Frame>, usize, usize)> {
    let rest = &buf[pos..];
    let window = &rest[..rest.len().min(limits.max_inline_len.saturating_add(1))];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        return if rest.len() > limits.max_inline_len {
            Err(RespError::InlineTooLong)
        } else {
            Ok(None)
        };
    };
    if nl > limits.max_inline_len {
        return Err(RespError::InlineTooLong);
    }
    let end = pos + nl + 1;
    let mut line = &rest[..nl];
    if let [head @ .., b'\r'] = line {
        line = head;
    }
    let args = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|arg| !arg.is_empty());
    let argc = args.clone().count();
    if argc > limits.max_array_len {
        return Err(RespError::ArrayTooLong {
            len: argc as u64,
            max: limits.max_array_len,
        });
    }
    let frame = build.then(|| {
        Frame::Array(
            args.map(|arg| Frame::Bulk(Bytes::copy_from_slice(arg)))
                .collect(),
        )
    });
    Ok(Some((frame, end, argc)))
}

fn text(buf: &[u8], start: usize, end: usize) -> Result<String, RespError> {
    String::from_utf8(buf[start..end].to_vec())
        .map_err(|_| RespError::Protocol("invalid UTF-8 in simple string".into()))
}

/// The bulk string whose `$` is at `pos`: where its payload lies (`None` for the null bulk
/// string) and where it ends; `None` while incomplete. Both [`walk`] and the request decoder
/// read bulk strings here, so they agree on every limit and error.
pub(super) fn bulk(buf: &[u8], pos: usize, limits: &Limits) -> Step<(Option<Range<usize>>, usize)> {
    let start = pos + 1;
    let Some((len, cr)) = count_line(buf, start, limits, RespError::InvalidBulkLength)? else {
        return Ok(None);
    };
    let body = cr + 2;
    if len == -1 {
        return Ok(Some((None, body)));
    }
    let len = u64::try_from(len).map_err(|_| RespError::InvalidBulkLength)?;
    let len_usize = usize::try_from(len)
        .ok()
        .filter(|&n| n <= limits.max_bulk_len)
        .ok_or(RespError::BulkTooLong {
            len,
            max: limits.max_bulk_len,
        })?;
    let end = body + len_usize;
    let Some(crlf) = buf.get(end..end + 2) else {
        // A partial `\r` is still just incomplete.
        if buf.get(end).is_some_and(|&b| b != b'\r') {
            return Err(RespError::MissingCrlf);
        }
        return Ok(None);
    };
    if crlf != b"\r\n" {
        return Err(RespError::MissingCrlf);
    }
    Ok(Some((Some(body..end), end + 2)))
}

/// Walk one typed frame at `pos`, nested `depth` arrays deep.
fn walk(
    buf: &[u8],
    pos: usize,
    depth: usize,
    limits: &Limits,
    out: Option<&Bytes>,
) -> Step<(Option<Frame>, usize)> {
    let Some(&prefix) = buf.get(pos) else {
        return Ok(None);
    };
    let start = pos + 1;
    let too_long = RespError::LineTooLong;
    match prefix {
        b'+' | b'-' => {
            let Some(cr) = line_end(buf, start, limits.max_inline_len, too_long)? else {
                return Ok(None);
            };
            let frame = match out {
                None => {
                    // Validate UTF-8 in the check phase too, so build never
                    // fails where check passed.
                    std::str::from_utf8(&buf[start..cr]).map_err(|_| {
                        RespError::Protocol("invalid UTF-8 in simple string".into())
                    })?;
                    None
                }
                Some(_) if prefix == b'+' => Some(Frame::Simple(text(buf, start, cr)?)),
                Some(_) => Some(Frame::Error(text(buf, start, cr)?)),
            };
            Ok(Some((frame, cr + 2)))
        }
        b':' => Ok(count_line(buf, start, limits, RespError::InvalidInteger)?
            .map(|(n, cr)| (out.map(|_| Frame::Integer(n)), cr + 2))),
        b'$' => Ok(bulk(buf, pos, limits)?.map(|(body, end)| {
            let frame = out.map(|bytes| match body {
                Some(body) => Frame::Bulk(bytes.slice(body)),
                None => Frame::Null,
            });
            (frame, end)
        })),
        b'*' => {
            let Some((mut next, count)) = array_header(buf, pos, depth, limits)? else {
                return Ok(None);
            };
            let Some(count) = count else {
                return Ok(Some((out.map(|_| Frame::NullArray), next)));
            };
            // Only the build phase allocates; the one-pass build of `decode_all` may build
            // a frame not yet checked, so the capacity is bounded by the bytes received
            // (every element takes at least 3 bytes on the wire), never by the count a client
            // declares.
            let room = buf.len().saturating_sub(next) / 3;
            let mut items = out.map(|_| Vec::with_capacity(count.min(room)));
            for _ in 0..count {
                let Some((item, end)) = walk(buf, next, depth + 1, limits, out)? else {
                    return Ok(None);
                };
                if let (Some(items), Some(item)) = (items.as_mut(), item) {
                    items.push(item);
                }
                next = end;
            }
            Ok(Some((items.map(Frame::Array), next)))
        }
        other => Err(RespError::UnexpectedByte { got: other }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_frame() -> impl Strategy<Value = Frame> {
        let text = "[^\r\n]{0,20}";
        let leaf = prop_oneof![
            text.prop_map(Frame::Simple),
            text.prop_map(Frame::Error),
            any::<i64>().prop_map(Frame::Integer),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(|v| Frame::Bulk(Bytes::from(v))),
            Just(Frame::Null),
            Just(Frame::NullArray),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            proptest::collection::vec(inner, 0..8).prop_map(Frame::Array)
        })
    }

    fn enc(frame: &Frame) -> BytesMut {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        buf
    }

    fn decode(input: &[u8]) -> Result<Option<(Frame, usize)>, RespError> {
        Frame::decode(input, &Limits::default())
    }

    fn bulk_array(parts: &[&str]) -> Frame {
        Frame::Array(
            parts
                .iter()
                .map(|p| Frame::Bulk(Bytes::copy_from_slice(p.as_bytes())))
                .collect(),
        )
    }

    proptest! {
        #[test]
        fn round_trip(frame in arb_frame()) {
            let bytes = enc(&frame);
            prop_assert_eq!(decode(&bytes), Ok(Some((frame.clone(), bytes.len()))));
            let mut buf = bytes.clone();
            prop_assert_eq!(Frame::decode_from(&mut buf, &Limits::default()), Ok(Some(frame)));
            prop_assert!(buf.is_empty());
        }

        /// Fed in random-sized chunks, the decoder says `Ok(None)` and
        /// consumes nothing until the frame is complete.
        #[test]
        fn chunked(frame in arb_frame(), chunks in proptest::collection::vec(1usize..16, 1..64)) {
            let bytes = enc(&frame);
            let mut buf = BytesMut::new();
            let mut fed = 0;
            let mut sizes = chunks.into_iter().cycle();
            loop {
                let n = sizes.next().unwrap_or(1).min(bytes.len() - fed);
                buf.extend_from_slice(&bytes[fed..fed + n]);
                fed += n;
                let before = buf.len();
                match Frame::decode_from(&mut buf, &Limits::default()) {
                    Ok(None) => {
                        prop_assert!(fed < bytes.len());
                        prop_assert_eq!(buf.len(), before);
                    }
                    Ok(Some(decoded)) => {
                        prop_assert_eq!(fed, bytes.len());
                        prop_assert_eq!(decoded, frame);
                        prop_assert!(buf.is_empty());
                        break;
                    }
                    Err(err) => prop_assert!(false, "error {:?}", err),
                }
            }
        }

        /// Every proper prefix of a valid frame is incomplete, never an error
        /// and never a different frame.
        #[test]
        fn truncations_are_incomplete(frame in arb_frame()) {
            let bytes = enc(&frame);
            for cut in 0..bytes.len() {
                prop_assert_eq!(decode(&bytes[..cut]), Ok(None), "cut at {}", cut);
            }
        }

        /// A pipeline fed in random-sized chunks and decoded with `decode_all` after each
        /// gives every frame once, in order, whatever the chunking.
        #[test]
        fn decode_all_over_chunks(
            frames in proptest::collection::vec(arb_frame(), 1..12),
            chunks in proptest::collection::vec(1usize..64, 1..64),
        ) {
            let mut wire = BytesMut::new();
            for frame in &frames {
                frame.encode(&mut wire);
            }
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut fed = 0;
            let mut sizes = chunks.into_iter().cycle();
            while fed < wire.len() {
                let n = sizes.next().unwrap_or(1).min(wire.len() - fed);
                buf.extend_from_slice(&wire[fed..fed + n]);
                fed += n;
                prop_assert_eq!(Frame::decode_all(&mut buf, &Limits::default(), &mut got), Ok(()));
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, frames);
        }

        #[test]
        fn pipelined(frames in proptest::collection::vec(arb_frame(), 1..8)) {
            let mut buf = BytesMut::new();
            for frame in &frames {
                frame.encode(&mut buf);
            }
            for frame in frames {
                prop_assert_eq!(Frame::decode_from(&mut buf, &Limits::default()), Ok(Some(frame)));
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(Frame::decode_from(&mut buf, &Limits::default()), Ok(None));
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let tight = Limits { max_bulk_len: 8, max_array_len: 4, max_depth: 2, max_inline_len: 16 };
            for limits in [Limits::default(), tight] {
                // Check and build agree: a checked frame always builds.
                let checked = Frame::check(&input, &limits);
                let decoded = Frame::decode(&input, &limits);
                match checked {
                    Ok(Some(n)) => prop_assert_eq!(decoded.map(|d| d.map(|(_, m)| m)), Ok(Some(n))),
                    other => prop_assert_eq!(other, decoded.map(|d| d.map(|(_, m)| m))),
                }
            }
        }

        /// Structured-looking garbage reaches deeper decoder paths.
        #[test]
        fn resp_like_bytes_never_panic(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(&b"*"[..]), Just(&b"$"[..]), Just(&b":"[..]), Just(&b"+"[..]),
                    Just(&b"-"[..]), Just(&b"\r\n"[..]), Just(&b"1"[..]), Just(&b"-1"[..]),
                    Just(&b"3"[..]), Just(&b"abc"[..]), Just(&b" "[..]), Just(&b"\n"[..]),
                ],
                0..40,
            )
        ) {
            let input: Vec<u8> = parts.concat();
            let tight = Limits { max_bulk_len: 8, max_array_len: 4, max_depth: 2, max_inline_len: 16 };
            match (Frame::check(&input, &tight), Frame::decode(&input, &tight)) {
                (Ok(Some(n)), Ok(Some((_, m)))) => {
                    prop_assert_eq!(n, m);
                    prop_assert!(n <= input.len());
                }
                (checked, decoded) => prop_assert_eq!(checked, decoded.map(|d| d.map(|(_, m)| m))),
            }
        }
    }

    proptest! {
        #[test]
        fn resuming_finds_the_end_the_whole_check_finds(
            frame in arb_frame(),
            chunks in proptest::collection::vec(1usize..16, 1..64),
        ) {
            let wire = enc(&frame);
            let mut resume = Resume::default();
            let mut got = None;
            let mut len = 0;
            for chunk in chunks.iter().cycle() {
                len = (len + chunk).min(wire.len());
                got = Frame::check_resuming(&wire[..len], &Limits::default(), &mut resume)
                    .expect("a valid frame");
                if got.is_some() || len == wire.len() {
                    break;
                }
            }
            prop_assert_eq!(got, Some(wire.len()));
            prop_assert!(!resume.is_resuming());
        }
    }

    proptest! {
        #[test]
        fn the_one_pass_count_agrees_with_the_line_and_number_parsers(
            line in proptest::collection::vec(
                proptest::sample::select(b"0123456789-+\r\n x".to_vec()), 0..24)
        ) {
            let limits = Limits::default();
            if let Some((n, cr)) = short_count(&line, 0, &limits) {
                let end = line_end(&line, 0, limits.max_inline_len, RespError::LineTooLong);
                prop_assert_eq!(end, Ok(Some(cr)));
                prop_assert_eq!(parse_i64(&line[..cr]), Some(n));
            }
        }
    }

    #[test]
    fn a_trickled_array_is_examined_once_not_once_per_read() {
        let elements = 100_000;
        let mut wire = format!("*{elements}\r\n").into_bytes();
        for _ in 0..elements {
            wire.extend_from_slice(b"$1\r\nx\r\n");
        }
        let mut resume = Resume::default();
        let mut end = None;
        for len in (3..=wire.len()).step_by(3).chain([wire.len()]) {
            end = Frame::check_resuming(&wire[..len], &Limits::default(), &mut resume).unwrap();
            if end.is_some() {
                break;
            }
        }
        assert_eq!(end, Some(wire.len()));
        // each element is looked at about twice (once incomplete, once whole): linear; walking
        // from the start on every read would be about 10^11 bytes here
        assert!(
            resume.examined() <= 4 * wire.len() as u64,
            "{} bytes examined for {} received",
            resume.examined(),
            wire.len()
        );
    }

    #[test]
    fn blank_lines_before_a_trickled_array_keep_it_linear() {
        let mut wire = b"\r\n \r\n*50000\r\n".to_vec();
        for _ in 0..50_000 {
            wire.extend_from_slice(b"$1\r\nx\r\n");
        }
        let mut resume = Resume::default();
        let mut end = None;
        for len in (1..=wire.len()).step_by(5).chain([wire.len()]) {
            end = Frame::check_resuming(&wire[..len], &Limits::default(), &mut resume).unwrap();
            if end.is_some() {
                break;
            }
        }
        assert_eq!(end, Frame::check(&wire, &Limits::default()).unwrap());
        assert_eq!(end, Some(wire.len()));
        assert!(
            resume.examined() <= 4 * wire.len() as u64,
            "{}",
            resume.examined()
        );
    }

    proptest! {
        #[test]
        fn resuming_agrees_with_the_whole_check_on_any_bytes(
            input in proptest::collection::vec(
                prop_oneof![
                    Just(b'*'), Just(b'$'), Just(b':'), Just(b'+'), Just(b'\r'), Just(b'\n'),
                    Just(b'1'), Just(b'2'), Just(b'-'), Just(b' '), Just(b'x'),
                ],
                0..64,
            ),
            step in 1usize..8,
        ) {
            let limits = Limits { max_depth: 3, max_inline_len: 16, ..Limits::default() };
            let mut resume = Resume::default();
            let mut len = 0;
            loop {
                len = (len + step).min(input.len());
                let whole = Frame::check(&input[..len], &limits);
                let resumed = Frame::check_resuming(&input[..len], &limits, &mut resume);
                // once the whole check has an answer, both have the same one
                match (&whole, &resumed) {
                    (Ok(None), Ok(None)) => {}
                    _ => {
                        prop_assert_eq!(whole.is_ok(), resumed.is_ok(), "{:?} vs {:?}", whole, resumed);
                        if let (Ok(a), Ok(b)) = (&whole, &resumed) {
                            prop_assert_eq!(a, b);
                        }
                        break;
                    }
                }
                if len == input.len() {
                    break;
                }
            }
        }
    }

    #[test]
    fn resuming_reports_the_errors_the_whole_check_reports() {
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        let mut resume = Resume::default();
        assert_eq!(
            Frame::check_resuming(b"*1\r\n*1\r\n*1\r\n:1\r\n", &limits, &mut resume),
            Frame::check(b"*1\r\n*1\r\n*1\r\n:1\r\n", &limits)
        );
        assert!(!resume.is_resuming());
        assert!(Frame::check_resuming(b"*2\r\n$1\r\nxx\r\n", &limits, &mut resume).is_err());
        assert_eq!(
            Frame::check_resuming(b"*0\r\n", &limits, &mut resume),
            Ok(Some(4))
        );
        assert_eq!(
            Frame::check_resuming(b"*2\r\n*-1\r\n*0\r\n", &limits, &mut resume),
            Frame::check(b"*2\r\n*-1\r\n*0\r\n", &limits)
        );
        assert_eq!(Frame::check(b"*2\r\n*-1\r\n*0\r\n", &limits), Ok(Some(13)));
    }

    #[test]
    fn simple_frames() {
        assert_eq!(
            decode(b"+OK\r\n"),
            Ok(Some((Frame::Simple("OK".into()), 5)))
        );
        assert_eq!(
            decode(b"-ERR bad\r\n"),
            Ok(Some((Frame::Error("ERR bad".into()), 10)))
        );
        assert_eq!(decode(b":-42\r\n"), Ok(Some((Frame::Integer(-42), 6))));
        assert_eq!(decode(b"$-1\r\n"), Ok(Some((Frame::Null, 5))));
        assert_eq!(decode(b"*-1\r\n"), Ok(Some((Frame::NullArray, 5))));
        assert_eq!(decode(b"*0\r\n"), Ok(Some((Frame::Array(vec![]), 4))));
        assert_eq!(
            decode(b"$0\r\n\r\n"),
            Ok(Some((Frame::Bulk(Bytes::new()), 6)))
        );
    }

    #[test]
    fn inline_commands() {
        assert_eq!(
            decode(b"SET  k\tv\r\n"),
            Ok(Some((bulk_array(&["SET", "k", "v"]), 10)))
        );
        // Bare LF as telnet may send, and blank lines skipped.
        assert_eq!(
            decode(b"\r\n\nPING\n"),
            Ok(Some((bulk_array(&["PING"]), 8)))
        );
        assert_eq!(decode(b"\r\n  \r\n"), Ok(None));
        // Only spaces and tabs separate: a lone CR or form feed is an argument.
        assert_eq!(decode(b"\r\r\n\x0c\n"), Ok(Some((bulk_array(&["\r"]), 3))));
        assert_eq!(decode(b"PING"), Ok(None));
        let long = vec![b'a'; DEFAULT_MAX_INLINE_LEN + 1];
        assert_eq!(decode(&long), Err(RespError::InlineTooLong));
        let blanks = b"\r\n".repeat(DEFAULT_MAX_INLINE_LEN);
        assert_eq!(decode(&blanks), Err(RespError::InlineTooLong));
        // An inline command then a multibulk one, pipelined.
        let mut buf = BytesMut::from(&b"PING\r\n*1\r\n$4\r\nPING\r\n"[..]);
        let limits = Limits::default();
        assert_eq!(
            Frame::decode_from(&mut buf, &limits),
            Ok(Some(bulk_array(&["PING"])))
        );
        assert_eq!(
            Frame::decode_from(&mut buf, &limits),
            Ok(Some(bulk_array(&["PING"])))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn malformed() {
        let cases: &[(&[u8], RespError)] = &[
            (b"*1\r\nx3\r\n", RespError::UnexpectedByte { got: b'x' }),
            (b"*1\r\n\r\n", RespError::UnexpectedByte { got: b'\r' }),
            (b"$-2\r\n", RespError::InvalidBulkLength),
            (b"$abc\r\n", RespError::InvalidBulkLength),
            (b"$\r\n", RespError::InvalidBulkLength),
            (b"$+3\r\nfoo\r\n", RespError::InvalidBulkLength),
            (b"$03\r\nfoo\r\n", RespError::InvalidBulkLength),
            (b"*-2\r\n", RespError::InvalidMultibulkLength),
            (b"*x\r\n", RespError::InvalidMultibulkLength),
            (b"*1\r\n$-5\r\n", RespError::InvalidBulkLength),
            (b":12a\r\n", RespError::InvalidInteger),
            (b":99999999999999999999\r\n", RespError::InvalidInteger),
            (b"$3\r\nfooXY", RespError::MissingCrlf),
            (b"$3\r\nfoo\rX", RespError::MissingCrlf),
            (b"$3\r\nfooX", RespError::MissingCrlf),
            (
                b"+\xff\r\n",
                RespError::Protocol("invalid UTF-8 in simple string".into()),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                decode(input).as_ref(),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn limits_come_from_the_header_alone() {
        let limits = Limits {
            max_bulk_len: 10,
            max_array_len: 3,
            max_depth: 2,
            max_inline_len: 8,
        };
        assert_eq!(
            Frame::decode(b"$11\r\n", &limits),
            Err(RespError::BulkTooLong { len: 11, max: 10 })
        );
        assert_eq!(
            Frame::decode(b"*4\r\n", &limits),
            Err(RespError::ArrayTooLong { len: 4, max: 3 })
        );
        assert_eq!(
            Frame::decode(b"*1\r\n*1\r\n*1\r\n", &limits),
            Err(RespError::TooDeep { max: 2 })
        );
        assert_eq!(
            Frame::decode(b"*1\r\n$999999999999999999999", &limits),
            Err(RespError::LineTooLong)
        );
        assert_eq!(
            Frame::decode(b"a b c d e\r\n", &limits),
            Err(RespError::InlineTooLong)
        );
        assert_eq!(
            Frame::decode(b"a b c d\r\n", &limits),
            Err(RespError::ArrayTooLong { len: 4, max: 3 })
        );
        // Default limits: a 1 GiB bulk header is refused before any body.
        assert_eq!(
            decode(b"*1\r\n$1073741824\r\n"),
            Err(RespError::BulkTooLong {
                len: 1 << 30,
                max: DEFAULT_MAX_BULK_LEN
            })
        );
        assert_eq!(
            decode(b"*9223372036854775807\r\n"),
            Err(RespError::ArrayTooLong {
                len: i64::MAX as u64,
                max: DEFAULT_MAX_ARRAY_LEN
            })
        );
        // At the limits is fine.
        assert!(matches!(
            Frame::decode(b"$10\r\n0123456789\r\n", &limits),
            Ok(Some(_))
        ));
        assert!(matches!(
            Frame::decode(b"*1\r\n*0\r\n", &limits),
            Ok(Some(_))
        ));
    }

    #[test]
    fn error_texts_match_redis() {
        assert_eq!(
            RespError::BulkTooLong { len: 1, max: 0 }.to_string(),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            RespError::InvalidMultibulkLength.to_string(),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            RespError::ArrayTooLong { len: 1, max: 0 }.to_string(),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            RespError::UnexpectedByte { got: b'x' }.to_string(),
            "Protocol error: expected '$', got 'x'"
        );
        assert_eq!(
            RespError::InlineTooLong.to_string(),
            "Protocol error: too big inline request"
        );
    }

    #[test]
    fn encode_sanitizes_line_breaks() {
        let bytes = enc(&Frame::Error("ERR a\r\nb".into()));
        assert_eq!(&bytes[..], b"-ERR a  b\r\n");
        let mut buf = BytesMut::new();
        encode(&Frame::Integer(5), &mut buf);
        assert_eq!(&buf[..], b":5\r\n");
    }

    #[test]
    fn bulk_shares_the_input_buffer() {
        let mut buf = BytesMut::from(&b"$3\r\nfoo\r\n"[..]);
        let Ok(Some(Frame::Bulk(data))) = Frame::decode_from(&mut buf, &Limits::default()) else {
            panic!("expected a bulk frame");
        };
        assert_eq!(&data[..], b"foo");
    }
}
