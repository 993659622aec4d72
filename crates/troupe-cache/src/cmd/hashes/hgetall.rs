//! `HGETALL key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `HGETALL key`: every field followed by its value, as one flat array in
/// no particular order of pairs; empty if the key is absent
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HGetAll {
    /// The key
    pub key: Bytes,
}

impl HGetAll {
    /// # Format
    /// `HGETALL key`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(2, "hgetall")?;
        Ok(Self { key: args.bytes()? })
    }
}

impl Unit for HGetAll {
    fn name(&self) -> &'static str {
        "hgetall"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now, |hash| {
            Frame::Array(
                hash.into_iter()
                    .flat_map(|h| h.iter())
                    .flat_map(|(field, value)| {
                        [Frame::Bulk(field.clone()), Frame::Bulk(value.clone())]
                    })
                    .collect(),
            )
        })
        .unwrap_or_else(|err| err)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, bulk, error, now, run, store};
    use crate::resp::Frame;

    /// The reply's (field, value) pairs, sorted: pairs come in no set order
    /// but each value must follow its own field.
    fn pairs(frame: Frame) -> Vec<(Frame, Frame)> {
        let Frame::Array(items) = frame else {
            panic!("not an array: {frame:?}");
        };
        assert!(items.len().is_multiple_of(2), "odd length: {items:?}");
        let mut pairs: Vec<_> = items
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        pairs.sort_by_key(|pair| format!("{pair:?}"));
        pairs
    }

    #[test]
    fn fields_each_followed_by_its_value() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["HGETALL", "h"]), Frame::Array(vec![]));
        run(&mut s, &now, &["HSET", "h", "a", "1", "b", "2", "c", "3"]);
        assert_eq!(
            pairs(run(&mut s, &now, &["HGETALL", "h"])),
            vec![
                (bulk("a"), bulk("1")),
                (bulk("b"), bulk("2")),
                (bulk("c"), bulk("3")),
            ]
        );
        assert_eq!(
            run(&mut s, &now, &["HGETALL", "h", "a"]),
            error(&arity("hgetall"))
        );
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(run(&mut s, &now, &["HGETALL", "s"]), error(WRONGTYPE));
    }
}
