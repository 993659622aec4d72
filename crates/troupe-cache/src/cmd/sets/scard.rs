//! `SCARD key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, count};
use crate::resp::Frame;
use crate::store::Store;

/// `SCARD key`: how many members, 0 if absent
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SCard {
    /// The key
    pub key: Bytes,
}

impl SCard {
    /// # Format
    /// `SCARD key`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(2, "scard")?;
        Ok(Self { key: args.bytes()? })
    }
}

impl Unit for SCard {
    fn name(&self) -> &'static str {
        "scard"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now, |set| {
            count(set.map_or(0, |s| s.len()))
        })
        .unwrap_or_else(|err| err)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn size_or_zero() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["SCARD", "s"]), Frame::Integer(0));
        run(&mut s, &now, &["SADD", "s", "a"]);
        assert_eq!(run(&mut s, &now, &["SCARD", "s"]), Frame::Integer(1));
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["SCARD", "k"]), error(WRONGTYPE));
    }
}
