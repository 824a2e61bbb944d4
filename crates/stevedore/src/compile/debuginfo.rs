//! `--split-debuginfo`: the image gets the executable without its symbols, and the DWARF goes
//! to a `.debug` file named by the executable's GNU build-id, as `objcopy --only-keep-debug`
//! and `strip` would split it.
//!
//! The rewrite is done here with the `object` crate, so no binutils or llvm-objcopy has to be
//! installed: every section the program loads keeps its bytes and its file offset (so the
//! stripped executable runs as the original did), and the same input always gives the same two
//! files.
//!
//! The image must not depend on the DWARF, which names the build machine's paths that no
//! remap reaches (zig compiles musl's C runtime and libunwind in its own cache, with the
//! linker's working directory as their compile dir). So the build-id is set here from the
//! stripped executable's bytes, as `debugedit --build-id` resets it after rewriting DWARF, and
//! there is no `.gnu_debuglink`, whose CRC-32 of the debug file would tie the two again;
//! debuggers find the file by build-id.

use std::path::{Path, PathBuf};

use object::build::elf::{Builder, SectionData};
use object::elf;
use sha2::Digest as _;

use crate::build_id::BuildId;
use crate::plan::Plan;

use super::{shell_quote, write_file};

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
#[non_exhaustive]
pub enum DebuginfoError {
    /// The executable cannot be read, or the stripped executable or `.debug` file cannot be
    /// written.
    #[error("cannot read or write {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The executable has no GNU build-id, which names its `.debug` file.
    #[error(
        "{} has no GNU build-id note, which names its debug file: the linker was given \
         -Wl,--build-id but wrote none; link with GNU ld, lld or zig",
        path.display()
    )]
    NoBuildId {
        /// The executable.
        path: PathBuf,
    },
    /// The executable has no DWARF to split off: it was stripped before stevedore saw it.
    #[error(
        "{} has no DWARF (.debug_* sections) to split off: something strips it before \
         stevedore can (`strip = true` or `strip = \"symbols\"` in the profile, or a \
         `-C strip` in RUSTFLAGS); remove that, or build without --split-debuginfo",
        path.display()
    )]
    NoDwarf {
        /// The executable.
        path: PathBuf,
    },
    /// The executable is an ELF file the rewrite cannot read or write back.
    #[error("cannot rewrite the ELF file {}: {message}", path.display())]
    Elf {
        /// The executable.
        path: PathBuf,
        /// What the ELF library said.
        message: String,
    },
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
    let no_build_id = || DebuginfoError::NoBuildId {
        path: executable.to_path_buf(),
    };
    BuildId::of_elf(&data).ok_or_else(no_build_id)?;
    let elf = |e: object::build::Error| DebuginfoError::Elf {
        path: executable.to_path_buf(),
        message: e.to_string(),
    };
    let mut debug = only_debug(&data)
        .map_err(elf)?
        .ok_or_else(|| DebuginfoError::NoDwarf {
            path: executable.to_path_buf(),
        })?;
    let mut stripped = stripped(&data).map_err(elf)?;
    let build_id = set_content_build_id(&mut stripped, &mut debug).ok_or_else(no_build_id)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let debug_path = dir.join(format!("{bin}.debug"));
    let stripped_path = dir.join(bin);
    write_file(&debug_path, &debug, 0o644).map_err(io(&debug_path))?;
    write_file(&stripped_path, &stripped, 0o755).map_err(io(&stripped_path))?;
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

/// `strip`: no DWARF, no symbol table (nor a `.gnu_debuglink`: see the module's docs).
fn stripped(data: &[u8]) -> Result<Vec<u8>, object::build::Error> {
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
    write_elf(builder)
}

/// Replaces the build-id in both files with the first bytes (as many as the linker wrote) of
/// the SHA-256 of the stripped executable with its build-id zeroed: the same code and data
/// give the same id, whatever the DWARF says. None when a file has no build-id note.
fn set_content_build_id(stripped: &mut [u8], debug: &mut [u8]) -> Option<BuildId> {
    let in_stripped = build_id_range(stripped)?;
    let in_debug = build_id_range(debug)?;
    stripped[in_stripped.clone()].fill(0);
    let digest: [u8; 32] = sha2::Sha256::digest(&*stripped).into();
    let id = &digest[..in_stripped.len().min(32)];
    stripped[in_stripped.start..in_stripped.start + id.len()].copy_from_slice(id);
    debug[in_debug.clone()].fill(0);
    debug[in_debug.start..in_debug.start + id.len()].copy_from_slice(id);
    BuildId::of_elf(stripped)
}

/// Where in `data` the build-id note's bytes are.
fn build_id_range(data: &[u8]) -> Option<std::ops::Range<usize>> {
    use object::Object;
    let file = object::File::parse(data).ok()?;
    let id = file.build_id().ok()??;
    // `build_id` borrows from `data`: its offset is the distance between the two.
    let start = (id.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
    Some(start..start + id.len())
}

fn write_elf(builder: Builder<'_>) -> Result<Vec<u8>, object::build::Error> {
    let mut out = Vec::new();
    builder.write(&mut out)?;
    Ok(out)
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
        assert!(!names.iter().any(|n| n == ".gnu_debuglink"), "{names:?}");
        // The build-id is the linker's no more: the content's, in both files.
        let ours = BuildId::of_elf(&stripped).expect("a build-id");
        assert_ne!(ours, id, "the linker's build-id was kept");
        assert_eq!(ours.to_string().len(), id.to_string().len());
        assert_eq!(debug.build_id, ours);
        let symbols = std::fs::read(&debug.path).unwrap();
        let names = section_names(&symbols);
        assert!(names.iter().any(|n| n == ".debug_info"), "{names:?}");
        assert_eq!(BuildId::of_elf(&symbols), Some(ours));
        // Splitting again gives the same bytes.
        let again = tempfile::tempdir().unwrap();
        let (stripped_again, _) = split(&exe, again.path(), "app").unwrap();
        assert_eq!(std::fs::read(stripped_again).unwrap(), stripped);
    }

    /// Two executables that differ only in their DWARF (a path in `.debug_str`, as another
    /// checkout or zig cache gives) split into the same stripped executable and build-id.
    #[test]
    fn the_stripped_executable_does_not_depend_on_the_dwarf() {
        let exe = std::env::current_exe().unwrap();
        let original = std::fs::read(&exe).unwrap();
        let file = object::File::parse(&*original).unwrap();
        let (offset, size) = file
            .section_by_name(".debug_str")
            .and_then(|s| s.file_range())
            .expect("this test's executable has a .debug_str");
        let mut other = original.clone();
        let byte = usize::try_from(offset + size / 2).unwrap();
        other[byte] = other[byte].wrapping_add(1);
        let dir = tempfile::tempdir().unwrap();
        let changed = dir.path().join("changed");
        std::fs::write(&changed, &other).unwrap();

        let (a, a_debug) = split(&exe, &dir.path().join("a"), "app").unwrap();
        let (b, b_debug) = split(&changed, &dir.path().join("b"), "app").unwrap();
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        assert_eq!(a_debug.build_id, b_debug.build_id);
        assert_ne!(
            std::fs::read(a_debug.path).unwrap(),
            std::fs::read(b_debug.path).unwrap(),
            "the debug files keep their own DWARF"
        );
    }
}
