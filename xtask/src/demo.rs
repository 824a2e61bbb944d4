//! `cargo xtask demo`: the main job end to end on this machine, with nothing but the test bed.
//!
//! Starts a local registry holding the distroless stand-in, builds the example service for
//! linux/amd64 and linux/arm64 with stevedore and pushes the index, pulls each platform back with
//! skopeo, and runs each one as uid 65532 (arm64 under qemu) in a private network namespace,
//! asking it for `/health`.

use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry};

use crate::{fail, project_root, run_ok};

pub fn run() {
    let root = project_root();
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let image = format!("{}/demo/hello-service:latest", registry.addr());
    let work = root.join("target").join("demo");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", work.display())));

    run_ok(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["run", "--quiet", "--package", "cargo-stevedore", "--"])
            .current_dir(&root)
            .args([
                "build",
                "--toolchain",
                "debweb",
                "--platform",
                "linux/amd64,linux/arm64",
                "--base",
                &base,
                "-t",
                &image,
            ])
            .arg("--manifest-path")
            .arg(root.join("examples/hello-service/Cargo.toml"))
            .arg("--push")
            .env("PATH", testbed::tool_path_env()),
    );

    // Everything below reads the registry with tools stevedore did not write.
    let skopeo = testbed::require_tool("skopeo");
    run_ok(Command::new(&skopeo).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]));
    println!();

    for arch in ["amd64", "arm64"] {
        let pulled = work.join(format!("pulled-{arch}"));
        run_ok(
            Command::new(&skopeo)
                .args([
                    "copy",
                    "--quiet",
                    "--src-tls-verify=false",
                    "--override-arch",
                    arch,
                ])
                .arg(format!("docker://{image}"))
                .arg(format!("oci:{}:latest", pulled.display())),
        );
        let bundle = work.join(format!("bundle-{arch}"));
        testbed::umoci_unpack(&pulled, "latest", &bundle);
        let (log, health) = testbed::serve_and_probe(
            &bundle.join("rootfs"),
            arch,
            "/usr/local/bin/hello-service",
            8080,
            "/health",
        );
        print!("{log}");
        println!("{arch}: GET /health -> {}", health.trim());
        if health.trim() != "ok" {
            fail(&format!("the {arch} image did not answer /health with ok"));
        }
    }
    println!("demo: {image} built for amd64 and arm64, pushed, pulled back, and answered /health on both");
}
