//! The names a build gives its image: the user's tags or `BIN:latest`, and the repositories
//! they push to.

use crate::plan::Plan;
use crate::reference::Reference;

/// Each repository (`REGISTRY/REPOSITORY`) the tags name, once, in their order.
pub(super) fn repositories(tags: &[Reference]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        if !out.contains(&tag.name()) {
            out.push(tag.name());
        }
    }
    out
}

/// The tags to name the image with: the user's, or `BIN:latest`.
pub(super) fn default_tags(plan: &Plan) -> Vec<Reference> {
    if !plan.tags.is_empty() {
        return plan.tags.clone();
    }
    format!("{}:latest", plan.bin.to_lowercase())
        .parse()
        .map(|r| vec![r])
        .unwrap_or_default()
}
