//! RESP plumbing shared by both sides: a request/response connection for handshakes and
//! control commands ([`Conn`]), and a lenient peek at a command's first arguments for logs.
//! Frames are decoded with `redis-protocol` from a `BytesMut` read buffer.

pub mod scan;

use bytes::{Buf, Bytes, BytesMut};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::cmd::Command;

pub use redis_protocol::resp2::types::BytesFrame as Frame;

/// Largest line accepted where a line is expected (status replies, transfer headers).
const MAX_LINE: usize = 64 * 1024;

/// A failure of a request/response exchange.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed by the server")]
    Closed,
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// A connection used one request at a time: it owns the stream and the read buffer.
#[derive(Debug)]
pub struct Conn<S> {
    stream: S,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// Sends a command and waits for its reply (error replies are returned as frames).
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Frame, ConnError> {
        self.send(args).await?;
        self.read_frame().await
    }

    pub async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<(), ConnError> {
        let cmd = Command::new(args);
        for c in cmd.chunks() {
            self.stream.write_all(c).await?;
        }
        self.stream.flush().await?;
        Ok(())
    }

    /// Sends several commands in one write, for pipelining: read their replies with
    /// [`Conn::read_frame`], in order.
    pub async fn send_many(&mut self, cmds: &[Command]) -> Result<(), ConnError> {
        let mut out = BytesMut::with_capacity(cmds.iter().map(Command::len).sum());
        for cmd in cmds {
            for c in cmd.chunks() {
                out.extend_from_slice(c);
            }
        }
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads one RESP frame.
    pub async fn read_frame(&mut self) -> Result<Frame, ConnError> {
        loop {
            match decode_bytes_mut(&mut self.buf) {
                Ok(Some((frame, _, _))) => return Ok(frame),
                Ok(None) => {
                    self.fill().await?;
                }
                Err(e) => return Err(ConnError::Protocol(e.to_string())),
            }
        }
    }

    /// Reads one line (without its `\r\n` or `\n`), for the parts of the replication protocol
    /// that are lines rather than frames. Lines longer than 64 KiB are a protocol error.
    pub async fn read_line(&mut self) -> Result<Bytes, ConnError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line = self.buf.split_to(i + 1);
                line.truncate(i);
                if line.last() == Some(&b'\r') {
                    line.truncate(i - 1);
                }
                return Ok(line.freeze());
            }
            if self.buf.len() > MAX_LINE {
                return Err(ConnError::Protocol(format!(
                    "no end of line within {MAX_LINE} bytes"
                )));
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes into the buffer.
    pub async fn fill(&mut self) -> Result<usize, ConnError> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(ConnError::Closed);
        }
        Ok(n)
    }

    /// The stream and whatever was read but not consumed.
    pub fn into_parts(self) -> (S, BytesMut) {
        (self.stream, self.buf)
    }
}

/// Text of a reply for messages: status and error strings, integers, bulk strings.
pub fn frame_text(f: &Frame) -> String {
    match f {
        BytesFrame::SimpleString(b) | BytesFrame::BulkString(b) => {
            String::from_utf8_lossy(b).into_owned()
        }
        BytesFrame::Error(e) => e.to_string(),
        BytesFrame::Integer(i) => i.to_string(),
        BytesFrame::Null => "(nil)".into(),
        BytesFrame::Array(a) => format!("array of {}", a.len()),
    }
}

/// Error text when `f` is an error reply.
pub fn frame_error(f: &Frame) -> Option<String> {
    match f {
        BytesFrame::Error(e) => Some(e.to_string()),
        _ => None,
    }
}

/// The first `n` bulk-string arguments of an encoded command, as slices of `buf` (no copy).
/// Lenient: stops at anything unexpected. For log lines and routing decisions.
pub fn peek_args(buf: &Bytes, n: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let line = |pos: &mut usize| -> Option<(u8, i64)> {
        let rest = buf.get(*pos..)?;
        let end = rest.iter().position(|&b| b == b'\r')?;
        let kind = *rest.first()?;
        let num = std::str::from_utf8(rest.get(1..end)?).ok()?.parse().ok()?;
        *pos += end + 2;
        Some((kind, num))
    };
    let Some((b'*', argc)) = line(&mut pos) else {
        return out;
    };
    let argc = usize::try_from(argc).unwrap_or(0);
    for _ in 0..argc.min(n) {
        let Some((b'$', len)) = line(&mut pos) else {
            break;
        };
        let Ok(len) = usize::try_from(len) else { break };
        if pos + len > buf.len() {
            break;
        }
        out.push(buf.slice(pos..pos + len));
        pos += len + 2;
    }
    out
}

/// Skips the buffer forward past `n` bytes (helper for callers holding a `BytesMut`).
pub fn advance(buf: &mut BytesMut, n: usize) {
    buf.advance(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_arguments() {
        let b = Bytes::from_static(b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$1\r\nv\r\n");
        let a = peek_args(&b, 2);
        assert_eq!(a.len(), 2);
        assert_eq!(&a[1][..], b"key");
        assert!(peek_args(&Bytes::from_static(b"+OK\r\n"), 2).is_empty());
        assert_eq!(
            peek_args(&Bytes::from_static(b"*2\r\n$3\r\nSE"), 2).len(),
            0
        );
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        for wire in [
            &b"*2147483647\r\n"[..],
            b"*9223372036854775807\r\n$3\r\nSET\r\n",
            b"$2147483647\r\nabc",
        ] {
            let mut buf = BytesMut::from(wire);
            let r = decode_bytes_mut(&mut buf);
            assert!(matches!(r, Ok(None) | Err(_)), "{r:?}");
        }
    }

    #[tokio::test]
    async fn reads_lines_and_frames() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut c = Conn::new(a);
        b.write_all(b"\n+FULLRESYNC abc 5\r\n:7\r\n")
            .await
            .expect("write");
        assert_eq!(&c.read_line().await.expect("line")[..], b"");
        assert_eq!(
            &c.read_line().await.expect("line")[..],
            b"+FULLRESYNC abc 5"
        );
        assert_eq!(c.read_frame().await.expect("frame"), Frame::Integer(7));
    }
}
