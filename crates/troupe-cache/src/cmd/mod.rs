//! Commands parsed from RESP frames (parsing only; `server.rs` executes them)
//!
//! One function per command in this file rather than mini-redis's one file
//! per command; each function documents its wire syntax under `# Format`.
//! Names, subcommands and options are case-insensitive. Arity is checked
//! first, as Redis does from its command table, so the error texts match:
//! `ERR wrong number of arguments for 'get' command`.

use std::time::Duration;

use bytes::Bytes;

use crate::resp::{Frame, Parse, ParseError};

/// `SET`'s `NX`/`XX` condition
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SetCondition {
    /// `NX`: only set if the key does not exist
    IfAbsent,
    /// `XX`: only set if the key exists
    IfPresent,
}

/// `SET`'s expiry option
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetExpiry {
    /// `EX s` or `PX ms`: expire this long after the write
    After(Duration),
    /// `KEEPTTL`: keep the existing key's expiry
    KeepTtl,
}

/// `EXPIRE`/`PEXPIRE`'s options (Redis 7); repeats are allowed
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ExpireOptions {
    /// `NX`: only if the key has no expiry
    pub nx: bool,
    /// `XX`: only if the key has an expiry
    pub xx: bool,
    /// `GT`: only if the new expiry is later
    pub gt: bool,
    /// `LT`: only if the new expiry is sooner
    pub lt: bool,
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|KEEPTTL]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// The key
    pub key: Bytes,
    /// The value
    pub value: Bytes,
    /// `EX`/`PX`/`KEEPTTL`; `None` clears any expiry
    pub expiry: Option<SetExpiry>,
    /// `NX`/`XX`
    pub condition: Option<SetCondition>,
    /// `GET`: reply with the old value
    pub get: bool,
}

/// `CLIENT` subcommands
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// `CLIENT SETNAME name`
    SetName(Bytes),
    /// `CLIENT SETINFO attr value` (`LIB-NAME`, `LIB-VER`)
    SetInfo {
        /// The attribute, as sent
        attr: Bytes,
        /// Its value
        value: Bytes,
    },
    /// `CLIENT GETNAME`
    GetName,
    /// `CLIENT ID`
    Id,
    /// Any other subcommand, lower-cased, with its arguments
    Other {
        /// The subcommand
        sub: String,
        /// Its arguments
        args: Vec<Bytes>,
    },
}

/// `COMMAND` subcommands
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandCommand {
    /// Bare `COMMAND`
    All,
    /// `COMMAND COUNT`
    Count,
    /// `COMMAND DOCS [name ...]`
    Docs(Vec<Bytes>),
    /// `COMMAND INFO [name ...]`
    Info(Vec<Bytes>),
    /// Any other subcommand, lower-cased, with its arguments
    Other {
        /// The subcommand
        sub: String,
        /// Its arguments
        args: Vec<Bytes>,
    },
}

/// A parsed command
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `PING [message]`
    Ping(Option<Bytes>),
    /// `ECHO message`
    Echo(Bytes),
    /// `GET key`
    Get(Bytes),
    /// `SET key value [options]`
    Set(Set),
    /// `SETEX key seconds value`
    SetEx {
        /// The key
        key: Bytes,
        /// Time to live, positive
        ttl: Duration,
        /// The value
        value: Bytes,
    },
    /// `DEL key [key ...]`
    Del(Vec<Bytes>),
    /// `EXISTS key [key ...]`
    Exists(Vec<Bytes>),
    /// `EXPIRE key seconds [NX|XX|GT|LT]` or `PEXPIRE key ms [...]`
    Expire {
        /// The key
        key: Bytes,
        /// Milliseconds from now; zero or negative deletes the key
        millis: i64,
        /// `NX`/`XX`/`GT`/`LT`
        options: ExpireOptions,
    },
    /// `TTL key`
    Ttl(Bytes),
    /// `PTTL key`
    PTtl(Bytes),
    /// `PERSIST key`
    Persist(Bytes),
    /// `INCR`, `INCRBY`, `DECR`, `DECRBY`: add `by` to the integer at `key`
    IncrBy {
        /// The key
        key: Bytes,
        /// The increment (negated for `DECR`/`DECRBY`)
        by: i64,
    },
    /// `MGET key [key ...]`
    MGet(Vec<Bytes>),
    /// `MSET key value [key value ...]`
    MSet(Vec<(Bytes, Bytes)>),
    /// `DBSIZE`
    DbSize,
    /// `FLUSHALL [ASYNC|SYNC]`
    FlushAll,
    /// `INFO [section ...]`, sections lower-cased
    Info(Vec<String>),
    /// `QUIT`
    Quit,
    /// `SELECT index`
    Select(i64),
    /// `CLIENT subcommand ...`
    Client(ClientCommand),
    /// `HELLO [protover [...]]`; the front end refuses it so clients fall
    /// back to RESP2
    Hello(Vec<Bytes>),
    /// `AUTH [username] password`
    Auth {
        /// The user, if given (only `default` exists)
        user: Option<Bytes>,
        /// The password
        password: Bytes,
    },
    /// `CONFIG GET parameter [parameter ...]`
    ConfigGet(Vec<Bytes>),
    /// `COMMAND [subcommand ...]`
    Command(CommandCommand),
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
    /// A non-positive or overflowing expiry for the named command
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpireTime(&'static str),
    /// An unknown `EXPIRE` option
    #[error("ERR Unsupported option {0}")]
    UnsupportedOption(String),
    /// `EXPIRE` options that exclude each other
    #[error("ERR {0}")]
    Incompatible(&'static str),
    /// An unknown subcommand of `CONFIG`
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
        let mut parse = Parse::new(frame)?;
        if parse.remaining() == 0 {
            return Err(CommandError::Empty);
        }
        let name = parse.next_bytes()?;
        // Arity counts the name, as in Redis's command table.
        let argc = parse.remaining() + 1;
        let lower = name.to_ascii_lowercase();
        let command = match lower.as_slice() {
            b"ping" => ping(&mut parse, argc)?,
            b"echo" => {
                arity(argc, 2, "echo")?;
                Self::Echo(parse.next_bytes()?)
            }
            b"get" => Self::Get(one_key(&mut parse, argc, "get")?),
            b"set" => set(&mut parse, argc)?,
            b"setex" => setex(&mut parse, argc)?,
            b"del" => Self::Del(keys(&mut parse, argc, "del")?),
            b"exists" => Self::Exists(keys(&mut parse, argc, "exists")?),
            b"expire" => expire(&mut parse, argc, "expire", 1000)?,
            b"pexpire" => expire(&mut parse, argc, "pexpire", 1)?,
            b"ttl" => Self::Ttl(one_key(&mut parse, argc, "ttl")?),
            b"pttl" => Self::PTtl(one_key(&mut parse, argc, "pttl")?),
            b"persist" => Self::Persist(one_key(&mut parse, argc, "persist")?),
            b"incr" => Self::IncrBy {
                key: one_key(&mut parse, argc, "incr")?,
                by: 1,
            },
            b"decr" => Self::IncrBy {
                key: one_key(&mut parse, argc, "decr")?,
                by: -1,
            },
            b"incrby" => incr_by(&mut parse, argc, "incrby", false)?,
            b"decrby" => incr_by(&mut parse, argc, "decrby", true)?,
            b"mget" => Self::MGet(keys(&mut parse, argc, "mget")?),
            b"mset" => mset(&mut parse, argc)?,
            b"dbsize" => {
                arity(argc, 1, "dbsize")?;
                Self::DbSize
            }
            b"flushall" => flushall(&mut parse)?,
            b"info" => Self::Info(
                parse
                    .rest()?
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
                    .collect(),
            ),
            // Redis 7.2 accepts and ignores arguments to QUIT.
            b"quit" => Self::Quit,
            b"select" => {
                arity(argc, 2, "select")?;
                Self::Select(parse.next_int()?)
            }
            b"client" => client(&mut parse, argc)?,
            b"hello" => Self::Hello(parse.rest()?),
            b"auth" => match argc {
                2 => Self::Auth {
                    user: None,
                    password: parse.next_bytes()?,
                },
                3 => Self::Auth {
                    user: Some(parse.next_bytes()?),
                    password: parse.next_bytes()?,
                },
                _ => return Err(CommandError::WrongArity("auth")),
            },
            b"config" => config(&mut parse, argc)?,
            b"command" => command(&mut parse)?,
            _ => Self::Unknown(name, parse.rest()?),
        };
        parse.finish()?;
        Ok(command)
    }
}

/// Exactly `n` arguments including the name.
fn arity(argc: usize, n: usize, name: &'static str) -> Result<(), CommandError> {
    if argc == n {
        Ok(())
    } else {
        Err(CommandError::WrongArity(name))
    }
}

/// At least `n` arguments including the name.
fn arity_at_least(argc: usize, n: usize, name: &'static str) -> Result<(), CommandError> {
    if argc >= n {
        Ok(())
    } else {
        Err(CommandError::WrongArity(name))
    }
}

/// # Format
/// `NAME key`
fn one_key(parse: &mut Parse, argc: usize, name: &'static str) -> Result<Bytes, CommandError> {
    arity(argc, 2, name)?;
    Ok(parse.next_bytes()?)
}

/// # Format
/// `NAME key [key ...]`
fn keys(parse: &mut Parse, argc: usize, name: &'static str) -> Result<Vec<Bytes>, CommandError> {
    arity_at_least(argc, 2, name)?;
    Ok(parse.rest()?)
}

/// # Format
/// `PING [message]`
fn ping(parse: &mut Parse, argc: usize) -> Result<Command, CommandError> {
    if argc > 2 {
        return Err(CommandError::WrongArity("ping"));
    }
    let message = (argc == 2).then(|| parse.next_bytes()).transpose()?;
    Ok(Command::Ping(message))
}

/// A positive TTL of `n` units of `unit_ms` milliseconds; Redis rejects
/// non-positive times and those that overflow in milliseconds.
fn positive_ttl(n: i64, unit_ms: i64, name: &'static str) -> Result<Duration, CommandError> {
    let millis = n
        .checked_mul(unit_ms)
        .filter(|&ms| ms > 0)
        .ok_or(CommandError::InvalidExpireTime(name))?;
    Ok(Duration::from_millis(millis.unsigned_abs()))
}

/// # Format
/// `SET key value [NX|XX] [GET] [EX seconds|PX milliseconds|KEEPTTL]`
///
/// Options come in any order; a repeated or conflicting option, or one
/// missing its number, is `ERR syntax error`. `EXAT`/`PXAT` are not
/// supported (syntax error).
fn set(parse: &mut Parse, argc: usize) -> Result<Command, CommandError> {
    arity_at_least(argc, 3, "set")?;
    let key = parse.next_bytes()?;
    let value = parse.next_bytes()?;
    let mut set = Set {
        key,
        value,
        expiry: None,
        condition: None,
        get: false,
    };
    // Redis accepts an option repeated (the last number wins) but not two
    // that conflict.
    let mut expiry_kind: Option<&'static [u8]> = None;
    while parse.remaining() > 0 {
        let option = parse.next_bytes()?.to_ascii_uppercase();
        match option.as_slice() {
            b"NX" if set.condition != Some(SetCondition::IfPresent) => {
                set.condition = Some(SetCondition::IfAbsent);
            }
            b"XX" if set.condition != Some(SetCondition::IfAbsent) => {
                set.condition = Some(SetCondition::IfPresent);
            }
            b"GET" => set.get = true,
            b"KEEPTTL" if expiry_kind.is_none_or(|k| k == b"KEEPTTL") => {
                expiry_kind = Some(b"KEEPTTL");
                set.expiry = Some(SetExpiry::KeepTtl);
            }
            kind @ (b"EX" | b"PX") if expiry_kind.is_none_or(|k| k == kind) => {
                // A missing number is a syntax error, a bad one is not.
                if parse.remaining() == 0 {
                    return Err(CommandError::Syntax);
                }
                let n = parse.next_int()?;
                let (unit, kind): (i64, &'static [u8]) = if kind == b"EX" {
                    (1000, b"EX")
                } else {
                    (1, b"PX")
                };
                expiry_kind = Some(kind);
                set.expiry = Some(SetExpiry::After(positive_ttl(n, unit, "set")?));
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(Command::Set(set))
}

/// # Format
/// `SETEX key seconds value`
fn setex(parse: &mut Parse, argc: usize) -> Result<Command, CommandError> {
    arity(argc, 4, "setex")?;
    let key = parse.next_bytes()?;
    let seconds = parse.next_int()?;
    let value = parse.next_bytes()?;
    Ok(Command::SetEx {
        key,
        ttl: positive_ttl(seconds, 1000, "setex")?,
        value,
    })
}

/// # Format
/// `EXPIRE key seconds [NX|XX|GT|LT]`, `PEXPIRE key milliseconds [...]`
fn expire(
    parse: &mut Parse,
    argc: usize,
    name: &'static str,
    unit_ms: i64,
) -> Result<Command, CommandError> {
    arity_at_least(argc, 3, name)?;
    let key = parse.next_bytes()?;
    let n = parse.next_int()?;
    let millis = n
        .checked_mul(unit_ms)
        .ok_or(CommandError::InvalidExpireTime(name))?;
    let mut options = ExpireOptions::default();
    while parse.remaining() > 0 {
        let option = parse.next_bytes()?;
        match option.to_ascii_uppercase().as_slice() {
            b"NX" => options.nx = true,
            b"XX" => options.xx = true,
            b"GT" => options.gt = true,
            b"LT" => options.lt = true,
            _ => {
                return Err(CommandError::UnsupportedOption(
                    String::from_utf8_lossy(&option).into_owned(),
                ));
            }
        }
    }
    if options.nx && (options.xx || options.gt || options.lt) {
        return Err(CommandError::Incompatible(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if options.gt && options.lt {
        return Err(CommandError::Incompatible(
            "GT and LT options at the same time are not compatible",
        ));
    }
    Ok(Command::Expire {
        key,
        millis,
        options,
    })
}

/// # Format
/// `INCRBY key increment`, `DECRBY key decrement`
fn incr_by(
    parse: &mut Parse,
    argc: usize,
    name: &'static str,
    negate: bool,
) -> Result<Command, CommandError> {
    arity(argc, 3, name)?;
    let key = parse.next_bytes()?;
    let n = parse.next_int()?;
    // Redis: DECRBY of i64::MIN is "decrement would overflow"; refused here
    // with the integer error, the executor may refine it.
    let by = if negate {
        n.checked_neg().ok_or(CommandError::NotAnInteger)?
    } else {
        n
    };
    Ok(Command::IncrBy { key, by })
}

/// # Format
/// `MSET key value [key value ...]`
fn mset(parse: &mut Parse, argc: usize) -> Result<Command, CommandError> {
    if argc < 3 || argc.is_multiple_of(2) {
        return Err(CommandError::WrongArity("mset"));
    }
    let mut pairs = Vec::with_capacity(argc / 2);
    while parse.remaining() > 0 {
        pairs.push((parse.next_bytes()?, parse.next_bytes()?));
    }
    Ok(Command::MSet(pairs))
}

/// # Format
/// `FLUSHALL [ASYNC|SYNC]`
fn flushall(parse: &mut Parse) -> Result<Command, CommandError> {
    if parse.remaining() > 1 {
        return Err(CommandError::Syntax);
    }
    if parse.remaining() == 1 {
        let mode = parse.next_bytes()?.to_ascii_uppercase();
        if mode != b"ASYNC" && mode != b"SYNC" {
            return Err(CommandError::Syntax);
        }
    }
    Ok(Command::FlushAll)
}

/// # Format
/// `CLIENT SETNAME name`, `CLIENT SETINFO attr value`, `CLIENT GETNAME`,
/// `CLIENT ID`, `CLIENT <other> ...`
fn client(parse: &mut Parse, argc: usize) -> Result<Command, CommandError> {
    arity_at_least(argc, 2, "client")?;
    let sub = parse.next_bytes()?.to_ascii_lowercase();
    let client = match sub.as_slice() {
        b"setname" => {
            arity(argc, 3, "client|setname")?;
            ClientCommand::SetName(parse.next_bytes()?)
        }
        b"setinfo" => {
            arity(argc, 4, "client|setinfo")?;
            ClientCommand::SetInfo {
                attr: parse.next_bytes()?,
                value: parse.next_bytes()?,
            }
        }
        b"getname" => {
            arity(argc, 2, "client|getname")?;
            ClientCommand::GetName
        }
        b"id" => {
            arity(argc, 2, "client|id")?;
            ClientCommand::Id
        }
        _ => ClientCommand::Other {
            sub: String::from_utf8_lossy(&sub).into_owned(),
            args: parse.rest()?,
        },
    };
    Ok(Command::Client(client))
}

/// # Format
/// `CONFIG GET parameter [parameter ...]`; other subcommands are refused
fn config(parse: &mut Parse, argc: usize) -> Result<Command, CommandError> {
    arity_at_least(argc, 2, "config")?;
    let sub = parse.next_bytes()?;
    if !sub.eq_ignore_ascii_case(b"get") {
        return Err(CommandError::UnknownSubcommand {
            sub: String::from_utf8_lossy(&sub).into_owned(),
            cmd: "CONFIG",
        });
    }
    arity_at_least(argc, 3, "config|get")?;
    Ok(Command::ConfigGet(parse.rest()?))
}

/// # Format
/// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS [name ...]`,
/// `COMMAND INFO [name ...]`, `COMMAND <other> ...`
fn command(parse: &mut Parse) -> Result<Command, CommandError> {
    if parse.remaining() == 0 {
        return Ok(Command::Command(CommandCommand::All));
    }
    let argc = parse.remaining() + 1;
    let sub = parse.next_bytes()?.to_ascii_lowercase();
    let command = match sub.as_slice() {
        b"count" => {
            arity(argc, 2, "command|count")?;
            CommandCommand::Count
        }
        b"docs" => CommandCommand::Docs(parse.rest()?),
        b"info" => CommandCommand::Info(parse.rest()?),
        _ => CommandCommand::Other {
            sub: String::from_utf8_lossy(&sub).into_owned(),
            args: parse.rest()?,
        },
    };
    Ok(Command::Command(command))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{Limits, RespError};
    use bytes::BytesMut;

    /// Parse a command as a client sends it: a multibulk frame on the wire.
    fn wire(parts: &[&str]) -> Result<Command, CommandError> {
        let mut buf = BytesMut::new();
        Frame::Array(
            parts
                .iter()
                .map(|p| Frame::Bulk(Bytes::copy_from_slice(p.as_bytes())))
                .collect(),
        )
        .encode(&mut buf);
        let frame = decode_one(&mut buf).expect("valid frame");
        Command::from_frame(frame)
    }

    fn decode_one(buf: &mut BytesMut) -> Result<Frame, RespError> {
        Frame::decode_from(buf, &Limits::default()).map(|f| f.expect("complete"))
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn err(parts: &[&str]) -> String {
        wire(parts).expect_err("should fail").to_string()
    }

    #[test]
    fn ping_echo() {
        assert_eq!(wire(&["PING"]), Ok(Command::Ping(None)));
        assert_eq!(wire(&["ping", "hi"]), Ok(Command::Ping(Some(b("hi")))));
        assert_eq!(wire(&["Echo", "x"]), Ok(Command::Echo(b("x"))));
        assert_eq!(
            err(&["PING", "a", "b"]),
            "ERR wrong number of arguments for 'ping' command"
        );
        assert_eq!(
            err(&["ECHO"]),
            "ERR wrong number of arguments for 'echo' command"
        );
    }

    #[test]
    fn inline_command_from_telnet() {
        let mut buf = BytesMut::from(&b"set greeting hello EX 10\r\n"[..]);
        let cmd = Command::from_frame(decode_one(&mut buf).unwrap()).unwrap();
        assert_eq!(
            cmd,
            Command::Set(Set {
                key: b("greeting"),
                value: b("hello"),
                expiry: Some(SetExpiry::After(Duration::from_secs(10))),
                condition: None,
                get: false,
            })
        );
    }

    #[test]
    fn get_and_single_key_commands() {
        assert_eq!(wire(&["GET", "k"]), Ok(Command::Get(b("k"))));
        assert_eq!(wire(&["TTL", "k"]), Ok(Command::Ttl(b("k"))));
        assert_eq!(wire(&["PTTL", "k"]), Ok(Command::PTtl(b("k"))));
        assert_eq!(wire(&["PERSIST", "k"]), Ok(Command::Persist(b("k"))));
        for name in ["get", "ttl", "pttl", "persist", "incr", "decr"] {
            let want = format!("ERR wrong number of arguments for '{name}' command");
            assert_eq!(err(&[&name.to_uppercase()]), want);
            assert_eq!(err(&[name, "a", "b"]), want);
        }
    }

    #[test]
    fn set_options() {
        let set = |expiry, condition, get| {
            Ok(Command::Set(Set {
                key: b("k"),
                value: b("v"),
                expiry,
                condition,
                get,
            }))
        };
        assert_eq!(wire(&["SET", "k", "v"]), set(None, None, false));
        assert_eq!(
            wire(&["SET", "k", "v", "px", "1500", "nx", "GET"]),
            set(
                Some(SetExpiry::After(Duration::from_millis(1500))),
                Some(SetCondition::IfAbsent),
                true
            )
        );
        assert_eq!(
            wire(&["set", "k", "v", "XX", "KEEPTTL"]),
            set(
                Some(SetExpiry::KeepTtl),
                Some(SetCondition::IfPresent),
                false
            )
        );
        assert_eq!(
            wire(&["SET", "k", "v", "EX", "1", "EX", "2"]),
            set(Some(SetExpiry::After(Duration::from_secs(2))), None, false)
        );
        assert_eq!(
            err(&["SET", "k"]),
            "ERR wrong number of arguments for 'set' command"
        );
        for bad in [
            &["SET", "k", "v", "NX", "XX"][..],
            &["SET", "k", "v", "EX", "1", "PX", "1"],
            &["SET", "k", "v", "EX", "1", "KEEPTTL"],
            &["SET", "k", "v", "EX"],
            &["SET", "k", "v", "FOO"],
            &["SET", "k", "v", "EXAT", "1"],
        ] {
            assert_eq!(err(bad), "ERR syntax error", "{bad:?}");
        }
        assert_eq!(
            err(&["SET", "k", "v", "EX", "ten"]),
            "ERR value is not an integer or out of range"
        );
        for bad in ["0", "-5", "9223372036854775807"] {
            assert_eq!(
                err(&["SET", "k", "v", "EX", bad]),
                "ERR invalid expire time in 'set' command"
            );
        }
    }

    #[test]
    fn setex() {
        assert_eq!(
            wire(&["SETEX", "k", "10", "v"]),
            Ok(Command::SetEx {
                key: b("k"),
                ttl: Duration::from_secs(10),
                value: b("v")
            })
        );
        assert_eq!(
            err(&["SETEX", "k", "10"]),
            "ERR wrong number of arguments for 'setex' command"
        );
        assert_eq!(
            err(&["SETEX", "k", "x", "v"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["SETEX", "k", "0", "v"]),
            "ERR invalid expire time in 'setex' command"
        );
    }

    #[test]
    fn multi_key_commands() {
        assert_eq!(
            wire(&["DEL", "a", "b"]),
            Ok(Command::Del(vec![b("a"), b("b")]))
        );
        assert_eq!(wire(&["EXISTS", "a"]), Ok(Command::Exists(vec![b("a")])));
        assert_eq!(
            wire(&["MGET", "a", "b"]),
            Ok(Command::MGet(vec![b("a"), b("b")]))
        );
        assert_eq!(
            wire(&["MSET", "a", "1", "b", "2"]),
            Ok(Command::MSet(vec![(b("a"), b("1")), (b("b"), b("2"))]))
        );
        for name in ["del", "exists", "mget"] {
            assert_eq!(
                err(&[name]),
                format!("ERR wrong number of arguments for '{name}' command")
            );
        }
        for bad in [&["MSET"][..], &["MSET", "a"], &["MSET", "a", "1", "b"]] {
            assert_eq!(err(bad), "ERR wrong number of arguments for 'mset' command");
        }
    }

    #[test]
    fn expire() {
        assert_eq!(
            wire(&["EXPIRE", "k", "10"]),
            Ok(Command::Expire {
                key: b("k"),
                millis: 10_000,
                options: ExpireOptions::default()
            })
        );
        assert_eq!(
            wire(&["PEXPIRE", "k", "-1", "xx", "GT"]),
            Ok(Command::Expire {
                key: b("k"),
                millis: -1,
                options: ExpireOptions {
                    xx: true,
                    gt: true,
                    ..ExpireOptions::default()
                }
            })
        );
        assert_eq!(
            err(&["EXPIRE", "k"]),
            "ERR wrong number of arguments for 'expire' command"
        );
        assert_eq!(
            err(&["PEXPIRE"]),
            "ERR wrong number of arguments for 'pexpire' command"
        );
        assert_eq!(
            err(&["EXPIRE", "k", "1.5"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&["EXPIRE", "k", "9223372036854775807"]),
            "ERR invalid expire time in 'expire' command"
        );
        assert_eq!(
            err(&["EXPIRE", "k", "1", "FOO"]),
            "ERR Unsupported option FOO"
        );
        assert_eq!(
            err(&["EXPIRE", "k", "1", "NX", "XX"]),
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        assert_eq!(
            err(&["EXPIRE", "k", "1", "GT", "LT"]),
            "ERR GT and LT options at the same time are not compatible"
        );
    }

    #[test]
    fn counters() {
        assert_eq!(
            wire(&["INCR", "n"]),
            Ok(Command::IncrBy { key: b("n"), by: 1 })
        );
        assert_eq!(
            wire(&["DECR", "n"]),
            Ok(Command::IncrBy {
                key: b("n"),
                by: -1
            })
        );
        assert_eq!(
            wire(&["INCRBY", "n", "5"]),
            Ok(Command::IncrBy { key: b("n"), by: 5 })
        );
        assert_eq!(
            wire(&["DECRBY", "n", "5"]),
            Ok(Command::IncrBy {
                key: b("n"),
                by: -5
            })
        );
        assert_eq!(
            err(&["INCRBY", "n"]),
            "ERR wrong number of arguments for 'incrby' command"
        );
        assert_eq!(
            err(&["DECRBY", "n", "1", "2"]),
            "ERR wrong number of arguments for 'decrby' command"
        );
        assert_eq!(
            err(&["INCRBY", "n", "x"]),
            "ERR value is not an integer or out of range"
        );
    }

    #[test]
    fn server_commands() {
        assert_eq!(wire(&["DBSIZE"]), Ok(Command::DbSize));
        assert_eq!(
            err(&["DBSIZE", "x"]),
            "ERR wrong number of arguments for 'dbsize' command"
        );
        assert_eq!(wire(&["FLUSHALL"]), Ok(Command::FlushAll));
        assert_eq!(wire(&["flushall", "async"]), Ok(Command::FlushAll));
        assert_eq!(err(&["FLUSHALL", "now"]), "ERR syntax error");
        assert_eq!(err(&["FLUSHALL", "SYNC", "ASYNC"]), "ERR syntax error");
        assert_eq!(wire(&["INFO"]), Ok(Command::Info(vec![])));
        assert_eq!(
            wire(&["INFO", "Server", "stats"]),
            Ok(Command::Info(vec!["server".into(), "stats".into()]))
        );
        assert_eq!(wire(&["QUIT"]), Ok(Command::Quit));
        assert_eq!(wire(&["SELECT", "0"]), Ok(Command::Select(0)));
        assert_eq!(
            err(&["SELECT"]),
            "ERR wrong number of arguments for 'select' command"
        );
        assert_eq!(
            err(&["SELECT", "db"]),
            "ERR value is not an integer or out of range"
        );
    }

    #[test]
    fn handshake_commands() {
        assert_eq!(
            wire(&["CLIENT", "SETNAME", "app"]),
            Ok(Command::Client(ClientCommand::SetName(b("app"))))
        );
        assert_eq!(
            wire(&["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]),
            Ok(Command::Client(ClientCommand::SetInfo {
                attr: b("LIB-NAME"),
                value: b("redis-rs")
            }))
        );
        assert_eq!(
            wire(&["client", "getname"]),
            Ok(Command::Client(ClientCommand::GetName))
        );
        assert_eq!(
            wire(&["CLIENT", "ID"]),
            Ok(Command::Client(ClientCommand::Id))
        );
        assert_eq!(
            wire(&["CLIENT", "LIST", "TYPE", "normal"]),
            Ok(Command::Client(ClientCommand::Other {
                sub: "list".into(),
                args: vec![b("TYPE"), b("normal")]
            }))
        );
        assert_eq!(
            err(&["CLIENT"]),
            "ERR wrong number of arguments for 'client' command"
        );
        assert_eq!(
            err(&["CLIENT", "SETNAME"]),
            "ERR wrong number of arguments for 'client|setname' command"
        );
        assert_eq!(
            err(&["CLIENT", "SETINFO", "LIB-NAME"]),
            "ERR wrong number of arguments for 'client|setinfo' command"
        );
        assert_eq!(wire(&["HELLO", "3"]), Ok(Command::Hello(vec![b("3")])));
        assert_eq!(wire(&["HELLO"]), Ok(Command::Hello(vec![])));
        assert_eq!(
            wire(&["AUTH", "secret"]),
            Ok(Command::Auth {
                user: None,
                password: b("secret")
            })
        );
        assert_eq!(
            wire(&["auth", "default", "secret"]),
            Ok(Command::Auth {
                user: Some(b("default")),
                password: b("secret")
            })
        );
        assert_eq!(wire(&["AUTH"]), Err(CommandError::WrongArity("auth")));
        assert_eq!(
            wire(&["CONFIG", "GET", "maxmemory"]),
            Ok(Command::ConfigGet(vec![b("maxmemory")]))
        );
        assert_eq!(
            err(&["CONFIG", "GET"]),
            "ERR wrong number of arguments for 'config|get' command"
        );
        assert_eq!(
            err(&["CONFIG"]),
            "ERR wrong number of arguments for 'config' command"
        );
        assert_eq!(
            err(&["CONFIG", "SET", "a", "b"]),
            "ERR unknown subcommand 'SET'. Try CONFIG HELP."
        );
        assert_eq!(
            wire(&["COMMAND"]),
            Ok(Command::Command(CommandCommand::All))
        );
        assert_eq!(
            wire(&["COMMAND", "COUNT"]),
            Ok(Command::Command(CommandCommand::Count))
        );
        assert_eq!(
            wire(&["COMMAND", "DOCS"]),
            Ok(Command::Command(CommandCommand::Docs(vec![])))
        );
        assert_eq!(
            wire(&["command", "docs", "get"]),
            Ok(Command::Command(CommandCommand::Docs(vec![b("get")])))
        );
        assert_eq!(
            wire(&["COMMAND", "INFO", "get"]),
            Ok(Command::Command(CommandCommand::Info(vec![b("get")])))
        );
        assert_eq!(
            err(&["COMMAND", "COUNT", "x"]),
            "ERR wrong number of arguments for 'command|count' command"
        );
    }

    #[test]
    fn unknown_commands() {
        let cmd = wire(&["FOO", "a", "b"]).unwrap();
        assert_eq!(cmd, Command::Unknown(b("FOO"), vec![b("a"), b("b")]));
        assert_eq!(
            unknown_command_error(b"FOO", &[b("a"), b("b")]),
            "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            unknown_command_error(b"foo", &[]),
            "ERR unknown command 'foo', with args beginning with: "
        );
        // Arguments are cut so the list stays near 128 bytes.
        let long = b(&"x".repeat(300));
        let text = unknown_command_error(b"foo", &[long.clone(), long]);
        let list = text.split_once("with args beginning with: ").unwrap().1;
        assert_eq!(list, format!("'{}' ", "x".repeat(128)));
        assert_eq!(
            unknown_command_error(b"a\r\nb", &[b("c\nd")]),
            "ERR unknown command 'a  b', with args beginning with: 'c d' "
        );
    }

    #[test]
    fn bad_frames() {
        assert_eq!(
            Command::from_frame(Frame::Array(vec![])),
            Err(CommandError::Empty)
        );
        assert_eq!(
            Command::from_frame(Frame::Simple("PING".into())),
            Err(CommandError::Parse(ParseError::NotAnArray))
        );
        assert_eq!(
            Command::from_frame(Frame::Array(vec![
                Frame::Bulk(b("GET")),
                Frame::Array(vec![])
            ])),
            Err(CommandError::Parse(ParseError::NotAString('*')))
        );
    }
}
