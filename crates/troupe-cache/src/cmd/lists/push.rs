//! `LPUSH key element [element ...]`, `RPUSH key element [element ...]`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, count};
use crate::resp::Frame;
use crate::store::{MEMBER_OVERHEAD, Store};

/// Which end of a list
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum End {
    /// The head (`L...`)
    Head,
    /// The tail (`R...`)
    Tail,
}

/// `LPUSH`/`RPUSH`: add the elements one by one at an end, creating the
/// list if absent; the new length
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// The key
    pub key: Bytes,
    /// The elements, in the order they are pushed
    pub elements: Vec<Bytes>,
    /// Where
    pub end: End,
}

impl Push {
    /// # Format
    /// `LPUSH key element [element ...]`, `RPUSH` alike
    pub(crate) fn parse(args: &mut Args, end: End) -> Result<Self, CommandError> {
        args.at_least(3, if end == End::Head { "lpush" } else { "rpush" })?;
        Ok(Self {
            key: args.bytes()?,
            elements: args.rest()?,
            end,
        })
    }
}

impl Unit for Push {
    fn name(&self) -> &'static str {
        if self.end == End::Head {
            "lpush"
        } else {
            "rpush"
        }
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let grow = self
            .elements
            .iter()
            .map(|e| e.len() + MEMBER_OVERHEAD)
            .sum();
        let end = self.end;
        super::write(store, &self.key, grow, now, |list| {
            for element in self.elements {
                match end {
                    End::Head => list.push_front(element),
                    End::Tail => list.push_back(element),
                }
            }
            list.len()
        })
        .map_or_else(|err| err, count)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn pushes_at_either_end() {
        let (mut s, now) = (store(), now());
        assert_eq!(
            run(&mut s, &now, &["RPUSH", "l", "a", "b"]),
            Frame::Integer(2)
        );
        assert_eq!(
            run(&mut s, &now, &["LPUSH", "l", "c", "d"]),
            Frame::Integer(4)
        );
        assert_eq!(run(&mut s, &now, &["LLEN", "l"]), Frame::Integer(4));
        assert_eq!(run(&mut s, &now, &["LPUSH", "l"]), error(&arity("lpush")));
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(run(&mut s, &now, &["RPUSH", "s", "a"]), error(WRONGTYPE));
    }
}
