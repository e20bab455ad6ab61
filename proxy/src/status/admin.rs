//! The RESP admin port (`--admin-addr`): `redis-cli -p <port> PING` and `INFO [section]`, the
//! status in Redis's INFO format (`# Section` headers, `field:value` lines), configuration
//! included with secrets masked, and `CUTOVER`, which pauses writes on the source: it needs
//! `AUTH <--admin-password>` first, or, without a password, the operator's opt-in on a
//! loopback address; every CUTOVER asked is logged with the peer's address. Requests are read
//! with the same scanner as the replication stream (bounded: a request larger than 64 KiB
//! closes the connection).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use replay::resp::peek_args;
use replay::resp::scan::CommandScanner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::cutover::{self, Request};
use super::shards::Streams;
use super::Status;
use std::time::Duration;

const MAX_REQUEST: usize = 64 * 1024;

/// Where a cutover pauses writes: the source, with the run's credentials.
#[derive(Debug, Clone)]
pub struct CutoverSource {
    /// The source's master now (a cluster shard's follows failovers).
    pub at: crate::source::shard::MasterAt,
    pub timeout: Duration,
}

/// Who may ask for a CUTOVER.
#[derive(Debug, Clone, Default)]
pub struct CutoverAuth {
    /// `--admin-password`: a session must `AUTH` with it first.
    pub password: Option<String>,
    /// No password, and the operator allowed CUTOVER without one (loopback only).
    pub open: bool,
}

impl CutoverAuth {
    /// From the flags; an opt-in on an address others can reach is refused.
    pub fn new(password: Option<String>, open: bool, addr: &SocketAddr) -> Result<Self, String> {
        let password = password.filter(|p| !p.is_empty());
        if open && password.is_none() && !addr.ip().is_loopback() {
            return Err(format!(
                "--admin-cutover-without-password needs a loopback --admin-addr, not {addr}: anyone who reaches it could pause the source (set --admin-password instead)"
            ));
        }
        Ok(CutoverAuth {
            open: open && password.is_none(),
            password,
        })
    }
}

/// Binds `addr` (an error names it) and serves until `stop`.
pub async fn serve(
    addr: SocketAddr,
    streams: Arc<Streams>,
    auth: CutoverAuth,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on --admin-addr {addr}: {e}"))?;
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %addr, "admin port: redis-cli -h {} -p {} INFO", addr.ip(), addr.port());
    Ok(tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = listener.accept() => c,
                _ = stop.cancelled() => return,
            };
            let Ok((sock, peer)) = conn else { continue };
            let streams = streams.clone();
            let stop = stop.clone();
            let auth = auth.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = session(sock, peer, &streams, &auth) => {}
                    _ = stop.cancelled() => {}
                }
            });
        }
    }))
}

async fn session(
    mut sock: TcpStream,
    peer: SocketAddr,
    streams: &Streams,
    auth: &CutoverAuth,
) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(1024);
    let mut scanner = CommandScanner::default();
    let mut authed = false;
    loop {
        loop {
            let frame = match scanner.scan(&buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    let msg = format!("-ERR Protocol error: {e}\r\n");
                    sock.write_all(msg.as_bytes()).await?;
                    return Ok(());
                }
            };
            let raw = buf.split_to(frame.len).freeze();
            let args = peek_args(&raw, 8);
            let name = args
                .first()
                .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
                .unwrap_or_default();
            let arg = |i: usize| args.get(i).map(|a| String::from_utf8_lossy(a).into_owned());
            if name == "CUTOVER" {
                tracing::warn!(peer = %peer, authenticated = authed, args = %args.iter().skip(1).map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" "), "CUTOVER asked on the admin port");
            }
            let refused = match (name.as_str(), &auth.password) {
                ("CUTOVER", Some(_)) if !authed => Some("-NOAUTH CUTOVER needs AUTH <password> first (--admin-password)\r\n"),
                ("CUTOVER", None) if !auth.open => Some("-NOPERM CUTOVER pauses writes on the source: start sync with --admin-password (or REPLICANT_ADMIN_PASSWORD), or, on a loopback --admin-addr, --admin-cutover-without-password\r\n"),
                _ => None,
            };
            let out = match name.as_str() {
                _ if refused.is_some() => refused.unwrap_or_default().to_string(),
                "AUTH" => {
                    // `AUTH <password>` or `AUTH <user> <password>` (the user is not checked).
                    let given = if args.len() == 3 { arg(2) } else { arg(1) };
                    match (&auth.password, given) {
                        (Some(p), Some(g)) if *p == g => {
                            authed = true;
                            "+OK\r\n".to_string()
                        }
                        (None, _) => "-ERR AUTH: this admin port has no password (--admin-password)\r\n".to_string(),
                        _ => {
                            tracing::warn!(peer = %peer, "wrong AUTH on the admin port");
                            "-WRONGPASS invalid password\r\n".to_string()
                        }
                    }
                }
                "PING" => match arg(1) {
                    Some(m) => bulk(&m),
                    None => "+PONG\r\n".to_string(),
                },
                "INFO" => bulk(&info_all(streams, arg(1).as_deref())),
                "COMMAND" => "*0\r\n".to_string(),
                "CUTOVER" if args.len() == 2 && arg(1).is_some_and(|a| a.eq_ignore_ascii_case("resume")) => {
                    match resume_all(streams).await {
                        Ok(text) => bulk(&text),
                        Err(e) => format!("-ERR {}\r\n", e.replace(['\r', '\n'], " ")),
                    }
                }
                "CUTOVER" => {
                    let num = |i: usize| arg(i).and_then(|a| a.parse::<u64>().ok());
                    match (num(1), num(2)) {
                        (Some(pause_ms), Some(max_lag)) if pause_ms > 0 => {
                            let req = Request {
                                pause: Duration::from_millis(pause_ms),
                                max_lag,
                                resume: arg(3).is_some_and(|a| a.eq_ignore_ascii_case("resume")),
                            };
                            match cutover_all(streams, req).await {
                                Ok(text) => bulk(&text),
                                Err(e) => format!("-ERR cutover failed: {}\r\n", e.replace(['\r', '\n'], " ")),
                            }
                        }
                        _ => "-ERR usage: CUTOVER <pause-ms> <max-lag-bytes> [RESUME] | CUTOVER RESUME\r\n".to_string(),
                    }
                }
                "QUIT" => {
                    sock.write_all(b"+OK\r\n").await?;
                    return Ok(());
                }
                other => format!("-ERR unknown command '{other}' (this is replicant's admin port: PING, INFO, CUTOVER)\r\n"),
            };
            sock.write_all(out.as_bytes()).await?;
        }
        if buf.len() > MAX_REQUEST {
            return Ok(());
        }
        if sock.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// The INFO text: every section, or the one asked for (`all`/`everything` too).
/// INFO of every stream: as [`info`] for one; for several (a cluster source's shards), a
/// `# Shard` section naming each before its own sections.
fn info_all(streams: &Streams, section: Option<&str>) -> String {
    match streams.list().as_slice() {
        [one] if one.label.is_empty() => info(&one.status, section),
        many => many
            .iter()
            .map(|s| {
                format!(
                    "# Shard\r\nshard:{}\r\n\r\n{}",
                    s.label,
                    info(&s.status, section)
                )
            })
            .collect(),
    }
}

/// A cutover of every stream at once (every shard's master paused together): ready only when
/// every one is; if one fails, the others' sources are unpaused and the failure says which.
async fn cutover_all(streams: &Streams, req: Request) -> Result<String, String> {
    let list = streams.list();
    if let [one] = list.as_slice() {
        return cutover::run(&one.status, &one.cut.at.get(), one.cut.timeout, req).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in list.iter().cloned().enumerate() {
        tasks.spawn(async move {
            let r = cutover::run(&s.status, &s.cut.at.get(), s.cut.timeout, req).await;
            (i, r)
        });
    }
    let mut out: Vec<Option<Result<String, String>>> = vec![None; list.len()];
    while let Some(Ok((i, r))) = tasks.join_next().await {
        out[i] = Some(r);
    }
    let out: Vec<Result<String, String>> = out
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("the cutover task failed".into())))
        .collect();
    let lines: Vec<String> = list
        .iter()
        .zip(&out)
        .map(|(s, r)| match r {
            Ok(t) => format!("shard {}: {t}", s.label),
            Err(e) => format!("shard {}: {e}", s.label),
        })
        .collect();
    if out.iter().all(Result::is_ok) {
        return Ok(format!(
            "{}\nready: all {} shards",
            lines.join("\n"),
            list.len()
        ));
    }
    if !req.resume {
        for (s, r) in list.iter().zip(&out) {
            if r.is_ok() {
                let _ = cutover::resume(&s.status, &s.cut.at.get(), s.cut.timeout).await;
            }
        }
    }
    Err(format!(
        "{} of {} shards failed; writes resumed on every source master: {}",
        out.iter().filter(|r| r.is_err()).count(),
        list.len(),
        lines.join("; ")
    ))
}

/// `CUTOVER RESUME`: every stream's source unpaused.
async fn resume_all(streams: &Streams) -> Result<String, String> {
    let mut last = Ok("source=resumed".to_string());
    for s in streams.list() {
        if let Err(e) = cutover::resume(&s.status, &s.cut.at.get(), s.cut.timeout).await {
            last = Err(e);
        }
    }
    last
}

pub fn info(s: &Status, section: Option<&str>) -> String {
    let want = section.map(str::to_ascii_lowercase);
    let show = |name: &str| {
        want.as_deref()
            .is_none_or(|w| w == name || w == "all" || w == "everything" || w == "default")
    };
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Acquire);
    let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    let mut out = String::new();
    let mut section = |name: &str, title: &str, fields: Vec<(&str, String)>| {
        if show(name) {
            let _ = write!(out, "# {title}\r\n");
            for (k, v) in fields {
                let _ = write!(out, "{k}:{v}\r\n");
            }
            out.push_str("\r\n");
        }
    };
    section(
        "server",
        "Server",
        vec![
            ("replicant_version", env!("CARGO_PKG_VERSION").to_string()),
            ("process_id", std::process::id().to_string()),
            (
                "uptime_in_seconds",
                s.started.elapsed().as_secs().to_string(),
            ),
        ],
    );
    let src = load(&s.source_offset);
    section(
        "replication",
        "Replication",
        vec![
            ("phase", s.phase().name().to_string()),
            ("ready", u8::from(s.ready()).to_string()),
            ("replid", s.replid()),
            ("source_offset", opt((src != super::UNKNOWN).then_some(src))),
            ("read_offset", load(&s.read_offset).to_string()),
            ("applied_offset", opt(s.applied_offset())),
            ("lag_bytes", opt(s.lag_bytes())),
            (
                "lag_seconds",
                s.lag_seconds().map_or(String::new(), |l| format!("{l:.3}")),
            ),
            ("full_resyncs", load(&s.full_resyncs).to_string()),
            ("partial_resyncs", load(&s.partial_resyncs).to_string()),
            ("source_reconnects", load(&s.source_reconnects).to_string()),
        ],
    );
    let (cmds, bytes) = s.inflight();
    let nodes = s.applied.nodes();
    let applied_cmds: u64 = nodes
        .iter()
        .map(|p| p.commands.load(Ordering::Relaxed))
        .sum();
    let applied_bytes: u64 = nodes.iter().map(|p| p.bytes.load(Ordering::Relaxed)).sum();
    let key_errors: u64 = nodes
        .iter()
        .map(|p| p.key_errors.load(Ordering::Relaxed))
        .sum();
    section(
        "stats",
        "Stats",
        vec![
            ("source_bytes", load(&s.spool.received).to_string()),
            ("source_commands", load(&s.source_commands).to_string()),
            ("snapshot_read_bytes", load(&s.snapshot_read).to_string()),
            ("snapshot_total_bytes", load(&s.snapshot_total).to_string()),
            ("keys_restored", load(&s.keys_restored).to_string()),
            ("keys_rewritten", load(&s.keys_rewritten).to_string()),
            ("keys_skipped_expired", load(&s.keys_expired).to_string()),
            ("applied_commands", applied_cmds.to_string()),
            ("applied_bytes", applied_bytes.to_string()),
            ("inflight_commands", cmds.to_string()),
            ("inflight_bytes", bytes.to_string()),
            ("destination_nodes", nodes.len().to_string()),
            ("errors_target_key", key_errors.to_string()),
            ("errors_source_link", load(&s.source_errors).to_string()),
        ],
    );
    section(
        "spool",
        "Spool",
        vec![
            ("spool_memory_bytes", load(&s.spool.memory).to_string()),
            ("spool_disk_bytes", load(&s.spool.disk).to_string()),
            ("spool_max_bytes", s.spool_max.to_string()),
            ("spool_pauses", load(&s.spool.pauses).to_string()),
        ],
    );
    let c = &s.cutover;
    section(
        "cutover",
        "Cutover",
        vec![
            ("cutover_state", c.state().name().to_string()),
            (
                "cutover_offset",
                c.offset.load(Ordering::Acquire).to_string(),
            ),
            (
                "cutover_pause_ms",
                c.pause_ms.load(Ordering::Acquire).to_string(),
            ),
        ],
    );
    section(
        "config",
        "Config",
        s.config
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect(),
    );
    out
}
