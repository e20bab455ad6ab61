//! The RDB fixtures under `tests/data/rdb` (a copy of the shared fixtures, with their
//! licences) and what their headers say.

use std::fs;
use std::path::{Path, PathBuf};

/// `tests/data/rdb` of this package.
pub fn rdb_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("rdb")
}

/// One fixture by its path under `tests/data/rdb`, e.g. `librdb/empty.rdb`; panics if missing.
pub fn rdb(relative: &str) -> PathBuf {
    let path = rdb_dir().join(relative);
    assert!(path.is_file(), "missing fixture {}", path.display());
    path
}

/// Every `*.rdb` under `tests/data/rdb`, sorted, so runs are repeatable.
pub fn all_rdb_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    collect_rdb_files(&rdb_dir(), &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.rdb fixtures under {}",
        rdb_dir().display()
    );
    files
}

fn collect_rdb_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list fixtures in {}: {err}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|err| panic!("cannot list fixtures in {}: {err}", dir.display()))
            .path();
        if path.is_dir() {
            collect_rdb_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rdb") {
            out.push(path);
        }
    }
}

/// The path relative to `tests/data/rdb`, for messages.
pub fn short_name(path: &Path) -> String {
    path.strip_prefix(rdb_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The RDB version in a `REDIS%04d` header, if the file starts with one.
pub fn rdb_version(path: &Path) -> Option<u32> {
    let bytes = fs::read(path).ok()?;
    let digits = bytes.strip_prefix(b"REDIS")?.get(..4)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_known_fixtures() {
        assert_eq!(rdb_version(&rdb("servers/redis-7.0.15.rdb")), Some(10));
        assert_eq!(rdb_version(&rdb("servers/redis-7.4.1.rdb")), Some(12));
        assert_eq!(short_name(&rdb("librdb/empty.rdb")), "librdb/empty.rdb");
        assert!(all_rdb_files().len() > 50);
    }
}
