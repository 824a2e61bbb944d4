//! The binary's dependency list, embedded as cargo-auditable does, so scanners that read it
//! (Trivy, Grype/Syft, `cargo audit bin`) see the crates inside the image: the `.dep-v0`
//! section of an ELF object linked into the executable, holding zlib-compressed JSON in the
//! `auditable-serde` format (format 1: proc-macros and their dependencies count as build-time).
//!
//! The object is made here (deterministic bytes, no file name inside), named by its content,
//! and the workspace wrapper, beside which it is written, adds it to the link of the planned
//! binary only.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use cargo_metadata::cargo_platform::Cfg;
use cargo_metadata::{DependencyKind, Metadata, Package, PackageId, TargetKind};
use serde::Serialize;

use crate::digest::Digest;
use crate::plan::Plan;

use super::{shell_quote, write_file, CompileError};

/// Why the dependency list cannot be embedded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditableError {
    /// The Rust target (the field) has no `cfg` values to pick its dependencies with; this is
    /// a bug in stevedore.
    #[error("no cfg values were read for {0}, so its binary cannot list its crates")]
    NoCfg(String),
    /// The Rust target (the field) is of an architecture whose object stevedore cannot write.
    #[error(
        "cannot embed the dependency list in a binary for {0}: stevedore writes objects only \
         for the platforms it builds; build with --no-auditable"
    )]
    Arch(String),
    /// The plan's `cargo metadata` answer has no resolved dependency graph.
    #[error("cargo metadata has no dependency graph (it must run without --no-deps)")]
    NoGraph,
    /// A package id (the field) is missing from the plan's dependency graph; cargo's answer
    /// is inconsistent.
    #[error("package `{0}` is not in cargo metadata's dependency graph")]
    NotInGraph(String),
}

/// The symbol linkers are told to keep (`-u`), so `--gc-sections` leaves the section alone.
const SYMBOL: &str = "AUDITABLE_VERSION_INFO";
const SECTION: &str = ".dep-v0";

/// The objects to link, per Rust target; empty when auditing is off.
#[derive(Debug, Default)]
pub(super) struct Links {
    /// (Rust target, the object's bytes, its file name: named by its content).
    objects: Vec<(String, Vec<u8>, String)>,
}

impl Links {
    /// One object per planned platform; `cfgs` are the platforms' `cfg` values, index for
    /// index.
    pub(super) fn for_plan(plan: &Plan, cfgs: &[Vec<Cfg>]) -> Result<Self, CompileError> {
        if !plan.auditable {
            return Ok(Links::default());
        }
        let mut objects = Vec::new();
        for (i, platform) in plan.platforms.iter().enumerate() {
            let target = plan.rust_target(platform);
            let cfg = cfgs
                .get(i)
                .ok_or_else(|| AuditableError::NoCfg(target.to_owned()))?;
            let json = dependency_json(&plan.graph, &plan.package_id, (target, cfg))?;
            let object = elf_object(target, &compress(&json))
                .ok_or_else(|| AuditableError::Arch(target.to_owned()))?;
            let name = format!("{}.o", &Digest::of(&object).hex()[..32]);
            objects.push((target.to_owned(), object, name));
        }
        Ok(Links { objects })
    }

    /// Shell lines for the wrapper: when rustc links `bin` of `package` for a target with an
    /// object, the object (beside the wrapper, which runs as `$0`) and the `-u` that keeps it
    /// join rustc's arguments. The objects' names are in the lines, so the wrapper's own
    /// content-derived name changes with them and cargo relinks exactly when the list changes
    /// or auditing is switched on or off. Empty when there are no objects.
    pub(super) fn script(&self, package: &str, bin: &str) -> String {
        if self.objects.is_empty() {
            return String::new();
        }
        let mut cases = String::new();
        for (target, _, name) in &self.objects {
            cases.push_str(&format!(
                "  *' --target {target} '*) set -- \"$@\" \"-Clink-arg=${{0%/*}}/{name}\" {} ;;\n",
                shell_quote(&format!("-Clink-arg=-Wl,-u,{SYMBOL}"))
            ));
        }
        format!(
            "if [ \"${{CARGO_PKG_NAME:-}}\" = {} ] && [ \"${{CARGO_BIN_NAME:-}}\" = {} ]; then\n\
             case \" $* \" in\n{cases}esac\nfi\n",
            shell_quote(package),
            shell_quote(bin)
        )
    }

    /// Writes the objects into `dir`, the wrapper's directory.
    pub(super) fn write_into(&self, dir: &Path) -> Result<(), CompileError> {
        for (_, object, name) in &self.objects {
            let path = dir.join(name);
            write_file(&path, object, 0o644).map_err(|source| CompileError::Wrapper {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// zlib at a fixed level: the same list gives the same bytes.
fn compress(json: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(7));
    z.write_all(json).expect("writing to memory");
    z.finish().expect("writing to memory")
}

#[derive(Serialize)]
struct VersionInfo {
    packages: Vec<AuditPackage>,
    format: u32,
}

#[derive(Serialize)]
struct AuditPackage {
    name: String,
    version: String,
    source: &'static str,
    #[serde(skip_serializing_if = "Kind::is_runtime")]
    kind: Kind,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dependencies: Vec<usize>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    root: bool,
}

/// How a crate reaches the binary; ordered weakest first, as auditable-serde orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Build,
    Runtime,
}

impl Kind {
    fn is_runtime(&self) -> bool {
        *self == Kind::Runtime
    }
}

/// The strongest way a resolve edge uses its crate on `target`; `None` when it is not used
/// there (see [`crate::plan::uses_on`]).
fn edge_kind(dep: &cargo_metadata::NodeDep, target: (&str, &[Cfg])) -> Option<Kind> {
    crate::plan::uses_on(dep, target)
        .into_iter()
        .map(|kind| match kind {
            DependencyKind::Build => Kind::Build,
            _ => Kind::Runtime,
        })
        .max()
}

/// The auditable-serde JSON for the crates `root`'s binary is built from on `target`.
pub(crate) fn dependency_json(
    metadata: &Metadata,
    root: &PackageId,
    target: (&str, &[Cfg]),
) -> Result<Vec<u8>, AuditableError> {
    let resolve = metadata.resolve.as_ref().ok_or(AuditableError::NoGraph)?;
    let nodes: BTreeMap<&PackageId, &cargo_metadata::Node> =
        resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let packages: BTreeMap<&PackageId, &Package> =
        metadata.packages.iter().map(|p| (&p.id, p)).collect();
    let is_proc_macro = |id: &PackageId| {
        packages.get(id).is_some_and(|p| {
            p.targets
                .iter()
                .any(|t| t.kind.contains(&TargetKind::ProcMacro))
        })
    };
    // A crate's kind is the strongest over every path to it; a build dependency's own
    // dependencies are build-time too, as is everything under a proc-macro.
    let mut kinds: BTreeMap<&PackageId, Kind> = BTreeMap::from([(root, Kind::Runtime)]);
    let mut pending = vec![root];
    while let Some(id) = pending.pop() {
        let node = nodes
            .get(id)
            .ok_or_else(|| AuditableError::NotInGraph(id.repr.clone()))?;
        let parent = kinds[id];
        for dep in &node.deps {
            let Some(mut kind) = edge_kind(dep, target) else {
                continue;
            };
            kind = kind.min(parent);
            if is_proc_macro(&dep.pkg) {
                kind = Kind::Build;
            }
            if kinds.get(&dep.pkg).is_none_or(|old| kind > *old) {
                kinds.insert(&dep.pkg, kind);
                pending.push(&dep.pkg);
            }
        }
    }
    let mut order: Vec<&Package> = kinds
        .keys()
        .map(|id| {
            packages
                .get(id)
                .copied()
                .ok_or_else(|| AuditableError::NotInGraph(id.repr.clone()))
        })
        .collect::<Result<_, _>>()?;
    // Names, versions and sources only: a path crate's id holds this machine's path.
    let key = |p: &&Package| {
        (
            p.name.to_string(),
            p.version.clone(),
            source_repr(p),
            p.id.clone(),
        )
    };
    order.sort_by_key(key);
    let index: BTreeMap<&PackageId, usize> =
        order.iter().enumerate().map(|(i, p)| (&p.id, i)).collect();
    let list = order
        .iter()
        .map(|p| {
            let deps: BTreeSet<usize> = nodes[&p.id]
                .deps
                .iter()
                .filter(|d| edge_kind(d, target).is_some())
                .filter_map(|d| index.get(&d.pkg).copied())
                .collect();
            AuditPackage {
                name: p.name.to_string(),
                version: p.version.to_string(),
                source: source_kind(p),
                kind: kinds[&p.id],
                dependencies: deps.into_iter().collect(),
                root: p.id == *root,
            }
        })
        .collect();
    let info = VersionInfo {
        packages: list,
        format: 1,
    };
    Ok(serde_json::to_vec(&info).expect("plain data serializes"))
}

fn source_repr(p: &Package) -> String {
    p.source
        .as_ref()
        .map(|s| s.repr.clone())
        .unwrap_or_default()
}

/// auditable-serde's `source`: `crates.io`, `git`, `registry` or `local`.
fn source_kind(p: &Package) -> &'static str {
    let repr = source_repr(p);
    if repr.is_empty() {
        "local"
    } else if repr == "registry+https://github.com/rust-lang/crates.io-index"
        || repr == "sparse+https://index.crates.io/"
    {
        "crates.io"
    } else if repr.starts_with("git+") {
        "git"
    } else {
        "registry"
    }
}

/// How an architecture's relocatable objects are laid out, as its linkers expect them.
struct ElfKind {
    machine: u16,
    /// ELF64 (else ELF32).
    wide: bool,
    big_endian: bool,
    /// `e_flags`: the ABI, which linkers refuse to mix (ARM's EABI version and hard-float,
    /// RISC-V's compressed instructions and double-float, PowerPC's ELFv2).
    flags: u32,
}

impl ElfKind {
    fn of(target: &str) -> Option<Self> {
        let (machine, wide, big_endian, flags) = match target.split('-').next()? {
            "x86_64" => (62, true, false, 0),
            "aarch64" => (183, true, false, 0),
            "armv7" => (40, false, false, 0x0500_0400),
            "i686" => (3, false, false, 0),
            "powerpc64le" => (21, true, false, 2),
            "s390x" => (22, true, true, 0),
            "riscv64gc" => (243, true, false, 0x5),
            _ => return None,
        };
        Some(ElfKind {
            machine,
            wide,
            big_endian,
            flags,
        })
    }
}

/// Appends ELF fields in one object's byte order and word size.
struct ElfOut<'a> {
    kind: &'a ElfKind,
    out: Vec<u8>,
}

impl ElfOut<'_> {
    fn half(&mut self, v: u16) {
        let bytes = if self.kind.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend(bytes);
    }

    fn word(&mut self, v: u32) {
        let bytes = if self.kind.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend(bytes);
    }

    /// An address, offset or size: 8 bytes in ELF64, 4 in ELF32.
    fn addr(&mut self, v: usize) {
        match (self.kind.wide, self.kind.big_endian) {
            (true, false) => self.out.extend((v as u64).to_le_bytes()),
            (true, true) => self.out.extend((v as u64).to_be_bytes()),
            (false, _) => self.word(u32::try_from(v).expect("the list is far below 4 GiB")),
        }
    }
}

/// A relocatable ELF object for `target` with one non-allocated section `.dep-v0` holding
/// `data` and one global symbol over it; `None` for other architectures.
///
/// Written by hand (six sections, one symbol) because every byte must be fixed: no file name
/// symbol, no timestamp.
pub(crate) fn elf_object(target: &str, data: &[u8]) -> Option<Vec<u8>> {
    let kind = ElfKind::of(target)?;
    let (header, section_header, symbol) = match kind.wide {
        true => (64, 64, 24),
        false => (52, 40, 16),
    };
    let strtab = format!("\0{SYMBOL}\0").into_bytes();
    let shstrtab =
        format!("\0{SECTION}\0.symtab\0.strtab\0.shstrtab\0.note.GNU-stack\0").into_bytes();
    let name_at = |name: &str| {
        let needle = format!("\0{name}\0");
        u32::try_from(
            shstrtab
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .expect("named above")
                + 1,
        )
        .expect("small")
    };
    let mut symtab = ElfOut {
        kind: &kind,
        out: vec![0u8; symbol], // symbol 0 is null
    };
    symtab.word(1); // st_name
    if !kind.wide {
        symtab.addr(0); // st_value
        symtab.addr(data.len()); // st_size
    }
    symtab.out.push(0x11); // STB_GLOBAL, STT_OBJECT
    symtab.out.push(0); // STV_DEFAULT
    symtab.half(1); // in section 1
    if kind.wide {
        symtab.addr(0);
        symtab.addr(data.len());
    }
    let symtab = symtab.out;

    let align8 = |n: usize| n.div_ceil(8) * 8;
    let data_at = header;
    let symtab_at = align8(data_at + data.len());
    let strtab_at = symtab_at + symtab.len();
    let shstrtab_at = strtab_at + strtab.len();
    let headers_at = align8(shstrtab_at + shstrtab.len());

    let mut out = ElfOut {
        kind: &kind,
        out: Vec::with_capacity(headers_at + 6 * section_header),
    };
    out.out.extend(b"\x7fELF");
    out.out.push(if kind.wide { 2 } else { 1 });
    out.out.push(if kind.big_endian { 2 } else { 1 });
    out.out.extend(b"\x01\0\0\0\0\0\0\0\0\0");
    out.half(1); // ET_REL
    out.half(kind.machine);
    out.word(1);
    out.addr(0); // entry
    out.addr(0); // program headers
    out.addr(headers_at);
    out.word(kind.flags);
    for half in [header, 0, 0, section_header, 6, 4] {
        out.half(half as u16);
    }
    out.out.extend(data);
    out.out.resize(symtab_at, 0);
    out.out.extend(&symtab);
    out.out.extend(&strtab);
    out.out.extend(&shstrtab);
    out.out.resize(headers_at, 0);
    let word_align = if kind.wide { 8 } else { 4 };
    let sections = [
        (0, 0, 0, 0, 0, 0, 0, 0),
        (name_at(SECTION), 1, data_at, data.len(), 0, 0, 1, 0), // PROGBITS, not allocated
        (
            name_at(".symtab"),
            2,
            symtab_at,
            symtab.len(),
            3,
            1,
            word_align,
            symbol,
        ),
        (name_at(".strtab"), 3, strtab_at, strtab.len(), 0, 0, 1, 0),
        (
            name_at(".shstrtab"),
            3,
            shstrtab_at,
            shstrtab.len(),
            0,
            0,
            1,
            0,
        ),
        // Empty and not executable: without it GNU ld makes the program's stack executable.
        (name_at(".note.GNU-stack"), 1, headers_at, 0, 0, 0, 1, 0),
    ];
    for (name, section_type, offset, size, link, info, align, entsize) in sections {
        out.word(name);
        out.word(section_type);
        out.addr(0); // flags
        out.addr(0); // address
        out.addr(offset);
        out.addr(size);
        out.word(link);
        out.word(info);
        out.addr(align);
        out.addr(entsize);
    }
    Some(out.out)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::process::Command;

    use super::*;

    fn hello_service() -> (Metadata, PackageId) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello-service");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--offline", "--locked"])
            .arg("--manifest-path")
            .arg(dir.join("Cargo.toml"))
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let metadata =
            cargo_metadata::MetadataCommand::parse(String::from_utf8(out.stdout).unwrap()).unwrap();
        let root = metadata.resolve.as_ref().unwrap().root.clone().unwrap();
        (metadata, root)
    }

    #[test]
    fn dependency_list_in_auditable_serde_form() {
        let (metadata, root) = hello_service();
        let target = "aarch64-unknown-linux-musl";
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let out = Command::new(rustc)
            .args(["--print", "cfg", "--target", target])
            .output()
            .expect("rustc runs");
        let cfg: Vec<Cfg> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let json = dependency_json(&metadata, &root, (target, &cfg)).unwrap();
        assert_eq!(
            json,
            dependency_json(&metadata, &root, (target, &cfg)).unwrap()
        );
        let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(doc["format"], 1);
        let packages = doc["packages"].as_array().unwrap();
        let by_name = |name: &str| {
            packages
                .iter()
                .position(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{name} missing: {doc}"))
        };
        let app = &packages[by_name("hello-service")];
        assert_eq!(app["root"], true);
        assert_eq!(app["source"], "local");
        assert!(app.get("kind").is_none(), "runtime is the default");
        let cc = &packages[by_name("cc")];
        assert_eq!(cc["kind"], "build");
        assert_eq!(cc["source"], "crates.io");
        assert!(cc.get("root").is_none());
        // cc's own dependencies are build-time too, and reached by index.
        let shlex = by_name("shlex");
        assert_eq!(packages[shlex]["kind"], "build");
        assert!(cc["dependencies"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(shlex)));
        assert!(app["dependencies"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(by_name("cc"))));
        let names: Vec<&str> = packages
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(
            packages.iter().filter(|p| p["root"] == true).count(),
            1,
            "one root"
        );
    }

    #[test]
    fn object_holds_the_compressed_list() {
        let list = br#"{"packages":[]}"#;
        let compressed = compress(list);
        let mut back = Vec::new();
        flate2::read::ZlibDecoder::new(&compressed[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, list);
        let x86 = elf_object("x86_64-unknown-linux-musl", &compressed).unwrap();
        assert_eq!(
            x86,
            elf_object("x86_64-unknown-linux-musl", &compressed).unwrap()
        );
        assert_eq!(&x86[64..64 + compressed.len()], &compressed[..]);
        assert!(elf_object("mips64-unknown-linux-muslabi64", &compressed).is_none());
    }

    /// Each platform's object as a reader that knows ELF (the `object` crate) sees it: its
    /// machine, word size and byte order, the ABI flags linkers compare, the section holding
    /// the list and the symbol over it.
    #[test]
    fn every_platform_gets_an_object_its_linker_reads() {
        use object::{Object, ObjectSection, ObjectSymbol};
        let compressed = compress(br#"{"packages":[]}"#);
        let expected = [
            (object::Architecture::X86_64, 0),
            (object::Architecture::Aarch64, 0),
            (object::Architecture::Arm, 0x0500_0400),
            (object::Architecture::I386, 0),
            (object::Architecture::PowerPc64, 2),
            (object::Architecture::S390x, 0),
            (object::Architecture::Riscv64, 5),
        ];
        let platforms = crate::platform::Platform::supported();
        assert_eq!(platforms.len(), expected.len());
        for (platform, (architecture, flags)) in platforms.iter().zip(expected) {
            let bytes = elf_object(platform.rust_target(), &compressed).unwrap();
            let file = object::File::parse(&bytes[..]).unwrap();
            assert_eq!(file.architecture(), architecture, "{platform}");
            assert_eq!(
                file.is_little_endian(),
                platform.architecture != "s390x",
                "{platform}"
            );
            assert_eq!(
                file.is_64(),
                !["arm", "386"].contains(&platform.architecture.as_str()),
                "{platform}"
            );
            let object::FileFlags::Elf { e_flags, .. } = file.flags() else {
                panic!("{platform}: not ELF flags")
            };
            assert_eq!(e_flags, flags, "{platform}");
            let section = file.section_by_name(SECTION).unwrap();
            assert_eq!(section.data().unwrap(), &compressed[..], "{platform}");
            let symbol = file.symbol_by_name(SYMBOL).unwrap();
            assert!(symbol.is_global(), "{platform}");
            assert_eq!(symbol.size(), compressed.len() as u64, "{platform}");
            assert_eq!(symbol.section_index(), Some(section.index()), "{platform}");
            assert!(file.section_by_name(".note.GNU-stack").is_some());
        }
    }
}
