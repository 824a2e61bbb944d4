//! A second project's cold build: a new copy of the example service, in a new target dir,
//! on a machine that has built std for this toolchain before (an untimed warm-up sees to it). With the std cache, cargo
//! compiles only the project's crates; without it (`STEVEDORE_STD_CACHE=off`), std too.

use std::path::Path;

use super::measure::Stat;
use super::push::Stevedore;
use super::{hello, mib, same, Peaks, Row, Size};

/// Crates of std whose `Compiling` line in a run's log means std was compiled again.
const STD_CRATES: [&str; 3] = ["std", "core", "alloc"];

pub fn row(size: &Size, stevedore: &Stevedore, dir: &Path, logs: &Path) -> Row {
    let manifest = hello::HELLO.copy(&dir.join("hello-second"));
    let registry = stevedore
        .base
        .split('/')
        .next()
        .expect("a reference has a registry");
    let target_dir = dir.join("second-target");
    let cold = |std_cache: bool, i: usize| {
        // A new target dir every run: a cold build, as a new checkout or CI runner has.
        let _ = std::fs::remove_dir_all(&target_dir);
        let name = if std_cache { "cached" } else { "off" };
        let log = logs.join(format!("second-{name}-{i}.log"));
        let run = Stevedore {
            target_dir: target_dir.clone(),
            std_cache,
            ..stevedore.clone()
        };
        let pushed = run.push(&manifest, &format!("{registry}/second:{name}{i}"), &log);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let compiled_std = STD_CRATES
            .iter()
            .any(|c| text.contains(&format!("Compiling {c} v")));
        (pushed, compiled_std)
    };
    // Warm-up: fills the std cache if this machine has none for the toolchain yet.
    cold(true, size.runs);
    let (mut ours, mut rss, mut digests, mut std_compiles) =
        (Vec::new(), Peaks::default(), Vec::new(), 0);
    for i in 0..size.runs {
        let (pushed, compiled_std) = cold(true, i);
        ours.push(pushed.run.secs);
        rss.add(&pushed.run);
        digests.push(pushed.digest);
        std_compiles += usize::from(compiled_std);
    }
    // Once: it compiles std for minutes, the cost the cache saves.
    let (off, off_compiled_std) = cold(false, 0);
    digests.push(off.digest);
    let _ = std::fs::remove_dir_all(&target_dir);
    let (ours, theirs) = (Stat::of(&ours), Stat::of(&[off.run.secs]));
    Row {
        name: "second project's cold build+push, hello-service".into(),
        stevedore: ours,
        baseline_name: "the same, STEVEDORE_STD_CACHE=off (1 run)".into(),
        baseline: theirs,
        comparison: format!("{:.1}x faster", theirs.median / ours.median),
        target: "std not compiled again".into(),
        peak_rss_mib: mib(rss.own),
        tree_peak_rss_mib: mib(rss.tree),
        note: format!(
            "new target dir each run; std compiled in {std_compiles} of {} runs with the std cache, \
             {} without (`Compiling std` in the logs); {}",
            size.runs,
            if off_compiled_std { "yes" } else { "NOT" },
            same(&digests)
        ),
    }
}
