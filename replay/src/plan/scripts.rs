//! The Lua scripts a source replicating scripts verbatim has shown (Redis up to 4.0 by
//! default, 5.0–6.2 with `lua-replicate-commands no`): every `EVAL` body and `SCRIPT LOAD`
//! in the stream, and the snapshot's `lua` aux fields, by their SHA1. An `EVALSHA` goes out
//! as `EVAL` of the body when it is known, so a destination that lost its script cache (a
//! restart, a `SCRIPT FLUSH`, a failover to a replica that never ran the script) runs it all
//! the same; the master only sends the body once after each full sync. Bounded: the oldest
//! bodies go first past [`MAX_BYTES`] (an `EVALSHA` of one of them then goes as it is, and a
//! NOSCRIPT stops the run). Pure.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::cmd::{Command, Encoder};
use crate::resp::peek_args;

/// Script bodies kept at most, in bytes.
pub const MAX_BYTES: usize = 64 << 20;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Scripts {
    by_sha: HashMap<[u8; 40], Bytes>,
    order: VecDeque<[u8; 40]>,
    bytes: usize,
}

/// The lower-case hex SHA1 of `body`, as Redis names a script.
pub fn sha1_hex(body: &[u8]) -> [u8; 40] {
    let digest = sha1_smol::Sha1::from(body).digest().bytes();
    let mut out = [0u8; 40];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
}

impl Scripts {
    /// Remembers a script body.
    pub fn learn(&mut self, body: Bytes) {
        let sha = sha1_hex(&body);
        if self.by_sha.contains_key(&sha) {
            return;
        }
        self.bytes += body.len();
        self.by_sha.insert(sha, body);
        self.order.push_back(sha);
        while self.bytes > MAX_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.by_sha.remove(&old) {
                self.bytes -= b.len();
            }
        }
    }

    /// How many bodies are kept.
    pub fn len(&self) -> usize {
        self.by_sha.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sha.is_empty()
    }

    /// Looks at a forwarded frame: learns the body of an `EVAL`/`SCRIPT LOAD`, and returns
    /// the `EVAL` to send for an `EVALSHA` whose body is known.
    pub fn on_frame(&mut self, name: &[u8], raw: &Bytes) -> Option<Command> {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("EVAL") || is("EVAL_RO") {
            if let Some(body) = peek_args(raw, 2).get(1) {
                self.learn(body.clone());
            }
            return None;
        }
        if is("SCRIPT") {
            let args = peek_args(raw, 3);
            if args.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"LOAD")) {
                if let Some(body) = args.get(2) {
                    self.learn(body.clone());
                }
            }
            return None;
        }
        if !(is("EVALSHA") || is("EVALSHA_RO")) {
            return None;
        }
        let args = peek_args(raw, usize::MAX);
        let sha = args.get(1)?;
        let key: [u8; 40] = sha.to_ascii_lowercase().try_into().ok()?;
        let body = self.by_sha.get(&key)?;
        let size = body.len() + args.iter().map(|a| a.len() + 16).sum::<usize>();
        let mut e = Encoder::new(args.len(), size);
        e.arg(if is("EVALSHA") {
            &b"EVAL"[..]
        } else {
            b"EVAL_RO"
        });
        e.arg(body);
        for a in &args[2..] {
            e.arg(a);
        }
        Some(e.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(args: &[&str]) -> Bytes {
        let c = Command::new(args);
        c.chunks()[0].clone()
    }

    fn text(c: &Command) -> Vec<String> {
        peek_args(c.chunks()[0], usize::MAX)
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn evalsha_goes_out_as_eval_of_a_known_body() {
        // redis-cli SCRIPT LOAD "return 1" answers this SHA1.
        assert_eq!(
            &sha1_hex(b"return 1"),
            b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
        let mut s = Scripts::default();
        let body = "redis.call('SET', KEYS[1], ARGV[1])";
        let sha = String::from_utf8(sha1_hex(body.as_bytes()).to_vec()).expect("hex");
        let evalsha = frame(&["EVALSHA", &sha.to_uppercase(), "1", "k", "v"]);
        assert!(s.on_frame(b"evalsha", &evalsha).is_none(), "unknown yet");
        assert!(s
            .on_frame(b"EVAL", &frame(&["EVAL", body, "1", "k", "v"]))
            .is_none());
        let c = s.on_frame(b"evalsha", &evalsha).expect("rewritten");
        assert_eq!(text(&c), ["EVAL", body, "1", "k", "v"]);
        let mut s = Scripts::default();
        s.on_frame(b"script", &frame(&["SCRIPT", "LOAD", body]));
        assert_eq!(s.len(), 1);
        let ro = frame(&["EVALSHA_RO", &sha, "0"]);
        assert_eq!(
            text(&s.on_frame(b"EVALSHA_RO", &ro).expect("rewritten"))[0],
            "EVAL_RO"
        );
        assert!(s
            .on_frame(b"EVALSHA", &frame(&["EVALSHA", "short", "0"]))
            .is_none());
    }

    #[test]
    fn the_oldest_bodies_go_first() {
        let mut s = Scripts::default();
        let big = Bytes::from(vec![b'-'; MAX_BYTES / 2 + 1]);
        s.learn(big.clone());
        let mut other = big.to_vec();
        other[0] = b'x';
        s.learn(Bytes::from(other));
        assert_eq!(s.len(), 1);
        assert!(!s.by_sha.contains_key(&sha1_hex(&big)));
    }
}
