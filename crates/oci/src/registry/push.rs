//! The push side of the distribution API: blob existence, cross-repository mount, streamed
//! uploads (monolithic, or chunked for large blobs), and manifest PUTs.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use reqwest::blocking::Body;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};

use super::client::Retry;
use super::{Registry, RegistryError, OCI_INDEX};
use crate::cache::BlobStore;
use crate::digest::Digest;
use crate::progress::Counted;
use crate::reference::Reference;

/// Blobs up to this size go up in one PUT; larger ones in chunks of [`CHUNK`].
const MONOLITHIC_LIMIT: u64 = 64 << 20;
const CHUNK: u64 = 32 << 20;

impl Registry {
    /// Whether the repository already has the blob (HEAD).
    pub fn blob_exists(&self, repo: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let scopes = [repo.scope("pull,push")];
        match self
            .client
            .send(repo, &scopes, &format!("blobs/{digest}"), &|http, url| {
                http.head(url)
            }) {
            Ok(_) => Ok(true),
            Err(RegistryError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Checks that `repo` can be pushed to, before there is anything to push: opens an upload
    /// session (which needs a reachable registry, accepted credentials and push access) and
    /// cancels it.
    pub fn check_push(&self, repo: &Reference) -> Result<(), RegistryError> {
        let location = self.start_upload(repo)?;
        self.cancel_upload(repo, &location);
        Ok(())
    }

    /// Opens an upload session (POST) and returns its URL.
    fn start_upload(&self, repo: &Reference) -> Result<String, RegistryError> {
        let scopes = [repo.scope("pull,push")];
        let started = self
            .client
            .send(repo, &scopes, "blobs/uploads/", &|http, url| {
                http.post(url).header(CONTENT_LENGTH, 0)
            })?;
        self.location(repo, &started)
    }

    /// Asks the registry to link a blob from another repository on it; `false` if it would not.
    pub fn mount_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        from: &Reference,
    ) -> Result<bool, RegistryError> {
        let scopes = [repo.scope("pull,push"), from.scope("pull")];
        let path = format!("blobs/uploads/?mount={digest}&from={}", from.repository());
        let response = self.client.send(repo, &scopes, &path, &|http, url| {
            http.post(url).header(CONTENT_LENGTH, 0)
        })?;
        // 201 means mounted; 202 means the registry opened an ordinary upload instead.
        Ok(response.status().as_u16() == 201)
    }

    /// Uploads a blob from the store, streaming from disk. A PATCH or PUT that fails is not
    /// sent again on the same session (its state is unknown): the session is cancelled and the
    /// upload starts over on a new one, within the retry policy.
    pub fn upload_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        store: &BlobStore,
    ) -> Result<(), RegistryError> {
        let path = store.path(digest);
        let mut tries = self.client.policy().start();
        loop {
            self.progress.start("push", digest, size);
            let mut session = None;
            let sent = self.upload_once(repo, digest, size, &path, &mut session);
            self.progress.finish(digest);
            let Err(e) = sent else {
                return Ok(());
            };
            if let Some(location) = session {
                self.cancel_upload(repo, &location);
            }
            let what = format!(
                "the upload of {digest} to {} failed ({e}); starting over on a new session",
                repo.name()
            );
            if !restartable(&e) || !tries.wait(None, &what) {
                return Err(e);
            }
        }
    }

    /// One upload session: POST, PATCHes for a large blob, the closing PUT. `session` holds
    /// the upload's URL while it is open, so a failure can cancel it.
    fn upload_once(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        path: &Path,
        session: &mut Option<String>,
    ) -> Result<(), RegistryError> {
        let scopes = [repo.scope("pull,push")];
        let mut location = self.start_upload(repo)?;
        *session = Some(location.clone());
        let mut offset = 0;
        if size > MONOLITHIC_LIMIT {
            while offset < size {
                let len = CHUNK.min(size - offset);
                let range = format!("{offset}-{}", offset + len - 1);
                let response =
                    self.client
                        .send_url(repo, &scopes, &location, Retry::No, &|http, url| {
                            http.patch(url)
                                .timeout(self.client.upload_timeout(len))
                                .header(CONTENT_TYPE, "application/octet-stream")
                                .header(CONTENT_RANGE, range.as_str())
                                .body(self.section(digest, path, offset, len))
                        })?;
                location = self.location(repo, &response)?;
                *session = Some(location.clone());
                offset += len;
            }
        }
        let rest = size - offset;
        let url = format!(
            "{location}{}digest={digest}",
            if location.contains('?') { '&' } else { '?' }
        );
        self.client
            .send_url(repo, &scopes, &url, Retry::No, &|http, url| {
                http.put(url)
                    .timeout(self.client.upload_timeout(rest))
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(self.section(digest, path, offset, rest))
            })?;
        *session = None;
        Ok(())
    }

    /// Tells the registry to drop an upload session that failed (best effort: a registry may
    /// not allow it, and it expires them anyway).
    fn cancel_upload(&self, repo: &Reference, location: &str) {
        // Registries ask for the `delete` action for any DELETE, an upload's included.
        let scopes = [repo.scope("pull,push,delete")];
        let cancelled = self
            .client
            .send_url(repo, &scopes, location, Retry::No, &|http, url| {
                http.delete(url)
            });
        if let Err(e) = cancelled {
            tracing::debug!("could not cancel an upload session on {}: {e}", repo.name());
        }
    }

    fn section(&self, digest: &Digest, path: &Path, offset: u64, len: u64) -> Body {
        Body::sized(
            self.counted(digest, FileSection::new(path.to_path_buf(), offset, len)),
            len,
        )
    }

    fn counted(&self, digest: &Digest, section: FileSection) -> Counted<FileSection> {
        Counted {
            inner: section,
            digest: digest.clone(),
            progress: self.progress.clone(),
        }
    }

    fn location(
        &self,
        repo: &Reference,
        response: &reqwest::blocking::Response,
    ) -> Result<String, RegistryError> {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Status {
                method: "POST".into(),
                url: repo.name(),
                status: response.status().as_u16(),
                code: None,
                detail: " (no Location header for the upload)".into(),
                hint: String::new(),
            })?;
        self.client.location(repo, location)
    }

    /// PUTs a manifest or index under `identifier` (a tag or its digest). Returns whether the
    /// registry indexed the manifest's `subject` (the OCI-Subject header of OCI 1.1), which
    /// registries without the referrers API never say.
    pub fn put_manifest(
        &self,
        repo: &Reference,
        identifier: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<bool, RegistryError> {
        let scopes = [repo.scope("pull,push")];
        let expected = Digest::of(bytes);
        let response = self.client.send(
            repo,
            &scopes,
            &format!("manifests/{identifier}"),
            &|http, url| {
                http.put(url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.to_vec())
            },
        )?;
        let said = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let subject_indexed = response.headers().contains_key("oci-subject");
        match said {
            Some(actual) if actual != expected => Err(RegistryError::DigestMismatch {
                what: "pushed manifest",
                reference: format!("{}:{identifier}", repo.name()),
                expected: expected.to_string(),
                actual: actual.to_string(),
            }),
            _ => Ok(subject_indexed),
        }
    }

    /// Lists `referrers` under the OCI 1.1 fallback tag `sha256-<subject hex>`, an index of
    /// everything that refers to `subject`, for registries without the referrers API: one GET,
    /// and one PUT when any of them is not listed yet.
    pub fn add_to_referrers_tag(
        &self,
        repo: &Reference,
        subject: &Digest,
        referrers: &[serde_json::Value],
    ) -> Result<(), RegistryError> {
        let tag = format!("sha256-{}", subject.hex());
        let tagged: Reference = format!("{}:{tag}", repo.name())
            .parse()
            .expect("a repository name with a valid tag");
        let mut index = match self.fetch_manifest(&tagged) {
            Ok(fetched) => {
                serde_json::from_slice(&fetched.bytes).map_err(|source| RegistryError::Json {
                    what: "referrers index",
                    reference: tagged.to_string(),
                    source,
                })?
            }
            Err(RegistryError::NotFound { .. }) => serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [],
            }),
            Err(e) => return Err(e),
        };
        let Some(manifests) = index["manifests"].as_array_mut() else {
            return Err(RegistryError::MediaType {
                reference: tagged.to_string(),
                media_type: "an index without manifests".into(),
            });
        };
        let before = manifests.len();
        for referrer in referrers {
            if !manifests.iter().any(|m| m["digest"] == referrer["digest"]) {
                manifests.push(referrer.clone());
            }
        }
        if manifests.len() == before {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&index).expect("a JSON value serialises");
        self.put_manifest(repo, &tag, OCI_INDEX, &bytes).map(drop)
    }
}

/// Whether an upload that failed this way may succeed on a new session: a transient failure
/// (`RegistryError::transient`), or the registry forgot the session.
fn restartable(e: &RegistryError) -> bool {
    e.transient()
        || matches!(e, RegistryError::Status { code, .. } if code.as_deref() == Some("BLOB_UPLOAD_UNKNOWN"))
}

/// A byte range of a file, opened on first read so a retried request re-reads from the start.
struct FileSection {
    path: PathBuf,
    offset: u64,
    len: u64,
    file: Option<io::Take<File>>,
}

impl FileSection {
    fn new(path: PathBuf, offset: u64, len: u64) -> Self {
        FileSection {
            path,
            offset,
            len,
            file: None,
        }
    }
}

impl Read for FileSection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.file.is_none() {
            let mut file = File::open(&self.path)?;
            file.seek(SeekFrom::Start(self.offset))?;
            self.file = Some(file.take(self.len));
        }
        self.file.as_mut().expect("opened above").read(buf)
    }
}
