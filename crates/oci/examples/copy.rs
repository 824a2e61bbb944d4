//! Copy one platform's image from one repository to another with the registry client alone:
//! pull it into a blob store, push each blob the destination lacks, then the manifest.
//!
//! ```sh
//! cargo run -p stevedore-oci --example copy -- SOURCE DESTINATION [PLATFORM]
//! cargo run -p stevedore-oci --example copy -- \
//!     gcr.io/distroless/static-debian12:nonroot registry.example.com/base/static:1 linux/arm64
//! ```
//! Credentials come from podman's and docker's credential files; `STEVEDORE_USERNAME` and
//! `STEVEDORE_PASSWORD`, when set, go to the destination's registry only.

use std::error::Error;
use std::process::ExitCode;

use stevedore_oci::cache::BlobStore;
use stevedore_oci::oci::limits;
use stevedore_oci::oci::media::OCI_MANIFEST;
use stevedore_oci::registry::{Registry, RegistryOptions};
use stevedore_oci::{Platform, Reference};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [from, to, rest @ ..] = args.as_slice() else {
        eprintln!("usage: copy SOURCE DESTINATION [PLATFORM]");
        return ExitCode::from(2);
    };
    match copy(from, to, rest.first().map_or("linux/amd64", String::as_str)) {
        Ok(pushed) => {
            println!("{pushed}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut message = format!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                message.push_str(&format!("\n  caused by: {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Copies `from`'s image for `platform` to `to` and returns `REPOSITORY@DIGEST` of what was
/// pushed, which is the source's manifest, byte for byte.
fn copy(from: &str, to: &str, platform: &str) -> Result<String, Box<dyn Error>> {
    let from: Reference = from.parse()?;
    let to: Reference = to.parse()?;
    let platform: Platform = platform.parse()?;
    // The user's blob store (`~/.cache/stevedore/blobs`, or STEVEDORE_CACHE_DIR's): what an
    // earlier pull left there is verified and not fetched again.
    let store = BlobStore::open_default()?;
    let registry = Registry::writing_to(RegistryOptions::default(), [&to])?;
    let pulled = registry.pull(&from, None, &[platform], &store)?;
    let image = pulled.first().ok_or("the registry returned no image")?;

    let mut blobs = vec![(image.config_digest.clone(), image.config_size)];
    for layer in &image.layers {
        blobs.push((layer.digest().clone(), layer.size()));
    }
    for (digest, size) in &blobs {
        if !registry.blob_exists(&to, digest)? {
            registry.upload_blob(&to, digest, *size, &store)?;
        }
    }
    let manifest = store.read_small(&image.manifest_digest, limits::MANIFEST.max)?;
    let media_type = image
        .manifest
        .media_type()
        .as_ref()
        .map_or(OCI_MANIFEST.to_owned(), ToString::to_string);
    registry.put_manifest(&to, &to.identifier(), &media_type, &manifest)?;
    Ok(format!("{}@{}", to.name(), image.manifest_digest))
}
