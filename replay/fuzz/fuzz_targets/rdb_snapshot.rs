//! The snapshot stage (RDB parser and planner) over any bytes, fed in chunks whose sizes come
//! from the input's first bytes: every split of the same file must plan or fail the same way,
//! without a panic or an unbounded allocation.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use replay::pipeline::{Batch, SnapshotStage, Stage, Step};
use replay::plan::{BatchLimits, Caps, RdbPlanner};
use replay::rdb::Limits;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let caps = Caps::from_info("redis_version:7.0.15\r\n").expect("caps");
    let planner = RdbPlanner::new(caps, 1 << 16, BatchLimits::default());
    let limits = Limits {
        whole_value_max: 1 << 16,
        ..Limits::default()
    };
    let mut stage = SnapshotStage::new(limits, planner);
    let mut buf = BytesMut::new();
    let mut batch = Batch::default();
    let chunk = usize::from(seed % 64) + 1;
    for part in rest.chunks(chunk) {
        buf.extend_from_slice(part);
        loop {
            match stage.step(&mut buf, &mut batch) {
                Ok(Step::Full) => {
                    batch.take();
                }
                Ok(Step::More) => break,
                Ok(Step::Done) | Err(_) => return,
                Ok(Step::Barrier(_)) => unreachable!("a snapshot has no barriers"),
            }
        }
    }
    let _ = stage.finish(&buf);
});
