//! zstd layers (`--compression zstd`): the reference libzstd, on every core, with bytes that do
//! not depend on the number of cores.

use std::io::{self, Write};

use zstd::stream::raw::CParameter;
use zstd::stream::write::Encoder;

/// zstd level 3 (zstd's default) on `threads` workers. With one worker or more, libzstd cuts
/// the input into jobs of [`JOB_SIZE`], never by the worker count, so the bytes are the same on
/// every machine; zero workers (its single-threaded mode) would differ.
pub(super) fn writer<W: Write>(out: W, threads: usize) -> io::Result<Encoder<'static, W>> {
    let mut encoder = Encoder::new(out, LEVEL)?;
    encoder.multithread(u32::try_from(threads.max(1)).unwrap_or(1))?;
    // Neither changes with the input's path or the machine; say so rather than rely on defaults.
    encoder.include_checksum(false)?;
    encoder.include_contentsize(false)?;
    encoder.set_parameter(CParameter::JobSize(JOB_SIZE))?;
    Ok(encoder)
}

const LEVEL: i32 = 3;

/// 4 MiB jobs rather than level 3's default of 8 MiB: libzstd keeps a few jobs' worth of
/// buffers per worker, so this halves them (peak RSS packaging 100 MB on two cores: 57 MB →
/// 33 MB) for 0.15 % more output, and a libzstd that changed its default could not change
/// the bytes. Changing it changes every zstd layer's digest (and needs a new
/// `layer::FORMAT_VERSION`).
const JOB_SIZE: u32 = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(data: &[u8], threads: usize) -> Vec<u8> {
        let mut encoder = writer(Vec::new(), threads).unwrap();
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// Compressible but not trivial: numbers as text, with a slowly changing stride.
    fn sample(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 32);
        let mut i: u64 = 0;
        while out.len() < len {
            out.extend_from_slice(format!("{} ", i * (i / 1000 + 7) % 100_003).as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    #[test]
    fn the_same_bytes_for_1_2_and_8_threads() {
        // Several of libzstd's jobs (a few MiB each at level 3), so the workers really split it.
        let data = sample(24 << 20);
        let one = compress(&data, 1);
        assert!(compress(&data, 2) == one, "2 threads differ from 1");
        assert!(compress(&data, 8) == one, "8 threads differ from 1");
        assert!(one.len() < data.len() / 2, "the sample should compress");
        assert!(zstd::decode_all(one.as_slice()).unwrap() == data);
    }
}
