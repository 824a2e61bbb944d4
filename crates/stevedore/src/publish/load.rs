//! `--load`: the image into a local engine, no registry: docker or podman (rootless podman is
//! the engine of rootless laptops). The engine is handed a `docker load` tarball of one
//! platform's image, named by the first tag, through its own `load` command.

use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;

use super::{parent_dir, write_archive, PublishError};
use crate::assemble::Built;
use crate::cache::BlobStore;
use crate::platform::Platform;
use crate::reference::Reference;

/// Which engine `--load` puts the image into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// Docker when its daemon answers, else podman.
    #[default]
    Auto,
    /// The docker daemon `docker` talks to (`DOCKER_HOST`).
    Docker,
    /// podman's store: the user's own when podman runs rootless.
    Podman,
}

impl FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" | "" => Ok(Engine::Auto),
            "docker" => Ok(Engine::Docker),
            "podman" => Ok(Engine::Podman),
            other => Err(format!(
                "`{other}` is not an engine: write docker or podman"
            )),
        }
    }
}

impl Engine {
    /// `docker` or `podman` (`auto` before it is resolved).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Auto => "auto",
            other => other.program(),
        }
    }

    fn program(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
            Engine::Auto => unreachable!("resolved before use"),
        }
    }

    /// The engine `Auto` means on this machine: docker if its daemon answers, else podman if it
    /// is installed.
    fn resolve(self) -> Result<Engine, PublishError> {
        if self != Engine::Auto {
            return Ok(self);
        }
        let answers = |program: &str, args: &[&str]| {
            crate::env::without_secrets(&mut Command::new(program))
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if answers("docker", &["version", "--format", "{{.Server.Version}}"]) {
            Ok(Engine::Docker)
        } else if answers("podman", &["version"]) {
            Ok(Engine::Podman)
        } else {
            Err(PublishError::NoEngine)
        }
    }
}

/// What `--load` did.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The engine it went into.
    pub engine: Engine,
    /// Whose image it was: the host's, when the build had several.
    pub platform: Platform,
    /// The name the engine knows the image by.
    pub name: Reference,
}

/// Loads the host's platform's image of `built` (the only one, or the host's of several) into
/// `engine`, named `tags[0]`.
pub fn load(
    engine: Engine,
    built: &Built,
    tags: &[Reference],
    store: &BlobStore,
    scratch: &Path,
) -> Result<Loaded, PublishError> {
    let engine = engine.resolve()?;
    let host = Platform::host().ok();
    let image = built
        .images
        .iter()
        .find(|i| Some(&i.platform) == host.as_ref())
        .unwrap_or(&built.images[0]);
    if built.images.len() > 1 {
        tracing::info!(
            "loading the {} image of {} platforms",
            image.platform,
            built.images.len()
        );
    }
    let Some(name) = tags.first().cloned() else {
        return Err(PublishError::Engine {
            engine: engine.program(),
            message: "the image has no name to load it under: pass -t NAME".into(),
        });
    };
    let one = Built {
        images: vec![image.clone()],
        referrers: Vec::new(),
        tagged: Vec::new(),
        ..built.clone()
    };
    let dir = tempfile::Builder::new()
        .prefix(".stevedore-load-")
        .tempdir_in(parent_dir(scratch)?)
        .map_err(super::io_err(scratch))?;
    let archive = dir.path().join("image.tar");
    write_archive(&archive, &one, std::slice::from_ref(&name), store)?;
    let out = crate::env::without_secrets(&mut Command::new(engine.program()))
        .arg("load")
        .arg("-i")
        .arg(&archive)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PublishError::Engine {
            engine: engine.program(),
            message: source.to_string(),
        })?;
    if !out.status.success() {
        return Err(PublishError::Engine {
            engine: engine.program(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(Loaded {
        engine,
        platform: image.platform.clone(),
        name,
    })
}
