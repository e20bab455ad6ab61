//! `replicant cutover`: the client side. Sends `CUTOVER <pause-ms> <max-lag> [RESUME]` to a
//! running sync's admin port (the sync holds the source's credentials and knows what the
//! destination applied) and prints its answer.

use std::time::Duration;

use replay::resp::{frame_error, frame_text, Conn};
use tokio::net::TcpStream;

use crate::cli::CutoverArgs;
use crate::fatal::Fatal;

pub async fn run(a: &CutoverArgs) -> Result<(), Fatal> {
    if a.pause_timeout == 0 {
        return Err(Fatal::other("--pause-timeout must be at least 1 second"));
    }
    let sock = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&a.admin))
        .await
        .map_err(|_| Fatal::other(format!("admin port {}: connect timed out", a.admin)))?
        .map_err(|e| {
            Fatal::other(format!(
                "admin port {}: {e} (is `replicant sync` running with --admin-addr {}?)",
                a.admin, a.admin
            ))
        })?;
    let mut conn = Conn::new(sock);
    let ms = (a.pause_timeout * 1000).to_string();
    let lag = a.max_lag.to_string();
    let mut args = vec!["CUTOVER", ms.as_str(), lag.as_str()];
    if a.resume_source {
        args.push("RESUME");
    }
    let wait = Duration::from_secs(a.pause_timeout + 30);
    let reply = tokio::time::timeout(wait, conn.call(&args))
        .await
        .map_err(|_| Fatal::other("no answer from the sync in time"))?
        .map_err(|e| Fatal::other(format!("admin port {}: {e}", a.admin)))?;
    if let Some(e) = frame_error(&reply) {
        return Err(Fatal::other(e.trim_start_matches("ERR ").to_string()));
    }
    println!("{}", frame_text(&reply));
    Ok(())
}
