//! Rendering keys and other binary data for logs and error messages: printable, escaped and
//! bounded in length so a huge or binary key never floods a log line.

/// Longest rendering of a key in a message, in bytes of input.
const MAX_SHOWN: usize = 128;

/// Renders bytes like redis-cli does for binary-safe strings: printable ASCII as is, the rest as
/// `\xNN`, cut after [`MAX_SHOWN`] bytes with a note of the full length.
pub fn printable(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().min(MAX_SHOWN) + 8);
    out.push('"');
    for &b in data.iter().take(MAX_SHOWN) {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    if data.len() > MAX_SHOWN {
        out.push_str(&format!("...({} bytes)", data.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escapes_and_bounds() {
        assert_eq!(printable(b"a\x00\"b"), "\"a\\x00\\\"b\"");
        let long = vec![b'x'; 300];
        assert!(printable(&long).ends_with("...(300 bytes)"));
    }
}
