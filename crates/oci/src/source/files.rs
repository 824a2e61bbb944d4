//! The files of an OCI layout, wherever they are: a directory, or the members of a tar (an
//! `oci-archive`, which is a layout in one file). Only files are read, by their names in the
//! layout (`index.json`, `blobs/sha256/HEX`); the names are made here from digests, never taken
//! from the archive, so no path a stranger wrote is opened.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A layout directory, or a tar holding one.
pub(super) enum Files {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        /// Each member's offset and size, listed on the first read (one pass over the headers).
        members: OnceCell<HashMap<String, (u64, u64)>>,
    },
}

impl Files {
    pub(super) fn dir(dir: &Path) -> Self {
        Files::Dir(dir.to_path_buf())
    }

    pub(super) fn tar(path: &Path) -> Self {
        Files::Tar {
            path: path.to_path_buf(),
            members: OnceCell::new(),
        }
    }

    /// The file `name` of the layout, to read to its end.
    pub(super) fn open(&self, name: &str) -> io::Result<Box<dyn Read>> {
        match self {
            Files::Dir(dir) => Ok(Box::new(File::open(dir.join(name))?)),
            Files::Tar { path, members } => {
                let &(offset, size) = list(path, members)?.get(name).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("the archive has no member {name}"),
                    )
                })?;
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(offset))?;
                Ok(Box::new(file.take(size)))
            }
        }
    }
}

fn list<'m>(
    path: &Path,
    members: &'m OnceCell<HashMap<String, (u64, u64)>>,
) -> io::Result<&'m HashMap<String, (u64, u64)>> {
    if let Some(listed) = members.get() {
        return Ok(listed);
    }
    let mut archive = tar::Archive::new(File::open(path)?);
    let mut listed = HashMap::new();
    // Seeking past each member's data: listing a large archive reads only its headers.
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path()?.to_string_lossy().into_owned();
        let name = name.trim_start_matches("./").to_owned();
        listed.insert(name, (entry.raw_file_position(), entry.size()));
    }
    Ok(members.get_or_init(|| listed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_of_a_tar_reads_as_the_file_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layout.tar");
        let mut tar = tar::Builder::new(File::create(&path).unwrap());
        for (name, body) in [("./oci-layout", &b"{}"[..]), ("index.json", b"[1, 2]")] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, name, body).unwrap();
        }
        tar.finish().unwrap();
        drop(tar);
        let files = Files::tar(&path);
        let read = |name: &str| {
            let mut bytes = Vec::new();
            files.open(name)?.read_to_end(&mut bytes)?;
            io::Result::Ok(bytes)
        };
        assert_eq!(read("index.json").unwrap(), b"[1, 2]");
        assert_eq!(read("oci-layout").unwrap(), b"{}");
        let missing = read("blobs/sha256/00").unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(missing.to_string().contains("no member blobs/sha256/00"));
    }
}
