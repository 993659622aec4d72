//! `HKEYS key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `HKEYS key`: every field, in no particular order; empty if the key is
/// absent
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HKeys {
    /// The key
    pub key: Bytes,
}

impl HKeys {
    /// # Format
    /// `HKEYS key`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(2, "hkeys")?;
        Ok(Self { key: args.bytes()? })
    }
}

impl Unit for HKeys {
    fn name(&self) -> &'static str {
        "hkeys"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now, |hash| {
            Frame::Array(
                hash.into_iter()
                    .flat_map(|h| h.iter())
                    .map(|(field, _)| Frame::Bulk(field.clone()))
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
    fn every_field() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["HKEYS", "h"]), Frame::Array(vec![]));
        run(&mut s, &now, &["HSET", "h", "b", "1", "a", "2", "c", "3"]);
        assert_eq!(
            sorted(run(&mut s, &now, &["HKEYS", "h"])),
            sorted(bulks(&["a", "b", "c"]))
        );
        assert_eq!(run(&mut s, &now, &["HKEYS"]), error(&arity("hkeys")));
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(run(&mut s, &now, &["HKEYS", "s"]), error(WRONGTYPE));
    }
}
