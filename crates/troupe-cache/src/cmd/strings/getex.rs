//! `GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]`

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, bulk_or_null, positive_ttl};
use crate::resp::Frame;
use crate::store::Store;

/// How `GETEX` changes the expiry
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GetExExpiry {
    /// `EX`/`PX`: this long from now
    After(Duration),
    /// `EXAT`/`PXAT`: at this Unix time in milliseconds (not after now:
    /// the key is deleted)
    At(i64),
    /// `PERSIST`: no expiry
    Persist,
}

/// `GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]`: the string at `key`,
/// changing its expiry if an option says so
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetEx {
    /// The key
    pub key: Bytes,
    /// The change to its expiry, if any
    pub expiry: Option<GetExExpiry>,
}

impl GetEx {
    /// # Format
    /// `GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]`: at most one option,
    /// a positive time
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.at_least(2, "getex")?;
        let key = args.bytes()?;
        let mut expiry = None;
        while args.remaining() > 0 {
            let option = args.option()?;
            if expiry.is_some() {
                return Err(CommandError::Syntax);
            }
            expiry = Some(match option.as_slice() {
                b"PERSIST" => GetExExpiry::Persist,
                b"EX" | b"PX" | b"EXAT" | b"PXAT" => {
                    if args.remaining() == 0 {
                        return Err(CommandError::Syntax);
                    }
                    let n = args.int()?;
                    let unit = if option.starts_with(b"E") { 1000 } else { 1 };
                    let millis = positive_ttl(n, unit, "getex")?;
                    if option.ends_with(b"AT") {
                        GetExExpiry::At(i64::try_from(millis.as_millis()).unwrap_or(i64::MAX))
                    } else {
                        GetExExpiry::After(millis)
                    }
                }
                _ => return Err(CommandError::Syntax),
            });
        }
        Ok(Self { key, expiry })
    }
}

impl Unit for GetEx {
    fn name(&self) -> &'static str {
        "getex"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let value = match super::read(store, &self.key, now) {
            Ok(value) => value,
            Err(err) => return err,
        };
        if value.is_some() {
            let at = match self.expiry {
                None => return bulk_or_null(value),
                Some(GetExExpiry::Persist) => None,
                Some(GetExExpiry::After(ttl)) => now.at.checked_add(ttl),
                Some(GetExExpiry::At(unix_ms)) => now.instant_of(unix_ms).unwrap_or(Some(now.at)),
            };
            store.set_expires_at(&self.key, at, now.at);
        }
        bulk_or_null(value)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{bulk, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn reads_and_changes_the_expiry() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["GETEX", "k", "EX", "5"]), Frame::Null);
        assert_eq!(run(&mut s, &now, &["EXISTS", "k"]), Frame::Integer(0));
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["GETEX", "k"]), bulk("v"));
        assert_eq!(run(&mut s, &now, &["TTL", "k"]), Frame::Integer(-1));
        assert_eq!(run(&mut s, &now, &["GETEX", "k", "PX", "2500"]), bulk("v"));
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), Frame::Integer(2500));
        assert_eq!(run(&mut s, &now, &["GETEX", "k", "persist"]), bulk("v"));
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), Frame::Integer(-1));
        let at = (now.unix_ms + 700).to_string();
        assert_eq!(run(&mut s, &now, &["GETEX", "k", "PXAT", &at]), bulk("v"));
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), Frame::Integer(700));
        // a time already past deletes the key after reading it
        assert_eq!(run(&mut s, &now, &["GETEX", "k", "EXAT", "1"]), bulk("v"));
        assert_eq!(run(&mut s, &now, &["EXISTS", "k"]), Frame::Integer(0));
        run(&mut s, &now, &["HSET", "h", "f", "v"]);
        assert_eq!(run(&mut s, &now, &["GETEX", "h"]), error(WRONGTYPE));
    }

    #[test]
    fn option_errors() {
        let (mut s, now) = (store(), now());
        for bad in [
            &["GETEX", "k", "EX", "1", "PX", "1"][..],
            &["GETEX", "k", "PERSIST", "EX", "1"],
            &["GETEX", "k", "EX"],
            &["GETEX", "k", "KEEPTTL"],
        ] {
            assert_eq!(run(&mut s, &now, bad), error("ERR syntax error"), "{bad:?}");
        }
        assert_eq!(
            run(&mut s, &now, &["GETEX", "k", "EX", "0"]),
            error("ERR invalid expire time in 'getex' command")
        );
    }
}
