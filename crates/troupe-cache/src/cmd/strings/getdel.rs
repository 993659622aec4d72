//! `GETDEL key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, bulk_or_null};
use crate::resp::Frame;
use crate::store::Store;

/// `GETDEL key`: the string at `key`, deleting it; nil if absent,
/// `WRONGTYPE` (nothing deleted) for another type
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetDel {
    /// The key
    pub key: Bytes,
}

impl GetDel {
    /// # Format
    /// `GETDEL key`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(2, "getdel")?;
        Ok(Self { key: args.bytes()? })
    }
}

impl Unit for GetDel {
    fn name(&self) -> &'static str {
        "getdel"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        match super::read(store, &self.key, now) {
            Ok(value) => {
                if value.is_some() {
                    store.delete(&self.key, now.at);
                }
                bulk_or_null(value)
            }
            Err(err) => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{bulk, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn takes_the_value_away() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["GETDEL", "k"]), Frame::Null);
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["GETDEL", "k"]), bulk("v"));
        assert_eq!(run(&mut s, &now, &["EXISTS", "k"]), Frame::Integer(0));
        run(&mut s, &now, &["SADD", "s", "m"]);
        assert_eq!(run(&mut s, &now, &["GETDEL", "s"]), error(WRONGTYPE));
        assert_eq!(run(&mut s, &now, &["EXISTS", "s"]), Frame::Integer(1));
    }
}
