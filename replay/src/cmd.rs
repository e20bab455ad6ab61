//! The command model: a command as the bytes that go on the wire, in up to three chunks so that
//! a large value can be sent straight from the buffer it was read into (no copy), plus what the
//! pipeline needs to know about it (the source offset it completes, if any; for a cluster
//! destination, where it goes).

use bytes::{BufMut, Bytes, BytesMut};

/// A command ready to send: `head`, `body` and `tail` concatenated are its RESP encoding.
#[derive(Debug, Clone, Default)]
pub struct Command {
    head: Bytes,
    body: Bytes,
    tail: Bytes,
    /// The replication offset the source reaches once this command is applied.
    pub offset: Option<u64>,
    /// Where a cluster destination takes it, as the slot planner decided
    /// ([`crate::plan::slots`]); standalone destinations ignore it.
    pub route: Route,
}

/// Where a command goes in a cluster destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Route {
    /// Not planned for a cluster (a cluster sink refuses it: that would be a bug).
    #[default]
    Unplanned,
    /// Any one master (no key: e.g. PUBLISH).
    Any,
    /// Every master (FLUSHALL, FUNCTION, SCRIPT).
    All,
    /// The master that owns this slot.
    Slot(u16),
}

impl Command {
    /// A command already encoded (e.g. a frame of the replication stream, as received).
    pub fn raw(frame: Bytes) -> Self {
        Command {
            head: frame,
            ..Default::default()
        }
    }

    /// Encodes `args` as a RESP array of bulk strings.
    pub fn new<A: AsRef<[u8]>>(args: &[A]) -> Self {
        let size: usize = args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>() + 16;
        let mut b = BytesMut::with_capacity(size);
        put_array_len(&mut b, args.len());
        for a in args {
            put_bulk(&mut b, a.as_ref());
        }
        Command::raw(b.freeze())
    }

    /// A command whose encoding is `head ++ body ++ tail`: `body` is sent as it is.
    pub fn chunked(head: Bytes, body: Bytes, tail: Bytes) -> Self {
        Command {
            head,
            body,
            tail,
            offset: None,
            route: Route::Unplanned,
        }
    }

    pub fn with_offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    pub fn with_route(mut self, route: Route) -> Self {
        self.route = route;
        self
    }

    /// The encoded chunks, in order (empty ones included).
    pub fn chunks(&self) -> [&Bytes; 3] {
        [&self.head, &self.body, &self.tail]
    }

    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len() + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is the argument-less command `name` (e.g. MULTI, EXEC; up to 9 letters),
    /// from the head chunk: a length check first, so most commands cost one comparison.
    pub fn is_named(&self, name: &[u8]) -> bool {
        let h = &self.head[..];
        let n = name.len();
        if n == 0 || n > 9 || h.len() != n + 10 || !self.body.is_empty() {
            return false;
        }
        h[..5] == *b"*1\r\n$"
            && h[5] == b'0' + n as u8
            && h[6..8] == *b"\r\n"
            && h[8..8 + n].eq_ignore_ascii_case(name)
            && h[8 + n..] == *b"\r\n"
    }

    /// The db of a `SELECT <db>` command (a cheap look at the head chunk); `None` for any other.
    pub fn selected_db(&self) -> Option<u64> {
        let rest = self.head.strip_prefix(b"*2\r\n$6\r\n")?;
        if rest.len() < 6 || !rest[..6].eq_ignore_ascii_case(b"select") {
            return None;
        }
        let rest = rest[6..].strip_prefix(b"\r\n$")?;
        let (_, arg) = rest.split_at(rest.iter().position(|b| *b == b'\n')? + 1);
        let digits = arg.strip_suffix(b"\r\n")?;
        std::str::from_utf8(digits).ok()?.parse().ok()
    }

    /// The command name and first argument (usually the key), read back from the head chunk,
    /// for log lines and error messages.
    pub fn describe(&self) -> (String, Option<Bytes>) {
        let mut args = crate::resp::peek_args(&self.head, 2).into_iter();
        let name = args
            .next()
            .map(|n| String::from_utf8_lossy(&n).to_uppercase())
            .unwrap_or_else(|| "?".into());
        (name, args.next())
    }
}

/// One thing for the pipeline to do, in order: a command, or a point in the source's stream.
#[derive(Debug)]
pub enum Op {
    Cmd(Command),
    /// The source offset reached once everything before this is applied.
    Mark(u64),
}

/// Incremental encoder for commands whose argument count is known up front (e.g. RPUSH of a
/// batch of elements).
#[derive(Debug)]
pub struct Encoder {
    buf: BytesMut,
    declared: usize,
    written: usize,
}

impl Encoder {
    /// `size_hint`: the encoded size expected, framing included. Queues and windows count a
    /// command's length, so capacity much beyond it would be memory they do not see.
    pub fn new(argc: usize, size_hint: usize) -> Self {
        let mut buf = BytesMut::with_capacity(size_hint + 16);
        put_array_len(&mut buf, argc);
        Encoder {
            buf,
            declared: argc,
            written: 0,
        }
    }

    pub fn arg(&mut self, a: &[u8]) -> &mut Self {
        put_bulk(&mut self.buf, a);
        self.written += 1;
        self
    }

    pub fn int(&mut self, i: i64) -> &mut Self {
        self.arg(itoa::Buffer::new().format(i).as_bytes())
    }

    pub fn finish(self) -> Command {
        debug_assert_eq!(self.declared, self.written, "argument count");
        Command::raw(self.buf.freeze())
    }
}

pub(crate) fn put_array_len(b: &mut BytesMut, n: usize) {
    b.put_u8(b'*');
    b.put_slice(itoa::Buffer::new().format(n).as_bytes());
    b.put_slice(b"\r\n");
}

pub(crate) fn put_bulk_len(b: &mut BytesMut, n: usize) {
    b.put_u8(b'$');
    b.put_slice(itoa::Buffer::new().format(n).as_bytes());
    b.put_slice(b"\r\n");
}

pub(crate) fn put_bulk(b: &mut BytesMut, a: &[u8]) {
    put_bulk_len(b, a.len());
    b.put_slice(a);
    b.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_describes() {
        assert!(Command::new(&["multi"]).is_named(b"MULTI"));
        assert!(Command::new(&["EXEC"]).is_named(b"EXEC"));
        assert!(!Command::new(&["EXEC", "x"]).is_named(b"EXEC"));
        assert!(!Command::new(&["MULTIX"]).is_named(b"MULTI"));
        assert_eq!(Command::new(&["SELECT", "12"]).selected_db(), Some(12));
        assert_eq!(Command::new(&["select", "0"]).selected_db(), Some(0));
        assert_eq!(Command::new(&["SET", "k", "v"]).selected_db(), None);
        assert_eq!(Command::new(&["SELECT", "x"]).selected_db(), None);
        let c = Command::new(&["SET", "k", "v"]);
        assert_eq!(
            &c.chunks()[0][..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
        );
        let (name, key) = c.describe();
        assert_eq!(name, "SET");
        assert_eq!(key.as_deref(), Some(&b"k"[..]));
        let mut e = Encoder::new(3, 0);
        e.arg(b"RPUSH").arg(b"l").int(-5);
        assert_eq!(
            &e.finish().chunks()[0][..],
            b"*3\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$2\r\n-5\r\n"
        );
    }
}
