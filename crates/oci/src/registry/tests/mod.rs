//! The transfer state machines step by step, as go-containerregistry's `remote` tests do: an
//! in-process HTTP server answers from a script and records every request (method, path,
//! headers), and each test asserts what the client sent and in which order. The real registry
//! and the fault-injecting proxy are in the integration tests (`tests/it/faults.rs`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Keychain, Registry, RegistryError, RegistryOptions};
use crate::cache::BlobStore;
use crate::digest::Digest;
use crate::reference::Reference;

/// One answer of the script.
enum Reply {
    /// Status, headers, body.
    Full(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// Like `Full` with a Content-Length for the whole body, but the connection is closed
    /// after this many body bytes.
    Cut(u16, Vec<(&'static str, String)>, Vec<u8>, usize),
    /// Like `Cut`, but the connection stays open and silent until the client leaves.
    Stall(u16, Vec<(&'static str, String)>, Vec<u8>, usize),
}

/// A request as the server saw it; `method` is `TLS` for a TLS handshake.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Server {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `script` in order, one connection per request, then stops.
    fn start(script: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let thread = std::thread::spawn(move || {
            let mut script = script.into_iter().peekable();
            for stream in listener.incoming() {
                let stream = stream.unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let served = serve(stream, &mut script, &log);
                if matches!(served, Served::Done) || script.peek().is_none() {
                    break;
                }
            }
        });
        Server {
            addr,
            seen,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// `METHOD TARGET` of every request, in order.
    fn lines(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| format!("{} {}", s.method, s.target))
            .collect()
    }

    fn finish(mut self) -> Vec<String> {
        self.thread.take().unwrap().join().unwrap();
        self.lines()
    }
}

enum Served {
    More,
    Done,
}

fn serve(
    stream: TcpStream,
    script: &mut impl Iterator<Item = Reply>,
    log: &Mutex<Vec<Seen>>,
) -> Served {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    // A TLS ClientHello starts with 0x16; a plain-HTTP registry answers it with a 400, as Go's
    // server does, and the client's TLS library fails on that.
    if reader
        .fill_buf()
        .map(|b| b.first() == Some(&0x16))
        .unwrap_or(false)
    {
        log.lock().unwrap().push(Seen {
            method: "TLS".into(),
            target: String::new(),
            headers: vec![],
        });
        let _ = writer.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        return Served::More;
    }
    let Some(seen) = read_request(&mut reader) else {
        return Served::More;
    };
    log.lock().unwrap().push(seen);
    let Some(reply) = script.next() else {
        let _ = writer.write_all(b"HTTP/1.1 500 Unscripted\r\nContent-Length: 0\r\n\r\n");
        return Served::Done;
    };
    let (status, headers, body, until) = match reply {
        Reply::Full(s, h, b) => {
            let n = b.len();
            (s, h, b, (n, false))
        }
        Reply::Cut(s, h, b, n) => (s, h, b, (n, false)),
        Reply::Stall(s, h, b, n) => (s, h, b, (n, true)),
    };
    let mut head = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in &headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    let _ = writer.write_all(head.as_bytes());
    let _ = writer.write_all(&body[..until.0]);
    let _ = writer.flush();
    if until.1 {
        // Silent until the client gives up and closes.
        let mut sink = [0u8; 1024];
        while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
    }
    Served::More
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let seen = Seen {
        method,
        target,
        headers,
    };
    let len: u64 = seen
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    std::io::copy(&mut reader.take(len), &mut std::io::sink()).ok()?;
    Some(seen)
}

fn ok() -> Reply {
    Reply::Full(200, vec![], vec![])
}

fn client(timeout: Duration) -> Registry {
    let opts = RegistryOptions {
        user_agent: "stevedore-test".into(),
        timeout: Some(timeout),
        ..RegistryOptions::default()
    };
    Registry::with_keychain(opts, Keychain::default()).unwrap()
}

fn repo(server: &Server) -> Reference {
    format!("{}/test/app", server.addr).parse().unwrap()
}

/// 10,000 bytes that compress badly, and their digest.
fn blob() -> (Vec<u8>, Digest) {
    let bytes: Vec<u8> = (0u32..10_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let digest = Digest::of(&bytes);
    (bytes, digest)
}

#[test]
fn a_plain_http_registry_costs_one_tls_try_and_no_retry() {
    let server = Server::start(vec![ok(), Reply::Full(404, vec![], vec![])]);
    let registry = client(Duration::from_secs(5));
    let (_, digest) = blob();
    let started = std::time::Instant::now();
    assert!(!registry.blob_exists(&repo(&server), &digest).unwrap());
    let lines = server.finish();
    assert_eq!(
        lines,
        [
            "TLS ",
            "GET /v2/",
            &format!("HEAD /v2/test/app/blobs/{digest}")
        ],
        "one TLS handshake, then plain HTTP at once"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no backoff was slept"
    );
}

/// Serves `bytes` broken off after `at` bytes (`first` says how), then the rest as a 206 when
/// asked with Range; returns the Range headers of the two blob GETs and how long it took.
fn resumed_download(
    first: impl FnOnce(Vec<u8>, usize) -> Reply,
    at: usize,
    timeout: Duration,
) -> (Vec<Option<String>>, Duration) {
    let (bytes, digest) = blob();
    let rest = bytes[at..].to_vec();
    let range = format!("bytes {at}-{}/{}", bytes.len() - 1, bytes.len());
    let server = Server::start(vec![
        ok(),
        first(bytes.clone(), at),
        Reply::Full(206, vec![("Content-Range", range)], rest),
    ]);
    let store_dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(store_dir.path()).unwrap();
    let started = std::time::Instant::now();
    client(timeout)
        .fetch_blob(&repo(&server), &digest, bytes.len() as u64, &store)
        .unwrap();
    let took = started.elapsed();
    assert_eq!(std::fs::read(store.path(&digest)).unwrap(), bytes);
    let ranges = server
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.target.contains("/blobs/"))
        .map(|s| s.header("range").map(str::to_owned))
        .collect();
    (ranges, took)
}

#[test]
fn a_download_cut_part_way_resumes_with_range() {
    let (ranges, _) = resumed_download(
        |bytes, at| Reply::Cut(200, vec![], bytes, at),
        4000,
        Duration::from_secs(5),
    );
    assert_eq!(ranges, [None, Some("bytes=4000-".to_owned())]);
}

#[test]
fn a_stalled_download_times_out_and_resumes() {
    let (ranges, took) = resumed_download(
        |bytes, at| Reply::Stall(200, vec![], bytes, at),
        6000,
        Duration::from_secs(1),
    );
    assert!(
        took < Duration::from_secs(10),
        "the stall ended with the idle timeout: {took:?}"
    );
    assert_eq!(ranges, [None, Some("bytes=6000-".to_owned())]);
}

#[test]
fn a_registry_that_ignores_range_is_read_again_and_skipped() {
    let (bytes, digest) = blob();
    let server = Server::start(vec![
        ok(),
        Reply::Cut(200, vec![], bytes.clone(), 3000),
        Reply::Full(200, vec![], bytes.clone()),
    ]);
    let store_dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(store_dir.path()).unwrap();
    client(Duration::from_secs(5))
        .fetch_blob(&repo(&server), &digest, bytes.len() as u64, &store)
        .unwrap();
    assert_eq!(std::fs::read(store.path(&digest)).unwrap(), bytes);
}

#[test]
fn a_corrupt_blob_is_fetched_once_more_then_reported_and_not_kept() {
    let (bytes, digest) = blob();
    let mut corrupt = bytes.clone();
    corrupt[5000] ^= 1;
    let server = Server::start(vec![
        ok(),
        Reply::Full(200, vec![], corrupt.clone()),
        Reply::Full(200, vec![], corrupt),
    ]);
    let store_dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(store_dir.path()).unwrap();
    let err = client(Duration::from_secs(5))
        .fetch_blob(&repo(&server), &digest, bytes.len() as u64, &store)
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert!(!store.contains(&digest));
    let leftovers = std::fs::read_dir(store_dir.path().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "no temporary file is left");
    let lines = server.finish();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("GET /v2/test"))
            .count(),
        2,
        "{lines:?}"
    );
}

/// A store holding `bytes`, for uploads.
fn store_with(bytes: &[u8]) -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    store.put_bytes(bytes).unwrap();
    (dir, store)
}

fn upload_started(session: &str) -> Reply {
    Reply::Full(
        202,
        vec![("Location", format!("/v2/test/app/blobs/uploads/{session}"))],
        vec![],
    )
}

#[test]
fn a_failed_upload_cancels_its_session_and_starts_over_on_a_new_one() {
    let (bytes, digest) = blob();
    let (_dir, store) = store_with(&bytes);
    let server = Server::start(vec![
        ok(),
        upload_started("one"),
        Reply::Full(500, vec![], vec![]),
        Reply::Full(204, vec![], vec![]),
        upload_started("two"),
        Reply::Full(201, vec![], vec![]),
    ]);
    client(Duration::from_secs(5))
        .upload_blob(&repo(&server), &digest, bytes.len() as u64, &store)
        .unwrap();
    let uploads = "/v2/test/app/blobs/uploads";
    assert_eq!(
        server.finish(),
        [
            "TLS ".to_owned(),
            "GET /v2/".to_owned(),
            format!("POST {uploads}/"),
            format!("PUT {uploads}/one?digest={digest}"),
            format!("DELETE {uploads}/one"),
            format!("POST {uploads}/"),
            format!("PUT {uploads}/two?digest={digest}"),
        ]
    );
}

#[test]
fn an_upload_refused_with_a_4xx_is_not_tried_again() {
    let (bytes, digest) = blob();
    let (_dir, store) = store_with(&bytes);
    let server = Server::start(vec![
        ok(),
        upload_started("one"),
        Reply::Full(
            400,
            vec![],
            br#"{"errors":[{"code":"DIGEST_INVALID","message":"bad"}]}"#.to_vec(),
        ),
        Reply::Full(204, vec![], vec![]),
    ]);
    let err = client(Duration::from_secs(5))
        .upload_blob(&repo(&server), &digest, bytes.len() as u64, &store)
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Status { status: 400, code: Some(c), .. } if c == "DIGEST_INVALID"),
        "{err:?}"
    );
    let lines = server.finish();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("POST")).count(),
        1,
        "{lines:?}"
    );
    assert!(
        lines.last().unwrap().starts_with("DELETE"),
        "the session is cancelled: {lines:?}"
    );
}

#[test]
fn a_busy_registry_is_waited_for_as_its_retry_after_says() {
    let server = Server::start(vec![
        ok(),
        Reply::Full(429, vec![("Retry-After", "1".into())], vec![]),
        Reply::Full(200, vec![], vec![]),
    ]);
    let (_, digest) = blob();
    let started = std::time::Instant::now();
    assert!(client(Duration::from_secs(5))
        .blob_exists(&repo(&server), &digest)
        .unwrap());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(server.finish().len(), 4, "TLS, ping, 429, 200");
}

mod bounded;
mod documents;
