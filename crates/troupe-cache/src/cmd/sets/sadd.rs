//! `SADD key member [member ...]`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, count};
use crate::resp::Frame;
use crate::store::{MEMBER_OVERHEAD, Store};

/// `SADD key member [member ...]`: add the members, creating the set if
/// absent; how many were new
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SAdd {
    /// The key
    pub key: Bytes,
    /// The members
    pub members: Vec<Bytes>,
}

impl SAdd {
    /// # Format
    /// `SADD key member [member ...]`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.at_least(3, "sadd")?;
        Ok(Self {
            key: args.bytes()?,
            members: args.rest()?,
        })
    }
}

impl Unit for SAdd {
    fn name(&self) -> &'static str {
        "sadd"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let grow = self.members.iter().map(|m| m.len() + MEMBER_OVERHEAD).sum();
        super::write(store, &self.key, grow, now, |set| {
            self.members
                .into_iter()
                .filter(|m| set.insert(m.clone()))
                .count()
        })
        .map_or_else(|err| err, count)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn counts_new_members() {
        let (mut s, now) = (store(), now());
        assert_eq!(
            run(&mut s, &now, &["SADD", "s", "a", "b", "a"]),
            Frame::Integer(2)
        );
        assert_eq!(
            run(&mut s, &now, &["SADD", "s", "b", "c"]),
            Frame::Integer(1)
        );
        assert_eq!(run(&mut s, &now, &["SCARD", "s"]), Frame::Integer(3));
        assert_eq!(run(&mut s, &now, &["SADD", "s"]), error(&arity("sadd")));
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["SADD", "k", "a"]), error(WRONGTYPE));
    }
}
