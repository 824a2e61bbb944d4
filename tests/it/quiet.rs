//! What a person at a terminal sees: `-q` leaves only the result, as `cargo -q` does, however
//! much is pulled (no log line, no transfer bar, no line of cargo's).

use std::process::Command;

use stevedore_testbed::{self as testbed, Mode, Registry};

use crate::util::*;

/// `cmd` run by `script` on a pseudo-terminal (stdout and stderr both a terminal, as for a
/// person); returns the exit status and everything the terminal received.
fn on_a_terminal(cmd: &Command) -> (bool, String) {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect();
    let mut script = Command::new(testbed::require_tool("script"));
    script.args(["-qec", &line.join(" "), "/dev/null"]);
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    let out = script.output().expect("script runs");
    (out.status.success(), text(&out.stdout))
}

#[test]
fn quiet_prints_only_the_result_on_a_terminal() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("out");
    let mut cmd = stevedore_build("hello");
    // A new cache: the base is pulled, which draws bars and logs when not quiet.
    cmd.env("STEVEDORE_CACHE_DIR", dir.path().join("cache"))
        .args(["-q", "--base", &base, "--output"])
        .arg(format!("oci-layout={}", layout.display()));
    let (ok, seen) = on_a_terminal(&cmd);
    assert!(ok, "{seen}");
    let lines: Vec<&str> = seen.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(lines.len(), 1, "one line, the result:\n{seen}");
    assert!(
        lines[0].starts_with(&format!("oci-layout={}@sha256:", layout.display())),
        "{seen}"
    );
    assert!(
        !seen.contains('\u{1b}'),
        "no bar or colour was drawn: {seen:?}"
    );
}

/// `--color` as cargo's: auto colours a terminal unless `NO_COLOR` is set, `always` colours a
/// pipe (a CI log), `never` nothing; `CARGO_TERM_COLOR` sets it too; cargo's lines follow.
#[test]
fn color_is_chosen_as_cargo_chooses_it_for_our_lines_and_cargo_s() {
    let registry = Registry::start(Mode::Http);
    let base = registry.push_base();
    let dir = tempfile::tempdir().unwrap();
    let build = |flags: &[&str], env: &[(&str, &str)]| {
        let mut cmd = stevedore_build("hello");
        cmd.args(["--base", &base, "--output"])
            .arg(format!("oci-layout={}", dir.path().join("out").display()))
            .args(flags)
            .env_remove("NO_COLOR")
            .env_remove("CARGO_TERM_COLOR");
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd
    };
    let colored = |seen: &str| seen.contains("\u{1b}[");
    // What cargo prints on every build, coloured or not.
    let cargo_finished = |seen: &str| {
        seen.lines()
            .find(|l| l.contains("Finished"))
            .unwrap_or_else(|| panic!("cargo's Finished line: {seen}"))
            .to_owned()
    };

    let (ok, seen) = on_a_terminal(&build(&[], &[]));
    assert!(ok && colored(&seen), "auto, on a terminal: {seen:?}");
    for (flags, env) in [
        (&["--color", "never"][..], &[][..]),
        (&[], &[("NO_COLOR", "1")]),
        (&[], &[("CARGO_TERM_COLOR", "never")]),
    ] {
        let (ok, seen) = on_a_terminal(&build(flags, env));
        assert!(
            ok && !colored(&seen),
            "{flags:?} {env:?}, on a terminal: {seen:?}"
        );
    }

    let piped = run_ok(&mut build(&[], &[]));
    assert!(!colored(&text(&piped.stderr)), "auto, piped");
    for (flags, env) in [
        (&["--color=always"][..], &[][..]),
        (&[], &[("CARGO_TERM_COLOR", "always")]),
    ] {
        let seen = text(&run_ok(&mut build(flags, env)).stderr);
        let info = seen
            .lines()
            .find(|l| l.contains("INFO"))
            .expect("a log line");
        assert!(colored(info), "{flags:?} {env:?}: our line {info:?}");
        let finished = cargo_finished(&seen);
        assert!(
            colored(&finished),
            "{flags:?} {env:?}: cargo's {finished:?}"
        );
    }

    let wrong = run_exit(&mut build(&["--color", "sometimes"], &[]), 2);
    assert!(wrong.contains("auto") && wrong.contains("never"), "{wrong}");
}
