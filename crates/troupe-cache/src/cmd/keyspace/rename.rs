//! `RENAME key newkey`, `RENAMENX key newkey`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, ok, store_error};
use crate::resp::Frame;
use crate::store::Store;

/// `RENAME`/`RENAMENX`: move the value (and its expiry) to `to`, replacing
/// what was there; `RENAMENX` only if `to` does not exist. Both keys must be
/// on one shard (the front end refuses others with `CROSSSLOT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    /// The key to move
    pub from: Bytes,
    /// Its new name
    pub to: Bytes,
    /// `RENAMENX`
    pub only_if_absent: bool,
}

impl Rename {
    /// # Format
    /// `RENAME key newkey`, `RENAMENX key newkey`
    pub(crate) fn parse(args: &mut Args, only_if_absent: bool) -> Result<Self, CommandError> {
        args.exactly(3, if only_if_absent { "renamenx" } else { "rename" })?;
        Ok(Self {
            from: args.bytes()?,
            to: args.bytes()?,
            only_if_absent,
        })
    }

    fn done(&self, renamed: bool) -> Frame {
        if self.only_if_absent {
            Frame::Integer(i64::from(renamed))
        } else {
            ok()
        }
    }
}

impl Unit for Rename {
    fn name(&self) -> &'static str {
        if self.only_if_absent {
            "renamenx"
        } else {
            "rename"
        }
    }

    fn key(&self) -> &Bytes {
        &self.from
    }

    fn for_each_key(&self, f: &mut dyn FnMut(&Bytes)) {
        f(&self.from);
        f(&self.to);
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        if !store.exists(&self.from, now.at) {
            return Frame::Error("ERR no such key".into());
        }
        if self.from == self.to {
            return self.done(false);
        }
        if self.only_if_absent && store.exists(&self.to, now.at) {
            return self.done(false);
        }
        let Some((value, expires_at)) = store.take(&self.from, now.at) else {
            return Frame::Error("ERR no such key".into());
        };
        match store.insert(self.to.clone(), value.clone(), expires_at, now.at) {
            Ok(_) => self.done(true),
            Err(err) => {
                // it fitted under its old name, so it fits back
                let _ = store.insert(self.from.clone(), value, expires_at, now.at);
                store_error(&err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::ok;
    use crate::cmd::testing::{bulk, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn moves_value_and_expiry() {
        let (mut s, now) = (store(), now());
        assert_eq!(
            run(&mut s, &now, &["RENAME", "a", "b"]),
            error("ERR no such key")
        );
        assert_eq!(
            run(&mut s, &now, &["RENAMENX", "a", "b"]),
            error("ERR no such key")
        );
        run(&mut s, &now, &["SET", "a", "1", "EX", "100"]);
        run(&mut s, &now, &["RPUSH", "b", "x"]);
        assert_eq!(run(&mut s, &now, &["RENAME", "a", "b"]), ok());
        assert_eq!(run(&mut s, &now, &["GET", "b"]), bulk("1"));
        assert_eq!(run(&mut s, &now, &["TTL", "b"]), Frame::Integer(100));
        assert_eq!(run(&mut s, &now, &["EXISTS", "a"]), Frame::Integer(0));
        assert_eq!(run(&mut s, &now, &["RENAME", "b", "b"]), ok());
        run(&mut s, &now, &["SET", "c", "2"]);
        assert_eq!(
            run(&mut s, &now, &["RENAMENX", "b", "c"]),
            Frame::Integer(0)
        );
        assert_eq!(
            run(&mut s, &now, &["RENAMENX", "b", "b"]),
            Frame::Integer(0)
        );
        assert_eq!(
            run(&mut s, &now, &["RENAMENX", "b", "d"]),
            Frame::Integer(1)
        );
        assert_eq!(run(&mut s, &now, &["GET", "d"]), bulk("1"));
    }
}
