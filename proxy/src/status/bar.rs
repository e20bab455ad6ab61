//! A progress bar for the snapshot on a terminal (bytes, %, rate, ETA and keys; a spinner
//! when the source did not announce the size). Nothing at all when stderr is not a terminal:
//! logs stay clean under systemd, Kubernetes or a pipe.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::{Phase, Status};

pub async fn run(status: Arc<Status>, stop: CancellationToken) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let mut bar: Option<ProgressBar> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.cancelled() => true,
        };
        if stopping || status.phase() != Phase::Snapshot {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            if stopping {
                return;
            }
            continue;
        }
        let total = status.snapshot_total.load(Ordering::Relaxed);
        let b = bar.get_or_insert_with(|| new_bar(total));
        b.set_position(status.snapshot_read.load(Ordering::Relaxed));
        let keys = status.keys_restored.load(Ordering::Relaxed)
            + status.keys_rewritten.load(Ordering::Relaxed);
        b.set_message(format!("{keys} keys"));
    }
}

fn new_bar(total: u64) -> ProgressBar {
    let (bar, template) = if total > 0 {
        (
            ProgressBar::new(total),
            "snapshot [{bar:30}] {bytes}/{total_bytes} {percent}% {bytes_per_sec} ETA {eta} {msg}",
        )
    } else {
        (
            ProgressBar::new_spinner(),
            "snapshot {spinner} {bytes} {bytes_per_sec} {msg}",
        )
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
