//! `replicant`: migrate a live Redis to another Redis by registering with the source as a
//! replica, copying its snapshot and following its replication stream. The work is in the
//! library (`src/lib.rs`, which lists the modules); this is the command line's entry point.
#![forbid(unsafe_code)]

use replicant::{check, cleanup, cli, cutover, load, shutdown, sync, verify};
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        cli::LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        cli::LogFormat::Json => fmt.json().init(),
    }
    // One thread: the work is a pipeline of I/O-bound stages that hand each other batches;
    // on one thread they do so without cross-thread wake-ups, and the cores stay with the
    // Redis servers on either side.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("replicant: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // (exit code on success, exit code on failure)
    let (result, fail_code) = rt.block_on(async {
        let stop = CancellationToken::new();
        shutdown::on_signals(stop.clone());
        match cli.command {
            cli::Command::Sync(a) => (sync::run(*a, stop).await.map(|()| 0), 1),
            cli::Command::Check(a) => (check::run(&a).await, 2),
            cli::Command::Cutover(a) => (cutover::run(&a).await.map(|()| 0), 1),
            cli::Command::Load(a) => (load::run(*a, stop).await.map(|()| 0), 1),
            cli::Command::Cleanup(a) => (cleanup::run(&a).await.map(|()| 0), 1),
            // 0 equal, 1 different, 2 could not tell (an error).
            cli::Command::Verify(a) => {
                (verify::run(*a, stop).await.map(|equal| u8::from(!equal)), 2)
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("replicant: {e}");
            ExitCode::from(fail_code)
        }
    }
}
