//! `LPOP key [count]`, `RPOP key [count]`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::End;
use crate::cmd::{Args, CommandError, Now, Unit, bulk_or_null};
use crate::resp::Frame;
use crate::store::Store;

/// `LPOP`/`RPOP`: remove and return elements from an end. Without a count,
/// one element or nil if the key is absent; with a count, an array of up to
/// that many in the order popped (empty for 0), or the nil array if the key
/// is absent. A list left empty is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pop {
    /// The key
    pub key: Bytes,
    /// How many to pop, if given: the reply is then an array
    pub count: Option<u64>,
    /// Where
    pub end: End,
}

impl Pop {
    /// # Format
    /// `LPOP key [count]`, `RPOP` alike
    pub(crate) fn parse(args: &mut Args, end: End) -> Result<Self, CommandError> {
        let name = if end == End::Head { "lpop" } else { "rpop" };
        args.at_least(2, name)?;
        if args.argc() > 3 {
            return Err(CommandError::WrongArity(name));
        }
        let key = args.bytes()?;
        let count = if args.remaining() > 0 {
            // not a number and negative get the same answer in Redis
            let positive = CommandError::Invalid("value is out of range, must be positive");
            let n = args.int().map_err(|_| positive.clone())?;
            Some(u64::try_from(n).map_err(|_| positive)?)
        } else {
            None
        };
        Ok(Self { key, count, end })
    }
}

impl Unit for Pop {
    fn name(&self) -> &'static str {
        if self.end == End::Head {
            "lpop"
        } else {
            "rpop"
        }
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let (end, count) = (self.end, self.count);
        let popped = super::modify(store, &self.key, now, |list| {
            let mut pop = || match end {
                End::Head => list.pop_front(),
                End::Tail => list.pop_back(),
            };
            match count {
                None => bulk_or_null(pop()),
                Some(n) => Frame::Array(
                    std::iter::from_fn(pop)
                        .take(usize::try_from(n).unwrap_or(usize::MAX))
                        .map(Frame::Bulk)
                        .collect(),
                ),
            }
        });
        match popped {
            Err(err) => err,
            Ok(Some(reply)) => reply,
            Ok(None) if count.is_some() => Frame::NullArray,
            Ok(None) => Frame::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, bulk, bulks, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn pops_from_either_end() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["RPUSH", "l", "a", "b", "c", "d", "e", "f"]);
        assert_eq!(run(&mut s, &now, &["LPOP", "l"]), bulk("a"));
        assert_eq!(run(&mut s, &now, &["RPOP", "l"]), bulk("f"));
        assert_eq!(run(&mut s, &now, &["LPOP", "l", "2"]), bulks(&["b", "c"]));
        assert_eq!(run(&mut s, &now, &["RPOP", "l", "1"]), bulks(&["e"]));
        assert_eq!(run(&mut s, &now, &["LPOP", "l", "0"]), bulks(&[]));
        assert_eq!(run(&mut s, &now, &["LLEN", "l"]), Frame::Integer(1));
        run(&mut s, &now, &["RPUSH", "l", "x", "y"]);
        assert_eq!(
            run(&mut s, &now, &["RPOP", "l", "10"]),
            bulks(&["y", "x", "d"])
        );
        assert_eq!(run(&mut s, &now, &["EXISTS", "l"]), Frame::Integer(0));
    }

    #[test]
    fn the_last_element_deletes_the_key() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["RPUSH", "l", "a"]);
        assert_eq!(run(&mut s, &now, &["RPOP", "l"]), bulk("a"));
        assert_eq!(run(&mut s, &now, &["EXISTS", "l"]), Frame::Integer(0));
        assert_eq!(run(&mut s, &now, &["RPOP", "l"]), Frame::Null);
    }

    #[test]
    fn a_missing_key_is_nil_or_the_nil_array() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["LPOP", "l"]), Frame::Null);
        assert_eq!(run(&mut s, &now, &["RPOP", "l"]), Frame::Null);
        assert_eq!(run(&mut s, &now, &["LPOP", "l", "1"]), Frame::NullArray);
        assert_eq!(run(&mut s, &now, &["RPOP", "l", "0"]), Frame::NullArray);
    }

    #[test]
    fn errors_are_redis_texts() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["RPUSH", "l", "a"]);
        let negative = error("ERR value is out of range, must be positive");
        assert_eq!(run(&mut s, &now, &["LPOP", "l", "-1"]), negative);
        assert_eq!(run(&mut s, &now, &["RPOP", "missing", "-1"]), negative);
        // as redis-server 7.0 answers it (checked by tests/redis_differential.rs)
        assert_eq!(run(&mut s, &now, &["LPOP", "l", "x"]), negative);
        assert_eq!(run(&mut s, &now, &["LPOP"]), error(&arity("lpop")));
        assert_eq!(
            run(&mut s, &now, &["RPOP", "l", "1", "2"]),
            error(&arity("rpop"))
        );
        assert_eq!(run(&mut s, &now, &["LLEN", "l"]), Frame::Integer(1));
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(run(&mut s, &now, &["LPOP", "s"]), error(WRONGTYPE));
        assert_eq!(run(&mut s, &now, &["RPOP", "s", "0"]), error(WRONGTYPE));
    }
}
