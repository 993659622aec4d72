//! `MSET key value [key value ...]` and `MSETNX`, with every key on one
//! shard

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, ok, store_error};
use crate::resp::Frame;
use crate::store::{Store, Value};

/// The pairs of `MSET`/`MSETNX`.
fn parse_pairs(args: &mut Args, name: &'static str) -> Result<Vec<(Bytes, Bytes)>, CommandError> {
    if args.argc() < 3 || args.argc().is_multiple_of(2) {
        return Err(CommandError::WrongArity(name));
    }
    let mut pairs = Vec::with_capacity(args.argc() / 2);
    while args.remaining() > 0 {
        pairs.push((args.bytes()?, args.bytes()?));
    }
    Ok(pairs)
}

/// A value and its expiry, as [`Store::take`] gives them back.
type Held = (Value, Option<std::time::Instant>);

/// Writes every pair, clearing expiries, all or nothing: if the store refuses one, the pairs
/// written before it are undone (their keys get back what they held) and the refusal is the
/// reply.
fn write_all(store: &mut Store, pairs: Vec<(Bytes, Bytes)>, now: &Now) -> Frame {
    // each key, and what it held before (its value and expiry)
    let mut replaced: Vec<(Bytes, Option<Held>)> = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let before = store.take(&key, now.at);
        replaced.push((key.clone(), before));
        if let Err(err) = store.insert(key, Value::Str(value), None, now.at) {
            // newest first, so a key named twice ends with what it held at the start
            for (key, before) in replaced.into_iter().rev() {
                store.delete(&key, now.at);
                if let Some((value, expires_at)) = before {
                    // it fitted before this command, and this command's writes are gone
                    let _ = store.insert(key, value, expires_at, now.at);
                }
            }
            return store_error(&err);
        }
    }
    ok()
}

/// `MSET key value [key value ...]`: set every pair at once (all keys on
/// one shard: the front end refuses others with `CROSSSLOT`)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MSet {
    /// The pairs, at least one
    pub pairs: Vec<(Bytes, Bytes)>,
}

impl MSet {
    /// # Format
    /// `MSET key value [key value ...]`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        Ok(Self {
            pairs: parse_pairs(args, "mset")?,
        })
    }
}

impl Unit for MSet {
    fn name(&self) -> &'static str {
        "mset"
    }

    fn key(&self) -> &Bytes {
        &self.pairs[0].0
    }

    fn for_each_key(&self, f: &mut dyn FnMut(&Bytes)) {
        self.pairs.iter().for_each(|(key, _)| f(key));
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        write_all(store, self.pairs, now)
    }
}

/// `MSETNX key value [key value ...]`: set every pair only if no key
/// exists; 1 if set, 0 if not
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MSetNx {
    /// The pairs, at least one
    pub pairs: Vec<(Bytes, Bytes)>,
}

impl MSetNx {
    /// # Format
    /// `MSETNX key value [key value ...]`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        Ok(Self {
            pairs: parse_pairs(args, "msetnx")?,
        })
    }
}

impl Unit for MSetNx {
    fn name(&self) -> &'static str {
        "msetnx"
    }

    fn key(&self) -> &Bytes {
        &self.pairs[0].0
    }

    fn for_each_key(&self, f: &mut dyn FnMut(&Bytes)) {
        self.pairs.iter().for_each(|(key, _)| f(key));
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        if self.pairs.iter().any(|(key, _)| store.exists(key, now.at)) {
            return Frame::Integer(0);
        }
        match write_all(store, self.pairs, now) {
            Frame::Simple(_) => Frame::Integer(1),
            err => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::ok;
    use crate::cmd::testing::{arity, bulk, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn mset_and_msetnx() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["MSET", "a", "1", "b", "2"]), ok());
        assert_eq!(
            run(&mut s, &now, &["MGET", "a", "b"]),
            Frame::Array(vec![bulk("1"), bulk("2")])
        );
        assert_eq!(
            run(&mut s, &now, &["MSETNX", "c", "3", "a", "9"]),
            Frame::Integer(0)
        );
        assert_eq!(run(&mut s, &now, &["EXISTS", "c"]), Frame::Integer(0));
        assert_eq!(
            run(&mut s, &now, &["MSETNX", "c", "3", "d", "4"]),
            Frame::Integer(1)
        );
        assert_eq!(run(&mut s, &now, &["GET", "d"]), bulk("4"));
        assert_eq!(run(&mut s, &now, &["MSET", "a"]), error(&arity("mset")));
        assert_eq!(
            run(&mut s, &now, &["MSET", "a", "1", "b"]),
            error(&arity("mset"))
        );
        assert_eq!(run(&mut s, &now, &["MSETNX", "a"]), error(&arity("msetnx")));
    }

    #[test]
    fn a_refused_pair_undoes_the_pairs_before_it() {
        let now = now();
        let mut s = crate::store::Store::new(std::num::NonZeroUsize::new(10).unwrap(), 64);
        run(&mut s, &now, &["SET", "a", "old", "EX", "100"]);
        let huge = "x".repeat(100);
        assert_eq!(
            run(
                &mut s,
                &now,
                &["MSET", "a", "new", "b", "1", "a", "newer", "c", &huge]
            ),
            error(crate::cmd::OOM)
        );
        assert_eq!(run(&mut s, &now, &["GET", "a"]), bulk("old"));
        assert_eq!(run(&mut s, &now, &["TTL", "a"]), Frame::Integer(100));
        assert_eq!(run(&mut s, &now, &["EXISTS", "b", "c"]), Frame::Integer(0));
        assert_eq!(
            run(&mut s, &now, &["MSETNX", "b", "1", "c", &huge]),
            error(crate::cmd::OOM)
        );
        assert_eq!(run(&mut s, &now, &["EXISTS", "b"]), Frame::Integer(0));
    }
}
