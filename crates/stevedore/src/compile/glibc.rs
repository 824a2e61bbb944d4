//! glibc builds (`--libc gnu`): the version the base ships, read from its dpkg records, which
//! zig links against (so the binary asks for no symbol the base lacks); and the check, on the
//! binary itself, that it needs no newer `GLIBC_` symbol version than that, made before
//! anything is pushed.

use object::elf;
use object::read::elf::{FileHeader, Sym};

pub use crate::platform::GlibcVersion;

/// The glibc of a base from its dpkg records, (package, version): its `libc6` package's
/// version (Debian and distroless name glibc so).
pub fn of_packages<'a>(
    packages: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<GlibcVersion> {
    packages
        .into_iter()
        .filter(|(name, _)| *name == "libc6")
        .find_map(|(_, version)| GlibcVersion::parse(version))
}

/// A binary's need of a glibc version: the newest `GLIBC_x.y` it asks for and one symbol that
/// asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub version: GlibcVersion,
    pub symbol: String,
}

/// The newest glibc symbol version an ELF executable needs (`None`: it needs none, as a
/// static binary, or it is no ELF file the reader understands).
pub fn newest_need(binary: &[u8]) -> Option<Need> {
    let read = match object::FileKind::parse(binary).ok()? {
        object::FileKind::Elf32 => needs::<elf::FileHeader32<object::Endianness>>(binary),
        object::FileKind::Elf64 => needs::<elf::FileHeader64<object::Endianness>>(binary),
        _ => return None,
    };
    read.ok().flatten()
}

fn needs<Elf: FileHeader<Endian = object::Endianness>>(
    data: &[u8],
) -> Result<Option<Need>, object::read::Error> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let Some(versions) = sections.versions(endian, data)? else {
        return Ok(None);
    };
    let symbols = sections.symbols(endian, data, elf::SHT_DYNSYM)?;
    let mut newest: Option<Need> = None;
    for (index, symbol) in symbols.enumerate() {
        if !symbol.is_undefined(endian) {
            continue;
        }
        let Some(version) = versions.version(versions.version_index(endian, index))? else {
            continue;
        };
        let name = String::from_utf8_lossy(version.name());
        let Some(version) = name.strip_prefix("GLIBC_").and_then(GlibcVersion::parse) else {
            continue;
        };
        if newest.as_ref().is_none_or(|n| version > n.version) {
            let symbol = symbols.symbol_name(endian, symbol)?;
            newest = Some(Need {
                version,
                symbol: String::from_utf8_lossy(symbol).into_owned(),
            });
        }
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_debian_and_symbol_names() {
        assert_eq!(
            GlibcVersion::parse("2.36-9+deb12u10"),
            Some(GlibcVersion(2, 36))
        );
        assert_eq!(GlibcVersion::parse("2.17"), Some(GlibcVersion(2, 17)));
        assert_eq!(GlibcVersion::parse("2.3.4"), Some(GlibcVersion(2, 3)));
        assert_eq!(GlibcVersion::parse("2"), None);
        assert_eq!(GlibcVersion::parse("PRIVATE"), None);
        assert!(GlibcVersion(2, 36) > GlibcVersion(2, 4));
        assert_eq!(GlibcVersion(2, 36).to_string(), "2.36");
        let packages = [
            ("base-files", "12.4+deb12u15"),
            ("libc6", "2.36-9+deb12u10"),
        ];
        assert_eq!(of_packages(packages), Some(GlibcVersion(2, 36)));
        assert_eq!(of_packages(packages[..1].iter().copied()), None);
    }

    /// This test's own executable, on a glibc host, needs glibc symbols: the reader finds the
    /// newest of them, as `readelf -V` lists them.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_newest_need_of_a_glibc_executable_is_read() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let need = newest_need(&exe).expect("a glibc executable needs glibc");
        assert!(need.version >= GlibcVersion(2, 2), "{need:?}");
        assert!(!need.symbol.is_empty());
        let listed = std::process::Command::new("readelf")
            .args(["-V", "--wide"])
            .arg(std::env::current_exe().unwrap())
            .output()
            .expect("readelf (binutils) runs");
        let listed = String::from_utf8_lossy(&listed.stdout);
        let newest = listed
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .filter_map(|w| w.strip_prefix("GLIBC_"))
            .filter_map(GlibcVersion::parse)
            .max();
        assert_eq!(Some(need.version), newest, "{listed}");
    }

    #[test]
    fn a_static_binary_needs_no_glibc() {
        let object = super::super::auditable::elf_object("x86_64-unknown-linux-musl", b"x")
            .expect("an object");
        assert_eq!(newest_need(&object), None);
        assert_eq!(newest_need(b"#!/bin/sh\n"), None);
    }
}
