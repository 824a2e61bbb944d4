//! Two compressed tar layers, walked entry by entry in lockstep, to the first entry that
//! differs.

use std::cmp::Ordering;
use std::fmt;
use std::io::{self, Read};

use super::{DiffError, Side};
use crate::digest::{Digest, HashingWriter};
use crate::oci::decompress;
use crate::oci::entries::{self, Entries, MAX_EXTENSION};
use crate::text::printable_bytes;

/// The first entry of two layers that differs, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDifference {
    /// The path as the tar names it, e.g. `usr/local/bin/hello` (directories end in `/`).
    pub path: String,
    pub what: Difference,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// At this position only one side has an entry by this path.
    OnlyIn(Side),
    EntryType {
        ours: tar::EntryType,
        theirs: tar::EntryType,
    },
    LinkTarget {
        ours: Option<String>,
        theirs: Option<String>,
    },
    Content {
        ours: Content,
        theirs: Content,
    },
    Mode {
        ours: u32,
        theirs: u32,
    },
    Owner {
        ours: Owner,
        theirs: Owner,
    },
    /// As the tar records it: seconds, or a PAX value that may carry a fraction.
    Mtime {
        ours: String,
        theirs: String,
    },
}

/// What an entry's bytes amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub size: u64,
    pub digest: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: u64,
    pub gid: u64,
    /// User and group names; stevedore writes them empty.
    pub user: String,
    pub group: String,
}

/// Compares two compressed (gzip or zstd) tar layers entry by entry, in archive order, streaming both
/// (never holding a layer or a file whole in memory). Returns the first difference, or None if
/// every entry's header fields that matter and content are equal.
///
/// Fields that matter: path, entry type, link target, content, mode, uid/gid and their names,
/// mtime (PAX values win over the header's, as when unpacking).
pub fn layers(ours: impl Read, theirs: impl Read) -> Result<Option<FileDifference>, DiffError> {
    let mut ours = tar::Archive::new(decompress(ours).map_err(failed(Side::Ours))?);
    let mut theirs = tar::Archive::new(decompress(theirs).map_err(failed(Side::Theirs))?);
    let mut ours = Entries::new(&mut ours).map_err(failed(Side::Ours))?;
    let mut theirs = Entries::new(&mut theirs).map_err(failed(Side::Theirs))?;
    loop {
        let ours = next_entry(&mut ours, Side::Ours)?;
        let theirs = next_entry(&mut theirs, Side::Theirs)?;
        let difference = match (ours, theirs) {
            (None, None) => return Ok(None),
            (Some(ours), None) => Some(ours.only_in(Side::Ours)),
            (None, Some(theirs)) => Some(theirs.only_in(Side::Theirs)),
            (Some(ours), Some(theirs)) => compare(ours, theirs),
        };
        if difference.is_some() {
            return Ok(difference);
        }
    }
}

fn failed(side: Side) -> impl Fn(io::Error) -> DiffError {
    move |source| DiffError::Layer { side, source }
}

/// One layer entry reduced to what a comparison needs, its content to a hash.
struct Entry {
    path: String,
    /// The exact path bytes, so unusual names compare exactly and sort as stevedore sorts.
    key: Vec<u8>,
    kind: tar::EntryType,
    link: Option<Vec<u8>>,
    mode: u32,
    owner: Owner,
    mtime: String,
    content: Content,
}

impl Entry {
    fn only_in(self, side: Side) -> FileDifference {
        FileDifference {
            path: self.path,
            what: Difference::OnlyIn(side),
        }
    }
}

fn next_entry<R: Read>(
    entries: &mut Entries<'_, R>,
    side: Side,
) -> Result<Option<Entry>, DiffError> {
    let entry = entries.next_entry().map_err(failed(side))?;
    entry.map(summarize).transpose().map_err(failed(side))
}

fn summarize<R: Read>(mut entry: entries::Entry<'_, R>) -> io::Result<Entry> {
    if let Some(over) = entry.oversized {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the entry {} has {} of {} bytes, more than the {MAX_EXTENSION} stevedore reads",
                printable_bytes(&entry.path),
                over.what,
                over.size
            ),
        ));
    }
    let header = entry.inner.header();
    let kind = header.entry_type();
    let mode = header.mode()?;
    // A global header's records are its content, compared as such; a local one's override
    // the header's fields, as when unpacking.
    let owner = Owner {
        uid: entry.pax_number("uid").map_or_else(|| header.uid(), Ok)?,
        gid: entry.pax_number("gid").map_or_else(|| header.gid(), Ok)?,
        user: printable_bytes(
            entry
                .pax("uname")
                .or(header.username_bytes())
                .unwrap_or_default(),
        ),
        group: printable_bytes(
            entry
                .pax("gname")
                .or(header.groupname_bytes())
                .unwrap_or_default(),
        ),
    };
    let mtime = match entry.pax("mtime") {
        Some(mtime) => printable_bytes(mtime),
        None => header.mtime()?.to_string(),
    };
    let content = hash(&mut entry)?;
    Ok(Entry {
        path: printable_bytes(&entry.path),
        key: entry.path,
        kind,
        link: entry.link,
        mode,
        owner,
        mtime,
        content,
    })
}

fn hash(entry: &mut impl Read) -> io::Result<Content> {
    let mut hashing = HashingWriter::new(io::sink());
    io::copy(entry, &mut hashing)?;
    let (_, digest, size) = hashing.finish();
    Ok(Content { size, digest })
}

fn compare(ours: Entry, theirs: Entry) -> Option<FileDifference> {
    // Both sides are sorted the same way, so the path that sorts first is the one the other
    // side skipped.
    match ours.key.cmp(&theirs.key) {
        Ordering::Less => return Some(ours.only_in(Side::Ours)),
        Ordering::Greater => return Some(theirs.only_in(Side::Theirs)),
        Ordering::Equal => {}
    }
    let what = if ours.kind != theirs.kind {
        Difference::EntryType {
            ours: ours.kind,
            theirs: theirs.kind,
        }
    } else if ours.link != theirs.link {
        Difference::LinkTarget {
            ours: ours.link.map(|l| printable_bytes(&l)),
            theirs: theirs.link.map(|l| printable_bytes(&l)),
        }
    } else if ours.content != theirs.content {
        Difference::Content {
            ours: ours.content,
            theirs: theirs.content,
        }
    } else if ours.mode != theirs.mode {
        Difference::Mode {
            ours: ours.mode,
            theirs: theirs.mode,
        }
    } else if ours.owner != theirs.owner {
        Difference::Owner {
            ours: ours.owner,
            theirs: theirs.owner,
        }
    } else if ours.mtime != theirs.mtime {
        Difference::Mtime {
            ours: ours.mtime,
            theirs: theirs.mtime,
        }
    } else {
        return None;
    };
    Some(FileDifference {
        path: ours.path,
        what,
    })
}

impl fmt::Display for FileDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.what)
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::OnlyIn(side) => write!(f, "only in {side}"),
            Difference::EntryType { ours, theirs } => write!(
                f,
                "entry type differs (ours {}, theirs {})",
                type_name(*ours),
                type_name(*theirs)
            ),
            Difference::LinkTarget { ours, theirs } => write!(
                f,
                "link target differs (ours {}, theirs {})",
                link_name(ours),
                link_name(theirs)
            ),
            Difference::Content { ours, theirs } => {
                write!(f, "content differs (ours {ours}, theirs {theirs})")
            }
            Difference::Mode { ours, theirs } => {
                write!(f, "mode differs (ours {ours:04o}, theirs {theirs:04o})")
            }
            Difference::Owner { ours, theirs } => {
                write!(f, "owner differs (ours {ours}, theirs {theirs})")
            }
            Difference::Mtime { ours, theirs } => {
                write!(f, "mtime differs (ours {ours}, theirs {theirs})")
            }
        }
    }
}

impl fmt::Display for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Twelve hex digits tell two hashes apart; the full digests are in the fields.
        write!(
            f,
            "{} bytes sha256:{}…",
            self.size,
            &self.digest.hex()[..12]
        )
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "uid {} gid {}", self.uid, self.gid)?;
        if !self.user.is_empty() || !self.group.is_empty() {
            write!(f, " ({:?}:{:?})", self.user, self.group)?;
        }
        Ok(())
    }
}

fn link_name(link: &Option<String>) -> String {
    match link {
        Some(target) => format!("{target:?}"),
        None => "none".to_owned(),
    }
}

fn type_name(kind: tar::EntryType) -> String {
    let name = match kind {
        tar::EntryType::Regular => "regular file",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Symlink => "symlink",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Directory => "directory",
        tar::EntryType::Fifo => "fifo",
        tar::EntryType::Continuous => "contiguous file",
        tar::EntryType::XGlobalHeader => "PAX global header",
        tar::EntryType::GNUSparse => "sparse file",
        _ => return format!("type {:?}", kind.as_byte() as char),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::BlobStore;
    use crate::layer::LayerSpec;
    use flate2::write::GzEncoder;
    use flate2::Compression;

    const MTIME: u64 = 1_700_000_000;

    /// A tar.gz of `files` (a path ending in `/` is a directory), every header as stevedore
    /// writes it unless `tweak` changes it.
    fn layer(files: &[(&str, &[u8])], tweak: impl Fn(&str, &mut tar::Header)) -> Vec<u8> {
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (path, data) in files {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(if path.ends_with('/') {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(MTIME);
            header.set_size(data.len() as u64);
            tweak(path, &mut header);
            tar.append_data(&mut header, path, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    fn plain(files: &[(&str, &[u8])]) -> Vec<u8> {
        layer(files, |_, _| {})
    }

    fn diff(ours: &[u8], theirs: &[u8]) -> Option<FileDifference> {
        layers(ours, theirs).unwrap()
    }

    const FILES: &[(&str, &[u8])] = &[
        ("etc/", b""),
        ("etc/motd", b"hello"),
        ("usr/local/bin/app", b"\x7fELF"),
    ];

    #[test]
    fn identical_layers_have_no_difference() {
        assert_eq!(diff(&plain(FILES), &plain(FILES)), None);
        assert_eq!(diff(&plain(&[]), &plain(&[])), None);
    }

    #[test]
    fn content_difference_names_sizes_and_digests() {
        let mut changed = FILES.to_vec();
        changed[1] = ("etc/motd", b"hello!");
        let found = diff(&plain(FILES), &plain(&changed)).unwrap();
        let ours = Content {
            size: 5,
            digest: Digest::of(b"hello"),
        };
        let theirs = Content {
            size: 6,
            digest: Digest::of(b"hello!"),
        };
        assert_eq!(found.path, "etc/motd");
        assert_eq!(
            found.what,
            Difference::Content {
                ours: ours.clone(),
                theirs: theirs.clone()
            }
        );
        assert_eq!(
            found.to_string(),
            format!(
                "etc/motd: content differs (ours 5 bytes sha256:{}…, theirs 6 bytes sha256:{}…)",
                &ours.digest.hex()[..12],
                &theirs.digest.hex()[..12]
            )
        );
    }

    #[test]
    fn same_size_different_bytes_is_a_content_difference() {
        let mut changed = FILES.to_vec();
        changed[1] = ("etc/motd", b"HELLO");
        let found = diff(&plain(FILES), &plain(&changed)).unwrap();
        assert!(matches!(found.what, Difference::Content { .. }), "{found}");
    }

    #[test]
    fn mode_difference() {
        let theirs = layer(FILES, |path, h| {
            if path == "usr/local/bin/app" {
                h.set_mode(0o755);
            }
        });
        let found = diff(&plain(FILES), &theirs).unwrap();
        assert_eq!(
            found.to_string(),
            "usr/local/bin/app: mode differs (ours 0644, theirs 0755)"
        );
    }

    #[test]
    fn mtime_difference_on_the_first_entry() {
        let theirs = layer(FILES, |_, h| h.set_mtime(MTIME + 1));
        let found = diff(&plain(FILES), &theirs).unwrap();
        assert_eq!(
            found.to_string(),
            "etc/: mtime differs (ours 1700000000, theirs 1700000001)"
        );
    }

    #[test]
    fn owner_difference() {
        let theirs = layer(FILES, |path, h| {
            if path == "etc/motd" {
                h.set_uid(65532);
                h.set_username("nonroot").unwrap();
            }
        });
        let found = diff(&plain(FILES), &theirs).unwrap();
        assert_eq!(
            found.to_string(),
            "etc/motd: owner differs (ours uid 0 gid 0, theirs uid 65532 gid 0 (\"nonroot\":\"\"))"
        );
    }

    #[test]
    fn entry_type_and_link_target_differences() {
        let link = |target: &'static str| {
            move |path: &str, h: &mut tar::Header| {
                if path == "etc/motd" {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    h.set_link_name(target).unwrap();
                }
            }
        };
        let files = [("etc/motd", &b""[..])];
        let found = diff(&plain(&files), &layer(&files, link("issue"))).unwrap();
        assert_eq!(
            found.to_string(),
            "etc/motd: entry type differs (ours regular file, theirs symlink)"
        );
        let found = diff(
            &layer(&files, link("issue")),
            &layer(&files, link("../issue")),
        )
        .unwrap();
        assert_eq!(
            found.to_string(),
            "etc/motd: link target differs (ours \"issue\", theirs \"../issue\")"
        );
    }

    #[test]
    fn entry_missing_from_theirs() {
        let found = diff(&plain(FILES), &plain(&FILES[..2])).unwrap();
        assert_eq!(found.to_string(), "usr/local/bin/app: only in ours");
        // At the same position, the path that sorts first is the one the other side lacks.
        let without_motd = [FILES[0], FILES[2]];
        let found = diff(&plain(FILES), &plain(&without_motd)).unwrap();
        assert_eq!(found.path, "etc/motd");
        assert_eq!(found.what, Difference::OnlyIn(Side::Ours));
    }

    #[test]
    fn entry_missing_from_ours() {
        let found = diff(&plain(&FILES[1..]), &plain(FILES)).unwrap();
        assert_eq!(found.to_string(), "etc/: only in theirs");
        let found = diff(&plain(&[]), &plain(FILES)).unwrap();
        assert_eq!(found.what, Difference::OnlyIn(Side::Theirs));
    }

    #[test]
    fn long_names_are_reported_in_full() {
        let long = format!("usr/share/{}/file", "d".repeat(150));
        let ours = plain(&[(long.as_str(), b"a")]);
        let theirs = plain(&[(long.as_str(), b"b")]);
        assert_eq!(diff(&ours, &theirs).unwrap().path, long);
    }

    /// A PAX-named entry whose mtime a PAX record may override.
    fn pax_layer(path: &str, mtime: Option<&str>) -> Vec<u8> {
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut records = vec![("path", path.as_bytes())];
        records.extend(mtime.map(|m| ("mtime", m.as_bytes())));
        tar.append_pax_extensions(records).unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_path("short").unwrap();
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header.set_size(0);
        header.set_cksum();
        tar.append(&header, io::empty()).unwrap();
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn pax_path_and_mtime_win_over_the_header() {
        let long = format!("opt/{}", "p".repeat(200));
        assert_eq!(diff(&pax_layer(&long, None), &pax_layer(&long, None)), None);
        let found = diff(
            &pax_layer(&long, None),
            &pax_layer(&long, Some("1700000000.5")),
        )
        .unwrap();
        assert_eq!(
            found.to_string(),
            format!("{long}: mtime differs (ours 1700000000, theirs 1700000000.5)")
        );
    }

    #[test]
    fn a_long_name_over_the_cap_is_an_error_not_a_read() {
        let size = MAX_EXTENSION * 32;
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_path("././@LongLink").unwrap();
        header.set_size(size);
        header.set_cksum();
        tar.append(&header, io::repeat(b'n').take(size)).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_cksum();
        tar.append_data(&mut header, "short", io::empty()).unwrap();
        let theirs = tar.into_inner().unwrap().finish().unwrap();
        let err = layers(&plain(FILES)[..], &theirs[..]).unwrap_err();
        let DiffError::Layer { side, source } = err else {
            panic!("{err:?}");
        };
        assert_eq!(side, Side::Theirs);
        assert_eq!(
            source.to_string(),
            format!("the entry short has a GNU long name of {size} bytes, more than the 1048576 stevedore reads")
        );
    }

    #[test]
    fn paths_and_names_are_printed_with_control_characters_escaped() {
        let ours = plain(&[("etc/\x1b[2Jmotd", b"a")]);
        let theirs = plain(&[("etc/\x1b[2Jmotd", b"b")]);
        let found = diff(&ours, &theirs).unwrap();
        assert_eq!(found.path, "etc/\\u{1b}[2Jmotd");
    }

    #[test]
    fn errors_say_which_side() {
        let good = plain(FILES);
        let err = layers(&good[..], &b"not gzip"[..]).unwrap_err();
        assert!(
            matches!(
                err,
                DiffError::Layer {
                    side: Side::Theirs,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "cannot read their layer");
        let truncated = &good[..good.len() / 2];
        let err = layers(truncated, &good[..]).unwrap_err();
        assert!(
            matches!(
                err,
                DiffError::Layer {
                    side: Side::Ours,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn finds_the_changed_binary_in_stevedore_layers() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let write = |bytes: &[u8]| {
            let binary = dir.path().join("app");
            std::fs::write(&binary, bytes).unwrap();
            let layer = LayerSpec::application(&binary, "hello")
                .unwrap()
                .write(&store, MTIME, crate::oci::Compression::Gzip)
                .unwrap();
            store.open_blob(&layer.digest).unwrap()
        };
        let ours = write(b"\x7fELF one build");
        let same = write(b"\x7fELF one build");
        let theirs = write(b"\x7fELF another build");
        assert_eq!(layers(ours, same).unwrap(), None);
        let ours = write(b"\x7fELF one build");
        let found = layers(ours, theirs).unwrap().unwrap();
        assert_eq!(found.path, "usr/local/bin/hello");
        assert!(matches!(found.what, Difference::Content { .. }), "{found}");
    }
}
