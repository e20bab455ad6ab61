//! `SORT … STORE` whose `BY`/`GET` patterns read other keys, computed here: a cluster
//! destination refuses such patterns (every Redis before 7.2 does in cluster mode, whatever
//! the hash tags), so the effect path reads the elements and the values the patterns name
//! and writes the resulting list itself. The rules are Redis's for a SORT with STORE (which
//! compares bytes, never the locale): numeric order by the weight with the element's bytes
//! breaking ties, `ALPHA` by bytes, a missing weight counting as 0 (or sorting first with
//! `ALPHA`), `LIMIT` after sorting, `GET` of a missing value stored as an empty string, a
//! set without a sort order sorted `ALPHA` so that the result is the same everywhere. Pure.

use std::cmp::Ordering;
use std::collections::HashMap;

use bytes::Bytes;

/// A SORT's options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SortSpec {
    /// The `BY` pattern, when it has a `*` (a `BY` without one means "do not sort").
    pub by: Option<Bytes>,
    pub dont_sort: bool,
    pub limit: Option<(i64, i64)>,
    /// The `GET` patterns, in order (`#` is the element itself).
    pub gets: Vec<Bytes>,
    pub desc: bool,
    pub alpha: bool,
    pub store: Option<Bytes>,
}

/// The sorted key's type, which decides the natural order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    List,
    Set,
    Zset,
}

/// Reads a SORT's options (`args[0]` is SORT, `args[1]` the key).
pub fn parse(args: &[Bytes]) -> Result<SortSpec, String> {
    let mut spec = SortSpec::default();
    let mut i = 2;
    let num = |a: Option<&Bytes>| -> Result<i64, String> {
        a.and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .ok_or_else(|| "SORT: LIMIT needs two integers".to_string())
    };
    while i < args.len() {
        let a = args[i].to_ascii_uppercase();
        match a.as_slice() {
            b"ASC" => spec.desc = false,
            b"DESC" => spec.desc = true,
            b"ALPHA" => spec.alpha = true,
            b"LIMIT" => {
                spec.limit = Some((num(args.get(i + 1))?, num(args.get(i + 2))?));
                i += 2;
            }
            b"BY" | b"GET" | b"STORE" => {
                let v = args.get(i + 1).cloned().ok_or_else(|| {
                    format!("SORT: {} needs an argument", String::from_utf8_lossy(&a))
                })?;
                match a.as_slice() {
                    b"BY" if v.contains(&b'*') => spec.by = Some(v),
                    b"BY" => spec.dont_sort = true,
                    b"GET" => spec.gets.push(v),
                    _ => spec.store = Some(v),
                }
                i += 1;
            }
            _ => {
                return Err(format!(
                    "SORT: unknown option {}",
                    String::from_utf8_lossy(&args[i])
                ))
            }
        }
        i += 1;
    }
    Ok(spec)
}

/// The values the patterns read: (pattern, element) → the value, `None` when missing.
pub type Values = HashMap<(Bytes, Bytes), Option<Bytes>>;

fn value<'a>(values: &'a Values, pattern: &Bytes, element: &Bytes) -> Option<&'a Bytes> {
    values
        .get(&(pattern.clone(), element.clone()))
        .and_then(Option::as_ref)
}

/// A weight as Redis reads it with `strtod` (the whole value must be a number).
fn weight(v: Option<&Bytes>) -> Result<f64, String> {
    let Some(v) = v else { return Ok(0.0) };
    let text = std::str::from_utf8(v).map_err(|_| "SORT: a weight is not a number".to_string())?;
    let t = text.trim_start();
    let parsed = match t.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => t.parse::<f64>().ok(),
    };
    match parsed {
        Some(w) if !w.is_nan() => Ok(w),
        _ => Err(format!("SORT: the weight {text:?} is not a number")),
    }
}

/// The list SORT stores, from the key's elements in their natural order.
pub fn sort(
    spec: &SortSpec,
    kind: Kind,
    elements: Vec<Bytes>,
    values: &Values,
) -> Result<Vec<Bytes>, String> {
    let mut spec = spec.clone();
    if spec.dont_sort && kind == Kind::Set {
        // A set has no order of its own: Redis sorts it for a STORE.
        spec.dont_sort = false;
        spec.alpha = true;
        spec.by = None;
    }
    let mut items = elements;
    if spec.dont_sort {
        if kind == Kind::Zset && spec.desc {
            items.reverse();
        }
    } else if spec.alpha {
        let key = |e: &Bytes| -> Option<Bytes> {
            match &spec.by {
                Some(p) => value(values, p, e).cloned(),
                None => Some(e.clone()),
            }
        };
        let mut keyed: Vec<(Option<Bytes>, Bytes)> =
            items.into_iter().map(|e| (key(&e), e)).collect();
        keyed.sort_by(|a, b| {
            let c = a.0.cmp(&b.0);
            if spec.desc {
                c.reverse()
            } else {
                c
            }
        });
        items = keyed.into_iter().map(|(_, e)| e).collect();
    } else {
        let mut keyed = Vec::with_capacity(items.len());
        for e in items {
            let w = match &spec.by {
                Some(p) => weight(value(values, p, &e))?,
                None => weight(Some(&e))?,
            };
            keyed.push((w, e));
        }
        keyed.sort_by(|a, b| {
            let c =
                a.0.partial_cmp(&b.0)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.1.cmp(&b.1));
            if spec.desc {
                c.reverse()
            } else {
                c
            }
        });
        items = keyed.into_iter().map(|(_, e)| e).collect();
    }
    let len = items.len() as i64;
    let (mut start, mut end) = (0i64, len - 1);
    if let Some((offset, count)) = spec.limit {
        start = offset.max(0);
        end = if count < 0 {
            len - 1
        } else {
            start + count - 1
        };
        if start >= len {
            start = len - 1;
            end = len - 2;
        }
        if end >= len {
            end = len - 1;
        }
    }
    let mut out = Vec::new();
    if start < 0 || end < start {
        return Ok(out);
    }
    for e in &items[start as usize..=end as usize] {
        if spec.gets.is_empty() {
            out.push(e.clone());
        }
        for g in &spec.gets {
            if &g[..] == b"#" {
                out.push(e.clone());
            } else {
                out.push(value(values, g, e).cloned().unwrap_or_default());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::args;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn values(pairs: &[(&str, &str, Option<&str>)]) -> Values {
        pairs
            .iter()
            .map(|(p, e, v)| ((b(p), b(e)), v.map(b)))
            .collect()
    }

    fn texts(v: &[Bytes]) -> Vec<String> {
        v.iter()
            .map(|x| String::from_utf8_lossy(x).into_owned())
            .collect()
    }

    #[test]
    fn options() {
        let s = parse(&args(
            "SORT l BY w_* LIMIT 0 2 GET # GET o_* DESC ALPHA STORE d",
        ))
        .expect("valid");
        assert_eq!(s.by, Some(b("w_*")));
        assert_eq!(s.limit, Some((0, 2)));
        assert_eq!(s.gets, vec![b("#"), b("o_*")]);
        assert!(s.desc && s.alpha && !s.dont_sort);
        assert_eq!(s.store, Some(b("d")));
        assert!(parse(&args("SORT l BY nosort")).expect("valid").dont_sort);
        assert!(parse(&args("SORT l LIMIT 1")).is_err());
        assert!(parse(&args("SORT l BOGUS")).is_err());
    }

    #[test]
    fn by_weights_with_ties_and_missing_ones() {
        let spec = parse(&args("SORT l BY w_* GET # GET o_* STORE d")).expect("valid");
        let v = values(&[
            ("w_*", "1", Some("30")),
            ("w_*", "2", Some("10")),
            ("w_*", "3", Some("10")),
            ("w_*", "4", None),
            ("o_*", "1", Some("one")),
            ("o_*", "2", None),
        ]);
        let out = sort(&spec, Kind::List, args("3 1 2 4"), &v).expect("sorts");
        assert_eq!(texts(&out), ["4", "", "2", "", "3", "", "1", "one"]);
        let bad = values(&[("w_*", "1", Some("x"))]);
        assert!(sort(&spec, Kind::List, args("1"), &bad).is_err());
    }

    #[test]
    fn alpha_limit_desc_and_natural_orders() {
        let none = Values::new();
        let spec = parse(&args("SORT l ALPHA DESC LIMIT 1 2 STORE d")).expect("valid");
        assert_eq!(
            texts(&sort(&spec, Kind::List, args("b a d c"), &none).expect("sorts")),
            ["c", "b"]
        );
        let spec = parse(&args("SORT l LIMIT 9 2 STORE d")).expect("valid");
        assert!(sort(&spec, Kind::List, args("1 2"), &none)
            .expect("sorts")
            .is_empty());
        let spec = parse(&args("SORT l BY nosort STORE d")).expect("valid");
        assert_eq!(
            texts(&sort(&spec, Kind::List, args("b a"), &none).expect("sorts")),
            ["b", "a"]
        );
        // A set is sorted ALPHA for a STORE even without an order.
        assert_eq!(
            texts(&sort(&spec, Kind::Set, args("b 10 a"), &none).expect("sorts")),
            ["10", "a", "b"]
        );
        let spec = parse(&args("SORT z BY nosort DESC STORE d")).expect("valid");
        assert_eq!(
            texts(&sort(&spec, Kind::Zset, args("x y"), &none).expect("sorts")),
            ["y", "x"]
        );
        let spec = parse(&args("SORT l STORE d")).expect("valid");
        assert_eq!(
            texts(&sort(&spec, Kind::List, args("10 9 -1.5 inf"), &none).expect("sorts")),
            ["-1.5", "9", "10", "inf"]
        );
    }
}
