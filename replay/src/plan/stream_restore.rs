//! A `RESTORE` (or `RESTORE-ASKING`, a MIGRATE into the source) in the replication stream
//! whose payload the destination cannot load: an RDB version newer than the destination's
//! (a Redis 7.4 source into 7.2 or Valkey 8, say), or a type code it does not know. The
//! destination would refuse it ("DUMP payload version or checksum are wrong"); instead, the
//! payload is planned as the snapshot's entries are ([`super::RdbPlanner`]): stamped with the
//! destination's version when it knows the type, otherwise decoded and rewritten (DEL, the
//! elements in batches, PEXPIREAT). The source's RESTORE succeeded (it is propagated only
//! then), so the key either did not exist or was replaced: both are what the plan does.
//!
//! Pure: the command in, the commands out. It knows nothing of the link or the destination's
//! connections.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::RdbPlanner;
use crate::cmd::Command;
use crate::rdb::{types, Entry, Event, KeyMeta};
use crate::resp::peek_args;

/// See the module documentation.
#[derive(Debug)]
pub struct StreamRestore {
    planner: RdbPlanner,
    /// The destination's RDB version.
    rdb_version: u32,
    /// Payloads planned again so far.
    pub replanned: u64,
}

impl StreamRestore {
    /// `planner`: planning for the destination (its capabilities and batch bounds).
    pub fn new(planner: RdbPlanner, rdb_version: u32) -> Self {
        StreamRestore {
            planner,
            rdb_version,
            replanned: 0,
        }
    }

    /// The commands to send instead of the RESTORE frame `raw`, when the destination cannot
    /// load its payload; `Ok(None)` sends it as it is. `db`: the db the stream has selected
    /// (the destination connection's too).
    pub fn plan(&mut self, raw: &Bytes, db: u64) -> Result<Option<Vec<Command>>, String> {
        let args = peek_args(raw, usize::MAX);
        let (Some(key), Some(ttl), Some(payload)) = (args.get(1), args.get(2), args.get(3)) else {
            return Ok(None);
        };
        let n = payload.len();
        if n < 11 {
            return Ok(None); // not a payload the source could have restored either
        }
        let ty = payload[0];
        let version = u32::from(u16::from_le_bytes([payload[n - 10], payload[n - 9]]));
        if version <= self.rdb_version && types::min_rdb_version(ty) <= self.rdb_version {
            return Ok(None);
        }
        let Some(logical) = types::logical(ty) else {
            return Err(format!(
                "RESTORE of key {}: unknown value type {ty}",
                crate::display::printable(key)
            ));
        };
        let ttl: i64 = std::str::from_utf8(ttl)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("RESTORE of key {}: bad ttl", crate::display::printable(key)))?;
        let absolute = args[4..].iter().any(|a| a.eq_ignore_ascii_case(b"ABSTTL"));
        let expire_ms = match (ttl, absolute) {
            (t, _) if t <= 0 => None,
            (t, true) => Some(t),
            (t, false) => Some(now_ms().saturating_add(t)),
        };
        let meta = KeyMeta {
            db,
            key: key.clone(),
            ty,
            logical,
            expire_ms,
            idle: None,
            freq: None,
            offset: 0,
        };
        let entry = Entry {
            meta,
            raw: payload.slice(1..n - 10),
        };
        let mut out = Vec::new();
        self.planner
            .plan(Event::Header { version }, &mut out)
            .map_err(|e| e.to_string())?;
        self.planner.assume_db(db);
        self.planner
            .plan(Event::Entry(entry), &mut out)
            .map_err(|e| format!("RESTORE of key {}: {e}", crate::display::printable(key)))?;
        self.replanned += 1;
        Ok(Some(out))
    }
}

impl StreamRestore {
    /// A `FUNCTION RESTORE <payload> [policy]` whose payload carries an RDB version newer
    /// than the destination's: the libraries in it (`FUNCTION2` entries: their code) are the
    /// same in every version since 7.0, so the payload goes stamped with the destination's
    /// version (and its checksum made again). `None` sends the frame as it is.
    pub fn function_restore(&mut self, raw: &Bytes) -> Option<Command> {
        let args = peek_args(raw, usize::MAX);
        if !args.get(1)?.eq_ignore_ascii_case(b"RESTORE") {
            return None;
        }
        let payload = args.get(2)?;
        let n = payload.len();
        if n < 11 || payload[0] != crate::rdb::types::OPCODE_FUNCTION2 {
            return None;
        }
        let version = u32::from(u16::from_le_bytes([payload[n - 10], payload[n - 9]]));
        if version <= self.rdb_version {
            return None;
        }
        let body = &payload[..n - 10];
        let stamped = u16::try_from(self.rdb_version).ok()?;
        let mut out = body.to_vec();
        out.extend_from_slice(&crate::rdb::crc64::dump_trailer(
            body[0],
            &body[1..],
            stamped,
        ));
        let mut new_args: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        new_args[2] = &out;
        self.replanned += 1;
        Some(Command::new(&new_args))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{BatchLimits, Caps};
    use crate::rdb::crc64::dump_trailer;

    fn caps(rdb_version: u32) -> Caps {
        let info = format!(
            "redis_version:{}\r\n",
            if rdb_version >= 11 { "7.2.0" } else { "7.0.15" }
        );
        Caps::from_info(&info).expect("caps")
    }

    /// `RESTORE k ttl <payload of a string value "hello", stamped version> [ABSTTL]`.
    fn restore(version: u16, ttl: i64, abs: bool) -> Bytes {
        let raw = Bytes::from_static(b"\x05hello");
        let mut payload = vec![0u8];
        payload.extend_from_slice(&raw);
        payload.extend_from_slice(&dump_trailer(0, &raw, version));
        let ttl = ttl.to_string();
        let mut args: Vec<&[u8]> = vec![b"RESTORE", b"k", ttl.as_bytes(), &payload];
        if abs {
            args.push(b"ABSTTL");
        }
        Command::new(&args).chunks()[0].clone()
    }

    fn texts(cmds: &[Command]) -> Vec<String> {
        cmds.iter()
            .map(|c| {
                let wire: Vec<u8> = c.chunks().iter().flat_map(|b| b.iter().copied()).collect();
                let args = peek_args(&Bytes::from(wire), usize::MAX);
                args.iter()
                    .take(3)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn a_payload_the_destination_reads_goes_as_it_is() {
        let c = caps(10);
        let mut r = StreamRestore::new(
            RdbPlanner::new(c, 1 << 20, BatchLimits::default()),
            c.rdb_version,
        );
        assert!(r.plan(&restore(10, 0, false), 0).expect("valid").is_none());
        assert!(r.plan(&restore(9, 0, false), 0).expect("valid").is_none());
    }

    #[test]
    fn a_newer_payload_is_stamped_with_the_destinations_version() {
        let c = caps(10);
        let mut r = StreamRestore::new(
            RdbPlanner::new(c, 1 << 20, BatchLimits::default()),
            c.rdb_version,
        );
        let out = r
            .plan(&restore(12, 4_000_000_000_000, true), 3)
            .expect("valid")
            .expect("replanned");
        assert_eq!(texts(&out), vec!["RESTORE k 4000000000000"]);
        let wire: Vec<u8> = out[0]
            .chunks()
            .iter()
            .flat_map(|b| b.iter().copied())
            .collect();
        let payload = &peek_args(&Bytes::from(wire), 4)[3];
        let n = payload.len();
        assert_eq!(u16::from_le_bytes([payload[n - 10], payload[n - 9]]), 10);
        assert_eq!(r.replanned, 1);
    }

    #[test]
    fn a_relative_ttl_becomes_absolute_and_a_bad_one_is_refused() {
        let c = caps(10);
        let mut r = StreamRestore::new(
            RdbPlanner::new(c, 1 << 20, BatchLimits::default()),
            c.rdb_version,
        );
        let out = r
            .plan(&restore(12, 60_000, false), 0)
            .expect("valid")
            .expect("replanned");
        let at: i64 = texts(&out)[0]
            .split(' ')
            .nth(2)
            .and_then(|t| t.parse().ok())
            .expect("ttl");
        assert!((at - now_ms() - 60_000).abs() < 5_000, "{at}");
        let mut bad = restore(12, 0, false).to_vec();
        let pos = bad.windows(3).position(|w| w == b"\r\n0").expect("ttl") + 2;
        bad[pos] = b'x';
        assert!(r.plan(&Bytes::from(bad), 0).is_err());
    }

    #[test]
    fn function_restores_of_a_newer_version_are_stamped_again() {
        let code = b"#!lua name=l\nredis.register_function('f', function() return 1 end)";
        let mut body = vec![crate::rdb::types::OPCODE_FUNCTION2, code.len() as u8];
        body.extend_from_slice(code);
        let mut payload = body.clone();
        payload.extend_from_slice(&dump_trailer(body[0], &body[1..], 12));
        let frame =
            Command::new(&[&b"FUNCTION"[..], b"RESTORE", &payload, b"REPLACE"]).chunks()[0].clone();
        let planner = RdbPlanner::new(caps(10), 1 << 20, BatchLimits::default());
        let mut r = StreamRestore::new(planner, 10);
        let c = r.function_restore(&frame).expect("stamped again");
        let args = peek_args(c.chunks()[0], usize::MAX);
        assert_eq!(args.len(), 4);
        let mut want = body.clone();
        want.extend_from_slice(&dump_trailer(body[0], &body[1..], 10));
        assert_eq!(&args[2][..], &want[..]);
        assert_eq!(&args[3][..], b"REPLACE");
        // The destination's own version, or an older one: as it is.
        let planner = RdbPlanner::new(caps(12), 1 << 20, BatchLimits::default());
        assert!(StreamRestore::new(planner, 12)
            .function_restore(&frame)
            .is_none());
        let planner = RdbPlanner::new(caps(10), 1 << 20, BatchLimits::default());
        let flush = Command::new(&["FUNCTION", "FLUSH"]).chunks()[0].clone();
        assert!(StreamRestore::new(planner, 10)
            .function_restore(&flush)
            .is_none());
    }
}
