//! `LLEN key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, count};
use crate::resp::Frame;
use crate::store::Store;

/// `LLEN key`: the list's length, 0 if absent
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LLen {
    /// The key
    pub key: Bytes,
}

impl LLen {
    /// # Format
    /// `LLEN key`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(2, "llen")?;
        Ok(Self { key: args.bytes()? })
    }
}

impl Unit for LLen {
    fn name(&self) -> &'static str {
        "llen"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now, |list| {
            count(list.map_or(0, |l| l.len()))
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
    fn length_or_zero() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["LLEN", "l"]), Frame::Integer(0));
        run(&mut s, &now, &["RPUSH", "l", "a"]);
        assert_eq!(run(&mut s, &now, &["LLEN", "l"]), Frame::Integer(1));
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(run(&mut s, &now, &["LLEN", "s"]), error(WRONGTYPE));
    }
}
