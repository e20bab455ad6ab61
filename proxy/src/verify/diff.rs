//! What differs between the two sides: the kinds of difference, and the set of differing keys
//! found so far (per db and key; a key checked again replaces what was found before).

use std::collections::BTreeMap;

use bytes::Bytes;

/// What differs about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiffKind {
    /// The key is on the source, not on the target.
    OnlyOnSource,
    /// The key is on the target, not on the source.
    OnlyOnTarget,
    /// Different `TYPE`.
    Type,
    /// Same type, different value (`full` and `sample` modes; a different length included).
    Value,
    /// One side has a TTL and the other not, or they differ by more than the tolerance.
    Ttl,
    /// Same type, different number of elements or bytes (`outline` mode).
    Length,
}

impl DiffKind {
    pub const ALL: [DiffKind; 6] = [
        DiffKind::OnlyOnSource,
        DiffKind::OnlyOnTarget,
        DiffKind::Type,
        DiffKind::Value,
        DiffKind::Ttl,
        DiffKind::Length,
    ];

    /// The name in the summary and the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            DiffKind::OnlyOnSource => "only_on_source",
            DiffKind::OnlyOnTarget => "only_on_target",
            DiffKind::Type => "type",
            DiffKind::Value => "value",
            DiffKind::Ttl => "ttl",
            DiffKind::Length => "length",
        }
    }
}

/// One difference of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub kind: DiffKind,
    /// What the two sides hold, in a line.
    pub detail: String,
}

impl Difference {
    pub fn new(kind: DiffKind, detail: impl Into<String>) -> Self {
        Difference {
            kind,
            detail: detail.into(),
        }
    }
}

/// A key that differs, with every way it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDiff {
    pub db: u64,
    pub key: Bytes,
    pub diffs: Vec<Difference>,
}

/// The differing keys found so far, in db and key order.
#[derive(Debug, Default)]
pub struct DiffSet {
    keys: BTreeMap<(u64, Bytes), Vec<Difference>>,
}

impl DiffSet {
    /// Records what a check of `key` found: its differences, or none (then it is forgotten).
    pub fn record(&mut self, db: u64, key: Bytes, diffs: Vec<Difference>) {
        if diffs.is_empty() {
            self.keys.remove(&(db, key));
        } else {
            self.keys.insert((db, key), diffs);
        }
    }

    /// Differing keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The differing keys of each db, for checking them again.
    pub fn keys_by_db(&self) -> BTreeMap<u64, Vec<Bytes>> {
        let mut out: BTreeMap<u64, Vec<Bytes>> = BTreeMap::new();
        for (db, key) in self.keys.keys() {
            out.entry(*db).or_default().push(key.clone());
        }
        out
    }

    /// How many differences of each kind (a key may have several kinds).
    pub fn counts(&self) -> BTreeMap<DiffKind, u64> {
        let mut out: BTreeMap<DiffKind, u64> = DiffKind::ALL.iter().map(|k| (*k, 0)).collect();
        for d in self.keys.values().flatten() {
            *out.entry(d.kind).or_default() += 1;
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = KeyDiff> + '_ {
        self.keys.iter().map(|((db, key), diffs)| KeyDiff {
            db: *db,
            key: key.clone(),
            diffs: diffs.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_checked_again_replaces_what_was_found() {
        let mut set = DiffSet::default();
        let k = Bytes::from_static(b"k");
        set.record(0, k.clone(), vec![Difference::new(DiffKind::Value, "x")]);
        set.record(0, k.clone(), vec![Difference::new(DiffKind::Value, "x")]);
        set.record(5, k.clone(), vec![Difference::new(DiffKind::Ttl, "y")]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.counts()[&DiffKind::Value], 1);
        assert_eq!(set.counts()[&DiffKind::Length], 0);
        set.record(0, k.clone(), Vec::new());
        assert_eq!(set.len(), 1);
        assert_eq!(set.keys_by_db()[&5], vec![k]);
    }
}
