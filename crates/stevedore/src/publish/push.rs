//! Pushing to a registry: every blob first, all at once within the run's bound (skipped when
//! present, mounted from the base's repository when it is on the same registry), then each
//! platform's manifest, the referrers, then the index under each tag, so a tag never names
//! something the registry does not hold whole; signatures last.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::uploads::{Claim, Uploads};
use super::PublishError;
use crate::assemble::{Built, Referrer};
use crate::cache::BlobStore;
use crate::digest::Digest;
use crate::oci::limits;
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError};

/// What a push did, for the user and for tests.
#[derive(Debug, Clone, Default)]
pub struct PushReport {
    /// `REPO@sha256:…` of the pushed image (index when several platforms).
    pub pushed: Vec<Reference>,
    /// Everything pushed, by digest: per repository the image (or index), each platform's
    /// manifest when there are several, then each referrer (SBOMs, provenance), then cosign's
    /// signatures and attestations. What `--image-refs` lists.
    pub refs: Vec<Reference>,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs mounted from the base's repository instead of uploaded.
    pub mounted: usize,
    /// Blobs the registry already had.
    pub existing: usize,
}

/// Where a push goes and what it may share.
pub struct Target<'a> {
    /// The registry client.
    pub registry: &'a Registry,
    /// The base image, whose repository blobs may be mounted from.
    pub base: Option<&'a Reference>,
    /// The uploads of the run: the bound on them, and blobs other pushes have sent.
    pub uploads: &'a Uploads,
}

/// Pushes `built` under every tag, blobs first.
pub fn push(
    built: &Built,
    tags: &[Reference],
    store: &BlobStore,
    to: &Target<'_>,
) -> Result<PushReport, PublishError> {
    let registry = to.registry;
    let mut report = PushReport::default();
    let mut repos: Vec<&Reference> = Vec::new();
    for tag in tags {
        if !repos.iter().any(|r| r.name() == tag.name()) {
            repos.push(tag);
        }
    }
    let top = built.top();
    let top_digest = built.top_digest();
    for repo in repos {
        push_blobs(built, repo, store, to, &mut report)?;
        for image in &built.images {
            put(
                registry,
                store,
                repo,
                image.manifest_digest().as_str(),
                &image.manifest_digest(),
                image.manifest.media_type().as_ref(),
            )?;
        }
        push_referrers(to, store, repo, &built.referrers)?;
        for tag in tags.iter().filter(|t| t.name() == repo.name()) {
            let identifier = tag
                .tag()
                .map(str::to_owned)
                .unwrap_or_else(|| top_digest.to_string());
            put(
                registry,
                store,
                tag,
                &identifier,
                &top_digest,
                top.media_type().as_ref(),
            )?;
        }
        // After the tags: a signature names a digest the registry already serves.
        for tagged in built.tagged.iter().filter(|t| t.repository == repo.name()) {
            let digest = tagged.manifest_digest();
            let media_type = tagged.manifest.media_type().to_string();
            put(registry, store, repo, &tagged.tag, &digest, &media_type)?;
        }
        report.pushed.push(repo.with_digest(top_digest.clone()));
        report.refs.push(repo.with_digest(top_digest.clone()));
        if built.images.len() > 1 {
            for image in &built.images {
                report.refs.push(repo.with_digest(image.manifest_digest()));
            }
        }
        for referrer in &built.referrers {
            report
                .refs
                .push(repo.with_digest(referrer.manifest_digest()));
        }
        for tagged in built.tagged.iter().filter(|t| t.repository == repo.name()) {
            report.refs.push(repo.with_digest(tagged.manifest_digest()));
        }
    }
    Ok(report)
}

/// PUTs a stored manifest; true when the registry indexed its subject (OCI 1.1 referrers).
fn put(
    registry: &Registry,
    store: &BlobStore,
    repo: &Reference,
    identifier: &str,
    digest: &Digest,
    media_type: &str,
) -> Result<bool, PublishError> {
    // Our own manifest, index or referrer: within the cap a registry reads of one.
    let bytes = store.read_small(digest, limits::MANIFEST.max)?;
    registry
        .put_manifest(repo, identifier, media_type, &bytes)
        .map_err(|source| PublishError::Registry {
            reference: repo.name(),
            source,
        })
}

/// Pushes the artifacts about the images (SBOMs, provenance, debug files), their blobs
/// already sent. A registry with the referrers API finds each by its `subject`; for others,
/// each subject's fallback tag lists them, updated once per subject (one GET and at most one
/// PUT, rather than one of each per artifact, and never two writers of one tag at once).
fn push_referrers(
    to: &Target<'_>,
    store: &BlobStore,
    repo: &Reference,
    referrers: &[Referrer],
) -> Result<(), PublishError> {
    let mut unlisted: Vec<(Digest, Vec<serde_json::Value>)> = Vec::new();
    for referrer in referrers {
        let digest = referrer.manifest_digest();
        let media_type = referrer.manifest.media_type().to_string();
        if put(
            to.registry,
            store,
            repo,
            digest.as_str(),
            &digest,
            &media_type,
        )? {
            continue;
        }
        let descriptor = serde_json::to_value(&referrer.manifest).expect("a descriptor serialises");
        let subject = referrer.subject_digest();
        match unlisted.iter_mut().find(|(s, _)| *s == subject) {
            Some((_, descriptors)) => descriptors.push(descriptor),
            None => unlisted.push((subject, vec![descriptor])),
        }
    }
    for (subject, descriptors) in unlisted {
        to.registry
            .add_to_referrers_tag(repo, &subject, &descriptors)
            .map_err(|source| PublishError::Registry {
                reference: repo.name(),
                source,
            })?;
    }
    Ok(())
}

/// Every blob pushed to `repo`, each once: the images' configs and layers, the referrers'
/// blobs, and the blobs of the signatures and attestations for `repo`.
fn blobs(built: &Built, repo: &Reference) -> Vec<(Digest, u64)> {
    let images = built
        .images
        .iter()
        .flat_map(|i| std::iter::once(&i.config).chain(&i.layers));
    let referrers = built.referrers.iter().flat_map(|r| &r.blobs);
    let tagged = built
        .tagged
        .iter()
        .filter(|t| t.repository == repo.name())
        .flat_map(|t| &t.blobs);
    let mut out: Vec<(Digest, u64)> = Vec::new();
    for desc in images.chain(referrers).chain(tagged) {
        if !out.iter().any(|(d, _)| d == desc.digest()) {
            out.push((desc.digest().clone(), desc.size()));
        }
    }
    out
}

fn push_blobs(
    built: &Built,
    repo: &Reference,
    store: &BlobStore,
    to: &Target<'_>,
    report: &mut PushReport,
) -> Result<(), PublishError> {
    let blobs = blobs(built, repo);
    let mount_from = to
        .base
        .filter(|b| b.registry() == repo.registry() && b.repository() != repo.repository());
    let next = AtomicUsize::new(0);
    let outcome = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..to.uploads.jobs().min(blobs.len()) {
            s.spawn(|| {
                while let Some((digest, size)) = blobs.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let result = push_blob(to, store, repo, digest, *size, mount_from);
                    let failed = result.is_err();
                    outcome.lock().expect("outcome lock").push(result);
                    if failed {
                        // Stop handing out work; the others finish what they started.
                        next.store(blobs.len(), Ordering::SeqCst);
                    }
                }
            });
        }
    });
    for result in outcome.into_inner().expect("outcome lock") {
        let sent = result.map_err(|source| PublishError::Registry {
            reference: repo.name(),
            source,
        })?;
        report.count(sent);
    }
    Ok(())
}

enum Sent {
    Existing,
    Mounted,
    Uploaded,
}

impl PushReport {
    fn count(&mut self, sent: Sent) {
        match sent {
            Sent::Existing => self.existing += 1,
            Sent::Mounted => self.mounted += 1,
            Sent::Uploaded => self.uploaded += 1,
        }
    }
}

/// Sends one blob the cheapest way: not at all when the repository has it, mounted from the
/// base's repository or from one another push of this run sent it to, else uploaded.
fn push_blob(
    to: &Target<'_>,
    store: &BlobStore,
    repo: &Reference,
    digest: &Digest,
    size: u64,
    mount_from: Option<&Reference>,
) -> Result<Sent, RegistryError> {
    let registry = to.registry;
    if registry.blob_exists(repo, digest)? {
        tracing::debug!("{digest} already in {}", repo.name());
        to.uploads.holds(repo, digest);
        return Ok(Sent::Existing);
    }
    if let Some(from) = mount_from {
        if registry.mount_blob(repo, digest, from)? {
            tracing::info!("mounted {} from {}", short(digest), from.name());
            to.uploads.holds(repo, digest);
            return Ok(Sent::Mounted);
        }
    }
    let upload = match to.uploads.claim(repo, digest) {
        Claim::MountFrom(from) => {
            if registry.mount_blob(repo, digest, &from)? {
                tracing::info!("mounted {} from {}", short(digest), from.name());
                return Ok(Sent::Mounted);
            }
            // The registry would not mount it (another user's repository, a policy).
            to.uploads.slot()
        }
        Claim::Upload(upload) => upload,
    };
    registry.upload_blob(repo, digest, size, store)?;
    upload.done(repo);
    tracing::info!("pushed {} ({})", short(digest), human(size));
    Ok(Sent::Uploaded)
}

fn short(digest: &Digest) -> &str {
    &digest.as_str()[..19]
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
