//! The dependency graph an SBOM describes, read from `cargo metadata`'s resolve: the crates
//! compiled into the root's binary (or its build scripts) on one platform, and how each uses
//! the next.

use std::collections::{BTreeMap, BTreeSet};

use cargo_metadata::cargo_platform::Cfg;
use cargo_metadata::{DependencyKind, Metadata, Node, NodeDep, Package, PackageId};

use super::SbomError;
use crate::plan::uses_on;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Edge {
    Normal,
    Build,
}

/// The crates that go into the root's binary on this platform, and the edges between them.
#[derive(Default)]
pub(super) struct Graph<'m> {
    pub(super) packages: BTreeMap<&'m PackageId, &'m Package>,
    pub(super) edges: BTreeSet<(&'m PackageId, &'m PackageId, Edge)>,
}

impl<'m> Graph<'m> {
    /// Walks cargo's resolve from `root`, leaving out dev-dependencies and dependencies of
    /// other platforms than `target` (its name and `cfg` values).
    pub(super) fn walk(
        metadata: &'m Metadata,
        root: &'m PackageId,
        target: (&str, &[Cfg]),
    ) -> Result<Self, SbomError> {
        let resolve = metadata.resolve.as_ref().ok_or(SbomError::NoResolve)?;
        let nodes: BTreeMap<&PackageId, &Node> = resolve.nodes.iter().map(|n| (&n.id, n)).collect();
        let all: BTreeMap<&PackageId, &Package> =
            metadata.packages.iter().map(|p| (&p.id, p)).collect();
        let mut graph = Graph::default();
        let mut pending = vec![root];
        while let Some(id) = pending.pop() {
            if graph.packages.contains_key(id) {
                continue;
            }
            let package = all
                .get(id)
                .ok_or_else(|| SbomError::NoPackage(id.repr.clone()))?;
            let node = nodes
                .get(id)
                .ok_or_else(|| SbomError::NotInGraph(id.repr.clone()))?;
            graph.packages.insert(id, package);
            for dep in &node.deps {
                let edges = edges(dep, target);
                if !edges.is_empty() {
                    pending.push(&dep.pkg);
                }
                graph
                    .edges
                    .extend(edges.into_iter().map(|e| (id, &dep.pkg, e)));
            }
        }
        Ok(graph)
    }
}

/// How `dep` is used by the crate that depends on it on `target` (see [`uses_on`]).
fn edges(dep: &NodeDep, target: (&str, &[Cfg])) -> BTreeSet<Edge> {
    uses_on(dep, target)
        .into_iter()
        .map(|kind| match kind {
            DependencyKind::Build => Edge::Build,
            // A kind newer than this code is more likely code that ships than test code.
            _ => Edge::Normal,
        })
        .collect()
}
