//! The command line: `replicant sync`, `replicant load` and `replicant verify`, their flags
//! and defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use replay::net::TlsOptions;

use crate::config::SideFlags;

#[derive(Debug, Parser)]
#[command(
    name = "replicant",
    version,
    args_override_self = true,
    about = "Migrate a live Redis to another Redis: replicant registers with the source as a \
             replica, copies its snapshot and then follows its replication stream."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing syntax), e.g. `info`, `debug`, `replay=debug`. Also RUST_LOG.
    #[arg(long, global = true, default_value = "info", env = "RUST_LOG")]
    pub log: String,
    /// Log lines as text or as JSON objects (one per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy the source's snapshot to the target, then replay its writes until SIGINT/SIGTERM.
    Sync(Box<SyncArgs>),
    /// Check the pair before a migration: a table of pass/warn/fail with reasons; exit code 0
    /// (all pass), 1 (warnings), 2 (a failure). Takes the same options as `sync`.
    Check(Box<SyncArgs>),
    /// Ask a running `sync` (on its admin port) to cut over: pause writes on the source, wait
    /// until the destination has applied everything, report "ready" with the offset and the
    /// pause. Exit 0 when ready.
    Cutover(CutoverArgs),
    /// Replay an RDB file onto the target and exit.
    Load(Box<LoadArgs>),
    /// Compare the source and the target key by key, both ways. Exit status: 0 equal,
    /// 1 different, 2 error.
    Verify(Box<VerifyArgs>),
    /// Remove replicant's state keys (`<PREFIX>applied…`, `<PREFIX>floor:…`) from the target
    /// after an abandoned run (a ready cutover removes them itself). Run it once no sync
    /// writes to the target any more.
    Cleanup(Box<CleanupArgs>),
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// The destination: redis[s]://[[user]:password@]host[:port], a standalone server or any
    /// node of a Redis Cluster. The password may instead come from REPLICANT_TARGET_PASSWORD.
    #[arg(long, value_name = "URL")]
    pub target: String,
    #[command(flatten)]
    pub target_side: TargetSide,
    /// The sync's --state-key-prefix.
    #[arg(long, default_value = "replicant:", value_name = "PREFIX")]
    pub state_key_prefix: String,
    /// Connect timeout.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub connect_timeout: u64,
}

/// Options of the destination writer and the planner, shared by `sync` and `load`.
#[derive(Debug, Args, Clone)]
pub struct ApplyArgs {
    /// Destination: redis[s]://[[user]:password@]host[:port] (rediss: TLS). The password may
    /// instead come from REPLICANT_TARGET_PASSWORD.
    #[arg(long, value_name = "URL")]
    pub target: String,
    #[command(flatten)]
    pub target_side: TargetSide,
    /// Values whose RDB form is larger than this are rewritten as ordinary commands in bounded
    /// batches instead of one RESTORE. A value is held whole (in the read buffer) until it is
    /// known to be smaller, so this bounds replicant's memory too.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub restore_max_bytes: usize,
    /// Elements per rewritten command at most.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub batch_elements: usize,
    /// Commands in flight to the destination at most.
    #[arg(long, default_value_t = 8192, value_name = "N")]
    pub window_commands: usize,
    /// Bytes in flight to the destination at most.
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    pub window_bytes: usize,
    /// Bytes queued for the destination writer at most, on top of the in-flight window.
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    pub queue_bytes: usize,
    /// Cluster destinations (which only have db 0): also take these source dbs into db 0,
    /// e.g. `3:0,5:0`. Without it, a source with keys outside db 0 is refused.
    #[arg(long, value_name = "SRC:0[,SRC:0...]")]
    pub db_map: Option<String>,
    /// Cluster destinations: take every source db into this db (only 0 exists in a cluster).
    #[arg(long, value_name = "DB", conflicts_with = "db_map")]
    pub all_dbs_to: Option<u64>,
    /// Cluster destinations: a write that cannot be applied there at all (a SWAPDB of a db
    /// the cluster takes with one it does not, a MOVE into db 0 from a db not copied, a
    /// command the destination does not know) stops the run (`stop`), or is logged with its
    /// keys and counted as `unsplittable` (`log`: the destination then differs from the
    /// source).
    #[arg(long, value_enum, default_value_t = OnUnsplittable::Stop, value_name = "POLICY")]
    pub on_unsplittable: OnUnsplittable,
    /// Connect timeout for either side.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub connect_timeout: u64,
    /// How long the destination may answer LOADING, BUSY, TRYAGAIN, CLUSTERDOWN or
    /// MASTERDOWN (commands are sent again, with backoff) before the run stops.
    #[arg(long, default_value_t = 10, value_name = "MINUTES")]
    pub retry_errors: u64,
    /// A destination node that answers nothing for this long while replies are due is
    /// probed on a new connection: answered there, the old connection is treated as lost;
    /// answered nowhere (a hung node), replicant waits for it (up to --retry-connect) and
    /// says so.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub target_timeout: u64,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Source: redis[s]://[[user]:password@]host[:port] (rediss: TLS), a standalone server or
    /// any node of a Redis Cluster. The password may instead come from
    /// REPLICANT_SOURCE_PASSWORD.
    #[arg(long, value_name = "URL")]
    pub source: String,
    #[command(flatten)]
    pub source_side: SourceSide,
    #[command(flatten)]
    pub apply: ApplyArgs,
    /// A Redis Cluster source: follow only the shard that this node (its master or one of its
    /// replicas, by HOST:PORT or by node id) belongs to — through failovers: the shard, not the
    /// node. One replicant per source shard, e.g. a sidecar next to each master; without it,
    /// one replicant follows every master shard of the cluster.
    #[arg(long, value_name = "ADDR|NODE-ID")]
    pub source_shard: Option<String>,
    /// Which node of the shard the link reads: `master`, or `replica` (a healthy replica of
    /// the shard when there is one, else its master).
    #[arg(long, value_enum, default_value_t = ReadFrom::Master, value_name = "ROLE")]
    pub source_read_from: ReadFrom,
    /// Port announced to the source with REPLCONF listening-port (informational).
    #[arg(long, default_value_t = 0, value_name = "PORT")]
    pub listening_port: u16,
    /// Give up the source link when the source sends nothing for this long (like a replica's
    /// repl-timeout; the source pings its replicas every 10 s).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub source_timeout: u64,
    /// After the source link is lost, keep trying to reconnect (and continue the stream with
    /// PSYNC) for this many minutes.
    #[arg(long, default_value_t = 720, value_name = "MINUTES")]
    pub retry_connect: u64,
    /// On SIGINT/SIGTERM, wait at most this long for the destination to apply what is in flight.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub grace: u64,
    /// Where the checkpoint (replication id and applied offset, for a restart to continue the
    /// stream) and the spool's files are kept. One directory per source/target pair.
    #[arg(long, default_value = "replicant-state", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// When the source cannot continue the stream and sends its snapshot again: `flush` empties
    /// the destination first (FLUSHALL), so keys deleted on the source meanwhile go too;
    /// `keep` leaves the destination's keys and reports how many are not in the new snapshot.
    /// The first copy never flushes.
    #[arg(long, value_enum, default_value_t = OnFullResync::Flush, value_name = "POLICY")]
    pub on_full_resync: OnFullResync,
    /// Bytes from the source held in memory when the destination is slower than the source,
    /// before spooling to disk.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    pub spool_memory: usize,
    /// Bytes spooled to disk at most; past it, reading from the source pauses.
    #[arg(long, default_value_t = 4 << 30, value_name = "BYTES")]
    pub spool_max: u64,
    /// Prometheus metrics at /metrics, and /healthz, /readyz (HTTP). `off` disables it; port 0
    /// picks a free one (the log says which).
    #[arg(long, default_value = "127.0.0.1:9477", value_name = "ADDR")]
    pub metrics_addr: String,
    /// The RESP admin port: `redis-cli -p PORT INFO`. `off` disables it; port 0 picks one.
    #[arg(long, default_value = "127.0.0.1:9478", value_name = "ADDR")]
    pub admin_addr: String,
    /// The password the admin port asks (`AUTH <password>`) before `CUTOVER`, which pauses
    /// writes on the source. Without one, `CUTOVER` is refused, unless
    /// --admin-cutover-without-password on a loopback --admin-addr.
    #[arg(
        long,
        env = "REPLICANT_ADMIN_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub admin_password: Option<String>,
    /// Allow `CUTOVER` on the admin port without a password (only with a loopback
    /// --admin-addr: anyone who can reach it can pause the source).
    #[arg(long)]
    pub admin_cutover_without_password: bool,
    /// /readyz answers 200 while streaming with the lag at most this many bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub ready_lag: u64,
    /// Do not write a heartbeat key to the source every second (lag is then in bytes only).
    #[arg(long)]
    pub no_heartbeat: bool,
    /// Heartbeat keys are `<PREFIX>heartbeat:<id>` (never copied to the destination).
    #[arg(long, default_value = "replicant:", value_name = "PREFIX")]
    pub heartbeat_prefix: String,
    /// `exactly-once`: the stream is applied in transactions that record, on the destination,
    /// the source offset they complete (`<PREFIX>applied…` keys, see --state-key-prefix); after
    /// a restart, a lost connection or a destination failover, what the destination holds is
    /// read back and never applied twice. `at-least-once`: plain pipelined writes; a restart
    /// may apply again what was in flight (counters counted twice, list elements doubled).
    #[arg(long, value_enum, default_value_t = Delivery::ExactlyOnce, value_name = "MODE")]
    pub delivery: Delivery,
    /// replicant's state keys on the destination are `<PREFIX>applied`,
    /// `<PREFIX>applied:{tag}` and `<PREFIX>floor:{tag}` (with `shard-<slot>:` after the
    /// prefix for each shard of a cluster source). Never copied or compared; removed by a
    /// ready cutover and by `replicant cleanup`.
    #[arg(long, default_value = "replicant:", value_name = "PREFIX")]
    pub state_key_prefix: String,
    /// Do not run the checks of `replicant check` before syncing (a failing one stops the run).
    #[arg(long)]
    pub skip_check: bool,
    /// A summary line every this many seconds (0: none).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub status_interval: u64,
}

/// How the stream is delivered to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Delivery {
    ExactlyOnce,
    AtLeastOnce,
}

/// Which node of a source shard the link reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadFrom {
    Master,
    Replica,
}

/// What a cluster destination does with a write it cannot apply at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnUnsplittable {
    Stop,
    Log,
}

/// What a re-copy of the snapshot does with the destination's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnFullResync {
    Flush,
    Keep,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The RDB file.
    pub file: PathBuf,
    #[command(flatten)]
    pub apply: ApplyArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Source: redis[s]://[[user]:password@]host[:port] (rediss: TLS), a standalone server or
    /// any node of a cluster. The password may instead come from REPLICANT_SOURCE_PASSWORD.
    #[arg(long, value_name = "URL")]
    pub source: String,
    #[command(flatten)]
    pub source_side: SourceSide,
    /// Target: as --source. The password may instead come from REPLICANT_TARGET_PASSWORD.
    #[arg(long, value_name = "URL")]
    pub target: String,
    #[command(flatten)]
    pub target_side: TargetSide,
    /// full: every value (big keys in chunks); outline: type, length and TTL only; sample:
    /// like full, for a share of the keys (--ratio).
    #[arg(long, value_enum, default_value_t = VerifyMode::Full)]
    pub mode: VerifyMode,
    /// The share of keys checked with --mode sample, above 0 and at most 1 (default 0.1).
    #[arg(long, value_name = "RATIO")]
    pub ratio: Option<f64>,
    /// Which keys --mode sample picks (the same seed picks the same keys).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// The largest difference between the two sides' TTLs that still counts as equal
    /// (e.g. 500ms, 2s; a bare number is seconds).
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub ttl_tolerance: Duration,
    /// Keys that differ are checked again this many times (a live source converges); only
    /// keys that differ every time are reported. 0: report the first pass.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub rounds: u32,
    /// The pause before each re-check round.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub round_wait: Duration,
    /// Commands per second sent to each side at most (0: no limit).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_ops: u64,
    /// Write a JSON report listing every difference to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Differing keys listed on stdout at most.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub show: usize,
    /// Compare only this db (against a cluster: the standalone side's db N with the cluster's
    /// db 0). Default: every db holding keys.
    #[arg(long, value_name = "N")]
    pub db: Option<u64>,
    /// A stream group's entries-read must be equal; by default the target may not know it, or
    /// know a lower count, as every replica fed the replication stream.
    #[arg(long)]
    pub strict_entries_read: bool,
    /// Connect timeout, either side.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub connect_timeout: u64,
    /// replicant's heartbeat keys on the source, `<PREFIX>heartbeat:*`, are not compared.
    #[arg(long, default_value = "replicant:", value_name = "PREFIX")]
    pub heartbeat_prefix: String,
    /// replicant's state keys on the target (the sync's --state-key-prefix) are not compared.
    #[arg(long, default_value = "replicant:", value_name = "PREFIX")]
    pub state_key_prefix: String,
}

/// How much of each key `verify` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyMode {
    Full,
    Outline,
    Sample,
}

/// A duration: `500ms`, `2s`, `1.5s`, `1m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 500ms, 2s, 1m)"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        other => return Err(format!("{text:?}: unknown unit {other:?} (ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}

const SOURCE_HEADING: &str = "Source user and TLS";
const TARGET_HEADING: &str = "Target user and TLS";

/// The source's ACL user and TLS options.
#[derive(Debug, Args, Clone)]
pub struct SourceSide {
    /// ACL user for the source, when its URL names none.
    #[arg(help_heading = SOURCE_HEADING, long, env = "REPLICANT_SOURCE_USER", value_name = "NAME")]
    pub source_user: Option<String>,
    /// TLS with the source (as a rediss:// URL does).
    #[arg(help_heading = SOURCE_HEADING, long)]
    pub source_tls: bool,
    /// PEM file of the CA certificate(s) to trust for the source (a bundle may hold several);
    /// without it, the system's root certificates.
    #[arg(help_heading = SOURCE_HEADING, long, value_name = "FILE")]
    pub source_tls_ca: Option<PathBuf>,
    /// PEM file of a client certificate for the source (servers with tls-auth-clients yes).
    #[arg(help_heading = SOURCE_HEADING, long, value_name = "FILE", requires = "source_tls_key")]
    pub source_tls_cert: Option<PathBuf>,
    /// PEM file of the private key of --source-tls-cert.
    #[arg(help_heading = SOURCE_HEADING, long, value_name = "FILE", requires = "source_tls_cert")]
    pub source_tls_key: Option<PathBuf>,
    /// The name the source's certificate must be valid for (default: the URL's host).
    #[arg(help_heading = SOURCE_HEADING, long, value_name = "NAME")]
    pub source_tls_server_name: Option<String>,
    /// Do not verify the source's certificate (encrypted, not authenticated; logs a warning).
    #[arg(help_heading = SOURCE_HEADING, long)]
    pub source_tls_insecure: bool,
}

/// The target's ACL user and TLS options.
#[derive(Debug, Args, Clone)]
pub struct TargetSide {
    /// ACL user for the target (every node of a cluster), when its URL names none.
    #[arg(help_heading = TARGET_HEADING, long, env = "REPLICANT_TARGET_USER", value_name = "NAME")]
    pub target_user: Option<String>,
    /// TLS with the target (as a rediss:// URL does).
    #[arg(help_heading = TARGET_HEADING, long)]
    pub target_tls: bool,
    /// PEM file of the CA certificate(s) to trust for the target (a bundle may hold several);
    /// without it, the system's root certificates.
    #[arg(help_heading = TARGET_HEADING, long, value_name = "FILE")]
    pub target_tls_ca: Option<PathBuf>,
    /// PEM file of a client certificate for the target (servers with tls-auth-clients yes).
    #[arg(help_heading = TARGET_HEADING, long, value_name = "FILE", requires = "target_tls_key")]
    pub target_tls_cert: Option<PathBuf>,
    /// PEM file of the private key of --target-tls-cert.
    #[arg(help_heading = TARGET_HEADING, long, value_name = "FILE", requires = "target_tls_cert")]
    pub target_tls_key: Option<PathBuf>,
    /// The name the target's certificates must be valid for (default: the host connected to:
    /// the URL's, or each cluster node's).
    #[arg(help_heading = TARGET_HEADING, long, value_name = "NAME")]
    pub target_tls_server_name: Option<String>,
    /// Do not verify the target's certificates (encrypted, not authenticated; logs a warning).
    #[arg(help_heading = TARGET_HEADING, long)]
    pub target_tls_insecure: bool,
}

impl SourceSide {
    pub fn flags(&self) -> SideFlags {
        SideFlags {
            user: self.source_user.clone(),
            tls: self.source_tls,
            tls_options: TlsOptions {
                ca: self.source_tls_ca.clone(),
                cert: self.source_tls_cert.clone(),
                key: self.source_tls_key.clone(),
                server_name: self.source_tls_server_name.clone(),
                insecure: self.source_tls_insecure,
            },
        }
    }
}

impl TargetSide {
    pub fn flags(&self) -> SideFlags {
        SideFlags {
            user: self.target_user.clone(),
            tls: self.target_tls,
            tls_options: TlsOptions {
                ca: self.target_tls_ca.clone(),
                cert: self.target_tls_cert.clone(),
                key: self.target_tls_key.clone(),
                server_name: self.target_tls_server_name.clone(),
                insecure: self.target_tls_insecure,
            },
        }
    }
}

#[derive(Debug, Args)]
pub struct CutoverArgs {
    /// The running sync's admin port (its --admin-addr). Repeat it (or give a comma-separated
    /// list) for a cluster source with one replicant per shard: every shard's master is paused
    /// at once, and the cutover is ready only when every shard is; if one fails, the others
    /// are unpaused.
    #[arg(
        long,
        default_value = "127.0.0.1:9478",
        value_name = "ADDR",
        value_delimiter = ',',
        num_args = 1
    )]
    pub admin: Vec<String>,
    /// How long writes on the source stay paused (CLIENT PAUSE … WRITE); the destination must
    /// catch up within 80 % of it, else the source is unpaused and the cutover fails.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub pause_timeout: u64,
    /// Refuse to start while the lag is above this many bytes.
    #[arg(long, default_value_t = 10 << 20, value_name = "BYTES")]
    pub max_lag: u64,
    /// Unpause the source as soon as the destination is ready (abort path, or a rehearsal).
    #[arg(long)]
    pub resume_source: bool,
    /// The sync's --admin-password (sent with AUTH before CUTOVER).
    #[arg(
        long,
        env = "REPLICANT_ADMIN_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub admin_password: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("").is_err());
    }
}
