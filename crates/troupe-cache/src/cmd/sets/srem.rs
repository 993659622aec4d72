//! `SREM key member [member ...]`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, count};
use crate::resp::Frame;
use crate::store::Store;

/// `SREM key member [member ...]`: remove the members; how many were there
/// (0 if the key is absent). A set left without members is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SRem {
    /// The key
    pub key: Bytes,
    /// The members to remove
    pub members: Vec<Bytes>,
}

impl SRem {
    /// # Format
    /// `SREM key member [member ...]`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.at_least(3, "srem")?;
        Ok(Self {
            key: args.bytes()?,
            members: args.rest()?,
        })
    }
}

impl Unit for SRem {
    fn name(&self) -> &'static str {
        "srem"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::modify(store, &self.key, now, |set| {
            self.members.iter().filter(|m| set.remove(m)).count()
        })
        .map_or_else(|err| err, |removed| count(removed.unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn counts_removed_members_and_drops_an_empty_set() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["SREM", "s", "a"]), Frame::Integer(0));
        run(&mut s, &now, &["SADD", "s", "a", "b", "c"]);
        assert_eq!(
            run(&mut s, &now, &["SREM", "s", "a", "x", "a"]),
            Frame::Integer(1)
        );
        assert_eq!(
            run(&mut s, &now, &["SISMEMBER", "s", "a"]),
            Frame::Integer(0)
        );
        assert_eq!(run(&mut s, &now, &["SCARD", "s"]), Frame::Integer(2));
        assert_eq!(
            run(&mut s, &now, &["SREM", "s", "b", "c"]),
            Frame::Integer(2)
        );
        assert_eq!(run(&mut s, &now, &["EXISTS", "s"]), Frame::Integer(0));
        assert_eq!(run(&mut s, &now, &["SREM", "s"]), error(&arity("srem")));
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["SREM", "k", "a"]), error(WRONGTYPE));
        assert_eq!(run(&mut s, &now, &["EXISTS", "k"]), Frame::Integer(1));
    }
}
