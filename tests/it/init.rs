//! `cargo stevedore init`: the table it writes is valid settings, and it never writes twice.

use std::process::Command;

use crate::util::*;

#[test]
fn init_adds_a_valid_table_once_and_prints_an_xtask_snippet() {
    let dir = tempfile::tempdir().unwrap();
    let template = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/multibin");
    std::fs::create_dir_all(dir.path().join("src/bin")).unwrap();
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "src/bin/one.rs",
        "src/bin/two.rs",
    ] {
        std::fs::copy(template.join(file), dir.path().join(file)).unwrap();
    }
    let manifest = dir.path().join("Cargo.toml");
    let init = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-stevedore"));
        cmd.args(["stevedore", "init", "--manifest-path"])
            .arg(&manifest);
        cmd
    };
    let out = run_ok(&mut init());
    assert!(
        text(&out.stdout).contains("stevedore::Build::from_manifest"),
        "{}",
        text(&out.stdout)
    );
    let written = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        written.contains("[package.metadata.stevedore]\n# Every key is optional"),
        "{written}"
    );

    // cargo and stevedore both accept the result.
    let plan = stevedore::plan::plan(&stevedore::plan::BuildOptions {
        manifest_path: Some(manifest.clone()),
        bin: Some("one".into()),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("the written table must be valid: {e}"));
    assert_eq!(plan.image, Default::default());

    // Every key the README documents is in the table, and uncommented they are valid too.
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let documented: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| key | type | default |"))
        .skip(2)
        .take_while(|l| l.starts_with("| `"))
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .collect();
    assert!(documented.len() >= 15, "{documented:?}");
    let table = &written[written.find("[package.metadata.stevedore]").unwrap()..];
    for key in &documented {
        assert!(
            table.contains(&format!("\n# {key} = ")),
            "init's table lacks `{key}`"
        );
    }
    let uncommented: String = table
        .lines()
        .map(|l| {
            let line = l
                .strip_prefix("# ")
                .filter(|l| l.contains(" = "))
                .unwrap_or(l);
            line.split("  #").next().unwrap().trim_end().to_owned() + "\n"
        })
        .collect();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(dir.path().join("config/app.toml"), "").unwrap();
    let full = written.replace(table, &uncommented);
    assert_ne!(full, written);
    std::fs::write(&manifest, &full).unwrap();
    let plan = stevedore::plan::plan(&stevedore::plan::BuildOptions {
        manifest_path: Some(manifest.clone()),
        bin: Some("one".into()),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("the table uncommented must be valid: {e}\n{uncommented}"));
    assert_eq!(plan.image.ports, [8080]);
    std::fs::write(&manifest, &written).unwrap();

    let err = run_err(&mut init());
    assert!(
        err.contains("already has a [package.metadata.stevedore] table"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&manifest).unwrap(),
        written,
        "unchanged"
    );
}
