//! Reading replies: integers, bulk strings, arrays, `SCAN` pages and the flat name/value arrays
//! of `XINFO`, leniently (a reply of an unexpected shape reads as absent, and the comparison
//! then reports a difference rather than failing); and replies shown in a difference's detail,
//! escaped and bounded.

use bytes::Bytes;
use replay::display::printable;
use replay::resp::{frame_error, Frame};

/// Longest rendering of one reply in a detail, in characters (roughly).
const SHOWN: usize = 160;

/// An integer reply, or a bulk string holding one.
pub fn int(f: &Frame) -> Option<i64> {
    match f {
        Frame::Integer(n) => Some(*n),
        Frame::BulkString(b) | Frame::SimpleString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// A bulk or status string.
pub fn bytes(f: &Frame) -> Option<&Bytes> {
    match f {
        Frame::BulkString(b) | Frame::SimpleString(b) => Some(b),
        _ => None,
    }
}

/// The items of an array reply (none for anything else).
pub fn items(f: &Frame) -> &[Frame] {
    match f {
        Frame::Array(a) => a,
        _ => &[],
    }
}

/// A `*SCAN` reply: whether the cursor is back at 0 (the page was the last), the next cursor,
/// and the page's items.
pub fn scan_page(f: &Frame) -> Option<(bool, Bytes, &[Frame])> {
    let parts = items(f);
    let cursor = bytes(parts.first()?)?.clone();
    let page = items(parts.get(1)?);
    Some((&cursor[..] == b"0", cursor, page))
}

/// The value after `name` in a flat `[name, value, …]` array.
pub fn field<'a>(flat: &'a [Frame], name: &str) -> Option<&'a Frame> {
    flat.chunks(2)
        .find(|kv| bytes(&kv[0]).is_some_and(|k| &k[..] == name.as_bytes()))
        .and_then(|kv| kv.get(1))
}

/// The first error reply among `replies`.
pub fn first_error(replies: &[Frame]) -> Option<String> {
    replies.iter().find_map(frame_error)
}

/// A reply for a detail: strings escaped, arrays as `[a, b, …]`, bounded in length.
pub fn show(f: &Frame) -> String {
    let mut out = String::new();
    render(f, &mut out);
    if out.len() > SHOWN {
        let mut cut = SHOWN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn render(f: &Frame, out: &mut String) {
    if out.len() > SHOWN {
        return;
    }
    match f {
        Frame::BulkString(b) | Frame::SimpleString(b) => out.push_str(&printable(b)),
        Frame::Integer(n) => out.push_str(&n.to_string()),
        Frame::Null => out.push_str("(nil)"),
        Frame::Error(e) => out.push_str(&format!("(error {e})")),
        Frame::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, out);
                if out.len() > SHOWN {
                    break;
                }
            }
            out.push(']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Frame {
        Frame::BulkString(Bytes::copy_from_slice(x.as_bytes()))
    }

    #[test]
    fn reads_and_shows() {
        assert_eq!(int(&Frame::Integer(4)), Some(4));
        assert_eq!(int(&s("-7")), Some(-7));
        assert_eq!(int(&s("x")), None);
        let page = Frame::Array(vec![s("0"), Frame::Array(vec![s("a"), s("b")])]);
        let (done, _, items) = scan_page(&page).expect("page");
        assert!(done);
        assert_eq!(items.len(), 2);
        assert!(scan_page(&Frame::Integer(1)).is_none());
        let flat = [
            s("length"),
            Frame::Integer(3),
            s("groups"),
            Frame::Integer(1),
        ];
        assert_eq!(field(&flat, "groups"), Some(&Frame::Integer(1)));
        assert_eq!(field(&flat, "nope"), None);
        assert_eq!(
            show(&Frame::Array(vec![s("a\x00"), Frame::Null])),
            "[\"a\\x00\", (nil)]"
        );
        let long = Frame::Array((0..100).map(|i| s(&format!("element-{i}"))).collect());
        assert!(show(&long).chars().count() <= SHOWN + 20);
    }
}
