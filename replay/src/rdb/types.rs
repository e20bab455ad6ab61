//! RDB value type codes: what each holds, which logical Redis type it is, and the oldest RDB
//! version (hence server) that understands it in a DUMP payload.

/// The logical type a value has once loaded, as `TYPE` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logical {
    String,
    List,
    Set,
    Zset,
    Hash,
    Stream,
    Module,
}

/// The opcode of a function library (`FUNCTION2`, Redis 7.0+), in an RDB and in the payload of
/// `FUNCTION DUMP`.
pub const OPCODE_FUNCTION2: u8 = 0xF5;

impl Logical {
    pub fn name(self) -> &'static str {
        match self {
            Logical::String => "string",
            Logical::List => "list",
            Logical::Set => "set",
            Logical::Zset => "zset",
            Logical::Hash => "hash",
            Logical::Stream => "stream",
            Logical::Module => "module",
        }
    }
}

/// How the bytes of a value of a given type code are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// 0: one string.
    String,
    /// 1, 2: count + strings.
    Strings,
    /// 3: count + (member, text double).
    ZsetText,
    /// 5: count + (member, 8-byte double).
    ZsetBinary,
    /// 4: count + (field, value).
    Pairs,
    /// One string holding an encoded blob (ziplist, listpack, intset, zipmap).
    Blob(Blob),
    /// 14: count + ziplists.
    Quicklist,
    /// 18: count + (container, blob).
    Quicklist2,
    /// 15, 19, 21: stream.
    Stream { version: u8 },
    /// 22 (no min-expire prefix), 24: [min-expire] count + (ttl, field, value).
    HashTtl { min_expire: bool },
    /// 23 (no prefix), 25: [min-expire] + listpack of (field, value, expire-ms).
    HashListpackTtl { min_expire: bool },
    /// 7: module id + tagged items ending in 0.
    Module2,
}

/// The encoding of a single-string blob value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Blob {
    Zipmap,
    ListZiplist,
    Intset,
    ZsetZiplist,
    HashZiplist,
    HashListpack,
    ZsetListpack,
    SetListpack,
}

/// What a value type code means: its layout and logical type. `None` for codes that are not
/// value types, or that cannot be read without the module that wrote them (6).
pub(crate) fn layout(ty: u8) -> Option<(Layout, Logical)> {
    use Layout as L;
    use Logical as T;
    Some(match ty {
        0 => (L::String, T::String),
        1 => (L::Strings, T::List),
        2 => (L::Strings, T::Set),
        3 => (L::ZsetText, T::Zset),
        4 => (L::Pairs, T::Hash),
        5 => (L::ZsetBinary, T::Zset),
        7 => (L::Module2, T::Module),
        9 => (L::Blob(Blob::Zipmap), T::Hash),
        10 => (L::Blob(Blob::ListZiplist), T::List),
        11 => (L::Blob(Blob::Intset), T::Set),
        12 => (L::Blob(Blob::ZsetZiplist), T::Zset),
        13 => (L::Blob(Blob::HashZiplist), T::Hash),
        14 => (L::Quicklist, T::List),
        15 => (L::Stream { version: 1 }, T::Stream),
        16 => (L::Blob(Blob::HashListpack), T::Hash),
        17 => (L::Blob(Blob::ZsetListpack), T::Zset),
        18 => (L::Quicklist2, T::List),
        19 => (L::Stream { version: 2 }, T::Stream),
        20 => (L::Blob(Blob::SetListpack), T::Set),
        21 => (L::Stream { version: 3 }, T::Stream),
        22 => (L::HashTtl { min_expire: false }, T::Hash),
        23 => (L::HashListpackTtl { min_expire: false }, T::Hash),
        24 => (L::HashTtl { min_expire: true }, T::Hash),
        25 => (L::HashListpackTtl { min_expire: true }, T::Hash),
        _ => return None,
    })
}

/// The logical type of values of type code `ty`, if it is one replicant knows.
pub fn logical(ty: u8) -> Option<Logical> {
    layout(ty).map(|(_, l)| l)
}

/// The oldest RDB version whose loader understands type code `ty` (so a DUMP payload of that
/// type can be stamped with any version from this one up to the destination's own).
pub fn min_rdb_version(ty: u8) -> u32 {
    match ty {
        0..=4 => 1,
        9..=12 => 2,
        13 => 4,
        14 => 7,
        5..=7 => 8,
        15 => 9,
        16..=19 => 10,
        20 | 21 => 11,
        _ => 12,
    }
}

/// The RDB version a server writes and accepts in DUMP payloads, from its `redis_version`.
pub fn rdb_version_of_server(major: u32, minor: u32) -> u32 {
    match (major, minor) {
        (0..=2, _) | (3, 0) => 6,
        (3, _) => 7,
        (4, _) => 8,
        (5, _) | (6, _) => 9,
        (7, 0) | (7, 1) => 10,
        (7, 2) | (7, 3) => 11,
        (7, _) => 12,
        (8, 0..=5) => 12,
        (8, 6) | (8, 7) => 13,
        _ => 14,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_code_has_a_layout() {
        for ty in (0..=5).chain(7..=7).chain(9..=25) {
            assert!(layout(ty).is_some(), "type {ty}");
        }
        assert!(layout(6).is_none());
        assert!(layout(8).is_none());
        assert!(layout(26).is_none());
    }

    #[test]
    fn server_versions() {
        assert_eq!(rdb_version_of_server(7, 0), 10);
        assert_eq!(rdb_version_of_server(7, 2), 11);
        assert_eq!(rdb_version_of_server(7, 4), 12);
        assert_eq!(rdb_version_of_server(6, 2), 9);
        assert!(min_rdb_version(20) > rdb_version_of_server(7, 0));
        assert!(min_rdb_version(16) <= rdb_version_of_server(7, 0));
    }
}
