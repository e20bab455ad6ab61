//! The decoded content of a value, handed out in bounded pieces: what the rewrite path turns
//! into ordinary commands (RPUSH, SADD, ZADD, HSET, XADD, ...).

use bytes::Bytes;

pub use super::blob::stream_node::{StreamEntry, StreamId};

/// One bounded piece of a value's content. A value is the concatenation of its pieces, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// The whole string value.
    Str(Bytes),
    /// List elements, head to tail.
    List(Vec<Bytes>),
    /// Set members.
    Set(Vec<Bytes>),
    /// Sorted set members with scores.
    Zset(Vec<(Bytes, f64)>),
    /// Hash fields and values.
    Hash(Vec<(Bytes, Bytes)>),
    /// Hash fields with their absolute expiry in unix ms (0: none).
    HashTtl(Vec<(Bytes, Bytes, u64)>),
    /// Live stream entries, in ID order.
    StreamEntries(Vec<StreamEntry>),
    /// The stream's metadata; comes after all its entries.
    StreamMeta(StreamMeta),
    /// One consumer group, whole (its pending entries list included); after the metadata.
    StreamGroup(StreamGroup),
}

impl Piece {
    /// Approximate bytes held, for batch bounds.
    pub fn weight(&self) -> usize {
        match self {
            Piece::Str(b) => b.len(),
            Piece::List(v) | Piece::Set(v) => v.iter().map(Self::element_weight).sum(),
            Piece::Zset(v) => v.iter().map(|(m, _)| Self::scored_weight(m)).sum(),
            Piece::Hash(v) => v.iter().map(|(f, x)| Self::pair_weight(f, x)).sum(),
            Piece::HashTtl(v) => v.iter().map(|(f, x, _)| f.len() + x.len() + 24).sum(),
            Piece::StreamEntries(v) => v
                .iter()
                .map(|e| {
                    16 + e
                        .fields
                        .iter()
                        .map(|(f, x)| f.len() + x.len())
                        .sum::<usize>()
                })
                .sum(),
            Piece::StreamMeta(_) => 64,
            Piece::StreamGroup(g) => 64 + g.pending.len() * 48,
        }
    }

    /// Weight of one list element or set member.
    pub(crate) fn element_weight(e: &Bytes) -> usize {
        e.len() + 16
    }

    /// Weight of one sorted set member with its score.
    pub(crate) fn scored_weight(m: &Bytes) -> usize {
        m.len() + 24
    }

    /// Weight of one hash field with its value.
    pub(crate) fn pair_weight(f: &Bytes, x: &Bytes) -> usize {
        f.len() + x.len() + 16
    }

    /// Number of elements (list items, members, fields, entries) in this piece.
    pub fn count(&self) -> usize {
        match self {
            Piece::Str(_) | Piece::StreamMeta(_) | Piece::StreamGroup(_) => 1,
            Piece::List(v) | Piece::Set(v) => v.len(),
            Piece::Zset(v) => v.len(),
            Piece::Hash(v) => v.len(),
            Piece::HashTtl(v) => v.len(),
            Piece::StreamEntries(v) => v.len(),
        }
    }
}

/// Stream metadata as the RDB holds it (fields of later versions are `None` in older ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMeta {
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: Option<StreamId>,
    pub max_deleted_id: Option<StreamId>,
    pub entries_added: Option<u64>,
}

/// A consumer group with its pending entries and consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamGroup {
    pub name: Bytes,
    pub last_id: StreamId,
    pub entries_read: Option<u64>,
    /// Pending entries: ID, owning consumer, last delivery time (unix ms), delivery count.
    pub pending: Vec<Pending>,
    /// Every consumer, including those with nothing pending.
    pub consumers: Vec<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: StreamId,
    pub consumer: Bytes,
    pub delivery_time: i64,
    pub delivery_count: u64,
}
