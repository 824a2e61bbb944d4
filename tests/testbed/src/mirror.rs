//! The pinned zig without the internet: `cargo xtask setup` puts PyPI's `ziglang` wheel for this
//! host into [`zig_mirror_dir`], and a tiny HTTP file server on 127.0.0.1 serves it as
//! `STEVEDORE_ZIG_MIRROR`, so a build that has no zig in its tools dir yet fetches it from
//! here, through the same code as from PyPI.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The variable that points stevedore at a mirror of the zig wheels.
pub const ZIG_MIRROR_ENV: &str = "STEVEDORE_ZIG_MIRROR";

/// Where `cargo xtask setup` keeps the `ziglang` wheel ([`crate::ZIGLANG_VERSION`]) for this
/// host, as `pip download` names it.
pub fn zig_mirror_dir() -> PathBuf {
    crate::testbed_dir().join("zig-mirror")
}

/// The wheel in [`zig_mirror_dir`]; panics, saying to run `cargo xtask setup`, if it is not
/// there.
pub fn zig_wheel() -> PathBuf {
    let dir = zig_mirror_dir();
    let prefix = format!("ziglang-{}-", crate::ZIGLANG_VERSION);
    std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no {prefix}*.whl in {}: run `cargo xtask setup` (it downloads PyPI's wheel \
                 for this host there)",
                dir.display()
            )
        })
}

/// The URL of a mirror serving [`zig_mirror_dir`], started once per test process.
pub fn zig_mirror() -> String {
    static MIRROR: OnceLock<FileServer> = OnceLock::new();
    zig_wheel();
    MIRROR
        .get_or_init(|| FileServer::start(&zig_mirror_dir()))
        .url()
}

/// A plain HTTP/1.1 server on 127.0.0.1 answering `GET /NAME` with the file `dir/NAME` (404
/// for anything else), one thread per connection, counting the files it sent. It lives as long
/// as the test process.
#[derive(Debug)]
pub struct FileServer {
    url: String,
    sent: Arc<AtomicUsize>,
}

impl FileServer {
    /// Serves `dir` on a free port.
    pub fn start(dir: &Path) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(AtomicUsize::new(0));
        let (dir, count) = (dir.to_path_buf(), sent.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (dir, count) = (dir.clone(), count.clone());
                std::thread::spawn(move || {
                    let _ = answer(stream, &dir, &count);
                });
            }
        });
        FileServer { url, sent }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// How many files it has sent (whole or not).
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }
}

fn answer(stream: TcpStream, dir: &Path, sent: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut stream = stream;
    let name = request
        .strip_prefix("GET /")
        .and_then(|rest| rest.split(' ').next())
        .filter(|n| !n.is_empty() && !n.contains('/') && !n.contains(".."));
    let Some(file) = name
        .map(|n| dir.join(n))
        .and_then(|p| std::fs::File::open(p).ok())
    else {
        return stream.write_all(
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
    };
    let len = file.metadata()?.len();
    sent.fetch_add(1, Ordering::SeqCst);
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {len}\r\n\
         connection: close\r\n\r\n"
    )?;
    std::io::copy(&mut BufReader::with_capacity(1 << 20, file), &mut stream)?;
    stream.flush()
}
