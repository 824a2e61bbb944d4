//! Build a Cargo project for amd64 and arm64 and push one multi-platform image.
//!
//! ```sh
//! cargo run -p stevedore --example push -- path/to/Cargo.toml registry.example.com/team/app:1.0 [BASE]
//! ```
//! Credentials come from `~/.docker/config.json` or `STEVEDORE_USERNAME`/`STEVEDORE_PASSWORD`.

use std::process::ExitCode;

use stevedore::{Build, Platform};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [manifest, image, rest @ ..] = args.as_slice() else {
        eprintln!("usage: push CARGO_TOML REGISTRY/REPOSITORY:TAG [BASE]");
        return ExitCode::from(2);
    };
    let base = rest
        .first()
        .map_or("gcr.io/distroless/static-debian12:nonroot", String::as_str);
    let pushed = Build::from_manifest(manifest)
        .map(|b| b.platforms([Platform::linux_amd64(), Platform::linux_arm64()]))
        .and_then(|b| b.base(base))
        .and_then(|b| b.tag(image))
        .and_then(Build::push);
    match pushed {
        Ok(references) => {
            for reference in references {
                println!("{reference}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", e.report());
            ExitCode::FAILURE
        }
    }
}
