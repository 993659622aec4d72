//! `HVALS key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `HVALS key`: every field's value, in no particular order; empty if the
/// key is absent
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HVals {
    /// The key
    pub key: Bytes,
}

impl HVals {
    /// # Format
    /// `HVALS key`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(2, "hvals")?;
        Ok(Self { key: args.bytes()? })
    }
}

impl Unit for HVals {
    fn name(&self) -> &'static str {
        "hvals"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now, |hash| {
            Frame::Array(
                hash.into_iter()
                    .flat_map(|h| h.iter())
                    .map(|(_, value)| Frame::Bulk(value.clone()))
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
    fn every_value() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["HVALS", "h"]), Frame::Array(vec![]));
        run(&mut s, &now, &["HSET", "h", "a", "2", "b", "1", "c", "2"]);
        assert_eq!(
            sorted(run(&mut s, &now, &["HVALS", "h"])),
            sorted(bulks(&["1", "2", "2"]))
        );
        assert_eq!(
            run(&mut s, &now, &["HVALS", "h", "a"]),
            error(&arity("hvals"))
        );
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(run(&mut s, &now, &["HVALS", "s"]), error(WRONGTYPE));
    }
}
