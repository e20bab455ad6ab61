//! Replies and bytes as readable text, for failure messages: binary bytes escaped the way
//! redis-cli quotes them, long values cut.

use redis::Value;

/// How many items a list in a message shows.
const SHOWN_ELEMENTS: usize = 5;
/// How [`text`] shows a nil reply.
pub const NIL: &str = "(nil)";

/// Any reply as readable text (binary bytes escaped).
pub fn text(value: &Value) -> String {
    match value {
        Value::Nil => NIL.to_string(),
        Value::Int(n) => n.to_string(),
        Value::BulkString(bytes) => show_full(bytes),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".to_string(),
        Value::Double(d) => d.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Array(items) | Value::Set(items) => {
            format!(
                "[{}]",
                items.iter().map(text).collect::<Vec<_>>().join(", ")
            )
        }
        Value::Map(pairs) => format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{}: {}", text(k), text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("{other:?}"),
    }
}

/// Bytes as redis-cli would quote them, cut after 60 bytes.
pub fn show(bytes: &[u8]) -> String {
    const LIMIT: usize = 60;
    let mut text = format!("\"{}", escape(&bytes[..bytes.len().min(LIMIT)]));
    text.push('"');
    if bytes.len() > LIMIT {
        text.push_str(&format!("…(+{} bytes)", bytes.len() - LIMIT));
    }
    text
}

/// Bytes as text, escaped but not cut (ids and small fields).
fn show_full(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        format!("\"{}\"", escape(bytes))
    }
}

fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if b.is_ascii_graphic() || b == b' ' => out.push(char::from(b)),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// `[a, b, c, … (N more)]`: at most a few items.
pub fn shown_list(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    let mut text = all
        .iter()
        .take(SHOWN_ELEMENTS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if all.len() > SHOWN_ELEMENTS {
        text.push_str(&format!(", … ({} more)", all.len() - SHOWN_ELEMENTS));
    }
    format!("[{text}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn showing_bytes() {
        assert_eq!(show(b"a\x00\"b"), "\"a\\x00\\\"b\"");
        assert!(show(&[b'x'; 100]).ends_with("…(+40 bytes)"));
        assert_eq!(
            shown_list((0..7).map(|i| i.to_string())),
            "[0, 1, 2, 3, 4, … (2 more)]"
        );
        assert_eq!(text(&Value::Nil), "(nil)");
    }
}
