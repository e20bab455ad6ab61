//! `replicant sync`: the source's streams (the source itself, one shard of a cluster source, or
//! every master shard of one), the checks, the reports that speak for the process (metrics,
//! health, the admin port); then each stream at once ([`run_stream`]): destination first
//! (capabilities, writers), then the replica link ([`follow`]), snapshot and stream until a
//! signal; on the way out, drain what is in flight within the grace period, send the source a
//! last ACK of what the destination applied, and save the checkpoint. A checkpoint left by an
//! earlier run of the same pair makes the link continue the stream (PSYNC) instead of copying
//! again.

use std::sync::Arc;
use std::time::Duration;

use replay::cmd::{Command, Op};
use replay::dest::once::StateKeys;
use replay::net::Endpoint;
use replay::pipeline::Pipeline;
use replay::plan::slots::DbMap;
use replay::rdb::Limits;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::apply::{self, Destination};
use crate::check;
use crate::cli::{Delivery, SyncArgs};
use crate::config::Side;
use crate::fatal::Fatal;
use crate::source::acker::AckState;
use crate::source::handshake::FullResync;
use crate::source::link::{LinkConfig, Session};
use crate::source::migrations::Migrations;
use crate::source::probe::{probe, SourceInfo};
use crate::source::shard::{self, MasterAt, ShardFollower};
use crate::spool::{SpoolConfig, SpoolCounters};
use crate::state::checkpoint::{Checkpoint, Stand};
use crate::state::position::Position;
use crate::state::saver::{self, Checkpointer};
use crate::state::StateDir;
use crate::status::heartbeat::{self, Heartbeats};
use crate::status::shards::{Stream, Streams};
use crate::status::{admin, bar, http, metrics, summary, Phase, Status};
use replay::plan::stream::StreamState;

mod follow;

pub async fn run(args: SyncArgs, stop: CancellationToken) -> Result<(), Fatal> {
    let args = Arc::new(args);
    let source = apply::endpoint(&args.source, Side::Source, &args.source_side.flags())?;
    let target = apply::endpoint(
        &args.apply.target,
        Side::Target,
        &args.apply.target_side.flags(),
    )?;
    let timeout = Duration::from_secs(args.apply.connect_timeout.max(1));
    let info = probe(&source, timeout).await.map_err(Fatal::source)?;
    tracing::info!(source = %source, version = %info.version, role = %info.role, cluster = info.cluster, tls = source.tls.is_some(), "source ready");
    let plans = shard::plans(&args, &source, info.cluster, timeout).await?;
    // The checkpoints first: the checks must know whether the destination's keys are expected.
    let mut opened = Vec::new();
    let mut resuming = false;
    for plan in &plans {
        let state = StateDir::open(&plan.state_dir)?;
        let checkpoint = state.load_for(&plan.source_id, &target.to_string())?;
        resuming |= checkpoint.is_some();
        state.remove_old_spool();
        opened.push((state, checkpoint));
    }
    if !args.skip_check {
        check::before_sync(&args, resuming).await?;
    }
    let streams = Arc::new(Streams::default());
    let side_stop = CancellationToken::new();
    let reports = start_reports(&args, &streams, &side_stop).await?;
    // Every stream at once, on this thread; one that fails stops the others (each drains and
    // saves its checkpoint).
    let run_stop = stop.child_token();
    let one = plans.len() == 1;
    // Every shard of a cluster source in this run: keys a reshard moves are matched across them.
    let migrations = (!one).then(|| Arc::new(Migrations::default()));
    let local = tokio::task::LocalSet::new();
    let outcome = local
        .run_until(async {
            let mut tasks = tokio::task::JoinSet::new();
            for (index, (plan, (state, checkpoint))) in plans.into_iter().zip(opened).enumerate() {
                let span = if plan.label.is_empty() {
                    tracing::Span::none()
                } else {
                    tracing::info_span!("shard", shard = %plan.label)
                };
                let run = StreamRun {
                    args: args.clone(),
                    source: source.clone(),
                    target: target.clone(),
                    info: info.clone(),
                    plan,
                    state,
                    checkpoint,
                    streams: streams.clone(),
                    stop: run_stop.clone(),
                    bar: one,
                    migrations: migrations.clone().map(|m| (m, index)),
                };
                tasks.spawn_local(run_stream(run).instrument(span));
            }
            let mut first: Option<Fatal> = None;
            while let Some(done) = tasks.join_next().await {
                let r = done
                    .map_err(|e| Fatal::other(format!("a stream's task failed: {e}")))
                    .and_then(|r| r);
                if let Err(e) = r {
                    run_stop.cancel();
                    first.get_or_insert(e);
                }
            }
            first.map_or(Ok(()), Err)
        })
        .await;
    side_stop.cancel();
    for t in reports {
        let _ = t.await;
    }
    outcome
}

/// One source stream to follow (the source, or one shard of a cluster source) and what it
/// needs of the run.
struct StreamRun {
    args: Arc<SyncArgs>,
    source: Endpoint,
    target: Endpoint,
    info: SourceInfo,
    plan: shard::Plan,
    state: StateDir,
    checkpoint: Option<Checkpoint>,
    streams: Arc<Streams>,
    stop: CancellationToken,
    /// Show the snapshot's progress bar (one stream only).
    bar: bool,
    /// Keys moving between the shards followed (a whole cluster source), and this one's index.
    migrations: Option<(Arc<Migrations>, usize)>,
}

/// Follows one stream until stopped: its destination connections, link, spool, checkpoint,
/// heartbeat and status, registered with the run's reports.
async fn run_stream(run: StreamRun) -> Result<(), Fatal> {
    let StreamRun {
        args,
        source,
        target,
        info,
        plan,
        state,
        checkpoint,
        streams,
        stop,
        bar: show_bar,
        migrations,
    } = run;
    let args = &*args;
    let timeout = Duration::from_secs(args.apply.connect_timeout.max(1));
    let follower = match &plan.spec {
        Some(spec) => {
            let f = ShardFollower::resolve(&source, spec, args.source_read_from, timeout)
                .await
                .map_err(Fatal::source)?;
            let slots: usize = f.shard.slot_set().iter().filter(|s| **s).count();
            tracing::info!(master = %f.master_endpoint(), id = %f.shard.master.id, replicas = f.shard.replicas.len(), slots, link = %f.link_endpoint(), "source shard");
            Some(f)
        }
        None => None,
    };
    let source_id = plan.source_id.clone();
    let dest = apply::open(
        &args.apply,
        Duration::from_secs(args.retry_connect.saturating_mul(60)),
    )
    .await?;
    let mut pipeline = dest.pipeline();
    let Destination {
        caps,
        mut sink,
        batch,
        dbs,
        ..
    } = dest;
    if let replay::dest::Sink::Cluster(c) = &mut sink {
        c.set_scratch_prefix(&args.heartbeat_prefix);
    }
    let state_keys = state_keys(args, follower.as_ref());
    if args.delivery == Delivery::ExactlyOnce {
        sink.set_exactly_once(Some(state_keys.clone()));
    }
    let key_nodes = sink.nodes();
    let applied = sink.applied();
    if let Some((m, index)) = &migrations {
        m.register(*index, applied.clone());
    }
    if let Some(dbs) = &dbs {
        if let Err(e) = check_source_dbs(&info, &dbs.0) {
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
        config_lines(args, &source, &target),
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
    streams.add(Stream {
        label: plan.label.clone(),
        status: status.clone(),
        cut: admin::CutoverSource {
            at: master_at.clone(),
            timeout,
        },
    });
    if args.delivery == Delivery::ExactlyOnce {
        let _ = status.state_keys.set((key_nodes, state_keys.clone()));
    }
    let mut side_tasks = Vec::new();
    side_tasks.push(tokio::spawn(heartbeat::run(
        master_at.clone(),
        timeout,
        heartbeats.clone(),
        status.clone(),
        side_stop.clone(),
    )));
    if show_bar {
        side_tasks.push(tokio::spawn(bar::run(status.clone(), side_stop.clone())));
    }
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
        migrations,
        status: status.clone(),
        heartbeats,
        state_keys,
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
    let outcome = follow::follow(args, cfg, &mut session, sink, resume, stream).await;
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
        cross_slot = route.cross_slot,
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
    streams: &Arc<Streams>,
    stop: &CancellationToken,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Fatal> {
    let mut tasks = Vec::new();
    if let Some(addr) = listen_addr(&args.metrics_addr, "--metrics-addr")? {
        let handle = metrics::install().map_err(Fatal::other)?;
        tasks.push(
            http::serve(addr, streams.clone(), handle, stop.clone())
                .await
                .map_err(Fatal::other)?,
        );
    }
    if let Some(addr) = listen_addr(&args.admin_addr, "--admin-addr")? {
        let auth = admin::CutoverAuth::new(
            args.admin_password.clone(),
            args.admin_cutover_without_password,
            &addr,
        )
        .map_err(Fatal::other)?;
        tasks.push(
            admin::serve(addr, streams.clone(), auth, stop.clone())
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

/// The state keys of this stream on the destination (one set per shard of a cluster source,
/// named by the shard's lowest slot).
fn state_keys(args: &SyncArgs, follower: Option<&ShardFollower>) -> StateKeys {
    let stream = follower
        .and_then(|f| f.shard.slot_set().iter().position(|s| *s))
        .map(|slot| format!("shard-{slot}:"))
        .unwrap_or_default();
    StateKeys::for_stream(&args.state_key_prefix, &stream)
}
