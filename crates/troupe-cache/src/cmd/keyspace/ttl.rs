//! `TTL key`, `PTTL key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `TTL`/`PTTL`: -2 if absent, -1 if it never expires, else the time left
/// (`TTL` in seconds, rounded to the nearest, as Redis does)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ttl {
    /// The key
    pub key: Bytes,
    /// `PTTL`: milliseconds
    pub millis: bool,
}

impl Ttl {
    /// # Format
    /// `TTL key`, `PTTL key`
    pub(crate) fn parse(
        args: &mut Args,
        name: &'static str,
        millis: bool,
    ) -> Result<Self, CommandError> {
        args.exactly(2, name)?;
        Ok(Self {
            key: args.bytes()?,
            millis,
        })
    }
}

impl Unit for Ttl {
    const READ_THROUGH: ReadThrough = ReadThrough::Cached;

    fn name(&self) -> &'static str {
        if self.millis { "pttl" } else { "ttl" }
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        Frame::Integer(match store.expires_at(&self.key, now.at) {
            None => -2,
            Some(None) => -1,
            Some(Some(at)) => {
                let ms = i64::try_from(at.saturating_duration_since(now.at).as_millis())
                    .unwrap_or(i64::MAX);
                if self.millis {
                    ms
                } else {
                    ms.saturating_add(500) / 1000
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{later, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn missing_persistent_and_rounded() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["TTL", "k"]), Frame::Integer(-2));
        assert_eq!(run(&mut s, &now, &["PTTL", "k"]), Frame::Integer(-2));
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["TTL", "k"]), Frame::Integer(-1));
        run(&mut s, &now, &["PEXPIRE", "k", "10000"]);
        assert_eq!(
            run(&mut s, &later(&now, 1499), &["TTL", "k"]),
            Frame::Integer(9)
        );
        assert_eq!(
            run(&mut s, &later(&now, 1501), &["TTL", "k"]),
            Frame::Integer(8)
        );
        assert_eq!(
            run(&mut s, &later(&now, 9999), &["PTTL", "k"]),
            Frame::Integer(1)
        );
        assert_eq!(
            run(&mut s, &later(&now, 10_000), &["PTTL", "k"]),
            Frame::Integer(-2)
        );
    }
}
