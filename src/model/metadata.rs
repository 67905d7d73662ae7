//! Key–value metadata, in insertion order, packed in two allocations.
//!
//! Nearly every object carries metadata, and nearly all of it is a few short pairs that are written
//! once and read whole (rendered in order). A hash map of owned strings cost about 350 bytes and
//! seven heap blocks for two pairs, each block a cache line to fetch when a stored object is read
//! back; here the pairs' text is one string and their boundaries one slice (about 100 bytes, two
//! blocks, none at all when empty). Lookups walk the pairs: Stripe allows at most 50.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Key–value metadata in insertion order (a key given again keeps its place, with its new value).
/// Two are equal when they hold the same pairs, in whatever order (as maps compare).
#[derive(Clone, Default)]
pub struct Metadata {
    /// Every key followed by its value, pair after pair.
    text: Box<str>,
    /// Where each key and each value ends in `text`: `2 × pairs` offsets.
    ends: Box<[u32]>,
}

impl Metadata {
    /// No pairs.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many pairs.
    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The pairs, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            text: &self.text,
            ends: self.ends.chunks_exact(2),
            start: 0,
        }
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`: in its place if it is there, last otherwise. Returns the value it
    /// replaced. Repacks the pairs (time in proportion to them): to build many pairs at once,
    /// collect them instead.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        let mut pairs: Vec<(&str, &str)> = self.iter().collect();
        let old = match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(pair) => {
                let old = pair.1.to_string();
                pair.1 = &value;
                Some(old)
            }
            None => {
                pairs.push((&key, &value));
                None
            }
        };
        *self = Self::packed(pairs);
        old
    }

    /// Removes `key`, keeping the others in order. Returns its value.
    pub fn shift_remove(&mut self, key: &str) -> Option<String> {
        let old = self.get(key)?.to_string();
        let pairs: Vec<(&str, &str)> = self.iter().filter(|(k, _)| *k != key).collect();
        *self = Self::packed(pairs);
        Some(old)
    }

    /// Removes every pair.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// These pairs with `changes` made in order: `(key, Some(value))` sets `key` in its place (last
    /// if it is new), `(key, None)` removes it. Packs once, however many changes: an update that
    /// sets several keys would repack at every [`Metadata::insert`].
    pub fn merged<'a>(
        &'a self,
        changes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Metadata {
        let mut pairs: Vec<(&str, &str)> = self.iter().collect();
        let mut changes = changes.into_iter();
        // A few changes to a few pairs (nearly every request) are searched in place; past that,
        // an index keeps the time in proportion to the changes, whatever a body holds.
        for (k, v) in changes.by_ref() {
            match (pairs.iter().position(|(pk, _)| *pk == k), v) {
                (Some(i), Some(v)) => pairs[i].1 = v,
                (None, Some(v)) => pairs.push((k, v)),
                (Some(i), None) => {
                    pairs.remove(i);
                }
                (None, None) => {}
            }
            if pairs.len() > SEARCHED_IN_PLACE {
                break;
            }
        }
        let mut rest = changes.peekable();
        if rest.peek().is_none() {
            return Self::packed(pairs);
        }
        let mut index: indexmap::IndexMap<&str, &str> = pairs.into_iter().collect();
        for (k, v) in rest {
            match v {
                Some(v) => {
                    index.insert(k, v);
                }
                None => {
                    index.shift_remove(k);
                }
            }
        }
        Self::packed(index)
    }

    /// Packs `pairs`, whose keys are distinct, in their order.
    fn packed<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut text = String::new();
        let mut ends = Vec::new();
        for (k, v) in pairs {
            text.push_str(k);
            ends.push(offset(&text));
            text.push_str(v);
            ends.push(offset(&text));
        }
        Metadata {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }
}

/// Most pairs [`Metadata::merged`] searches one by one before it builds an index.
const SEARCHED_IN_PLACE: usize = 64;

/// The length of `text` as an offset. Metadata is bounded far below 4 GiB (a request body is), so
/// an offset always fits; saturating keeps a misuse from wrapping.
fn offset(text: &str) -> u32 {
    u32::try_from(text.len()).unwrap_or(u32::MAX)
}

/// The pairs of a [`Metadata`], in order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    text: &'a str,
    /// The ends of the pairs not yet seen: a key's, then its value's.
    ends: std::slice::ChunksExact<'a, u32>,
    /// Where the next key starts.
    start: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let (key_end, value_end) = match self.ends.next()? {
            [k, v] => (*k as usize, *v as usize),
            _ => return None,
        };
        let key = &self.text[self.start..key_end];
        let value = &self.text[key_end..value_end];
        self.start = value_end;
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ends.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Metadata {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Metadata {
    /// The pairs in order; a key given again keeps its first place, with its last value. In time
    /// proportional to the pairs, however many (a document or a body may hold any number; the
    /// APIs' limits are checked by their facades).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut unique: indexmap::IndexMap<String, String> = indexmap::IndexMap::new();
        for (k, v) in pairs {
            unique.insert(k.into(), v.into());
        }
        Self::packed(unique.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl PartialEq for Metadata {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for Metadata {}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Metadata {
    /// A map, pairs in order.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Metadata {
    /// A map of strings, pairs in order (a key given twice keeps its first place and last value).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                let mut pairs: Vec<(String, String)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    pairs.push((k, v));
                }
                Ok(pairs.into_iter().collect())
            }
        }
        d.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(m: &Metadata) -> Vec<(String, String)> {
        m.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn keeps_pairs_in_order_as_an_index_map_does() {
        let mut ours = Metadata::new();
        let mut theirs = indexmap::IndexMap::<String, String>::new();
        let steps: &[(&str, Option<&str>)] = &[
            ("b", Some("1")),
            ("a", Some("")),
            ("", Some("empty key")),
            ("é✓", Some("ünïcödé")),
            ("b", Some("2")),
            ("a", None),
            ("missing", None),
            ("c", Some("3")),
            ("a", Some("back, last")),
        ];
        for (k, v) in steps {
            match v {
                Some(v) => assert_eq!(
                    ours.insert(k.to_string(), v.to_string()),
                    theirs.insert(k.to_string(), v.to_string())
                ),
                None => assert_eq!(ours.shift_remove(k), theirs.shift_remove(*k)),
            }
            let expected: Vec<(String, String)> =
                theirs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(pairs(&ours), expected);
            assert_eq!(ours.len(), theirs.len());
            for (k, v) in &theirs {
                assert_eq!(ours.get(k), Some(v.as_str()));
            }
        }
        assert_eq!(ours.get("missing"), None);
        assert!(!ours.contains_key("missing"));
        ours.clear();
        assert!(ours.is_empty());
        assert_eq!(ours, Metadata::new());
    }

    #[test]
    fn merging_changes_at_once_is_making_them_one_by_one() {
        let base: Metadata = [("a", "1"), ("b", "2"), ("c", "3")].into_iter().collect();
        // Small (searched in place) and large (past the index's threshold) change lists.
        for extra in [0, 200] {
            let keys: Vec<String> = (0..extra).map(|i| format!("k{i}")).collect();
            let mut changes: Vec<(&str, Option<&str>)> = vec![
                ("b", Some("two")),
                ("d", Some("4")),
                ("a", None),
                ("missing", None),
            ];
            changes.extend(keys.iter().map(|k| (k.as_str(), Some("x"))));
            changes.extend([("k1", None), ("a", Some("back, last")), ("c", None)]);
            let mut one_by_one = base.clone();
            for (k, v) in &changes {
                match v {
                    Some(v) => {
                        one_by_one.insert(k.to_string(), v.to_string());
                    }
                    None => {
                        one_by_one.shift_remove(k);
                    }
                }
            }
            let merged = base.merged(changes.iter().copied());
            assert_eq!(
                pairs(&merged),
                pairs(&one_by_one),
                "with {extra} extra keys"
            );
        }
        assert_eq!(base.merged([]), base);
    }

    #[test]
    fn reads_and_writes_a_map_in_order() {
        let m: Metadata = [("z", "1"), ("a", "2\"\n")].into_iter().collect();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"z":"1","a":"2\"\n"}"#);
        let back: Metadata = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let twice: Metadata = serde_json::from_str(r#"{"a":"1","b":"2","a":"3"}"#).unwrap();
        assert_eq!(
            pairs(&twice),
            vec![("a".into(), "3".into()), ("b".into(), "2".into())]
        );
        assert!(serde_json::from_str::<Metadata>(r#"{"a":1}"#).is_err());
        assert_eq!(format!("{m:?}"), r#"{"z": "1", "a": "2\"\n"}"#);
    }

    #[test]
    fn many_pairs_are_gathered_in_one_pass() {
        let n = 100_000;
        let m: Metadata = (0..n)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .chain([("k0".to_string(), "again".to_string())])
            .collect();
        assert_eq!(m.len(), n);
        assert_eq!(m.get("k0"), Some("again"));
        assert_eq!(m.iter().nth(n - 1), Some(("k99999", "v99999")));
    }

    #[test]
    fn equal_when_the_pairs_are_whatever_their_order() {
        let ab: Metadata = [("a", "1"), ("b", "2")].into_iter().collect();
        let ba: Metadata = [("b", "2"), ("a", "1")].into_iter().collect();
        assert_eq!(ab, ba);
        let other: Metadata = [("a", "1"), ("b", "3")].into_iter().collect();
        assert_ne!(ab, other);
        let fewer: Metadata = [("a", "1")].into_iter().collect();
        assert_ne!(ab, fewer);
        assert_ne!(fewer, ab);
        // The boundaries matter, not just the text: "ab" + "" is not "a" + "b".
        let split: Metadata = [("ab", "")].into_iter().collect();
        let joined: Metadata = [("a", "b")].into_iter().collect();
        assert_ne!(split, joined);
    }
}
