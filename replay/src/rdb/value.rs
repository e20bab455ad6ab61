//! A resumable reader of one RDB value, one unit at a time (an element, a pair, a blob, a
//! stream node, a pending entry...), so that a value of any size can be skimmed (to find where
//! it ends and keep its raw bytes) or decoded into bounded [`Piece`]s without ever holding more
//! than one unit beyond what the caller chose to keep.
//!
//! [`ValueReader::next_unit`] only looks at bytes and moves the reader's phase; it is the same
//! for skimming and decoding. [`ValueReader::materialize`] turns a completed unit into content,
//! given the unit's bytes as `Bytes` (strings become slices of them, no copy).

use std::collections::HashMap;

use bytes::Bytes;

use super::blob::{self, stream_node::StreamId, Item};
use super::cursor::{corrupt, Cursor, Fail, Res, StrRef};
use super::decoded::{Pending, Piece, StreamGroup, StreamMeta};
use super::types::{Blob, Layout, Logical};

/// Where the reader stands inside the value. Counts are what is left to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Items(u64),
    Nodes(u64),
    Meta,
    Groups(u64),
    GroupPel {
        left: u64,
        groups: u64,
    },
    Consumers {
        left: u64,
        groups: u64,
    },
    ConsumerPel {
        left: u64,
        consumers: u64,
        groups: u64,
    },
    ModuleItems,
    Done,
}

/// One completed unit; ranges are relative to the slice given to `next_unit`.
#[derive(Debug)]
pub(crate) enum Unit {
    /// Bytes that carry no content (counts, module data, transitions).
    Skip,
    Str(StrRef),
    Pair(StrRef, StrRef),
    Scored(StrRef, f64),
    Blob(StrRef),
    QuicklistNode {
        plain: bool,
        data: StrRef,
    },
    HashTtl {
        ttl: u64,
        field: StrRef,
        value: StrRef,
    },
    StreamNode {
        master: [u8; 16],
        lp: StrRef,
    },
    StreamMeta(StreamMeta),
    GroupHead {
        name: StrRef,
        last_id: StreamId,
        entries_read: Option<u64>,
    },
    GroupPending {
        id: StreamId,
        time: i64,
        count: u64,
    },
    ConsumerHead {
        name: StrRef,
    },
    ConsumerPending(StreamId),
    GroupEnd,
}

/// Reads one value of a known layout.
#[derive(Debug)]
pub(crate) struct ValueReader {
    layout: Layout,
    logical: Logical,
    phase: Phase,
    /// Hash field TTL base (types 24/25); absolute TTLs when absent.
    min_expire: Option<u64>,
    /// Largest single string accepted.
    limit: u64,
    /// Content decoded and not yet taken, and its weight.
    pending: Vec<Piece>,
    weight: usize,
    /// The group being assembled (decoding only): pending entries wait for their consumer.
    group: Option<GroupBuild>,
}

#[derive(Debug)]
struct GroupBuild {
    group: StreamGroup,
    /// Index into `group.pending` by ID, to attach each consumer's IDs.
    by_id: HashMap<StreamId, usize>,
    consumer: Bytes,
}

impl ValueReader {
    pub(crate) fn new(layout: Layout, logical: Logical, limit: u64) -> Self {
        ValueReader {
            layout,
            logical,
            phase: Phase::Start,
            min_expire: None,
            limit,
            pending: Vec::new(),
            weight: 0,
            group: None,
        }
    }

    /// Approximate bytes of decoded content waiting to be taken.
    pub(crate) fn pending_weight(&self) -> usize {
        self.weight
    }

    /// Hands out the content decoded so far.
    pub(crate) fn take(&mut self) -> Vec<Piece> {
        self.weight = 0;
        std::mem::take(&mut self.pending)
    }

    pub(crate) fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether values of this layout can be decoded piece by piece (otherwise the value is one
    /// unit, or opaque, and is always kept whole).
    pub(crate) fn streamable(layout: Layout) -> bool {
        !matches!(
            layout,
            Layout::String | Layout::Blob(_) | Layout::Module2 | Layout::HashListpackTtl { .. }
        )
    }

    /// Reads the next unit from `buf`, returning its length in bytes. `Fail::Incomplete` leaves
    /// the reader unchanged.
    pub(crate) fn next_unit(&mut self, buf: &[u8]) -> Res<(usize, Unit)> {
        let mut c = Cursor::new(buf, self.limit);
        let (phase, unit) = self.read(&mut c)?;
        self.phase = phase;
        Ok((c.pos, unit))
    }

    fn read(&mut self, c: &mut Cursor<'_>) -> Res<(Phase, Unit)> {
        use Phase as P;
        let after = |left: u64| if left == 0 { P::Done } else { P::Items(left) };
        match (self.phase, self.layout) {
            (P::Done, _) => corrupt(c.pos, "read past the end of a value"),
            (P::Start, Layout::String) => Ok((P::Done, Unit::Str(c.string()?))),
            (P::Start, Layout::Blob(_)) => Ok((P::Done, Unit::Blob(c.string()?))),
            (P::Start, Layout::HashListpackTtl { min_expire }) => {
                if min_expire {
                    c.u64_le()?;
                }
                Ok((P::Done, Unit::Blob(c.string()?)))
            }
            (P::Start, Layout::HashTtl { min_expire }) => {
                let base = if min_expire { Some(c.u64_le()?) } else { None };
                let n = c.count("hash")?;
                self.min_expire = base;
                Ok((after(n), Unit::Skip))
            }
            (P::Start, Layout::Stream { .. }) => {
                let n = c.count("stream node")?;
                Ok((if n == 0 { P::Meta } else { P::Nodes(n) }, Unit::Skip))
            }
            (P::Start, Layout::Module2) => {
                c.len()?;
                Ok((P::ModuleItems, Unit::Skip))
            }
            (P::Start, _) => {
                let n = c.count("element")?;
                Ok((after(n), Unit::Skip))
            }
            (P::Items(left), layout) => {
                let unit = match layout {
                    Layout::Strings => Unit::Str(c.string()?),
                    Layout::Pairs => Unit::Pair(c.string()?, c.string()?),
                    Layout::ZsetText => Unit::Scored(c.string()?, c.text_double()?),
                    Layout::ZsetBinary => Unit::Scored(c.string()?, c.f64_le()?),
                    Layout::Quicklist => Unit::QuicklistNode {
                        plain: false,
                        data: c.string()?,
                    },
                    Layout::Quicklist2 => {
                        let at = c.pos;
                        let plain = match c.len()? {
                            1 => true,
                            2 => false,
                            other => return corrupt(at, format!("quicklist container {other}")),
                        };
                        Unit::QuicklistNode {
                            plain,
                            data: c.string()?,
                        }
                    }
                    Layout::HashTtl { .. } => {
                        let ttl = c.len()?;
                        Unit::HashTtl {
                            ttl,
                            field: c.string()?,
                            value: c.string()?,
                        }
                    }
                    _ => return corrupt(c.pos, "element of a single-unit value"),
                };
                Ok((after(left - 1), unit))
            }
            (P::Nodes(left), _) => {
                let at = c.pos;
                let master = match c.string()? {
                    StrRef::Raw(r) if r.len() == 16 => {
                        let mut m = [0u8; 16];
                        m.copy_from_slice(c.slice(r));
                        m
                    }
                    _ => return corrupt(at, "stream node master ID is not 16 bytes"),
                };
                let lp = c.string()?;
                let next = if left == 1 {
                    P::Meta
                } else {
                    P::Nodes(left - 1)
                };
                Ok((next, Unit::StreamNode { master, lp }))
            }
            (P::Meta, Layout::Stream { version }) => {
                let length = c.len()?;
                let last_id = id_pair(c)?;
                let (first_id, max_deleted_id, entries_added) = if version >= 2 {
                    (Some(id_pair(c)?), Some(id_pair(c)?), Some(c.len()?))
                } else {
                    (None, None, None)
                };
                let groups = c.count("consumer group")?;
                let meta = StreamMeta {
                    length,
                    last_id,
                    first_id,
                    max_deleted_id,
                    entries_added,
                };
                Ok((P::Groups(groups), Unit::StreamMeta(meta)))
            }
            (P::Groups(0), _) => Ok((P::Done, Unit::Skip)),
            (P::Groups(groups), Layout::Stream { version }) => {
                let name = c.string()?;
                let last_id = id_pair(c)?;
                let entries_read = if version >= 2 { Some(c.len()?) } else { None };
                let left = c.count("pending entry")?;
                let phase = P::GroupPel {
                    left,
                    groups: groups - 1,
                };
                Ok((
                    phase,
                    Unit::GroupHead {
                        name,
                        last_id,
                        entries_read,
                    },
                ))
            }
            (P::GroupPel { left: 0, groups }, _) => {
                let left = c.count("consumer")?;
                Ok((P::Consumers { left, groups }, Unit::Skip))
            }
            (P::GroupPel { left, groups }, _) => {
                let id = raw_id(c)?;
                let time = c.i64_le()?;
                let count = c.len()?;
                let phase = P::GroupPel {
                    left: left - 1,
                    groups,
                };
                Ok((phase, Unit::GroupPending { id, time, count }))
            }
            (P::Consumers { left: 0, groups }, _) => Ok((P::Groups(groups), Unit::GroupEnd)),
            (P::Consumers { left, groups }, Layout::Stream { version }) => {
                let name = c.string()?;
                c.i64_le()?; // seen time
                if version >= 3 {
                    c.i64_le()?; // active time
                }
                let ids = c.count("consumer pending entry")?;
                let phase = P::ConsumerPel {
                    left: ids,
                    consumers: left - 1,
                    groups,
                };
                Ok((phase, Unit::ConsumerHead { name }))
            }
            (
                P::ConsumerPel {
                    left: 0,
                    consumers,
                    groups,
                },
                _,
            ) => Ok((
                P::Consumers {
                    left: consumers,
                    groups,
                },
                Unit::Skip,
            )),
            (
                P::ConsumerPel {
                    left,
                    consumers,
                    groups,
                },
                _,
            ) => {
                let id = raw_id(c)?;
                let phase = P::ConsumerPel {
                    left: left - 1,
                    consumers,
                    groups,
                };
                Ok((phase, Unit::ConsumerPending(id)))
            }
            (P::ModuleItems, _) => {
                let at = c.pos;
                let phase = match c.len()? {
                    0 => P::Done,
                    1 | 2 => {
                        c.len()?;
                        P::ModuleItems
                    }
                    3 => {
                        c.take(4)?;
                        P::ModuleItems
                    }
                    4 => {
                        c.take(8)?;
                        P::ModuleItems
                    }
                    5 => {
                        c.string()?;
                        P::ModuleItems
                    }
                    op => return corrupt(at, format!("unknown module value opcode {op}")),
                };
                Ok((phase, Unit::Skip))
            }
            (phase, layout) => corrupt(
                c.pos,
                format!("value reader in phase {phase:?} for layout {layout:?}"),
            ),
        }
    }

    /// Checks an encoded blob that will be sent on whole, as Redis checks it when loading: the
    /// old encodings that Redis converts on load (zipmap, ziplist) are decoded in full; the
    /// current ones (listpack, intset) get the header and terminator checks of a shallow
    /// validation. `bytes` are the unit's bytes.
    pub(crate) fn check(&self, unit: &Unit, bytes: &[u8]) -> Res<()> {
        let (r, deep) = match (unit, self.layout) {
            (Unit::Blob(r), Layout::Blob(Blob::Zipmap | Blob::ListZiplist))
            | (Unit::Blob(r), Layout::Blob(Blob::ZsetZiplist | Blob::HashZiplist)) => (r, true),
            (Unit::QuicklistNode { plain: false, data }, Layout::Quicklist) => (data, true),
            (Unit::Blob(r), _)
            | (
                Unit::QuicklistNode {
                    plain: false,
                    data: r,
                },
                _,
            ) => (r, false),
            _ => return Ok(()),
        };
        let at = match r {
            StrRef::Raw(range) | StrRef::Lzf { data: range, .. } => range.start,
            StrRef::Int(_) => 0,
        };
        let fail = |what: String| Fail::Corrupt { at, what };
        let data = match r {
            StrRef::Raw(range) => Bytes::copy_from_slice(&bytes[range.clone()]),
            StrRef::Int(_) => return Err(fail("encoded value stored as an integer".into())),
            // Decompressing only to check a current encoding costs too much on the hot path.
            StrRef::Lzf { .. } if !deep => return Ok(()),
            StrRef::Lzf { .. } => r.to_bytes(&Bytes::copy_from_slice(bytes)).map_err(fail)?,
        };
        if deep {
            let checked = match (unit, self.layout) {
                (_, Layout::Blob(Blob::Zipmap)) => blob::zipmap::decode(&data).map(|_| ()),
                _ => blob::ziplist::decode(&data).map(|_| ()),
            };
            return checked.map_err(|e| fail(e.to_string()));
        }
        match self.layout {
            Layout::Blob(Blob::Intset) => {
                let width = data
                    .get(..4)
                    .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
                let count = data
                    .get(4..8)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                match (width, count) {
                    (Some(w @ (2 | 4 | 8)), Some(n))
                        if 8 + u64::from(w) * u64::from(n) == data.len() as u64 =>
                    {
                        Ok(())
                    }
                    _ => Err(fail("intset header does not match its length".into())),
                }
            }
            _ => {
                let total = data
                    .get(..4)
                    .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize);
                if data.len() < 7 || total != Some(data.len()) || data.last() != Some(&0xFF) {
                    return Err(fail(
                        "listpack header or terminator does not match its length".into(),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Turns a completed unit into content, kept until [`Self::take`]. `unit` holds exactly the
    /// bytes `next_unit` measured for it.
    pub(crate) fn materialize(&mut self, unit: Unit, bytes: &Bytes) -> Res<()> {
        let s = |r: &StrRef| {
            r.to_bytes(bytes)
                .map_err(|what| Fail::Corrupt { at: 0, what })
        };
        match unit {
            Unit::Skip => {}
            Unit::Str(r) => match self.layout {
                Layout::String => self.push(Piece::Str(s(&r)?)),
                _ if self.logical == Logical::Set => self.push_member(s(&r)?),
                _ => self.push_element(s(&r)?),
            },
            Unit::Pair(f, v) => self.push_pair(s(&f)?, s(&v)?),
            Unit::Scored(m, score) => self.push_scored(s(&m)?, score),
            Unit::HashTtl { ttl, field, value } => {
                let at = match (ttl, self.min_expire) {
                    (0, _) => 0,
                    (t, Some(base)) => t.saturating_add(base).saturating_sub(1),
                    (t, None) => t,
                };
                self.push(Piece::HashTtl(vec![(s(&field)?, s(&value)?, at)]));
            }
            Unit::QuicklistNode { plain: true, data } => self.push_element(s(&data)?),
            Unit::QuicklistNode { plain: false, data } => {
                let blob = s(&data)?;
                let items = match self.layout {
                    Layout::Quicklist => blob::ziplist::decode(&blob),
                    _ => blob::listpack::decode(&blob),
                }
                .map_err(blob_fail)?;
                self.push(Piece::List(
                    items.into_iter().map(Item::into_bytes).collect(),
                ));
            }
            Unit::Blob(r) => {
                let blob = s(&r)?;
                self.materialize_blob(&blob)?;
            }
            Unit::StreamNode { master, lp } => {
                let entries = blob::stream_node::decode(StreamId::from_be_bytes(&master), &s(&lp)?)
                    .map_err(blob_fail)?;
                self.push(Piece::StreamEntries(entries));
            }
            Unit::StreamMeta(meta) => self.push(Piece::StreamMeta(meta)),
            Unit::GroupHead {
                name,
                last_id,
                entries_read,
            } => {
                self.group = Some(GroupBuild {
                    group: StreamGroup {
                        name: s(&name)?,
                        last_id,
                        entries_read,
                        pending: Vec::new(),
                        consumers: Vec::new(),
                    },
                    by_id: HashMap::new(),
                    consumer: Bytes::new(),
                });
            }
            Unit::GroupPending { id, time, count } => {
                let g = self.group_mut()?;
                g.by_id.insert(id, g.group.pending.len());
                g.group.pending.push(Pending {
                    id,
                    consumer: Bytes::new(),
                    delivery_time: time,
                    delivery_count: count,
                });
            }
            Unit::ConsumerHead { name } => {
                let name = s(&name)?;
                let g = self.group_mut()?;
                g.group.consumers.push(name.clone());
                g.consumer = name;
            }
            Unit::ConsumerPending(id) => {
                let g = self.group_mut()?;
                match g.by_id.get(&id) {
                    Some(&i) => g.group.pending[i].consumer = g.consumer.clone(),
                    None => return corrupt(0, "consumer pending ID missing from its group"),
                }
            }
            Unit::GroupEnd => {
                let g = self.group.take().ok_or_else(|| Fail::Corrupt {
                    at: 0,
                    what: "consumer group ends before it starts".into(),
                })?;
                self.push(Piece::StreamGroup(g.group));
            }
        }
        Ok(())
    }

    fn group_mut(&mut self) -> Res<&mut GroupBuild> {
        self.group.as_mut().ok_or_else(|| Fail::Corrupt {
            at: 0,
            what: "stream pending entry outside a consumer group".into(),
        })
    }

    fn materialize_blob(&mut self, blob: &Bytes) -> Res<()> {
        let kind = match self.layout {
            Layout::Blob(kind) => kind,
            Layout::HashListpackTtl { .. } => {
                let items = blob::listpack::decode(blob).map_err(blob_fail)?;
                if items.len() % 3 != 0 {
                    return corrupt(0, "hash listpack with TTLs is not field/value/TTL triples");
                }
                let mut out = Vec::with_capacity(items.len() / 3);
                let mut it = items.into_iter();
                while let (Some(f), Some(v), Some(t)) = (it.next(), it.next(), it.next()) {
                    let ttl = match t {
                        Item::Int(i) => u64::try_from(i).unwrap_or(0),
                        Item::Str(_) => return corrupt(0, "hash field TTL is not an integer"),
                    };
                    out.push((f.into_bytes(), v.into_bytes(), ttl));
                }
                self.push(Piece::HashTtl(out));
                return Ok(());
            }
            _ => return corrupt(0, "blob in a value that has none"),
        };
        match kind {
            Blob::Zipmap => {
                let pairs = blob::zipmap::decode(blob).map_err(blob_fail)?;
                self.push(Piece::Hash(pairs));
            }
            Blob::Intset => {
                let ints = blob::intset::decode(blob).map_err(blob_fail)?;
                self.push(Piece::Set(
                    ints.into_iter()
                        .map(|i| Item::Int(i).into_bytes())
                        .collect(),
                ));
            }
            Blob::ListZiplist => {
                let items = blob::ziplist::decode(blob).map_err(blob_fail)?;
                self.push(Piece::List(
                    items.into_iter().map(Item::into_bytes).collect(),
                ));
            }
            Blob::SetListpack => {
                let items = blob::listpack::decode(blob).map_err(blob_fail)?;
                self.push(Piece::Set(
                    items.into_iter().map(Item::into_bytes).collect(),
                ));
            }
            Blob::HashZiplist | Blob::HashListpack => {
                let items = if kind == Blob::HashZiplist {
                    blob::ziplist::decode(blob)
                } else {
                    blob::listpack::decode(blob)
                }
                .map_err(blob_fail)?;
                if items.len() % 2 != 0 {
                    return corrupt(0, "hash blob holds an odd number of elements");
                }
                let mut out = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(f), Some(v)) = (it.next(), it.next()) {
                    out.push((f.into_bytes(), v.into_bytes()));
                }
                self.push(Piece::Hash(out));
            }
            Blob::ZsetZiplist | Blob::ZsetListpack => {
                let items = if kind == Blob::ZsetZiplist {
                    blob::ziplist::decode(blob)
                } else {
                    blob::listpack::decode(blob)
                }
                .map_err(blob_fail)?;
                if items.len() % 2 != 0 {
                    return corrupt(0, "sorted set blob holds an odd number of elements");
                }
                let mut out = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(m), Some(score)) = (it.next(), it.next()) {
                    let score = match score {
                        Item::Int(i) => i as f64,
                        Item::Str(b) => std::str::from_utf8(&b)
                            .ok()
                            .and_then(|t| t.parse::<f64>().ok())
                            .map_or_else(|| corrupt(0, "sorted set score is not a number"), Ok)?,
                    };
                    out.push((m.into_bytes(), score));
                }
                self.push(Piece::Zset(out));
            }
        }
        Ok(())
    }

    // One element at a time, the common case of a big value: added to the last piece without
    // a vector of its own, weighed as `Piece::weight` weighs it.

    fn push_element(&mut self, e: Bytes) {
        self.weight += Piece::element_weight(&e);
        match self.pending.last_mut() {
            Some(Piece::List(v)) => v.push(e),
            _ => self.pending.push(Piece::List(vec![e])),
        }
    }

    fn push_member(&mut self, m: Bytes) {
        self.weight += Piece::element_weight(&m);
        match self.pending.last_mut() {
            Some(Piece::Set(v)) => v.push(m),
            _ => self.pending.push(Piece::Set(vec![m])),
        }
    }

    fn push_pair(&mut self, f: Bytes, x: Bytes) {
        self.weight += Piece::pair_weight(&f, &x);
        match self.pending.last_mut() {
            Some(Piece::Hash(v)) => v.push((f, x)),
            _ => self.pending.push(Piece::Hash(vec![(f, x)])),
        }
    }

    fn push_scored(&mut self, m: Bytes, score: f64) {
        self.weight += Piece::scored_weight(&m);
        match self.pending.last_mut() {
            Some(Piece::Zset(v)) => v.push((m, score)),
            _ => self.pending.push(Piece::Zset(vec![(m, score)])),
        }
    }

    /// Queues content, merging it into the last piece when it is of the same kind.
    fn push(&mut self, piece: Piece) {
        self.weight += piece.weight();
        match (self.pending.last_mut(), piece) {
            (Some(Piece::List(a)), Piece::List(b)) => a.extend(b),
            (Some(Piece::Set(a)), Piece::Set(b)) => a.extend(b),
            (Some(Piece::Zset(a)), Piece::Zset(b)) => a.extend(b),
            (Some(Piece::Hash(a)), Piece::Hash(b)) => a.extend(b),
            (Some(Piece::HashTtl(a)), Piece::HashTtl(b)) => a.extend(b),
            (Some(Piece::StreamEntries(a)), Piece::StreamEntries(b)) => a.extend(b),
            (_, p) => self.pending.push(p),
        }
    }
}

fn blob_fail(e: super::BlobError) -> Fail {
    Fail::Corrupt {
        at: 0,
        what: e.to_string(),
    }
}

/// A stream ID stored as two lengths (ms, seq).
fn id_pair(c: &mut Cursor<'_>) -> Res<StreamId> {
    Ok(StreamId {
        ms: c.len()?,
        seq: c.len()?,
    })
}

/// A stream ID stored raw: 16 bytes, big-endian ms then seq.
fn raw_id(c: &mut Cursor<'_>) -> Res<StreamId> {
    Ok(StreamId::from_be_bytes(&c.array::<16>()?))
}
