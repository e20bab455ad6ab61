//! The streaming RDB parser: bytes go in as they arrive (from a socket or a file), events come
//! out as soon as they are complete. It never needs the whole file: a value is kept whole (as
//! the raw bytes the RDB holds, a `Bytes` slice of the read buffer) only up to a bound; past
//! it, the value is decoded and handed out in bounded pieces while it is still arriving.
//!
//! The caller owns the buffer: it appends what it read and calls [`RdbParser::next`] until it
//! returns `Ok(None)` (more input needed). The parser takes bytes from the front of the buffer
//! only once they form a whole unit; what it leaves after [`Event::End`] is not RDB.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::crc64::{Crc64Digest, CRC64};
use super::cursor::{Cursor, Fail, StrRef};
use super::decoded::Piece;
use super::error::RdbError;
use super::types::{layout, Layout, Logical, OPCODE_FUNCTION2};
use super::value::ValueReader;

/// Highest RDB version this parser reads.
pub const MAX_RDB_VERSION: u32 = 12;

/// Bounds of the parser.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Values whose RDB form is larger than this are decoded and handed out in pieces instead
    /// of whole.
    pub whole_value_max: usize,
    /// A piece handed out of a big value holds about this many bytes at most (one element may
    /// exceed it).
    pub piece_bytes: usize,
    /// The largest single string (one element, one blob) accepted at all; it must be in memory
    /// in one piece. Redis's own cap on a bulk string is 512 MiB.
    pub string_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            whole_value_max: 1 << 20,
            piece_bytes: 256 << 10,
            string_max: 512 << 20,
        }
    }
}

/// Facts about a key that precede its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMeta {
    pub db: u64,
    pub key: Bytes,
    /// The RDB type code of the value.
    pub ty: u8,
    pub logical: Logical,
    /// Absolute expiry in unix ms.
    pub expire_ms: Option<i64>,
    /// LRU idle time in seconds.
    pub idle: Option<u64>,
    /// LFU frequency.
    pub freq: Option<u8>,
    /// Absolute offset of the key's type byte in the RDB.
    pub offset: u64,
}

/// A value kept whole: its bytes exactly as the RDB holds them, after the key.
#[derive(Debug, Clone)]
pub struct Entry {
    pub meta: KeyMeta,
    pub raw: Bytes,
}

/// What the parser found.
#[derive(Debug)]
pub enum Event {
    /// The header was read.
    Header {
        version: u32,
    },
    Aux {
        key: Bytes,
        value: Bytes,
    },
    Select {
        db: u64,
    },
    ResizeDb {
        size: u64,
        expires: u64,
    },
    /// A function library (`FUNCTION2`): its source code.
    Function {
        code: Bytes,
    },
    /// Module auxiliary data, skipped (it needs the module).
    ModuleAux {
        offset: u64,
    },
    /// A key with its whole value.
    Entry(Entry),
    /// A key whose value comes in pieces: this, then `BigPieces`, then `BigEnd`.
    BigStart(KeyMeta),
    BigPieces(Vec<Piece>),
    BigEnd,
    /// The end of the RDB; `checksum` is the stored CRC-64 when there is one (already checked).
    End {
        checksum: Option<u64>,
    },
}

#[derive(Debug)]
enum State {
    Header,
    Opcodes,
    /// Reading a value kept whole; `pos` bytes of the buffer belong to it so far.
    Whole {
        meta: KeyMeta,
        reader: ValueReader,
        pos: usize,
    },
    /// Decoding a big value unit by unit.
    Big {
        meta: KeyMeta,
        reader: ValueReader,
    },
    /// Skipping module aux data (kept in the buffer until complete, like a whole value).
    ModuleAux {
        reader: ValueReader,
        pos: usize,
        offset: u64,
    },
    Done,
}

/// The streaming parser. See the module documentation.
pub struct RdbParser {
    state: State,
    limits: Limits,
    /// Absolute offset of the first byte still in the caller's buffer.
    offset: u64,
    version: u32,
    db: u64,
    expire_ms: Option<i64>,
    idle: Option<u64>,
    freq: Option<u8>,
    crc: Option<Crc64Digest>,
    queued: VecDeque<Event>,
}

impl RdbParser {
    pub fn new(limits: Limits) -> Self {
        RdbParser {
            state: State::Header,
            limits,
            offset: 0,
            version: 0,
            db: 0,
            expire_ms: None,
            idle: None,
            freq: None,
            crc: Some(CRC64.digest()),
            queued: VecDeque::new(),
        }
    }

    /// The RDB version, once the header is read.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done) && self.queued.is_empty()
    }

    /// Call when the input has ended: an error unless the RDB was complete.
    pub fn finish(&self, buf: &BytesMut) -> Result<(), RdbError> {
        if self.is_done() {
            return Ok(());
        }
        let what = match &self.state {
            State::Header => "in the header".to_string(),
            State::Whole { meta, .. } | State::Big { meta, .. } => format!(
                "inside the value of key {} (type {})",
                crate::display::printable(&meta.key),
                meta.ty
            ),
            State::ModuleAux { .. } => "inside module aux data".to_string(),
            _ => "before the EOF marker".to_string(),
        };
        Err(RdbError::Truncated {
            offset: self.offset + buf.len() as u64,
            what,
        })
    }

    /// The next event, `Ok(None)` when `buf` holds no further complete unit.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, RdbError> {
        loop {
            if let Some(ev) = self.queued.pop_front() {
                return Ok(Some(ev));
            }
            let step = match &mut self.state {
                State::Done => return Ok(None),
                State::Header => self.header(buf)?,
                State::Opcodes => self.opcode(buf)?,
                State::Whole { .. } => self.whole(buf)?,
                State::Big { .. } => self.big(buf)?,
                State::ModuleAux { .. } => self.module_aux(buf)?,
            };
            match step {
                Step::NeedMore => return Ok(None),
                Step::Continue => {}
                Step::Emit(ev) => return Ok(Some(ev)),
            }
        }
    }

    /// Takes `n` bytes off the front of `buf`, through the checksum.
    fn consume(&mut self, buf: &mut BytesMut, n: usize) -> Bytes {
        let b = buf.split_to(n).freeze();
        if let Some(d) = self.crc.as_mut() {
            d.update(&b);
        }
        self.offset += n as u64;
        b
    }

    fn fail(&self, base: usize, f: Fail, key: Option<&Bytes>) -> RdbError {
        match f {
            Fail::Incomplete => RdbError::Truncated {
                offset: self.offset + base as u64,
                what: "unexpected end".into(),
            },
            Fail::Corrupt { at, what } => RdbError::Corrupt {
                offset: self.offset + (base + at) as u64,
                key: key.cloned(),
                what,
            },
            Fail::TooLarge { at, len } => RdbError::TooLarge {
                offset: self.offset + (base + at) as u64,
                key: key.cloned(),
                len,
                limit: self.limits.string_max,
            },
        }
    }

    fn header(&mut self, buf: &mut BytesMut) -> Result<Step, RdbError> {
        if buf.len() < 9 {
            if buf.len() >= 5 && !buf.starts_with(b"REDIS") && !buf.starts_with(b"VALKE") {
                return Err(bad_magic(buf));
            }
            return Ok(Step::NeedMore);
        }
        if buf.starts_with(b"VALKEY") {
            let version = parse_digits(&buf[6..9]).unwrap_or(0);
            return Err(RdbError::UnsupportedVersion {
                magic: "VALKEY".into(),
                version,
            });
        }
        if !buf.starts_with(b"REDIS") {
            return Err(bad_magic(buf));
        }
        let version = parse_digits(&buf[5..9]).ok_or_else(|| bad_magic(buf))?;
        if version == 0 || version > MAX_RDB_VERSION {
            return Err(RdbError::UnsupportedVersion {
                magic: "REDIS".into(),
                version,
            });
        }
        self.version = version;
        if version < 5 {
            self.crc = None;
        }
        self.consume(buf, 9);
        self.state = State::Opcodes;
        Ok(Step::Emit(Event::Header { version }))
    }

    fn opcode(&mut self, buf: &mut BytesMut) -> Result<Step, RdbError> {
        let Some(&op) = buf.first() else {
            return Ok(Step::NeedMore);
        };
        let mut c = Cursor::new(&buf[1..], self.limits.string_max);
        let parsed = (|| -> Result<Op, Fail> {
            Ok(match op {
                0xFA => Op::Aux(c.string()?, c.string()?),
                0xFB => Op::ResizeDb(c.len()?, c.len()?),
                0xFC => Op::ExpireMs(c.i64_le()?),
                0xFD => Op::ExpireSec(c.i32_le()?),
                0xFE => Op::Select(c.len()?),
                0xF9 => Op::Freq(c.u8()?),
                0xF8 => Op::Idle(c.len()?),
                // Redis Enterprise's RAM_LRU: one length, meaningless outside that product.
                0x6B => {
                    c.len()?;
                    Op::Ignored
                }
                0xF7 => Op::ModuleAux,
                OPCODE_FUNCTION2 => Op::Function(c.string()?),
                0xF4 => {
                    c.len()?;
                    c.len()?;
                    c.len()?;
                    Op::SlotInfo
                }
                0xFF => {
                    if self.version >= 5 {
                        Op::Eof(Some(c.u64_le()?))
                    } else {
                        Op::Eof(None)
                    }
                }
                ty if layout(ty).is_some() => Op::Key(ty, c.string()?),
                ty => {
                    return Err(Fail::Corrupt {
                        at: 0,
                        what: format!("unknown type or opcode {ty}"),
                    })
                }
            })
        })();
        let op_parsed = match parsed {
            Ok(p) => p,
            Err(Fail::Incomplete) => return Ok(Step::NeedMore),
            Err(f) => return Err(self.fail(1, f, None)),
        };
        let n = 1 + c.pos;
        let at = self.offset;
        // The stored checksum is not part of what it covers.
        let unit = if let Op::Eof(Some(_)) = op_parsed {
            let u = self.consume(buf, 1);
            self.offset += 8;
            buf.advance(8);
            u
        } else {
            self.consume(buf, n)
        };
        let string = |s: &StrRef| {
            // Ranges are relative to the byte after the opcode.
            s.to_bytes(&unit.slice(1..))
                .map_err(|what| RdbError::Corrupt {
                    offset: at,
                    key: None,
                    what,
                })
        };
        Ok(match op_parsed {
            Op::Aux(k, v) => Step::Emit(Event::Aux {
                key: string(&k)?,
                value: string(&v)?,
            }),
            Op::ResizeDb(size, expires) => Step::Emit(Event::ResizeDb { size, expires }),
            Op::ExpireMs(ms) => {
                self.expire_ms = Some(ms);
                Step::Continue
            }
            Op::ExpireSec(s) => {
                self.expire_ms = Some(i64::from(s) * 1000);
                Step::Continue
            }
            Op::Select(db) => {
                self.db = db;
                Step::Emit(Event::Select { db })
            }
            Op::Freq(f) => {
                self.freq = Some(f);
                Step::Continue
            }
            Op::Idle(i) => {
                self.idle = Some(i);
                Step::Continue
            }
            Op::SlotInfo | Op::Ignored => Step::Continue,
            Op::Function(code) => Step::Emit(Event::Function {
                code: string(&code)?,
            }),
            Op::ModuleAux => {
                self.state = State::ModuleAux {
                    reader: ValueReader::new(
                        Layout::Module2,
                        Logical::Module,
                        self.limits.string_max,
                    ),
                    pos: 0,
                    offset: at,
                };
                Step::Continue
            }
            Op::Eof(stored) => {
                let computed = self.crc.take().map(|d| d.finalize());
                if let (Some(stored), Some(computed)) = (stored, computed) {
                    if stored != 0 && stored != computed {
                        return Err(RdbError::Checksum { stored, computed });
                    }
                }
                self.state = State::Done;
                Step::Emit(Event::End { checksum: stored })
            }
            Op::Key(ty, key) => {
                let key = string(&key)?;
                let Some((lay, logical)) = layout(ty) else {
                    return Err(RdbError::UnsupportedType {
                        offset: at,
                        key: Some(key),
                        ty,
                    });
                };
                let meta = KeyMeta {
                    db: self.db,
                    key,
                    ty,
                    logical,
                    expire_ms: self.expire_ms.take(),
                    idle: self.idle.take(),
                    freq: self.freq.take(),
                    offset: at,
                };
                self.state = State::Whole {
                    meta,
                    reader: ValueReader::new(lay, logical, self.limits.string_max),
                    pos: 0,
                };
                Step::Continue
            }
        })
    }

    /// Advances through a value while keeping its bytes; hands it out whole when it ends, or
    /// switches to piece-by-piece decoding once it outgrows the bound.
    fn whole(&mut self, buf: &mut BytesMut) -> Result<Step, RdbError> {
        let State::Whole { meta, reader, pos } = &mut self.state else {
            return Ok(Step::Continue);
        };
        loop {
            if reader.done() {
                let n = *pos;
                let meta = meta.clone();
                self.state = State::Opcodes;
                let raw = self.consume(buf, n);
                return Ok(Step::Emit(Event::Entry(Entry { meta, raw })));
            }
            let checked = reader
                .next_unit(&buf[*pos..])
                .and_then(|(n, unit)| reader.check(&unit, &buf[*pos..*pos + n]).map(|()| n));
            match checked {
                Ok(n) => *pos += n,
                Err(Fail::Incomplete) => {
                    let lay = layout(meta.ty).map(|l| l.0);
                    let can_stream = lay.is_some_and(ValueReader::streamable);
                    if can_stream && *pos > self.limits.whole_value_max {
                        let meta = meta.clone();
                        let (lay, logical) =
                            layout(meta.ty).unwrap_or((Layout::String, Logical::String));
                        self.state = State::Big {
                            meta: meta.clone(),
                            reader: ValueReader::new(lay, logical, self.limits.string_max),
                        };
                        return Ok(Step::Emit(Event::BigStart(meta)));
                    }
                    if *pos as u64 > self.limits.string_max {
                        let (key, at) = (meta.key.clone(), *pos);
                        return Err(RdbError::TooLarge {
                            offset: self.offset + at as u64,
                            key: Some(key),
                            len: at as u64,
                            limit: self.limits.string_max,
                        });
                    }
                    return Ok(Step::NeedMore);
                }
                Err(f) => {
                    let (key, at) = (meta.key.clone(), *pos);
                    return Err(self.fail(at, f, Some(&key)));
                }
            }
        }
    }

    /// Decodes a big value unit by unit, handing out pieces of about `piece_bytes`.
    fn big(&mut self, buf: &mut BytesMut) -> Result<Step, RdbError> {
        loop {
            let State::Big { meta, reader } = &mut self.state else {
                return Ok(Step::Continue);
            };
            if reader.done() {
                let pieces = reader.take();
                if !pieces.is_empty() {
                    self.queued.push_back(Event::BigPieces(pieces));
                }
                self.queued.push_back(Event::BigEnd);
                self.state = State::Opcodes;
                return Ok(Step::Continue);
            }
            if reader.pending_weight() >= self.limits.piece_bytes {
                return Ok(Step::Emit(Event::BigPieces(reader.take())));
            }
            match reader.next_unit(buf) {
                Ok((n, unit)) => {
                    let start = self.offset;
                    let bytes = self.consume(buf, n);
                    let State::Big { reader, meta } = &mut self.state else {
                        return Ok(Step::Continue);
                    };
                    if let Err(f) = reader.materialize(unit, &bytes) {
                        let key = meta.key.clone();
                        let mut e = self.fail(0, f, Some(&key));
                        if let RdbError::Corrupt { offset, .. } = &mut e {
                            *offset = start;
                        }
                        return Err(e);
                    }
                }
                Err(Fail::Incomplete) => {
                    // Hand out what is decoded rather than hold it while waiting.
                    if reader.pending_weight() > 0 {
                        return Ok(Step::Emit(Event::BigPieces(reader.take())));
                    }
                    return Ok(Step::NeedMore);
                }
                Err(f) => {
                    let key = meta.key.clone();
                    return Err(self.fail(0, f, Some(&key)));
                }
            }
        }
    }

    fn module_aux(&mut self, buf: &mut BytesMut) -> Result<Step, RdbError> {
        let State::ModuleAux {
            reader,
            pos,
            offset,
        } = &mut self.state
        else {
            return Ok(Step::Continue);
        };
        loop {
            if reader.done() {
                let (n, offset) = (*pos, *offset);
                self.state = State::Opcodes;
                self.consume(buf, n);
                return Ok(Step::Emit(Event::ModuleAux { offset }));
            }
            match reader.next_unit(&buf[*pos..]) {
                Ok((n, _)) => *pos += n,
                Err(Fail::Incomplete) => return Ok(Step::NeedMore),
                Err(f) => {
                    let at = *pos;
                    return Err(self.fail(at, f, None));
                }
            }
        }
    }
}

enum Step {
    NeedMore,
    Continue,
    Emit(Event),
}

enum Op {
    Aux(StrRef, StrRef),
    ResizeDb(u64, u64),
    ExpireMs(i64),
    ExpireSec(i32),
    Select(u64),
    Freq(u8),
    Idle(u64),
    ModuleAux,
    Function(StrRef),
    SlotInfo,
    Ignored,
    Eof(Option<u64>),
    Key(u8, StrRef),
}

fn parse_digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn bad_magic(buf: &[u8]) -> RdbError {
    RdbError::BadMagic {
        found: crate::display::printable(&buf[..buf.len().min(9)]),
    }
}
