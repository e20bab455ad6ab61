//! `replicant sync`: destination first (capabilities, writers), then the replica link, then
//! snapshot and stream until a signal; on the way out, drain what is in flight within the grace
//! period, send the source a last ACK of what the destination applied, and save the checkpoint.
//! A checkpoint left by an earlier run of the same pair makes the link continue the stream
//! (PSYNC) instead of copying again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use replay::cmd::{Command, Op};
use replay::dest::Sink;
use replay::net::Endpoint;
use replay::pipeline::Pipeline;
use replay::plan::slots::DbMap;
use replay::rdb::Limits;
use tokio_util::sync::CancellationToken;

use crate::apply::{self, Destination};
use crate::check;
use crate::cli::SyncArgs;
use crate::config::Side;
use crate::fatal::Fatal;
use crate::source::acker::{self, AckState};
use crate::source::handshake::FullResync;
use crate::source::link::{Link, LinkConfig, Session};
use crate::source::probe::{probe, SourceInfo};
use crate::source::shard::{self, MasterAt};
use crate::source::SourceError;
use crate::spool::{SpoolConfig, SpoolCounters};
use crate::state::checkpoint::{Checkpoint, Stand};
use crate::state::position::Position;
use crate::state::saver::{self, Checkpointer};
use crate::state::StateDir;
use crate::status::heartbeat::{self, Heartbeats};
use crate::status::{admin, bar, http, metrics, summary, Phase, Status};
use replay::plan::stream::StreamState;

pub async fn run(args: SyncArgs, stop: CancellationToken) -> Result<(), Fatal> {
    let source = apply::endpoint(&args.source, Side::Source, &args.source_side.flags())?;
    let target = apply::endpoint(
        &args.apply.target,
        Side::Target,
        &args.apply.target_side.flags(),
    )?;
    let state = StateDir::open(&args.state_dir)?;
    // One shard of a cluster source is a pair of its own (a sidecar per shard).
    let source_id = match &args.source_shard {
        Some(spec) => format!("{source} shard {spec}"),
        None => source.to_string(),
    };
    let checkpoint = state.load_for(&source_id, &target.to_string())?;
    state.remove_old_spool();
    if !args.skip_check {
        check::before_sync(&args, checkpoint.is_some()).await?;
    }
    let timeout = Duration::from_secs(args.apply.connect_timeout.max(1));
    let info = probe(&source, timeout).await.map_err(Fatal::source)?;
    tracing::info!(source = %source, version = %info.version, role = %info.role, cluster = info.cluster, tls = source.tls.is_some(), "source ready");
    let follower = shard::for_run(&args, &source, info.cluster, timeout).await?;
    let dest = apply::open(
        &args.apply,
        Duration::from_secs(args.retry_connect.saturating_mul(60)),
    )
    .await?;
    let mut pipeline = dest.pipeline();
    let Destination {
        caps,
        sink,
        batch,
        dbs,
    } = dest;
    let applied = sink.applied();
    if let Some(dbs) = &dbs {
        if let Err(e) = check_source_dbs(&info, dbs) {
            sink.abort();
            return Err(e);
        }
    }
    let read_timeout = Duration::from_secs(args.source_timeout.max(1));
    let spool_counters = Arc::new(SpoolCounters::default());
    let cfg = LinkConfig {
        endpoint: follower
            .as_ref()
            .map_or_else(|| source.clone(), |f| f.link_endpoint()),
        connect_timeout: timeout,
        listening_port: args.listening_port,
        read_timeout,
        limits: Limits {
            whole_value_max: args.apply.restore_max_bytes,
            ..Limits::default()
        },
        restore_max: args.apply.restore_max_bytes,
        batch,
        spool: SpoolConfig {
            memory: args.spool_memory,
            disk_max: args.spool_max,
            dir: state.spool_dir(),
            read_timeout,
            counters: spool_counters.clone(),
        },
    };
    let status = Arc::new(Status::new(
        applied.clone(),
        spool_counters,
        config_lines(&args, &source, &target),
        args.ready_lag,
        args.spool_max,
    ));
    // The heartbeat key must live in a slot of the shard followed, the shard's master takes
    // it and the cutover's pause.
    let heartbeats = Arc::new(Heartbeats::new(
        &args.heartbeat_prefix,
        !args.no_heartbeat,
        follower.as_ref().and_then(|f| f.tag()).as_deref(),
    ));
    let master_at = MasterAt::new(
        follower
            .as_ref()
            .map_or_else(|| source.clone(), |f| f.master_endpoint()),
    );
    let side_stop = CancellationToken::new();
    let cut = admin::CutoverSource {
        at: master_at.clone(),
        timeout,
    };
    let mut side_tasks = match start_reports(&args, &status, cut, &side_stop).await {
        Ok(t) => t,
        Err(e) => {
            sink.abort();
            return Err(e);
        }
    };
    side_tasks.push(tokio::spawn(heartbeat::run(
        master_at.clone(),
        timeout,
        heartbeats.clone(),
        status.clone(),
        side_stop.clone(),
    )));
    side_tasks.push(tokio::spawn(bar::run(status.clone(), side_stop.clone())));
    side_tasks.push(tokio::spawn(summary::run(
        status.clone(),
        Duration::from_secs(args.status_interval),
        side_stop.clone(),
    )));
    let position = Arc::new(Position::new(applied.clone()));
    let ck = Arc::new(Checkpointer::new(
        state.checkpoint_path(),
        source_id,
        target.to_string(),
        position.clone(),
    ));
    let ack = Arc::new(AckState::default());
    let mut session = Session {
        caps,
        applied: applied.clone(),
        ack: ack.clone(),
        stop: stop.clone(),
        checkpoint: ck.clone(),
        on_full_resync: args.on_full_resync,
        recopy: checkpoint.is_some(),
        full_resyncs: 0,
        partial_resyncs: 0,
        links: 0,
        spool_peak: 0,
        spool_pauses: 0,
        pipeline: Pipeline::default(),
        shard: follower,
        master_at,
        status: status.clone(),
        heartbeats,
    };
    // Where the stream stands, kept across reconnections so that the source can continue it.
    let mut stream: Option<StreamState> = None;
    let mut resume: Option<FullResync> = None;
    if let Some(Checkpoint {
        stand: Stand::Streaming { replid, offset, db },
        ..
    }) = &checkpoint
    {
        position.resume(replid, *offset, *db);
        resume = Some(FullResync {
            replid: replid.clone(),
            offset: *offset,
        });
        let mut st = StreamState::new(*offset);
        if let Some(db) = *db {
            st.db = db;
            // A new connection starts in db 0; the stream goes on in the db it had selected.
            if db != 0 {
                let select = Command::new(&["SELECT", db.to_string().as_str()]);
                pipeline.push(Op::Cmd(select));
            }
        }
        stream = Some(st);
    }
    session.pipeline = pipeline;
    let saver_stop = CancellationToken::new();
    let saver = tokio::spawn(saver::run(ck.clone(), saver_stop.clone()));
    let outcome = follow(&args, cfg, &mut session, sink, resume, stream).await;
    status.set_phase(Phase::Stopped);
    saver_stop.cancel();
    let _ = saver.await;
    // The last word: what the destination applied, after the drain (or the failure).
    let saved = tokio::task::spawn_blocking({
        let ck = ck.clone();
        move || ck.save()
    })
    .await;
    match saved {
        Ok(Ok(_)) => {
            tracing::info!(checkpoint = %ck.path().display(), stand = ?position.stand(), "checkpoint saved")
        }
        Ok(Err(e)) => tracing::error!(error = %e, "cannot save the checkpoint"),
        Err(e) => tracing::error!(error = %e, "cannot save the checkpoint"),
    }
    let route = session.pipeline.slot_stats().cloned().unwrap_or_default();
    tracing::info!(
        applied_offset = applied.offset(),
        commands = applied.commands(),
        key_errors = applied.key_errors(),
        full_resyncs = session.full_resyncs,
        partial_resyncs = session.partial_resyncs,
        spool_disk_peak = session.spool_peak,
        spool_pauses = session.spool_pauses,
        split_commands = route.split_commands,
        split_transactions = route.split_transactions,
        unsplittable = route.unsplittable,
        "sync stopped"
    );
    side_stop.cancel();
    for t in side_tasks {
        let _ = t.await;
    }
    outcome
}

/// Starts the metrics/health HTTP server and the admin port (unless `off`).
async fn start_reports(
    args: &SyncArgs,
    status: &Arc<Status>,
    source: admin::CutoverSource,
    stop: &CancellationToken,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Fatal> {
    let mut tasks = Vec::new();
    if let Some(addr) = listen_addr(&args.metrics_addr, "--metrics-addr")? {
        let handle = metrics::install().map_err(Fatal::other)?;
        tasks.push(
            http::serve(addr, status.clone(), handle, stop.clone())
                .await
                .map_err(Fatal::other)?,
        );
    }
    if let Some(addr) = listen_addr(&args.admin_addr, "--admin-addr")? {
        tasks.push(
            admin::serve(addr, status.clone(), source, stop.clone())
                .await
                .map_err(Fatal::other)?,
        );
    }
    Ok(tasks)
}

/// `off`, or an `IP:PORT` to listen on.
fn listen_addr(text: &str, flag: &str) -> Result<Option<std::net::SocketAddr>, Fatal> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        Fatal::other(format!(
            "{flag} {text:?}: expected IP:PORT (e.g. 127.0.0.1:9477) or off"
        ))
    })
}

/// The configuration as INFO shows it: no secrets (passwords are only said to be set).
fn config_lines(args: &SyncArgs, source: &Endpoint, target: &Endpoint) -> Vec<(String, String)> {
    let secret = |p: &Option<String>| if p.is_some() { "(set)" } else { "" }.to_string();
    let mut c = vec![
        ("source".to_string(), source.to_string()),
        (
            "source_user".to_string(),
            source.user.clone().unwrap_or_default(),
        ),
        ("source_password".to_string(), secret(&source.password)),
        (
            "source_tls".to_string(),
            u8::from(source.tls.is_some()).to_string(),
        ),
        ("target".to_string(), target.to_string()),
        (
            "target_user".to_string(),
            target.user.clone().unwrap_or_default(),
        ),
        ("target_password".to_string(), secret(&target.password)),
        (
            "target_tls".to_string(),
            u8::from(target.tls.is_some()).to_string(),
        ),
    ];
    let more: [(&str, String); 12] = [
        ("state_dir", args.state_dir.display().to_string()),
        (
            "on_full_resync",
            format!("{:?}", args.on_full_resync).to_lowercase(),
        ),
        ("spool_memory", args.spool_memory.to_string()),
        ("spool_max", args.spool_max.to_string()),
        ("retry_connect_minutes", args.retry_connect.to_string()),
        ("retry_errors_minutes", args.apply.retry_errors.to_string()),
        ("grace_seconds", args.grace.to_string()),
        ("metrics_addr", args.metrics_addr.clone()),
        ("admin_addr", args.admin_addr.clone()),
        (
            "heartbeat",
            if args.no_heartbeat { "off" } else { "on" }.to_string(),
        ),
        ("heartbeat_prefix", args.heartbeat_prefix.clone()),
        ("ready_lag", args.ready_lag.to_string()),
    ];
    c.extend(more.into_iter().map(|(k, v)| (k.to_string(), v)));
    c.push((
        "source_shard".to_string(),
        args.source_shard.clone().unwrap_or_default(),
    ));
    c.push((
        "source_read_from".to_string(),
        format!("{:?}", args.source_read_from).to_lowercase(),
    ));
    c
}

/// Links to the source until stopped, reconnecting after a lost link; then drains the sink.
async fn follow(
    args: &SyncArgs,
    mut cfg: LinkConfig,
    session: &mut Session,
    mut sink: Sink,
    mut resume: Option<FullResync>,
    mut stream: Option<StreamState>,
) -> Result<(), Fatal> {
    let stop = session.stop.clone();
    let ack = session.ack.clone();
    let applied = session.applied.clone();
    tracing::info!(source = %cfg.endpoint, "connecting to the source as a replica");
    let retry_for = Duration::from_secs(args.retry_connect.saturating_mul(60));
    let mut outage: Option<Instant> = None;
    let mut attempt = 0u32;
    // When the wait for the source was last said in the log.
    let mut said: Option<Instant> = None;
    let (result, acker, ack_stop) = loop {
        session.links += 1;
        ack.streaming.store(false, Ordering::Release);
        let connected = tokio::select! {
            l = connect(&mut cfg, session, resume.as_ref(), &ack) => l,
            _ = stop.cancelled() => {
                return finish(sink, args.grace).await;
            }
        };
        if let Err(SourceError::Unready(_)) = &connected {
            // A source that is there but not ready yet (loading, a replica whose master is
            // down) is waited for from the first link on, not only after a lost one.
            outage.get_or_insert_with(Instant::now);
        }
        let mut link = match connected {
            Ok(l) => l,
            Err(e) if e.is_link_loss() && outage.is_some_and(|t| t.elapsed() < retry_for) => {
                attempt += 1;
                let mut wait = backoff(attempt);
                if session.shard.is_some() {
                    // Each attempt reads the shard's topology again: a promoted replica is
                    // found within a second of the failover.
                    wait = wait.min(Duration::from_secs(1));
                }
                // Said at the first attempt, then once a minute.
                if said.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(60)) {
                    said = Some(Instant::now());
                    let waited = outage.map_or(0, |t| t.elapsed().as_secs());
                    tracing::warn!(error = %e, attempt, waited_s = waited, gives_up_after_s = retry_for.as_secs(), "cannot link to the source yet; retrying (--retry-connect)");
                } else {
                    tracing::debug!(error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "cannot link to the source yet");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stop.cancelled() => {
                                return finish(sink, args.grace).await;
                    }
                }
            }
            Err(e) => {
                sink.abort();
                return Err(Fatal::source(e));
            }
        };
        if attempt > 0 {
            tracing::info!(
                attempts = attempt,
                waited_s = outage.map_or(0, |t| t.elapsed().as_secs()),
                "linked to the source again"
            );
        }
        attempt = 0;
        said = None;
        let replid = link.resync.replid.clone();
        let ack_stop = CancellationToken::new();
        let acker = link.take_writer().map(|wr| {
            tokio::spawn(acker::run(
                wr,
                ack.clone(),
                applied.clone(),
                ack_stop.clone(),
            ))
        });
        let result = link.run(session, &mut sink, &mut stream).await;
        match &result {
            Err(e) if e.is_link_loss() => {
                ack_stop.cancel();
                if let Some(h) = acker {
                    h.abort();
                }
                resume = match &stream {
                    // Everything up to `st.offset` is with the destination: ask for the rest.
                    Some(st) => {
                        tracing::warn!(error = %e, replid = %replid, offset = st.offset, "lost the source link; reconnecting to continue the stream with PSYNC");
                        Some(FullResync {
                            replid,
                            offset: st.offset,
                        })
                    }
                    None => {
                        tracing::warn!(error = %e, "lost the source link during the snapshot; reconnecting to copy it again");
                        None
                    }
                };
                outage = Some(Instant::now());
                session
                    .status
                    .source_reconnects
                    .fetch_add(1, Ordering::Relaxed);
                session.status.source_errors.fetch_add(1, Ordering::Relaxed);
                session.status.set_phase(Phase::Connecting);
            }
            _ => break (result, acker, ack_stop),
        }
    };
    let outcome = match result {
        Ok(()) => finish(sink, args.grace).await,
        Err(SourceError::WriterGone) => {
            Err(Fatal::target(sink.finish().await.err().map_or(
                "the destination writer stopped".to_string(),
                |e| e.to_string(),
            )))
        }
        Err(SourceError::Route(e)) => {
            sink.abort();
            Err(Fatal::target(e))
        }
        Err(SourceError::Dest(e)) => {
            sink.abort();
            Err(Fatal::target(e))
        }
        Err(e) => {
            sink.abort();
            Err(Fatal::source(e))
        }
    };
    // The last ACK reports what the destination applied, after the drain.
    ack_stop.cancel();
    if let Some(h) = acker {
        if !ack.streaming.load(Ordering::Acquire) {
            h.abort();
        }
        let _ = h.await;
    }
    outcome
}

/// A link to the source; a cluster shard's topology is read again first after a lost link,
/// so that the link goes where the shard is now (a failover promoted a replica).
async fn connect(
    cfg: &mut LinkConfig,
    session: &mut Session,
    resume: Option<&FullResync>,
    ack: &Arc<AckState>,
) -> Result<Link, SourceError> {
    if let Some(f) = session.shard.as_mut() {
        if session.links > 1 {
            let before = cfg.endpoint.clone();
            if f.refresh().await? {
                tracing::warn!(master = %f.master_endpoint(), id = %f.shard.master.id, "the source shard has a new master: continuing the stream there");
            }
            cfg.endpoint = f.link_endpoint();
            session.master_at.set(f.master_endpoint());
            if cfg.endpoint != before {
                tracing::info!(from = %before, to = %cfg.endpoint, "the link moves to another node of the shard");
            }
        }
    }
    let r = Link::connect(cfg.clone(), resume, session.links, ack).await;
    if r.is_err() {
        if let Some(f) = session.shard.as_mut() {
            f.link_failed();
        }
    }
    r
}

/// Waits (within the grace period) until the destination has answered what is in flight.
async fn finish(sink: Sink, grace_secs: u64) -> Result<(), Fatal> {
    let grace = Duration::from_secs(grace_secs);
    let r = match tokio::time::timeout(grace, sink.finish()).await {
        Ok(r) => r.map_err(Fatal::target),
        Err(_) => {
            tracing::warn!(
                grace_secs,
                "grace period over with commands still in flight; they are not acknowledged to the source nor checkpointed"
            );
            Ok(())
        }
    };
    r
}

/// A cluster destination only has db 0: refuse a source with keys in dbs not mapped to it.
fn check_source_dbs(source: &SourceInfo, dbs: &DbMap) -> Result<(), Fatal> {
    let unmapped: Vec<u64> = source
        .dbs
        .iter()
        .copied()
        .filter(|db| !dbs.maps(*db))
        .collect();
    if unmapped.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = unmapped.iter().map(u64::to_string).collect();
    let example = unmapped[0];
    Err(Fatal::target(format!(
        "the destination is a Redis Cluster, which has only db 0, and the source has keys in db {}; map them with --db-map {example}:0 (one SRC:0 per db) or --all-dbs-to 0",
        list.join(", ")
    )))
}

/// 100 ms doubling per attempt up to 5 s, with up to 50 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(6)).min(5000);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0)
        % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}
