//! Stopping a compile from another thread: the base pull or a push check beside it failed,
//! and cargo is stopped the way each host allows.

use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Stops a compile from another thread: the base pull or a push check beside it failed, and
/// the user should hear so now rather than after a minute of compiling.
#[derive(Debug, Default)]
pub struct Cancel {
    /// cargo while it runs; cleared under the lock once it is reaped, so a recycled id is
    /// never signalled.
    cargo: Mutex<Option<Running>>,
    cancelled: AtomicBool,
}

impl Cancel {
    /// Stops the compile: cargo is stopped (SIGTERM on unix), or is never started.
    pub fn cancel(&self) {
        let cargo = self.cargo.lock().expect("cancel lock");
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(cargo) = &*cargo {
            cargo.stop();
        }
    }

    pub(super) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Records a started cargo; stops it at once if the compile was cancelled meanwhile.
    pub(super) fn started(&self, child: &Child) {
        let mut cargo = self.cargo.lock().expect("cancel lock");
        *cargo = Running::of(child);
        if self.is_cancelled() {
            if let Some(cargo) = &*cargo {
                cargo.stop();
            }
        }
    }

    pub(super) fn ended(&self) {
        *self.cargo.lock().expect("cancel lock") = None;
    }
}

/// A started cargo as another thread can stop it, while the thread that started it waits on
/// its `Child`: its process id.
#[cfg(unix)]
#[derive(Debug)]
struct Running(libc::pid_t);

#[cfg(unix)]
impl Running {
    fn of(child: &Child) -> Option<Running> {
        libc::pid_t::try_from(child.id()).ok().map(Running)
    }

    /// SIGTERM, not SIGKILL: cargo then stops its rustc and build scripts and releases the
    /// target dir's lock itself.
    fn stop(&self) {
        // SAFETY: kill(2) with a process id we spawned and have not reaped yet.
        unsafe {
            libc::kill(self.0, libc::SIGTERM);
        }
    }
}

/// A started cargo as another thread can stop it, while the thread that started it waits on
/// its `Child`: a handle of its own to the process, which also keeps the id from being reused.
#[cfg(windows)]
#[derive(Debug)]
struct Running(std::os::windows::io::OwnedHandle);

#[cfg(windows)]
impl Running {
    fn of(child: &Child) -> Option<Running> {
        use std::os::windows::io::AsHandle;
        child.as_handle().try_clone_to_owned().ok().map(Running)
    }

    /// What `Child::kill` does (Windows has no SIGTERM): cargo puts itself and every rustc it
    /// starts in a job object that ends them all when cargo ends.
    fn stop(&self) {
        use std::os::windows::io::AsRawHandle;
        // SAFETY: TerminateProcess on a process handle we own.
        unsafe {
            windows_sys::Win32::System::Threading::TerminateProcess(self.0.as_raw_handle(), 1);
        }
    }
}

/// Elsewhere std offers no way to stop a process from a thread that does not own its `Child`:
/// a cancelled compile then runs to its end, and its result is dropped.
#[cfg(not(any(unix, windows)))]
#[derive(Debug)]
struct Running;

#[cfg(not(any(unix, windows)))]
impl Running {
    fn of(_: &Child) -> Option<Running> {
        None
    }

    fn stop(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn cancel_stops_a_running_process_and_one_not_yet_started() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let cancel = Cancel::default();
        cancel.started(&child);
        let started = std::time::Instant::now();
        cancel.cancel();
        let status = child.wait().unwrap();
        cancel.ended();
        assert!(!status.success(), "terminated by the signal");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));

        // Cancelled before cargo started: the next process is stopped as soon as it is known.
        let mut late = Command::new("sleep").arg("30").spawn().unwrap();
        cancel.started(&late);
        assert!(!late.wait().unwrap().success());
    }
}
