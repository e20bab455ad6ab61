//! Stream metadata that `DEBUG DIGEST-VALUE` does not cover: the stream's counters, its
//! groups, their consumers and pending entries, as comparable lines.

use std::collections::BTreeSet;

use redis::{Connection, Value};

use super::query;
use crate::display::{shown_list, text};

/// The stream metadata that `DEBUG DIGEST-VALUE` leaves out, one fact per line.
pub(super) fn stream_summary(con: &mut Connection, key: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    let info = flat(query(con, redis::cmd("XINFO").arg("STREAM").arg(key)));
    for name in [
        "length",
        "last-generated-id",
        "max-deleted-entry-id",
        "entries-added",
    ] {
        lines.push(format!("{name}={}", field_text(&info, name)));
    }
    let groups: Vec<Value> = query(con, redis::cmd("XINFO").arg("GROUPS").arg(key));
    for group in groups.into_iter().map(flat) {
        let name = field_text(&group, "name");
        lines.push(format!(
            "group {name}: last-delivered-id={} pending={} consumers={}",
            field_text(&group, "last-delivered-id"),
            field_text(&group, "pending"),
            field_text(&group, "consumers"),
        ));
        lines.push(format!(
            "group {name}: {ENTRIES_READ}{}",
            field_text(&group, "entries-read")
        ));
        let consumers: Vec<Value> = query(
            con,
            redis::cmd("XINFO").arg("CONSUMERS").arg(key).arg(&name),
        );
        for consumer in consumers.into_iter().map(flat) {
            lines.push(format!(
                "group {name} consumer {}: pending={}",
                field_text(&consumer, "name"),
                field_text(&consumer, "pending"),
            ));
        }
        let pending: Vec<Value> = query(
            con,
            redis::cmd("XPENDING")
                .arg(key)
                .arg(&name)
                .arg("-")
                .arg("+")
                .arg(1_000_000),
        );
        for entry in pending.into_iter().map(flat) {
            // [id, consumer, idle ms, delivery count]: the idle time is left out.
            let part = |i: usize| entry.get(i).map(text).unwrap_or_default();
            lines.push(format!(
                "group {name} pending {} consumer={} deliveries={}",
                part(0),
                part(1),
                part(3)
            ));
        }
    }
    lines
}

const ENTRIES_READ: &str = "entries-read=";
/// An unknown entries-read, as [`text`] shows a nil reply.
const UNKNOWN: &str = crate::display::NIL;

/// Where the target's summary has a group's entries-read unknown, or lower than the source's,
/// takes the source's line.
pub(super) fn accept_stale_entries_read(source: &[String], target: &mut [String]) {
    for line in target.iter_mut() {
        let Some(at) = line.find(ENTRIES_READ) else {
            continue;
        };
        let (prefix, value) = line.split_at(at + ENTRIES_READ.len());
        let Some(known) = source.iter().find(|s| s.starts_with(prefix)) else {
            continue;
        };
        let source_count = known[prefix.len()..].parse::<u64>();
        let stale = match (value, value.parse::<u64>(), source_count) {
            (UNKNOWN, _, Ok(_)) => true,
            (_, Ok(target_count), Ok(source_count)) => target_count < source_count,
            _ => false,
        };
        if stale {
            line.clone_from(known);
        }
    }
}

pub(super) fn lines_diff(a: &[String], b: &[String]) -> String {
    let sa: BTreeSet<&String> = a.iter().collect();
    let sb: BTreeSet<&String> = b.iter().collect();
    let only = |x: &BTreeSet<&String>, y: &BTreeSet<&String>| {
        shown_list(x.difference(y).map(|line| line.to_string()))
    };
    format!(
        "stream metadata differs; source only: {}; target only: {}",
        only(&sa, &sb),
        only(&sb, &sa)
    )
}

/// A reply that is a flat `[name, value, …]` array (RESP2) or a map (RESP3), as a flat list.
fn flat(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => vec![other],
    }
}

/// The value after `name` in a flat `[name, value, …]` list, as text; `(absent)` if none.
fn field_text(flat: &[Value], name: &str) -> String {
    flat.chunks(2)
        .find(|pair| text(&pair[0]) == name)
        .and_then(|pair| pair.get(1))
        .map_or_else(|| "(absent)".to_string(), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_or_lower_entries_read_on_the_target_can_be_accepted() {
        let source = vec![
            "group g: entries-read=4".to_string(),
            "group h: entries-read=2".to_string(),
            "group i: entries-read=3".to_string(),
            "group j: entries-read=(nil)".to_string(),
        ];
        let mut target = vec![
            "group g: entries-read=(nil)".to_string(),
            "group h: entries-read=3".to_string(),
            "group i: entries-read=1".to_string(),
            "group j: entries-read=1".to_string(),
        ];
        accept_stale_entries_read(&source, &mut target);
        assert_eq!(target[0], source[0], "unknown on the target");
        assert_ne!(target[1], source[1], "ahead of the source still differs");
        assert_eq!(target[2], source[2], "behind the source");
        assert_ne!(target[3], source[3], "unknown on the source still differs");
    }
}
