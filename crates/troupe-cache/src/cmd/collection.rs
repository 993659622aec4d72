//! Reading and changing a collection value under a key, shared by the hash, list and set
//! families: each family gets `read`, `write` and `modify` typed to its collection by
//! [`typed_access!`]

use bytes::Bytes;

use super::{Now, store_error, wrong_type};
use crate::resp::Frame;
use crate::store::{Hash, List, Set, Store, Value};

/// A collection type a key can hold
pub(crate) trait Collection: Default {
    /// The collection in `value`, if it holds this type
    fn of(value: &Value) -> Option<&Self>;
    /// The same, to change
    fn of_mut(value: &mut Value) -> Option<&mut Self>;
    /// `self` as a value
    fn into_value(self) -> Value;
}

macro_rules! collection {
    ($ty:ident) => {
        impl Collection for $ty {
            fn of(value: &Value) -> Option<&Self> {
                match value {
                    Value::$ty(c) => Some(c),
                    _ => None,
                }
            }

            fn of_mut(value: &mut Value) -> Option<&mut Self> {
                match value {
                    Value::$ty(c) => Some(c),
                    _ => None,
                }
            }

            fn into_value(self) -> Value {
                Value::$ty(self)
            }
        }
    };
}

collection!(Hash);
collection!(List);
collection!(Set);

/// Reads the collection at `key` with `f`: `f(None)` if absent, `WRONGTYPE` for another
/// type. Counts a hit or a miss.
pub(crate) fn read<C: Collection, T>(
    store: &mut Store,
    key: &[u8],
    now: &Now,
    f: impl FnOnce(Option<&C>) -> T,
) -> Result<T, Frame> {
    match store.get(key, now.at) {
        None => Ok(f(None)),
        Some(value) => C::of(value).map(|c| f(Some(c))).ok_or_else(wrong_type),
    }
}

/// Changes the collection at `key` with `f`, creating it if absent; `grow` bounds the bytes
/// `f` adds (see [`Store::reserve`]). `WRONGTYPE` for another type, OOM if there is no room;
/// a collection left empty is not kept.
pub(crate) fn write<C: Collection, T>(
    store: &mut Store,
    key: &Bytes,
    grow: usize,
    now: &Now,
    f: impl FnOnce(&mut C) -> T,
) -> Result<T, Frame> {
    if let Some(value) = store.peek(key, now.at)
        && C::of(value).is_none()
    {
        return Err(wrong_type());
    }
    store
        .reserve(key, grow, now.at)
        .map_err(|err| store_error(&err))?;
    let mut f = Some(f);
    let changed = store.modify(key, now.at, |value| {
        let f = f.take()?;
        C::of_mut(value).map(f)
    });
    if let Some(Some(out)) = changed {
        return Ok(out);
    }
    let Some(f) = f else {
        // the value changed type under us, which `peek` ruled out
        return Err(wrong_type());
    };
    let mut collection = C::default();
    let out = f(&mut collection);
    store
        .insert(key.clone(), collection.into_value(), None, now.at)
        .map_err(|err| store_error(&err))?;
    Ok(out)
}

/// Changes the collection at `key` with `f` if it exists: `Ok(None)` if absent, `WRONGTYPE`
/// for another type; a collection left empty is removed.
pub(crate) fn modify<C: Collection, T>(
    store: &mut Store,
    key: &[u8],
    now: &Now,
    f: impl FnOnce(&mut C) -> T,
) -> Result<Option<T>, Frame> {
    match store.modify(key, now.at, |value| C::of_mut(value).map(f)) {
        None => Ok(None),
        Some(None) => Err(wrong_type()),
        Some(Some(out)) => Ok(Some(out)),
    }
}

/// A family's `read`, `write` and `modify`, typed to its collection `$ty`.
macro_rules! typed_access {
    ($ty:ty) => {
        /// Reads the value at `key` with `f`: `f(None)` if absent, `WRONGTYPE` for another
        /// type. Counts a hit or a miss.
        pub(crate) fn read<T>(
            store: &mut $crate::store::Store,
            key: &[u8],
            now: &$crate::cmd::Now,
            f: impl FnOnce(Option<&$ty>) -> T,
        ) -> Result<T, $crate::resp::Frame> {
            $crate::cmd::collection::read(store, key, now, f)
        }

        /// Changes the value at `key` with `f`, creating it if absent; `grow` bounds the
        /// bytes `f` adds. `WRONGTYPE` for another type, OOM if there is no room; one left
        /// empty is removed.
        pub(crate) fn write<T>(
            store: &mut $crate::store::Store,
            key: &bytes::Bytes,
            grow: usize,
            now: &$crate::cmd::Now,
            f: impl FnOnce(&mut $ty) -> T,
        ) -> Result<T, $crate::resp::Frame> {
            $crate::cmd::collection::write(store, key, grow, now, f)
        }

        /// Changes the value at `key` with `f` if it exists: `Ok(None)` if absent,
        /// `WRONGTYPE` for another type; one left empty is removed.
        pub(crate) fn modify<T>(
            store: &mut $crate::store::Store,
            key: &[u8],
            now: &$crate::cmd::Now,
            f: impl FnOnce(&mut $ty) -> T,
        ) -> Result<Option<T>, $crate::resp::Frame> {
            $crate::cmd::collection::modify(store, key, now, f)
        }
    };
}

pub(crate) use typed_access;
