//! `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`, and
//! `SETEX`/`PSETEX`, which are `SET` with an expiry

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, ReadThrough, Unit, bulk_or_null, ok, positive_ttl};
use crate::resp::Frame;
use crate::store::{Store, StoreError, Value};

/// `SET`'s `NX`/`XX` condition
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCondition {
    /// `NX`: only set if the key does not exist
    IfAbsent,
    /// `XX`: only set if the key exists
    IfPresent,
}

/// The expiry a `SET` gives its key
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SetExpiry {
    /// None, clearing any old one (a plain `SET`)
    #[default]
    Clear,
    /// `EX s`/`PX ms`: this long after the write
    After(Duration),
    /// `EXAT s`/`PXAT ms`: at this Unix time, in milliseconds (a time not
    /// after now stores nothing and deletes the key, as Redis does)
    At(i64),
    /// `KEEPTTL`: the old key's expiry
    Keep,
}

/// What a `SET` did
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetResult {
    /// Whether the value was written (`false` when `NX`/`XX` failed)
    pub written: bool,
    /// The live value before the operation, for `SET ... GET` (on a
    /// read-through shard: the cached copy, if any)
    pub old: Option<Bytes>,
}

/// Why a `SET` was refused
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    /// `GET` asked for the old value of a key of another type
    WrongType,
    /// The store refused the write
    Store(StoreError),
}

/// What a `SET` does with the value it replaces
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Previous {
    /// Nothing: [`SetResult::old`] is `None`
    Ignore,
    /// Reports it in [`SetResult::old`] if it is a string; another type is replaced
    Report,
    /// `SET ... GET`: reports it; an old value of another type refuses the write
    /// (`WRONGTYPE`)
    ReportOrRefuse,
}

/// `SET`'s rule, shared by the command and the shard's typed message:
/// checks the condition, writes `value` with `expiry`, and reports the old
/// string or refuses as `previous` says.
///
/// # Errors
///
/// [`SetError`]; the store is then unchanged.
pub fn set(
    store: &mut Store,
    key: Bytes,
    value: Bytes,
    expiry: SetExpiry,
    condition: Option<SetCondition>,
    previous: Previous,
    now: &Now,
) -> Result<SetResult, SetError> {
    // an unconditional write that ignores what it replaces need not look first
    let old_value = if condition.is_none() && previous == Previous::Ignore {
        None
    } else {
        store.peek(&key, now.at)
    };
    let exists = old_value.is_some();
    let old = match (old_value, previous) {
        (_, Previous::Ignore) => None,
        (Some(Value::Str(bytes)), _) => Some(bytes.clone()),
        (Some(_), Previous::ReportOrRefuse) => return Err(SetError::WrongType),
        _ => None,
    };
    let allowed = match condition {
        None => true,
        Some(SetCondition::IfAbsent) => !exists,
        Some(SetCondition::IfPresent) => exists,
    };
    if !allowed {
        return Ok(SetResult {
            written: false,
            old,
        });
    }
    let expires_at = match expiry {
        SetExpiry::Clear => None,
        SetExpiry::After(ttl) => Some(now.at.checked_add(ttl)),
        SetExpiry::At(unix_ms) => match now.instant_of(unix_ms) {
            Ok(at) => Some(at),
            // already past: the write happens and the key is gone at once
            Err(()) => Some(Some(now.at)),
        },
        SetExpiry::Keep => store.expires_at(&key, now.at).flatten().map(Some),
    }
    // an instant too far to represent never comes
    .flatten();
    store
        .insert(key, Value::Str(value), expires_at, now.at)
        .map_err(SetError::Store)?;
    Ok(SetResult { written: true, old })
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Set {
    /// The key
    pub key: Bytes,
    /// The value
    pub value: Bytes,
    /// The expiry to give it
    pub expiry: SetExpiry,
    /// `NX`/`XX`
    pub condition: Option<SetCondition>,
    /// `GET`: reply with the old value
    pub get: bool,
}

impl Set {
    /// Runs it: reports (or refuses over) what it replaces only when `GET` asks.
    fn run(self, store: &mut Store, now: &Now) -> Result<SetResult, SetError> {
        let previous = if self.get {
            Previous::ReportOrRefuse
        } else {
            Previous::Ignore
        };
        set(
            store,
            self.key,
            self.value,
            self.expiry,
            self.condition,
            previous,
            now,
        )
    }

    /// A plain `SET key value`
    pub fn plain(key: Bytes, value: Bytes) -> Self {
        Self {
            key,
            value,
            expiry: SetExpiry::Clear,
            condition: None,
            get: false,
        }
    }

    /// # Format
    /// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`
    ///
    /// Options come in any order; an option repeated is accepted (the last
    /// number wins), two that conflict or one missing its number are
    /// `ERR syntax error`, a non-positive time is `ERR invalid expire time
    /// in 'set' command`.
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.at_least(3, "set")?;
        let mut set = Self::plain(args.bytes()?, args.bytes()?);
        let mut expiry_kind: Option<Vec<u8>> = None;
        while args.remaining() > 0 {
            let option = args.option()?;
            match option.as_slice() {
                b"NX" if set.condition != Some(SetCondition::IfPresent) => {
                    set.condition = Some(SetCondition::IfAbsent);
                }
                b"XX" if set.condition != Some(SetCondition::IfAbsent) => {
                    set.condition = Some(SetCondition::IfPresent);
                }
                b"GET" => set.get = true,
                b"KEEPTTL" if expiry_kind.as_deref().is_none_or(|k| k == b"KEEPTTL") => {
                    expiry_kind = Some(option);
                    set.expiry = SetExpiry::Keep;
                }
                b"EX" | b"PX" | b"EXAT" | b"PXAT"
                    if expiry_kind
                        .as_deref()
                        .is_none_or(|k| k == option.as_slice()) =>
                {
                    // A missing number is a syntax error, a bad one is not.
                    if args.remaining() == 0 {
                        return Err(CommandError::Syntax);
                    }
                    let n = args.int()?;
                    let unit = if option.starts_with(b"E") { 1000 } else { 1 };
                    let millis = positive_ttl(n, unit, "set")?;
                    set.expiry = if option.ends_with(b"AT") {
                        SetExpiry::At(i64::try_from(millis.as_millis()).unwrap_or(i64::MAX))
                    } else {
                        SetExpiry::After(millis)
                    };
                    expiry_kind = Some(option);
                }
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(set)
    }

    /// # Format
    /// `SETEX key seconds value`, `PSETEX key milliseconds value`
    pub(crate) fn parse_setex(
        args: &mut Args,
        name: &'static str,
        unit_ms: i64,
    ) -> Result<Self, CommandError> {
        args.exactly(4, name)?;
        let key = args.bytes()?;
        let n = args.int()?;
        let value = args.bytes()?;
        let mut set = Self::plain(key, value);
        set.expiry = SetExpiry::After(positive_ttl(n, unit_ms, name)?);
        Ok(set)
    }
}

impl Unit for Set {
    const READ_THROUGH: ReadThrough = ReadThrough::Backed;

    fn name(&self) -> &'static str {
        "set"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let get = self.get;
        match self.run(store, now) {
            Err(SetError::WrongType) => crate::cmd::wrong_type(),
            Err(SetError::Store(err)) => crate::cmd::store_error(&err),
            Ok(result) if get => bulk_or_null(result.old),
            Ok(result) if result.written => ok(),
            Ok(_) => Frame::Null,
        }
    }

    fn apply_into(self, store: &mut Store, now: &Now, out: &mut BytesMut) {
        // the usual write, answered without building its reply
        if self.get {
            return self.apply(store, now).encode(out);
        }
        match self.run(store, now) {
            Ok(result) if result.written => out.extend_from_slice(b"+OK\r\n"),
            Ok(_) => Frame::Null.encode(out),
            Err(SetError::WrongType) => crate::cmd::wrong_type().encode(out),
            Err(SetError::Store(err)) => crate::cmd::store_error(&err).encode(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{arity, bulk, error, later, now, run, store};
    use crate::cmd::{OOM, WRONGTYPE, ok};
    use crate::resp::Frame;

    #[test]
    fn the_reply_written_is_the_reply_built() {
        use bytes::BytesMut;

        use crate::cmd::{Command, testing::parse};
        use crate::store::Store;

        // the same writes on two stores: one answered by building, one by writing
        let (mut built_store, mut written_store, now) = (store(), store(), now());
        let too_large = "x".repeat(2 << 20);
        let writes: [&[&str]; 7] = [
            &["SET", "k", "1", "XX"],
            &["SET", "k", "1"],
            &["SET", "k", "2", "NX"],
            &["SET", "k", "3", "XX", "GET"],
            &["SET", "k", &too_large],
            &["LPUSH", "l", "x"],
            &["SET", "l", "1", "GET"],
        ];
        let answer = |store: &mut Store, parts: &[&str], write: bool| {
            let Ok(Command::Key(cmd)) = parse(parts) else {
                panic!("{parts:?} parses");
            };
            let mut out = BytesMut::new();
            if write {
                cmd.apply_into(store, &now, &mut out);
            } else {
                cmd.apply(store, &now).encode(&mut out);
            }
            out
        };
        for parts in writes {
            let built = answer(&mut built_store, parts, false);
            let written = answer(&mut written_store, parts, true);
            assert_eq!(written, built, "{:?}", &parts[..2]);
        }
        assert_eq!(
            answer(&mut written_store, &["GET", "k"], true),
            &b"$1\r\n3\r\n"[..]
        );
    }

    #[test]
    fn conditions_and_get() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["SET", "k", "1", "XX"]), Frame::Null);
        assert_eq!(run(&mut s, &now, &["SET", "k", "1", "NX"]), ok());
        assert_eq!(run(&mut s, &now, &["SET", "k", "2", "NX"]), Frame::Null);
        assert_eq!(
            run(&mut s, &now, &["SET", "k", "2", "XX", "GET"]),
            bulk("1")
        );
        assert_eq!(
            run(&mut s, &now, &["SET", "k", "3", "NX", "GET"]),
            bulk("2")
        );
        assert_eq!(run(&mut s, &now, &["SET", "n", "3", "GET"]), Frame::Null);
        assert_eq!(run(&mut s, &now, &["GET", "k"]), bulk("2"));
        run(&mut s, &now, &["SADD", "s", "m"]);
        assert_eq!(
            run(&mut s, &now, &["SET", "s", "v", "GET"]),
            error(WRONGTYPE)
        );
        assert_eq!(
            run(&mut s, &now, &["TYPE", "s"]),
            Frame::Simple("set".into())
        );
        // without GET, another type is simply replaced
        assert_eq!(run(&mut s, &now, &["SET", "s", "v"]), ok());
        assert_eq!(run(&mut s, &now, &["GET", "s"]), bulk("v"));
    }

    #[test]
    fn expiry_options() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["SET", "k", "v", "EX", "10"]);
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), Frame::Integer(10_000));
        run(&mut s, &now, &["SET", "k", "v", "PX", "1500"]);
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), Frame::Integer(1500));
        run(&mut s, &now, &["SET", "k", "w", "KEEPTTL"]);
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), Frame::Integer(1500));
        run(&mut s, &now, &["SET", "k", "w"]);
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), Frame::Integer(-1));
        let at = (now.unix_ms / 1000 + 100).to_string();
        run(&mut s, &now, &["SET", "k", "v", "EXAT", &at]);
        let left = 100_000 - now.unix_ms % 1000;
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), Frame::Integer(left));
        let at = (now.unix_ms + 2500).to_string();
        run(&mut s, &now, &["SET", "k", "v", "PXAT", &at]);
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), Frame::Integer(2500));
        assert_eq!(run(&mut s, &later(&now, 2499), &["GET", "k"]), bulk("v"));
        assert_eq!(run(&mut s, &later(&now, 2500), &["GET", "k"]), Frame::Null);
        // a time already past: OK, and the key is gone
        assert_eq!(run(&mut s, &now, &["SET", "k", "v", "PXAT", "1"]), ok());
        assert_eq!(run(&mut s, &now, &["EXISTS", "k"]), Frame::Integer(0));
    }

    #[test]
    fn option_errors_are_redis_texts() {
        let (mut s, now) = (store(), now());
        let syntax = error("ERR syntax error");
        for bad in [
            &["SET", "k", "v", "NX", "XX"][..],
            &["SET", "k", "v", "EX", "1", "PX", "1"],
            &["SET", "k", "v", "EX", "1", "KEEPTTL"],
            &["SET", "k", "v", "EXAT", "1", "EX", "1"],
            &["SET", "k", "v", "EX"],
            &["SET", "k", "v", "BOGUS"],
        ] {
            assert_eq!(run(&mut s, &now, bad), syntax, "{bad:?}");
        }
        for bad in ["0", "-5"] {
            assert_eq!(
                run(&mut s, &now, &["SET", "k", "v", "EX", bad]),
                error("ERR invalid expire time in 'set' command")
            );
        }
        assert_eq!(
            run(&mut s, &now, &["SET", "k", "v", "EX", "x"]),
            error("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(
                &mut s,
                &now,
                &["SET", "k", "v", "EX", "9223372036854775807"]
            ),
            error("ERR invalid expire time in 'set' command")
        );
        assert_eq!(run(&mut s, &now, &["SET", "k"]), error(&arity("set")));
    }

    #[test]
    fn setex_and_psetex() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["SETEX", "k", "5", "v"]), ok());
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), Frame::Integer(5000));
        assert_eq!(run(&mut s, &now, &["PSETEX", "k", "5", "v"]), ok());
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), Frame::Integer(5));
        assert_eq!(
            run(&mut s, &now, &["SETEX", "k", "0", "v"]),
            error("ERR invalid expire time in 'setex' command")
        );
        assert_eq!(
            run(&mut s, &now, &["PSETEX", "k", "-1", "v"]),
            error("ERR invalid expire time in 'psetex' command")
        );
        assert_eq!(
            run(&mut s, &now, &["SETEX", "k", "5"]),
            error(&arity("setex"))
        );
    }

    #[test]
    fn a_value_larger_than_the_cache_is_oom_and_keeps_the_old() {
        let now = now();
        let mut s = crate::store::Store::new(std::num::NonZeroUsize::new(10).unwrap(), 8);
        assert_eq!(run(&mut s, &now, &["SET", "k", "v"]), ok());
        assert_eq!(run(&mut s, &now, &["SET", "k", "123456789"]), error(OOM));
        assert_eq!(run(&mut s, &now, &["GET", "k"]), bulk("v"));
    }
}
