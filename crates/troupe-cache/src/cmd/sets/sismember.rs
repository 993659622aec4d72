//! `SISMEMBER key member`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `SISMEMBER key member`: 1 if the set has the member, 0 if not or if the
/// key is absent
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SIsMember {
    /// The key
    pub key: Bytes,
    /// The member
    pub member: Bytes,
}

impl SIsMember {
    /// # Format
    /// `SISMEMBER key member`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(3, "sismember")?;
        Ok(Self {
            key: args.bytes()?,
            member: args.bytes()?,
        })
    }
}

impl Unit for SIsMember {
    fn name(&self) -> &'static str {
        "sismember"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now, |set| {
            Frame::Integer(i64::from(set.is_some_and(|s| s.contains(&self.member))))
        })
        .unwrap_or_else(|err| err)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn one_or_zero() {
        let (mut s, now) = (store(), now());
        assert_eq!(
            run(&mut s, &now, &["SISMEMBER", "s", "a"]),
            Frame::Integer(0)
        );
        run(&mut s, &now, &["SADD", "s", "a", ""]);
        assert_eq!(
            run(&mut s, &now, &["SISMEMBER", "s", "a"]),
            Frame::Integer(1)
        );
        assert_eq!(
            run(&mut s, &now, &["SISMEMBER", "s", ""]),
            Frame::Integer(1)
        );
        assert_eq!(
            run(&mut s, &now, &["SISMEMBER", "s", "b"]),
            Frame::Integer(0)
        );
        assert_eq!(
            run(&mut s, &now, &["SISMEMBER", "s", "a", "b"]),
            error(&arity("sismember"))
        );
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(
            run(&mut s, &now, &["SISMEMBER", "k", "a"]),
            error(WRONGTYPE)
        );
    }
}
