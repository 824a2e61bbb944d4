//! The module graph of each crate, checked against ARCHITECTURE.md's map (by `cargo xtask
//! tidy`). Cargo keeps the crates in their order; this keeps the stages within a crate in theirs.
//!
//! An edge is a `crate::MODULE` path in a top-level module's files (`use` lines, grouped
//! `use crate::{a, b::C}` included, and paths written inline). The map has one table per crate,
//! under a `###` heading that names the crate's source directory in backticks; it gives every
//! top-level module a stage rank and lists what it imports (a name that is no module of the
//! crate is one the crate's root brings in from a crate below). The check fails on a module
//! importing a higher rank (a later stage), on a cycle, and wherever the map and the code
//! disagree, so the map stays the true picture a newcomer reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the modules it names, each with one place that names it.
pub type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// One row of ARCHITECTURE.md's map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub rank: u32,
    pub imports: BTreeSet<String>,
}

/// Runs the check on this repository, printing every problem; false when there is one.
pub fn run(root: &Path) -> bool {
    match check_repository(root) {
        Ok(()) => {
            eprintln!("module graph: no back-edges, no cycles, ARCHITECTURE.md's map matches");
            true
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("xtask: module graph: {problem}");
            }
            false
        }
    }
}

/// The source directories of the workspace's crates, bottom of the stack first.
pub const CRATE_SOURCES: [&str; 3] = ["crates/oci/src", "crates/stevedore/src", "src"];

/// Every problem with the repository's graphs, or nothing.
pub fn check_repository(root: &Path) -> Result<(), Vec<String>> {
    let map_path = root.join("ARCHITECTURE.md");
    let map_text = std::fs::read_to_string(&map_path)
        .map_err(|e| vec![format!("cannot read {}: {e}", map_path.display())])?;
    let maps = parse_maps(&map_text).map_err(|e| vec![format!("ARCHITECTURE.md: {e}")])?;
    let mut problems = Vec::new();
    for src in CRATE_SOURCES {
        let Some(map) = maps.get(src) else {
            problems.push(format!(
                "ARCHITECTURE.md has no map of `{src}`: add a `###` heading naming `{src}` and \
                 its table"
            ));
            continue;
        };
        let graph = read_graph(&root.join(src)).map_err(|e| vec![e])?;
        let found = check(&graph, map).err().unwrap_or_default();
        problems.extend(found.into_iter().map(|p| format!("{src}: {p}")));
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems),
    }
}

/// One map per crate: the rows after each `###` heading that names a source directory
/// (a backticked path ending in `src`), up to the next such heading.
pub fn parse_maps(text: &str) -> Result<BTreeMap<String, BTreeMap<String, Row>>, String> {
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let heading = line
            .strip_prefix("### ")
            .and_then(|h| backticked(h).find(|name| *name == "src" || name.ends_with("/src")));
        match (heading, sections.last_mut()) {
            (Some(src), _) => sections.push((src.to_owned(), String::new())),
            (None, Some((_, body))) => body.extend([line, "\n"]),
            (None, None) => {}
        }
    }
    let mut maps = BTreeMap::new();
    for (src, body) in sections {
        let map = parse_map(&body).map_err(|e| format!("`{src}`: {e}"))?;
        if maps.insert(src.clone(), map).is_some() {
            return Err(format!("`{src}` has two maps"));
        }
    }
    Ok(maps)
}

/// The graph of the crate whose sources are in `src`.
pub fn read_graph(src: &Path) -> Result<Graph, String> {
    let mut graph = Graph::new();
    for entry in read_dir(src)? {
        let name = entry
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: not a UTF-8 name", entry.display()))?;
        let module = match (entry.is_dir(), name.strip_suffix(".rs")) {
            (true, _) => name,
            (false, Some("lib" | "main")) => continue,
            (false, Some(stem)) => stem,
            (false, None) => continue,
        };
        let edges = graph.entry(module.to_owned()).or_default();
        for file in rust_files(&entry)? {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let shown = file
                .strip_prefix(src.parent().unwrap_or(src))
                .unwrap_or(&file);
            for (line, target) in crate_paths(&text) {
                if target != module {
                    edges
                        .entry(target)
                        .or_insert_with(|| format!("{}:{line}", shown.display()));
                }
            }
        }
    }
    Ok(graph)
}

/// The map's rows: `| RANK | `module` | owns | `a`, `b` |`; other lines are prose.
pub fn parse_map(text: &str) -> Result<BTreeMap<String, Row>, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let [rank, module, _owns, imports] = cells.as_slice() else {
            continue;
        };
        let (Ok(rank), Some(module)) = (rank.parse::<u32>(), backticked(module).next()) else {
            continue;
        };
        let row = Row {
            rank,
            imports: backticked(imports).map(str::to_owned).collect(),
        };
        if map.insert(module.to_owned(), row).is_some() {
            return Err(format!("`{module}` has two rows in the map"));
        }
    }
    match map.is_empty() {
        true => Err("no map rows (`| RANK | `module` | owns | imports |`) found".into()),
        false => Ok(map),
    }
}

/// Back-edges, cycles, and disagreements between the map and the code.
pub fn check(graph: &Graph, map: &BTreeMap<String, Row>) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for module in map.keys().filter(|m| !graph.contains_key(*m)) {
        problems.push(format!(
            "ARCHITECTURE.md maps `{module}`, which is not a module of this crate: remove its row"
        ));
    }
    for (module, edges) in graph {
        let Some(row) = map.get(module) else {
            problems.push(format!(
                "`{module}` is missing from ARCHITECTURE.md's map: add a row with its stage rank"
            ));
            continue;
        };
        for (target, place) in edges {
            match map.get(target) {
                Some(to) if to.rank > row.rank => problems.push(format!(
                    "back-edge: `{module}` (rank {}) imports `{target}` (rank {}, a later \
                     stage) at {place}; move what both need down to a lower rank",
                    row.rank, to.rank
                )),
                _ => {}
            }
        }
        let code: BTreeSet<String> = edges.keys().cloned().collect();
        if code != row.imports {
            problems.push(format!(
                "ARCHITECTURE.md says `{module}` imports {}, the code imports {}: update its row",
                list(&row.imports),
                list(&code)
            ));
        }
    }
    for cycle in cycles(graph) {
        problems.push(format!("cycle: {}", cycle.join(" → ")));
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems),
    }
}

/// Each set of modules that import one another, as a path that returns to its start.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for start in graph.keys() {
        if seen.contains(start) {
            continue;
        }
        if let Some(mut path) = path_back(graph, start) {
            seen.extend(path.iter().cloned());
            path.push(start.clone());
            found.push(path);
        }
    }
    found
}

/// The shortest path from `start` back to itself, if there is one (breadth first).
fn path_back(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(module) = queue.pop_front() {
        for next in graph.get(module).into_iter().flat_map(BTreeMap::keys) {
            if next == start {
                let mut path = vec![module.to_owned()];
                let mut at = module;
                while at != start {
                    at = came_from[at];
                    path.push(at.to_owned());
                }
                path.reverse();
                return Some(path);
            }
            if !came_from.contains_key(next.as_str()) {
                came_from.insert(next, module);
                queue.push_back(next);
            }
        }
    }
    None
}

/// `(line, module)` for every `crate::module` path in Rust source, outside `//` comments.
pub fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => found.extend(group_heads(group).into_iter().map(|m| (line, m))),
            None => found.extend(ident(rest).map(|m| (line, m.to_owned()))),
        }
    }
    found
}

/// The first name of each item of a `{a, b::C, d::{E, F}}` group, up to its closing brace.
fn group_heads(group: &str) -> Vec<String> {
    let mut depth = 0usize;
    let mut items = vec![String::new()];
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = items.last_mut() {
            last.push(c);
        }
    }
    items
        .iter()
        .filter_map(|item| ident(item.trim_start()).map(str::to_owned))
        .collect()
}

/// The name `text` starts with, unless it is `self` (the crate root, not a module).
fn ident(text: &str) -> Option<&str> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    Some(&text[..end]).filter(|name| !name.is_empty() && *name != "self")
}

fn backticked(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

fn list(modules: &BTreeSet<String>) -> String {
    match modules.is_empty() {
        true => "nothing".into(),
        false => modules
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .and_then(|entries| entries.map(|e| e.map(|e| e.path())).collect())
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    entries.sort();
    Ok(entries)
}

/// `path` itself when it is a file, else every `.rs` file under it.
pub fn rust_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in read_dir(path)? {
        match entry.is_dir() {
            true => files.extend(rust_files(&entry)?),
            false if entry.extension().is_some_and(|e| e == "rs") => files.push(entry),
            false => {}
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        edges
            .iter()
            .map(|(from, to)| {
                let to = to
                    .iter()
                    .map(|t| (t.to_string(), format!("src/{from}.rs:1")));
                (from.to_string(), to.collect())
            })
            .collect()
    }

    fn map(rows: &[(&str, u32, &[&str])]) -> BTreeMap<String, Row> {
        rows.iter()
            .map(|(m, rank, imports)| {
                let imports = imports.iter().map(|i| i.to_string()).collect();
                (
                    m.to_string(),
                    Row {
                        rank: *rank,
                        imports,
                    },
                )
            })
            .collect()
    }

    /// The check itself, on this repository: the guard issue 19 asks for.
    #[test]
    fn the_module_graph_has_no_back_edges_or_cycles_and_matches_the_map() {
        if let Err(problems) = check_repository(&crate::project_root()) {
            panic!("{}", problems.join("\n"));
        }
    }

    #[test]
    fn paths_are_found_in_uses_groups_and_inline_but_not_comments() {
        let text = "use crate::digest::Digest;\n\
                    use crate::{cache::{BlobStore, CacheError}, plan, self};\n\
                    // use crate::cli;\n\
                    let x = crate::platform::list(y); // crate::build\n\
                    pub(crate) use foo;\n\
                    #[serde(serialize_with = \"crate::plan::display\")]\n\
                    macro_rules! m { () => { $crate::x } }\n";
        let found = crate_paths(text);
        let found: Vec<(usize, &str)> = found.iter().map(|(l, m)| (*l, m.as_str())).collect();
        assert_eq!(
            found,
            [
                (1, "digest"),
                (2, "cache"),
                (2, "plan"),
                (4, "platform"),
                (6, "plan")
            ]
        );
        // rustfmt breaks a long group over lines; each item is still an edge.
        let found = crate_paths("use crate::{\n    a::B,\n    c::{D, E},\n};\n");
        assert_eq!(found, [(1, "a".to_string()), (1, "c".to_string())]);
    }

    #[test]
    fn a_later_stage_import_is_a_back_edge_naming_both_and_the_place() {
        let g = graph(&[("plan", &["layer"]), ("layer", &[])]);
        let m = map(&[("plan", 1, &["layer"]), ("layer", 2, &[])]);
        let problems = check(&g, &m).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("back-edge: `plan` (rank 1) imports `layer` (rank 2")
                && problems[0].contains("src/plan.rs:1"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_cycle_within_one_rank_is_reported_as_a_path() {
        let g = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]);
        let m = map(&[
            ("a", 0, &["b"]),
            ("b", 0, &["c"]),
            ("c", 0, &["a"]),
            ("d", 1, &["a"]),
        ]);
        assert_eq!(check(&g, &m).unwrap_err(), ["cycle: a → b → c → a"]);
    }

    #[test]
    fn imports_down_and_within_a_rank_pass() {
        let g = graph(&[("a", &["b"]), ("b", &[]), ("c", &["a", "b"])]);
        let m = map(&[("a", 0, &["b"]), ("b", 0, &[]), ("c", 1, &["a", "b"])]);
        assert_eq!(check(&g, &m), Ok(()));
    }

    #[test]
    fn the_map_must_list_every_module_and_its_imports_exactly() {
        let g = graph(&[("a", &["b"]), ("b", &[])]);
        let m = map(&[("a", 1, &[]), ("gone", 0, &[])]);
        let problems = check(&g, &m).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("`gone`, which is not a module"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("says `a` imports nothing, the code imports `b`"),
            "{problems:?}"
        );
        assert!(problems[2].contains("`b` is missing from"), "{problems:?}");
    }

    #[test]
    fn each_crate_has_the_map_under_its_heading() {
        let text = "# Title\n| 0 | `stray` | before any heading | — |\n\
                    ### `crates/a/src` (package `a`)\n| 0 | `digest` | x | — |\n\
                    ### Prose heading\n| 1 | `plan` | y | `digest` |\n\
                    ### `src`\n| 0 | `cli` | z | — |\n";
        let maps = parse_maps(text).unwrap();
        assert_eq!(maps.keys().collect::<Vec<_>>(), ["crates/a/src", "src"]);
        assert_eq!(
            maps["crates/a/src"].keys().collect::<Vec<_>>(),
            ["digest", "plan"]
        );
        assert_eq!(maps["src"].keys().collect::<Vec<_>>(), ["cli"]);
    }

    #[test]
    fn map_rows_are_read_from_the_markdown_table() {
        let text = "| rank | module | owns | imports |\n|---|---|---|---|\n\
                    | 0 | `digest` | the Digest type | — |\n\
                    | 3 | `plan` | `Plan` | `config`, `digest` |\n\
                    prose with `code`\n";
        let rows = parse_map(text).unwrap();
        assert_eq!(
            rows["digest"],
            Row {
                rank: 0,
                imports: BTreeSet::new()
            }
        );
        assert_eq!(rows["plan"].rank, 3);
        assert_eq!(
            rows["plan"].imports,
            BTreeSet::from(["config".to_string(), "digest".to_string()])
        );
    }
}
