//! What every key command unit provides, and the macro that gathers a
//! family's units into one serializable enum

use bytes::{Bytes, BytesMut};

use super::Now;
use crate::resp::Frame;
use crate::store::Store;

/// How a read-through shard (one in front of a backing store) treats a
/// command
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadThrough {
    /// It acts on the cached copies only, which is safe: it neither reads a
    /// value the backing store may hold (a miss is not an absence) nor
    /// writes one (`EXPIRE`, `TTL`, `EXISTS`, `TOUCH`, `TYPE`, `PERSIST`)
    Cached,
    /// The shard reads or writes it through the backing store: `GET`,
    /// `SET` without options, `DEL`, `UNLINK`, sent as the typed messages
    Backed,
    /// Refused: it would need the backing store's value or would write one
    /// the backing store does not get
    Refused,
}

/// One command on one key (or on keys that share its shard): parsed by its
/// own `parse`, run by `apply` on the shard that owns the key
pub(crate) trait Unit {
    /// How a read-through shard treats it
    const READ_THROUGH: ReadThrough = ReadThrough::Refused;

    /// The lower-case name, as Redis's errors quote it
    fn name(&self) -> &'static str;

    /// The key that decides the shard
    fn key(&self) -> &Bytes;

    /// Every key it touches; all must be on the key's shard
    fn for_each_key(&self, f: &mut dyn FnMut(&Bytes)) {
        f(self.key());
    }

    /// Runs it; the reply Redis gives
    fn apply(self, store: &mut Store, now: &Now) -> Frame;

    /// Runs it and writes the reply Redis gives to `out`, encoded: as [`apply`](Self::apply)
    /// unless the unit can write it from the store without building it
    fn apply_into(self, store: &mut Store, now: &Now, out: &mut BytesMut)
    where
        Self: Sized,
    {
        self.apply(store, now).encode(out);
    }
}

/// Declares a family's enum of units, with the dispatch to each unit and a
/// conversion from each unit into [`KeyCommand`](super::KeyCommand).
macro_rules! family {
    (
        $(#[$meta:meta])*
        $family:ident in $variant:ident {
            $( $(#[$vmeta:meta])* $name:ident($ty:ty) ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        pub enum $family {
            $( $(#[$vmeta])* $name($ty) ),+
        }

        impl $family {
            pub(crate) fn key(&self) -> &bytes::Bytes {
                match self { $( Self::$name(c) => $crate::cmd::Unit::key(c) ),+ }
            }

            pub(crate) fn for_each_key(&self, f: &mut dyn FnMut(&bytes::Bytes)) {
                match self { $( Self::$name(c) => $crate::cmd::Unit::for_each_key(c, f) ),+ }
            }

            pub(crate) fn apply(
                self,
                store: &mut $crate::store::Store,
                now: &$crate::cmd::Now,
            ) -> $crate::resp::Frame {
                match self { $( Self::$name(c) => $crate::cmd::Unit::apply(c, store, now) ),+ }
            }

            pub(crate) fn apply_into(
                self,
                store: &mut $crate::store::Store,
                now: &$crate::cmd::Now,
                out: &mut bytes::BytesMut,
            ) {
                match self { $( Self::$name(c) => $crate::cmd::Unit::apply_into(c, store, now, out) ),+ }
            }

            pub(crate) fn name(&self) -> &'static str {
                match self { $( Self::$name(c) => $crate::cmd::Unit::name(c) ),+ }
            }

            pub(crate) fn read_through(&self) -> $crate::cmd::ReadThrough {
                match self {
                    $( Self::$name(_) => <$ty as $crate::cmd::Unit>::READ_THROUGH ),+
                }
            }
        }

        $(
            impl From<$ty> for $crate::cmd::KeyCommand {
                fn from(c: $ty) -> Self {
                    $crate::cmd::KeyCommand::$variant($family::$name(c))
                }
            }

            impl From<$ty> for $crate::cmd::Command {
                fn from(c: $ty) -> Self {
                    $crate::cmd::Command::Key(c.into())
                }
            }
        )+
    };
}

pub(crate) use family;
