//! `SETRANGE key offset value`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, count};
use crate::resp::Frame;
use crate::resp::frame::DEFAULT_MAX_BULK_LEN;
use crate::store::Store;

/// `SETRANGE key offset value`: overwrite from `offset`, padding with zero
/// bytes; the new length. An empty `value` changes nothing (and creates
/// nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRange {
    /// The key
    pub key: Bytes,
    /// Where to write, from 0
    pub offset: usize,
    /// What to write
    pub value: Bytes,
}

impl SetRange {
    /// # Format
    /// `SETRANGE key offset value`: a negative offset is `ERR offset is out
    /// of range`, a result past 512 MiB `ERR string exceeds maximum allowed
    /// size (proto-max-bulk-len)`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(4, "setrange")?;
        let key = args.bytes()?;
        let offset = usize::try_from(args.int()?)
            .map_err(|_| CommandError::Invalid("offset is out of range"))?;
        let value = args.bytes()?;
        if offset.saturating_add(value.len()) > DEFAULT_MAX_BULK_LEN {
            return Err(CommandError::Invalid(
                "string exceeds maximum allowed size (proto-max-bulk-len)",
            ));
        }
        Ok(Self { key, offset, value })
    }
}

impl Unit for SetRange {
    fn name(&self) -> &'static str {
        "setrange"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let current = match super::peek(store, &self.key, now) {
            Ok(current) => current,
            Err(err) => return err,
        };
        if self.value.is_empty() {
            return count(current.map_or(0, |v| v.len()));
        }
        let end = self.offset + self.value.len();
        let grow = end.saturating_sub(current.as_ref().map_or(0, |v| v.len()));
        let (offset, value) = (self.offset, self.value);
        super::append::rewrite(store, &self.key, grow, now, |buf| {
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[offset..end].copy_from_slice(&value);
        })
        .map_or_else(|err| err, count)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn overwrites_and_pads() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["SET", "k", "Hello World"]);
        assert_eq!(
            run(&mut s, &now, &["SETRANGE", "k", "6", "Redis"]),
            Frame::Integer(11)
        );
        assert_eq!(
            run(&mut s, &now, &["GET", "k"]),
            Frame::Bulk("Hello Redis".into())
        );
        assert_eq!(
            run(&mut s, &now, &["SETRANGE", "p", "3", "ab"]),
            Frame::Integer(5)
        );
        assert_eq!(
            run(&mut s, &now, &["GET", "p"]),
            Frame::Bulk(bytes::Bytes::from_static(b"\0\0\0ab"))
        );
        assert_eq!(
            run(&mut s, &now, &["SETRANGE", "none", "3", ""]),
            Frame::Integer(0)
        );
        assert_eq!(run(&mut s, &now, &["EXISTS", "none"]), Frame::Integer(0));
        assert_eq!(
            run(&mut s, &now, &["SETRANGE", "k", "100", ""]),
            Frame::Integer(11)
        );
        assert_eq!(
            run(&mut s, &now, &["SETRANGE", "k", "-1", "x"]),
            error("ERR offset is out of range")
        );
        assert_eq!(
            run(&mut s, &now, &["SETRANGE", "k", "536870911", "xx"]),
            error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        );
        run(&mut s, &now, &["SADD", "s", "x"]);
        assert_eq!(
            run(&mut s, &now, &["SETRANGE", "s", "0", "x"]),
            error(WRONGTYPE)
        );
    }
}
