//! `replicant cutover`: the client side. Sends `CUTOVER <pause-ms> <max-lag> [RESUME]` to one
//! running sync's admin port, or to several at once (a cluster source with one replicant per
//! shard), and prints the answers. Each sync holds its source's credentials and knows what the
//! destination applied; this side only asks them together: ready when every one is, and when
//! one fails, `CUTOVER RESUME` to those that paused their master.

use std::time::Duration;

use replay::resp::{frame_error, frame_text, Conn};
use tokio::net::TcpStream;

use crate::cli::CutoverArgs;
use crate::fatal::Fatal;

pub async fn run(a: &CutoverArgs) -> Result<(), Fatal> {
    if a.pause_timeout == 0 {
        return Err(Fatal::other("--pause-timeout must be at least 1 second"));
    }
    if a.admin.is_empty() {
        return Err(Fatal::other("--admin: at least one admin port"));
    }
    let ms = (a.pause_timeout * 1000).to_string();
    let lag = a.max_lag.to_string();
    let mut args = vec!["CUTOVER".to_string(), ms, lag];
    if a.resume_source {
        args.push("RESUME".into());
    }
    let wait = Duration::from_secs(a.pause_timeout + 30);
    let mut asks = tokio::task::JoinSet::new();
    for (i, admin) in a.admin.iter().enumerate() {
        let (admin, args, pass) = (admin.clone(), args.clone(), a.admin_password.clone());
        asks.spawn(async move { (i, ask(&admin, &args, pass.as_deref(), wait).await) });
    }
    let mut answers: Vec<Option<Result<String, String>>> = vec![None; a.admin.len()];
    while let Some(done) = asks.join_next().await {
        match done {
            Ok((i, r)) => answers[i] = Some(r),
            Err(e) => return Err(Fatal::other(format!("cutover task: {e}"))),
        }
    }
    let answers: Vec<Result<String, String>> = answers
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("no answer".into())))
        .collect();
    if let [only] = answers.as_slice() {
        return match only {
            Ok(text) => {
                println!("{text}");
                Ok(())
            }
            Err(e) => Err(Fatal::other(e.clone())),
        };
    }
    let failed = answers.iter().filter(|r| r.is_err()).count();
    if failed == 0 {
        for (admin, r) in a.admin.iter().zip(&answers) {
            if let Ok(text) = r {
                println!("{admin}: {text}");
            }
        }
        println!("ready: all {} shards", answers.len());
        return Ok(());
    }
    // Abort: the shards that paused their master go on.
    let mut lines = Vec::new();
    for (admin, r) in a.admin.iter().zip(&answers) {
        match r {
            Ok(_) if !a.resume_source => {
                let resumed = ask(
                    admin,
                    &["CUTOVER".into(), "RESUME".into()],
                    a.admin_password.as_deref(),
                    wait,
                )
                .await;
                lines.push(format!(
                    "{admin}: was ready; {}",
                    resumed.unwrap_or_else(|e| format!("CANNOT RESUME ITS SOURCE: {e}"))
                ));
            }
            Ok(text) => lines.push(format!("{admin}: {text}")),
            Err(e) => lines.push(format!("{admin}: {e}")),
        }
    }
    Err(Fatal::other(format!(
        "cutover failed on {failed} of {} shards; writes resumed on every source master:\n{}",
        answers.len(),
        lines.join("\n")
    )))
}

/// One admin port's answer to `args`.
async fn ask(
    admin: &str,
    args: &[String],
    password: Option<&str>,
    wait: Duration,
) -> Result<String, String> {
    let sock = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(admin))
        .await
        .map_err(|_| format!("admin port {admin}: connect timed out"))?
        .map_err(|e| {
            format!(
                "admin port {admin}: {e} (is `replicant sync` running with --admin-addr {admin}?)"
            )
        })?;
    let mut conn = Conn::new(sock);
    if let Some(pass) = password {
        let r = tokio::time::timeout(Duration::from_secs(10), conn.call(&["AUTH", pass]))
            .await
            .map_err(|_| format!("admin port {admin}: no answer to AUTH"))?
            .map_err(|e| format!("admin port {admin}: {e}"))?;
        if let Some(e) = frame_error(&r) {
            return Err(format!("admin port {admin}: AUTH refused: {e}"));
        }
    }
    let reply = tokio::time::timeout(wait, conn.call(args))
        .await
        .map_err(|_| format!("admin port {admin}: no answer from the sync in time"))?
        .map_err(|e| format!("admin port {admin}: {e}"))?;
    if let Some(e) = frame_error(&reply) {
        return Err(e.trim_start_matches("ERR ").to_string());
    }
    Ok(frame_text(&reply))
}
