//! `INCRBYFLOAT key increment`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, wrong_type};
use crate::resp::Frame;
use crate::store::{Store, Value};

/// `INCRBYFLOAT key increment`: add to the number at `key` (absent counts as
/// 0), keeping its expiry; the new value as a bulk string
///
/// Computed in `f64` and written in the shortest form that reads back to
/// the same `f64`, never with an exponent (`5.0e3` plus `200` is `5200`).
/// Redis computes in `long double`: results agree to 15 significant
/// digits, and Redis prints `0.1 + 0.2` as `0.3` where this prints
/// `0.30000000000000004`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncrByFloat {
    /// The key
    pub key: Bytes,
    /// The increment
    pub by: f64,
}

/// A finite float from `text` as Redis reads one (no spaces; `inf` and
/// `nan` refused)
pub(crate) fn parse_float(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    if text.is_empty() || text.trim() != text {
        return None;
    }
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A float as Redis's `INCRBYFLOAT` and `HINCRBYFLOAT` write it.
pub(crate) fn format_float(x: f64) -> String {
    // `Display` never uses an exponent and drops a zero fraction; `-0` is `0`.
    if x == 0.0 {
        "0".to_string()
    } else {
        x.to_string()
    }
}

impl IncrByFloat {
    /// # Format
    /// `INCRBYFLOAT key increment`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(3, "incrbyfloat")?;
        let key = args.bytes()?;
        let by = parse_float(&args.bytes()?).ok_or(CommandError::NotAFloat)?;
        Ok(Self { key, by })
    }
}

impl Unit for IncrByFloat {
    fn name(&self) -> &'static str {
        "incrbyfloat"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let current = match store.peek(&self.key, now.at) {
            None => 0.0,
            Some(Value::Str(v)) => match parse_float(v) {
                Some(x) => x,
                None => return Frame::Error("ERR value is not a valid float".into()),
            },
            Some(_) => return wrong_type(),
        };
        let next = current + self.by;
        if !next.is_finite() {
            return Frame::Error("ERR increment would produce NaN or Infinity".into());
        }
        let text = Bytes::from(format_float(next));
        let reply = Frame::Bulk(text.clone());
        let grow = text.len();
        let write = |buf: &mut bytes::BytesMut| {
            buf.clear();
            buf.extend_from_slice(&text);
        };
        match super::append::rewrite(store, &self.key, grow, now, write) {
            Ok(_) => reply,
            Err(err) => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{bulk, error, now, run, store};

    #[test]
    fn adds_as_redis_documents() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["SET", "k", "10.50"]);
        assert_eq!(
            run(&mut s, &now, &["INCRBYFLOAT", "k", "0.1"]),
            bulk("10.6")
        );
        assert_eq!(run(&mut s, &now, &["INCRBYFLOAT", "k", "-5"]), bulk("5.6"));
        run(&mut s, &now, &["SET", "k", "5.0e3"]);
        assert_eq!(
            run(&mut s, &now, &["INCRBYFLOAT", "k", "2.0e2"]),
            bulk("5200")
        );
        assert_eq!(run(&mut s, &now, &["INCRBYFLOAT", "n", "3"]), bulk("3"));
        assert_eq!(run(&mut s, &now, &["INCRBYFLOAT", "n", "-3"]), bulk("0"));
    }

    #[test]
    fn errors_are_redis_texts() {
        let (mut s, now) = (store(), now());
        let not_float = error("ERR value is not a valid float");
        assert_eq!(run(&mut s, &now, &["INCRBYFLOAT", "k", "x"]), not_float);
        assert_eq!(run(&mut s, &now, &["INCRBYFLOAT", "k", "nan"]), not_float);
        assert_eq!(run(&mut s, &now, &["INCRBYFLOAT", "k", " 1"]), not_float);
        run(&mut s, &now, &["SET", "k", "abc"]);
        assert_eq!(run(&mut s, &now, &["INCRBYFLOAT", "k", "1"]), not_float);
        run(&mut s, &now, &["SET", "k", "1.7e308"]);
        assert_eq!(
            run(&mut s, &now, &["INCRBYFLOAT", "k", "1.7e308"]),
            error("ERR increment would produce NaN or Infinity")
        );
        run(&mut s, &now, &["HSET", "h", "f", "1"]);
        assert_eq!(
            run(&mut s, &now, &["INCRBYFLOAT", "h", "1"]),
            error(WRONGTYPE)
        );
    }
}
