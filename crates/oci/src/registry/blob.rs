//! Blob downloads that survive a bad network: a transfer cut or stalled part-way continues
//! with `Range` from the bytes already received (registries answer 206), or reads the body
//! again from the start and skips what it has when the registry ignores `Range`. The digest
//! check streams over the whole blob either way, and runs once more from scratch after a
//! mismatch before the mismatch is reported.

use std::io::{self, Read};

use reqwest::blocking::Response;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;

use super::client::{without_url, Client, Retry};
use super::retry::{self, Attempts};
use super::{not_found, verified, Registry, RegistryError};
use crate::cache::{BlobStore, CacheError};
use crate::digest::{ContentMismatch, Digest};
use crate::progress::Counted;
use crate::reference::Reference;

impl Registry {
    /// Streams a blob of `reference`'s repository into the store, verified against its digest
    /// and size. Nothing is stored unless every byte checks out.
    pub fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        store: &BlobStore,
    ) -> Result<(), RegistryError> {
        if verified(store, digest, reference)? {
            return Ok(());
        }
        tracing::debug!(
            "downloading {digest} ({size} bytes) from {}",
            reference.name()
        );
        let mut refetched = false;
        loop {
            self.progress.start("pull", digest, size);
            let download = Download::new(&self.client, reference, digest, size)?;
            let counted = Counted {
                inner: download,
                digest: digest.clone(),
                progress: self.progress.clone(),
            };
            let stored = store.put_verified(digest, Some(size), counted);
            self.progress.finish(digest);
            match stored.map_err(|e| stored_error(e, reference, digest)) {
                Ok(_) => return Ok(()),
                Err(RegistryError::DigestMismatch { .. }) if !refetched => {
                    tracing::warn!("{digest} arrived corrupt; fetching it once more");
                    refetched = true;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// What a failed store of a download means: the transfer's own error, a content mismatch, or
/// a local disk failure.
fn stored_error(e: CacheError, reference: &Reference, digest: &Digest) -> RegistryError {
    if let CacheError::Write { source, .. } = &e {
        if ContentMismatch::is(source) {
            return RegistryError::DigestMismatch {
                what: "blob",
                reference: reference.name(),
                expected: digest.to_string(),
                actual: source.to_string(),
            };
        }
    }
    match e {
        CacheError::Write { source, .. }
            if source
                .get_ref()
                .is_some_and(|inner| inner.is::<RegistryError>()) =>
        {
            let inner = source.into_inner().expect("checked by the guard");
            *inner
                .downcast::<RegistryError>()
                .expect("checked by the guard")
        }
        e => RegistryError::Store {
            reference: reference.to_string(),
            source: e,
        },
    }
}

/// The body of one blob, reconnecting after transient failures where it broke off.
struct Download<'a> {
    client: &'a Client,
    reference: &'a Reference,
    digest: &'a Digest,
    size: u64,
    url: String,
    response: Option<Response>,
    /// Bytes handed to the reader so far.
    received: u64,
    /// Bytes of the current body to throw away: it restarted at 0 but these are already had.
    skip: u64,
    tries: Attempts,
    /// Bytes received since the last failure: a transfer that makes progress gets its tries
    /// back, so a long download on a flaky link is not given up for old failures.
    since_failure: u64,
}

/// Progress that earns a download its tries back.
const PROGRESS: u64 = 1 << 20;

impl<'a> Download<'a> {
    fn new(
        client: &'a Client,
        reference: &'a Reference,
        digest: &'a Digest,
        size: u64,
    ) -> Result<Self, RegistryError> {
        Ok(Download {
            client,
            reference,
            digest,
            size,
            url: client.url(reference, &format!("blobs/{digest}"))?,
            response: None,
            received: 0,
            skip: 0,
            tries: client.policy().start(),
            since_failure: 0,
        })
    }

    /// Asks for the blob from where it broke off.
    fn open(&mut self) -> Result<Response, RegistryError> {
        let from = self.received;
        let response = self
            .client
            .send_url(
                self.reference,
                &[self.reference.scope("pull")],
                &self.url,
                Retry::Yes,
                &|http, url| match from {
                    0 => http.get(url),
                    from => http.get(url).header(RANGE, format!("bytes={from}-")),
                },
            )
            .map_err(|e| not_found(e, "blob", &self.reference.with_digest(self.digest.clone())))?;
        self.skip = match response.status() {
            StatusCode::PARTIAL_CONTENT if range_start(&response) == Some(from) => 0,
            StatusCode::PARTIAL_CONTENT => {
                return Err(RegistryError::Transfer {
                    reference: self.reference.name(),
                    digest: self.digest.to_string(),
                    received: from,
                    size: self.size,
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the registry answered another range than asked for",
                    ),
                })
            }
            _ => from,
        };
        if from > 0 {
            tracing::info!(
                "resuming {} at byte {from} of {}{}",
                self.digest,
                self.size,
                if self.skip > 0 {
                    " (the registry ignored Range: skipping what is had)"
                } else {
                    ""
                }
            );
        }
        Ok(response)
    }

    /// Reads from the current body, dropping the bytes a restarted body repeats.
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let response = self.response.as_mut().expect("opened before reading");
        while self.skip > 0 {
            let mut sink = [0u8; 8192];
            let want = sink
                .len()
                .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
            match response.read(&mut sink[..want])? {
                0 => return Ok(0),
                n => self.skip -= n as u64,
            }
        }
        response.read(buf)
    }

    fn broke_off(&self, source: io::Error) -> io::Error {
        io::Error::new(
            source.kind(),
            RegistryError::Transfer {
                reference: self.reference.name(),
                digest: self.digest.to_string(),
                received: self.received,
                size: self.size,
                source,
            },
        )
    }
}

impl Read for Download<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.response.is_none() {
                let response = self.open().map_err(io::Error::other)?;
                self.response = Some(response);
            }
            match self.read_body(buf).map_err(without_url) {
                Ok(n) => {
                    self.received += n as u64;
                    self.since_failure += n as u64;
                    return Ok(n);
                }
                Err(e) if retry::transient_read(&e) => {
                    self.response = None;
                    if self.since_failure >= PROGRESS {
                        self.tries = self.client.policy().start();
                    }
                    self.since_failure = 0;
                    let what = format!(
                        "the download of {} broke off at byte {} ({e})",
                        self.digest, self.received
                    );
                    if !self.tries.wait(None, &what) {
                        return Err(self.broke_off(e));
                    }
                }
                Err(e) => return Err(self.broke_off(e)),
            }
        }
    }
}

/// The first byte of a 206 answer's `Content-Range: bytes FIRST-LAST/SIZE`.
fn range_start(response: &Response) -> Option<u64> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}
