//! `cargo xtask tidy`: the repository's shape, checked. The module graph (`graph.rs`) and the
//! size of each source file: a file past `MAX_CODE_LINES` does several jobs and should be split
//! by job, as `sbom/` and `diff/` are.

use std::path::Path;

use crate::graph;

/// Lines of code (not blank, not comments, not unit tests) a source file may have.
pub const MAX_CODE_LINES: usize = 500;

/// Runs every check, printing each problem; false when there is one.
pub fn run(root: &Path) -> bool {
    let graph_ok = graph::run(root);
    let sources = graph::CRATE_SOURCES.map(|src| root.join(src));
    match sources.iter().try_for_each(|src| check_sizes(src)) {
        Ok(()) => {
            eprintln!("file sizes: every source file is within {MAX_CODE_LINES} lines of code");
            graph_ok
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("xtask: file size: {problem}");
            }
            false
        }
    }
}

/// Every file of `src` over `MAX_CODE_LINES`, or nothing.
pub fn check_sizes(src: &Path) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for file in graph::rust_files(src).map_err(|e| vec![e])? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| vec![format!("cannot read {}: {e}", file.display())])?;
        let lines = code_lines(&text);
        if lines > MAX_CODE_LINES {
            problems.push(format!(
                "{} has {lines} lines of code (at most {MAX_CODE_LINES}): split it by job into \
                 a directory module",
                file.display()
            ));
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems),
    }
}

/// Lines that are neither blank nor `//` comments, up to the unit tests (a `#[cfg(test)]` at
/// the start of a line, which rustfmt gives the `mod tests` at the end of a file).
pub fn code_lines(text: &str) -> usize {
    text.lines()
        .take_while(|line| !line.starts_with("#[cfg(test)]"))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_file_is_within_the_limit() {
        for src in crate::graph::CRATE_SOURCES {
            if let Err(problems) = check_sizes(&crate::project_root().join(src)) {
                panic!("{}", problems.join("\n"));
            }
        }
    }

    #[test]
    fn code_lines_leave_out_blanks_comments_and_unit_tests() {
        let text =
            "//! Module docs.\n\nuse std::fmt;\n    // why\n/// Docs.\nfn f() {\n    g();\n}\n\n\
                    #[cfg(test)]\nmod tests {\n    fn t() {}\n}\n";
        assert_eq!(code_lines(text), 4);
    }

    #[test]
    fn a_file_over_the_limit_is_named() {
        let dir = tempfile_dir();
        let long = "fn f() {}\n".repeat(MAX_CODE_LINES + 1);
        std::fs::write(dir.join("long.rs"), long).unwrap();
        std::fs::write(dir.join("short.rs"), "fn f() {}\n").unwrap();
        let problems = check_sizes(&dir).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("long.rs has 501 lines of code"),
            "{problems:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh directory in the system's temp dir (xtask has no `tempfile` dependency).
    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-tidy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
