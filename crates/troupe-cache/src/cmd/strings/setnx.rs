//! `SETNX key value`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::set::{Previous, SetCondition, SetError, SetExpiry, set};
use crate::cmd::{Args, CommandError, Now, Unit, store_error};
use crate::resp::Frame;
use crate::store::Store;

/// `SETNX key value`: set only if absent; 1 if set, 0 if not
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetNx {
    /// The key
    pub key: Bytes,
    /// The value
    pub value: Bytes,
}

impl SetNx {
    /// # Format
    /// `SETNX key value`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(3, "setnx")?;
        Ok(Self {
            key: args.bytes()?,
            value: args.bytes()?,
        })
    }
}

impl Unit for SetNx {
    fn name(&self) -> &'static str {
        "setnx"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let condition = Some(SetCondition::IfAbsent);
        match set(
            store,
            self.key,
            self.value,
            SetExpiry::Clear,
            condition,
            Previous::Ignore,
            now,
        ) {
            Ok(result) => Frame::Integer(i64::from(result.written)),
            Err(SetError::Store(err)) => store_error(&err),
            Err(SetError::WrongType) => crate::cmd::wrong_type(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{bulk, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn sets_only_an_absent_key() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["SETNX", "k", "1"]), Frame::Integer(1));
        assert_eq!(run(&mut s, &now, &["SETNX", "k", "2"]), Frame::Integer(0));
        assert_eq!(run(&mut s, &now, &["GET", "k"]), bulk("1"));
        run(&mut s, &now, &["HSET", "h", "f", "v"]);
        assert_eq!(run(&mut s, &now, &["SETNX", "h", "2"]), Frame::Integer(0));
    }
}
