//! A private Docker engine (Debian `docker.io` 20.10) for tests that load or run images with
//! docker.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::tools::{log_tail, output_within, require_file};

/// Debian's daemon and the CLI of the same version; `/usr/local/bin/docker` (a newer CLI) may come
/// first on PATH and speaks a newer API than this daemon.
const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to queue behind another test's engine.
const LOCK_TIMEOUT: Duration = Duration::from_secs(900);

/// A running `dockerd` with its own data root, exec root and socket; stopped on drop. One runs
/// at a time per machine (tests queue for it, across processes too): engines share host state
/// such as `/etc/docker` and the containerd shim and network namespaces they create.
pub struct Dockerd {
    child: Child,
    socket: PathBuf,
    cli_config: PathBuf,
    log: PathBuf,
    exec_root: tempfile::TempDir,
    _data_root: tempfile::TempDir,
    _machine_lock: File,
    _process_slot: ProcessSlot,
}

impl Dockerd {
    /// Starts an engine that may use plain HTTP for `insecure_registries` (`127.0.0.1:PORT`), and
    /// waits until it answers.
    pub fn start(insecure_registries: &[&str]) -> Dockerd {
        let dockerd = require_file(DOCKERD);
        require_file(DOCKER);
        let process_slot = ProcessSlot::take();
        let machine_lock = lock_machine();

        let data_root = crate::scratch_dir("dockerd-data-");
        // Unix sockets are limited to 107 bytes and containerd nests its sockets a few levels
        // under the exec root, so that root lives in the (short) system temp dir.
        let exec_root = tempfile::Builder::new()
            .prefix("tb-dockerd-")
            .tempdir()
            .expect("create the dockerd exec root");
        let socket = exec_root.path().join("docker.sock");
        let cli_config = exec_root.path().join("cli");
        std::fs::create_dir(&cli_config).expect("create the docker CLI config dir");
        let log = data_root.path().join("dockerd.log");
        let log_file =
            File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));

        // An empty daemon config: the host's /etc/docker/daemon.json must not leak in.
        let daemon_json = exec_root.path().join("daemon.json");
        std::fs::write(&daemon_json, "{}\n").expect("write daemon.json");

        let mut cmd = Command::new(&dockerd);
        cmd.arg("--config-file")
            .arg(&daemon_json)
            .arg("--data-root")
            .arg(data_root.path().join("data"))
            .arg("--exec-root")
            .arg(exec_root.path().join("exec"))
            .arg("--pidfile")
            .arg(exec_root.path().join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            // No bridge and no firewall rules: tests run containers with `--network none`, and
            // the host's iptables must stay as it was.
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--bridge=none",
            ]);
        for registry in insecure_registries {
            cmd.arg("--insecure-registry").arg(registry);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log file handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));

        let mut engine = Dockerd {
            child,
            socket,
            cli_config,
            log,
            exec_root,
            _data_root: data_root,
            _machine_lock: machine_lock,
            _process_slot: process_slot,
        };
        engine.wait_ready();
        engine
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for dockerd") {
                panic!(
                    "dockerd exited with {status} while starting\n{}",
                    log_tail(&self.log, 40)
                );
            }
            if self.socket.exists() {
                let mut version = self.docker();
                version.args(["version", "--format", "{{.Server.Version}}"]);
                if output_within(&mut version, Duration::from_secs(10))
                    .is_ok_and(|o| o.status.success())
                {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "dockerd did not answer on {} within {} s\n{}",
                    self.socket.display(),
                    READY_TIMEOUT.as_secs(),
                    log_tail(&self.log, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `/usr/bin/docker` talking to this engine (`DOCKER_HOST`, and a private `DOCKER_CONFIG`).
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", &self.cli_config)
            .stdin(Stdio::null());
        cmd
    }

    /// `unix:///…/docker.sock`, the engine's `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The docker CLI config directory (`DOCKER_CONFIG`), e.g. for registry credentials.
    pub fn cli_config_dir(&self) -> &Path {
        &self.cli_config
    }

    /// Everything the engine has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containerd and unmount its layers; SIGKILL would leave
        // both behind.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                kill_pidfile(&self.exec_root.path().join("exec/containerd/containerd.pid"));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Kills the process named in a pid file, if any (dockerd's containerd after dockerd was killed).
fn kill_pidfile(path: &Path) {
    if let Some(pid) = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
    {
        // SAFETY: kill(2); at worst the pid is gone and this fails.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// This process's turn at the engine, given back on drop. (A flag rather than a held
/// `MutexGuard`, so that `Dockerd` can move between threads.)
struct ProcessSlot;

static ENGINE_BUSY: Mutex<bool> = Mutex::new(false);
static ENGINE_FREED: Condvar = Condvar::new();

impl ProcessSlot {
    fn take() -> ProcessSlot {
        let deadline = Instant::now() + LOCK_TIMEOUT;
        let mut busy = ENGINE_BUSY.lock().unwrap_or_else(|e| e.into_inner());
        while *busy {
            if Instant::now() >= deadline {
                panic!(
                    "another test in this process held dockerd for {} s",
                    LOCK_TIMEOUT.as_secs()
                );
            }
            busy = ENGINE_FREED
                .wait_timeout(busy, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *busy = true;
        ProcessSlot
    }
}

impl Drop for ProcessSlot {
    fn drop(&mut self) {
        *ENGINE_BUSY.lock().unwrap_or_else(|e| e.into_inner()) = false;
        ENGINE_FREED.notify_all();
    }
}

fn lock_machine() -> File {
    // In the system temp dir rather than the test bed dir: two checkouts share one machine.
    let path = std::env::temp_dir().join("stevedore-testbed-dockerd.lock");
    let file =
        File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        match file.try_lock() {
            Ok(()) => return file,
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) => panic!(
                "cannot lock {} (another test process runs dockerd?): {e}",
                path.display()
            ),
        }
    }
}
