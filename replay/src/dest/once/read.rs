//! Reading the state keys back from the destination, on connections of its own (never a
//! writer's): what a standalone destination holds (the highest record in any db that has
//! keys), or, per slot, what each master of a cluster holds (`MGET` of the slot's record and
//! floor, pipelined).

use std::time::Duration;

use bytes::Bytes;

use super::{decode, Ledger};
use crate::cluster::Topology;
use crate::cmd::Command;
use crate::dest::DestError;
use crate::net::{connect_and_auth, Endpoint, Stream};
use crate::resp::{frame_error, frame_text, Conn, Frame};

/// Requests in flight at most on a read-back connection.
const PIPELINE: usize = 512;

/// The dbs of `INFO keyspace` that hold keys.
pub fn keyspace_dbs(info: &str) -> Vec<u64> {
    info.lines()
        .filter_map(|l| l.strip_prefix("db")?.split_once(':')?.0.parse().ok())
        .collect()
}

fn refused(cmd: &str, reply: String) -> DestError {
    DestError::Refused {
        cmd: cmd.into(),
        key: None,
        reply,
    }
}

/// Sends `cmds` pipelined and returns their replies in order; an error reply stops it.
async fn pipelined(
    conn: &mut Conn<Stream>,
    cmds: &[Command],
    what: &str,
) -> Result<Vec<Frame>, DestError> {
    let mut replies = Vec::with_capacity(cmds.len());
    for chunk in cmds.chunks(PIPELINE) {
        conn.send_many(chunk).await?;
        for _ in chunk {
            let f = conn.read_frame().await?;
            if let Some(e) = frame_error(&f) {
                return Err(refused(what, e));
            }
            replies.push(f);
        }
    }
    Ok(replies)
}

fn bulk(f: &Frame) -> Option<&Bytes> {
    match f {
        Frame::BulkString(b) => Some(b),
        _ => None,
    }
}

/// Reads what a standalone destination holds for the ledger's stream.
pub async fn read_single(
    ep: &Endpoint,
    timeout: Duration,
    ledger: &mut Ledger,
) -> Result<(), DestError> {
    let read = async {
        let mut conn = connect_and_auth(ep, timeout).await?;
        let info = conn.call(&["INFO", "keyspace"]).await?;
        if let Some(e) = frame_error(&info) {
            return Err(refused("INFO keyspace", e));
        }
        let key = ledger.keys.applied(None);
        let mut cmds = Vec::new();
        for db in keyspace_dbs(&frame_text(&info)) {
            cmds.push(Command::new(&["SELECT", db.to_string().as_str()]));
            cmds.push(Command::new(&[&b"MGET"[..], &key]));
        }
        let replies = pipelined(&mut conn, &cmds, "MGET (the applied offset)").await?;
        Ok(replies
            .iter()
            .filter_map(|f| match f {
                Frame::Array(one) => decode(bulk(one.first()?)?, &ledger.replid),
                _ => None,
            })
            .max())
    };
    let held = tokio::time::timeout(timeout.saturating_mul(6), read)
        .await
        .map_err(|_| timed_out(ep, timeout))??;
    ledger.set_held(0, held.unwrap_or(0));
    Ok(())
}

fn timed_out(ep: &Endpoint, timeout: Duration) -> DestError {
    DestError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "{ep} did not answer the read of the applied offsets within {} s",
            timeout.as_secs() * 6
        ),
    ))
}

/// Reads, from the masters of `topo`, what each slot holds (`only`: those slots, and the
/// lowest slot of each master they are on, where its floor is written; `None`: every slot).
pub async fn read_cluster(
    seed: &Endpoint,
    topo: &Topology,
    timeout: Duration,
    ledger: &mut Ledger,
    only: Option<&[u16]>,
) -> Result<(), DestError> {
    let mut wanted: Vec<Vec<u16>> = vec![Vec::new(); topo.masters.len()];
    match only {
        None => {
            for (s, o) in topo.owner.iter().enumerate() {
                if let Some(m) = o {
                    wanted[*m].push(s as u16);
                }
            }
        }
        Some(slots) => {
            for &s in slots {
                if let Some(Some(m)) = topo.owner.get(usize::from(s)) {
                    wanted[*m].push(s);
                }
            }
            for (m, w) in wanted.iter_mut().enumerate() {
                if !w.is_empty() {
                    if let Some(home) = topo.owner.iter().position(|o| *o == Some(m)) {
                        w.push(home as u16);
                    }
                    w.sort_unstable();
                    w.dedup();
                }
            }
        }
    }
    for (m, slots) in wanted.iter().enumerate() {
        if slots.is_empty() {
            continue;
        }
        let addr = &topo.masters[m];
        let ep = seed.with_addr(&addr.host, addr.port);
        let cmds: Vec<Command> = slots
            .iter()
            .map(|&s| {
                Command::new(&[
                    &b"MGET"[..],
                    &ledger.keys.applied(Some(s)),
                    &ledger.keys.floor(s),
                ])
            })
            .collect();
        let read = async {
            let mut conn = connect_and_auth(&ep, timeout).await?;
            pipelined(&mut conn, &cmds, "MGET (the applied offsets)").await
        };
        let replies = tokio::time::timeout(timeout.saturating_mul(6), read)
            .await
            .map_err(|_| timed_out(&ep, timeout))??;
        let mut held = Vec::with_capacity(slots.len());
        let mut floor = 0u64;
        for f in &replies {
            let Frame::Array(pair) = f else {
                return Err(DestError::Unsupported(format!(
                    "{ep}: MGET of the applied offsets: unexpected reply {}",
                    frame_text(f)
                )));
            };
            let at = |i: usize| {
                pair.get(i)
                    .and_then(bulk)
                    .and_then(|v| decode(v, &ledger.replid))
            };
            held.push(at(0).unwrap_or(0));
            floor = floor.max(at(1).unwrap_or(0));
        }
        for (&s, h) in slots.iter().zip(held) {
            ledger.set_held(s, h.max(floor));
        }
    }
    Ok(())
}
