//! How a write whose keys span slots is applied from its effect on a cluster destination,
//! worked out without I/O: every key it names gets a scratch copy in one slot (a hash tag of
//! that slot, under replicant's own prefix), the command is rewritten to name the copies, and
//! after it runs there the copies of the keys it may write are copied back over the real keys
//! (or the real key removed where its copy is gone). (A `SORT … BY/GET pattern` reads keys
//! that it does not name, and is computed instead: [`super::sort`].)

use std::sync::OnceLock;

use bytes::Bytes;

use crate::cluster::slot::{key_slot, SLOTS};

/// The plan for one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectPlan {
    /// The slot every scratch key hashes to.
    pub slot: u16,
    /// Each distinct key the command names, with its scratch name, in order of first use.
    pub keys: Vec<(Bytes, Bytes)>,
    /// For each of `keys`, whether the command may change it (copied back after it ran).
    pub written: Vec<bool>,
    /// The command as it runs on the scratch slot's master.
    pub command: Vec<Bytes>,
}

/// A decimal string whose slot is `slot`: a hash tag that puts a key in that slot.
pub fn tag_for_slot(slot: u16) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags: Vec<Option<String>> = vec![None; SLOTS];
        let mut left = SLOTS;
        let mut n = 0u64;
        while left > 0 {
            let s = n.to_string();
            let t = &mut tags[usize::from(key_slot(s.as_bytes()))];
            if t.is_none() {
                *t = Some(s);
                left -= 1;
            }
            n += 1;
        }
        tags.into_iter().map(Option::unwrap_or_default).collect()
    });
    &tags[usize::from(slot) % SLOTS]
}

/// Plans `args` (whose keys are at `key_at`, of which those at `read_only` are only read) for
/// the scratch keys `<prefix>fx:{tag}:<n>`.
pub fn plan(args: &[Bytes], key_at: &[usize], read_only: &[usize], prefix: &[u8]) -> EffectPlan {
    let slot = key_at
        .first()
        .and_then(|&i| args.get(i))
        .map_or(0, |k| key_slot(k));
    let tag = tag_for_slot(slot);
    let scratch = |n: usize| Bytes::from([prefix, format!("fx:{{{tag}}}:{n}").as_bytes()].concat());
    let mut keys: Vec<(Bytes, Bytes)> = Vec::new();
    let mut written: Vec<bool> = Vec::new();
    let mut command = args.to_vec();
    for &i in key_at {
        let Some(real) = args.get(i) else { continue };
        let writes = !read_only.contains(&i);
        let name = match keys.iter().position(|(k, _)| k == real) {
            Some(n) => {
                written[n] |= writes;
                keys[n].1.clone()
            }
            None => {
                let s = scratch(keys.len());
                keys.push((real.clone(), s.clone()));
                written.push(writes);
                s
            }
        };
        command[i] = name;
    }
    EffectPlan {
        slot,
        keys,
        written,
        command,
    }
}

/// The key a SORT pattern reads for `element`, as Redis makes it: the first `*` replaced by
/// the element; a `->field` after it names a field of that key (a hash).
pub fn pattern_key(pattern: &[u8], element: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let (end, field) = match after.windows(2).position(|w| w == b"->") {
        Some(f) if f + 2 < after.len() => (f, Some(after[f + 2..].to_vec())),
        _ => (after.len(), None),
    };
    Some(([&pattern[..star], element, &after[..end]].concat(), field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::args;

    fn text(b: &[Bytes]) -> String {
        b.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn tags_cover_every_slot() {
        for slot in [0u16, 1, 5061, 12182, 16383] {
            assert_eq!(key_slot(tag_for_slot(slot).as_bytes()), slot);
        }
    }

    #[test]
    fn keys_become_scratch_keys_in_one_slot() {
        let p = plan(&args("RENAME foo bar"), &[1, 2], &[], b"r:");
        let tag = tag_for_slot(key_slot(b"foo"));
        assert_eq!(p.slot, key_slot(b"foo"));
        assert_eq!(
            text(&p.command),
            format!("RENAME r:fx:{{{tag}}}:0 r:fx:{{{tag}}}:1")
        );
        assert!(p.keys.iter().all(|(_, s)| key_slot(s) == p.slot));
        // A key named twice has one scratch copy.
        let p = plan(&args("SUNIONSTORE d d x"), &[1, 2, 3], &[2, 3], b"r:");
        assert_eq!(p.keys.len(), 2);
        assert_eq!(p.command[1], p.command[2]);
        // d is written (as the destination) though also read; x is only read.
        assert_eq!(p.written, vec![true, false]);
    }

    #[test]
    fn pattern_keys() {
        let k = |p: &str, e: &str| {
            pattern_key(p.as_bytes(), e.as_bytes()).map(|(k, f)| {
                (
                    String::from_utf8_lossy(&k).into_owned(),
                    f.map(|f| String::from_utf8_lossy(&f).into_owned()),
                )
            })
        };
        assert_eq!(k("w_*->f", "3"), Some(("w_3".into(), Some("f".into()))));
        assert_eq!(k("w_*->", "3"), Some(("w_3->".into(), None)));
        assert_eq!(k("a*b*", "x"), Some(("axb*".into(), None)));
        assert_eq!(k("#", "x"), None);
    }
}
