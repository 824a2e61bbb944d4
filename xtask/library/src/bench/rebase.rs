//! A base's fix reaching the images: the bench's projects, pushed on the stand-in, put on a
//! fixed base (one more layer, as distroless publishes a fix) by `cargo stevedore rebase
//! --push`, against rebuilding them on it from a new target dir, as a CI job that rebuilds
//! every service after a base fix does (std from stevedore's cache). The two must give the
//! same digests: that is rebase's promise.

use std::path::Path;

use super::hello::Project;
use super::measure::Stat;
use super::push::Stevedore;
use super::{mib, Peaks, Row, Size};

pub fn row(
    projects: &[&Project],
    size: &Size,
    stevedore: &Stevedore,
    fixed_base: &str,
    dir: &Path,
    logs: &Path,
) -> Row {
    let registry = stevedore
        .base
        .split('/')
        .next()
        .expect("a reference has a registry");
    // The images to rebase, on the stand-in (the project rows left their builds warm).
    let published: Vec<_> = projects
        .iter()
        .map(|p| {
            let manifest = p.copy(&dir.join(p.name));
            let image = format!("{registry}/rebase-{}:on-a", p.name);
            let log = logs.join(format!("rebase-{}-on-a.log", p.name));
            stevedore.push(&manifest, &image, &log);
            (p.name, manifest, image)
        })
        .collect();
    let on_fix = Stevedore {
        base: fixed_base.to_owned(),
        ..stevedore.clone()
    };
    let cold_target = dir.join("rebase-rebuild-target");
    let rebuild = Stevedore {
        target_dir: cold_target.clone(),
        ..on_fix.clone()
    };
    let (mut ours, mut theirs, mut rss) = (Vec::new(), Vec::new(), Peaks::default());
    let mut pairs = Vec::new();
    for i in 0..size.runs {
        let (mut rebased_secs, mut rebuilt_secs) = (0.0, 0.0);
        for (name, manifest, image) in &published {
            let tag = format!("{registry}/rebased-{name}:r{i}");
            let log = logs.join(format!("rebase-{name}-{i}.log"));
            let rebased = on_fix.rebase(manifest, image, &tag, &log);
            rebased_secs += rebased.run.secs;
            rss.add(&rebased.run);
            // A new target dir for every rebuild: a cold build, as a CI runner's.
            let _ = std::fs::remove_dir_all(&cold_target);
            let tag = format!("{registry}/rebuilt-{name}:r{i}");
            let log = logs.join(format!("rebase-rebuild-{name}-{i}.log"));
            let rebuilt = rebuild.push(manifest, &tag, &log);
            rebuilt_secs += rebuilt.run.secs;
            pairs.push((rebased.digest, rebuilt.digest));
        }
        ours.push(rebased_secs);
        theirs.push(rebuilt_secs);
    }
    let _ = std::fs::remove_dir_all(&cold_target);
    let names: Vec<_> = published.iter().map(|(name, _, _)| *name).collect();
    let (ours, theirs) = (Stat::of(&ours), Stat::of(&theirs));
    Row {
        name: format!(
            "rebase {} images onto a fixed base, --push ({})",
            names.len(),
            names.join(", ")
        ),
        stevedore: ours,
        baseline_name: "rebuild them on it, new target dir, std cached".into(),
        baseline: theirs,
        comparison: format!("{:.1}x faster", theirs.median / ours.median),
        target: "seconds, whatever the compile".into(),
        peak_rss_mib: mib(rss.own),
        tree_peak_rss_mib: mib(rss.tree),
        note: format!(
            "times summed over the images; no compile (cargo metadata only); rebased = rebuilt: {}",
            equal(&pairs)
        ),
    }
}

/// Whether every rebased digest equals its rebuild's.
fn equal(pairs: &[(String, String)]) -> String {
    match pairs.iter().find(|(rebased, rebuilt)| rebased != rebuilt) {
        None => format!("yes, all {}", pairs.len()),
        Some((rebased, rebuilt)) => format!("NO: rebased {rebased}, rebuilt {rebuilt}"),
    }
}
