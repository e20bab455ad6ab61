//! Commands a master propagates in a form only a replica may run, rewritten for the normal
//! client replicant is on the destination, with the same effect on the data. A replica runs
//! its master's stream with checks skipped (`mustObeyClient()` in the Redis and Valkey
//! sources); a normal client gets those checks. Each case, the versions it concerns and why
//! the rewrite is faithful are in `replay/PROPAGATION.md`.
//!
//! Pure: one command's arguments in, the command to send instead out (or `None`: send the
//! original bytes). It must not look at anything but the command itself.

use bytes::Bytes;

use crate::cmd::Command;
use crate::resp::peek_args;

/// Arguments looked at for the option area of XADD (name, key, NOMKSTREAM, MAXLEN|MINID,
/// `=`|`~`, threshold, LIMIT, count, id, and room for options of later versions).
const XADD_OPTIONS: usize = 16;

/// The command to send instead of the frame `raw` (a command named `name`), if it is a
/// replica-only form; `None` sends `raw` as it is.
pub fn rewrite(name: &[u8], raw: &Bytes) -> Option<Command> {
    if name.eq_ignore_ascii_case(b"XADD") {
        trim_limit(raw, true)
    } else if name.eq_ignore_ascii_case(b"XTRIM") {
        trim_limit(raw, false)
    } else if name.eq_ignore_ascii_case(b"BRPOPLPUSH") {
        unblock(raw, b"RPOPLPUSH", 3)
    } else if name.eq_ignore_ascii_case(b"BLMOVE") {
        unblock(raw, b"LMOVE", 5)
    } else {
        None
    }
}

/// A blocking move propagated as it was sent (BRPOPLPUSH by Redis before 4.0.13 and 5.0-rc5;
/// BLMOVE never is, but would be the same case): on the master it ran at once, but on the
/// destination it would block the connection for its timeout when the source list is empty.
/// The non-blocking form without the timeout (the last argument) has the same effect.
fn unblock(raw: &Bytes, to: &'static [u8], argc: usize) -> Option<Command> {
    let args = peek_args(raw, usize::MAX);
    if args.len() != argc + 1 {
        return None;
    }
    let mut out: Vec<&[u8]> = vec![to];
    out.extend(args[1..argc].iter().map(|a| &a[..]));
    Some(Command::new(&out))
}

/// XADD / XTRIM with an exact trim that still carries `LIMIT n`. Redis 6.2+ and Valkey
/// propagate an approximate trim (`MAXLEN ~ N LIMIT L`) as the exact trim it came to
/// (`MAXLEN = <length left> LIMIT L`), keeping LIMIT; a normal client is refused ("LIMIT cannot
/// be used without the special ~ option", `streamParseAddOrTrimArgsOrReply`), the master
/// client is not and trims exactly, ignoring the limit. Without the LIMIT pair the exact trim
/// is the same trim. Only the option area is looked at: for XADD, what comes before the id
/// (fields may be named LIMIT too).
fn trim_limit(raw: &Bytes, xadd: bool) -> Option<Command> {
    let head = peek_args(raw, if xadd { XADD_OPTIONS } else { usize::MAX });
    let mut i = 2;
    let mut approx = false;
    let mut limit = None;
    while i < head.len() {
        let a = &head[i];
        let is = |s: &[u8]| a.eq_ignore_ascii_case(s);
        if is(b"MAXLEN") || is(b"MINID") {
            match head.get(i + 1).map(|b| &b[..]) {
                Some(b"~") => {
                    approx = true;
                    i += 3;
                }
                Some(b"=") => i += 3,
                _ => i += 2,
            }
        } else if is(b"LIMIT") {
            limit = Some(i);
            i += 2;
        } else if xadd && is(b"NOMKSTREAM") {
            i += 1;
        } else if xadd {
            // The id: the fields follow.
            break;
        } else {
            i += 1;
        }
    }
    let at = limit.filter(|_| !approx)?;
    let all = peek_args(raw, usize::MAX);
    let kept: Vec<&Bytes> = all
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != at && *j != at + 1)
        .map(|(_, a)| a)
        .collect();
    Some(Command::new(&kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Bytes {
        let args: Vec<&str> = s.split(' ').collect();
        Command::new(&args).chunks()[0].clone()
    }

    fn text(c: &Command) -> String {
        peek_args(c.chunks()[0], usize::MAX)
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn rewritten(s: &str) -> Option<String> {
        let r = raw(s);
        let name = peek_args(&r, 1).remove(0);
        rewrite(&name, &r).map(|c| text(&c))
    }

    #[test]
    fn xadd_exact_trim_with_limit_loses_the_limit() {
        assert_eq!(
            rewritten("XADD s MAXLEN = 10 LIMIT 5 1-1 f v").as_deref(),
            Some("XADD s MAXLEN = 10 1-1 f v")
        );
        assert_eq!(
            rewritten("xadd s NOMKSTREAM MINID = 5-0 LIMIT 100 6-0 LIMIT x").as_deref(),
            Some("xadd s NOMKSTREAM MINID = 5-0 6-0 LIMIT x"),
            "a field named LIMIT after the id stays"
        );
        assert_eq!(
            rewritten("XADD s LIMIT 0 MAXLEN = 3 1-1 f v").as_deref(),
            Some("XADD s MAXLEN = 3 1-1 f v"),
            "LIMIT before the trim clause"
        );
    }

    #[test]
    fn what_a_normal_client_may_send_is_left_alone() {
        for ok in [
            "XADD s MAXLEN ~ 10 LIMIT 5 1-1 f v",
            "XADD s MAXLEN = 10 1-1 f v",
            "XADD s MAXLEN 10 1-1 f v",
            "XADD s 1-1 LIMIT 5",
            "XTRIM s MINID ~ 5-0 LIMIT 10",
            "XTRIM s MAXLEN 0",
            "SET LIMIT 5",
        ] {
            assert_eq!(rewritten(ok), None, "{ok}");
        }
    }

    #[test]
    fn blocking_moves_lose_their_timeout() {
        assert_eq!(
            rewritten("BRPOPLPUSH src dst 0").as_deref(),
            Some("RPOPLPUSH src dst")
        );
        assert_eq!(
            rewritten("blmove a b LEFT RIGHT 1.5").as_deref(),
            Some("LMOVE a b LEFT RIGHT")
        );
        assert_eq!(
            rewritten("BRPOPLPUSH src dst"),
            None,
            "not a form a server sends"
        );
    }

    #[test]
    fn xtrim_exact_trim_with_limit_loses_the_limit() {
        assert_eq!(
            rewritten("XTRIM s MAXLEN = 0 LIMIT 100").as_deref(),
            Some("XTRIM s MAXLEN = 0")
        );
        assert_eq!(
            rewritten("XTRIM s LIMIT 7 MINID = 9-1").as_deref(),
            Some("XTRIM s MINID = 9-1")
        );
    }
}
