//! What one round trip tells about a key on each side — its type (`TYPE`) and its TTL
//! (`PTTL`) — and what can be judged from that alone: on one side only, a different type, a
//! TTL outside the tolerance. Pure.

use std::time::Duration;

use replay::resp::{frame_text, Frame};

use super::diff::{DiffKind, Difference};

/// A key's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    String,
    List,
    Set,
    Zset,
    Hash,
    Stream,
    /// A module type, by the name `TYPE` gives.
    Other(String),
}

impl Kind {
    /// From a `TYPE` reply; `None` for `none` (no such key).
    pub fn from_type(name: &str) -> Option<Kind> {
        Some(match name {
            "none" => return None,
            "string" => Kind::String,
            "list" => Kind::List,
            "set" => Kind::Set,
            "zset" => Kind::Zset,
            "hash" => Kind::Hash,
            "stream" => Kind::Stream,
            other => Kind::Other(other.to_string()),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Kind::String => "string",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::Zset => "zset",
            Kind::Hash => "hash",
            Kind::Stream => "stream",
            Kind::Other(name) => name,
        }
    }

    /// The command that counts its elements (bytes for a string), and what it counts.
    pub fn length_command(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Kind::String => Some(("STRLEN", "bytes")),
            Kind::List => Some(("LLEN", "elements")),
            Kind::Set => Some(("SCARD", "members")),
            Kind::Zset => Some(("ZCARD", "members")),
            Kind::Hash => Some(("HLEN", "fields")),
            Kind::Stream => Some(("XLEN", "entries")),
            Kind::Other(_) => None,
        }
    }
}

/// A key on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// `None`: not there.
    pub kind: Option<Kind>,
    /// `PTTL`: ms to live, -1 without a TTL, -2 gone.
    pub pttl: i64,
}

impl Facts {
    /// From the replies to `TYPE` and `PTTL`.
    pub fn from_replies(ty: &Frame, pttl: &Frame) -> Facts {
        let pttl = match pttl {
            Frame::Integer(n) => *n,
            _ => -2,
        };
        let kind = match ty {
            Frame::SimpleString(_) | Frame::BulkString(_) => Kind::from_type(&frame_text(ty)),
            _ => None,
        };
        // Gone between the two reads.
        let kind = if pttl == -2 { None } else { kind };
        Facts { kind, pttl }
    }

    /// "a list, TTL none" (for a key found on one side only).
    pub fn describe(&self) -> String {
        match &self.kind {
            None => "no such key".to_string(),
            Some(k) => format!("a {}, TTL {}", k.name(), show_ttl(self.pttl)),
        }
    }
}

/// What the facts of both sides show; the type when the key is on both with the same type and
/// can be compared further.
pub fn judge(src: &Facts, dst: &Facts, tolerance: Duration) -> (Vec<Difference>, Option<Kind>) {
    match (&src.kind, &dst.kind) {
        (None, None) => (Vec::new(), None),
        (Some(_), None) => (
            vec![Difference::new(
                DiffKind::OnlyOnSource,
                format!("source has {}", src.describe()),
            )],
            None,
        ),
        (None, Some(_)) => (
            vec![Difference::new(
                DiffKind::OnlyOnTarget,
                format!("target has {}", dst.describe()),
            )],
            None,
        ),
        (Some(a), Some(b)) if a != b => (
            vec![Difference::new(
                DiffKind::Type,
                format!("source is a {}, target a {}", a.name(), b.name()),
            )],
            None,
        ),
        (Some(a), Some(_)) => {
            let mut found = Vec::new();
            if !ttl_matches(src.pttl, dst.pttl, tolerance) {
                found.push(Difference::new(
                    DiffKind::Ttl,
                    format!(
                        "source TTL {}, target TTL {} (tolerance {} ms)",
                        show_ttl(src.pttl),
                        show_ttl(dst.pttl),
                        tolerance.as_millis()
                    ),
                ));
            }
            (found, Some(a.clone()))
        }
    }
}

/// Both without a TTL, or both with one and no further apart than the tolerance.
pub fn ttl_matches(src: i64, dst: i64, tolerance: Duration) -> bool {
    let tolerance = i64::try_from(tolerance.as_millis()).unwrap_or(i64::MAX);
    match (src, dst) {
        (-1, -1) => true,
        (a, b) if a >= 0 && b >= 0 => a.abs_diff(b) <= tolerance.unsigned_abs(),
        _ => false,
    }
}

fn show_ttl(pttl: i64) -> String {
    match pttl {
        -1 => "none".to_string(),
        n if n < 0 => "(gone)".to_string(),
        n => format!("{n} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn facts(ty: &str, pttl: i64) -> Facts {
        Facts::from_replies(
            &Frame::SimpleString(Bytes::copy_from_slice(ty.as_bytes())),
            &Frame::Integer(pttl),
        )
    }

    #[test]
    fn ttls() {
        let t = Duration::from_secs(2);
        assert!(ttl_matches(-1, -1, t));
        assert!(ttl_matches(5_000, 3_000, t));
        assert!(!ttl_matches(5_000, 2_999, t));
        assert!(!ttl_matches(-1, 5_000, t));
        assert!(!ttl_matches(5_000, -1, t));
    }

    #[test]
    fn judgements() {
        let t = Duration::from_secs(1);
        let kinds = |a: &Facts, b: &Facts| -> Vec<DiffKind> {
            judge(a, b, t).0.iter().map(|d| d.kind).collect()
        };
        assert_eq!(
            kinds(&facts("list", -1), &facts("none", -2)),
            [DiffKind::OnlyOnSource]
        );
        assert_eq!(
            kinds(&facts("none", -2), &facts("hash", 10)),
            [DiffKind::OnlyOnTarget]
        );
        assert_eq!(
            kinds(&facts("list", -1), &facts("set", 10)),
            [DiffKind::Type]
        );
        assert_eq!(
            kinds(&facts("list", -1), &facts("list", 10)),
            [DiffKind::Ttl]
        );
        let (found, kind) = judge(&facts("zset", 100), &facts("zset", 900), t);
        assert!(found.is_empty());
        assert_eq!(kind, Some(Kind::Zset));
        assert!(judge(&facts("none", -2), &facts("none", -2), t)
            .0
            .is_empty());
        // A key that expired between TYPE and PTTL is gone.
        assert_eq!(facts("string", -2).kind, None);
        assert_eq!(
            facts("ReJSON-RL", -1).kind,
            Some(Kind::Other("ReJSON-RL".into()))
        );
    }
}
