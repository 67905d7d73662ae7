//! Identifiers.
//!
//! Every object gets one 128-bit [`Key`] laid out like a ULID: 48 bits of milliseconds, then a 32-bit
//! salt that is fixed per tenant, then a 48-bit counter. Keys therefore sort in creation order within a
//! tenant, which is what lets every list be an ordered index (`BTreeMap<Key, _>`) instead of a sort.
//!
//! A key is rendered as 26 characters of Crockford base32 behind each API's prefix, so one key has
//! several spellings (`cus_<k>` for Stripe, `cust_<k>` natively) and any of them parses back to the key
//! without a lookup table.

use rand::RngCore;

/// The internal identity of every stored object.
pub type Key = u128;

/// Crockford base32. Its characters are in ASCII order, so fixed-width strings sort like the numbers.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Length of an encoded key.
pub const ENCODED_LEN: usize = 26;

/// Each byte's value as a Crockford base32 digit of [`ALPHABET`], or [`NOT_A_DIGIT`]: decoding
/// looks a character up once instead of searching the alphabet for it.
static DIGITS: [u8; 256] = {
    let mut table = [NOT_A_DIGIT; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// A byte that is not in [`ALPHABET`].
const NOT_A_DIGIT: u8 = 0xFF;

/// The 26 Crockford base32 characters of a key.
fn encode_bytes(key: Key) -> [u8; ENCODED_LEN] {
    let mut out = [0u8; ENCODED_LEN];
    let mut v = key;
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    out
}

/// Appends a key's 26 characters to `s`.
fn push_encoded(s: &mut String, key: Key) {
    // Every byte comes from ALPHABET, which is ASCII, so the check cannot fail; it costs less than
    // pushing the characters one by one.
    let encoded = encode_bytes(key);
    s.push_str(std::str::from_utf8(&encoded).unwrap_or_default());
}

/// Renders a key as 26 Crockford base32 characters.
pub fn encode(key: Key) -> String {
    let mut s = String::with_capacity(ENCODED_LEN);
    push_encoded(&mut s, key);
    s
}

/// Parses the 26-character form back into a key. Anything else (wrong length, foreign characters,
/// overflow) is simply "no such object", never an error of its own.
pub fn decode(s: &str) -> Option<Key> {
    let bytes = s.as_bytes();
    if bytes.len() != ENCODED_LEN || bytes[0] > b'7' {
        return None;
    }
    let mut v: u128 = 0;
    for &b in bytes {
        let d = DIGITS[usize::from(b)];
        if d == NOT_A_DIGIT {
            return None;
        }
        v = (v << 5) | u128::from(d);
    }
    Some(v)
}

/// `prefix` followed by the key's 26 characters: how either API spells an id.
pub fn render(prefix: &str, key: Key) -> String {
    let mut s = String::with_capacity(prefix.len() + ENCODED_LEN);
    s.push_str(prefix);
    push_encoded(&mut s, key);
    s
}

/// An id as [`render`] spells it, serialized from a buffer on the stack rather than a `String` of
/// its own: an answer shows several ids, and each `String` was an allocation made only to be
/// copied into the answer and freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdText {
    prefix: &'static str,
    key: Key,
}

/// `prefix` followed by the key's 26 characters, to serialize ([`IdText`]).
pub fn text_of(prefix: &'static str, key: Key) -> IdText {
    IdText { prefix, key }
}

impl serde::Serialize for IdText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Every prefix is a few bytes; a longer one would take the `String` path.
        const ROOM: usize = 48;
        let prefix = self.prefix.as_bytes();
        let Some(rest) = ROOM.checked_sub(prefix.len() + ENCODED_LEN) else {
            return s.serialize_str(&render(self.prefix, self.key));
        };
        let mut buf = [0u8; ROOM];
        buf[..prefix.len()].copy_from_slice(prefix);
        buf[prefix.len()..ROOM - rest].copy_from_slice(&encode_bytes(self.key));
        // The prefix is text and the key's characters are ASCII.
        s.serialize_str(std::str::from_utf8(&buf[..ROOM - rest]).unwrap_or_default())
    }
}

/// Splits `prefix` off `id` and decodes the rest.
pub fn parse(id: &str, prefix: &str) -> Option<Key> {
    id.strip_prefix(prefix).and_then(decode)
}

/// Keys in serialized documents: their 26-character encoding ([`encode`]), as field adapters for
/// `#[serde(with = "…")]`. Only the encoding itself is accepted back: no prefix, no other length.
pub mod text {
    use super::{decode, encode_bytes, Key};
    use serde::de::{Deserializer, Error, Visitor};
    use serde::ser::Serializer;
    use serde::{Deserialize, Serialize};

    /// One key as its text; what the adapters below read and write.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct KeyText(pub Key);

    impl Serialize for KeyText {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            // From the stack: every byte is ASCII, so the text is always valid.
            s.serialize_str(std::str::from_utf8(&encode_bytes(self.0)).unwrap_or_default())
        }
    }

    impl<'de> Deserialize<'de> for KeyText {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Text;
            impl Visitor<'_> for Text {
                type Value = KeyText;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a key: 26 characters of Crockford base32")
                }
                fn visit_str<E: Error>(self, v: &str) -> Result<KeyText, E> {
                    decode(v).map(KeyText).ok_or_else(|| {
                        E::custom(format!(
                            "invalid key {v:?}: a key is 26 characters of Crockford base32 (0-9, A-Z without I, L, O, U), at most 7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
                        ))
                    })
                }
            }
            d.deserialize_str(Text)
        }
    }

    /// `Key`.
    pub fn serialize<S: Serializer>(k: &Key, s: S) -> Result<S::Ok, S::Error> {
        KeyText(*k).serialize(s)
    }

    /// `Key`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        KeyText::deserialize(d).map(|k| k.0)
    }

    /// `Option<Key>`: a key or null.
    pub mod opt {
        use super::*;

        /// Writes the key or null.
        pub fn serialize<S: Serializer>(k: &Option<Key>, s: S) -> Result<S::Ok, S::Error> {
            k.map(KeyText).serialize(s)
        }

        /// Reads a key or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Key>, D::Error> {
            Option::<KeyText>::deserialize(d).map(|k| k.map(|k| k.0))
        }
    }

    /// `Vec<Key>`: a list of keys.
    pub mod list {
        use super::*;

        /// Writes the keys in order.
        pub fn serialize<S: Serializer>(k: &[Key], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(k.iter().map(|k| KeyText(*k)))
        }

        /// Reads the keys in order.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Key>, D::Error> {
            Vec::<KeyText>::deserialize(d).map(|v| v.into_iter().map(|k| k.0).collect())
        }
    }

    /// `Option<(Key, Key)>`: a pair of keys or null.
    pub mod opt_pair {
        use super::*;

        /// Writes `[a, b]` or null.
        pub fn serialize<S: Serializer>(k: &Option<(Key, Key)>, s: S) -> Result<S::Ok, S::Error> {
            k.map(|(a, b)| (KeyText(a), KeyText(b))).serialize(s)
        }

        /// Reads `[a, b]` or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<(Key, Key)>, D::Error> {
            Option::<(KeyText, KeyText)>::deserialize(d).map(|k| k.map(|(a, b)| (a.0, b.0)))
        }
    }

    /// `Vec<(Key, i64)>`: a list of `[key, amount]` pairs.
    pub mod amounts {
        use super::*;

        /// Writes the pairs in order.
        pub fn serialize<S: Serializer>(k: &[(Key, i64)], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(k.iter().map(|&(k, a)| (KeyText(k), a)))
        }

        /// Reads the pairs in order.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Key, i64)>, D::Error> {
            Vec::<(KeyText, i64)>::deserialize(d)
                .map(|v| v.into_iter().map(|(k, a)| (k.0, a)).collect())
        }
    }
}

/// Hands out keys for one tenant.
#[derive(Debug, Clone)]
pub struct IdGen {
    last_ms: u64,
    counter: u64,
    salt: u32,
    seeded: bool,
}

/// The fixed millisecond stamp used for every key when ids are seeded (2025-01-01T00:00:00Z), so that
/// seeded ids look like real ones and do not depend on the wall clock.
const SEEDED_MS: u64 = 1_735_689_600_000;

impl IdGen {
    /// A generator for one tenant. With `seed`, the ids depend only on the seed, the tenant name and the
    /// order of creation; without it, the salt is random.
    pub fn new(seed: Option<u64>, tenant: &str) -> Self {
        let (salt, seeded) = match seed {
            Some(seed) => (fnv1a32(seed, tenant), true),
            None => (crate::tape::word() as u32, false),
        };
        IdGen {
            last_ms: 0,
            counter: 0,
            salt,
            seeded,
        }
    }

    /// The generator of a world named `tenant`, or of what keeps ids beside it: seeded when `seed`
    /// is given ([`IdGen::new`]), else salted by the store's `salt` when it has one
    /// ([`IdGen::salted`]), else salted by a random draw.
    pub fn of(seed: Option<u64>, salt: Option<u64>, tenant: &str) -> Self {
        match (seed, salt) {
            (None, Some(salt)) => IdGen::salted(salt, tenant),
            _ => IdGen::new(seed, tenant),
        }
    }

    /// A generator for one tenant of a store whose worlds are journaled (`--data-dir`): its salt
    /// comes from the store's own `salt` and the tenant's name rather than a random draw, so that
    /// replaying the journal makes the same world whichever request's record comes first. (The
    /// request that made a world is not always the first whose record is replayed: two requests
    /// may reach a new world at once, and the other one take its lock first.)
    pub fn salted(salt: u64, tenant: &str) -> Self {
        IdGen {
            last_ms: 0,
            counter: 0,
            salt: fnv1a32(salt, tenant),
            seeded: false,
        }
    }

    /// The next key. `now_ms` is the wall clock; it never makes keys go backwards.
    pub fn next(&mut self, now_ms: u64) -> Key {
        let ms = if self.seeded {
            SEEDED_MS
        } else {
            self.last_ms.max(now_ms) & ((1 << 48) - 1)
        };
        self.last_ms = ms;
        self.counter = (self.counter + 1) & ((1 << 48) - 1);
        ((ms as u128) << 80) | ((self.salt as u128) << 48) | self.counter as u128
    }
}

/// What an [`IdGen`] has handed out, so that a world written out and read back goes on with the
/// same sequence: the next key it makes is later than every key made before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdState {
    /// The millisecond stamp of the last key.
    pub last_ms: u64,
    /// The counter of the last key (48 bits).
    pub counter: u64,
    /// The salt every key of the world carries.
    pub salt: u32,
    /// Whether keys are deterministic (`--seed`): their stamp is fixed.
    pub seeded: bool,
}

/// The largest millisecond stamp or counter a key can hold (48 bits).
pub const MAX_48: u64 = (1 << 48) - 1;

impl IdGen {
    /// Where the generator stands.
    pub fn state(&self) -> IdState {
        IdState {
            last_ms: self.last_ms,
            counter: self.counter,
            salt: self.salt,
            seeded: self.seeded,
        }
    }

    /// A generator that goes on from `state`; `None` when its stamp or counter does not fit in a
    /// key's 48 bits.
    pub fn from_state(state: IdState) -> Option<IdGen> {
        (state.last_ms <= MAX_48 && state.counter <= MAX_48).then_some(IdGen {
            last_ms: state.last_ms,
            counter: state.counter,
            salt: state.salt,
            seeded: state.seeded,
        })
    }

    /// The key made last (zero before the first): every key made after it is greater, as long
    /// as the counter does not wrap.
    pub fn last(&self) -> Key {
        ((self.last_ms as u128) << 80) | ((self.salt as u128) << 48) | self.counter as u128
    }
}

fn fnv1a32(seed: u64, text: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in seed.to_le_bytes().iter().chain(text.as_bytes()) {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// FNV-1a (64 bits) of `bytes`, starting from `seed`: the standard offset basis is
/// `0xcbf2_9ce4_8422_2325`, and another seed gives a second, independent hash of the same bytes.
pub fn fnv1a64(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A random id such as `req_7bXw0PqLm2aZ4c` (request ids and similar throwaway names).
pub fn random_id(prefix: &str, len: usize) -> String {
    crate::tape::name(|| fresh_random_id(prefix, len))
}

fn fresh_random_id(prefix: &str, len: usize) -> String {
    const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let mut s = String::with_capacity(prefix.len() + len);
    s.push_str(prefix);
    // Six random bits a character, the two values past the alphabet drawn again: exactly uniform,
    // and one 64-bit draw for about ten characters. Every request names itself with one of these,
    // and a range sample per character was about 1 % of a request's instructions.
    let (mut bits, mut left) = (0u64, 0u32);
    let mut made = 0;
    while made < len {
        if left < 6 {
            (bits, left) = (rng.next_u64(), 64);
        }
        let six = (bits & 63) as usize;
        (bits, left) = (bits >> 6, left - 6);
        if let Some(&c) = B62.get(six) {
            s.push(c as char);
            made += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_text_serializes_as_the_id_renders() {
        let long: &'static str = "a_prefix_longer_than_any_the_apis_use_";
        for prefix in ["", "cus_", "credgr_test_", "cbtxn_test_", long] {
            for key in [0, 1, 31, 1 << 64, (1 << 127) + 12_345, u128::MAX >> 1] {
                assert_eq!(
                    serde_json::to_string(&text_of(prefix, key)).unwrap(),
                    format!("\"{}\"", render(prefix, key)),
                    "{prefix} {key}"
                );
            }
        }
    }

    #[test]
    fn random_ids_use_every_character_of_the_alphabet_and_only_those() {
        let mut seen = std::collections::BTreeMap::<char, usize>::new();
        for _ in 0..2_000 {
            let id = fresh_random_id("req_", 14);
            assert_eq!(id.len(), 18, "{id}");
            let tail = id.strip_prefix("req_").expect("the prefix");
            for c in tail.chars() {
                assert!(c.is_ascii_alphanumeric(), "{id}");
                *seen.entry(c).or_default() += 1;
            }
        }
        // 28,000 characters: about 452 of each; a character that never or nearly never comes up
        // (a digit lost to the bit mask, say) would show here.
        assert_eq!(seen.len(), 62, "{seen:?}");
        assert!(seen.values().all(|&n| (300..600).contains(&n)), "{seen:?}");
        assert_eq!(fresh_random_id("whsec_", 0), "whsec_");
    }

    #[test]
    fn decodes_exactly_the_alphabets_characters() {
        for b in 0..=255u8 {
            let mut text = *b"00000000000000000000000000";
            text[25] = b;
            let decoded = std::str::from_utf8(&text).ok().and_then(decode);
            match ALPHABET.iter().position(|&a| a == b) {
                Some(d) => assert_eq!(decoded, Some(d as u128), "{b}"),
                None => assert_eq!(decoded, None, "{b}"),
            }
        }
        assert_eq!(render("cus_", 0), "cus_00000000000000000000000000");
        assert_eq!(render("x_", u128::MAX), format!("x_{}", encode(u128::MAX)));
    }

    #[test]
    fn round_trips_and_sorts() {
        let mut g = IdGen::new(None, "t");
        let a = g.next(5);
        let b = g.next(5);
        let c = g.next(4);
        assert!(a < b && b < c);
        let (ea, eb, ec) = (encode(a), encode(b), encode(c));
        assert!(ea < eb && eb < ec);
        assert_eq!(decode(&ea), Some(a));
        assert_eq!(encode(u128::MAX).len(), 26);
        assert_eq!(decode(&encode(u128::MAX)), Some(u128::MAX));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(decode(""), None);
        assert_eq!(decode("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"), None);
        assert_eq!(decode("0000000000000000000000000U"), None);
        assert_eq!(decode("../../etc/passwd"), None);
        assert_eq!(parse("cus_x", "cus_"), None);
    }

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        assert_eq!(fnv1a64(BASIS, b""), BASIS);
        assert_eq!(fnv1a64(BASIS, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(BASIS, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn seeded_ids_are_deterministic_and_tenant_specific() {
        let mut a = IdGen::new(Some(7), "sk_test_a");
        let mut a2 = IdGen::new(Some(7), "sk_test_a");
        let mut b = IdGen::new(Some(7), "sk_test_b");
        assert_eq!(a.next(1), a2.next(99));
        assert_ne!(a.next(1), b.next(1));
    }
}
