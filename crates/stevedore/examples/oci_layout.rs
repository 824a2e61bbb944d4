//! Build a Cargo project into an OCI image layout directory.
//!
//! ```sh
//! cargo run -p stevedore --example oci_layout -- path/to/Cargo.toml out/image [scratch|BASE]
//! skopeo inspect oci:out/image
//! ```

use std::process::ExitCode;

use stevedore::{Build, Output};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [manifest, dir, rest @ ..] = args.as_slice() else {
        eprintln!("usage: oci_layout CARGO_TOML OUT_DIR [BASE|scratch]");
        return ExitCode::from(2);
    };
    let base = rest
        .first()
        .map_or("gcr.io/distroless/static-debian12:nonroot", String::as_str);
    let result = Build::from_manifest(manifest)
        .and_then(|b| b.base(base))
        .map(|b| b.output(Output::OciLayout(dir.into())))
        .and_then(|b| b.run());
    match result {
        Ok(outcome) => {
            println!("{dir}@{}", outcome.digest());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", e.report());
            ExitCode::FAILURE
        }
    }
}
