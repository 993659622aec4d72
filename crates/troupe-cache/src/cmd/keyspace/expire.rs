//! `EXPIRE key seconds [NX|XX|GT|LT]`, `PEXPIRE key ms [...]`,
//! `EXPIREAT key unix-seconds [...]`, `PEXPIREAT key unix-ms [...]`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `EXPIRE`'s options (Redis 7); repeats are allowed
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExpireOptions {
    /// `NX`: only if the key has no expiry
    pub nx: bool,
    /// `XX`: only if the key has an expiry
    pub xx: bool,
    /// `GT`: only if the new expiry is later (no expiry counts as infinite)
    pub gt: bool,
    /// `LT`: only if the new expiry is sooner
    pub lt: bool,
}

/// When the key is to expire
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireWhen {
    /// This many milliseconds from now (zero or negative: at once)
    In(i64),
    /// At this Unix time in milliseconds (not after now: at once)
    At(i64),
}

/// `EXPIRE`'s rule, shared by the command and the shard's typed message:
/// whether the expiry was set (or the key deleted, for a time not after
/// now); `None` if a relative time added to now overflows (Redis: `invalid
/// expire time`), nothing changed. A key without expiry counts as expiring
/// never for `GT`/`LT`.
pub fn expire(
    store: &mut Store,
    key: &[u8],
    when: ExpireWhen,
    options: ExpireOptions,
    now: &Now,
) -> Option<bool> {
    let when = match when {
        ExpireWhen::In(ms) => now.unix_ms.checked_add(ms)?,
        ExpireWhen::At(ms) => ms,
    };
    let Some(current) = store.expires_at(key, now.at) else {
        return Some(false);
    };
    let current = current.map(|at| now.unix_ms_of(at));
    let refused = (options.nx && current.is_some())
        || (options.xx && current.is_none())
        || (options.gt && current.is_none_or(|c| when <= c))
        || (options.lt && current.is_some_and(|c| when >= c));
    if refused {
        return Some(false);
    }
    let at = match now.instant_of(when) {
        Ok(at) => at,
        Err(()) => Some(now.at),
    };
    Some(store.set_expires_at(key, at, now.at))
}

/// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`: 1 if the expiry was set
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expire {
    /// The key
    pub key: Bytes,
    /// When it is to expire
    pub when: ExpireWhen,
    /// `NX`/`XX`/`GT`/`LT`
    pub options: ExpireOptions,
    /// Whether the time was given in seconds (`EXPIRE`, `EXPIREAT`), for the error's name
    pub seconds: bool,
}

impl Expire {
    /// # Format
    /// `NAME key time [NX|XX|GT|LT ...]`, the time in units of `unit_ms`
    /// milliseconds, relative or a Unix time (`absolute`). A time whose
    /// milliseconds overflow is `ERR invalid expire time in 'NAME' command`.
    pub(crate) fn parse(
        args: &mut Args,
        name: &'static str,
        unit_ms: i64,
        absolute: bool,
    ) -> Result<Self, CommandError> {
        args.at_least(3, name)?;
        let key = args.bytes()?;
        let n = args.int()?;
        let millis = n
            .checked_mul(unit_ms)
            .ok_or(CommandError::InvalidExpireTime(name))?;
        let mut options = ExpireOptions::default();
        while args.remaining() > 0 {
            let option = args.bytes()?;
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
            return Err(CommandError::Invalid(
                "NX and XX, GT or LT options at the same time are not compatible",
            ));
        }
        if options.gt && options.lt {
            return Err(CommandError::Invalid(
                "GT and LT options at the same time are not compatible",
            ));
        }
        let when = if absolute {
            ExpireWhen::At(millis)
        } else {
            ExpireWhen::In(millis)
        };
        Ok(Self {
            key,
            when,
            options,
            seconds: unit_ms == 1000,
        })
    }
}

impl Unit for Expire {
    // on a read-through cache an expiry is the fill TTL's, which bounds how stale a
    // value filled before an outside write can be: not the client's to lift or extend
    const READ_THROUGH: ReadThrough = ReadThrough::Refused;

    fn name(&self) -> &'static str {
        match (self.seconds, self.when) {
            (true, ExpireWhen::In(_)) => "expire",
            (false, ExpireWhen::In(_)) => "pexpire",
            (true, ExpireWhen::At(_)) => "expireat",
            (false, ExpireWhen::At(_)) => "pexpireat",
        }
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        match expire(store, &self.key, self.when, self.options, now) {
            Some(set) => Frame::Integer(i64::from(set)),
            None => Frame::Error(CommandError::InvalidExpireTime(self.name()).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{arity, error, later, now, run, store};
    use crate::resp::Frame;

    fn one(n: i64) -> Frame {
        Frame::Integer(n)
    }

    #[test]
    fn relative_and_absolute_times() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["EXPIRE", "k", "10"]), one(0));
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["EXPIRE", "k", "10"]), one(1));
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), one(10_000));
        assert_eq!(run(&mut s, &now, &["PEXPIRE", "k", "1500"]), one(1));
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), one(1500));
        let at = (now.unix_ms + 3000).to_string();
        assert_eq!(run(&mut s, &now, &["PEXPIREAT", "k", &at]), one(1));
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), one(3000));
        let at = (now.unix_ms / 1000 + 50).to_string();
        assert_eq!(run(&mut s, &now, &["EXPIREAT", "k", &at]), one(1));
        assert_eq!(
            run(&mut s, &now, &["PEXPIRETIME", "k"]),
            one((now.unix_ms / 1000 + 50) * 1000)
        );
        assert_eq!(run(&mut s, &later(&now, 49_999), &["EXISTS", "k"]), one(1));
        // zero, negative or past times delete the key and answer 1
        assert_eq!(run(&mut s, &now, &["EXPIRE", "k", "-1"]), one(1));
        assert_eq!(run(&mut s, &now, &["EXISTS", "k"]), one(0));
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["EXPIREAT", "k", "100"]), one(1));
        assert_eq!(run(&mut s, &now, &["EXISTS", "k"]), one(0));
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["PEXPIRE", "k", "0"]), one(1));
        assert_eq!(run(&mut s, &now, &["EXISTS", "k"]), one(0));
    }

    #[test]
    fn nx_xx_gt_lt() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["EXPIRE", "k", "100", "XX"]), one(0));
        assert_eq!(run(&mut s, &now, &["EXPIRE", "k", "100", "GT"]), one(0));
        assert_eq!(run(&mut s, &now, &["EXPIRE", "k", "100", "LT"]), one(1));
        assert_eq!(run(&mut s, &now, &["EXPIRE", "k", "50", "NX"]), one(0));
        assert_eq!(
            run(&mut s, &now, &["EXPIRE", "k", "200", "xx", "gt"]),
            one(1)
        );
        assert_eq!(run(&mut s, &now, &["EXPIRE", "k", "150", "GT"]), one(0));
        assert_eq!(run(&mut s, &now, &["EXPIRE", "k", "150", "LT"]), one(1));
        assert_eq!(run(&mut s, &now, &["TTL", "k"]), one(150));
    }

    #[test]
    fn errors_are_redis_texts() {
        let (mut s, now) = (store(), now());
        assert_eq!(
            run(&mut s, &now, &["EXPIRE", "k", "1", "NX", "XX"]),
            error("ERR NX and XX, GT or LT options at the same time are not compatible")
        );
        assert_eq!(
            run(&mut s, &now, &["EXPIRE", "k", "1", "GT", "LT"]),
            error("ERR GT and LT options at the same time are not compatible")
        );
        assert_eq!(
            run(&mut s, &now, &["EXPIRE", "k", "1", "bogus"]),
            error("ERR Unsupported option bogus")
        );
        assert_eq!(
            run(&mut s, &now, &["EXPIRE", "k", "9223372036854775807"]),
            error("ERR invalid expire time in 'expire' command")
        );
        assert_eq!(
            run(&mut s, &now, &["EXPIRE", "k", "x"]),
            error("ERR value is not an integer or out of range")
        );
        // in range as milliseconds, past the range once added to now
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(
            run(&mut s, &now, &["PEXPIRE", "k", "9223372036854775000"]),
            error("ERR invalid expire time in 'pexpire' command")
        );
        assert_eq!(run(&mut s, &now, &["TTL", "k"]), Frame::Integer(-1));
        assert_eq!(
            run(&mut s, &now, &["PEXPIREAT", "k"]),
            error(&arity("pexpireat"))
        );
    }
}
