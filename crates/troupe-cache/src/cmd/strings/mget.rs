//! `MGET key [key ...]`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{
    Args, Combine, Command, CommandError, Multi, Now, ReadThrough, Unit, bulk_or_null,
};
use crate::resp::Frame;
use crate::store::Store;

/// One key's part of `MGET`: the string, or nil if absent or of another
/// type (`MGET` never answers `WRONGTYPE`)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MGetPart {
    /// The key
    pub key: Bytes,
}

/// # Format
/// `MGET key [key ...]`: one [`MGetPart`] per key, answered as an array in
/// key order
pub(crate) fn parse(args: &mut Args) -> Result<Command, CommandError> {
    args.at_least(2, "mget")?;
    let parts = args
        .rest()?
        .into_iter()
        .map(|key| MGetPart { key }.into())
        .collect();
    Ok(Command::Multi(Multi {
        parts,
        combine: Combine::Array,
    }))
}

impl Unit for MGetPart {
    const READ_THROUGH: ReadThrough = ReadThrough::Backed;

    fn name(&self) -> &'static str {
        "mget"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        bulk_or_null(super::read(store, &self.key, now).ok().flatten())
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{arity, bulk, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn nil_for_missing_and_other_types() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["SET", "a", "1"]);
        run(&mut s, &now, &["SADD", "s", "m"]);
        assert_eq!(
            run(&mut s, &now, &["MGET", "a", "b", "s", "a"]),
            Frame::Array(vec![bulk("1"), Frame::Null, Frame::Null, bulk("1")])
        );
        assert_eq!(run(&mut s, &now, &["MGET"]), error(&arity("mget")));
    }
}
