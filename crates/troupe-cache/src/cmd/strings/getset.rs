//! `GETSET key value`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::set::{Previous, SetError, SetExpiry, set};
use crate::cmd::{Args, CommandError, Now, Unit, bulk_or_null, store_error, wrong_type};
use crate::resp::Frame;
use crate::store::Store;

/// `GETSET key value`: set, clearing any expiry, and reply with the old
/// string (nil if absent; `WRONGTYPE`, nothing written, for another type)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetSet {
    /// The key
    pub key: Bytes,
    /// The value
    pub value: Bytes,
}

impl GetSet {
    /// # Format
    /// `GETSET key value`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(3, "getset")?;
        Ok(Self {
            key: args.bytes()?,
            value: args.bytes()?,
        })
    }
}

impl Unit for GetSet {
    fn name(&self) -> &'static str {
        "getset"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        match set(
            store,
            self.key,
            self.value,
            SetExpiry::Clear,
            None,
            Previous::ReportOrRefuse,
            now,
        ) {
            Ok(result) => bulk_or_null(result.old),
            Err(SetError::Store(err)) => store_error(&err),
            Err(SetError::WrongType) => wrong_type(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{bulk, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn swaps_and_clears_the_expiry() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["GETSET", "k", "1"]), Frame::Null);
        run(&mut s, &now, &["EXPIRE", "k", "100"]);
        assert_eq!(run(&mut s, &now, &["GETSET", "k", "2"]), bulk("1"));
        assert_eq!(run(&mut s, &now, &["TTL", "k"]), Frame::Integer(-1));
        run(&mut s, &now, &["RPUSH", "l", "x"]);
        assert_eq!(run(&mut s, &now, &["GETSET", "l", "2"]), error(WRONGTYPE));
    }
}
