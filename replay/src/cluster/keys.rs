//! What routing makes of a command's keys: where they go ([`Keys`], found by the
//! destination's own command table, [`super::commands`]), how a command whose keys span
//! slots can be split ([`Split`]), and the SORT patterns that read keys no argument names.

use bytes::Bytes;

/// The keys of a command, as argument indexes (0 is the command name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// No key: goes to one node.
    None,
    /// Must reach every master (FLUSHALL, FLUSHDB, FUNCTION, SCRIPT).
    Broadcast,
    /// Not for the destination at all (SELECT is tracked, not sent).
    Drop,
    /// The keys are at these argument indexes.
    At(Vec<usize>),
}

/// How a command whose keys span slots can be applied per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Each key independently (DEL, UNLINK, TOUCH, EXISTS).
    PerKey,
    /// Key/value pairs (MSET; MSETNX too: the stream carries it only when it succeeded).
    Pairs,
    /// Cannot be split without changing its meaning.
    No,
}

/// The argument indexes of a SORT's `BY`/`GET` patterns that read other keys (they hold a
/// `*`; `GET #` is the element itself, and a `BY` without `*` means "do not sort").
pub fn sort_patterns(args: &[Bytes]) -> Vec<usize> {
    let mut out = Vec::new();
    let is_sort = args
        .first()
        .is_some_and(|n| n.eq_ignore_ascii_case(b"SORT"));
    if !is_sort {
        return out;
    }
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if a.eq_ignore_ascii_case(b"LIMIT") {
            i += 3;
            continue;
        }
        if (a.eq_ignore_ascii_case(b"BY") || a.eq_ignore_ascii_case(b"GET"))
            && args.get(i + 1).is_some_and(|p| p.contains(&b'*'))
        {
            out.push(i + 1);
            i += 2;
            continue;
        }
        if a.eq_ignore_ascii_case(b"BY")
            || a.eq_ignore_ascii_case(b"GET")
            || a.eq_ignore_ascii_case(b"STORE")
        {
            i += 2;
            continue;
        }
        i += 1;
    }
    out
}

/// How a command can be split when its keys span slots.
pub fn split_kind(name: &[u8]) -> Split {
    match name.to_ascii_uppercase().as_slice() {
        b"DEL" | b"UNLINK" | b"TOUCH" | b"EXISTS" => Split::PerKey,
        b"MSET" | b"MSETNX" => Split::Pairs,
        _ => Split::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::args;

    #[test]
    fn sort_patterns_that_read_keys() {
        let a = args("SORT l BY w_*->f LIMIT 0 5 GET # GET o_* ALPHA STORE dst");
        assert_eq!(sort_patterns(&a), vec![3, 10]);
        assert!(sort_patterns(&args("SORT l BY nosort STORE d")).is_empty());
        assert!(sort_patterns(&args("SET k *")).is_empty());
    }

    #[test]
    fn splits() {
        assert_eq!(split_kind(b"del"), Split::PerKey);
        assert_eq!(split_kind(b"MSETNX"), Split::Pairs);
        assert_eq!(split_kind(b"RENAME"), Split::No);
    }
}
