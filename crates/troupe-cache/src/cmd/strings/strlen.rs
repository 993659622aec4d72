//! `STRLEN key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, count};
use crate::resp::Frame;
use crate::store::Store;

/// `STRLEN key`: the string's length, 0 if absent, `WRONGTYPE` for another
/// type
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrLen {
    /// The key
    pub key: Bytes,
}

impl StrLen {
    /// # Format
    /// `STRLEN key`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(2, "strlen")?;
        Ok(Self { key: args.bytes()? })
    }
}

impl Unit for StrLen {
    fn name(&self) -> &'static str {
        "strlen"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now)
            .map_or_else(|err| err, |v| count(v.map_or(0, |v| v.len())))
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn lengths() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["STRLEN", "k"]), Frame::Integer(0));
        run(&mut s, &now, &["SET", "k", "Hello world"]);
        assert_eq!(run(&mut s, &now, &["STRLEN", "k"]), Frame::Integer(11));
        run(&mut s, &now, &["SADD", "s", "x"]);
        assert_eq!(run(&mut s, &now, &["STRLEN", "s"]), error(WRONGTYPE));
    }
}
