//! Running a network service from an unpacked image and asking it one HTTP question.

use std::path::Path;
use std::process::Command;

use crate::tools::{require_tool, run_ok};

/// Starts `entrypoint` from `rootfs` as uid/gid 65532 with `PORT=port`, in a network namespace
/// of its own (only loopback, so a 0.0.0.0 bind reaches nothing outside), waits up to ten
/// seconds for `GET http://127.0.0.1:PORT{path}` to answer, stops the service, and returns what
/// the service printed and the answer. An `arch` (OCI's name) the host does not run natively
/// runs under its qemu-user.
pub fn serve_and_probe(
    rootfs: &Path,
    arch: &str,
    entrypoint: &str,
    port: u16,
    path: &str,
) -> (String, String) {
    let emulator = match crate::run::qemu_for_arch(arch) {
        Some(name) => {
            let qemu = require_tool(&name);
            std::fs::copy(&qemu, rootfs.join(&name))
                .unwrap_or_else(|e| panic!("cannot copy qemu into {}: {e}", rootfs.display()));
            format!("/{name} ")
        }
        None => String::new(),
    };
    let log = rootfs.with_extension("service.log");
    let answer = rootfs.with_extension("answer");
    let script = format!(
        r#"set -u
ip link set lo up
env -i PORT={port} HOME=/home/nonroot /usr/sbin/chroot --userspec=65532:65532 --groups=65532 '{rootfs}' {emulator}{entrypoint} > '{log}' 2>&1 &
pid=$!
for i in $(seq 1 100); do curl -fsS -o '{answer}' http://127.0.0.1:{port}{path} 2>/dev/null && break; sleep 0.1; done
kill $pid 2>/dev/null
wait $pid 2>/dev/null
exit 0"#,
        rootfs = rootfs.display(),
        log = log.display(),
        answer = answer.display(),
    );
    run_ok(Command::new(require_tool("unshare")).args(["--net", "--", "sh", "-c", &script]));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (read(&log), read(&answer))
}
