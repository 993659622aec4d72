//! `SMEMBERS key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `SMEMBERS key`: every member, in no particular order; empty if the key
/// is absent
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SMembers {
    /// The key
    pub key: Bytes,
}

impl SMembers {
    /// # Format
    /// `SMEMBERS key`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(2, "smembers")?;
        Ok(Self { key: args.bytes()? })
    }
}

impl Unit for SMembers {
    fn name(&self) -> &'static str {
        "smembers"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now, |set| {
            Frame::Array(
                set.into_iter()
                    .flat_map(|s| s.iter())
                    .map(|member| Frame::Bulk(member.clone()))
                    .collect(),
            )
        })
        .unwrap_or_else(|err| err)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, bulks, error, now, run, sorted, store};
    use crate::resp::Frame;

    #[test]
    fn every_member() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["SMEMBERS", "s"]), Frame::Array(vec![]));
        run(&mut s, &now, &["SADD", "s", "b", "a", "c", "a"]);
        assert_eq!(
            sorted(run(&mut s, &now, &["SMEMBERS", "s"])),
            sorted(bulks(&["a", "b", "c"]))
        );
        assert_eq!(
            run(&mut s, &now, &["SMEMBERS", "s", "a"]),
            error(&arity("smembers"))
        );
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["SMEMBERS", "k"]), error(WRONGTYPE));
    }
}
