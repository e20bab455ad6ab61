//! Where the keys of a write command are, for routing it to the node that owns them. The
//! commands a replication stream carries are writes (effects, since Redis 5), so the table
//! covers those; a command it does not know is taken to have its key first, as most do.

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

/// The keys of `args` (`args[0]` is the command name, any case).
pub fn keys(args: &[Bytes]) -> Keys {
    let Some(name) = args.first() else {
        return Keys::None;
    };
    let n = args.len();
    let up = name.to_ascii_uppercase();
    let range = |from: usize, step: usize| Keys::At((from..n).step_by(step).collect());
    let numkeys = |at: usize| -> Keys {
        let count = args
            .get(at)
            .and_then(|c| std::str::from_utf8(c).ok()?.parse::<usize>().ok())
            .unwrap_or(0);
        Keys::At((at + 1..(at + 1 + count).min(n)).collect())
    };
    match up.as_slice() {
        b"SELECT" | b"MULTI" | b"EXEC" | b"DISCARD" | b"PING" => Keys::Drop,
        b"FLUSHALL" | b"FLUSHDB" | b"FUNCTION" | b"SCRIPT" => Keys::Broadcast,
        b"PUBLISH" | b"SWAPDB" => Keys::None,
        b"DEL" | b"UNLINK" | b"TOUCH" | b"EXISTS" | b"PFMERGE" | b"SINTERSTORE"
        | b"SUNIONSTORE" | b"SDIFFSTORE" | b"WATCH" => range(1, 1),
        b"MSET" | b"MSETNX" => range(1, 2),
        b"RENAME" | b"RENAMENX" | b"SMOVE" | b"LMOVE" | b"RPOPLPUSH" | b"BLMOVE"
        | b"BRPOPLPUSH" | b"COPY" | b"ZRANGESTORE" | b"GEOSEARCHSTORE" => {
            Keys::At((1..n.min(3)).collect())
        }
        b"BITOP" => range(2, 1),
        // The key to sort or search, and the one after STORE/STOREDIST.
        b"SORT" | b"GEORADIUS" | b"GEORADIUSBYMEMBER" => {
            let mut at = vec![1];
            at.extend(
                (2..n.saturating_sub(1))
                    .filter(|&i| {
                        args[i].eq_ignore_ascii_case(b"STORE")
                            || args[i].eq_ignore_ascii_case(b"STOREDIST")
                    })
                    .map(|i| i + 1),
            );
            Keys::At(at)
        }
        // Container commands: the key follows the subcommand.
        b"XGROUP" | b"XINFO" | b"OBJECT" | b"MEMORY" if n > 2 => Keys::At(vec![2]),
        b"ZUNIONSTORE" | b"ZINTERSTORE" | b"ZDIFFSTORE" => {
            let mut k = numkeys(2);
            if let Keys::At(v) = &mut k {
                v.insert(0, 1);
            }
            k
        }
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => numkeys(2),
        b"LMPOP" | b"ZMPOP" | b"SINTERCARD" | b"ZINTERCARD" => numkeys(1),
        b"BLMPOP" | b"BZMPOP" => numkeys(2),
        _ if n > 1 => Keys::At(vec![1]),
        _ => Keys::None,
    }
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

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn key_positions() {
        assert_eq!(keys(&args("set k v")), Keys::At(vec![1]));
        assert_eq!(keys(&args("MSET a 1 b 2")), Keys::At(vec![1, 3]));
        assert_eq!(keys(&args("DEL a b c")), Keys::At(vec![1, 2, 3]));
        assert_eq!(
            keys(&args("ZUNIONSTORE d 2 a b WEIGHTS 1 2")),
            Keys::At(vec![1, 3, 4])
        );
        assert_eq!(keys(&args("EVAL s 1 k arg")), Keys::At(vec![3]));
        assert_eq!(keys(&args("BITOP AND d a b")), Keys::At(vec![2, 3, 4]));
        assert_eq!(keys(&args("RENAME a b")), Keys::At(vec![1, 2]));
        assert_eq!(keys(&args("EVAL s 9 k")), Keys::At(vec![3]));
        assert_eq!(keys(&args("FLUSHALL")), Keys::Broadcast);
        assert_eq!(keys(&args("select 3")), Keys::Drop);
        assert_eq!(keys(&args("PUBLISH ch msg")), Keys::None);
        assert_eq!(
            keys(&args("XGROUP CREATE st g $ MKSTREAM")),
            Keys::At(vec![2])
        );
        assert_eq!(
            keys(&args("XGROUP CREATECONSUMER st g c")),
            Keys::At(vec![2])
        );
    }

    #[test]
    fn splits() {
        assert_eq!(split_kind(b"del"), Split::PerKey);
        assert_eq!(split_kind(b"MSETNX"), Split::Pairs);
        assert_eq!(split_kind(b"RENAME"), Split::No);
    }
}
