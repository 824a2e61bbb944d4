//! What `verify` says before it compares bytes: whether the published image was built with
//! other tools than the rebuild runs. A rebuild with another rustc differs in every binary, and
//! naming the two rustc releases explains that better than the first differing byte.

use serde_json::Value;

use super::signatures::{envelopes, is_provenance_of};
use super::{PublishedImage, VerifyError};
use crate::lock::Tools;
use crate::source::ImageSource;

/// The tools the image's provenance names (the first statement about it that names rustc),
/// signed or not: this explains a difference, it proves nothing.
pub(crate) fn from_provenance(
    source: &ImageSource,
    image: &PublishedImage,
) -> Result<Option<Tools>, VerifyError> {
    for envelope in envelopes(source, &image.digest)? {
        let statement: Value = serde_json::from_slice(&envelope.payload).unwrap_or(Value::Null);
        if !is_provenance_of(&statement, &image.digest) {
            continue;
        }
        if let Some(tools) = tools_in(&statement) {
            return Ok(Some(tools));
        }
    }
    Ok(None)
}

/// The tools a provenance statement names in its `resolvedDependencies` and builder version.
/// A build that did not run zig names none: zig is then left empty.
fn tools_in(statement: &Value) -> Option<Tools> {
    let predicate = &statement["predicate"];
    let dependencies = predicate["buildDefinition"]["resolvedDependencies"].as_array()?;
    let named = |name: &str| dependencies.iter().find(|d| d["name"] == name);
    let version_in = |d: &Value| {
        let uri = d["uri"].as_str()?;
        Some(uri.rsplit_once('@')?.1.to_owned())
    };
    let rustc = named("rustc")?;
    let zig = named("zig");
    Some(Tools {
        stevedore: predicate["runDetails"]["builder"]["version"]["cargo-stevedore"]
            .as_str()?
            .to_owned(),
        rustc: version_in(rustc)?,
        rustc_commit_hash: rustc["digest"]["gitCommit"].as_str().map(str::to_owned),
        zig: zig.and_then(version_in).unwrap_or_default(),
        zig_chosen_by: zig
            .and_then(|z| z["annotations"]["chosenBy"].as_str())
            .map(str::to_owned),
        // The archive's digest is the building host's, which the statement does not name.
        zig_sha256: Default::default(),
    })
}

/// Each tool that differs between the build that made the image (`recorded`, from where
/// `there` says) and this one, in words.
pub(crate) fn differences(recorded: &Tools, here: &Tools, there: &str) -> Vec<String> {
    let mut recorded = recorded.clone();
    if recorded.zig.is_empty() {
        // That build ran no zig, so zig cannot explain a difference.
        recorded.zig.clone_from(&here.zig);
        recorded.zig_chosen_by.clone_from(&here.zig_chosen_by);
    }
    recorded.differences(here, there, "here")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::Zig;

    /// A statement as stevedore writes one, as far as the tools go.
    fn statement(zig: Option<Zig>) -> Value {
        let toolchain = crate::attest::provenance::Toolchain {
            release: Some("1.94.0".into()),
            commit: Some("4d91de4e48198da2e33413efdcd9cd2cc0c46688".into()),
            zig,
            std_sources: None,
            executable: None,
        };
        serde_json::json!({
            "predicate": {
                "buildDefinition": {
                    "resolvedDependencies": crate::attest::provenance::tools(&toolchain),
                },
                "runDetails": {"builder": {"version": {"cargo-stevedore": env!("CARGO_PKG_VERSION")}}},
            },
        })
    }

    #[test]
    fn the_tools_are_read_back_from_the_provenance_stevedore_writes() {
        let pinned = Zig::Pinned {
            version: "0.17.1",
            wheel_sha256: "ea6c",
        };
        let tools = tools_in(&statement(Some(pinned))).unwrap();
        assert_eq!(tools.rustc_named(), "1.94.0 (4d91de4e4)");
        assert_eq!(tools.zig, "0.17.1");
        assert_eq!(tools.zig_chosen_by, None);
        assert_eq!(tools.stevedore, env!("CARGO_PKG_VERSION"));

        let chosen = Zig::Chosen {
            version: Some("0.14.1".into()),
        };
        let tools = tools_in(&statement(Some(chosen))).unwrap();
        assert_eq!(
            (tools.zig.as_str(), tools.zig_chosen_by.as_deref()),
            ("0.14.1", Some("STEVEDORE_ZIG"))
        );
    }

    #[test]
    fn a_build_without_zig_is_compared_on_rustc_and_stevedore_alone() {
        let recorded = tools_in(&statement(None)).unwrap();
        let mut here = recorded.clone();
        here.zig = "0.17.1".into();
        assert_eq!(
            differences(&recorded, &here, "in its provenance"),
            Vec::<String>::new()
        );
        here.rustc = "1.95.0".into();
        assert_eq!(
            differences(&recorded, &here, "in its provenance"),
            ["rustc 1.94.0 (4d91de4e4) in its provenance, 1.95.0 (4d91de4e4) here"]
        );
    }
}
