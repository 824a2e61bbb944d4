//! `cargo xtask bench [--quick] [--json FILE]`: how fast stevedore packages, pushes and
//! rebuilds, each against what a user would otherwise run, on this machine. Prints one table
//! and writes the figures as JSON. See BENCHMARKS.md for what each row means.

mod hello;
mod measure;
mod package;
mod push;
mod rebase;
mod second;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use measure::Stat;

use crate::{fail, project_root, run_ok};

pub const USAGE: &str = "cargo xtask bench [--quick] [--json FILE] [--bins DIR]";

/// How much work one bench run does.
struct Size {
    /// Bytes of machine code packaged and pushed.
    input: u64,
    /// Timed runs per row (after one untimed warm-up where a row needs one).
    runs: usize,
}

const FULL: Size = Size {
    input: 100_000_000,
    runs: 3,
};
/// Small enough for CI once the bench's musl std is built (the first run builds it).
const QUICK: Size = Size {
    input: 10_000_000,
    runs: 1,
};

/// One line of the table.
#[derive(serde::Serialize)]
struct Row {
    name: String,
    /// Seconds.
    stevedore: Stat,
    baseline_name: String,
    baseline: Stat,
    /// How the two compare, as the targets state it.
    comparison: String,
    target: String,
    /// Largest peak RSS of the stevedore process itself over the runs, MiB.
    peak_rss_mib: f64,
    /// Largest peak RSS of any process in a run (cargo, rustc, the linker), MiB.
    tree_peak_rss_mib: f64,
    note: String,
}

pub fn run(args: &[String]) -> ExitCode {
    let mut size = &FULL;
    let mut json_path = None;
    let mut bins = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => size = &QUICK,
            "--json" => json_path = rest.next().map(PathBuf::from),
            // Release binaries built elsewhere (e.g. from an older commit, for a before/after).
            "--bins" => bins = rest.next().map(PathBuf::from),
            _ => fail(&format!("unknown argument {arg}\nusage: {USAGE}")),
        }
    }
    let dir = stevedore_testbed::testbed_dir().join("bench");
    let json_path = json_path.unwrap_or_else(|| dir.join("bench.json"));
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", logs.display())));
    let bins = bins.unwrap_or_else(release_binaries);
    let input = package::input(&dir, size.input);
    let mb = size.input / 1_000_000;
    // Other work on the machine slows every row; the table says how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?").to_owned();

    let mut rows = packaging(size, &bins, &input, &dir, &logs);
    let (registry, base) = push::registry();
    let fixed_base = registry.push_fixed_base("fixed", "a fix\n");
    let stevedore = push::Stevedore {
        exe: bins.join("cargo-stevedore"),
        base,
        target_dir: dir.join("target"),
        cache_dir: dir.join("stevedore-cache"),
        ceiling: dir.clone(),
        std_cache: true,
    };
    rows.push(repush(size, &stevedore, &input, &dir, &logs));
    rows.extend(project_rows(&hello::HELLO, size, &stevedore, &dir, &logs));
    rows.extend(project_rows(&hello::AXUM, size, &stevedore, &dir, &logs));
    let projects = [&hello::HELLO, &hello::AXUM];
    rows.push(rebase::row(
        &projects,
        size,
        &stevedore,
        &fixed_base,
        &dir,
        &logs,
    ));
    rows.push(second::row(size, &stevedore, &dir, &logs));

    print_table(&rows, mb, &load);
    let json = serde_json::json!({
        "machine": machine(),
        "load_average_at_start": load,
        "input_bytes": size.input,
        "runs": size.runs,
        "rows": rows,
    });
    std::fs::write(
        &json_path,
        serde_json::to_vec_pretty(&json).expect("rows serialize"),
    )
    .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", json_path.display())));
    eprintln!("bench: figures written to {}", json_path.display());
    ExitCode::SUCCESS
}

/// Builds cargo-stevedore and xtask-library in release mode (what users run) and returns their
/// dir.
fn release_binaries() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_ok(
        Command::new(cargo)
            .args(["build", "--release", "--locked", "--quiet"])
            .args(["-p", "cargo-stevedore", "-p", "xtask-library"])
            .current_dir(project_root()),
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    project_root().join(target).join("release")
}

/// Packaging the input with gzip and with zstd, each against `gzip -6 | sha256sum`.
fn packaging(size: &Size, bins: &Path, input: &Path, dir: &Path, logs: &Path) -> Vec<Row> {
    let xtask = bins.join("xtask-library");
    let scratch = dir.join("package");
    let mut runs = [Vec::new(), Vec::new()];
    let mut rss = [Peaks::default(), Peaks::default()];
    let mut digests = [Vec::new(), Vec::new()];
    let mut gzip = Vec::new();
    let mut limit = Vec::new();
    let mut zstd_cli = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for i in 0..size.runs {
        for (k, compression) in ["gzip", "zstd"].into_iter().enumerate() {
            let log = logs.join(format!("package-{compression}-{i}.log"));
            let (run, digest) = package::package(&xtask, input, &scratch, compression, &log);
            runs[k].push(run.secs);
            rss[k].add(&run);
            digests[k].push(digest);
        }
        gzip.push(package::gzip_sha256sum(input, &logs.join("gzip.log")).secs);
        limit.push(package::limit(&xtask, input, &logs.join("limit.log")));
        zstd_cli.push(package::zstd_cli(input, cores, &logs.join("zstd-cli.log")).secs);
    }
    for digests in &mut digests {
        digests.dedup();
        if digests.len() != 1 {
            fail(&format!(
                "packaging the same input gave different digests: {digests:?}"
            ));
        }
    }
    let (gzip, limit, zstd_cli) = (Stat::of(&gzip), Stat::of(&limit), Stat::of(&zstd_cli));
    let mb = size.input / 1_000_000;
    let row = |k: usize, name: String, target: &str, note: String| {
        let ours = Stat::of(&runs[k]);
        Row {
            name,
            stevedore: ours,
            baseline_name: "gzip -6 \\| sha256sum".into(),
            baseline: gzip,
            comparison: format!("{:.2}x", ours.median / gzip.median),
            target: target.into(),
            peak_rss_mib: mib(rss[k].own),
            tree_peak_rss_mib: mib(rss[k].tree),
            note,
        }
    };
    vec![
        row(
            0,
            format!("package {mb} MB into a fresh store"),
            "<= 0.3x",
            format!(
                "{cores}-core chunked-deflate limit {:.2} s = {:.2}x; layer {}",
                limit.median,
                limit.median / gzip.median,
                digests[0][0]
            ),
        ),
        row(
            1,
            format!("package {mb} MB, --compression zstd"),
            "<= 0.1x",
            format!(
                "zstd level 3 on {cores} workers; zstd's own CLI alone (-3 -T{cores}, no tar or \
                 hashing) {:.2} s = {:.2}x; layer {}",
                zstd_cli.median,
                zstd_cli.median / gzip.median,
                digests[1][0]
            ),
        ),
    ]
}

fn repush(size: &Size, stevedore: &push::Stevedore, input: &Path, dir: &Path, logs: &Path) -> Row {
    // One project per size, so alternating full and quick runs does not recompile it.
    let name = format!("big{}mb", size.input / 1_000_000);
    let manifest = push::big_project(&dir.join(&name), input, &name);
    let registry = stevedore
        .base
        .split('/')
        .next()
        .expect("a reference has a registry");
    let buildah = push::Buildah::new(&dir.join("buildah"));
    // Warm-up: compile (and the first stevedore push); buildah pulls the base into its store.
    stevedore.push(
        &manifest,
        &format!("{registry}/big:warm"),
        &logs.join("big-warm.log"),
    );
    let binary = push::built_binary(&stevedore.target_dir, &name);
    buildah.push(
        &stevedore.base,
        &binary,
        &format!("{registry}/bapp:warm"),
        &logs.join("buildah-warm.log"),
    );
    let (mut ours, mut theirs, mut rss, mut uploads) =
        (Vec::new(), Vec::new(), Peaks::default(), 0);
    let mut digests = Vec::new();
    for i in 0..size.runs {
        let pushed = stevedore.push(
            &manifest,
            &format!("{registry}/big:r{i}"),
            &logs.join(format!("big-{i}.log")),
        );
        digests.push(pushed.digest);
        ours.push(pushed.run.secs);
        rss.add(&pushed.run);
        uploads += pushed.uploaded;
        let image = format!("{registry}/bapp:r{i}");
        theirs.push(
            buildah
                .push(
                    &stevedore.base,
                    &binary,
                    &image,
                    &logs.join(format!("buildah-{i}.log")),
                )
                .secs,
        );
    }
    let (ours, theirs) = (Stat::of(&ours), Stat::of(&theirs));
    Row {
        name: format!(
            "re-push unchanged {} MB binary, new tag",
            size.input / 1_000_000
        ),
        stevedore: ours,
        baseline_name: "buildah from/copy/commit/push (warm)".into(),
        baseline: theirs,
        comparison: format!("{:.1}x faster", theirs.median / ours.median),
        target: ">= 5x faster".into(),
        peak_rss_mib: mib(rss.own),
        tree_peak_rss_mib: mib(rss.tree),
        note: format!(
            "{uploads} blob uploads in {} runs (build+push, cargo no-op included); {}",
            size.runs,
            same(&digests)
        ),
    }
}

/// The cargo builds a row compares with: the same toolchain as stevedore (the judged baseline)
/// and rustup's default one (shown in the note: another compiler, so another speed).
struct Baselines {
    same: hello::Cargo,
    same_dir: PathBuf,
    default: hello::Cargo,
    default_dir: PathBuf,
}

impl Baselines {
    fn new(dir: &Path) -> Baselines {
        Baselines {
            same: hello::Cargo::toolchain(push::TOOLCHAIN),
            same_dir: dir.join(format!("cargo-target-{}", push::TOOLCHAIN)),
            default: hello::Cargo::default_toolchain(),
            default_dir: dir.join("cargo-target"),
        }
    }

    /// One build with each cargo; returns the two times, same toolchain first.
    fn build(&self, manifest: &Path, logs: &Path, name: &str) -> (f64, f64) {
        let same = self.same.build(
            manifest,
            &self.same_dir,
            &logs.join(format!("cargo-{name}.log")),
        );
        let default = self.default.build(
            manifest,
            &self.default_dir,
            &logs.join(format!("cargo-default-{name}.log")),
        );
        (same.secs, default.secs)
    }
}

/// The runs of one row: stevedore's, and the two cargo baselines'.
#[derive(Default)]
struct Series {
    ours: Vec<f64>,
    cargo: Vec<f64>,
    cargo_default: Vec<f64>,
    rss: Peaks,
    uploads: u64,
    digests: Vec<String>,
}

impl Series {
    fn add(&mut self, cargo: (f64, f64), pushed: push::Pushed) {
        self.cargo.push(cargo.0);
        self.cargo_default.push(cargo.1);
        self.ours.push(pushed.run.secs);
        self.rss.add(&pushed.run);
        self.uploads += pushed.uploaded;
        self.digests.push(pushed.digest);
    }

    /// The row; `note` is followed by the default toolchain's figure.
    fn row(&self, name: &str, baseline: &str, target: &str, note: String) -> Row {
        let (ours, cargo) = (Stat::of(&self.ours), Stat::of(&self.cargo));
        let default = Stat::of(&self.cargo_default);
        Row {
            name: name.into(),
            stevedore: ours,
            baseline_name: format!("{baseline}, toolchain {}", push::TOOLCHAIN),
            baseline: cargo,
            comparison: format!("{:+.2} s", ours.median - cargo.median),
            target: target.into(),
            peak_rss_mib: mib(self.rss.own),
            tree_peak_rss_mib: mib(self.rss.tree),
            note: format!(
                "{note}; rustup's default cargo (another rustc) took {:.3} s",
                default.median
            ),
        }
    }
}

/// The no-op and one-line rows of `project`, and for the example its Cargo.lock bump row.
fn project_rows(
    project: &hello::Project,
    size: &Size,
    stevedore: &push::Stevedore,
    dir: &Path,
    logs: &Path,
) -> Vec<Row> {
    let name = project.name;
    let manifest = project.copy(&dir.join(name));
    let registry = stevedore
        .base
        .split('/')
        .next()
        .expect("a reference has a registry");
    let cargo = Baselines::new(dir);
    let tag = |t: &str| format!("{registry}/{name}:{t}");
    let log = |what: &str| logs.join(format!("{name}-{what}.log"));
    // Warm-up: every builder compiles everything once.
    project.edit(&manifest, 0);
    cargo.build(&manifest, logs, "warm");
    stevedore.push(&manifest, &tag("warm"), &log("warm"));

    let mut noop = Series::default();
    for i in 0..size.runs {
        let times = cargo.build(&manifest, logs, "noop");
        let pushed = stevedore.push(
            &manifest,
            &tag(&format!("n{i}")),
            &log(&format!("noop-{i}")),
        );
        noop.add(times, pushed);
    }
    let mut edit = Series::default();
    for i in 0..size.runs {
        project.edit(&manifest, i + 1);
        let times = cargo.build(&manifest, logs, "edit");
        let pushed = stevedore.push(
            &manifest,
            &tag(&format!("e{i}")),
            &log(&format!("edit-{i}")),
        );
        edit.add(times, pushed);
    }
    let mut rows = vec![
        noop.row(
            &format!("no-op build+push, {name}"),
            "cargo build --release (no-op)",
            "<= +0.05 s, 0 uploads",
            format!(
                "{} blob uploads in {} runs; {}",
                noop.uploads,
                size.runs,
                same(&noop.digests)
            ),
        ),
        edit.row(
            &format!("one-line change build+push, {name}"),
            "cargo build --release (one line)",
            "<= +0.3 s",
            format!(
                "{} blob uploads in {} runs; stevedore links a musl binary with zig, cargo a host one",
                edit.uploads, size.runs
            ),
        ),
    ];
    // The lock bump moves the example's own `cc`.
    if project.name == hello::HELLO.name {
        rows.push(bump_row(&manifest, &cargo, size, stevedore, logs, &tag));
    }
    rows
}

/// The example's Cargo.lock bump: `cc` moved between two versions, built `cc` removed first.
fn bump_row(
    manifest: &Path,
    cargo: &Baselines,
    size: &Size,
    stevedore: &push::Stevedore,
    logs: &Path,
    tag: &dyn Fn(&str) -> String,
) -> Row {
    let mut bump = Series::default();
    for i in 0..size.runs {
        // Starts from the example's own version, so the first run is a change too.
        let version = hello::CC_VERSIONS[i % 2];
        let target_dirs = [
            cargo.same_dir.as_path(),
            cargo.default_dir.as_path(),
            stevedore.target_dir.as_path(),
        ];
        hello::bump(
            manifest,
            version,
            &target_dirs,
            &logs.join("cargo-update.log"),
        );
        let times = cargo.build(manifest, logs, "bump");
        let log = logs.join(format!("hello-bump-{i}.log"));
        bump.add(
            times,
            stevedore.push(manifest, &tag(&format!("b{i}")), &log),
        );
    }
    bump.row(
        "Cargo.lock bump (cc) build+push, hello-service",
        "cargo build --release (same bump)",
        "<= +0.5 s",
        format!(
            "cc {} <-> {}, built cc removed first; {} blob uploads in {} runs; stevedore compiles the C code with zig for musl",
            hello::CC_VERSIONS[0],
            hello::CC_VERSIONS[1],
            bump.uploads,
            size.runs
        ),
    )
}

/// Whether every run gave one digest, as an unchanged input must.
fn same(digests: &[String]) -> String {
    let mut unique = digests.to_vec();
    unique.dedup();
    match unique.as_slice() {
        [one] => format!("digest unchanged {}", &one[..one.len().min(19)]),
        _ => format!("DIGESTS DIFFER: {unique:?}"),
    }
}

/// The largest peaks over a row's stevedore runs, KiB.
#[derive(Default)]
struct Peaks {
    own: u64,
    tree: u64,
}

impl Peaks {
    fn add(&mut self, run: &measure::Run) {
        self.own = self.own.max(run.own_peak_kib);
        self.tree = self.tree.max(run.max_rss_kib);
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_table(rows: &[Row], mb: u64, load: &str) {
    println!(
        "\nstevedore bench ({mb} MB input; median of runs; {}; load average {load} at start)\n",
        machine()
    );
    println!("| benchmark | stevedore | baseline | baseline time | comparison | target | peak RSS (stevedore / with children) | note |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.3} s | {} | {:.3} s | {} | {} | {:.1} / {:.1} MiB | {} |",
            r.name,
            r.stevedore.median,
            r.baseline_name,
            r.baseline.median,
            r.comparison,
            r.target,
            r.peak_rss_mib,
            r.tree_peak_rss_mib,
            r.note
        );
    }
}

/// A one-line description of the machine: cores and OS.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "unknown OS".into());
    format!("{cores} cores, {os}")
}

pub use package::{child as package_child, limit_child};
