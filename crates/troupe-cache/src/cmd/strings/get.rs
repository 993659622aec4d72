//! `GET key`

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, ReadThrough, Unit, bulk_or_null, wrong_type};
use crate::resp::Frame;
use crate::resp::frame::encode_bulk;
use crate::store::Store;

/// `GET key`: the string at `key`, nil if absent, `WRONGTYPE` for another
/// type
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get {
    /// The key
    pub key: Bytes,
}

impl Get {
    /// # Format
    /// `GET key`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(2, "get")?;
        Ok(Self { key: args.bytes()? })
    }
}

impl Unit for Get {
    const READ_THROUGH: ReadThrough = ReadThrough::Backed;

    fn name(&self) -> &'static str {
        "get"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now).map_or_else(|err| err, bulk_or_null)
    }

    fn apply_into(self, store: &mut Store, now: &Now, out: &mut BytesMut) {
        match store.read_string(&self.key, now.at, |value| encode_bulk(value, out)) {
            Some(Ok(())) => {}
            None => Frame::Null.encode(out),
            Some(Err(_)) => wrong_type().encode(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, bulk, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn get_answers_the_string_nil_or_wrongtype() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["GET", "k"]), Frame::Null);
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["get", "k"]), bulk("v"));
        run(&mut s, &now, &["LPUSH", "l", "x"]);
        assert_eq!(run(&mut s, &now, &["GET", "l"]), error(WRONGTYPE));
        assert_eq!(run(&mut s, &now, &["GET"]), error(&arity("get")));
        assert_eq!(run(&mut s, &now, &["GET", "a", "b"]), error(&arity("get")));
    }

    #[test]
    fn the_reply_written_from_the_store_is_the_reply_built() {
        use bytes::BytesMut;

        use crate::cmd::{Command, testing::parse};

        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["SET", "k", "value"]);
        run(&mut s, &now, &["SET", "empty", ""]);
        run(&mut s, &now, &["LPUSH", "l", "x"]);
        for key in ["k", "empty", "absent", "l"] {
            let Ok(Command::Key(get)) = parse(&["GET", key]) else {
                panic!("GET parses");
            };
            let mut built = BytesMut::new();
            get.clone().apply(&mut s, &now).encode(&mut built);
            let mut written = BytesMut::new();
            get.apply_into(&mut s, &now, &mut written);
            assert_eq!(written, built, "GET {key}");
        }
    }
}
