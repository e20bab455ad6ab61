//! The `*.manifest.txt` files beside the server-written fixtures (`tests/data/rdb/servers`),
//! and checking a server against one.
//!
//! A manifest is redis-cli output, one key a line:
//! `12) "db0 list:big type=list enc=quicklist len=3000 persist"`, quoted the way redis-cli
//! quotes (`\xHH`, `\"`, `\\`, `\n`, …), so binary key names survive. `len` is what STRLEN,
//! LLEN, SCARD, ZCARD, HLEN or XLEN answers; the last word is `ttl` or `persist`.

use std::collections::BTreeMap;
use std::path::Path;

use redis::Connection;

/// One key of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub db: u8,
    pub key: Vec<u8>,
    pub key_type: String,
    /// The encoding on the server that wrote the file (informative: the destination may
    /// encode differently).
    pub encoding: String,
    pub len: u64,
    pub has_ttl: bool,
}

/// Reads a manifest file.
pub fn read(path: &Path) -> Result<Vec<ManifestEntry>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    parse(&text)
}

/// Parses the text of a manifest.
pub fn parse(text: &str) -> Result<Vec<ManifestEntry>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| parse_line(line).map_err(|err| format!("{err} in manifest line {line:?}")))
        .collect()
}

fn parse_line(line: &str) -> Result<ManifestEntry, String> {
    let quoted = line.split_once(") ").map_or(line, |(_, rest)| rest).trim();
    let bytes = unquote(quoted)?;
    let (db, rest) = split_first_word(&bytes).ok_or("no db")?;
    let db = std::str::from_utf8(db)
        .ok()
        .and_then(|db| db.strip_prefix("db"))
        .and_then(|n| n.parse().ok())
        .ok_or("bad db")?;
    // The key may contain spaces: the four words after it are taken from the end.
    let mut words = rest.rsplitn(5, |&b| b == b' ');
    let ttl = words.next().ok_or("no ttl word")?;
    let len = words.next().ok_or("no len")?;
    let encoding = words.next().ok_or("no enc")?;
    let key_type = words.next().ok_or("no type")?;
    let key = words.next().ok_or("no key")?;
    let field = |word: &[u8], name: &str| -> Result<String, String> {
        String::from_utf8_lossy(word)
            .strip_prefix(name)
            .map(str::to_string)
            .ok_or_else(|| format!("expected {name}…"))
    };
    Ok(ManifestEntry {
        db,
        key: key.to_vec(),
        key_type: field(key_type, "type=")?,
        encoding: field(encoding, "enc=")?,
        len: field(len, "len=")?
            .parse()
            .map_err(|_| "bad len".to_string())?,
        has_ttl: match ttl {
            b"ttl" => true,
            b"persist" => false,
            _ => return Err("expected ttl or persist".to_string()),
        },
    })
}

fn split_first_word(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = bytes.iter().position(|&b| b == b' ')?;
    Some((&bytes[..space], &bytes[space + 1..]))
}

/// Undoes redis-cli's quoting of one `"…"` string.
fn unquote(quoted: &str) -> Result<Vec<u8>, String> {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or("not a quoted string")?
        .as_bytes();
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] != b'\\' {
            out.push(inner[i]);
            i += 1;
            continue;
        }
        let escaped = *inner.get(i + 1).ok_or("dangling backslash")?;
        i += 2;
        out.push(match escaped {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'a' => 0x07,
            b'b' => 0x08,
            b'x' => {
                let hex = inner.get(i..i + 2).ok_or("short \\x escape")?;
                i += 2;
                std::str::from_utf8(hex)
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or("bad \\x escape")?
            }
            other => other,
        });
    }
    Ok(out)
}

/// Checks that the server behind `con` holds exactly the manifest's keys, each with its type,
/// its length and a TTL where the manifest says `ttl`. One line per problem.
pub fn check(con: &mut Connection, entries: &[ManifestEntry]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut per_db: BTreeMap<u8, u64> = BTreeMap::new();
    for entry in entries {
        *per_db.entry(entry.db).or_default() += 1;
        if let Err(err) = check_entry(con, entry) {
            problems.push(format!(
                "db{} {}: {err}",
                entry.db,
                crate::display::show(&entry.key)
            ));
        }
    }
    for db in 0..crate::compare::DATABASES {
        let expected = per_db.get(&db).copied().unwrap_or(0);
        let actual = redis::cmd("SELECT")
            .arg(db)
            .query::<()>(con)
            .and_then(|()| redis::cmd("DBSIZE").query::<u64>(con));
        match actual {
            Ok(actual) if actual == expected => {}
            Ok(actual) => problems.push(format!(
                "db{db}: {actual} keys, the manifest lists {expected}"
            )),
            Err(err) => problems.push(format!("db{db}: DBSIZE failed: {err}")),
        }
    }
    problems
}

fn check_entry(con: &mut Connection, entry: &ManifestEntry) -> Result<(), String> {
    let fail = |err: redis::RedisError| err.to_string();
    redis::cmd("SELECT")
        .arg(entry.db)
        .query::<()>(con)
        .map_err(fail)?;
    let actual_type: String = redis::cmd("TYPE")
        .arg(&entry.key)
        .query(con)
        .map_err(fail)?;
    if actual_type != entry.key_type {
        return Err(format!("type {actual_type}, expected {}", entry.key_type));
    }
    let len_command = match entry.key_type.as_str() {
        "string" => "STRLEN",
        "list" => "LLEN",
        "set" => "SCARD",
        "zset" => "ZCARD",
        "hash" => "HLEN",
        "stream" => "XLEN",
        other => return Err(format!("unknown type {other}")),
    };
    let len: u64 = redis::cmd(len_command)
        .arg(&entry.key)
        .query(con)
        .map_err(fail)?;
    if len != entry.len {
        return Err(format!("{len_command} {len}, expected {}", entry.len));
    }
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&entry.key)
        .query(con)
        .map_err(fail)?;
    if entry.has_ttl != (pttl >= 0) {
        return Err(format!(
            "PTTL {pttl}, expected {}",
            if entry.has_ttl { "a TTL" } else { "none" }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let text =
            " 9) \"db0 key:binary-name:\\x00\\xff\\x7f type=string enc=embstr len=19 persist\"\n\
                    60) \"db3 db3:intset type=set enc=intset len=3 ttl\"\n";
        let entries = parse(text).expect("valid manifest");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].key, b"key:binary-name:\x00\xff\x7f".to_vec());
        assert_eq!(entries[0].key_type, "string");
        assert_eq!(entries[0].len, 19);
        assert!(!entries[0].has_ttl);
        assert_eq!(entries[1].db, 3);
        assert_eq!(entries[1].encoding, "intset");
        assert!(entries[1].has_ttl);
    }

    #[test]
    fn reads_the_fixture_manifests() {
        let dir = crate::fixtures::rdb_dir().join("servers");
        let v7 = read(&dir.join("redis-7.0.15.manifest.txt")).expect("valid manifest");
        let v74 = read(&dir.join("redis-7.4.1.manifest.txt")).expect("valid manifest");
        assert_eq!((v7.len(), v74.len()), (63, 69));
        assert!(v74.iter().any(|e| e.key == b"hfe:keyttl" && e.has_ttl));
        assert!(v74.iter().any(|e| e.key.len() == 300));
    }
}
