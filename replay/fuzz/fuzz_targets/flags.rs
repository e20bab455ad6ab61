//! The command line of the `replicant` binary (through its library): the input split at NUL
//! bytes into arguments for `replicant …`; what clap accepts then has its URLs parsed and its
//! db map read, as `sync` would before connecting. Never a panic, whatever the bytes. (clap
//! builds the whole command for each input: a few hundred runs a second.)
#![no_main]

use std::ffi::OsString;

use libfuzzer_sys::fuzz_target;
use replicant::cli::{Cli, Command};
use replicant::config::parse_endpoint;

use clap::Parser;

fuzz_target!(|data: &[u8]| {
    let args = std::iter::once(OsString::from("replicant")).chain(
        data.split(|b| *b == 0)
            .map(|a| OsString::from(String::from_utf8_lossy(a).into_owned())),
    );
    let Ok(cli) = Cli::try_parse_from(args) else {
        return;
    };
    match cli.command {
        Command::Sync(a) | Command::Check(a) => {
            let _ = parse_endpoint(&a.source, None);
            let _ = parse_endpoint(&a.apply.target, None);
            let _ = replicant::apply::db_map(&a.apply);
        }
        Command::Load(a) => {
            let _ = parse_endpoint(&a.apply.target, None);
            let _ = replicant::apply::db_map(&a.apply);
        }
        Command::Verify(a) => {
            let _ = parse_endpoint(&a.source, None);
            let _ = parse_endpoint(&a.target, None);
        }
        Command::Cleanup(a) => {
            let _ = parse_endpoint(&a.target, None);
        }
        Command::Cutover(_) => {}
    }
});
