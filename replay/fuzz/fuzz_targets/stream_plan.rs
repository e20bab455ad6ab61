//! The stream stage (command scanner and stream planner) and the slot planner of a cluster
//! destination (with Redis 7.0's command table) over any bytes, in chunks of sizes from the
//! input's first byte: a bad frame is an error with its offset, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use replay::cluster::commands::CommandTable;
use replay::pipeline::{Batch, Stage, Step, StreamStage};
use replay::plan::slots::{DbMap, SlotPlanner};
use replay::plan::stream::StreamState;

fn table() -> Arc<CommandTable> {
    static T: OnceLock<Arc<CommandTable>> = OnceLock::new();
    T.get_or_init(|| {
        let raw = include_bytes!("../../../tests/data/command/redis-7.0.15.resp");
        let mut buf = BytesMut::from(&raw[..]);
        let (frame, _, _) = redis_protocol::resp2::decode::decode_bytes_mut(&mut buf)
            .expect("RESP")
            .expect("whole");
        Arc::new(CommandTable::from_reply(&frame).expect("table"))
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let mut stage = StreamStage::new(StreamState::new(0), Box::new(|_, _| {}));
    let mut slots = SlotPlanner::new(DbMap::all(), table());
    let mut buf = BytesMut::new();
    let mut batch = Batch::default();
    let chunk = usize::from(seed % 64) + 1;
    for part in rest.chunks(chunk) {
        buf.extend_from_slice(part);
        loop {
            let step = stage.step(&mut buf, &mut batch);
            let mut out = Vec::new();
            let mut ops = batch.take();
            while let Ok(Some(_)) = slots.plan(std::mem::take(&mut ops), &mut out) {}
            match step {
                Ok(Step::More) => break,
                Ok(_) => continue,
                Err(_) => return,
            }
        }
    }
});
