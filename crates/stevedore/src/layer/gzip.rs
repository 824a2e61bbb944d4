//! Gzip on every core, with bytes that do not depend on how many cores there are.
//!
//! pigz's approach: the input is cut into fixed chunks of [`CHUNK`] bytes; each chunk is
//! deflated on its own (zlib-rs, level [`LEVEL`]) with the previous chunk's last 32 KiB as its
//! dictionary and ends on a sync flush (an empty stored block that byte-aligns the stream), the
//! last chunk ends the stream. Deflated in order, the chunks concatenate into one valid deflate
//! stream inside one gzip header and trailer, whose CRC-32 is the chunks' CRCs combined. What a
//! chunk compresses to depends only on its bytes and the bytes before it, never on the worker
//! that compressed it, so 1 thread and 8 threads write the same file.
//!
//! Memory stays bounded: at most two chunks per worker are in flight (input and output), and
//! results are written out in order as soon as they are next.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Bytes of input per independently compressed chunk. Part of the output format: changing it
/// changes every layer digest.
pub const CHUNK: usize = 1 << 20;
/// The deflate level. Part of the output format, like [`CHUNK`].
pub const LEVEL: u32 = 6;
/// Deflate's window: how much of the previous chunk a chunk may refer back to.
const WINDOW: usize = 32 * 1024;
/// Chunks in flight per worker: one being compressed, one queued, so no worker waits.
const IN_FLIGHT_PER_WORKER: usize = 2;

/// A gzip header with no file name, mtime 0, no extra flags and OS 255 ("unknown"), so the
/// bytes carry nothing of the machine or the moment.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

struct Job {
    seq: u64,
    data: Vec<u8>,
    dictionary: Vec<u8>,
    last: bool,
}

struct Done {
    seq: u64,
    compressed: io::Result<Vec<u8>>,
    crc: Crc,
    /// The input buffer, handed back for reuse.
    data: Vec<u8>,
}

/// A [`Write`] that gzips what it is given onto `out` using `threads` worker threads. Call
/// [`GzipWriter::finish`] to write the end of the stream; dropping it unfinished leaves `out`
/// holding an incomplete stream.
pub struct GzipWriter<W: Write> {
    out: W,
    buffer: Vec<u8>,
    dictionary: Vec<u8>,
    spare: Vec<Vec<u8>>,
    next_seq: u64,
    write_seq: u64,
    pending: BTreeMap<u64, Done>,
    pool: Pool,
    max_in_flight: usize,
    crc: Crc,
}

/// The worker threads; dropping the pool closes their queue and waits for them.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            // A worker that panicked has already shown up as a closed channel.
            let _ = worker.join();
        }
    }
}

impl<W: Write> GzipWriter<W> {
    /// Starts a gzip stream on `out` compressed by `threads` workers (at least one).
    pub fn new(mut out: W, threads: usize) -> io::Result<Self> {
        out.write_all(&HEADER)?;
        let threads = threads.max(1);
        let max_in_flight = threads * IN_FLIGHT_PER_WORKER;
        let (jobs, queue) = mpsc::sync_channel::<Job>(max_in_flight);
        let (done, results) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads)
            .map(|_| {
                let (queue, done) = (Arc::clone(&queue), done.clone());
                std::thread::Builder::new()
                    .name("stevedore-gzip".into())
                    .spawn(move || work(&queue, &done))
            })
            .collect::<io::Result<_>>()?;
        Ok(GzipWriter {
            out,
            buffer: Vec::with_capacity(CHUNK),
            dictionary: Vec::new(),
            spare: Vec::new(),
            next_seq: 0,
            write_seq: 0,
            pending: BTreeMap::new(),
            pool: Pool {
                jobs: Some(jobs),
                results,
                workers,
            },
            max_in_flight,
            crc: Crc::new(),
        })
    }

    /// Compresses what is left, writes the gzip trailer and returns `out`.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while self.write_seq < self.next_seq {
            self.receive()?;
        }
        // The trailer: CRC-32 and length (mod 2^32) of the uncompressed data, little-endian.
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Queues the current buffer as the next chunk (the final one when `last`).
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        while self.next_seq - self.write_seq >= self.max_in_flight as u64 {
            self.receive()?;
        }
        let fresh = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK));
        let data = std::mem::replace(&mut self.buffer, fresh);
        // The next chunk's dictionary is this chunk's tail. Only the last chunk can be short,
        // and nothing follows it.
        let tail = data[data.len().saturating_sub(WINDOW)..].to_vec();
        let dictionary = std::mem::replace(&mut self.dictionary, tail);
        let job = Job {
            seq: self.next_seq,
            data,
            dictionary,
            last,
        };
        let jobs = self
            .pool
            .jobs
            .as_ref()
            .expect("the queue closes only on drop");
        jobs.send(job).map_err(|_| worker_gone())?;
        self.next_seq += 1;
        Ok(())
    }

    /// Waits for one finished chunk and writes out every chunk that is next in order.
    fn receive(&mut self) -> io::Result<()> {
        let done = self.pool.results.recv().map_err(|_| worker_gone())?;
        self.pending.insert(done.seq, done);
        while let Some(done) = self.pending.remove(&self.write_seq) {
            self.out.write_all(&done.compressed?)?;
            self.crc.combine(&done.crc);
            let mut data = done.data;
            data.clear();
            self.spare.push(data);
            self.write_seq += 1;
        }
        Ok(())
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = data.len().min(CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&data[..take]);
        if self.buffer.len() == CHUNK {
            self.dispatch(false)?;
        }
        Ok(take)
    }

    /// Does nothing: a flush would cut a chunk short and change the bytes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn worker_gone() -> io::Error {
    io::Error::other("a gzip worker thread stopped unexpectedly")
}

/// A worker: compresses jobs until the queue closes.
fn work(queue: &Mutex<Receiver<Job>>, done: &mpsc::Sender<Done>) {
    loop {
        // The lock is held only to take one job, never while compressing.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let mut crc = Crc::new();
        crc.update(&job.data);
        // A panic must still answer for its chunk: the writer waits for every chunk in order,
        // and the other workers would keep the channel open while it waited for ever.
        let compressed =
            std::panic::catch_unwind(|| deflate_chunk(&job.data, &job.dictionary, job.last))
                .unwrap_or_else(|_| Err(io::Error::other("a gzip worker panicked")));
        let result = Done {
            seq: job.seq,
            compressed,
            crc,
            data: job.data,
        };
        if done.send(result).is_err() {
            return;
        }
    }
}

/// One chunk as raw deflate, with `dictionary` preset, ended by a sync flush (or, for the last
/// chunk, the end of the stream).
///
/// Each chunk gets a new compressor: one reused through `Compress::reset` wrote different bytes
/// for some chunks depending on what it had compressed before, which made the output depend
/// on which worker took which chunk. A new one costs an allocation per MiB.
fn deflate_chunk(data: &[u8], dictionary: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut deflate = Compress::new(Compression::new(LEVEL), false);
    if !dictionary.is_empty() {
        deflate
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // Enough for incompressible data in one call: deflate's bound plus the flush markers.
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
    loop {
        let consumed = usize::try_from(deflate.total_in()).expect("a chunk fits in memory");
        let status = deflate
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = deflate.total_in() == data.len() as u64;
        // zlib's rule: a flush is complete once a call leaves output space unused.
        let complete = match status {
            Status::StreamEnd => true,
            _ => !last && all_in && out.len() < out.capacity(),
        };
        if complete {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64 * 1024));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Compressible but not trivial: text-like runs with a slowly changing pattern.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x1234_5678_u32;
        (0..len)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                if i % 7 == 0 {
                    (state >> 24) as u8
                } else {
                    b"stevedore layers "[i % 17]
                }
            })
            .collect()
    }

    fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut writer = GzipWriter::new(Vec::new(), threads).unwrap();
        // Odd write sizes cross chunk boundaries the way tar's writes do.
        for piece in data.chunks(10_007) {
            writer.write_all(piece).unwrap();
        }
        writer.finish().unwrap()
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn the_same_bytes_for_1_2_and_8_threads() {
        let data = sample(5 * CHUNK + 12_345);
        let one = gzip(&data, 1);
        assert_eq!(gzip(&data, 2), one, "2 threads differ from 1");
        assert_eq!(gzip(&data, 8), one, "8 threads differ from 1");
        assert!(one.len() < data.len() / 2, "the sample should compress");
        assert_eq!(gunzip(&one), data);
    }

    /// Real machine code: the ELF executables of /usr/bin in name order, cut at `len` (the
    /// bench's input is made the same way).
    fn machine_code(len: usize) -> Vec<u8> {
        let mut names: Vec<_> = std::fs::read_dir("/usr/bin")
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()))
            .collect();
        names.sort();
        let mut code = Vec::with_capacity(len);
        for name in names {
            let Ok(bytes) = std::fs::read(&name) else {
                continue;
            };
            if bytes.starts_with(b"\x7fELF") {
                code.extend_from_slice(&bytes[..bytes.len().min(len - code.len())]);
            }
            if code.len() == len {
                return code;
            }
        }
        panic!("/usr/bin holds fewer than {len} bytes of executables");
    }

    #[test]
    fn machine_code_is_the_same_for_1_2_and_8_threads() {
        // 16 chunks: enough that a compressor carrying state from its previous chunk showed
        // (zlib-rs's reset() did, for about 1 chunk in 25 of machine code).
        let code = machine_code(16 * CHUNK + 777);
        let one = gzip(&code, 1);
        for _ in 0..2 {
            assert!(gzip(&code, 2) == one, "2 threads differ from 1");
            assert!(gzip(&code, 8) == one, "8 threads differ from 1");
        }
        assert!(gunzip(&one) == code);
    }

    #[test]
    fn gzip_d_gives_back_the_input() {
        let data = sample(3 * CHUNK + 1);
        let gz = gzip(&data, 2);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.gz");
        std::fs::write(&file, &gz).unwrap();
        // `gzip -t` also checks the CRC and length in the trailer.
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&file)
            .output()
            .expect("gzip (Debian package `gzip`) must be installed for this test");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == data, "gzip -d gave back other bytes");
    }

    #[test]
    fn the_bytes_do_not_depend_on_how_the_input_is_written() {
        // flate2's streaming GzEncoder (the previous layer writer) gives other bytes for other
        // write sizes; chunks cut at fixed offsets do not, whoever writes the tar and how.
        let data = machine_code(CHUNK + CHUNK / 3);
        let whole = {
            let mut writer = GzipWriter::new(Vec::new(), 2).unwrap();
            writer.write_all(&data).unwrap();
            writer.finish().unwrap()
        };
        for piece in [512, 8192, 100_003] {
            let mut writer = GzipWriter::new(Vec::new(), 2).unwrap();
            for part in data.chunks(piece) {
                writer.write_all(part).unwrap();
            }
            assert!(
                writer.finish().unwrap() == whole,
                "{piece}-byte writes differ"
            );
        }
    }

    #[test]
    fn edge_sizes_round_trip() {
        for len in [0, 1, WINDOW - 1, CHUNK, CHUNK + 1, 2 * CHUNK] {
            let data = sample(len);
            let gz = gzip(&data, 3);
            assert_eq!(&gz[..10], &HEADER, "header for {len} bytes");
            assert_eq!(gunzip(&gz), data, "round trip of {len} bytes");
            assert_eq!(gz, gzip(&data, 1), "thread count changed {len} bytes");
        }
    }

    #[test]
    fn the_dictionary_lets_chunks_refer_back() {
        // A second chunk repeating the first one's last 16 KiB: with the first chunk's tail as
        // its dictionary it is a few back-references, almost free. (Alone, 16 KiB of the
        // sample compress to about 4 KiB.)
        let first = sample(CHUNK);
        let repeat = &first[CHUNK - WINDOW / 2..];
        let mut both = first.clone();
        both.extend_from_slice(repeat);
        let cost = gzip(&both, 1).len() - gzip(&first, 1).len();
        let alone = gzip(repeat, 1).len();
        assert!(
            cost < alone / 10,
            "repeating 16 KiB cost {cost} bytes; alone they take {alone}"
        );
    }
}
