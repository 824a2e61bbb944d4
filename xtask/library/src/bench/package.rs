//! Packaging: the application layer of a large binary written into a fresh blob store,
//! against `gzip -6 | sha256sum` and against chunked deflate on every core.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use flate2::{Compress, Compression, FlushCompress, Status};
use stevedore::cache::BlobStore;
use stevedore::LayerSpec;

use super::measure::{self, Run};
use crate::fail;

/// The chunk size of the deflate limit: pigz's default is 128 KiB; 1 MiB chunks lose less
/// ratio and still give every core work.
const LIMIT_CHUNK: usize = 1 << 20;

/// A file of `size` bytes of real machine code: the ELF executables of /usr/bin, in name order,
/// concatenated and cut. Made once and kept (the same machine gives the same bytes).
pub fn input(dir: &Path, size: u64) -> PathBuf {
    let path = dir.join(format!("input-{size}"));
    if path.metadata().is_ok_and(|m| m.len() == size) {
        return path;
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir("/usr/bin")
        .unwrap_or_else(|e| fail(&format!("cannot list /usr/bin: {e}")))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()))
        .collect();
    names.sort();
    let tmp = path.with_extension("tmp");
    let mut out = File::create(&tmp)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", tmp.display())));
    let mut left = size;
    for name in names {
        let Ok(mut file) = File::open(&name) else {
            continue;
        };
        let mut magic = [0u8; 4];
        if file.read_exact(&mut magic).is_err() || &magic != b"\x7fELF" {
            continue;
        }
        let mut file = File::open(&name).expect("opened a moment ago");
        left -= std::io::copy(&mut (&mut file).take(left), &mut out)
            .unwrap_or_else(|e| fail(&format!("cannot copy {}: {e}", name.display())));
        if left == 0 {
            break;
        }
    }
    if left > 0 {
        fail(&format!(
            "/usr/bin holds fewer than {size} bytes of ELF executables"
        ));
    }
    out.sync_all().ok();
    std::fs::rename(&tmp, &path)
        .unwrap_or_else(|e| fail(&format!("cannot rename {}: {e}", tmp.display())));
    path
}

/// `xtask-library bench-package INPUT STORE gzip|zstd`, run by the bench as a child so its time and
/// peak memory are the packaging's alone: the layer `stevedore build` makes for a binary,
/// through the library. Prints the layer's digest.
pub fn child(args: &[String]) {
    let [input, store, compression] = args else {
        fail("usage: xtask-library bench-package INPUT STORE_DIR gzip|zstd");
    };
    let compression: stevedore::Compression = compression
        .parse()
        .unwrap_or_else(|e| fail(&format!("{e}")));
    let store = BlobStore::open(store).unwrap_or_else(|e| fail(&e.to_string()));
    let layer = LayerSpec::application(Path::new(input), "app")
        .and_then(|spec| spec.write(&store, 0, compression))
        .unwrap_or_else(|e| fail(&format!("packaging failed: {e}")));
    println!("{} {} {}", layer.digest, layer.size, layer.diff_id);
}

/// `xtask-library bench-limit INPUT`: deflate (zlib-rs, level 6) of independent 1 MiB chunks on every
/// core, in memory, with no tar, hashing or I/O: the floor a gzip layer can approach.
/// Prints the seconds taken and the compressed size.
pub fn limit_child(args: &[String]) {
    let [input] = args else {
        fail("usage: xtask-library bench-limit INPUT");
    };
    let data = std::fs::read(input).unwrap_or_else(|e| fail(&format!("cannot read {input}: {e}")));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<&[u8]> = data.chunks(LIMIT_CHUNK).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let total: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::with_capacity(LIMIT_CHUNK * 2);
                    let mut sum = 0;
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else {
                            break sum;
                        };
                        sum += deflate_chunk(chunk, &mut out);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("no panic"))
            .sum()
    });
    println!("{} {total}", started.elapsed().as_secs_f64());
}

fn deflate_chunk(chunk: &[u8], out: &mut Vec<u8>) -> usize {
    let mut c = Compress::new(Compression::new(6), false);
    out.clear();
    loop {
        let done = c.total_in() as usize;
        let status = c
            .compress_vec(&chunk[done..], out, FlushCompress::Sync)
            .expect("deflate of memory cannot fail");
        if c.total_in() as usize == chunk.len() && out.len() < out.capacity() {
            break out.len();
        }
        assert!(matches!(status, Status::Ok | Status::BufError));
        out.reserve(out.capacity());
    }
}

/// Times one packaging (`compression`: gzip or zstd) into a fresh store under `scratch`;
/// returns the run and the digest.
pub fn package(
    xtask: &Path,
    input: &Path,
    scratch: &Path,
    compression: &str,
    log: &Path,
) -> (Run, String) {
    let store = scratch.join("store");
    let _ = std::fs::remove_dir_all(&store);
    let run = measure::run(
        Command::new(xtask)
            .arg("bench-package")
            .arg(input)
            .arg(&store)
            .arg(compression),
        log,
    );
    let digest = String::from_utf8_lossy(&run.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    std::fs::remove_dir_all(&store).ok();
    (run, digest)
}

/// Times `gzip -6 -c INPUT | sha256sum`, the single-core tool a Dockerfile build leans on.
pub fn gzip_sha256sum(input: &Path, log: &Path) -> Run {
    let script = "gzip -6 -c \"$1\" | sha256sum >/dev/null";
    measure::run(
        Command::new("sh").args(["-c", script, "sh"]).arg(input),
        log,
    )
}

/// Times zstd's own CLI at stevedore's level on every core, into /dev/null: zstd alone, with
/// no tar, hashing or store, what the zstd row cannot beat.
pub fn zstd_cli(input: &Path, cores: usize, log: &Path) -> Run {
    measure::run(
        Command::new("zstd")
            .args(["-q", "-3", &format!("-T{cores}"), "-f", "-o", "/dev/null"])
            .arg(input),
        log,
    )
}

/// Runs the limit child; returns its in-memory seconds.
pub fn limit(xtask: &Path, input: &Path, log: &Path) -> f64 {
    let run = measure::run(Command::new(xtask).arg("bench-limit").arg(input), log);
    let text = String::from_utf8_lossy(&run.stdout);
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fail(&format!("bench-limit printed `{text}`")))
}
