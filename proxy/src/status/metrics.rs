//! Prometheus metrics (`metrics` with `metrics-exporter-prometheus`): the [`Status`] and the
//! destination writers' progress, copied into the registry just before each scrape. Names
//! follow Prometheus conventions (`replicant_` prefix, `_total` counters, `_bytes`, `_seconds`)
//! and labels are bounded: a phase, a side, a kind, a destination node — never a key.

use std::sync::atomic::Ordering;

use metrics::{counter, describe_counter, describe_gauge, gauge, Label, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::{Phase, Status};

/// Every metric name replicant exports (the alert rules and dashboard use only these; a unit
/// test checks the list against a scrape).
#[allow(dead_code)]
pub const NAMES: &[&str] = &[
    "replicant_phase",
    "replicant_ready",
    "replicant_source_bytes_total",
    "replicant_source_commands_total",
    "replicant_source_offset",
    "replicant_read_offset",
    "replicant_applied_offset",
    "replicant_lag_bytes",
    "replicant_lag_seconds",
    "replicant_snapshot_read_bytes",
    "replicant_snapshot_total_bytes",
    "replicant_snapshot_keys_total",
    "replicant_keys_skipped_expired_total",
    "replicant_applied_commands_total",
    "replicant_applied_bytes_total",
    "replicant_inflight_commands",
    "replicant_target_stalled",
    "replicant_inflight_bytes",
    "replicant_spool_bytes",
    "replicant_spool_max_bytes",
    "replicant_spool_pauses_total",
    "replicant_errors_total",
    "replicant_reconnects_total",
    "replicant_resyncs_total",
    "replicant_uptime_seconds",
    "replicant_cutover_state",
    "replicant_cutover_pause_seconds",
];

/// Installs the recorder; the handle renders the text format.
pub fn install() -> Result<PrometheusHandle, String> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    describe();
    Ok(handle)
}

fn describe() {
    describe_gauge!(
        "replicant_phase",
        "1 for the phase the run is in (connecting, snapshot, streaming, stopped)"
    );
    describe_gauge!(
        "replicant_ready",
        "1 when streaming with the byte lag under --ready-lag"
    );
    describe_counter!(
        "replicant_source_bytes_total",
        Unit::Bytes,
        "Bytes read from the source's replica link"
    );
    describe_counter!(
        "replicant_source_commands_total",
        "Commands of the replication stream received"
    );
    describe_gauge!(
        "replicant_source_offset",
        Unit::Bytes,
        "The source's master_repl_offset, polled once a second"
    );
    describe_gauge!(
        "replicant_read_offset",
        Unit::Bytes,
        "The source offset read from the replication stream"
    );
    describe_gauge!(
        "replicant_applied_offset",
        Unit::Bytes,
        "The source offset the destination has applied"
    );
    describe_gauge!(
        "replicant_lag_bytes",
        Unit::Bytes,
        "Source offset minus the offset the destination has applied"
    );
    describe_gauge!(
        "replicant_lag_seconds",
        Unit::Seconds,
        "Age of the last heartbeat the destination has applied (or of the oldest not applied)"
    );
    describe_gauge!(
        "replicant_snapshot_read_bytes",
        Unit::Bytes,
        "Bytes of the current snapshot read"
    );
    describe_gauge!(
        "replicant_snapshot_total_bytes",
        Unit::Bytes,
        "Size of the current snapshot when the source announced it (0: not announced)"
    );
    describe_counter!(
        "replicant_snapshot_keys_total",
        "Keys of snapshots sent to the destination, by how (restore, rewrite)"
    );
    describe_counter!(
        "replicant_keys_skipped_expired_total",
        "Snapshot keys already expired when read, not sent"
    );
    describe_counter!(
        "replicant_applied_commands_total",
        "Commands the destination answered, by destination node"
    );
    describe_counter!(
        "replicant_applied_bytes_total",
        Unit::Bytes,
        "Bytes of commands the destination answered, by destination node"
    );
    describe_gauge!(
        "replicant_target_stalled",
        "1 while a destination node has answered nothing for --target-timeout with replies due (hung or SIGSTOPped): replicant waits for it"
    );
    describe_gauge!(
        "replicant_inflight_commands",
        "Commands handed to the destination writers and not answered"
    );
    describe_gauge!(
        "replicant_inflight_bytes",
        Unit::Bytes,
        "Bytes of commands handed to the destination writers and not answered"
    );
    describe_gauge!(
        "replicant_spool_bytes",
        Unit::Bytes,
        "Bytes from the source waiting in the spool, in memory and on disk"
    );
    describe_gauge!(
        "replicant_spool_max_bytes",
        Unit::Bytes,
        "--spool-max: the disk part's cap"
    );
    describe_counter!(
        "replicant_spool_pauses_total",
        "Times reading from the source paused because the spool was full"
    );
    describe_counter!(
        "replicant_errors_total",
        "Errors by side (source, target) and kind (link, key)"
    );
    describe_counter!("replicant_reconnects_total", "Reconnections to the source");
    describe_counter!("replicant_resyncs_total", "Resynchronisations with the source by kind (full: a snapshot copy, partial: the stream continued)");
    describe_gauge!(
        "replicant_uptime_seconds",
        Unit::Seconds,
        "Seconds since the process started"
    );
    describe_gauge!(
        "replicant_cutover_state",
        "1 for the cutover's state (none, pausing, waiting, ready, resumed, failed)"
    );
    describe_gauge!(
        "replicant_cutover_pause_seconds",
        Unit::Seconds,
        "How long the last cutover paused writes on the source until the destination had caught up"
    );
}

/// Copies the status into the registry. `shard`: the source shard the status is of (a label
/// on every series when not empty: one value per source master, never a key).
pub fn update(s: &Status, shard: &str) {
    let base: Vec<Label> = if shard.is_empty() {
        Vec::new()
    } else {
        vec![Label::new("shard", shard.to_string())]
    };
    // The shard's labels and these.
    let l = |extra: &[(&'static str, String)]| -> Vec<Label> {
        let mut v = base.clone();
        v.extend(extra.iter().map(|(k, v)| Label::new(*k, v.clone())));
        v
    };
    let none = l(&[]);
    let phase = s.phase();
    for p in Phase::ALL {
        gauge!("replicant_phase", l(&[("phase", p.name().into())]))
            .set(f64::from(u8::from(p == phase)));
    }
    gauge!("replicant_ready", none.clone()).set(f64::from(u8::from(s.ready())));
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Acquire);
    counter!("replicant_source_bytes_total", none.clone()).absolute(load(&s.spool.received));
    counter!("replicant_source_commands_total", none.clone()).absolute(load(&s.source_commands));
    let src = load(&s.source_offset);
    if src != super::UNKNOWN {
        gauge!("replicant_source_offset", none.clone()).set(src as f64);
    }
    gauge!("replicant_read_offset", none.clone()).set(load(&s.read_offset) as f64);
    if let Some(a) = s.applied_offset() {
        gauge!("replicant_applied_offset", none.clone()).set(a as f64);
    }
    if let Some(lag) = s.lag_bytes() {
        gauge!("replicant_lag_bytes", none.clone()).set(lag as f64);
    }
    match s.lag_seconds() {
        Some(lag) => gauge!("replicant_lag_seconds", none.clone()).set(lag),
        None => gauge!("replicant_lag_seconds", none.clone()).set(f64::NAN),
    }
    gauge!("replicant_snapshot_read_bytes", none.clone()).set(load(&s.snapshot_read) as f64);
    gauge!("replicant_snapshot_total_bytes", none.clone()).set(load(&s.snapshot_total) as f64);
    counter!(
        "replicant_snapshot_keys_total",
        l(&[("how", "restore".into())])
    )
    .absolute(load(&s.keys_restored));
    counter!(
        "replicant_snapshot_keys_total",
        l(&[("how", "rewrite".into())])
    )
    .absolute(load(&s.keys_rewritten));
    counter!("replicant_keys_skipped_expired_total", none.clone()).absolute(load(&s.keys_expired));
    let mut key_errors = 0;
    for p in s.applied.nodes() {
        let node = p.node.clone();
        counter!(
            "replicant_applied_commands_total",
            l(&[("node", node.clone())])
        )
        .absolute(p.commands.load(Ordering::Relaxed));
        counter!(
            "replicant_applied_bytes_total",
            l(&[("node", node.clone())])
        )
        .absolute(p.bytes.load(Ordering::Relaxed));
        gauge!("replicant_target_stalled", l(&[("node", node)])).set(
            if p.stalled.load(Ordering::Acquire) {
                1.0
            } else {
                0.0
            },
        );
        key_errors += p.key_errors.load(Ordering::Relaxed);
    }
    let (cmds, bytes) = s.inflight();
    gauge!("replicant_inflight_commands", none.clone()).set(cmds as f64);
    gauge!("replicant_inflight_bytes", none.clone()).set(bytes as f64);
    gauge!("replicant_spool_bytes", l(&[("where", "memory".into())]))
        .set(load(&s.spool.memory) as f64);
    gauge!("replicant_spool_bytes", l(&[("where", "disk".into())])).set(load(&s.spool.disk) as f64);
    gauge!("replicant_spool_max_bytes", none.clone()).set(s.spool_max as f64);
    counter!("replicant_spool_pauses_total", none.clone()).absolute(load(&s.spool.pauses));
    // Counters only go up: a writer replaced after a reconnection starts again from 0, so
    // the key errors of gone writers are kept by taking the largest total seen.
    let prev = s.key_errors_seen.fetch_max(key_errors, Ordering::AcqRel);
    counter!(
        "replicant_errors_total",
        l(&[("side", "target".into()), ("kind", "key".into())])
    )
    .absolute(prev.max(key_errors));
    counter!(
        "replicant_errors_total",
        l(&[("side", "source".into()), ("kind", "link".into())])
    )
    .absolute(load(&s.source_errors));
    counter!(
        "replicant_reconnects_total",
        l(&[("side", "source".into())])
    )
    .absolute(load(&s.source_reconnects));
    counter!("replicant_resyncs_total", l(&[("kind", "full".into())]))
        .absolute(load(&s.full_resyncs));
    counter!("replicant_resyncs_total", l(&[("kind", "partial".into())]))
        .absolute(load(&s.partial_resyncs));
    gauge!("replicant_uptime_seconds", none.clone()).set(s.started.elapsed().as_secs_f64());
    let state = s.cutover.state();
    for st in super::cutover::State::ALL {
        gauge!("replicant_cutover_state", l(&[("state", st.name().into())]))
            .set(f64::from(u8::from(st == state)));
    }
    gauge!("replicant_cutover_pause_seconds", none)
        .set(s.cutover.pause_ms.load(Ordering::Acquire) as f64 / 1000.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay::dest::{Applied, Progress};
    use std::sync::Arc;

    #[test]
    fn exports_exactly_the_listed_names() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let p = Arc::new(Progress::for_node("127.0.0.1:7000".into()));
        let status = Status::new(Applied::new(vec![p]), Arc::default(), vec![], 0, 0);
        status.source_offset.store(10, Ordering::Release);
        metrics::with_local_recorder(&recorder, || {
            describe();
            update(&status, "");
            update(&status, "0-5460");
        });
        let text = handle.render();
        let exported: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let listed: std::collections::BTreeSet<&str> = NAMES.iter().copied().collect();
        assert_eq!(exported, listed, "{text}");
        assert!(
            text.contains("replicant_phase{phase=\"connecting\"} 1"),
            "{text}"
        );
        assert!(text.contains("node=\"127.0.0.1:7000\""), "{text}");
        assert!(
            text.contains("replicant_ready{shard=\"0-5460\"} 0"),
            "{text}"
        );
    }
}
