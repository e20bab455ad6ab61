//! What a destination or a source answers: the writer's reply scanner over any bytes, and a
//! decoded frame read as a `COMMAND` table, as a cluster's slot map (`CLUSTER SHARDS` and
//! `CLUSTER SLOTS`) and as `CLUSTER NODES` text.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use replay::cluster::commands::CommandTable;
use replay::resp::scan::scan_reply;

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while let Ok(Some(r)) = scan_reply(&data[at..]) {
        if r.len == 0 {
            break;
        }
        at += r.len;
    }
    let mut buf = BytesMut::from(data);
    if let Ok(Some((frame, _, _))) = redis_protocol::resp2::decode::decode_bytes_mut(&mut buf) {
        let _ = CommandTable::from_reply(&frame);
        let _ = replay::cluster::topology::from_shards(&frame, false);
        let _ = replay::cluster::topology::from_slots(&frame);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = replay::cluster::nodes::parse_nodes(text);
    }
});
