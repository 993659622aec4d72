//! Reading and changing a collection value under a key, shared by the hash,
//! list and set families

use bytes::Bytes;

use super::{Now, store_error, wrong_type};
use crate::resp::Frame;
use crate::store::{Store, Value};

/// Changes the collection at `key` with `f`, creating it from `empty` if
/// absent; `project` picks the collection out of a value of the right type.
/// `grow` bounds the bytes `f` adds. `WRONGTYPE` for another type, OOM if
/// there is no room; a collection left empty is not kept.
pub(crate) fn write<C, T>(
    store: &mut Store,
    key: &Bytes,
    grow: usize,
    now: &Now,
    empty: Value,
    project: impl Fn(&mut Value) -> Option<&mut C>,
    f: impl FnOnce(&mut C) -> T,
) -> Result<T, Frame> {
    if let Some(value) = store.peek(key, now.at)
        && value.kind() != empty.kind()
    {
        return Err(wrong_type());
    }
    store
        .reserve(key, grow, now.at)
        .map_err(|err| store_error(&err))?;
    let mut f = Some(f);
    let changed = store.modify(key, now.at, |value| {
        let f = f.take()?;
        project(value).map(f)
    });
    if let Some(Some(out)) = changed {
        return Ok(out);
    }
    let Some(f) = f else {
        // the value changed type under us, which `peek` ruled out
        return Err(wrong_type());
    };
    let mut value = empty;
    let Some(collection) = project(&mut value) else {
        return Err(wrong_type());
    };
    let out = f(collection);
    store
        .insert(key.clone(), value, None, now.at)
        .map_err(|err| store_error(&err))?;
    Ok(out)
}

/// Changes the collection at `key` with `f` if it exists: `Ok(None)` if
/// absent, `WRONGTYPE` for another type; a collection left empty is removed.
pub(crate) fn modify<C, T>(
    store: &mut Store,
    key: &[u8],
    now: &Now,
    project: impl Fn(&mut Value) -> Option<&mut C>,
    f: impl FnOnce(&mut C) -> T,
) -> Result<Option<T>, Frame> {
    match store.modify(key, now.at, |value| project(value).map(f)) {
        None => Ok(None),
        Some(None) => Err(wrong_type()),
        Some(Some(out)) => Ok(Some(out)),
    }
}
