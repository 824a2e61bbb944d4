//! `cargo stevedore debuginfo`: an image's debug symbols, fetched for gdb.

use std::path::PathBuf;

use clap::Args;

use super::args::RegistryArgs;
use super::error::Error;
use stevedore::plan::BuildOptions;
use stevedore::source::Location;
use stevedore::Build;

#[derive(Debug, Args)]
pub(super) struct DebuginfoArgs {
    /// The image: REGISTRY/REPOSITORY[:TAG|@DIGEST], oci-layout=DIR or oci-archive=FILE.tar.
    #[arg(value_name = "REF")]
    published: Location,
    /// The directory to fill (gdb: `set debug-file-directory DIR`).
    #[arg(short, long, value_name = "DIR", default_value = "debuginfo")]
    output: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub(super) fn run(args: DebuginfoArgs) -> Result<(), Error> {
    let build = args
        .registry
        .apply(Build::from_options(BuildOptions::default()));
    for file in build.debuginfo(&args.published, &args.output)? {
        println!(
            "{} {} {}",
            file.platform,
            file.build_id,
            file.path.display()
        );
    }
    Ok(())
}
