//! The values a key can hold: a string, a hash, a list or a set
//!
//! Each collection keeps its own weight as it changes, so the store's byte
//! accounting stays exact at O(1) per write whatever the collection's size.
//! A collection's fields are private: every change goes through a method
//! that updates the weight.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;

/// What one member, field or item of a collection weighs beyond its own
/// bytes: the container's share of it (two `Bytes` handles and the table or
/// ring slot), so a hash of many empty fields is not weightless.
pub const MEMBER_OVERHEAD: usize = 32;

/// `bytes` in an allocation of its own
///
/// What a client sent arrives as slices of the connection's read buffer; kept as they are, one
/// stored byte could keep a whole read buffer alive, far past what the store counts. So the
/// store keeps copies, as Redis does: its byte bound is then what it holds.
pub(crate) fn detached(bytes: Bytes) -> Bytes {
    Bytes::copy_from_slice(&bytes)
}

/// A key's type, as `TYPE` names it and `SCAN ... TYPE` filters by it
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// `string`
    String,
    /// `hash`
    Hash,
    /// `list`
    List,
    /// `set`
    Set,
}

impl Kind {
    /// The name `TYPE` replies with
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Hash => "hash",
            Self::List => "list",
            Self::Set => "set",
        }
    }

    /// The kind a `TYPE` argument names (case-insensitive), if any
    pub fn from_name(name: &[u8]) -> Option<Self> {
        [Self::String, Self::Hash, Self::List, Self::Set]
            .into_iter()
            .find(|kind| kind.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// The value held under a key
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string (bytes; integers and floats are strings too)
    Str(Bytes),
    /// A map of fields to values
    Hash(Hash),
    /// A sequence, pushed and popped at both ends
    List(List),
    /// A set of members
    Set(Set),
}

impl Value {
    /// The bytes it counts for in the store, beside its key's length
    pub fn weight(&self) -> usize {
        match self {
            Self::Str(bytes) => bytes.len(),
            Self::Hash(hash) => hash.weight,
            Self::List(list) => list.weight,
            Self::Set(set) => set.weight,
        }
    }

    /// Its weight counted from its contents, O(size): what [`Value::weight`]
    /// keeps track of, for checks
    pub fn recount(&self) -> usize {
        let members = |lens: &mut dyn Iterator<Item = usize>| {
            lens.map(|len| len + MEMBER_OVERHEAD).sum::<usize>()
        };
        match self {
            Self::Str(bytes) => bytes.len(),
            Self::Hash(hash) => members(&mut hash.map.iter().map(|(f, v)| f.len() + v.len())),
            Self::List(list) => members(&mut list.items.iter().map(Bytes::len)),
            Self::Set(set) => members(&mut set.members.iter().map(Bytes::len)),
        }
    }

    /// Its type
    pub fn kind(&self) -> Kind {
        match self {
            Self::Str(_) => Kind::String,
            Self::Hash(_) => Kind::Hash,
            Self::List(_) => Kind::List,
            Self::Set(_) => Kind::Set,
        }
    }

    /// Whether it is a collection left empty, which Redis never keeps: the
    /// store removes the key
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Self::Str(_) => false,
            Self::Hash(hash) => hash.map.is_empty(),
            Self::List(list) => list.items.is_empty(),
            Self::Set(set) => set.members.is_empty(),
        }
    }
}

/// A hash: fields mapped to values
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hash {
    map: HashMap<Bytes, Bytes>,
    weight: usize,
}

impl Hash {
    /// Fields held
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds no field
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value of `field`
    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        self.map.get(field)
    }

    /// Sets `field` to `value`; whether the field is new
    pub fn insert(&mut self, field: Bytes, value: Bytes) -> bool {
        let (field_len, value_len) = (field.len(), value.len());
        match self.map.insert(detached(field), detached(value)) {
            Some(old) => {
                self.weight = self.weight + value_len - old.len();
                false
            }
            None => {
                self.weight += field_len + value_len + MEMBER_OVERHEAD;
                true
            }
        }
    }

    /// Removes `field`; whether it was there
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.map.remove_entry(field) {
            Some((field, value)) => {
                self.weight -= field.len() + value.len() + MEMBER_OVERHEAD;
                true
            }
            None => false,
        }
    }

    /// Every field and value, in no particular order
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.map.iter()
    }
}

/// A list of items
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct List {
    items: VecDeque<Bytes>,
    weight: usize,
}

impl List {
    /// Items held
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds no item
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds `item` at the head
    pub fn push_front(&mut self, item: Bytes) {
        self.weight += item.len() + MEMBER_OVERHEAD;
        self.items.push_front(detached(item));
    }

    /// Adds `item` at the tail
    pub fn push_back(&mut self, item: Bytes) {
        self.weight += item.len() + MEMBER_OVERHEAD;
        self.items.push_back(detached(item));
    }

    /// Removes the head item
    pub fn pop_front(&mut self) -> Option<Bytes> {
        let item = self.items.pop_front()?;
        self.weight -= item.len() + MEMBER_OVERHEAD;
        Some(item)
    }

    /// Removes the tail item
    pub fn pop_back(&mut self) -> Option<Bytes> {
        let item = self.items.pop_back()?;
        self.weight -= item.len() + MEMBER_OVERHEAD;
        Some(item)
    }

    /// The items from `start` to `end` inclusive, 0-based from the head
    /// (clamped to the list)
    pub fn range(&self, start: usize, end: usize) -> impl Iterator<Item = &Bytes> {
        // `VecDeque::range` starts in O(1), where skipping walks the items
        let end = end.saturating_add(1).min(self.items.len());
        self.items.range(start.min(end)..end)
    }
}

/// A set of members
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Set {
    members: HashSet<Bytes>,
    weight: usize,
}

impl Set {
    /// Members held
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether it holds no member
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether `member` is in it
    pub fn contains(&self, member: &[u8]) -> bool {
        self.members.contains(member)
    }

    /// Adds `member`; whether it is new
    pub fn insert(&mut self, member: Bytes) -> bool {
        if self.members.contains(&member[..]) {
            return false;
        }
        self.weight += member.len() + MEMBER_OVERHEAD;
        self.members.insert(detached(member))
    }

    /// Removes `member`; whether it was there
    pub fn remove(&mut self, member: &[u8]) -> bool {
        let removed = self.members.remove(member);
        if removed {
            self.weight -= member.len() + MEMBER_OVERHEAD;
        }
        removed
    }

    /// Every member, in no particular order
    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.members.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn weights_follow_every_change() {
        let mut hash = Hash::default();
        assert!(hash.insert(b("f"), b("abc")));
        assert_eq!(hash.weight, 1 + 3 + MEMBER_OVERHEAD);
        assert!(!hash.insert(b("f"), b("a")));
        assert_eq!(hash.weight, 1 + 1 + MEMBER_OVERHEAD);
        assert!(hash.remove(b"f"));
        assert!(!hash.remove(b"f"));
        assert_eq!(hash.weight, 0);

        let mut list = List::default();
        list.push_back(b("ab"));
        list.push_front(b("c"));
        assert_eq!(list.weight, 3 + 2 * MEMBER_OVERHEAD);
        let all: Vec<_> = list.range(0, usize::MAX).collect();
        assert_eq!(all, [&b("c"), &b("ab")]);
        assert_eq!(list.range(1, 5).collect::<Vec<_>>(), [&b("ab")]);
        assert_eq!(list.range(1, 0).count(), 0);
        assert_eq!(list.range(7, 9).count(), 0);
        assert_eq!(list.pop_back(), Some(b("ab")));
        assert_eq!(list.pop_front(), Some(b("c")));
        assert_eq!(list.weight, 0);

        let mut set = Set::default();
        assert!(set.insert(b("m")));
        assert!(!set.insert(b("m")));
        assert_eq!(set.weight, 1 + MEMBER_OVERHEAD);
        assert!(set.remove(b"m"));
        assert_eq!(set.weight, 0);
        assert!(Value::Set(set).is_empty_collection());
    }
}
