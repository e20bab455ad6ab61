//! The slot planner's cases, planned against Redis 7.0's command table.
use super::*;
use crate::test_util::args as words;

fn planner(dbs: DbMap) -> SlotPlanner {
    SlotPlanner::new(dbs, Arc::new(CommandTable::fixture("redis-7.0.15.resp")))
}

fn cmd(s: &str) -> Op {
    let args: Vec<&str> = s.split(' ').collect();
    Op::Cmd(Command::new(&args))
}

/// Each command as text with its route; marks as `@offset`.
fn shown(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .map(|o| match o {
            Op::Cmd(c) => {
                let text = peek_args(c.chunks()[0], usize::MAX)
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ");
                match c.route {
                    Route::Slot(s) => format!("{text} [{s}]"),
                    r => format!("{text} [{r:?}]"),
                }
            }
            Op::Mark(m) => format!("@{m}"),
        })
        .collect()
}

#[test]
fn slots_and_splits() {
    let mut p = planner(DbMap::only_zero());
    let mut out = Vec::new();
    // foo: slot 12182; bar: slot 5061.
    p.plan(
        vec![
            cmd("SET foo 1"),
            cmd("MSET foo 1 bar 2"),
            cmd("DEL foo bar"),
            Op::Mark(42),
        ],
        &mut out,
    )
    .expect("plans");
    assert_eq!(
        shown(&out),
        vec![
            "SET foo 1 [12182]",
            "MSET foo 1 [12182]",
            "MSET bar 2 [5061]",
            "DEL foo [12182]",
            "DEL bar [5061]",
            "@42"
        ]
    );
    assert_eq!(p.stats.split_commands, 2);
}

#[test]
fn transactions() {
    let mut p = planner(DbMap::only_zero());
    let mut out = Vec::new();
    let mut exec = Command::new(&["EXEC"]);
    exec.offset = Some(7);
    p.plan(
        vec![
            cmd("MULTI"),
            cmd("INCR {foo}a"),
            cmd("INCR {foo}b"),
            Op::Cmd(exec),
        ],
        &mut out,
    )
    .expect("plans");
    assert_eq!(
        shown(&out),
        vec![
            "MULTI [12182]",
            "INCR {foo}a [12182]",
            "INCR {foo}b [12182]",
            "EXEC [12182]"
        ]
    );
    assert!(matches!(&out[3], Op::Cmd(c) if c.offset == Some(7)));
    let mut out = Vec::new();
    let mut exec = Command::new(&["EXEC"]);
    exec.offset = Some(9);
    p.plan(
        vec![
            cmd("MULTI"),
            cmd("INCR foo"),
            cmd("INCR bar"),
            Op::Cmd(exec),
        ],
        &mut out,
    )
    .expect("plans");
    assert_eq!(
        shown(&out),
        vec!["INCR foo [12182]", "INCR bar [5061]", "@9"]
    );
    assert_eq!(p.stats.split_transactions, 1);
}

#[test]
fn broadcasts_selects_and_refusals() {
    let mut p = planner(DbMap::only_zero());
    let mut out = Vec::new();
    p.plan(
        vec![
            cmd("FLUSHALL"),
            Op::Cmd(Command::new(&["SELECT", "0"]).with_offset(3)),
            cmd("PUBLISH ch m"),
        ],
        &mut out,
    )
    .expect("plans");
    assert_eq!(
        shown(&out),
        vec!["FLUSHALL [All]", "@3", "PUBLISH ch m [Any]"]
    );
    let err = p.plan(vec![cmd("SELECT 5"), cmd("SET x 1")], &mut out);
    assert!(matches!(err, Err(SlotError::UnmappedDb { db: 5, .. })));
    let mut p = planner(DbMap {
        mapped: Some(vec![0, 5]),
    });
    p.plan(vec![cmd("SELECT 5"), cmd("SET x 1")], &mut out)
        .expect("mapped");
}

/// Each string as one argument list.

#[test]
fn writes_across_slots_stop_the_plan_in_order() {
    let mut p = planner(DbMap::only_zero());
    let mut out = Vec::new();
    let cross = p
        .plan(
            vec![
                cmd("SET foo 1"),
                Op::Cmd(Command::new(&["RENAME", "foo", "bar"]).with_offset(20)),
                cmd("SET bar 2"),
                Op::Mark(30),
            ],
            &mut out,
        )
        .expect("plans");
    assert_eq!(shown(&out), vec!["SET foo 1 [12182]"]);
    assert_eq!(
        cross,
        Some(CrossSlot {
            args: words("RENAME foo bar"),
            keys: vec![1, 2],
            read_only: Vec::new(),
            ask_keys: false,
            offset: Some(20)
        })
    );
    let mut out = Vec::new();
    assert_eq!(p.plan(Vec::new(), &mut out).expect("plans"), None);
    assert_eq!(shown(&out), vec!["SET bar 2 [5061]", "@30"]);
    assert_eq!((p.stats.cross_slot, p.stats.unsplittable), (1, 0));
    // The table cannot place SORT's STORE key: the destination is asked.
    let c = p
        .plan(vec![cmd("SORT {a}l BY w_* STORE {a}d")], &mut out)
        .expect("plans");
    assert_eq!(c.map(|c| (c.keys, c.ask_keys)), Some((vec![], true)));
    // A command the destination does not know stops the plan.
    let err = p.plan(vec![cmd("NOSUCH.CMD k v")], &mut out);
    assert!(
        matches!(err, Err(SlotError::UnknownCommand { .. })),
        "{err:?}"
    );
}

#[test]
fn other_dbs_become_their_effect_on_db_0() {
    let mut p = planner(DbMap::only_zero());
    let mut out = Vec::new();
    p.plan(
        vec![
            Op::Cmd(Command::new(&["MOVE", "foo", "3"]).with_offset(5)),
            Op::Cmd(Command::new(&["COPY", "foo", "bar", "DB", "4"]).with_offset(6)),
            cmd("COPY foo {foo}x DB 0 REPLACE"),
            Op::Cmd(Command::new(&["SWAPDB", "3", "4"]).with_offset(7)),
        ],
        &mut out,
    )
    .expect("plans");
    assert_eq!(
        shown(&out),
        vec![
            "DEL foo [12182]",
            "@6",
            "COPY foo {foo}x REPLACE [12182]",
            "@7"
        ]
    );
    assert!(matches!(&out[0], Op::Cmd(c) if c.offset == Some(5)));
    let err = p.plan(vec![cmd("SWAPDB 0 1")], &mut out);
    assert!(matches!(err, Err(SlotError::OtherDbs(_))), "{err:?}");
    let err = p.plan(vec![cmd("SELECT 2"), cmd("MOVE k 0")], &mut out);
    assert!(matches!(err, Err(SlotError::OtherDbs(_))), "{err:?}");
    // Every db merged into db 0: a MOVE changes nothing there.
    let mut p = planner(DbMap::all());
    let mut out = Vec::new();
    p.plan(vec![cmd("MOVE foo 3")], &mut out).expect("plans");
    assert!(out.is_empty());
}

#[test]
fn a_transaction_across_slots_stops_at_each_such_write() {
    let mut p = planner(DbMap::only_zero());
    let mut out = Vec::new();
    let mut exec = Command::new(&["EXEC"]);
    exec.offset = Some(9);
    let cross = p
        .plan(
            vec![
                cmd("MULTI"),
                cmd("INCR foo"),
                cmd("SMOVE foo bar m"),
                cmd("INCR bar"),
                Op::Cmd(exec),
                cmd("SET after 1"),
            ],
            &mut out,
        )
        .expect("plans");
    assert_eq!(shown(&out), vec!["INCR foo [12182]"]);
    assert_eq!(cross.map(|c| c.args), Some(words("SMOVE foo bar m")));
    let mut out = Vec::new();
    assert_eq!(p.plan(Vec::new(), &mut out).expect("plans"), None);
    assert_eq!(
        shown(&out),
        vec![
            "INCR bar [5061]",
            "@9",
            &format!("SET after 1 [{}]", key_slot(b"after"))
        ]
    );
}
