//! Shutdown as a value: SIGINT and SIGTERM cancel a token that every task is given. A second
//! signal exits at once.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGINT/SIGTERM; exits the process on the second.
pub fn on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        if wait_signal().await.is_err() {
            return;
        }
        tracing::info!("signal received: stopping (a second signal exits at once)");
        token.cancel();
        if wait_signal().await.is_ok() {
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        }
    });
}

#[cfg(unix)]
async fn wait_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
