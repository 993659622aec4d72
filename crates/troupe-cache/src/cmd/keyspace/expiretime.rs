//! `EXPIRETIME key`, `PEXPIRETIME key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `EXPIRETIME`/`PEXPIRETIME`: -2 if absent, -1 if it never expires, else
/// the Unix time it expires at (seconds, or milliseconds)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireTime {
    /// The key
    pub key: Bytes,
    /// `PEXPIRETIME`: milliseconds
    pub millis: bool,
}

impl ExpireTime {
    /// # Format
    /// `EXPIRETIME key`, `PEXPIRETIME key`
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

impl Unit for ExpireTime {
    const READ_THROUGH: ReadThrough = ReadThrough::Cached;

    fn name(&self) -> &'static str {
        if self.millis {
            "pexpiretime"
        } else {
            "expiretime"
        }
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        Frame::Integer(match store.expires_at(&self.key, now.at) {
            None => -2,
            Some(None) => -1,
            Some(Some(at)) => {
                let ms = now.unix_ms_of(at);
                if self.millis { ms } else { ms / 1000 }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{now, run, store};
    use crate::resp::Frame;

    #[test]
    fn absolute_times() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["EXPIRETIME", "k"]), Frame::Integer(-2));
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(run(&mut s, &now, &["PEXPIRETIME", "k"]), Frame::Integer(-1));
        run(&mut s, &now, &["PEXPIRE", "k", "2500"]);
        assert_eq!(
            run(&mut s, &now, &["PEXPIRETIME", "k"]),
            Frame::Integer(now.unix_ms + 2500)
        );
        assert_eq!(
            run(&mut s, &now, &["EXPIRETIME", "k"]),
            Frame::Integer((now.unix_ms + 2500) / 1000)
        );
    }
}
