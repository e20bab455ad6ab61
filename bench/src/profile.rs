//! `--profile DIR`: samples a process of a run with `perf record` (user and kernel stacks off,
//! symbols only) and prints where its CPU went, so a ratio comes with its explanation.
//! The recordings stay in DIR for `perf report -i`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// How many symbols of each recording are printed.
const TOP: usize = 20;

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Turns profiling on for the whole run, recordings going to `dir`.
pub fn enable(dir: PathBuf) {
    std::fs::create_dir_all(&dir).expect("profile directory");
    let _ = DIR.set(dir);
}

/// A `perf record` attached to one process.
pub struct Recording {
    child: Child,
    data: PathBuf,
    label: String,
}

/// Starts sampling `pid` into `DIR/<label>.perf.data`, or `None` without `--profile`.
/// Returns once perf is attached (its data file exists), so nothing early is missed.
pub fn record(pid: u32, label: &str) -> Option<Recording> {
    let dir: &Path = DIR.get()?;
    let data = dir.join(format!("{label}.perf.data"));
    let _ = std::fs::remove_file(&data);
    let child = Command::new("perf")
        .args(["record", "-q", "-F", "499", "-o"])
        .arg(&data)
        .args(["-p", &pid.to_string()])
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
    /// Stops sampling and prints the top symbols by share of samples.
    pub fn report(mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let out = Command::new("perf")
            .args(["report", "--stdio", "-q", "--sort", "dso,symbol", "-i"])
            .arg(&self.data)
            .stderr(Stdio::null())
            .output();
        println!("\nprofile of {} ({}):", self.label, self.data.display());
        match out {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout);
                for line in text
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                    .take(TOP)
                {
                    println!("    {}", line.trim_end());
                }
            }
            Err(e) => println!("    perf report failed: {e}"),
        }
    }
}
