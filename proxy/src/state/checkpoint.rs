//! The checkpoint file: where the destination stands in the source's replication stream, and
//! for which pair of servers. A small line-oriented text file (`key value` per line), written
//! atomically: to a temporary file, fsync, rename over the old one, fsync the directory — so a
//! crash at any moment leaves either the old checkpoint or the new one, never a torn one.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;

/// The first line of every checkpoint file.
const MAGIC: &str = "replicant-checkpoint 1";

/// What the destination holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stand {
    /// A snapshot is being copied: the destination is incomplete, a restart must copy again.
    Copying,
    /// The destination has applied the source's stream `replid` up to `offset` (inclusive);
    /// `db` is the source's selected db at that point, when known.
    Streaming {
        replid: String,
        offset: u64,
        db: Option<u64>,
    },
}

/// A checkpoint: the pair it belongs to and where the destination stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `host:port` of the source, as given on the command line.
    pub source: String,
    /// `host:port` of the destination (the seed node of a cluster).
    pub target: String,
    pub stand: Stand,
    /// The node the stream was last read from (a cluster shard's master or replica then),
    /// for the operator: the pair is `source` (and its shard), whichever node serves it.
    pub node: Option<String>,
}

/// A checkpoint file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read the checkpoint {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write the checkpoint {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("the checkpoint {path} is not valid: line {line}: {why}")]
    Invalid {
        path: String,
        line: usize,
        why: String,
    },
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{MAGIC}")?;
        writeln!(f, "source {}", self.source)?;
        writeln!(f, "target {}", self.target)?;
        if let Some(node) = &self.node {
            writeln!(f, "node {node}")?;
        }
        match &self.stand {
            Stand::Copying => writeln!(f, "stand copying"),
            Stand::Streaming { replid, offset, db } => {
                writeln!(f, "stand streaming")?;
                writeln!(f, "replid {replid}")?;
                writeln!(f, "offset {offset}")?;
                match db {
                    Some(db) => writeln!(f, "db {db}"),
                    None => writeln!(f, "db -"),
                }
            }
        }
    }
}

impl Checkpoint {
    /// Parses the text of a checkpoint file (`path` only names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<Checkpoint, CheckpointError> {
        let invalid = |line: usize, why: String| CheckpointError::Invalid {
            path: path.to_string(),
            line,
            why,
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, l)) if l == MAGIC => {}
            _ => return Err(invalid(1, format!("expected {MAGIC:?}"))),
        }
        let mut fields: Vec<(usize, &str, &str)> = Vec::new();
        for (n, l) in lines {
            if l.is_empty() {
                continue;
            }
            let (k, v) = l
                .split_once(' ')
                .ok_or_else(|| invalid(n, format!("expected `key value`, found {l:?}")))?;
            if fields.iter().any(|(_, key, _)| *key == k) {
                return Err(invalid(n, format!("{k} given twice")));
            }
            fields.push((n, k, v));
        }
        let last = text.lines().count();
        let get = |k: &str| {
            fields
                .iter()
                .find(|(_, key, _)| *key == k)
                .map(|(n, _, v)| (*n, *v))
                .ok_or_else(|| invalid(last, format!("{k} is missing")))
        };
        let stand = match get("stand")? {
            (_, "copying") => Stand::Copying,
            (_, "streaming") => {
                let (_, replid) = get("replid")?;
                let (n, offset) = get("offset")?;
                let offset = offset
                    .parse()
                    .map_err(|_| invalid(n, format!("offset {offset:?} is not a number")))?;
                let (n, db) = get("db")?;
                let db = match db {
                    "-" => None,
                    d => Some(
                        d.parse()
                            .map_err(|_| invalid(n, format!("db {d:?} is not a number")))?,
                    ),
                };
                if replid.len() != 40 || !replid.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid(
                        0,
                        format!("replid {replid:?} is not 40 hex digits"),
                    ));
                }
                Stand::Streaming {
                    replid: replid.to_string(),
                    offset,
                    db,
                }
            }
            (n, other) => return Err(invalid(n, format!("unknown stand {other:?}"))),
        };
        Ok(Checkpoint {
            source: get("source")?.1.to_string(),
            target: get("target")?.1.to_string(),
            stand,
            node: get("node").ok().map(|(_, v)| v.to_string()),
        })
    }

    /// Reads `path`; `Ok(None)` when there is no such file.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
        let shown = path.display().to_string();
        match fs::read(path) {
            Ok(bytes) => {
                if bytes.len() > 64 * 1024 {
                    return Err(CheckpointError::Invalid {
                        path: shown,
                        line: 0,
                        why: format!("{} bytes is too large for a checkpoint", bytes.len()),
                    });
                }
                let text = String::from_utf8(bytes).map_err(|e| CheckpointError::Invalid {
                    path: shown.clone(),
                    line: 0,
                    why: format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()),
                })?;
                Checkpoint::parse(&text, &shown).map(Some)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CheckpointError::Read {
                path: shown,
                source,
            }),
        }
    }

    /// Writes atomically to `path` (through `path` + `.tmp`).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let err = |source| CheckpointError::Write {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let mut f = fs::File::create(&tmp).map_err(err)?;
        f.write_all(self.to_string().as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        fs::rename(&tmp, path).map_err(err)?;
        if let Some(dir) = path.parent() {
            // The rename is durable once the directory is; not every platform can sync one.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streaming(db: Option<u64>) -> Checkpoint {
        Checkpoint {
            source: "127.0.0.1:6379".into(),
            target: "10.0.0.1:7000".into(),
            stand: Stand::Streaming {
                replid: "0123456789abcdef0123456789abcdef01234567".into(),
                offset: 123456,
                db,
            },
            node: None,
        }
    }

    #[test]
    fn round_trips() {
        for c in [
            streaming(Some(3)),
            streaming(None),
            Checkpoint {
                node: Some("10.0.0.2:7001".into()),
                ..streaming(Some(0))
            },
            Checkpoint {
                stand: Stand::Copying,
                ..streaming(None)
            },
        ] {
            assert_eq!(Checkpoint::parse(&c.to_string(), "x").expect("parses"), c);
        }
    }

    #[test]
    fn saves_atomically_and_loads() {
        let dir = std::env::temp_dir().join(format!("replicant-ckpt-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("checkpoint");
        assert!(Checkpoint::load(&path).expect("absent is fine").is_none());
        let c = streaming(Some(0));
        c.save(&path).expect("save");
        assert_eq!(Checkpoint::load(&path).expect("load"), Some(c));
        assert!(!path.with_extension("tmp").exists());
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn names_what_is_wrong() {
        let bad = [
            ("", "expected"),
            ("replicant-checkpoint 1\nsource a\ntarget b\n", "stand is missing"),
            (
                "replicant-checkpoint 1\nsource a\ntarget b\nstand streaming\nreplid x\noffset 1\ndb -\n",
                "40 hex digits",
            ),
            (
                "replicant-checkpoint 1\nsource a\ntarget b\nstand streaming\nreplid 0123456789abcdef0123456789abcdef01234567\noffset -1\ndb -\n",
                "line 6: offset",
            ),
            ("replicant-checkpoint 1\nsource a\nsource b\n", "twice"),
            ("replicant-checkpoint 1\nnonsense\n", "key value"),
        ];
        for (text, want) in bad {
            let e = Checkpoint::parse(text, "ck").expect_err(text).to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }
}
