//! The workload's multi-key writes for cluster destinations
//! ([`super::WorkloadConfig::cross_slot`]).
//!
//! Across slots, which a cluster destination must split per slot or apply command by command:
//! MSET of string keys, DEL and UNLINK of keys of any type, and MULTI/EXEC blocks of writes
//! (sometimes with a cross-slot MSET or DEL inside). Within one slot, by hash tag
//! (`wl:{tN}:…`, [`TAGS`] tags), which a cluster runs as they are: MSET, SUNIONSTORE, RENAME
//! of a key just written (so it exists; with a long TTL half the time, which RENAME keeps),
//! LMOVE between two lists, and MULTI/EXEC blocks of those. Keys "across slots" are drawn
//! again until at least two slots differ.

use redis::Connection;

use super::{cmd, State};
use crate::cluster::key_slot;

/// Hash tags of the tagged keys.
const TAGS: u64 = 8;

/// The hash tags of the tagged keys (`t0` for `wl:{t0}:…`, …): each of their slots takes
/// far more of the workload's writes than any other slot. For tests that put keys there.
pub fn hash_tags() -> Vec<String> {
    (0..TAGS).map(|n| format!("t{n}")).collect()
}
/// Draws of another key, at most, to get keys in different slots.
const REDRAWS: usize = 20;
/// The untagged prefixes [`State::write_to`] writes.
const WRITABLE: [&str; 8] = ["s", "i", "f", "l", "set", "z", "h", "x"];

impl State {
    /// One cross-slot or hash-tagged operation.
    pub(super) fn cross_slot_op(&mut self, con: &mut Connection) -> Result<(), String> {
        match self.rng.below(9) {
            0 => {
                let mut mset = self.cross_slot_mset();
                self.exec(con, &mut mset)
            }
            1 | 2 => {
                let name = if self.rng.chance(1, 2) {
                    "DEL"
                } else {
                    "UNLINK"
                };
                let mut delete = self.cross_slot_delete(name);
                self.exec(con, &mut delete)
            }
            3 | 4 => self.cross_slot_multi(con),
            5 => {
                let tag = self.tag();
                let mut mset = self.tagged_mset(&tag);
                self.exec(con, &mut mset)
            }
            6 => {
                let tag = self.tag();
                self.tagged_union(con, &tag)
            }
            7 => {
                let tag = self.tag();
                self.tagged_rename(con, &tag)
            }
            _ => {
                let tag = self.tag();
                if self.rng.chance(1, 3) {
                    self.tagged_multi(con, &tag)
                } else {
                    self.tagged_lmove(con, &tag)
                }
            }
        }
    }

    /// `MSET` of two to four string keys, in at least two slots.
    fn cross_slot_mset(&mut self) -> redis::Cmd {
        let count = self.rng.between(2, 4) as usize;
        let keys = self.keys_across_slots(&vec!["s"; count]);
        let mut mset = redis::cmd("MSET");
        for key in keys {
            mset.arg(key).arg(self.value());
        }
        mset
    }

    /// `DEL` or `UNLINK` of two or three keys of any type in at least two slots, sometimes
    /// with a tagged string among them.
    fn cross_slot_delete(&mut self, name: &str) -> redis::Cmd {
        let prefixes = self.some_prefixes(2, 3);
        let mut delete = redis::cmd(name);
        for key in self.keys_across_slots(&prefixes) {
            delete.arg(key);
        }
        if self.rng.chance(1, 4) {
            let tag = self.tag();
            delete.arg(format!("{tag}:str:a"));
        }
        delete
    }

    /// MULTI, two to four writes to keys in at least two slots (sometimes with a cross-slot
    /// MSET or DEL among them), EXEC.
    fn cross_slot_multi(&mut self, con: &mut Connection) -> Result<(), String> {
        let prefixes = self.some_prefixes(2, 4);
        let keys = self.keys_across_slots(&prefixes);
        self.exec(con, &mut cmd("MULTI", &[]))?;
        for (prefix, key) in prefixes.iter().zip(&keys) {
            let mut write = self.write_to(prefix, key);
            self.exec(con, &mut write)?;
        }
        match self.rng.below(4) {
            0 => {
                let mut mset = self.cross_slot_mset();
                self.exec(con, &mut mset)?;
            }
            1 => {
                let mut delete = self.cross_slot_delete("DEL");
                self.exec(con, &mut delete)?;
            }
            _ => {}
        }
        self.exec(con, &mut cmd("EXEC", &[]))
    }

    /// `MSET {t}:str:a v {t}:str:b w`.
    fn tagged_mset(&mut self, tag: &str) -> redis::Cmd {
        let (a, b) = (self.value(), self.value());
        cmd(
            "MSET",
            &[&format!("{tag}:str:a"), &a, &format!("{tag}:str:b"), &b],
        )
    }

    /// Sometimes `SADD` to the two source sets, then `SUNIONSTORE {t}:set:d {t}:set:1
    /// {t}:set:2`.
    fn tagged_union(&mut self, con: &mut Connection, tag: &str) -> Result<(), String> {
        for set in ["1", "2"] {
            if self.rng.chance(1, 2) {
                let member = self.rng.below(30).to_string();
                self.exec(
                    con,
                    &mut cmd("SADD", &[&format!("{tag}:set:{set}"), &member]),
                )?;
            }
        }
        self.exec(con, &mut tagged_union_cmd(tag))
    }

    /// `SET {t}:ren:x v` (with a long TTL half the time), then `RENAME {t}:ren:x {t}:ren:y`.
    fn tagged_rename(&mut self, con: &mut Connection, tag: &str) -> Result<(), String> {
        let (x, y) = (format!("{tag}:ren:x"), format!("{tag}:ren:y"));
        let value = self.value();
        let mut set = cmd("SET", &[&x, &value]);
        if self.rng.chance(1, 2) {
            set.arg("PX").arg(self.rng.between(3_600_000, 7_200_000));
        }
        self.exec(con, &mut set)?;
        self.exec(con, &mut cmd("RENAME", &[&x, &y]))
    }

    /// Sometimes `RPUSH {t}:list:1`, then `LMOVE` from one tagged list to the other.
    fn tagged_lmove(&mut self, con: &mut Connection, tag: &str) -> Result<(), String> {
        if self.rng.chance(1, 3) {
            let value = self.value();
            self.exec(con, &mut cmd("RPUSH", &[&format!("{tag}:list:1"), &value]))?;
        }
        let mut lmove = self.tagged_lmove_cmd(tag);
        self.exec(con, &mut lmove)
    }

    fn tagged_lmove_cmd(&mut self, tag: &str) -> redis::Cmd {
        let (one, two) = (format!("{tag}:list:1"), format!("{tag}:list:2"));
        if self.rng.chance(1, 2) {
            cmd("LMOVE", &[&one, &two, "LEFT", "RIGHT"])
        } else {
            cmd("LMOVE", &[&two, &one, "RIGHT", "LEFT"])
        }
    }

    /// MULTI, tagged MSET, RPUSH, LMOVE and SUNIONSTORE of one tag, EXEC: a transaction
    /// within one slot, which a cluster runs as it is.
    fn tagged_multi(&mut self, con: &mut Connection, tag: &str) -> Result<(), String> {
        self.exec(con, &mut cmd("MULTI", &[]))?;
        let mut mset = self.tagged_mset(tag);
        self.exec(con, &mut mset)?;
        let value = self.value();
        self.exec(con, &mut cmd("RPUSH", &[&format!("{tag}:list:2"), &value]))?;
        let mut lmove = self.tagged_lmove_cmd(tag);
        self.exec(con, &mut lmove)?;
        self.exec(con, &mut tagged_union_cmd(tag))?;
        self.exec(con, &mut cmd("EXEC", &[]))
    }

    /// `wl:{tN}`: the start of a tagged key.
    fn tag(&mut self) -> String {
        format!("wl:{{t{}}}", self.rng.below(TAGS))
    }

    /// `low..=high` prefixes drawn from [`WRITABLE`].
    fn some_prefixes(&mut self, low: u64, high: u64) -> Vec<&'static str> {
        (0..self.rng.between(low, high))
            .map(|_| WRITABLE[self.rng.below(WRITABLE.len() as u64) as usize])
            .collect()
    }

    /// One key of each prefix, drawing the last one again (a few times at most) while they
    /// are all in one slot.
    fn keys_across_slots(&mut self, prefixes: &[&str]) -> Vec<String> {
        let mut keys: Vec<String> = prefixes.iter().map(|prefix| self.key(prefix)).collect();
        let (Some(last), Some(first)) = (prefixes.last(), keys.first()) else {
            return keys;
        };
        let first_slot = key_slot(first.as_bytes());
        for _ in 0..REDRAWS {
            if keys
                .iter()
                .any(|key| key_slot(key.as_bytes()) != first_slot)
            {
                break;
            }
            let redrawn = self.key(last);
            if let Some(key) = keys.last_mut() {
                *key = redrawn;
            }
        }
        keys
    }

    /// A write of the type that `prefix` holds, to `key`, that cannot fail.
    fn write_to(&mut self, prefix: &str, key: &str) -> redis::Cmd {
        match prefix {
            "s" => cmd("SET", &[key, &self.value()]),
            "i" => cmd("INCR", &[key]),
            "f" => cmd("INCRBYFLOAT", &[key, "1.25"]),
            "l" => cmd("RPUSH", &[key, &self.value()]),
            "set" => cmd("SADD", &[key, &self.rng.below(40).to_string()]),
            "z" => cmd(
                "ZADD",
                &[
                    key,
                    &self.rng.below(100).to_string(),
                    &format!("m{}", self.rng.below(40)),
                ],
            ),
            "h" => cmd(
                "HSET",
                &[key, &format!("f{}", self.rng.below(12)), &self.value()],
            ),
            _ => self.xadd(key),
        }
    }
}

/// `SUNIONSTORE {t}:set:d {t}:set:1 {t}:set:2`.
fn tagged_union_cmd(tag: &str) -> redis::Cmd {
    cmd(
        "SUNIONSTORE",
        &[
            &format!("{tag}:set:d"),
            &format!("{tag}:set:1"),
            &format!("{tag}:set:2"),
        ],
    )
}
