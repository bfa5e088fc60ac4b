//! The in-memory series index: a compact byte encoding of label sets (what the head and sled
//! keep instead of `String`s), a fast hash over raw label bytes for the ingest lookup, and the
//! inverted postings `name → value → series` (roaring bitmaps) that selectors are answered from.
//! Matcher semantics follow Prometheus' `tsdb/querier.go` `PostingsForMatchers`: a matcher that
//! matches the empty string also selects series without the label.

use std::collections::BTreeMap;

use crowsnest_wire::labels::LabelPair;
use crowsnest_wire::{Label, Labels, MatchOp, Matcher};
use roaring::RoaringBitmap;

use super::bits::{ByteReader, put_uvarint};

/// Appends the label set as `uvarint len | name | uvarint len | value` pairs.
pub fn encode_labels<L: LabelPair>(labels: &[L], out: &mut Vec<u8>) {
    for l in labels {
        put_uvarint(out, l.name().len() as u64);
        out.extend_from_slice(l.name().as_bytes());
        put_uvarint(out, l.value().len() as u64);
        out.extend_from_slice(l.value().as_bytes());
    }
}

/// Iterates `(name, value)` pairs of an encoded label set; stops at the first malformed byte.
pub fn iter_encoded(b: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    let mut r = ByteReader::new(b);
    std::iter::from_fn(move || {
        if r.is_empty() {
            return None;
        }
        let mut s = || {
            let n = usize::try_from(r.uvarint()?).ok()?;
            std::str::from_utf8(r.take(n)?).ok()
        };
        Some((s()?, s()?))
    })
}

/// Decodes an encoded label set.
pub fn decode_labels(b: &[u8]) -> Labels {
    Labels::from_sorted_unchecked(iter_encoded(b).map(|(n, v)| Label::new(n, v)).collect())
}

/// True when `labels` encode to exactly `enc` (compared without allocating).
pub fn labels_eq_encoded<L: LabelPair>(labels: &[L], enc: &[u8]) -> bool {
    // Byte comparison without UTF-8 re-validation: this runs for every series of every write.
    let mut r = ByteReader::new(enc);
    let mut field = |want: &str| match r.uvarint() {
        Some(n) if n == want.len() as u64 => r.take(want.len()).is_some_and(|got| bytes_eq(got, want.as_bytes())),
        _ => false,
    };
    for l in labels {
        if !field(l.name()) || !field(l.value()) {
            return false;
        }
    }
    r.is_empty()
}

/// `a == b` for slices of equal length, with short ones (most label names and values) compared
/// as two overlapping words instead of through a `memcmp` call.
#[inline(always)]
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

#[inline(always)]
fn half(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}

/// A 64×64→128-bit multiply folded to 64 bits: a strong mixing step (wyhash's).
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

const SEED: [u64; 3] = [0xa076_1d64_78bd_642f, 0xe703_7ed1_a0b4_28db, 0x8ebc_6af0_9c88_c6e3];

/// A hash of one string that does not depend on anything hashed before it, so the CPU can work
/// on all the names and values of a label set at once (only the combining in [`hash_labels`] is a
/// chain). Short strings are read as overlapping words, without a per-byte tail loop.
#[inline(always)]
fn hash_field(b: &[u8]) -> u64 {
    let n = b.len();
    let (x, y) = match n {
        0 => (0, 0),
        1..=3 => (((b[0] as u64) << 16) | ((b[n / 2] as u64) << 8) | b[n - 1] as u64, 0),
        4..=8 => (half(b, 0) as u64, half(b, n - 4) as u64),
        9..=16 => (word(b, 0), word(b, n - 8)),
        _ => {
            // Two independent lanes over 16-byte steps, then the last 16 bytes.
            let (mut p, mut q) = (SEED[1], SEED[2]);
            let mut at = 0;
            while at + 16 < n {
                p = fold_mul(p ^ word(b, at), SEED[0]);
                q = fold_mul(q ^ word(b, at + 8), SEED[1]);
                at += 16;
            }
            (p ^ word(b, n - 16), q ^ word(b, n - 8))
        }
    };
    // The length is mixed in by its own multiply: XORed into the words it would collide with
    // their bytes ("101" and "10" read as the same three bytes).
    fold_mul(SEED[1] ^ n as u64, fold_mul(x ^ SEED[0], y ^ SEED[1]))
}

/// A fast non-cryptographic hash of a label set (names and values hashed independently, then
/// combined in order). The hash itself is never stored, but the shard bits of series references
/// come from it (see [`LabelHash`]).
pub fn hash_labels<L: LabelPair>(labels: &[L]) -> u64 {
    let mut h = SEED[2];
    for l in labels {
        let (name, value) = (hash_field(l.name().as_bytes()), hash_field(l.value().as_bytes()));
        h = fold_mul(h ^ name, value ^ SEED[0]);
    }
    h ^ (h >> 29)
}

/// Which label hash a data folder uses. Series references carry the shard their labels hashed to
/// when they were created, so a folder keeps the hash it started with: folders from before the
/// fast hash (no marker, but series or WAL segments present) go on with [`hash_labels_legacy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelHash {
    Legacy,
    Fast,
}

impl LabelHash {
    /// The marker kept in the sled `state` tree.
    pub fn marker(self) -> u8 {
        match self {
            LabelHash::Legacy => 1,
            LabelHash::Fast => 2,
        }
    }

    pub fn from_marker(m: u8) -> Option<LabelHash> {
        match m {
            1 => Some(LabelHash::Legacy),
            2 => Some(LabelHash::Fast),
            _ => None,
        }
    }

    #[inline]
    pub fn of<L: LabelPair>(self, labels: &[L]) -> u64 {
        match self {
            LabelHash::Fast => hash_labels(labels),
            LabelHash::Legacy => hash_labels_legacy(labels),
        }
    }
}

/// The label hash of data folders created before [`hash_labels`] (FxHash-style multiply-rotate
/// over 8-byte words, one dependent chain over every byte).
pub fn hash_labels_legacy<L: LabelPair>(labels: &[L]) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    let mut mix = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
        let mut tail = [0u8; 8];
        let rem = chunks.remainder();
        tail[..rem.len()].copy_from_slice(rem);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(tail) ^ ((bytes.len() as u64) << 56))
            .wrapping_mul(0x517c_c1b7_2722_0a95);
    };
    for l in labels {
        mix(l.name().as_bytes());
        mix(l.value().as_bytes());
    }
    h ^ (h >> 29)
}

/// `(label name, distinct values, bytes of values)`.
pub type NameStats = (String, u64, u64);

/// Inverted index over series refs (refs are < 2^32; see `SeriesRef`).
#[derive(Debug, Default)]
pub struct Postings {
    by_name: BTreeMap<String, BTreeMap<String, RoaringBitmap>>,
    all: RoaringBitmap,
}

impl Postings {
    pub fn add(&mut self, r: u32, labels: &[u8]) {
        for (n, v) in iter_encoded(labels) {
            let values = match self.by_name.get_mut(n) {
                Some(x) => x,
                None => self.by_name.entry(n.to_string()).or_default(),
            };
            match values.get_mut(v) {
                Some(bm) => {
                    bm.insert(r);
                }
                None => {
                    values.insert(v.to_string(), RoaringBitmap::from_iter([r]));
                }
            }
        }
        self.all.insert(r);
    }

    pub fn remove(&mut self, r: u32, labels: &[u8]) {
        for (n, v) in iter_encoded(labels) {
            if let Some(values) = self.by_name.get_mut(n) {
                if let Some(bm) = values.get_mut(v) {
                    bm.remove(r);
                    if bm.is_empty() {
                        values.remove(v);
                    }
                }
                if values.is_empty() {
                    self.by_name.remove(n);
                }
            }
        }
        self.all.remove(r);
    }

    /// Number of series with label `name` = `value` (e.g. the series of one metric name).
    pub fn count(&self, name: &str, value: &str) -> u64 {
        self.by_name.get(name).and_then(|values| values.get(value)).map_or(0, RoaringBitmap::len)
    }

    pub fn all(&self) -> &RoaringBitmap {
        &self.all
    }

    pub fn len(&self) -> u64 {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Union of the postings of every value of `name` that `pred` accepts.
    fn union_where(&self, name: &str, pred: impl Fn(&str) -> bool) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        if let Some(values) = self.by_name.get(name) {
            for (v, bm) in values {
                if pred(v) {
                    out |= bm;
                }
            }
        }
        out
    }

    /// Series matching all matchers.
    pub fn select(&self, matchers: &[Matcher]) -> RoaringBitmap {
        let mut acc: Option<RoaringBitmap> = None;
        // Narrow with the positive matchers first, then subtract.
        let mut ordered: Vec<&Matcher> = matchers.iter().collect();
        ordered.sort_by_key(|m| (m.matches_empty(), m.op != MatchOp::Equal));
        for m in ordered {
            if acc.as_ref().is_some_and(RoaringBitmap::is_empty) {
                break;
            }
            let bm = if m.matches_empty() {
                // Series without the label, or with a matching value: all minus non-matching.
                let excluded = self.union_where(&m.name, |v| !m.matches(v));
                let base = acc.take().unwrap_or_else(|| self.all.clone());
                acc = Some(base - excluded);
                continue;
            } else if m.op == MatchOp::Equal {
                self.by_name.get(&m.name).and_then(|vs| vs.get(&m.value)).cloned().unwrap_or_default()
            } else if let Some(set) = m.set_matches() {
                let mut out = RoaringBitmap::new();
                if let Some(vs) = self.by_name.get(&m.name) {
                    for v in set {
                        if let Some(bm) = vs.get(&v) {
                            out |= bm;
                        }
                    }
                }
                out
            } else {
                self.union_where(&m.name, |v| m.matches(v))
            };
            acc = Some(match acc {
                Some(a) => a & bm,
                None => bm,
            });
        }
        acc.unwrap_or_else(|| self.all.clone())
    }

    /// Label names that occur on at least one series in `among`.
    pub fn names_among(&self, among: &RoaringBitmap) -> Vec<String> {
        self.by_name
            .iter()
            .filter(|(_, vs)| vs.values().any(|bm| !bm.is_disjoint(among)))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Every value of `name` with its postings (a copy, so the caller can drop the index lock
    /// before it takes series locks), in value order.
    pub fn values_with_postings(&self, name: &str) -> Vec<(String, RoaringBitmap)> {
        self.by_name.get(name).map(|vs| vs.iter().map(|(v, bm)| (v.clone(), bm.clone())).collect()).unwrap_or_default()
    }

    /// Values of `name` that occur on at least one series in `among`.
    pub fn values_among(&self, name: &str, among: &RoaringBitmap) -> Vec<String> {
        self.by_name
            .get(name)
            .map(|vs| vs.iter().filter(|(_, bm)| !bm.is_disjoint(among)).map(|(v, _)| v.clone()).collect())
            .unwrap_or_default()
    }

    /// `(name, distinct values, bytes of values)` per label name, and `(name=value, series)`.
    pub fn stats(&self) -> (Vec<NameStats>, Vec<(String, u64)>) {
        let mut names = Vec::new();
        let mut pairs = Vec::new();
        for (n, vs) in &self.by_name {
            let bytes: usize = vs.keys().map(|v| v.len()).sum();
            names.push((n.clone(), vs.len() as u64, bytes as u64));
            for (v, bm) in vs {
                pairs.push((format!("{n}={v}"), bm.len()));
            }
        }
        (names, pairs)
    }

    /// Number of distinct `name=value` pairs.
    pub fn pair_count(&self) -> u64 {
        self.by_name.values().map(|vs| vs.len() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(pairs: &[(&str, &str)]) -> Vec<u8> {
        let l = Labels::from_pairs(pairs.iter().copied());
        let mut out = Vec::new();
        encode_labels(l.as_slice(), &mut out);
        out
    }

    fn index() -> Postings {
        let mut p = Postings::default();
        p.add(1, &enc(&[("__name__", "up"), ("job", "a"), ("instance", "x")]));
        p.add(2, &enc(&[("__name__", "up"), ("job", "b")]));
        p.add(3, &enc(&[("__name__", "cpu"), ("job", "a"), ("mode", "idle")]));
        p
    }

    fn sel(p: &Postings, m: &[Matcher]) -> Vec<u32> {
        p.select(m).iter().collect()
    }

    #[test]
    fn labels_encoding_round_trips_and_compares() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "é")]);
        let mut e = Vec::new();
        encode_labels(l.as_slice(), &mut e);
        assert_eq!(decode_labels(&e), l);
        assert!(labels_eq_encoded(l.as_slice(), &e));
        let other = Labels::from_pairs([("__name__", "up")]);
        assert!(!labels_eq_encoded(other.as_slice(), &e));
        assert_ne!(hash_labels(l.as_slice()), hash_labels(other.as_slice()));
        // Same lengths, different bytes; a longer set; a value that is a prefix.
        for different in [
            Labels::from_pairs([("__name__", "up"), ("job", "e\u{301}")]),
            Labels::from_pairs([("__name__", "up"), ("jox", "é")]),
            Labels::from_pairs([("__name__", "up"), ("job", "é"), ("z", "1")]),
            Labels::from_pairs([("__name__", "u"), ("job", "é")]),
        ] {
            assert!(!labels_eq_encoded(different.as_slice(), &e), "{different:?}");
        }
        assert!(!labels_eq_encoded(l.as_slice(), &e[..e.len() - 1]), "truncated encoding");
        assert!(labels_eq_encoded::<Label>(&[], &[]));
    }

    #[test]
    fn short_and_long_fields_compare_by_every_byte() {
        // Every length class of `bytes_eq` (1–3, 4–7, 8–16, longer), with each single byte changed.
        for len in [1usize, 3, 4, 7, 8, 9, 16, 17, 40, 100] {
            let value: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let l = Labels::from_pairs([("__name__", "m"), ("v", value.as_str())]);
            let mut e = Vec::new();
            encode_labels(l.as_slice(), &mut e);
            assert!(labels_eq_encoded(l.as_slice(), &e), "len {len}");
            for at in 0..len {
                let mut changed = value.clone().into_bytes();
                changed[at] = b'Z';
                let changed = String::from_utf8(changed).expect("ascii");
                let other = Labels::from_pairs([("__name__", "m"), ("v", changed.as_str())]);
                assert!(!labels_eq_encoded(other.as_slice(), &e), "len {len}, byte {at}");
                assert_ne!(hash_labels(other.as_slice()), hash_labels(l.as_slice()), "len {len}, byte {at}");
            }
        }
    }

    #[test]
    fn label_hashes_of_many_similar_series_do_not_collide() {
        // Series differing in one short value, in an empty label beside an extra one, or in where a
        // name ends and its value starts: the shapes a hash over concatenated bytes would confuse.
        let mut seen = std::collections::HashSet::new();
        let mut n = 0;
        for host in 0..200 {
            for i in 0..250 {
                let (h, v) = (format!("host-{host}"), i.to_string());
                for l in [
                    Labels::from_pairs([("__name__", "cpu"), ("cpu", v.as_str()), ("instance", h.as_str())]),
                    Labels::from_pairs([("__name__", "cpu"), ("cpu", ""), ("instance", h.as_str()), ("x", v.as_str())]),
                    Labels::from_pairs([("__name__", "cp"), ("ucpu", v.as_str()), ("instance", h.as_str())]),
                ] {
                    assert!(seen.insert(hash_labels(l.as_slice())), "collision at {l:?}");
                    n += 1;
                }
            }
        }
        assert_eq!(seen.len(), n);
    }

    #[test]
    fn postings_follow_prometheus_matcher_semantics() {
        let p = index();
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).expect("valid");
        assert_eq!(sel(&p, &[m(MatchOp::Equal, "__name__", "up")]), vec![1, 2]);
        assert_eq!(sel(&p, &[m(MatchOp::Equal, "job", "a"), m(MatchOp::NotEqual, "__name__", "up")]), vec![3]);
        assert_eq!(sel(&p, &[m(MatchOp::Regex, "job", "a|b")]), vec![1, 2, 3]);
        assert_eq!(sel(&p, &[m(MatchOp::NotRegex, "job", "a")]), vec![2]);
        // Missing label matches "": {instance=""} selects series without `instance`.
        assert_eq!(sel(&p, &[m(MatchOp::Equal, "__name__", "up"), m(MatchOp::Equal, "instance", "")]), vec![2]);
        assert_eq!(sel(&p, &[m(MatchOp::Regex, "mode", ".+")]), vec![3]);
        assert_eq!(sel(&p, &[m(MatchOp::Equal, "job", "zzz")]), Vec::<u32>::new());
    }

    #[test]
    fn names_and_values_respect_the_candidate_set() {
        let mut p = index();
        let among = RoaringBitmap::from_iter([2u32]);
        assert_eq!(p.names_among(&among), vec!["__name__", "job"]);
        assert_eq!(p.values_among("job", p.all()), vec!["a", "b"]);
        p.remove(3, &enc(&[("__name__", "cpu"), ("job", "a"), ("mode", "idle")]));
        assert_eq!(p.values_among("__name__", p.all()), vec!["up"]);
        assert_eq!(p.names_among(p.all()), vec!["__name__", "instance", "job"]);
    }
}
