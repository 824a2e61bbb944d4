//! `Build::debuginfo`: an image's debug symbols, fetched; nothing is built.

use std::path::Path;

use super::{Build, Error, ErrorKind};
use crate::source::Location;
use crate::verify;

impl Build {
    /// Fetches the debug file of every platform of `published` (attached by
    /// `--split-debuginfo`) into `dir/.build-id/xx/yyyy.debug`, gdb's `debug-file-directory`
    /// layout. Builds nothing.
    pub fn debuginfo(
        &self,
        published: &Location,
        dir: &Path,
    ) -> Result<Vec<verify::DebugFile>, Error> {
        self.reading(published, |source, image| {
            Ok(verify::fetch_debuginfo(source, image, dir).map_err(ErrorKind::Verify)?)
        })
    }
}
