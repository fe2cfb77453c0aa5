//! Sorted text-to-text maps in one buffer, for the crawl state's tables
//! that grow with the registry (ETags by gist, imports by digest, search
//! fingerprints by document). A `BTreeMap<String, String>` spends about
//! 100 bytes a entry on two allocations and a node beside the text; here an
//! entry is its text plus 12 bytes, and 5 to 10 more for a hash index:
//! a lookup (one per gist per build) costs one or two cache misses, where
//! a binary search over a million keys spread through the text cost forty.
//! They serialise as the JSON objects they replace.

use std::fmt;
use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;

use rayon::slice::ParallelSliceMut;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod read;

/// A map from text to text, sorted by key.
#[derive(Clone, Default)]
pub struct TextMap {
    text: String,
    /// (start of the key in `text`, key length, value length), by key; the
    /// value follows its key.
    entries: Vec<(u32, u32, u32)>,
    /// Positions in `entries`, by the hash of their key.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

/// Equal entries, whatever else the buffer holds.
impl PartialEq for TextMap {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for TextMap {}

impl fmt::Debug for TextMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl TextMap {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes of text its keys and values take together.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Reads a map from JSON that is `json_len` bytes long (its text,
    /// reserved up front, is never longer).
    pub fn from_json(reader: impl std::io::Read, json_len: usize) -> serde_json::Result<Self> {
        Ok(read::ReservedRead::new(false, json_len)
            .read(reader)?
            .finish())
    }

    fn key(&self, &(start, key_len, _): &(u32, u32, u32)) -> &str {
        &self.text[start as usize..(start + key_len) as usize]
    }

    fn value(&self, &(start, key_len, value_len): &(u32, u32, u32)) -> &str {
        let from = (start + key_len) as usize;
        &self.text[from..from + value_len as usize]
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let hash = self.hasher.hash_one(key);
        let &i = (self.index).find(hash, |&i| self.key(&self.entries[i as usize]) == key)?;
        Some(self.value(&self.entries[i as usize]))
    }

    /// Indexes the (sorted, distinct) entries by the hash of their key.
    fn build_index(&mut self) {
        let mut index = HashTable::with_capacity(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            let hash = self.hasher.hash_one(self.key(e));
            // Keys are distinct and the table never grows past its capacity:
            // nothing needs rehashing.
            index.insert_unique(hash, i as u32, |&j| {
                self.hasher.hash_one(self.key(&self.entries[j as usize]))
            });
        }
        self.index = index;
    }

    /// Every entry, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|e| (self.key(e), self.value(e)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| self.key(e))
    }
}

/// Builds a [`TextMap`] from entries in any order; a key given twice keeps
/// its last value, as inserting into a map would.
#[derive(Default)]
pub struct TextMapBuilder(TextMap);

impl TextMapBuilder {
    /// A builder whose text has room for `text_bytes` (keys and values
    /// together) and `entries` entries: a map of a million grown by
    /// doubling touches about twice its size in fresh memory.
    pub fn with_capacity(text_bytes: usize, entries: usize) -> Self {
        let mut b = Self::default();
        // Only a hint (a file's header may give it): without the room, the
        // map grows as it is filled.
        let _ = b.0.text.try_reserve(text_bytes);
        let _ = b.0.entries.try_reserve(entries);
        b
    }

    pub fn insert(&mut self, key: &str, value: &str) {
        let start = self.0.text.len();
        self.0.text.push_str(key);
        self.0.text.push_str(value);
        // Past 4 GiB of text offsets would wrap: no registry comes close,
        // and a build that did would rather stop than corrupt its state.
        (self.end_entry(start, start + key.len())).expect("a text map under 4 GiB");
    }

    /// Records the entry whose key is the text from `start` to `key_end`
    /// and whose value runs from there to the end of the text; `None` when
    /// offsets would pass 4 GiB.
    fn end_entry(&mut self, start: usize, key_end: usize) -> Option<()> {
        let map = &mut self.0;
        let entry = (
            u32::try_from(start).ok()?,
            u32::try_from(key_end - start).ok()?,
            u32::try_from(map.text.len() - key_end).ok()?,
        );
        u32::try_from(map.text.len()).ok()?;
        map.entries.push(entry);
        Some(())
    }

    pub fn finish(self) -> TextMap {
        let mut map = self.0;
        let mut entries = std::mem::take(&mut map.entries);
        // Of equal keys, the last inserted ends last, as a stable sort
        // would leave them (without a merge sort's buffer and passes): a
        // later entry starts further on in the text, or at the same place
        // after an empty one, and is then no shorter. On all cores: the
        // crawl's maps come in job order, a million keys unsorted.
        entries.par_sort_unstable_by(|a, b| {
            let order = |e: &(u32, u32, u32)| (e.0, e.1 + e.2);
            map.key(a).cmp(map.key(b)).then(order(a).cmp(&order(b)))
        });
        let mut kept: Vec<(u32, u32, u32)> = Vec::with_capacity(entries.len());
        for e in entries {
            match kept.last() {
                Some(last) if map.key(last) == map.key(&e) => {
                    *kept.last_mut().expect("checked") = e;
                }
                _ => kept.push(e),
            }
        }
        map.entries = kept;
        if map.text.len() > map.text.capacity() / 2 {
            map.text.shrink_to_fit();
        }
        map.build_index();
        map
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for TextMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut b = TextMapBuilder::default();
        for (k, v) in iter {
            b.insert(k.as_ref(), v.as_ref());
        }
        b.finish()
    }
}

impl Serialize for TextMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TextMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let read = d.deserialize_map(read::ReservedRead::new(false, 0))?;
        Ok(read.finish())
    }
}

/// A map from text to lists of text (each item free of newlines), held as
/// a [`TextMap`] of newline-joined lists; it serialises with real lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextListMap(TextMap);

/// Builds a [`TextListMap`]; see [`TextMapBuilder`].
#[derive(Default)]
pub struct TextListMapBuilder(TextMapBuilder);

impl TextListMapBuilder {
    /// See [`TextMapBuilder::with_capacity`].
    pub fn with_capacity(text_bytes: usize, entries: usize) -> Self {
        Self(TextMapBuilder::with_capacity(text_bytes, entries))
    }

    pub fn insert<S: AsRef<str>>(&mut self, key: &str, items: &[S]) {
        let joined: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
        self.0.insert(key, &joined.join("\n"));
    }

    pub fn finish(self) -> TextListMap {
        TextListMap(self.0.finish())
    }
}

impl TextListMap {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The bytes of text its keys and joined lists take together.
    pub fn text_len(&self) -> usize {
        self.0.text_len()
    }

    /// Reads a map from JSON that is `json_len` bytes long; see [`TextMap::from_json`].
    pub fn from_json(reader: impl std::io::Read, json_len: usize) -> serde_json::Result<Self> {
        let read = read::ReservedRead::new(true, json_len).read(reader)?;
        Ok(TextListMap(read.finish()))
    }

    /// The list under `key`, if any.
    pub fn get(&self, key: &str) -> Option<impl Iterator<Item = &str>> {
        Some(items(self.0.get(key)?))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = &str>)> {
        self.0.iter().map(|(k, v)| (k, items(v)))
    }
}

fn items(joined: &str) -> impl Iterator<Item = &str> {
    joined.split('\n').filter(|s| !s.is_empty())
}

impl Serialize for TextListMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, &v.collect::<Vec<_>>())?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TextListMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let read = d.deserialize_map(read::ReservedRead::new(true, 0))?;
        Ok(TextListMap(read.finish()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_text_map_reads_and_writes_as_the_map_it_replaces() {
        let mut map = BTreeMap::new();
        let mut b = TextMapBuilder::default();
        for i in (0..500u32).rev() {
            let (k, v) = (format!("k{:x}", i * 7919 % 1000), format!("v{i}"));
            map.insert(k.clone(), v.clone());
            b.insert(&k, &v);
        }
        b.insert("", "empty key");
        map.insert(String::new(), "empty key".into());
        let t = b.finish();
        assert_eq!(t.len(), map.len());
        for (k, v) in &map {
            assert_eq!(t.get(k), Some(v.as_str()), "{k}");
        }
        assert_eq!(t.get("nope"), None);
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), json);
        assert_eq!(serde_json::from_str::<TextMap>(&json).unwrap(), t);
        // The last value of a repeated key wins.
        let t: TextMap = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        assert_eq!((t.get("a"), t.len()), (Some("3"), 2));
        // An empty entry leaves the next one starting where it did.
        for pairs in [[("", ""), ("", "v")], [("", "v"), ("", "")]] {
            let t: TextMap = pairs.into_iter().collect();
            assert_eq!(t.get(""), Some(pairs[1].1));
        }
        // Also among many repeats, sorted on all cores.
        let t: TextMap = (0..100_000u32)
            .map(|i| (format!("k{}", i * 7919 % 997), i.to_string()))
            .collect();
        let mut last = BTreeMap::new();
        for i in 0..100_000u32 {
            last.insert(format!("k{}", i * 7919 % 997), i.to_string());
        }
        assert_eq!(t.len(), last.len());
        assert!(last.iter().all(|(k, v)| t.get(k) == Some(v.as_str())));
    }

    #[test]
    fn a_text_list_map_keeps_each_list() {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        map.insert("d1".into(), vec!["@a/b".into(), "@c/d@1234".into()]);
        map.insert("d0".into(), vec![]);
        map.insert("d2".into(), vec!["@e/f".into()]);
        let json = serde_json::to_string(&map).unwrap();
        let t: TextListMap = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), json);
        assert_eq!(
            t.get("d1").unwrap().collect::<Vec<_>>(),
            ["@a/b", "@c/d@1234"]
        );
        assert_eq!(t.get("d0").unwrap().count(), 0);
        assert!(t.get("d9").is_none());
        // Read from a stream too (strings lent, not borrowed from the input).
        let streamed: TextListMap = serde_json::from_reader(json.as_bytes()).unwrap();
        assert_eq!(streamed, t);
    }

    #[test]
    fn values_of_the_wrong_shape_are_errors() {
        for json in [
            r#"{"a":1}"#,
            r#"{"a":["x"]}"#,
            r#"{"a":"x","b":null}"#,
            r#"["a"]"#,
        ] {
            assert!(serde_json::from_str::<TextMap>(json).is_err(), "{json}");
        }
        for json in [r#"{"a":"x"}"#, r#"{"a":["x",2]}"#, r#"{"a":[["x"]]}"#] {
            assert!(serde_json::from_str::<TextListMap>(json).is_err(), "{json}");
        }
        let streamed: TextMap = serde_json::from_reader(&br#"{"k\n":"v\u00e9"}"#[..]).unwrap();
        assert_eq!(streamed.get("k\n"), Some("v\u{e9}"));
        // Sized reads: the same maps whatever length they are told, and
        // nothing may follow the map.
        let json = r#"{"b":"2","a":"1"}"#;
        for len in [0, 3, json.len(), 1 << 20] {
            let sized = TextMap::from_json(json.as_bytes(), len).unwrap();
            assert_eq!(sized, serde_json::from_str::<TextMap>(json).unwrap());
        }
        let lists = r#"{"d":["x","y"],"c":[]}"#;
        let sized = TextListMap::from_json(lists.as_bytes(), lists.len()).unwrap();
        assert_eq!(sized, serde_json::from_str::<TextListMap>(lists).unwrap());
        assert!(TextMap::from_json(&br#"{"a":"1"} {}"#[..], 9).is_err());
        assert!(TextListMap::from_json(&br#"{"a":"1"}"#[..], 9).is_err());
    }
}
