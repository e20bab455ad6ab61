//! One side of a comparison: a standalone server (dbs 0–15), or a cluster's masters (db 0
//! only), each key read from the master that owns its slot.

use std::collections::BTreeSet;

use redis::Connection;

use super::{key_facts, query, KeyFacts, DATABASES};
use crate::cluster::{key_slot, RedisCluster, SlotMap};
use crate::display::show;
use crate::server::{self, RedisServer};

/// Something whose dataset can be compared: a standalone [`RedisServer`] or a
/// [`RedisCluster`].
pub trait Compared {
    /// The servers to read, as they are now.
    fn endpoints(&self) -> Endpoints;
}

/// The servers a comparison reads.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `(name, url)` of each server: one for a standalone server, every master of a cluster.
    pub servers: Vec<(String, String)>,
    /// A cluster's slot map, whose masters are `servers`, in the same order; `None` for a
    /// standalone server.
    pub slots: Option<SlotMap>,
}

impl Endpoints {
    /// A connection to each server; panics if one refuses.
    pub fn connect(&self) -> Vec<Connection> {
        self.servers
            .iter()
            .map(|(name, url)| {
                server::connect(url)
                    .unwrap_or_else(|err| panic!("comparison: cannot connect to {name}: {err}"))
            })
            .collect()
    }
}

impl Compared for RedisServer {
    fn endpoints(&self) -> Endpoints {
        Endpoints {
            servers: vec![(self.addr(), self.url())],
            slots: None,
        }
    }
}

impl Compared for RedisCluster {
    fn endpoints(&self) -> Endpoints {
        let map = self.slot_map();
        assert_eq!(
            map.unassigned(),
            0,
            "comparison: the cluster has unassigned slots"
        );
        let servers = map
            .masters()
            .iter()
            .map(|addr| match self.node(addr) {
                Some(node) => (addr.clone(), node.url()),
                None => panic!("comparison: the slot map names {addr}, not a node of the cluster"),
            })
            .collect();
        Endpoints {
            servers,
            slots: Some(map),
        }
    }
}

/// A key found on a cluster master that does not own its slot.
pub(super) struct Misplaced {
    pub key: Vec<u8>,
    pub detail: String,
}

/// The connections of one side, and which of them holds each key.
pub(super) struct Side<'a> {
    names: Vec<String>,
    cons: Vec<&'a mut Connection>,
    /// `Some` for a cluster: `cons[i]` is the slot map's master `i`.
    slots: Option<&'a SlotMap>,
}

impl<'a> Side<'a> {
    /// A standalone server behind one connection.
    pub(super) fn standalone(con: &'a mut Connection) -> Side<'a> {
        Side {
            names: vec!["the server".to_string()],
            cons: vec![con],
            slots: None,
        }
    }

    /// The servers of `endpoints`, behind `cons` (from [`Endpoints::connect`]).
    pub(super) fn new(endpoints: &'a Endpoints, cons: &'a mut [Connection]) -> Side<'a> {
        assert_eq!(
            endpoints.servers.len(),
            cons.len(),
            "one connection per server"
        );
        Side {
            names: endpoints
                .servers
                .iter()
                .map(|(name, _)| name.clone())
                .collect(),
            cons: cons.iter_mut().collect(),
            slots: endpoints.slots.as_ref(),
        }
    }

    /// The keys of `db` (none for a cluster's dbs other than 0, which do not exist), and the
    /// keys found on a cluster master that does not own their slot.
    pub(super) fn keys(&mut self, db: u8) -> (BTreeSet<Vec<u8>>, Vec<Misplaced>) {
        debug_assert!(db < DATABASES);
        let mut keys = BTreeSet::new();
        let mut misplaced = Vec::new();
        let Some(slots) = self.slots else {
            let _: () = query(self.cons[0], redis::cmd("SELECT").arg(db));
            return (scan_keys(self.cons[0]), misplaced);
        };
        if db != 0 {
            return (keys, misplaced);
        }
        for (index, con) in self.cons.iter_mut().enumerate() {
            for key in scan_keys(con) {
                let slot = key_slot(&key);
                if slots.owner_index(slot) != Some(index) {
                    misplaced.push(Misplaced {
                        detail: format!(
                            "on {}, but slot {slot} belongs to {}",
                            self.names[index],
                            slots.owner(slot).unwrap_or("no master")
                        ),
                        key: key.clone(),
                    });
                }
                keys.insert(key);
            }
        }
        (keys, misplaced)
    }

    /// The index of the connection that holds `key`.
    fn index(&self, key: &[u8]) -> usize {
        match self.slots {
            None => 0,
            Some(slots) => slots.owner_index(key_slot(key)).unwrap_or_else(|| {
                panic!(
                    "comparison: slot {} of {} has no master",
                    key_slot(key),
                    show(key)
                )
            }),
        }
    }

    /// The connection that holds `key`.
    pub(super) fn con(&mut self, key: &[u8]) -> &mut Connection {
        let index = self.index(key);
        self.cons[index]
    }

    /// [`key_facts`] of `keys`, in order, each read where it lives (one pipeline per server).
    pub(super) fn key_facts(&mut self, keys: &[&Vec<u8>]) -> Vec<KeyFacts> {
        if self.slots.is_none() {
            return key_facts(self.cons[0], keys);
        }
        let owners: Vec<usize> = keys.iter().map(|key| self.index(key)).collect();
        let mut facts: Vec<Option<KeyFacts>> = keys.iter().map(|_| None).collect();
        for (index, con) in self.cons.iter_mut().enumerate() {
            let positions: Vec<usize> = (0..keys.len()).filter(|&i| owners[i] == index).collect();
            if positions.is_empty() {
                continue;
            }
            let own: Vec<&Vec<u8>> = positions.iter().map(|&i| keys[i]).collect();
            for (position, fact) in positions.into_iter().zip(key_facts(con, &own)) {
                facts[position] = Some(fact);
            }
        }
        let facts: Vec<KeyFacts> = facts.into_iter().flatten().collect();
        assert_eq!(facts.len(), keys.len(), "facts read for every key");
        facts
    }
}

/// replicant's heartbeat keys, which it writes to the source and never copies: not part of
/// the dataset.
pub const HEARTBEAT_PREFIX: &[u8] = b"replicant:heartbeat:";

/// replicant's state keys on a destination (exactly-once delivery records the source offset
/// there, under the default `--state-key-prefix`): not part of the dataset either.
pub const STATE_PREFIXES: [&[u8]; 3] = [
    b"replicant:applied",
    b"replicant:floor:",
    b"replicant:shard-",
];

/// How many of the keys in the selected db of `con` are replicant's own (heartbeats, state
/// keys): what a key count of a destination leaves out.
pub fn replicant_key_count(con: &mut Connection) -> u64 {
    let mut n = 0;
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = query(
            con,
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("replicant:*")
                .arg("COUNT")
                .arg(1000),
        );
        n += batch.iter().filter(|k| is_replicant_key(k)).count() as u64;
        if next == 0 {
            return n;
        }
        cursor = next;
    }
}

/// Whether `key` is one of replicant's own (a heartbeat or a state key).
pub fn is_replicant_key(key: &[u8]) -> bool {
    key.starts_with(HEARTBEAT_PREFIX) || STATE_PREFIXES.iter().any(|p| key.starts_with(p))
}

fn scan_keys(con: &mut Connection) -> BTreeSet<Vec<u8>> {
    let mut keys = BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) =
            query(con, redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(1000));
        keys.extend(batch.into_iter().filter(|k| !is_replicant_key(k)));
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}
