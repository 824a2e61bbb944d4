//! Timing a child process and reading its peak memory from the kernel.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{fail, show};

/// One timed run of a command.
pub struct Run {
    pub secs: f64,
    /// `ru_maxrss` from `wait4`: the largest resident set of the child or of any descendant it
    /// waited for (so a build's figure includes cargo's when cargo was the larger).
    pub max_rss_kib: u64,
    /// The child's own peak (`VmHWM`), read from /proc while it runs: what stevedore itself
    /// holds, without cargo, rustc or the linker.
    pub own_peak_kib: u64,
    pub stdout: Vec<u8>,
}

/// Runs `cmd` to completion, stderr into `log`, and returns its wall time, peak RSS and
/// stdout. Exits the bench naming the command and the log if it fails.
pub fn run(cmd: &mut Command, log: &Path) -> Run {
    let log_file = File::create(log)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", log.display())));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file);
    let started = Instant::now();
    // Reaped below by wait4, which Child::wait cannot replace: it drops the rusage.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot run `{}`: {e}", show(cmd))));
    let watcher = watch_peak(child.id());
    let mut stdout = Vec::new();
    // Read before waiting: a child blocked on a full pipe would never exit.
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_end(&mut stdout);
    }
    let (status, max_rss_kib) = wait4(child.id());
    let own_peak_kib = watcher.join().expect("the watcher does not panic");
    let secs = started.elapsed().as_secs_f64();
    if status != 0 {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        fail(&format!(
            "`{}` failed (wait status {status}); its log {}:\n{}",
            show(cmd),
            log.display(),
            tail.join("\n")
        ));
    }
    Run {
        secs,
        max_rss_kib,
        own_peak_kib,
        stdout,
    }
}

/// Polls `/proc/PID/status` for `VmHWM` (a high-water mark, so only its last value matters)
/// until the process is gone or reaped; returns the last value seen, in KiB.
fn watch_peak(pid: u32) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let path = format!("/proc/{pid}/status");
        let mut peak = 0;
        while let Ok(status) = std::fs::read_to_string(&path) {
            let hwm = status.lines().find_map(|l| {
                let kib = l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?;
                kib.trim().parse::<u64>().ok()
            });
            // A zombie has no memory left to report: keep the last live value.
            match hwm {
                Some(kib) => peak = peak.max(kib),
                None => break,
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        peak
    })
}

/// Reaps `pid` with `wait4`, which (unlike `Child::wait`) also returns its resource usage.
fn wait4(pid: u32) -> (i32, u64) {
    let pid = libc::pid_t::try_from(pid).expect("pids fit pid_t");
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in; zeroed is a valid initial value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers refer to live, writable locals.
        let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if got == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            fail(&format!("wait4({pid}) failed: {err}"));
        }
    }
    (status, u64::try_from(usage.ru_maxrss).unwrap_or(0))
}

/// The median and minimum of a set of samples.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
}

impl Stat {
    pub fn of(samples: &[f64]) -> Stat {
        assert!(!samples.is_empty(), "a statistic needs at least one sample");
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Stat {
            median,
            min: sorted[0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_min() {
        let s = Stat::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min), (2.0, 1.0));
        let s = Stat::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.median, s.min), (2.5, 1.0));
    }

    #[test]
    fn measures_a_child() {
        let dir = std::env::temp_dir().join(format!("xtask-measure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = run(
            Command::new("sh").args(["-c", "echo hi; sleep 0.2"]),
            &dir.join("log"),
        );
        assert_eq!(r.stdout, b"hi\n");
        assert!(r.secs >= 0.2, "{} s", r.secs);
        assert!(r.max_rss_kib > 0);
        assert!(r.own_peak_kib > 0 && r.own_peak_kib <= r.max_rss_kib);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
