//! How a value differs, told by reading it from both sides (only for keys whose digests
//! differ).

use std::collections::{BTreeMap, BTreeSet};

use redis::{Connection, Value};

use super::query;
use crate::display::{show, shown_list, text};

/// How a value of type `ty` differs between the two sides, read from both; `None` if the
/// values read are equal after all (the digest also covers whether the key has a TTL, which
/// is reported on its own).
pub(super) fn describe_value_difference(
    src: &mut Connection,
    dst: &mut Connection,
    key: &[u8],
    ty: &str,
) -> Option<String> {
    match ty {
        "string" => {
            let a: Vec<u8> = query(src, redis::cmd("GET").arg(key));
            let b: Vec<u8> = query(dst, redis::cmd("GET").arg(key));
            let at = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            (a != b).then(|| {
                format!(
                    "source {} ({} bytes), target {} ({} bytes), first difference at byte {at}",
                    show(&a),
                    a.len(),
                    show(&b),
                    b.len()
                )
            })
        }
        "list" => {
            let a: Vec<Vec<u8>> = query(src, redis::cmd("LRANGE").arg(key).arg(0).arg(-1));
            let b: Vec<Vec<u8>> = query(dst, redis::cmd("LRANGE").arg(key).arg(0).arg(-1));
            (a != b).then(|| sequence_diff(&a, &b, |e| show(e)))
        }
        "set" => {
            let a: BTreeSet<Vec<u8>> = query(src, redis::cmd("SMEMBERS").arg(key));
            let b: BTreeSet<Vec<u8>> = query(dst, redis::cmd("SMEMBERS").arg(key));
            let only = |x: &BTreeSet<Vec<u8>>, y: &BTreeSet<Vec<u8>>| {
                shown_list(x.difference(y).map(|m| show(m)))
            };
            (a != b).then(|| {
                format!(
                    "source {} members, target {}; only on source: {}; only on target: {}",
                    a.len(),
                    b.len(),
                    only(&a, &b),
                    only(&b, &a)
                )
            })
        }
        "zset" => {
            let read = |con: &mut Connection| -> BTreeMap<Vec<u8>, Vec<u8>> {
                let flat: Vec<Vec<u8>> = query(
                    con,
                    redis::cmd("ZRANGE")
                        .arg(key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES"),
                );
                pairs(flat)
                    .into_iter()
                    .map(|(m, score)| (m, same_zero(score)))
                    .collect()
            };
            let (a, b) = (read(src), read(dst));
            (a != b).then(|| map_diff("members", &a, &b))
        }
        "hash" => {
            let read = |con: &mut Connection| -> BTreeMap<Vec<u8>, Vec<u8>> {
                pairs(query(con, redis::cmd("HGETALL").arg(key)))
            };
            let (a, b) = (read(src), read(dst));
            (a != b).then(|| map_diff("fields", &a, &b))
        }
        "stream" => {
            let a = stream_entries(src, key);
            let b = stream_entries(dst, key);
            (a != b).then(|| sequence_diff(&a, &b, |e| e.clone()))
        }
        other => Some(format!("values differ (type {other}, no diff available)")),
    }
}

/// Scores compare as numbers where text differs for one value only: an old RDB's ziplist may
/// hold the score `-0`, which a server keeps as it is when loading it, while `ZADD` of -0 stores
/// `0`; the two are the same score (IEEE -0 == 0) and no command can recreate the former.
fn same_zero(score: Vec<u8>) -> Vec<u8> {
    if score == b"-0" {
        b"0".to_vec()
    } else {
        score
    }
}

fn stream_entries(con: &mut Connection, key: &[u8]) -> Vec<String> {
    let entries: Vec<Value> = query(con, redis::cmd("XRANGE").arg(key).arg("-").arg("+"));
    entries.iter().map(text).collect()
}

/// `[k1, v1, k2, v2, …]` as a map.
fn pairs(flat: Vec<Vec<u8>>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut map = BTreeMap::new();
    let mut items = flat.into_iter();
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        map.insert(k, v);
    }
    map
}

fn map_diff(what: &str, a: &BTreeMap<Vec<u8>, Vec<u8>>, b: &BTreeMap<Vec<u8>, Vec<u8>>) -> String {
    let only = |x: &BTreeMap<Vec<u8>, Vec<u8>>, y: &BTreeMap<Vec<u8>, Vec<u8>>| {
        shown_list(
            x.iter()
                .filter(|(k, _)| !y.contains_key(*k))
                .map(|(k, v)| format!("{}={}", show(k), show(v))),
        )
    };
    let changed = shown_list(a.iter().filter_map(|(k, va)| {
        let vb = b.get(k)?;
        (va != vb).then(|| format!("{}: {} vs {}", show(k), show(va), show(vb)))
    }));
    format!(
        "source {} {what}, target {}; only on source: {}; only on target: {}; different: {}",
        a.len(),
        b.len(),
        only(a, b),
        only(b, a),
        changed
    )
}

fn sequence_diff<T: PartialEq>(a: &[T], b: &[T], show_item: impl Fn(&T) -> String) -> String {
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let item = |list: &[T]| list.get(at).map_or("(end)".to_string(), &show_item);
    format!(
        "source {} elements, target {}; first difference at index {at}: source {}, target {}",
        a.len(),
        b.len(),
        item(a),
        item(b)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_read_well() {
        let a = vec![b"x".to_vec(), b"y".to_vec()];
        let b = vec![b"x".to_vec(), b"z".to_vec(), b"w".to_vec()];
        assert_eq!(
            sequence_diff(&a, &b, |e| show(e)),
            "source 2 elements, target 3; first difference at index 1: source \"y\", target \"z\""
        );
        let ma = pairs(vec![
            b"f".to_vec(),
            b"1".to_vec(),
            b"g".to_vec(),
            b"2".to_vec(),
        ]);
        let mb = pairs(vec![b"f".to_vec(), b"9".to_vec()]);
        assert_eq!(
            map_diff("fields", &ma, &mb),
            "source 2 fields, target 1; only on source: [\"g\"=\"2\"]; only on target: []; \
             different: [\"f\": \"1\" vs \"9\"]"
        );
    }
}
