//! SLSA v1 provenance (<https://slsa.dev/spec/v1.0/provenance>) as an in-toto Statement v1 whose
//! subject is the image. Every field comes from the plan and the build, never from the clock
//! or the checkout's path, so two checkouts of one commit give the same bytes.

use serde_json::{json, Value};

use crate::assemble::Built;
use crate::compile::Zig;
use crate::digest::Digest;
use crate::oci::{canonical_json, rfc3339};
use crate::plan::Plan;
use crate::reference::Base;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What `externalParameters` and `internalParameters` mean; versioned with their shape.
pub const BUILD_TYPE: &str = "https://github.com/stevedore-rs/stevedore/buildtypes/cargo-oci/v1";
pub const BUILDER_ID: &str = "https://github.com/stevedore-rs/stevedore";

/// What the provenance records beyond the plan: the toolchain as it ran.
#[derive(Debug, Clone, Default)]
pub struct Toolchain {
    /// `rustc -vV`'s release.
    pub release: Option<String>,
    /// `rustc -vV`'s commit-hash.
    pub commit: Option<String>,
    /// The zig that linked the binaries, if zig did.
    pub zig: Option<Zig>,
    /// The digest of the std sources compiled, when std was built from source.
    pub std_sources: Option<Digest>,
    /// The sha256 of the executable that ran stevedore.
    pub executable: Option<Digest>,
}

/// A published image a build started from instead of compiling: `rebase`'s.
#[derive(Debug, Clone)]
pub struct Material {
    /// Where it was read, as the user named it.
    pub name: String,
    /// Its top digest (index or manifest).
    pub digest: Digest,
}

/// The statement's JSON (canonical: keys sorted, no whitespace).
pub fn statement(
    plan: &Plan,
    built: &Built,
    toolchain: &Toolchain,
    rebased_from: Option<&Material>,
) -> Vec<u8> {
    let name = plan
        .tags
        .first()
        .map_or_else(|| plan.bin.clone(), |t| t.name());
    let top = built.top_digest();
    canonical_json(&json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": top.hex()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external(plan),
                "internalParameters": internal(plan),
                "resolvedDependencies": dependencies(plan, toolchain, rebased_from),
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": {"cargo-stevedore": env!("CARGO_PKG_VERSION")},
                },
                "metadata": {
                    "startedOn": rfc3339(plan.created),
                    "finishedOn": rfc3339(plan.created),
                },
            },
        },
    }))
}

/// What the user chose: flags and `[package.metadata.stevedore]`. Not the tags: they say where
/// the image is published, not how it was built, and with them a push under a new tag would
/// need a new statement, and an upload, for the same image.
fn external(plan: &Plan) -> Value {
    json!({
        "package": plan.package,
        "bin": plan.bin,
        "features": plan.features,
        "allFeatures": plan.all_features,
        "noDefaultFeatures": plan.no_default_features,
        "profile": plan.profile,
        "platforms": plan.platforms.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "base": match &plan.base {
            Base::Image(reference) => reference.to_string(),
            Base::Scratch => "scratch".to_owned(),
        },
    })
}

/// What stevedore chose: the targets, how C is linked, the timestamp every file gets.
fn internal(plan: &Plan) -> Value {
    json!({
        "targets": plan.platforms.iter().map(|p| plan.rust_target(p)).collect::<Vec<_>>(),
        "toolchain": plan.toolchain.rustup_name().unwrap_or("cargo on PATH"),
        // Zig links when C code is compiled; otherwise rustc's self-contained musl linker.
        "linker": if plan.has_c_code { "zig" } else { "rustc (self-contained musl), zig when the target's std is not installed" },
        "remapPathPrefix": true,
        "sourceDateEpoch": plan.created,
    })
}

fn dependencies(plan: &Plan, toolchain: &Toolchain, rebased_from: Option<&Material>) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(from) = rebased_from {
        // Its application layer is this image's, as it was: its own provenance names the
        // tools that compiled it.
        out.push(json!({
            "name": from.name,
            "digest": {"sha256": from.digest.hex()},
            "annotations": {"rebasedFrom": true},
        }));
    }
    if let Some(revision) = &plan.revision {
        let uri = plan
            .source
            .as_deref()
            .map_or_else(|| "git+unknown".to_owned(), |s| format!("git+{s}"));
        out.push(json!({"uri": uri, "digest": {"gitCommit": revision}}));
    }
    if let Ok(lock) = std::fs::read(plan.workspace_root.join("Cargo.lock")) {
        let digest = Digest::of(&lock);
        out.push(json!({"name": "Cargo.lock", "digest": {"sha256": digest.hex()}}));
    }
    if let (Base::Image(base), Some(pin)) = (&plan.base, &plan.base_pin) {
        out.push(json!({
            "uri": format!("oci://{}", base.name()),
            "name": base.to_string(),
            "digest": {"sha256": pin.hex()},
        }));
    }
    out.extend(tools(toolchain));
    out
}

/// The `resolvedDependencies` naming the tools that ran: rustc by release and commit, zig by
/// its archive's digest (or as chosen by `STEVEDORE_ZIG`).
pub(crate) fn tools(toolchain: &Toolchain) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(release) = &toolchain.release {
        let mut rustc = json!({"uri": format!("pkg:generic/rustc@{release}"), "name": "rustc"});
        if let Some(commit) = &toolchain.commit {
            rustc["digest"] = json!({"gitCommit": commit});
        }
        out.push(rustc);
    }
    if let (Some(release), Some(sources)) = (&toolchain.release, &toolchain.std_sources) {
        // std built from source: rustc's own release of them, by the tree's digest (see
        // `toolchain::answers::tree_digest`), as a distribution may patch them.
        out.push(json!({
            "uri": format!("pkg:generic/rust-src@{release}"),
            "name": "rust-src",
            "digest": {"sha256": sources.hex()},
        }));
    }
    match &toolchain.zig {
        // By the wheel's digest: the same version from elsewhere could be other bytes.
        Some(Zig::Pinned {
            version,
            wheel_sha256,
        }) => out.push(json!({
            "uri": format!("pkg:pypi/ziglang@{version}"),
            "name": "zig",
            "digest": {"sha256": wheel_sha256},
        })),
        Some(Zig::Chosen { version }) => out.push(json!({
            "uri": format!("pkg:generic/zig@{}", version.as_deref().unwrap_or("unknown")),
            "name": "zig",
            "annotations": {"chosenBy": crate::env::ZIG},
        })),
        None => {}
    }
    let mut stevedore = json!({
        "uri": format!("pkg:cargo/stevedore@{}", env!("CARGO_PKG_VERSION")),
        "name": "stevedore",
    });
    if let Some(executable) = &toolchain.executable {
        // The executable that ran: a release build, a build from a fork, an xtask linking the
        // library: one version, other bytes.
        stevedore["digest"] = json!({"sha256": executable.hex()});
    }
    out.push(stevedore);
    out
}
