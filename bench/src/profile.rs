//! `--profile DIR`: samples the whole machine with `perf record -a` (symbols only, no call
//! stacks) while a sync runs, then prints how the samples split over processes (idle included)
//! and the top symbols of the processes that matter, so a ratio comes with its explanation.
//! System-wide sampling also catches threads started after the run began (replicant's spool
//! reader) and the source's fork child. The recordings stay in DIR for `perf report -i`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Lines printed of the per-process split, and symbols per process.
const TOP_PROCESSES: usize = 8;
const TOP_SYMBOLS: usize = 15;

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Turns profiling on for the whole run, recordings going to `dir`.
pub fn enable(dir: PathBuf) {
    std::fs::create_dir_all(&dir).expect("profile directory");
    let _ = DIR.set(dir);
}

/// A system-wide `perf record`.
pub struct Recording {
    child: Child,
    data: PathBuf,
    label: String,
}

/// Starts sampling every CPU into `DIR/<label>.perf.data`, or `None` without `--profile`.
/// Returns once perf is recording (its data file exists), so nothing early is missed.
pub fn record(label: &str) -> Option<Recording> {
    let dir: &Path = DIR.get()?;
    let data = dir.join(format!("{label}.perf.data"));
    let _ = std::fs::remove_file(&data);
    let child = Command::new("perf")
        .args(["record", "-q", "-a", "-F", "499", "-o"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("perf (apt-get install linux-perf)");
    let start = Instant::now();
    while !data.exists() && start.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(10));
    }
    Some(Recording {
        child,
        data,
        label: label.to_string(),
    })
}

impl Recording {
    /// Stops sampling; prints the split over processes, then the top symbols of each of
    /// `processes` (pid, name).
    pub fn report(mut self, processes: &[(u32, &str)]) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        println!(
            "\nprofile of the {} run ({}), processes by share of the samples on {} CPUs (a VM's idle CPU is \
             seldom sampled, so shares are of busy time):",
            self.label,
            self.data.display(),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        self.print(
            &["--percentage", "absolute", "--sort", "pid"],
            TOP_PROCESSES,
        );
        for (pid, name) in processes {
            println!("  {name} (pid {pid}), top symbols, share of its own samples:");
            self.print(
                &[
                    "--pid",
                    &pid.to_string(),
                    "--percentage",
                    "relative",
                    "--sort",
                    "dso,symbol",
                ],
                TOP_SYMBOLS,
            );
        }
    }

    fn print(&self, args: &[&str], top: usize) {
        let out = Command::new("perf")
            .args(["report", "--stdio", "-q", "-i"])
            .arg(&self.data)
            .args(args)
            .stderr(Stdio::null())
            .output();
        match out {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout);
                for line in text
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                    .take(top)
                {
                    // perf pads its columns far to the right.
                    println!("    {}", line.trim_end().trim_end_matches(['-', ' ']));
                }
            }
            Err(e) => println!("    perf report failed: {e}"),
        }
    }
}
