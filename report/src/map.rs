//! A small map from names to values, in the order they were set, in a `Vec`, serialized
//! as a map: what a report holds per task and per await. Millions of them, each of a
//! handful of entries; keys are `SmolStr`s, names up to 23 bytes held inline.

use smol_str::SmolStr;

use serde::Serialize;
use serde::ser::SerializeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Map<V>(Vec<(SmolStr, V)>);

impl<V> Default for Map<V> {
    fn default() -> Self {
        Map(Vec::new())
    }
}

impl<V> Map<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `n` entries (a rule's members, known before they are
    /// read: one allocation instead of one per entry).
    pub fn with_capacity(n: usize) -> Self {
        Map(Vec::with_capacity(n))
    }

    /// The map of `entries`, whose keys are distinct, sorted by name (an await frame's
    /// saved values: the compiler's field order means nothing to a reader).
    pub fn from_unique(mut entries: Vec<(SmolStr, V)>) -> Self {
        entries.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        debug_assert!(entries.windows(2).all(|w| w[0].0 != w[1].0));
        Map(entries)
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|(k, _)| k == key)
    }

    /// Sets `key` to `value`, in its place if it is there, else last (a rule's members
    /// in the order the layout declares them); returns the value it replaces. A long key
    /// given as an `Arc` or a `SmolStr` is kept without copying it: the locals of a
    /// million tasks are a few names.
    pub fn insert(&mut self, key: impl Into<SmolStr>, value: V) -> Option<V> {
        let key = key.into();
        match self.position(&key) {
            Some(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            None => {
                // Exactly one more: a Vec would grow to 4, and most maps hold one or two.
                if self.0.len() == self.0.capacity() {
                    self.0.reserve_exact(1);
                }
                self.0.push((key, value));
                None
            }
        }
    }

    /// The value of `key`, set to `make()` first (last) if it has none.
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.position(key) {
            Some(i) => i,
            None => {
                self.0.reserve_exact(1);
                self.0.push((SmolStr::new(key), make()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    /// Takes `key` out of the map.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let i = self.position(key)?;
        Some(self.0.remove(i).1)
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.position(key).map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Entries in the order they were set.
    pub fn iter(&self) -> impl Iterator<Item = (&SmolStr, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &SmolStr> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
}

impl<'a, V> IntoIterator for &'a Map<V> {
    type Item = (&'a SmolStr, &'a V);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (SmolStr, V)>,
        fn(&'a (SmolStr, V)) -> (&'a SmolStr, &'a V),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<K: Into<SmolStr>, V> FromIterator<(K, V)> for Map<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = Map::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<V: Serialize> Serialize for Map<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(&**k, v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::Map;

    #[test]
    fn keeps_the_order_entries_were_set_and_replaces_by_name() {
        let mut m = Map::new();
        assert_eq!(m.insert("refs", 2), None);
        m.insert("id", 1);
        assert_eq!(m.insert("refs", 3), Some(2));
        *m.get_or_insert_with("count", || 0) += 5;
        let entries: Vec<_> = m.iter().map(|(k, v)| (&**k, *v)).collect();
        assert_eq!(entries, [("refs", 3), ("id", 1), ("count", 5)]);
        assert_eq!(m.get("id"), Some(&1));
        assert!(!m.contains_key("name"));
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"refs":3,"id":1,"count":5}"#
        );
        assert_eq!(m.remove("id"), Some(1));
        let keys: Vec<_> = m.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["refs", "count"]);
    }

    #[test]
    fn saved_values_are_sorted_by_name() {
        let m = Map::from_unique(vec![("b".into(), 1), ("a".into(), 2)]);
        let keys: Vec<_> = m.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
    }
}
