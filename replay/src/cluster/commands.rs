//! Where a command's keys are, as the destination's own command table says: the reply of
//! `COMMAND`, read once at connect. Redis 7.0 and later describe keys with key specs (an
//! index or a keyword to start from, then a range or a key count); older servers with
//! first/last/step. Either way a command the table cannot place exactly (a `movablekeys`
//! command without complete specs: a module command, SORT's STORE, anything before 7.0 whose
//! keys move) is [`Lookup::AskServer`]: the server is asked with `COMMAND GETKEYS`. A
//! command the table does not hold is [`Lookup::Unknown`], and stops the run.
//!
//! Which keyless writes reach every master comes from the request policy tips (7.0+), or,
//! for older servers, from the names that always do (FLUSHALL, FLUSHDB, SCRIPT, FUNCTION).
//! Pure: the `COMMAND` reply comes in as a frame.

use std::collections::HashMap;

use bytes::Bytes;

use super::keys::Keys;
use crate::resp::Frame;

/// What the table says of a command's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Keys(Keys),
    /// The table cannot tell: ask the server (`COMMAND GETKEYS`).
    AskServer,
    /// The destination does not know this command.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Begin {
    Index(i64),
    Keyword { keyword: Vec<u8>, startfrom: i64 },
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Find {
    Range {
        lastkey: i64,
        keystep: i64,
        limit: i64,
    },
    Keynum {
        keynumidx: i64,
        firstkey: i64,
        keystep: i64,
    },
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct KeySpec {
    begin: Begin,
    find: Find,
    /// Only read (`RO`): a key the command does not change.
    read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Entry {
    movable: bool,
    first: i64,
    last: i64,
    step: i64,
    /// `request_policy:all_shards` / `all_nodes`.
    all_shards: bool,
    specs: Vec<KeySpec>,
    /// Container commands (XGROUP, OBJECT…): their subcommands by name.
    subcommands: bool,
}

/// The destination's commands, by lower-case name (`container|sub` for subcommands).
#[derive(Debug, Clone, Default)]
pub struct CommandTable {
    entries: HashMap<Vec<u8>, Entry>,
    /// Key specs were given (Redis 7.0+).
    specs: bool,
}

/// The keys a lookup found, and which of them the command only reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found {
    pub at: Vec<usize>,
    pub read_only: Vec<usize>,
}

fn int(f: &Frame) -> Option<i64> {
    match f {
        Frame::Integer(i) => Some(*i),
        Frame::BulkString(b) | Frame::SimpleString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn text(f: &Frame) -> Option<Vec<u8>> {
    match f {
        Frame::BulkString(b) | Frame::SimpleString(b) => Some(b.to_ascii_lowercase()),
        _ => None,
    }
}

fn words(f: Option<&Frame>) -> Vec<Vec<u8>> {
    match f {
        Some(Frame::Array(a)) => a.iter().filter_map(text).collect(),
        _ => Vec::new(),
    }
}

/// A RESP2 map (a flat array of names and values) as pairs.
fn map(f: &Frame) -> Vec<(Vec<u8>, &Frame)> {
    let Frame::Array(a) = f else {
        return Vec::new();
    };
    a.chunks(2)
        .filter_map(|p| Some((text(p.first()?)?, p.get(1)?)))
        .collect()
}

fn field<'a>(m: &'a [(Vec<u8>, &'a Frame)], name: &[u8]) -> Option<&'a Frame> {
    m.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

fn spec_of(f: &Frame) -> Option<KeySpec> {
    let m = map(f);
    let flags = words(field(&m, b"flags"));
    let begin = map(field(&m, b"begin_search")?);
    let find = map(field(&m, b"find_keys")?);
    let bspec = field(&begin, b"spec").map(map).unwrap_or_default();
    let fspec = field(&find, b"spec").map(map).unwrap_or_default();
    let num = |m: &[(Vec<u8>, &Frame)], n: &[u8]| field(m, n).and_then(int);
    let begin = match field(&begin, b"type").and_then(text).as_deref() {
        Some(b"index") => Begin::Index(num(&bspec, b"index")?),
        Some(b"keyword") => Begin::Keyword {
            keyword: field(&bspec, b"keyword").and_then(text)?,
            startfrom: num(&bspec, b"startfrom")?,
        },
        _ => Begin::Unknown,
    };
    let find = match field(&find, b"type").and_then(text).as_deref() {
        Some(b"range") => Find::Range {
            lastkey: num(&fspec, b"lastkey")?,
            keystep: num(&fspec, b"keystep")?,
            limit: num(&fspec, b"limit")?,
        },
        Some(b"keynum") => Find::Keynum {
            keynumidx: num(&fspec, b"keynumidx")?,
            firstkey: num(&fspec, b"firstkey")?,
            keystep: num(&fspec, b"keystep")?,
        },
        _ => Find::Unknown,
    };
    Some(KeySpec {
        begin,
        find,
        read_only: flags.iter().any(|f| f == b"ro"),
    })
}

fn entry_of(parts: &[Frame]) -> Option<(Vec<u8>, Entry, Option<&Frame>)> {
    let name = text(parts.first()?)?;
    let flags = words(parts.get(2));
    let tips = words(parts.get(7));
    let specs = match parts.get(8) {
        Some(Frame::Array(s)) => s.iter().filter_map(spec_of).collect(),
        _ => Vec::new(),
    };
    let subs = match parts.get(9) {
        Some(f @ Frame::Array(a)) if !a.is_empty() => Some(f),
        _ => None,
    };
    let e = Entry {
        movable: flags.iter().any(|f| f == b"movablekeys"),
        first: parts.get(3).and_then(int)?,
        last: parts.get(4).and_then(int)?,
        step: parts.get(5).and_then(int)?,
        all_shards: tips
            .iter()
            .any(|t| t == b"request_policy:all_shards" || t == b"request_policy:all_nodes"),
        specs,
        subcommands: subs.is_some(),
    };
    Some((name, e, subs))
}

impl CommandTable {
    /// The table of a `COMMAND` reply.
    pub fn from_reply(reply: &Frame) -> Result<CommandTable, String> {
        let Frame::Array(list) = reply else {
            return Err("COMMAND: not an array".into());
        };
        let mut t = CommandTable::default();
        let add = |parts: &[Frame], t: &mut CommandTable| -> Option<Option<Frame>> {
            let (name, e, subs) = entry_of(parts)?;
            t.specs |= !e.specs.is_empty();
            t.entries.insert(name, e);
            Some(subs.cloned())
        };
        for item in list {
            let Frame::Array(parts) = item else { continue };
            let Some(subs) = add(parts, &mut t) else {
                return Err("COMMAND: an entry without a name or key positions".into());
            };
            if let Some(Frame::Array(subs)) = subs {
                for s in &subs {
                    if let Frame::Array(p) = s {
                        add(p, &mut t);
                    }
                }
            }
        }
        if t.entries.is_empty() {
            return Err("COMMAND: no commands".into());
        }
        Ok(t)
    }

    /// A table of `tests/data/command/` (for unit tests).
    #[cfg(test)]
    pub(crate) fn fixture(file: &str) -> CommandTable {
        let path = format!(
            "{}/../tests/data/command/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut buf = bytes::BytesMut::from(&raw[..]);
        let (frame, _, _) = redis_protocol::resp2::decode::decode_bytes_mut(&mut buf)
            .expect("valid RESP")
            .expect("a whole reply");
        CommandTable::from_reply(&frame).expect("a table")
    }

    /// How many commands (and subcommands) it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn entry(&self, args: &[Bytes]) -> Option<&Entry> {
        let name = args.first()?.to_ascii_lowercase();
        let e = self.entries.get(&name)?;
        if e.subcommands {
            if let Some(sub) = args.get(1) {
                let full = [&name[..], b"|", &sub.to_ascii_lowercase()[..]].concat();
                if let Some(s) = self.entries.get(&full) {
                    return Some(s);
                }
            }
        }
        Some(e)
    }

    /// Where the keys of `args` are (`args[0]` is the name, any case).
    pub fn lookup(&self, args: &[Bytes]) -> (Lookup, Found) {
        let none = Found::default();
        let Some(name) = args.first() else {
            return (Lookup::Keys(Keys::None), none);
        };
        match name.to_ascii_uppercase().as_slice() {
            b"SELECT" | b"MULTI" | b"EXEC" | b"DISCARD" | b"PING" => {
                return (Lookup::Keys(Keys::Drop), none)
            }
            _ => {}
        }
        let Some(e) = self.entry(args) else {
            return (Lookup::Unknown, none);
        };
        let found = if e.specs.is_empty() {
            if e.movable {
                return (Lookup::AskServer, none);
            }
            match legacy(e, args.len()) {
                Some(f) => f,
                None => return (Lookup::AskServer, none),
            }
        } else {
            let mut f = Found::default();
            for s in &e.specs {
                match keys_of(s, args) {
                    Some(at) => {
                        if s.read_only {
                            f.read_only.extend(&at);
                        }
                        f.at.extend(at);
                    }
                    // A spec the table cannot follow: only the server can say.
                    None if e.movable => return (Lookup::AskServer, none),
                    None => {}
                }
            }
            f
        };
        if found.at.is_empty() {
            let broadcast = e.all_shards
                || (!self.specs
                    && matches!(
                        name.to_ascii_uppercase().as_slice(),
                        b"FLUSHALL" | b"FLUSHDB" | b"SCRIPT" | b"FUNCTION"
                    ));
            let k = if broadcast {
                Keys::Broadcast
            } else {
                Keys::None
            };
            return (Lookup::Keys(k), found);
        }
        (Lookup::Keys(Keys::At(found.at.clone())), found)
    }
}

/// Keys from first/last/step (every server since 2.8).
fn legacy(e: &Entry, argc: usize) -> Option<Found> {
    if e.first <= 0 {
        return Some(Found::default());
    }
    let argc = argc as i64;
    let last = if e.last < 0 { argc + e.last } else { e.last };
    let step = e.step.max(1);
    let at: Vec<usize> = (e.first..=last.min(argc - 1))
        .step_by(step as usize)
        .map(|i| i as usize)
        .collect();
    Some(Found {
        at,
        read_only: Vec::new(),
    })
}

/// The keys one spec finds, as Redis's own key-spec walk does; `None` when the spec cannot
/// be followed (unknown), `Some(empty)` when its keyword is absent or its range empty.
fn keys_of(s: &KeySpec, args: &[Bytes]) -> Option<Vec<usize>> {
    let argc = args.len() as i64;
    let first = match &s.begin {
        Begin::Index(i) => *i,
        Begin::Keyword { keyword, startfrom } => {
            let (start, end) = if *startfrom > 0 {
                (*startfrom, argc - 1)
            } else {
                (argc + startfrom, 1)
            };
            let mut i = start;
            let mut at = 0;
            while i != end {
                if i >= argc || i < 1 {
                    break;
                }
                if args[i as usize].eq_ignore_ascii_case(keyword) {
                    at = i + 1;
                    break;
                }
                i = if start <= end { i + 1 } else { i - 1 };
            }
            if at == 0 {
                return Some(Vec::new());
            }
            at
        }
        Begin::Unknown => return None,
    };
    if first >= argc {
        return Some(Vec::new());
    }
    let (first, last, step) = match &s.find {
        Find::Range {
            lastkey,
            keystep,
            limit,
        } => {
            let last = if *lastkey >= 0 {
                first + lastkey
            } else if *limit <= 1 {
                argc + lastkey
            } else {
                first + ((argc - first) / limit + lastkey)
            };
            (first, last, *keystep)
        }
        Find::Keynum {
            keynumidx,
            firstkey,
            keystep,
        } => {
            let n: i64 = args
                .get((first + keynumidx) as usize)
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                .filter(|n: &i64| *n >= 0)?;
            let start = first + firstkey;
            (start, start + (n - 1) * keystep.max(&1), *keystep)
        }
        Find::Unknown => return None,
    };
    let step = step.max(1);
    if last >= argc {
        // More keys than arguments: the server will refuse it; find none, it says why.
        return None;
    }
    Some(
        (first..=last)
            .step_by(step as usize)
            .map(|i| i as usize)
            .collect(),
    )
}

#[cfg(test)]
mod tests;
