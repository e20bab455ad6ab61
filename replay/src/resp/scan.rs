//! Zero-allocation scanning of RESP2 on the hot paths: the commands of the replication stream
//! (arrays of bulk strings; only their length, name and first argument are needed, the bytes
//! are forwarded as they are) and the destination's replies (only their length and whether an
//! error is in them). "Check, then parse": nothing is consumed until a frame is complete, and
//! the command scanner resumes where it stopped, so a frame arriving in many reads is scanned
//! once. Control connections keep using `redis-protocol` ([`super::Conn`]), which the tests
//! here use as the reference.

use std::ops::Range;

/// Largest bulk string accepted (Redis's own `proto-max-bulk-len` default).
pub const MAX_BULK: usize = 512 << 20;
/// Deepest nesting of arrays accepted in a reply.
const MAX_DEPTH: usize = 8;

/// Malformed RESP at `at` (offset from the start of the frame).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed RESP at byte {at} of the frame: {what}")]
pub struct ScanError {
    pub at: usize,
    pub what: &'static str,
}

fn err<T>(at: usize, what: &'static str) -> Result<T, ScanError> {
    Err(ScanError { at, what })
}

/// Reads `<prefix><integer>\r\n` at `pos`; `Ok(None)` if the line is not complete yet.
fn int_line(buf: &[u8], pos: usize) -> Result<Option<(i64, usize)>, ScanError> {
    let mut i = pos + 1;
    let mut neg = false;
    let mut n: i64 = 0;
    let mut digits = 0;
    if buf.get(i) == Some(&b'-') {
        neg = true;
        i += 1;
    }
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        match b {
            b'0'..=b'9' => {
                n = match n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(i64::from(b - b'0')))
                {
                    Some(n) => n,
                    None => return err(i, "integer out of range"),
                };
                digits += 1;
            }
            b'\r' => break,
            _ => return err(i, "bad character in a length or integer"),
        }
        i += 1;
    }
    match buf.get(i + 1) {
        None => Ok(None),
        Some(b'\n') if digits > 0 => Ok(Some((if neg { -n } else { n }, i + 2))),
        Some(_) => err(i, "length or integer without digits or CRLF"),
    }
}

/// Position after the `\r\n` that ends the line starting at `pos`.
fn line_end(buf: &[u8], pos: usize) -> Result<Option<usize>, ScanError> {
    match buf[pos..].iter().position(|&b| b == b'\n') {
        None if buf.len() - pos > 64 * 1024 => err(0, "line longer than 64 KiB"),
        None => Ok(None),
        Some(i) if i > 0 && buf[pos + i - 1] == b'\r' => Ok(Some(pos + i + 1)),
        Some(i) => err(pos + i, "line ends in LF without CR"),
    }
}

/// A command frame of the replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFrame {
    /// Encoded length in bytes.
    pub len: usize,
    pub argc: usize,
    /// The command name and the first argument, as ranges of the frame.
    pub name: Range<usize>,
    pub arg1: Option<Range<usize>>,
}

/// Scans command frames, resuming a frame that arrives in pieces.
#[derive(Debug, Default)]
pub struct CommandScanner {
    partial: Option<Partial>,
}

#[derive(Debug, Clone)]
struct Partial {
    /// Where the next argument starts.
    pos: usize,
    argc: usize,
    left: usize,
    name: Range<usize>,
    arg1: Option<Range<usize>>,
}

impl CommandScanner {
    /// The frame at the start of `buf`, or `None` until it is complete. After `Some`, the
    /// caller must remove the frame's bytes from the front of `buf` before scanning again;
    /// after `None`, it must only append to `buf`.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<CommandFrame>, ScanError> {
        let mut p = match self.partial.take() {
            Some(p) => p,
            None => {
                let Some(&first) = buf.first() else {
                    return Ok(None);
                };
                if first != b'*' {
                    return err(0, "expected a command array");
                }
                let Some((n, pos)) = int_line(buf, 0)? else {
                    return Ok(None);
                };
                if n < 1 {
                    return err(1, "command array without arguments");
                }
                let argc = usize::try_from(n).or_else(|_| err(1, "argument count out of range"))?;
                Partial {
                    pos,
                    argc,
                    left: argc,
                    name: 0..0,
                    arg1: None,
                }
            }
        };
        while p.left > 0 {
            let at = p.pos;
            let Some(&b) = buf.get(at) else {
                self.partial = Some(p);
                return Ok(None);
            };
            if b != b'$' {
                return err(at, "expected a bulk string argument");
            }
            let Some((len, start)) = int_line(buf, at)? else {
                self.partial = Some(p);
                return Ok(None);
            };
            let len = usize::try_from(len).or_else(|_| err(at, "negative bulk length"))?;
            if len > MAX_BULK {
                return err(at, "bulk string longer than 512 MiB");
            }
            let end = start + len;
            if buf.len() < end + 2 {
                self.partial = Some(p);
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return err(end, "bulk string not followed by CRLF");
            }
            let i = p.argc - p.left;
            if i == 0 {
                p.name = start..end;
            } else if i == 1 {
                p.arg1 = Some(start..end);
            }
            p.pos = end + 2;
            p.left -= 1;
        }
        Ok(Some(CommandFrame {
            len: p.pos,
            argc: p.argc,
            name: p.name,
            arg1: p.arg1,
        }))
    }
}

/// A reply: its length and, if it is an error or holds one (EXEC), the first error's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub len: usize,
    pub error: Option<Range<usize>>,
}

/// The reply at the start of `buf`, or `None` until it is complete.
pub fn scan_reply(buf: &[u8]) -> Result<Option<Reply>, ScanError> {
    let mut error = None;
    match scan_value(buf, 0, 0, &mut error)? {
        Some(len) => Ok(Some(Reply { len, error })),
        None => Ok(None),
    }
}

fn scan_value(
    buf: &[u8],
    pos: usize,
    depth: usize,
    error: &mut Option<Range<usize>>,
) -> Result<Option<usize>, ScanError> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    match kind {
        b'+' | b':' => line_end(buf, pos),
        b'-' => {
            let Some(end) = line_end(buf, pos)? else {
                return Ok(None);
            };
            if error.is_none() {
                *error = Some(pos + 1..end - 2);
            }
            Ok(Some(end))
        }
        b'$' => {
            let Some((len, start)) = int_line(buf, pos)? else {
                return Ok(None);
            };
            if len == -1 {
                return Ok(Some(start));
            }
            let len = usize::try_from(len).or_else(|_| err(pos, "negative bulk length"))?;
            if len > MAX_BULK {
                return err(pos, "bulk string longer than 512 MiB");
            }
            let end = start + len + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return err(end - 2, "bulk string not followed by CRLF");
            }
            Ok(Some(end))
        }
        b'*' => {
            if depth >= MAX_DEPTH {
                return err(pos, "arrays nested too deep");
            }
            let Some((n, mut at)) = int_line(buf, pos)? else {
                return Ok(None);
            };
            if n == -1 {
                return Ok(Some(at));
            }
            if n < 0 {
                return err(pos, "negative array length");
            }
            for _ in 0..n {
                match scan_value(buf, at, depth + 1, error)? {
                    Some(next) => at = next,
                    None => return Ok(None),
                }
            }
            Ok(Some(at))
        }
        _ => err(pos, "unknown reply type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use redis_protocol::resp2::decode::decode_bytes_mut;

    fn cmd(args: &[&[u8]]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    #[test]
    fn commands_in_every_split() {
        let wire = cmd(&[b"SET", b"key", b"value with \r\n inside", b""]);
        for cut in 0..wire.len() {
            let mut s = CommandScanner::default();
            assert_eq!(s.scan(&wire[..cut]), Ok(None), "cut {cut}");
            let f = s.scan(&wire).expect("valid").expect("complete");
            assert_eq!(f.len, wire.len());
            assert_eq!(f.argc, 4);
            assert_eq!(&wire[f.name.clone()], b"SET");
            assert_eq!(f.arg1.map(|r| &wire[r]), Some(&b"key"[..]));
        }
    }

    #[test]
    fn agrees_with_redis_protocol_on_lengths() {
        // Two frames back to back, and the reference decoder on the same bytes.
        let mut wire = cmd(&[b"MULTI"]);
        wire.extend(cmd(&[b"HSET", b"h", b"f", b"1234567890"]));
        let mut s = CommandScanner::default();
        let first = s.scan(&wire).expect("valid").expect("complete");
        let mut buf = BytesMut::from(&wire[..]);
        let (_, n, _) = decode_bytes_mut(&mut buf)
            .expect("valid")
            .expect("complete");
        assert_eq!(first.len, n);
        let second = s
            .scan(&wire[first.len..])
            .expect("valid")
            .expect("complete");
        let (_, n2, _) = decode_bytes_mut(&mut buf)
            .expect("valid")
            .expect("complete");
        assert_eq!(second.len, n2);
    }

    #[test]
    fn rejects_garbage() {
        let mut s = CommandScanner::default();
        assert!(s.scan(b"+OK\r\n").is_err());
        let mut s = CommandScanner::default();
        assert!(s.scan(b"*1\r\n:5\r\n").is_err());
        let mut s = CommandScanner::default();
        assert!(s.scan(b"*0\r\n").is_err());
        let mut s = CommandScanner::default();
        assert!(s.scan(b"*1\r\n$3\r\nSETxx").is_err());
        let mut s = CommandScanner::default();
        assert!(s.scan(b"*1\r\n$-5\r\n").is_err());
        let mut s = CommandScanner::default();
        assert!(s.scan(b"*99999999999999999999\r\n").is_err());
        // A huge count allocates nothing: it only waits for bytes.
        let mut s = CommandScanner::default();
        assert_eq!(s.scan(b"*2147483647\r\n"), Ok(None));
    }

    #[test]
    fn replies() {
        assert_eq!(
            scan_reply(b"+OK\r\n"),
            Ok(Some(Reply {
                len: 5,
                error: None
            }))
        );
        assert_eq!(
            scan_reply(b":12\r\n+"),
            Ok(Some(Reply {
                len: 5,
                error: None
            }))
        );
        assert_eq!(
            scan_reply(b"$-1\r\n"),
            Ok(Some(Reply {
                len: 5,
                error: None
            }))
        );
        assert_eq!(scan_reply(b"$3\r\nab"), Ok(None));
        let r = scan_reply(b"-WRONGTYPE x\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(r.error, Some(1..12));
        let exec = b"*3\r\n+OK\r\n-BUSYKEY y\r\n*1\r\n$1\r\nz\r\n";
        let r = scan_reply(exec).expect("valid").expect("complete");
        assert_eq!(r.len, exec.len());
        assert_eq!(r.error.map(|e| &exec[e]), Some(&b"BUSYKEY y"[..]));
        for cut in 0..exec.len() {
            assert_eq!(scan_reply(&exec[..cut]), Ok(None));
        }
        assert!(scan_reply(b"!weird\r\n").is_err());
        let deep = b"*1\r\n".repeat(20);
        assert!(scan_reply(&deep).is_err());
    }
}
