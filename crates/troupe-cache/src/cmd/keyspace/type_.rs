//! `TYPE key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `TYPE key`: `string`, `hash`, `list`, `set`, or `none`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Type {
    /// The key
    pub key: Bytes,
}

impl Type {
    /// # Format
    /// `TYPE key`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(2, "type")?;
        Ok(Self { key: args.bytes()? })
    }
}

impl Unit for Type {
    const READ_THROUGH: ReadThrough = ReadThrough::Cached;

    fn name(&self) -> &'static str {
        "type"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        store.exists(&self.key, now.at);
        let kind = store
            .peek(&self.key, now.at)
            .map_or("none", |v| v.kind().name());
        Frame::Simple(kind.into())
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{now, run, store};
    use crate::resp::Frame;

    #[test]
    fn names_every_type() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["SET", "s", "1"]);
        run(&mut s, &now, &["HSET", "h", "f", "1"]);
        run(&mut s, &now, &["RPUSH", "l", "1"]);
        run(&mut s, &now, &["SADD", "z", "1"]);
        for (key, want) in [
            ("s", "string"),
            ("h", "hash"),
            ("l", "list"),
            ("z", "set"),
            ("x", "none"),
        ] {
            assert_eq!(
                run(&mut s, &now, &["TYPE", key]),
                Frame::Simple(want.into())
            );
        }
    }
}
