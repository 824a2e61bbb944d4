//! `--split-debuginfo`: the image gets the executable without its symbols, and the DWARF goes
//! to a `.debug` file named by the executable's GNU build-id, as `objcopy --only-keep-debug`,
//! `strip` and `objcopy --add-gnu-debuglink` would split it.
//!
//! The rewrite is done here with the `object` crate, so no binutils or llvm-objcopy has to be
//! installed: every section the program loads keeps its bytes and its file offset (so the
//! stripped executable runs as the original did), and the same input always gives the same two
//! files, so the image stays reproducible.

use std::path::{Path, PathBuf};

use object::build::elf::{Builder, SectionData};
use object::build::ByteString;
use object::elf;

use crate::build_id::BuildId;
use crate::plan::Plan;

use super::shell_quote;

/// The debug file split from a platform's executable.
#[derive(Debug, Clone)]
pub struct DebugFile {
    /// The `.debug` file: the DWARF and the symbol table, every loaded section left empty.
    pub path: PathBuf,
    /// The executable's build-id, which the `.debug` file carries too.
    pub build_id: BuildId,
}

/// Why an executable's symbols cannot be split off.
#[derive(Debug, thiserror::Error)]
pub enum DebuginfoError {
    #[error("cannot read or write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} has no GNU build-id note, which names its debug file: the linker was given \
         -Wl,--build-id but wrote none; link with GNU ld, lld or zig",
        path.display()
    )]
    NoBuildId { path: PathBuf },
    #[error(
        "{} has no DWARF (.debug_* sections) to split off: something strips it before \
         stevedore can (`strip = true` or `strip = \"symbols\"` in the profile, or a \
         `-C strip` in RUSTFLAGS); remove that, or build without --split-debuginfo",
        path.display()
    )]
    NoDwarf { path: PathBuf },
    #[error("cannot rewrite the ELF file {}: {message}", path.display())]
    Elf { path: PathBuf, message: String },
}

/// Shell lines for the workspace wrapper: workspace members get full debug info, and the
/// planned binary is linked with a build-id and not stripped by cargo (whose release profile
/// strips debug info when it has none). Empty when the plan does not split, so such builds
/// keep the wrapper (and the binary) they always had.
pub(super) fn wrapper_script(plan: &Plan) -> String {
    if !plan.split_debuginfo {
        return String::new();
    }
    format!(
        "set -- \"$@\" -Cdebuginfo=2\n\
         if [ \"${{CARGO_PKG_NAME:-}}\" = {} ] && [ \"${{CARGO_BIN_NAME:-}}\" = {} ]; then\n\
         set -- \"$@\" -Cstrip=none {}\nfi\n",
        shell_quote(&plan.package),
        shell_quote(&plan.bin),
        shell_quote("-Clink-arg=-Wl,--build-id"),
    )
}

/// Splits `executable` into `dir/BIN` (stripped, with a `.gnu_debuglink` to `BIN.debug`) and
/// `dir/BIN.debug`. Returns the stripped executable's path and the debug file.
pub(super) fn split(
    executable: &Path,
    dir: &Path,
    bin: &str,
) -> Result<(PathBuf, DebugFile), DebuginfoError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DebuginfoError::Io { path, source }
    };
    // The executable whole in memory: the ELF rewrite needs random access to it.
    let data = std::fs::read(executable).map_err(io(executable))?;
    let build_id = BuildId::of_elf(&data).ok_or_else(|| DebuginfoError::NoBuildId {
        path: executable.to_path_buf(),
    })?;
    let elf = |e: object::build::Error| DebuginfoError::Elf {
        path: executable.to_path_buf(),
        message: e.to_string(),
    };
    let debug_name = format!("{bin}.debug");
    let debug = only_debug(&data)
        .map_err(elf)?
        .ok_or_else(|| DebuginfoError::NoDwarf {
            path: executable.to_path_buf(),
        })?;
    let stripped = stripped(&data, &debug_name, crc32fast::hash(&debug)).map_err(elf)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let debug_path = dir.join(&debug_name);
    let stripped_path = dir.join(bin);
    write(&debug_path, &debug, 0o644).map_err(io(&debug_path))?;
    write(&stripped_path, &stripped, 0o755).map_err(io(&stripped_path))?;
    Ok((
        stripped_path,
        DebugFile {
            path: debug_path,
            build_id,
        },
    ))
}

fn is_debug(name: &[u8]) -> bool {
    name.starts_with(b".debug_") || name.starts_with(b".zdebug_")
}

/// `objcopy --only-keep-debug`: the DWARF, the symbol table and the notes (the build-id among
/// them) keep their bytes; every other loaded section keeps its address and size but no bytes
/// (NOBITS), so the program headers still describe the executable the symbols belong to.
/// None when there is no DWARF.
fn only_debug(data: &[u8]) -> Result<Option<Vec<u8>>, object::build::Error> {
    let mut builder = Builder::read(data)?;
    if !builder.sections.iter().any(|s| is_debug(&s.name)) {
        return Ok(None);
    }
    for section in builder.sections.iter_mut() {
        // Only plain bytes are emptied: tables the builder regenerates (the symbol table, and
        // a dynamic executable's .dynsym, .dynamic, relocations) stay, as it needs them whole.
        let keep = is_debug(&section.name)
            || section.sh_type == elf::SHT_NOTE
            || !matches!(section.data, SectionData::Data(_));
        if keep {
            continue;
        }
        if section.sh_flags & u64::from(elf::SHF_ALLOC) != 0 {
            section.sh_type = elf::SHT_NOBITS;
            section.data = SectionData::UninitializedData(section.sh_size);
        } else {
            section.delete = true; // .comment, .dep-v0: not symbols, and in the image already
        }
    }
    builder.delete_orphans();
    write_elf(builder).map(Some)
}

/// `strip` then `objcopy --add-gnu-debuglink`: no DWARF, no symbol table, and a
/// `.gnu_debuglink` naming the debug file and its CRC-32, for tools that look by name.
fn stripped(data: &[u8], debug_name: &str, crc: u32) -> Result<Vec<u8>, object::build::Error> {
    let mut builder = Builder::read(data)?;
    for section in builder.sections.iter_mut() {
        let symbols = matches!(
            section.data,
            SectionData::Symbol | SectionData::String | SectionData::SymbolSectionIndex
        );
        // An allocated `.debug_gdb_scripts` (rustc's pretty-printer hint) is loaded: it stays.
        let debug = is_debug(&section.name) && section.sh_flags & u64::from(elf::SHF_ALLOC) == 0;
        if debug || symbols || section.name.as_slice() == b".gnu_debuglink" {
            section.delete = true;
        }
    }
    for symbol in builder.symbols.iter_mut() {
        symbol.delete = true;
    }
    builder.delete_orphans();
    // The name, NUL-terminated and padded to 4 bytes, then the CRC in the file's byte order.
    let mut link = debug_name.as_bytes().to_vec();
    link.push(0);
    link.resize(link.len().next_multiple_of(4), 0);
    let crc = match builder.endian {
        object::Endianness::Little => crc.to_le_bytes(),
        object::Endianness::Big => crc.to_be_bytes(),
    };
    link.extend(crc);
    let section = builder.sections.add();
    section.name = ByteString::from(&b".gnu_debuglink"[..]);
    section.sh_type = elf::SHT_PROGBITS;
    section.sh_addralign = 4;
    section.data = SectionData::Data(link.into());
    write_elf(builder)
}

fn write_elf(builder: Builder<'_>) -> Result<Vec<u8>, object::build::Error> {
    let mut out = Vec::new();
    builder.write(&mut out)?;
    Ok(out)
}

/// Written by temp file and rename, so a reader never sees half a file.
fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), bytes)?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::{Object, ObjectSection};

    fn section_names(data: &[u8]) -> Vec<String> {
        let file = object::File::parse(data).expect("an ELF file");
        file.sections()
            .map(|s| s.name().unwrap_or_default().to_owned())
            .collect()
    }

    /// This test's own executable (linked with a build-id and debug info by the host's cc)
    /// splits into a stripped copy and a debug file with the same build-id.
    #[test]
    fn splits_an_executable_into_stripped_and_debug_files() {
        let exe = std::env::current_exe().unwrap();
        let original = std::fs::read(&exe).unwrap();
        let Some(id) = BuildId::of_elf(&original) else {
            panic!(
                "{} has no build-id: the host linker writes one by default",
                exe.display()
            );
        };
        let dir = tempfile::tempdir().unwrap();
        let (stripped, debug) = split(&exe, dir.path(), "app").unwrap();
        assert_eq!(debug.path, dir.path().join("app.debug"));
        let stripped = std::fs::read(stripped).unwrap();
        let names = section_names(&stripped);
        assert!(
            !names.iter().any(|n| n == ".debug_info" || n == ".symtab"),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n == ".gnu_debuglink"), "{names:?}");
        assert_eq!(BuildId::of_elf(&stripped), Some(id.clone()));
        assert_eq!(debug.build_id, id);
        let symbols = std::fs::read(&debug.path).unwrap();
        let names = section_names(&symbols);
        assert!(names.iter().any(|n| n == ".debug_info"), "{names:?}");
        assert_eq!(BuildId::of_elf(&symbols), Some(id));
        // The link names the debug file and carries its CRC-32.
        let file = object::File::parse(&*stripped).unwrap();
        let link = file.section_by_name(".gnu_debuglink").unwrap();
        let data = link.data().unwrap();
        assert!(data.starts_with(b"app.debug\0"));
        let crc = u32::from_le_bytes(data[data.len() - 4..].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(&symbols));
        // Splitting again gives the same bytes.
        let again = tempfile::tempdir().unwrap();
        let (stripped_again, _) = split(&exe, again.path(), "app").unwrap();
        assert_eq!(std::fs::read(stripped_again).unwrap(), stripped);
    }
}
