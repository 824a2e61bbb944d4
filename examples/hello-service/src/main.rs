//! A minimal HTTP service: `GET /health` answers `ok`, anything else says hello.
//! Binds 0.0.0.0:$PORT (default 8080) and prints one line when it is ready.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

extern "C" {
    fn hello_adler32(data: *const u8, len: usize) -> u32;
}

fn checksum(data: &[u8]) -> u32 {
    // SAFETY: the pointer and length describe a live slice.
    unsafe { hello_adler32(data.as_ptr(), data.len()) }
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    println!(
        "hello-service listening on 0.0.0.0:{port} arch={} uid={} checksum={:08x}",
        std::env::consts::ARCH,
        // SAFETY: getuid has no preconditions.
        unsafe { getuid() },
        checksum(b"hello-service"),
    );
    for stream in listener.incoming() {
        if let Err(e) = stream.and_then(handle) {
            eprintln!("connection error: {e}");
        }
    }
    Ok(())
}

fn handle(mut stream: TcpStream) -> std::io::Result<()> {
    let mut request_line = String::new();
    BufReader::new(&stream).read_line(&mut request_line)?;
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let body = match path {
        "/health" => "ok\n".to_owned(),
        _ => format!("hello from {} ({})\n", std::env::consts::ARCH, path),
    };
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

extern "C" {
    fn getuid() -> u32;
}
