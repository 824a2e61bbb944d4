//! A layer's tar entries read with bounded memory, whatever a stranger's tar holds. The `tar`
//! crate reads a GNU long name, a long link or a PAX record set whole, however large its header
//! says it is (a 512 MiB name costs 512 MiB); here those extension entries are read raw, and
//! one over [`MAX_EXTENSION`] is skipped unread and reported on the entry it describes.

use std::borrow::Cow;
use std::io::{self, Read};

/// The largest GNU long name, long link or PAX record set kept, as Go's archive/tar caps them
/// (1 MiB): a path is at most a few KiB, so anything larger is not a file system's.
pub const MAX_EXTENSION: u64 = 1 << 20;

/// An extension entry over [`MAX_EXTENSION`], skipped unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized {
    /// `a GNU long name`, `a GNU long link` or `PAX records`.
    pub what: &'static str,
    /// The size its header declares.
    pub size: u64,
}

/// One entry with its extensions applied: path and link from a GNU long name or link, else a
/// PAX `path`/`linkpath`, else the header (the `tar` crate's order).
pub struct Entry<'a, R: Read> {
    /// The entry as the tar crate reads it raw: its header and its data.
    pub inner: tar::Entry<'a, R>,
    /// The path's exact bytes.
    pub path: Vec<u8>,
    /// A link's target, if the entry is a link.
    pub link: Option<Vec<u8>>,
    /// The PAX records that describe this entry (not a global header's), in order.
    pub pax: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first extension of this entry that was over the cap: path or link may then be the
    /// header's short one, so a reader that needs them exactly must not trust this entry.
    pub oversized: Option<Oversized>,
}

impl<R: Read> Entry<'_, R> {
    /// The value of the PAX record `key`, if this entry has one.
    pub fn pax(&self, key: &str) -> Option<&[u8]> {
        let found = self.pax.iter().rev().find(|(k, _)| k == key.as_bytes());
        found.map(|(_, v)| v.as_slice())
    }

    /// A numeric PAX record (`uid`, `gid`) over the header's field.
    pub fn pax_number(&self, key: &str) -> Option<u64> {
        std::str::from_utf8(self.pax(key)?).ok()?.parse().ok()
    }

    /// The path for display and matching (lossy where it is not UTF-8).
    pub fn path_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.path)
    }
}

impl<R: Read> Read for Entry<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

/// The entries of a tar stream, extensions applied within [`MAX_EXTENSION`].
pub struct Entries<'a, R: Read> {
    raw: tar::Entries<'a, R>,
}

impl<'a, R: Read> Entries<'a, R> {
    /// The entries of `archive`, from its first; fails if the archive was already read from.
    pub fn new(archive: &'a mut tar::Archive<R>) -> io::Result<Self> {
        Ok(Entries {
            raw: archive.entries()?.raw(true),
        })
    }

    /// The next file, directory or link entry (a PAX global header is one too: its records are
    /// its content); `None` at the end of the archive.
    pub fn next_entry(&mut self) -> io::Result<Option<Entry<'a, R>>> {
        let mut long_name = None;
        let mut long_link = None;
        let mut pax = None;
        let mut oversized = None;
        loop {
            let Some(entry) = self.raw.next().transpose()? else {
                return match (&long_name, &long_link, &pax, oversized) {
                    (None, None, None, None) => Ok(None),
                    _ => Err(invalid("the archive ends after an extension header".into())),
                };
            };
            let kind = entry.header().entry_type();
            let (slot, what) = if kind.is_gnu_longname() {
                (&mut long_name, "a GNU long name")
            } else if kind.is_gnu_longlink() {
                (&mut long_link, "a GNU long link")
            } else if kind.is_pax_local_extensions() {
                (&mut pax, "PAX records")
            } else {
                return entry_with(entry, long_name, long_link, pax, oversized).map(Some);
            };
            if slot.is_some() {
                return Err(invalid(format!("one entry has {what} twice")));
            }
            match capped(entry)? {
                Ok(bytes) => *slot = Some(bytes),
                Err(size) => {
                    oversized.get_or_insert(Oversized { what, size });
                    *slot = Some(Vec::new());
                }
            }
        }
    }
}

/// An extension's bytes, or its declared size when over the cap (left unread: the next read of
/// the archive skips it in small buffers).
fn capped<R: Read>(mut entry: tar::Entry<'_, R>) -> io::Result<Result<Vec<u8>, u64>> {
    let size = entry.size();
    if size > MAX_EXTENSION {
        return Ok(Err(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut bytes)?;
    Ok(Ok(bytes))
}

fn entry_with<'a, R: Read>(
    inner: tar::Entry<'a, R>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
    oversized: Option<Oversized>,
) -> io::Result<Entry<'a, R>> {
    let records = pax.as_deref().map(records).transpose()?.unwrap_or_default();
    let record = |key: &[u8]| records.iter().rev().find(|(k, _)| k == key);
    // The raw reader sizes the data by the header; a PAX size that disagrees (a file over
    // 8 GiB as Go writes it) would put the next header inside this file's bytes.
    if let Some((_, size)) = record(b"size") {
        let size: Option<u64> = std::str::from_utf8(size).ok().and_then(|s| s.parse().ok());
        if size != Some(inner.size()) {
            return Err(invalid(format!(
                "the PAX size of {} disagrees with its header's {} bytes; stevedore does \
                 not read files over 8 GiB in a layer",
                header_path(&inner),
                inner.size()
            )));
        }
    }
    let path = match (long_name, record(b"path")) {
        (Some(name), _) if !name.is_empty() => trim_nul(name),
        (_, Some((_, path))) => path.clone(),
        _ => inner.path_bytes().into_owned(),
    };
    let link = match (long_link, record(b"linkpath")) {
        (Some(link), _) if !link.is_empty() => Some(trim_nul(link)),
        (_, Some((_, link))) => Some(link.clone()),
        _ => inner.link_name_bytes().map(Cow::into_owned),
    };
    Ok(Entry {
        inner,
        path,
        link,
        pax: records,
        oversized,
    })
}

fn records(bytes: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    tar::PaxExtensions::new(bytes)
        .map(|record| {
            let record = record?;
            Ok((record.key_bytes().to_vec(), record.value_bytes().to_vec()))
        })
        .collect()
}

/// GNU tar ends a long name or link with a NUL.
fn trim_nul(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

fn header_path<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    crate::text::printable_bytes(&entry.path_bytes())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An extension entry (`L`, `K` or `x`) whose content is `size` bytes of `data`.
    fn extension(tar: &mut tar::Builder<Vec<u8>>, kind: u8, data: impl Read, size: u64) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::new(kind));
        header.set_path("././@LongLink").unwrap();
        header.set_size(size);
        header.set_cksum();
        tar.append(&header, data).unwrap();
    }

    fn file(tar: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_path(path).unwrap();
        header.set_size(data.len() as u64);
        header.set_cksum();
        tar.append(&header, data).unwrap();
    }

    /// (path, link, oversized, content) of every entry.
    type Seen = (String, Option<String>, Option<Oversized>, String);

    fn read(bytes: &[u8]) -> io::Result<Vec<Seen>> {
        let mut archive = tar::Archive::new(bytes);
        let mut entries = Entries::new(&mut archive)?;
        let mut seen = Vec::new();
        while let Some(mut entry) = entries.next_entry()? {
            let mut content = String::new();
            entry.read_to_string(&mut content)?;
            let link = entry
                .link
                .as_ref()
                .map(|l| String::from_utf8_lossy(l).into_owned());
            seen.push((
                entry.path_lossy().into_owned(),
                link,
                entry.oversized,
                content,
            ));
        }
        Ok(seen)
    }

    #[test]
    fn gnu_long_names_and_links_within_the_cap_apply() {
        let name = format!("usr/share/{}/copyright", "d".repeat(300));
        let target = format!("/opt/{}", "t".repeat(200));
        let mut tar = tar::Builder::new(Vec::new());
        extension(
            &mut tar,
            b'L',
            format!("{name}\0").as_bytes(),
            name.len() as u64 + 1,
        );
        extension(&mut tar, b'K', target.as_bytes(), target.len() as u64);
        file(&mut tar, "short", b"text");
        file(&mut tar, "next", b"");
        let seen = read(&tar.into_inner().unwrap()).unwrap();
        assert_eq!(seen[0], (name, Some(target), None, "text".into()));
        // An extension describes one entry only.
        assert_eq!(seen[1], ("next".into(), None, None, String::new()));
    }

    #[test]
    fn an_oversized_long_name_is_skipped_unread_and_reported() {
        let size = MAX_EXTENSION * 64;
        let mut tar = tar::Builder::new(Vec::new());
        extension(&mut tar, b'L', io::repeat(b'a').take(size), size);
        file(&mut tar, "short", b"after");
        file(&mut tar, "next", b"n");
        let bytes = tar.into_inner().unwrap();
        let seen = read(&bytes).unwrap();
        let over = Oversized {
            what: "a GNU long name",
            size,
        };
        // The header's own name stands in, flagged; the archive goes on in step.
        assert_eq!(seen[0], ("short".into(), None, Some(over), "after".into()));
        assert_eq!(seen[1], ("next".into(), None, None, "n".into()));
    }

    #[test]
    fn pax_records_apply_and_oversized_ones_are_reported() {
        let mut tar = tar::Builder::new(Vec::new());
        let long = format!("opt/{}", "p".repeat(200));
        tar.append_pax_extensions([("path", long.as_bytes()), ("uid", b"65532".as_slice())])
            .unwrap();
        file(&mut tar, "short", b"x");
        let records = format!(
            "{} comment={}\n",
            9 + MAX_EXTENSION,
            "c".repeat(MAX_EXTENSION as usize)
        );
        extension(&mut tar, b'x', records.as_bytes(), records.len() as u64);
        file(&mut tar, "plain", b"y");
        let bytes = tar.into_inner().unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = Entries::new(&mut archive).unwrap();
        let first = entries.next_entry().unwrap().unwrap();
        assert_eq!(first.path, long.as_bytes());
        assert_eq!(first.pax_number("uid"), Some(65532));
        drop(first);
        let second = entries.next_entry().unwrap().unwrap();
        assert_eq!(second.path, b"plain");
        assert_eq!(second.oversized.map(|o| o.what), Some("PAX records"));
        assert!(second.pax.is_empty());
    }

    #[test]
    fn a_pax_size_the_header_disagrees_with_is_an_error() {
        let mut tar = tar::Builder::new(Vec::new());
        tar.append_pax_extensions([("size", b"9000000000".as_slice())])
            .unwrap();
        file(&mut tar, "big", b"");
        let err = read(&tar.into_inner().unwrap()).unwrap_err();
        assert!(err.to_string().contains("PAX size of big"), "{err}");
    }

    #[test]
    fn an_archive_ending_after_an_extension_is_an_error() {
        let mut tar = tar::Builder::new(Vec::new());
        extension(&mut tar, b'L', &b"name"[..], 4);
        assert!(read(&tar.into_inner().unwrap()).is_err());
    }
}
