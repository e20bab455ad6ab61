//! The tables of real servers' `COMMAND` replies (`tests/data/command/`).

use super::*;
use crate::test_util::args;

fn table(file: &str) -> CommandTable {
    CommandTable::fixture(file)
}

fn at(t: &CommandTable, s: &str) -> Lookup {
    t.lookup(&args(s)).0
}

fn keys(v: &[usize]) -> Lookup {
    Lookup::Keys(Keys::At(v.to_vec()))
}

#[test]
fn key_specs_of_redis_7_0() {
    let t = table("redis-7.0.15.resp");
    assert!(t.len() > 300, "{} commands", t.len());
    assert_eq!(at(&t, "set k v"), keys(&[1]));
    assert_eq!(at(&t, "MSET a 1 b 2"), keys(&[1, 3]));
    assert_eq!(at(&t, "DEL a b c"), keys(&[1, 2, 3]));
    assert_eq!(at(&t, "ZUNIONSTORE d 2 a b WEIGHTS 1 2"), keys(&[1, 3, 4]));
    assert_eq!(at(&t, "EVAL s 2 k1 k2 arg"), keys(&[3, 4]));
    assert_eq!(at(&t, "EVAL s 0"), Lookup::Keys(Keys::None));
    assert_eq!(at(&t, "GEORADIUS g 15 37 200 km STORE d"), keys(&[1, 7]));
    assert_eq!(at(&t, "GEORADIUS g 15 37 200 km"), keys(&[1]));
    assert_eq!(at(&t, "XGROUP CREATE st g $ MKSTREAM"), keys(&[2]));
    assert_eq!(at(&t, "LMPOP 2 a b LEFT"), keys(&[2, 3]));
    assert_eq!(at(&t, "BITOP AND d a b"), keys(&[2, 3, 4]));
    assert_eq!(at(&t, "RENAME a b"), keys(&[1, 2]));
    assert_eq!(
        at(&t, "XREADGROUP GROUP g c COUNT 1 STREAMS s1 s2 > >"),
        keys(&[7, 8])
    );
    assert_eq!(at(&t, "OBJECT FREQ k"), keys(&[2]));
    // SORT's STORE key is "unknown" in its specs: the server is asked.
    assert_eq!(at(&t, "SORT l STORE d"), Lookup::AskServer);
    assert_eq!(at(&t, "FLUSHALL ASYNC"), Lookup::Keys(Keys::Broadcast));
    assert_eq!(at(&t, "FUNCTION LOAD code"), Lookup::Keys(Keys::Broadcast));
    assert_eq!(at(&t, "SCRIPT FLUSH"), Lookup::Keys(Keys::Broadcast));
    assert_eq!(at(&t, "PUBLISH ch m"), Lookup::Keys(Keys::None));
    assert_eq!(at(&t, "select 3"), Lookup::Keys(Keys::Drop));
    assert_eq!(at(&t, "NOSUCH a b"), Lookup::Unknown);
    // More keys announced than arguments: the server must say why.
    assert_eq!(at(&t, "ZUNIONSTORE d 5 a"), Lookup::AskServer);
    // Which keys are only read (not copied back after a write applied from its effect).
    let (_, f) = t.lookup(&args("SUNIONSTORE d a b"));
    assert_eq!((f.at, f.read_only), (vec![1, 2, 3], vec![2, 3]));
    let (_, f) = t.lookup(&args("RENAME a b"));
    assert!(f.read_only.is_empty());
}

#[test]
fn first_last_step_of_redis_6_2() {
    let t = table("redis-6.2.16.resp");
    assert_eq!(at(&t, "set k v"), keys(&[1]));
    assert_eq!(at(&t, "MSET a 1 b 2"), keys(&[1, 3]));
    assert_eq!(at(&t, "RENAME a b"), keys(&[1, 2]));
    assert_eq!(at(&t, "XGROUP CREATE st g $"), keys(&[2]));
    // movablekeys without specs: only the server can tell.
    assert_eq!(at(&t, "ZUNIONSTORE d 2 a b"), Lookup::AskServer);
    assert_eq!(at(&t, "EVAL s 1 k"), Lookup::AskServer);
    assert_eq!(at(&t, "FLUSHALL"), Lookup::Keys(Keys::Broadcast));
    assert_eq!(at(&t, "PUBLISH ch m"), Lookup::Keys(Keys::None));
    assert_eq!(at(&t, "LMOVE a b LEFT RIGHT"), keys(&[1, 2]));
}

#[test]
fn replies_that_are_not_a_table() {
    assert!(CommandTable::from_reply(&Frame::Integer(3)).is_err());
    assert!(CommandTable::from_reply(&Frame::Array(Vec::new())).is_err());
    assert!(
        CommandTable::from_reply(&Frame::Array(vec![Frame::Array(vec![Frame::Integer(1)])]))
            .is_err()
    );
}
