//! `Build::debuginfo`: an image's debug symbols, fetched; nothing is built.

use std::path::Path;

use super::{Build, Error, ErrorKind};
use crate::cache::BlobStore;
use crate::verify::{self, Published, Source};

impl Build {
    /// Fetches the debug file of every platform of `published` (attached by
    /// `--split-debuginfo`) into `dir/.build-id/xx/yyyy.debug`, gdb's `debug-file-directory`
    /// layout. Builds nothing.
    pub fn debuginfo(
        &self,
        published: &Published,
        dir: &Path,
    ) -> Result<Vec<verify::DebugFile>, Error> {
        let registry = self.registry_client(&[])?;
        let store = BlobStore::open_default()?;
        let source = Source {
            published,
            registry: &registry,
            store: &store,
        };
        let image = source.image().map_err(ErrorKind::Verify)?;
        Ok(verify::fetch_debuginfo(&source, &image, dir).map_err(ErrorKind::Verify)?)
    }
}
