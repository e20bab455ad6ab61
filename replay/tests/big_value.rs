//! Bounded memory by construction: a list of a million elements in one RDB value crosses the
//! parser and the planner in pieces and commands no larger than their bounds, while the input
//! buffer never holds more than the bound plus one read.

use bytes::{BufMut, BytesMut};
use replay::cmd::Command;
use replay::plan::{BatchLimits, Caps, RdbPlanner};
use replay::rdb::crc64::CRC64;
use replay::rdb::{Event, Limits, RdbParser};

const ELEMENTS: usize = 1_000_000;

fn put_len(b: &mut Vec<u8>, n: usize) {
    if n < 64 {
        b.push(n as u8);
    } else if n < 16384 {
        b.push(0x40 | (n >> 8) as u8);
        b.push(n as u8);
    } else {
        b.push(0x80);
        b.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn big_list_rdb() -> Vec<u8> {
    let mut b = b"REDIS0009".to_vec();
    b.extend_from_slice(&[0xFE, 0x00, 0x01]); // SELECTDB 0, type list
    put_len(&mut b, 3);
    b.extend_from_slice(b"big");
    put_len(&mut b, ELEMENTS);
    for i in 0..ELEMENTS {
        let e = format!("element-{i:07}");
        put_len(&mut b, e.len());
        b.extend_from_slice(e.as_bytes());
    }
    b.push(0xFF);
    let crc = CRC64.checksum(&b);
    b.put_u64_le(crc);
    b
}

#[test]
fn a_big_list_crosses_in_bounded_pieces_and_batches() {
    let rdb = big_list_rdb();
    let limits = Limits {
        whole_value_max: 1 << 20,
        piece_bytes: 64 << 10,
        string_max: 512 << 20,
    };
    let batch = BatchLimits {
        elements: 500,
        bytes: 256 << 10,
    };
    let mut parser = RdbParser::new(limits);
    let mut planner = RdbPlanner::new(Caps::for_version((7, 0, 0)), limits.whole_value_max, batch);
    let mut buf = BytesMut::new();
    let (mut max_buf, mut max_piece, mut max_cmd, mut pushed) = (0usize, 0usize, 0usize, 0usize);
    let mut cmds: Vec<Command> = Vec::new();
    let read = 64 << 10;
    for chunk in rdb.chunks(read) {
        buf.extend_from_slice(chunk);
        max_buf = max_buf.max(buf.len());
        while let Some(ev) = parser.next(&mut buf).expect("valid RDB") {
            if let Event::BigPieces(ps) = &ev {
                max_piece = max_piece.max(ps.iter().map(|p| p.weight()).sum());
            }
            planner.plan(ev, &mut cmds).expect("plan");
            for c in cmds.drain(..) {
                max_cmd = max_cmd.max(c.len());
                let args = replay::resp::peek_args(c.chunks()[0], 2);
                if args.first().is_some_and(|a| &a[..] == b"RPUSH") {
                    let argc = replay::resp::peek_args(c.chunks()[0], usize::MAX).len();
                    assert!(argc - 2 <= batch.elements, "RPUSH of {} elements", argc - 2);
                    pushed += argc - 2;
                }
            }
        }
    }
    assert!(parser.is_done());
    assert_eq!(pushed, ELEMENTS, "every element is written once");
    assert_eq!(planner.stats.keys_big, 1);
    // The input buffer: the whole-value bound, one read, one element.
    assert!(
        max_buf <= limits.whole_value_max + 2 * read,
        "input buffer reached {max_buf} bytes for a {} byte RDB",
        rdb.len()
    );
    // A piece: the piece bound plus one read's worth of units decoded at once.
    assert!(
        max_piece <= limits.piece_bytes + 2 * read,
        "piece of {max_piece} bytes"
    );
    assert!(max_cmd <= batch.bytes + 1024, "command of {max_cmd} bytes");
}
