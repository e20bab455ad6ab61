//! Which slot a key hashes to, and which master owns each slot.
//!
//! [`key_slot`] is Redis Cluster's own: CRC16 (XMODEM) of the key, or of its hash tag (what
//! lies between the first `{` and the first `}` after it, when that is not empty), modulo
//! 16384. [`SlotMap`] is a cluster's `CLUSTER SLOTS` reply as a table, slot → master.

use redis::Value;

use crate::display::text;

/// Slots in a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// The slot of `key`, as Redis Cluster computes it (`CLUSTER KEYSLOT`).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key).unwrap_or(key)) % SLOTS
}

/// The hash tag of `key`: the bytes between the first `{` and the first `}` after it, if
/// there are any.
pub fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = &key[open + 1..];
    let close = rest.iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &rest[..close])
}

/// CRC16/XMODEM: polynomial 0x1021, initial value 0, no reflection.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Which master owns each slot, as one node's `CLUSTER SLOTS` saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    /// The masters, as `ip:port`, in the order they first appear in the reply.
    masters: Vec<String>,
    /// For each slot, the index of its master in `masters`; `None` if unassigned.
    owners: Vec<Option<usize>>,
}

impl SlotMap {
    /// Parses a `CLUSTER SLOTS` reply: `[[start, end, [ip, port, id, …], replica…], …]`.
    pub fn from_cluster_slots(reply: &Value) -> Result<SlotMap, String> {
        let Value::Array(ranges) = reply else {
            return Err(format!("CLUSTER SLOTS is not an array: {}", text(reply)));
        };
        let mut map = SlotMap {
            masters: Vec::new(),
            owners: vec![None; usize::from(SLOTS)],
        };
        for range in ranges {
            let bad = || format!("bad CLUSTER SLOTS entry: {}", text(range));
            let Value::Array(parts) = range else {
                return Err(bad());
            };
            let (Some(start), Some(end), Some(Value::Array(master))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                return Err(bad());
            };
            let (Some(ip), Some(port)) = (master.first(), master.get(1)) else {
                return Err(bad());
            };
            let addr = format!("{}:{}", text(ip), text(port));
            let index = match map.masters.iter().position(|known| *known == addr) {
                Some(index) => index,
                None => {
                    map.masters.push(addr);
                    map.masters.len() - 1
                }
            };
            let slot = |value: &Value| {
                text(value)
                    .parse::<usize>()
                    .ok()
                    .filter(|slot| *slot < usize::from(SLOTS))
            };
            let (Some(start), Some(end)) = (slot(start), slot(end)) else {
                return Err(bad());
            };
            for owner in map.owners.get_mut(start..=end).ok_or_else(bad)? {
                *owner = Some(index);
            }
        }
        Ok(map)
    }

    /// The masters that own slots, as `ip:port`.
    pub fn masters(&self) -> &[String] {
        &self.masters
    }

    /// The index in [`SlotMap::masters`] of the master owning `slot`; `None` if unassigned.
    pub fn owner_index(&self, slot: u16) -> Option<usize> {
        self.owners.get(usize::from(slot)).copied().flatten()
    }

    /// The master (`ip:port`) owning `slot`; `None` if unassigned.
    pub fn owner(&self, slot: u16) -> Option<&str> {
        self.owner_index(slot)
            .map(|index| self.masters[index].as_str())
    }

    /// The master (`ip:port`) owning `key`'s slot; `None` if unassigned.
    pub fn owner_of_key(&self, key: &[u8]) -> Option<&str> {
        self.owner(key_slot(key))
    }

    /// How many slots the master at `addr` (`ip:port`) owns.
    pub fn slots_of(&self, addr: &str) -> usize {
        match self.masters.iter().position(|master| master == addr) {
            Some(index) => self.owners.iter().filter(|o| **o == Some(index)).count(),
            None => 0,
        }
    }

    /// How many slots no master owns.
    pub fn unassigned(&self) -> usize {
        self.owners.iter().filter(|owner| owner.is_none()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // The example of the Redis Cluster specification.
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // Values checked against Redis 7.0's CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b""), 0);
        // An empty tag is no tag; only the first `{` counts.
        assert_eq!(key_slot(b"{}x"), crc16(b"{}x") % SLOTS);
        assert_eq!(hash_tag(b"a{b}{c}"), Some(&b"b"[..]));
        assert_eq!(hash_tag(b"a{{b}}"), Some(&b"{b"[..]));
        assert_eq!(hash_tag(b"a}b{c"), None);
    }

    #[test]
    fn cluster_slots_reply_becomes_a_table() {
        let node = |port: i64| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node(7000),
                node(7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node(7001)]),
        ]);
        let map = SlotMap::from_cluster_slots(&reply).expect("a valid reply");
        assert_eq!(map.masters(), ["127.0.0.1:7000", "127.0.0.1:7001"]);
        assert_eq!(map.owner(5460), Some("127.0.0.1:7000"));
        assert_eq!(map.owner(5461), Some("127.0.0.1:7001"));
        assert_eq!(map.owner_of_key(b"123456789"), Some("127.0.0.1:7001"));
        assert_eq!(map.unassigned(), 0);

        let partial = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(99),
            node(7000),
        ])]);
        let map = SlotMap::from_cluster_slots(&partial).expect("a valid reply");
        assert_eq!(map.unassigned(), 16_384 - 100);
        assert_eq!(map.owner(100), None);
        assert!(SlotMap::from_cluster_slots(&Value::Int(1)).is_err());
    }
}
