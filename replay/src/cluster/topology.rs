//! The destination cluster's slot map: which master owns each slot, read from
//! `CLUSTER SHARDS` (Redis 7.0+) or, failing that, `CLUSTER SLOTS`. Parsing is pure.

use crate::resp::{frame_text, Frame};

use super::slot::SLOTS;

/// A master's address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeAddr {
    pub host: String,
    pub port: u16,
}

/// Masters and the owner of every slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub masters: Vec<NodeAddr>,
    /// Index into `masters` for each slot; `None` where no master serves it.
    pub owner: Vec<Option<usize>>,
}

impl Topology {
    fn empty() -> Self {
        Topology {
            masters: Vec::new(),
            owner: vec![None; SLOTS],
        }
    }

    fn assign(&mut self, node: NodeAddr, ranges: &[(i64, i64)]) -> Result<(), String> {
        let idx = match self.masters.iter().position(|m| *m == node) {
            Some(i) => i,
            None => {
                self.masters.push(node);
                self.masters.len() - 1
            }
        };
        for &(a, b) in ranges {
            if a < 0 || b < a || b >= SLOTS as i64 {
                return Err(format!("slot range {a}-{b} out of bounds"));
            }
            for s in a..=b {
                self.owner[s as usize] = Some(idx);
            }
        }
        Ok(())
    }

    /// Slots no master serves.
    pub fn unassigned(&self) -> usize {
        self.owner.iter().filter(|o| o.is_none()).count()
    }
}

fn int(f: &Frame) -> Option<i64> {
    match f {
        Frame::Integer(i) => Some(*i),
        Frame::BulkString(b) | Frame::SimpleString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// A RESP2 "map": a flat array of name, value, name, value...
fn field<'a>(items: &'a [Frame], name: &str) -> Option<&'a Frame> {
    items
        .chunks(2)
        .find(|kv| frame_text(&kv[0]) == name)
        .and_then(|kv| kv.get(1))
}

/// The slot map from a `CLUSTER SHARDS` reply. With `tls`, nodes are reached on their
/// `tls-port` (reported when the cluster runs `tls-cluster yes`), else on their `port`.
pub fn from_shards(reply: &Frame, tls: bool) -> Result<Topology, String> {
    let Frame::Array(shards) = reply else {
        return Err(format!(
            "CLUSTER SHARDS: unexpected reply {}",
            frame_text(reply)
        ));
    };
    let mut t = Topology::empty();
    for shard in shards {
        let Frame::Array(kv) = shard else {
            return Err("CLUSTER SHARDS: a shard is not a map".into());
        };
        let ranges: Vec<(i64, i64)> = match field(kv, "slots") {
            Some(Frame::Array(s)) => s
                .chunks(2)
                .filter_map(|p| Some((int(&p[0])?, int(p.get(1)?)?)))
                .collect(),
            _ => Vec::new(),
        };
        let Some(Frame::Array(nodes)) = field(kv, "nodes") else {
            return Err("CLUSTER SHARDS: a shard without nodes".into());
        };
        let master = nodes.iter().find_map(|n| {
            let Frame::Array(n) = n else { return None };
            let role = field(n, "role").map(frame_text)?;
            let health = field(n, "health").map(frame_text).unwrap_or_default();
            if role != "master" || health == "fail" {
                return None;
            }
            let ip = field(n, "ip").map(frame_text);
            let endpoint = field(n, "endpoint").map(frame_text);
            let host = match endpoint {
                Some(e) if !e.is_empty() && e != "?" => e,
                _ => ip?,
            };
            let tls_port = field(n, "tls-port").filter(|_| tls);
            let port = u16::try_from(tls_port.or_else(|| field(n, "port")).and_then(int)?).ok()?;
            Some(NodeAddr { host, port })
        });
        let Some(master) = master else {
            if ranges.is_empty() {
                continue;
            }
            return Err("CLUSTER SHARDS: a shard with slots has no healthy master".into());
        };
        // A master without slots is kept: it may be importing some (ASK sends us there).
        t.assign(master, &ranges)?;
    }
    Ok(t)
}

/// The slot map from a `CLUSTER SLOTS` reply (whose ports are those of the connection's kind:
/// TLS ports when asked over TLS).
pub fn from_slots(reply: &Frame) -> Result<Topology, String> {
    let Frame::Array(entries) = reply else {
        return Err(format!(
            "CLUSTER SLOTS: unexpected reply {}",
            frame_text(reply)
        ));
    };
    let mut t = Topology::empty();
    for e in entries {
        let Frame::Array(e) = e else {
            return Err("CLUSTER SLOTS: an entry is not an array".into());
        };
        let (Some(a), Some(b)) = (e.first().and_then(int), e.get(1).and_then(int)) else {
            return Err("CLUSTER SLOTS: an entry without its slot range".into());
        };
        let Some(Frame::Array(m)) = e.get(2) else {
            return Err("CLUSTER SLOTS: an entry without a master".into());
        };
        let host = m.first().map(frame_text).unwrap_or_default();
        let port = m
            .get(1)
            .and_then(int)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("CLUSTER SLOTS: a master without a port")?;
        t.assign(NodeAddr { host, port }, &[(a, b)])?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn s(x: &str) -> Frame {
        Frame::BulkString(Bytes::copy_from_slice(x.as_bytes()))
    }

    fn node(port: i64, role: &str) -> Frame {
        Frame::Array(vec![
            s("id"),
            s("abc"),
            s("port"),
            Frame::Integer(port),
            s("ip"),
            s("127.0.0.1"),
            s("endpoint"),
            s("127.0.0.1"),
            s("role"),
            s(role),
            s("health"),
            s("online"),
        ])
    }

    #[test]
    fn shards() {
        let reply = Frame::Array(vec![
            Frame::Array(vec![
                s("slots"),
                Frame::Array(vec![Frame::Integer(0), Frame::Integer(8191)]),
                s("nodes"),
                Frame::Array(vec![node(7001, "replica"), node(7000, "master")]),
            ]),
            Frame::Array(vec![
                s("slots"),
                Frame::Array(vec![Frame::Integer(8192), Frame::Integer(16383)]),
                s("nodes"),
                Frame::Array(vec![node(7002, "master")]),
            ]),
        ]);
        let t = from_shards(&reply, false).expect("valid");
        assert_eq!(t.masters.len(), 2);
        assert_eq!(t.masters[0].port, 7000);
        // A node that reports no TLS port is reached on its port either way.
        assert_eq!(from_shards(&reply, true).expect("valid"), t);
        assert_eq!(t.owner[0], Some(0));
        assert_eq!(t.owner[16383], Some(1));
        assert_eq!(t.unassigned(), 0);
    }

    #[test]
    fn shards_over_tls() {
        let node = |port: i64, tls_port: i64| {
            Frame::Array(vec![
                s("port"),
                Frame::Integer(port),
                s("tls-port"),
                Frame::Integer(tls_port),
                s("ip"),
                s("127.0.0.1"),
                s("role"),
                s("master"),
            ])
        };
        let reply = Frame::Array(vec![Frame::Array(vec![
            s("slots"),
            Frame::Array(vec![Frame::Integer(0), Frame::Integer(16383)]),
            s("nodes"),
            Frame::Array(vec![node(7000, 17000)]),
        ])]);
        assert_eq!(
            from_shards(&reply, true).expect("tls").masters[0].port,
            17000
        );
        assert_eq!(
            from_shards(&reply, false).expect("plain").masters[0].port,
            7000
        );
    }

    #[test]
    fn slots() {
        let reply = Frame::Array(vec![Frame::Array(vec![
            Frame::Integer(0),
            Frame::Integer(100),
            Frame::Array(vec![s("10.0.0.1"), Frame::Integer(6379), s("id")]),
        ])]);
        let t = from_slots(&reply).expect("valid");
        assert_eq!(t.masters[0].host, "10.0.0.1");
        assert_eq!(t.unassigned(), SLOTS - 101);
        assert!(from_slots(&Frame::Integer(1)).is_err());
    }
}
