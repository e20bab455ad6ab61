//! The replica handshake: AUTH, PING, `REPLCONF listening-port`, `REPLCONF capa eof capa
//! psync2`, then `PSYNC ? -1` (or `PSYNC <replid> <offset>` to continue) and its answer. PING
//! comes after AUTH so that it runs as the ACL user: a refusal names the missing permission.

use bytes::Bytes;
use replay::net::{Endpoint, Stream};
use replay::resp::{frame_error, frame_text, Conn};

use super::SourceError;

/// Where the stream was left: the source's replication id and the offset of the last byte
/// received (and handed to the destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullResync {
    pub replid: String,
    pub offset: u64,
}

/// What the source answered to PSYNC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Psync {
    /// A snapshot follows; the stream starts at this id and offset.
    Full(FullResync),
    /// The stream goes on from where it was left (with this replication id from now on).
    Continue { replid: Option<String> },
}

/// Runs the handshake up to and including the PSYNC reply.
pub async fn handshake(
    conn: &mut Conn<Stream>,
    ep: &Endpoint,
    listening_port: u16,
    resume: Option<&FullResync>,
) -> Result<Psync, SourceError> {
    replay::net::auth(conn, ep).await?;
    let pong = conn.call(&["PING"]).await?;
    if let Some(e) = frame_error(&pong) {
        return Err(refusal("PING", e));
    }
    let port = listening_port.to_string();
    // Masters ignore what they do not know; errors here are not fatal for a real replica either.
    let r = conn.call(&["REPLCONF", "listening-port", &port]).await?;
    if let Some(e) = frame_error(&r) {
        if e.starts_with("NOAUTH") || e.starts_with("NOPERM") {
            return Err(SourceError::Refused(format!("REPLCONF refused: {e}")));
        }
        tracing::debug!(reply = %e, "REPLCONF listening-port refused");
    }
    let r = conn
        .call(&["REPLCONF", "capa", "eof", "capa", "psync2"])
        .await?;
    if let Some(e) = frame_error(&r) {
        tracing::debug!(reply = %e, "REPLCONF capa refused");
    }
    match resume {
        // The offset asked for is the first byte not yet received.
        Some(r) => {
            let next = (r.offset + 1).to_string();
            conn.send(&["PSYNC", r.replid.as_str(), next.as_str()])
                .await?;
        }
        None => conn.send(&["PSYNC", "?", "-1"]).await?,
    }
    loop {
        let line = conn.read_line().await?;
        if line.is_empty() {
            continue; // keepalive while the master prepares
        }
        return parse_psync_reply(&line);
    }
}

/// Replies of a source that cannot serve a replica for now: loading its data (`LOADING`), running
/// a busy script (`BUSY`), a replica whose own master is down (`MASTERDOWN` with
/// `replica-serve-stale-data no`; `NOMASTERLINK`, or the older `ERR Can't SYNC while not
/// connected with my master`, to PSYNC), or in a failover (`TRYAGAIN`).
const UNREADY: &[&str] = &[
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "NOMASTERLINK",
    "TRYAGAIN",
    "ERR Can't SYNC while not connected with my master",
];

/// A refusal of `cmd`: to wait out when the source is not ready yet, else final.
fn refusal(cmd: &str, reply: String) -> SourceError {
    let text = format!("{cmd} refused: {reply}");
    if UNREADY
        .iter()
        .any(|u| reply.starts_with(u) && reply[u.len()..].chars().next().is_none_or(|c| c == ' '))
    {
        SourceError::Unready(text)
    } else {
        SourceError::Refused(text)
    }
}

/// Interprets the PSYNC reply line.
pub fn parse_psync_reply(line: &Bytes) -> Result<Psync, SourceError> {
    let text = String::from_utf8_lossy(line);
    if let Some(rest) = text.strip_prefix("+FULLRESYNC ") {
        let mut parts = rest.split_whitespace();
        let replid = parts.next().unwrap_or("");
        let offset = parts.next().and_then(|o| o.parse::<u64>().ok());
        return match offset {
            Some(offset) if replid.len() == 40 && replid.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Psync::Full(FullResync {
                    replid: replid.to_string(),
                    offset,
                }))
            }
            _ => Err(SourceError::Protocol(format!(
                "malformed PSYNC reply {text:?}"
            ))),
        };
    }
    if let Some(rest) = text.strip_prefix("+CONTINUE") {
        let id = rest.trim();
        return match id {
            "" => Ok(Psync::Continue { replid: None }),
            id if id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Psync::Continue {
                    replid: Some(id.to_string()),
                })
            }
            _ => Err(SourceError::Protocol(format!(
                "malformed PSYNC reply {text:?}"
            ))),
        };
    }
    if let Some(err) = text.strip_prefix('-') {
        return Err(refusal("PSYNC", err.to_string()));
    }
    Err(SourceError::Protocol(format!(
        "unexpected PSYNC reply {:?}",
        frame_text(&replay::resp::Frame::SimpleString(line.clone()))
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psync_replies() {
        let id = "a".repeat(40);
        let ok = parse_psync_reply(&Bytes::from(format!("+FULLRESYNC {id} 1234")));
        assert!(matches!(
            ok,
            Ok(Psync::Full(FullResync { offset: 1234, .. }))
        ));
        let cont = parse_psync_reply(&Bytes::from_static(b"+CONTINUE"));
        assert!(matches!(cont, Ok(Psync::Continue { replid: None })));
        let cont = parse_psync_reply(&Bytes::from(format!("+CONTINUE {id}")));
        assert!(matches!(cont, Ok(Psync::Continue { replid: Some(_) })));
        assert!(parse_psync_reply(&Bytes::from_static(b"+CONTINUE xyz")).is_err());
        assert!(parse_psync_reply(&Bytes::from_static(b"+FULLRESYNC short 1")).is_err());
        assert!(matches!(
            parse_psync_reply(&Bytes::from_static(b"-NOPERM no psync")),
            Err(SourceError::Refused(_))
        ));
        for unready in [
            &b"-NOMASTERLINK Can't SYNC while not connected with my master"[..],
            b"-ERR Can't SYNC while not connected with my master",
            b"-LOADING Redis is loading the dataset in memory",
        ] {
            assert!(matches!(
                parse_psync_reply(&Bytes::from_static(unready)),
                Err(SourceError::Unready(_))
            ));
        }
        assert!(matches!(
            refusal("PING", "MASTERDOWN Link with MASTER is down".into()),
            SourceError::Unready(_)
        ));
        assert!(matches!(
            refusal("PING", "BUSYKEY no".into()),
            SourceError::Refused(_)
        ));
        assert!(parse_psync_reply(&Bytes::from_static(b"garbage")).is_err());
    }
}
