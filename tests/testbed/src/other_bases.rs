//! Stand-ins for bases that are not distroless: a Debian-like one (Debian 12's own accounts, no
//! `nonroot`, a CA bundle where Debian keeps it) and an Alpine-like one (BusyBox's accounts,
//! its bundle with Alpine's `/etc/ssl/cert.pem` link to it). Each is one linux/amd64 layer made
//! with umoci, as users' bases are made by their distributions' tools, not by stevedore.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::tools::{require_tool, run_ok};

/// A base other than distroless, as [`crate::Registry::push_other_base`] pushes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherBase {
    /// `debian:12-slim`'s accounts (root … `_apt`, nobody), `/etc/ssl/certs/ca-certificates.crt`.
    DebianLike,
    /// `alpine:3`'s accounts (root with `/bin/sh`, bin, daemon, …, nobody), its bundle at
    /// `/etc/ssl/certs/ca-certificates.crt` and `/etc/ssl/cert.pem` linked to it.
    AlpineLike,
}

impl OtherBase {
    /// The repository it is pushed to.
    pub fn repository(self) -> &'static str {
        match self {
            OtherBase::DebianLike => "library/debian-like",
            OtherBase::AlpineLike => "library/alpine-like",
        }
    }

    /// Its `/etc/passwd`, as the base has it.
    pub fn passwd(self) -> &'static str {
        match self {
            OtherBase::DebianLike => DEBIAN_PASSWD,
            OtherBase::AlpineLike => ALPINE_PASSWD,
        }
    }

    /// Its `/etc/group`, as the base has it.
    pub fn group(self) -> &'static str {
        match self {
            OtherBase::DebianLike => DEBIAN_GROUP,
            OtherBase::AlpineLike => ALPINE_GROUP,
        }
    }

    /// Its CA bundle's bytes (a marker, not real roots: the tests compare bytes, nothing
    /// makes a TLS connection with it).
    pub fn ca_bundle(self) -> String {
        format!("# the CA bundle of {}\n", self.repository())
    }

    fn os_release(self) -> &'static str {
        match self {
            OtherBase::DebianLike => "ID=debian\nVERSION_ID=\"12\"\n",
            OtherBase::AlpineLike => "ID=alpine\nVERSION_ID=3.20.3\n",
        }
    }
}

const DEBIAN_PASSWD: &str = "root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
_apt:x:42:65534::/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";
const DEBIAN_GROUP: &str = "root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
www-data:x:33:
staff:x:50:
nogroup:x:65534:
";
// BusyBox's files end without a newline on some images: the merge must cope.
const ALPINE_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
guest:x:405:100:guest:/dev/null:/sbin/nologin
nobody:x:65534:65534:nobody:/:/sbin/nologin";
const ALPINE_GROUP: &str = "root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
users:x:100:games
nogroup:x:65533:
nobody:x:65534:
";

/// Builds `base` as an OCI layout at `layout`, tagged `latest`.
pub(crate) fn build(base: OtherBase, layout: &Path, work: &Path) {
    let umoci = |args: &[&str]| run_ok(Command::new(require_tool("umoci")).args(args));
    let layout_str = layout.to_str().expect("test bed paths are UTF-8");
    let image = format!("{layout_str}:latest");
    let bundle = work.join("bundle");
    let bundle_str = bundle.to_str().expect("test bed paths are UTF-8");
    umoci(&["init", "--layout", layout_str]);
    umoci(&["new", "--image", &image]);
    umoci(&["unpack", "--image", &image, bundle_str]);
    let root = bundle.join("rootfs");
    let file = |path: &str, text: &str, mode: u32| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in a directory")).expect("mkdir");
        std::fs::write(&path, text).expect("write a base file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    file("etc/passwd", base.passwd(), 0o644);
    file("etc/group", base.group(), 0o644);
    file("etc/os-release", base.os_release(), 0o644);
    file(
        "etc/ssl/certs/ca-certificates.crt",
        &base.ca_bundle(),
        0o644,
    );
    if base == OtherBase::AlpineLike {
        std::os::unix::fs::symlink("certs/ca-certificates.crt", root.join("etc/ssl/cert.pem"))
            .expect("link cert.pem");
    }
    for dir in ["tmp", "root"] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod /tmp");
    umoci(&["repack", "--image", &image, bundle_str]);
    umoci(&[
        "config",
        "--image",
        &image,
        "--os",
        "linux",
        "--architecture",
        "amd64",
        "--config.env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]);
    umoci(&["gc", "--layout", layout_str]);
}
