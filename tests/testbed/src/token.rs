//! A bearer-token front for a plain-HTTP [`Registry`], like Docker Hub or ghcr.io: `/v2/…`
//! answers 401 with a `Bearer` challenge until the client fetches a token with the right scope
//! from `/token`; authorised requests are proxied to the real registry. It also records every
//! request, so tests can count what a client sent, and injects faults on request ([`Fault`]):
//! error statuses, rate limits and bodies cut short, the way flaky networks and registries fail.
//!
//! HTTP/1.1 with one request per connection (`Connection: close` both ways): clients reconnect,
//! and bodies can be relayed as raw bytes, whatever their framing.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::registry::{push_base_to, skopeo_flags, Mode, Registry, Side};
use crate::util::{base64_decode, query_pairs};

/// The `service` the token server names in its challenges and expects in token requests.
pub const TOKEN_SERVICE: &str = "testbed";

/// Connections handled at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 32;
/// Socket read/write timeout: a stuck client or registry ends its connection, not the test.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_HEAD: u64 = 64 * 1024;

/// A token server and authenticating proxy on 127.0.0.1 in front of a [`Mode::Http`] registry,
/// which it owns; stopped on drop.
pub struct TokenFront {
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
    credentials: Option<(String, String)>,
    upstream: Registry,
}

struct State {
    addr: String,
    upstream: String,
    credentials: Option<(String, String)>,
    tokens: Mutex<HashMap<String, Vec<Access>>>,
    /// (method, path, query) of every request.
    requests: Mutex<Vec<(String, String, String)>>,
    /// The `Authorization` header of every request, in the same order.
    authorizations: Mutex<Vec<Seen>>,
    /// `/v2/` asks for the credentials as Basic auth instead of tokens.
    basic: bool,
    /// The OAuth2 refresh token (docker's identity token) `POST /token` accepts, if any.
    refresh_token: Mutex<Option<String>>,
    faults: Mutex<Vec<Fault>>,
    next_token: AtomicU64,
    active: Mutex<usize>,
    idle: Condvar,
    shutdown: AtomicBool,
}

/// A failure the front injects into the next `times` authorised requests whose method is
/// `method` and whose path contains `path_contains`.
#[derive(Clone, Debug)]
pub struct Fault {
    method: String,
    path_contains: String,
    kind: FaultKind,
    times: usize,
}

#[derive(Clone, Debug)]
enum FaultKind {
    /// Answer with this status instead of proxying (the request body is read and dropped).
    Status {
        code: u16,
        retry_after: Option<RetryAfter>,
    },
    /// Proxy, but close the connection after this many bytes of the response body.
    CutBody { after: u64 },
    /// Proxy, but stop sending after this many bytes of the response body and hold the
    /// connection open, silent, until the client gives up (or [`STALL_LIMIT`] passes).
    StallBody { after: u64 },
    /// Read the request, then say nothing until the client gives up.
    NoAnswer,
    /// Reset the connection (RST) without reading the request body.
    Reset,
    /// Forget every token issued so far and answer 401, as a registry does when a token
    /// expires mid-push.
    ExpireTokens,
    /// Answer `307 Temporary Redirect` to the same path and query on `base` (another origin,
    /// as registries send blob downloads to a CDN).
    Redirect { base: String },
    /// Proxy, then point the answer's `Location` at `base` instead of the front (a registry,
    /// or a proxy that forgot `X-Forwarded-Proto`, naming another origin for an upload).
    LocationTo { base: String },
    /// Answer `code` with a registry error envelope whose message is `message`.
    Message { code: u16, message: String },
}

#[derive(Clone, Copy, Debug)]
enum RetryAfter {
    Seconds(u32),
    /// An HTTP date this many seconds after the answer.
    Date(u32),
}

/// The longest a stalled or unanswered connection is held, so a test that forgot its client
/// still ends.
const STALL_LIMIT: Duration = Duration::from_secs(60);

impl Fault {
    /// Answers `code` (e.g. 500, 503, 429) instead of the registry.
    pub fn status(method: &str, path_contains: &str, code: u16, times: usize) -> Fault {
        Fault {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            kind: FaultKind::Status {
                code,
                retry_after: None,
            },
            times,
        }
    }

    /// The status answer carries `Retry-After: SECONDS`.
    pub fn with_retry_after(mut self, seconds: u32) -> Fault {
        if let FaultKind::Status { retry_after, .. } = &mut self.kind {
            *retry_after = Some(RetryAfter::Seconds(seconds));
        }
        self
    }

    /// The status answer carries `Retry-After: HTTP-DATE`, `seconds` after the answer.
    pub fn with_retry_after_date(mut self, seconds: u32) -> Fault {
        if let FaultKind::Status { retry_after, .. } = &mut self.kind {
            *retry_after = Some(RetryAfter::Date(seconds));
        }
        self
    }

    /// Relays the registry's answer but goes silent after `after` bytes of its body, holding
    /// the connection open.
    pub fn stall_body(method: &str, path_contains: &str, after: u64, times: usize) -> Fault {
        Fault::new(method, path_contains, FaultKind::StallBody { after }, times)
    }

    /// Reads the request and never answers.
    pub fn no_answer(method: &str, path_contains: &str, times: usize) -> Fault {
        Fault::new(method, path_contains, FaultKind::NoAnswer, times)
    }

    /// Resets the connection without reading the request's body.
    pub fn reset(method: &str, path_contains: &str, times: usize) -> Fault {
        Fault::new(method, path_contains, FaultKind::Reset, times)
    }

    /// Expires every token issued so far and answers 401 with a fresh challenge.
    pub fn expire_tokens(method: &str, path_contains: &str, times: usize) -> Fault {
        Fault::new(method, path_contains, FaultKind::ExpireTokens, times)
    }

    /// Redirects (307) to the same path and query on `base`, e.g. an [`crate::Elsewhere`].
    pub fn redirect(method: &str, path_contains: &str, base: &str, times: usize) -> Fault {
        let base = base.trim_end_matches('/').to_owned();
        Fault::new(method, path_contains, FaultKind::Redirect { base }, times)
    }

    /// Relays the registry's answer with its `Location` moved to `base`.
    pub fn location_to(method: &str, path_contains: &str, base: &str, times: usize) -> Fault {
        let base = base.trim_end_matches('/').to_owned();
        Fault::new(method, path_contains, FaultKind::LocationTo { base }, times)
    }

    /// Answers `code` with an error envelope carrying `message` (e.g. terminal escapes).
    pub fn message(
        method: &str,
        path_contains: &str,
        code: u16,
        message: &str,
        times: usize,
    ) -> Fault {
        let message = message.to_owned();
        Fault::new(
            method,
            path_contains,
            FaultKind::Message { code, message },
            times,
        )
    }

    fn new(method: &str, path_contains: &str, kind: FaultKind, times: usize) -> Fault {
        Fault {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            kind,
            times,
        }
    }

    /// Relays the registry's answer but hangs up after `after` bytes of its body.
    pub fn cut_body(method: &str, path_contains: &str, after: u64, times: usize) -> Fault {
        Fault {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            kind: FaultKind::CutBody { after },
            times,
        }
    }
}

/// One resource and action, as in the scope `repository:NAME:pull,push`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Access {
    kind: String,
    name: String,
    action: String,
}

impl TokenFront {
    /// Starts the front for `upstream`. With `credentials`, `/token` demands them as basic
    /// auth; without, tokens are given to anyone (like anonymous pulls from Docker Hub).
    pub fn start(upstream: Registry, credentials: Option<(&str, &str)>) -> TokenFront {
        TokenFront::start_with(upstream, credentials, false)
    }

    /// Starts a front that asks for `credentials` as Basic auth on every `/v2/` request (as
    /// registries with htpasswd do), instead of tokens.
    pub fn start_basic(upstream: Registry, credentials: (&str, &str)) -> TokenFront {
        TokenFront::start_with(upstream, Some(credentials), true)
    }

    fn start_with(
        upstream: Registry,
        credentials: Option<(&str, &str)>,
        basic: bool,
    ) -> TokenFront {
        assert_eq!(
            upstream.mode(),
            Mode::Http,
            "the token front proxies plain HTTP only"
        );
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("bind the token front to 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address").to_string();
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let state = Arc::new(State {
            addr,
            upstream: upstream.addr(),
            credentials: credentials.clone(),
            tokens: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            authorizations: Mutex::new(Vec::new()),
            basic,
            refresh_token: Mutex::new(None),
            faults: Mutex::new(Vec::new()),
            next_token: AtomicU64::new(1),
            active: Mutex::new(0),
            idle: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let accept_state = Arc::clone(&state);
        let accept = std::thread::Builder::new()
            .name("token-front".into())
            .spawn(move || accept_loop(listener, accept_state))
            .expect("spawn the token front's accept thread");
        TokenFront {
            state,
            accept: Some(accept),
            credentials,
            upstream,
        }
    }

    /// `127.0.0.1:PORT` of the front, the registry part of image references.
    pub fn addr(&self) -> String {
        self.state.addr.clone()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.state.addr)
    }

    /// The token endpoint named in challenges, `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.state.addr)
    }

    /// The registry behind the front (reachable directly too, without tokens).
    pub fn upstream(&self) -> &Registry {
        &self.upstream
    }

    /// The credentials `/token` demands, if any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// skopeo flags for the front at `side`: plain HTTP, plus `--creds` if it has credentials.
    pub fn skopeo_flags(&self, side: Side) -> Vec<String> {
        skopeo_flags(side, true, None, self.credentials())
    }

    /// Pushes the distroless stand-in through the front (tokens and all) and returns
    /// `127.0.0.1:PORT/distroless/static-debian12:nonroot` with the front's address.
    pub fn push_base(&self) -> String {
        push_base_to(&self.addr(), &self.skopeo_flags(Side::Dest))
    }

    /// Every request received so far, as (method, path without query), in arrival order,
    /// including `/token` and the ones answered 401.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.requests_with_query()
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect()
    }

    /// Every request received so far, as (method, path, query), in arrival order.
    pub fn requests_with_query(&self) -> Vec<(String, String, String)> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `POST /token` grant tokens for the OAuth2 refresh token `token` (docker's
    /// `identitytoken` flow: `grant_type=refresh_token`), as Azure's and other registries'
    /// token servers do; `GET /token` keeps asking for the Basic credentials.
    pub fn accept_refresh_token(&self, token: &str) {
        *self
            .state
            .refresh_token
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(token.to_owned());
    }

    /// Every request received so far with the `Authorization` header it carried.
    pub fn authorizations(&self) -> Vec<Seen> {
        self.state
            .authorizations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds a fault; faults are met in the order they were added.
    pub fn inject(&self, fault: Fault) {
        self.state
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fault);
    }

    /// How many injected failures have not happened yet.
    pub fn faults_left(&self) -> usize {
        self.state
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|f| f.times)
            .sum()
    }

    /// Forgets the recorded requests, e.g. between a first and a second push.
    pub fn clear_requests(&self) {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.state
            .authorizations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl Drop for TokenFront {
    fn drop(&mut self) {
        self.state.shutdown.store(true, Ordering::SeqCst);
        // Wakes the blocking accept() so the loop sees the flag.
        let _ = TcpStream::connect(&self.state.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // Let connections in flight finish (bounded by the socket timeouts anyway) before the
        // upstream registry goes away.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut active = self.state.active.lock().unwrap_or_else(|e| e.into_inner());
        while *active > 0 && Instant::now() < deadline {
            active = self
                .state
                .idle
                .wait_timeout(active, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for conn in listener.incoming() {
        if state.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        {
            let mut active = state.active.lock().unwrap_or_else(|e| e.into_inner());
            while *active >= MAX_CONNECTIONS {
                if state.shutdown.load(Ordering::SeqCst) {
                    return;
                }
                active = state
                    .idle
                    .wait_timeout(active, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            *active += 1;
        }
        let conn_state = Arc::clone(&state);
        let spawned = std::thread::Builder::new()
            .name("token-front-conn".into())
            .spawn(move || {
                if let Err(e) = handle(conn, &conn_state) {
                    eprintln!("token front: connection ended with an error: {e}");
                }
                let mut active = conn_state.active.lock().unwrap_or_else(|e| e.into_inner());
                *active -= 1;
                conn_state.idle.notify_all();
            });
        if spawned.is_err() {
            *state.active.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        }
    }
}

/// A request or response line and its headers.
pub(crate) struct Head {
    pub(crate) line: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Head {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn body(&self) -> io::Result<Body> {
        if self
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
        {
            return Ok(Body::Chunked);
        }
        match self.header("content-length") {
            Some(len) => len.trim().parse().map(Body::Length).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad Content-Length {len:?}"),
                )
            }),
            None => Ok(Body::Length(0)),
        }
    }
}

pub(crate) enum Body {
    Length(u64),
    Chunked,
}

/// Reads a head (up to the empty line); `None` if the peer closed before sending anything.
pub(crate) fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut limited = reader.by_ref().take(MAX_HEAD);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if limited.read_line(&mut line)? == 0 {
            if lines.is_empty() && line.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside an HTTP head",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerated before a request line (RFC 9112 §2.2)
            }
            break;
        }
        lines.push(line);
    }
    let line = lines.remove(0);
    let headers = lines
        .into_iter()
        .map(|l| match l.split_once(':') {
            Some((k, v)) => Ok((k.trim().to_owned(), v.trim().to_owned())),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("malformed header line {l:?}"),
            )),
        })
        .collect::<io::Result<_>>()?;
    Ok(Some(Head { line, headers }))
}

/// Copies one message body from `from` to `to` exactly as framed (chunk sizes and trailers
/// included), so the receiver sees the same bytes.
pub(crate) fn relay_body(
    from: &mut impl BufRead,
    to: &mut impl Write,
    body: Body,
) -> io::Result<()> {
    match body {
        Body::Length(n) => {
            let copied = io::copy(&mut from.by_ref().take(n), to)?;
            if copied != n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body ended after {copied} of {n} bytes"),
                ));
            }
        }
        Body::Chunked => loop {
            let mut size_line = String::new();
            from.by_ref().take(4096).read_line(&mut size_line)?;
            to.write_all(size_line.as_bytes())?;
            let size_hex = size_line
                .trim()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim();
            let size = u64::from_str_radix(size_hex, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size line {size_line:?}"),
                )
            })?;
            if size == 0 {
                // Trailer fields, then the empty line that ends the message.
                loop {
                    let mut line = String::new();
                    if from.by_ref().take(MAX_HEAD).read_line(&mut line)? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "chunked body ended without its last line",
                        ));
                    }
                    to.write_all(line.as_bytes())?;
                    if line.trim_end_matches(['\r', '\n']).is_empty() {
                        return Ok(());
                    }
                }
            }
            relay_body(from, to, Body::Length(size + 2))?; // chunk data and its CRLF
        },
    }
    Ok(())
}

fn handle(client: TcpStream, state: &State) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = BufWriter::new(client);
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let mut parts = head.line.split_whitespace();
    let (method, target) = match (parts.next(), parts.next()) {
        (Some(m), Some(t)) => (m.to_owned(), t.to_owned()),
        _ => {
            return respond(
                &mut writer,
                "400 Bad Request",
                &[],
                "malformed request line\n",
            )
        }
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    state
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((method.clone(), path.to_owned(), query.to_owned()));
    record(&state.authorizations, &method, path, &head);

    if path == "/token" && method == "POST" {
        let mut form = Vec::new();
        relay_body(&mut reader, &mut form, head.body()?)?;
        return refresh_endpoint(&mut writer, state, &String::from_utf8_lossy(&form));
    }
    if path == "/token" {
        relay_body(&mut reader, &mut io::sink(), head.body()?)?;
        return token_endpoint(&mut writer, state, &head, query);
    }
    if path != "/v2" && !path.starts_with("/v2/") {
        relay_body(&mut reader, &mut io::sink(), head.body()?)?;
        return respond(&mut writer, "404 Not Found", &[], "not a registry path\n");
    }
    if state.basic && !basic_ok(state, &head) {
        relay_body(&mut reader, &mut io::sink(), head.body()?)?;
        return respond(
            &mut writer,
            "401 Unauthorized",
            &[("WWW-Authenticate", "Basic realm=\"stevedore-testbed\"")],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        );
    }
    let required = match state.basic {
        true => Vec::new(),
        false => required_access(&method, path, query),
    };
    let granted = head
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| {
            state
                .tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(token.trim())
                .cloned()
        });
    let allowed = state.basic
        || granted
            .as_ref()
            .is_some_and(|g| required.iter().all(|r| covers(g, r)));
    if !allowed {
        // Read the body first: closing with unread data resets the connection, and the client
        // would see that instead of the 401.
        relay_body(&mut reader, &mut io::sink(), head.body()?)?;
        return challenge(&mut writer, state, &required, granted.is_some());
    }
    let mut location_base = None;
    let cut = match take_fault(state, &method, path) {
        Some(FaultKind::Status { code, retry_after }) => {
            relay_body(&mut reader, &mut io::sink(), head.body()?)?;
            let retry_after = retry_after.map(|r| match r {
                RetryAfter::Seconds(s) => s.to_string(),
                RetryAfter::Date(s) => httpdate::fmt_http_date(
                    std::time::SystemTime::now() + Duration::from_secs(s.into()),
                ),
            });
            let headers: Vec<(&str, &str)> = retry_after
                .as_deref()
                .map(|s| ("Retry-After", s))
                .into_iter()
                .collect();
            return respond(
                &mut writer,
                &status_line(code),
                &headers,
                "injected fault\n",
            );
        }
        Some(FaultKind::CutBody { after }) => Some(Cut::Close(after)),
        Some(FaultKind::StallBody { after }) => Some(Cut::Stall(after)),
        Some(FaultKind::NoAnswer) => {
            relay_body(&mut reader, &mut io::sink(), head.body()?)?;
            writer.flush()?;
            return hold_until_client_leaves(reader.get_ref());
        }
        Some(FaultKind::Reset) => return reset(writer.get_ref()),
        Some(FaultKind::ExpireTokens) => {
            relay_body(&mut reader, &mut io::sink(), head.body()?)?;
            state
                .tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            return challenge(&mut writer, state, &required, true);
        }
        Some(FaultKind::Redirect { base }) => {
            relay_body(&mut reader, &mut io::sink(), head.body()?)?;
            let to = format!("{base}{target}");
            return respond(
                &mut writer,
                "307 Temporary Redirect",
                &[("Location", &to)],
                "",
            );
        }
        Some(FaultKind::Message { code, message }) => {
            relay_body(&mut reader, &mut io::sink(), head.body()?)?;
            let body = serde_json::json!({"errors": [{"code": "DENIED", "message": message}]});
            let headers = [("Content-Type", "application/json")];
            return respond(&mut writer, &status_line(code), &headers, &body.to_string());
        }
        Some(FaultKind::LocationTo { base }) => {
            location_base = Some(base);
            None
        }
        None => None,
    };
    let upstream = Upstream {
        addr: &state.upstream,
        front: &state.addr,
        location_base: location_base.as_deref(),
    };
    forward(
        &upstream,
        &head,
        &method,
        &target,
        &mut reader,
        &mut writer,
        cut,
    )
}

/// One request as a server saw it: method, path and the `Authorization` header, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The HTTP method.
    pub method: String,
    /// The path, without query.
    pub path: String,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
}

pub(crate) fn record(log: &Mutex<Vec<Seen>>, method: &str, path: &str, head: &Head) {
    log.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
        method: method.to_owned(),
        path: path.to_owned(),
        authorization: head.header("authorization").map(str::to_owned),
    });
}

fn basic_ok(state: &State, head: &Head) -> bool {
    let Some((user, password)) = &state.credentials else {
        return true;
    };
    head.header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64_decode(b.trim()))
        .is_some_and(|raw| raw == format!("{user}:{password}").as_bytes())
}

/// Where [`forward`] relays to, and how it rewrites `Location`.
pub(crate) struct Upstream<'a> {
    /// The registry's `host:port`.
    pub addr: &'a str,
    /// The proxy's own `host:port`, which the registry's `Location`s are moved to.
    pub front: &'a str,
    /// Another origin (`http://host:port`) to point `Location`s at instead.
    pub location_base: Option<&'a str>,
}

/// How a relayed response body is cut short.
#[derive(Clone, Copy)]
pub(crate) enum Cut {
    /// Close the connection after this many bytes.
    Close(u64),
    /// Go silent after this many bytes, holding the connection.
    Stall(u64),
}

/// Holds a connection open and silent until the client closes it (or [`STALL_LIMIT`]).
fn hold_until_client_leaves(client: &TcpStream) -> io::Result<()> {
    client.set_read_timeout(Some(STALL_LIMIT))?;
    let mut buf = [0u8; 4096];
    let mut reader = client;
    // Whatever the client still sends is dropped; its close (0 or an error) ends the hold.
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    Ok(())
}

/// Closes a connection with RST: SO_LINGER with a zero timeout makes close() abort it.
fn reset(client: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The first injected fault that matches, counted down.
fn take_fault(state: &State, method: &str, path: &str) -> Option<FaultKind> {
    let mut faults = state.faults.lock().unwrap_or_else(|e| e.into_inner());
    let fault = faults
        .iter_mut()
        .find(|f| f.times > 0 && f.method == method && path.contains(&f.path_contains))?;
    fault.times -= 1;
    Some(fault.kind.clone())
}

fn status_line(code: u16) -> String {
    let reason = match code {
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected",
    };
    format!("{code} {reason}")
}

/// What a request needs, the way distribution's token auth decides it: pull for reads, pull and
/// push for writes, delete for DELETE, pull on the source of a cross-repository mount.
fn required_access(method: &str, path: &str, query: &str) -> Vec<Access> {
    let rest = path.strip_prefix("/v2/").unwrap_or("");
    if rest.is_empty() {
        return Vec::new();
    }
    if rest == "_catalog" {
        return vec![Access {
            kind: "registry".into(),
            name: "catalog".into(),
            action: "*".into(),
        }];
    }
    let end = ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .filter_map(|m| rest.rfind(m))
        .max();
    let Some(end) = end else { return Vec::new() };
    let repo = |name: &str, action: &str| Access {
        kind: "repository".into(),
        name: name.into(),
        action: action.into(),
    };
    let name = &rest[..end];
    let mut needs = match method {
        "GET" | "HEAD" => vec![repo(name, "pull")],
        "DELETE" => vec![repo(name, "delete")],
        _ => vec![repo(name, "pull"), repo(name, "push")],
    };
    if method == "POST" {
        if let Some((_, from)) = query_pairs(query).into_iter().find(|(k, _)| k == "from") {
            needs.push(repo(&from, "pull"));
        }
    }
    needs
}

fn covers(granted: &[Access], need: &Access) -> bool {
    granted.iter().any(|g| {
        g.kind == need.kind && g.name == need.name && (g.action == need.action || g.action == "*")
    })
}

/// Scopes in challenge syntax, `repository:a:pull,push repository:b:pull`.
fn scope_string(needs: &[Access]) -> String {
    let mut scopes: Vec<(String, Vec<&str>)> = Vec::new();
    for need in needs {
        let key = format!("{}:{}", need.kind, need.name);
        match scopes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, actions)) => actions.push(&need.action),
            None => scopes.push((key, vec![&need.action])),
        }
    }
    scopes
        .iter()
        .map(|(k, actions)| format!("{k}:{}", actions.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `type:name:actions` scopes (space-separated, several `scope` parameters allowed).
fn parse_scopes<'a>(scopes: impl Iterator<Item = &'a str>) -> Vec<Access> {
    let mut granted = Vec::new();
    for scope in scopes.flat_map(str::split_whitespace) {
        let (Some((kind, rest)), true) = (scope.split_once(':'), scope.matches(':').count() >= 2)
        else {
            continue;
        };
        let (name, actions) = rest.rsplit_once(':').expect("two colons checked");
        for action in actions.split(',').filter(|a| !a.is_empty()) {
            granted.push(Access {
                kind: kind.into(),
                name: name.into(),
                action: action.into(),
            });
        }
    }
    granted
}

fn challenge(
    writer: &mut impl Write,
    state: &State,
    needs: &[Access],
    had_token: bool,
) -> io::Result<()> {
    let mut value = format!(
        "Bearer realm=\"http://{}/token\",service=\"{TOKEN_SERVICE}\"",
        state.addr
    );
    if !needs.is_empty() {
        value += &format!(",scope=\"{}\"", scope_string(needs));
    }
    if had_token {
        value += ",error=\"insufficient_scope\"";
    }
    respond(
        writer,
        "401 Unauthorized",
        &[
            ("WWW-Authenticate", &value),
            ("Content-Type", "application/json"),
            ("Docker-Distribution-Api-Version", "registry/2.0"),
        ],
        r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#,
    )
}

fn token_endpoint(
    writer: &mut impl Write,
    state: &State,
    head: &Head,
    query: &str,
) -> io::Result<()> {
    if let Some((user, password)) = &state.credentials {
        let given = head
            .header("authorization")
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64_decode(b.trim()))
            .map(|raw| String::from_utf8_lossy(&raw).into_owned());
        if given.as_deref() != Some(&format!("{user}:{password}")) {
            return respond(
                writer,
                "401 Unauthorized",
                &[
                    (
                        "WWW-Authenticate",
                        "Basic realm=\"stevedore-testbed-token\"",
                    ),
                    ("Content-Type", "application/json"),
                ],
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"wrong or missing credentials for the token service","detail":null}]}"#,
            );
        }
    }
    let params = query_pairs(query);
    if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
        if service != TOKEN_SERVICE {
            return respond(
                writer,
                "400 Bad Request",
                &[("Content-Type", "application/json")],
                r#"{"errors":[{"code":"DENIED","message":"unknown service"}]}"#,
            );
        }
    }
    let granted = parse_scopes(
        params
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    grant(writer, state, granted)
}

/// `POST /token` with an OAuth2 form: only `grant_type=refresh_token` with the refresh token
/// [`TokenFront::accept_refresh_token`] set, as docker's identity-token flow sends it.
fn refresh_endpoint(writer: &mut impl Write, state: &State, form: &str) -> io::Result<()> {
    let params = query_pairs(form);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let expected = state
        .refresh_token
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let valid = param("grant_type") == Some("refresh_token")
        && expected.is_some()
        && param("refresh_token") == expected.as_deref()
        && param("service").is_none_or(|s| s == TOKEN_SERVICE);
    if !valid {
        return respond(
            writer,
            "401 Unauthorized",
            &[("Content-Type", "application/json")],
            r#"{"error":"invalid_grant"}"#,
        );
    }
    grant(writer, state, parse_scopes(param("scope").into_iter()))
}

/// Issues a token for `granted` and answers with it.
fn grant(writer: &mut impl Write, state: &State, granted: Vec<Access>) -> io::Result<()> {
    let serial = state.next_token.fetch_add(1, Ordering::Relaxed);
    let token = format!("tb{serial}.{:016x}", {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(serial);
        h.finish()
    });
    state
        .tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(token.clone(), granted);
    let body =
        serde_json::json!({ "token": token, "access_token": token, "expires_in": 300 }).to_string();
    respond(
        writer,
        "200 OK",
        &[("Content-Type", "application/json")],
        &body,
    )
}

pub(crate) fn respond(
    writer: &mut impl Write,
    status: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> io::Result<()> {
    write!(writer, "HTTP/1.1 {status}\r\n")?;
    for (k, v) in headers {
        write!(writer, "{k}: {v}\r\n")?;
    }
    write!(
        writer,
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    writer.flush()
}

/// Headers that belong to one connection, not to the message (RFC 9110 §7.6.1), and the
/// credentials meant for the front only.
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "expect",
        "authorization",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

pub(crate) fn forward(
    upstream_to: &Upstream<'_>,
    head: &Head,
    method: &str,
    target: &str,
    client_reader: &mut BufReader<TcpStream>,
    client_writer: &mut BufWriter<TcpStream>,
    cut: Option<Cut>,
) -> io::Result<()> {
    let upstream = TcpStream::connect(upstream_to.addr)?;
    upstream.set_read_timeout(Some(IO_TIMEOUT))?;
    upstream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut up_writer = BufWriter::new(upstream.try_clone()?);
    // Host stays the front's, so the registry writes the front's address into Location.
    write!(up_writer, "{method} {target} HTTP/1.1\r\n")?;
    for (k, v) in head.headers.iter().filter(|(k, _)| !hop_by_hop(k)) {
        write!(up_writer, "{k}: {v}\r\n")?;
    }
    write!(up_writer, "Connection: close\r\n\r\n")?;
    if head
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        client_writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        client_writer.flush()?;
    }
    relay_body(client_reader, &mut up_writer, head.body()?)?;
    up_writer.flush()?;

    let mut up_reader = BufReader::new(upstream);
    let response = read_head(&mut up_reader)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "registry closed without a response",
        )
    })?;
    write!(client_writer, "{}\r\n", response.line)?;
    for (k, v) in response.headers.iter().filter(|(k, _)| !hop_by_hop(k)) {
        let v = if k.eq_ignore_ascii_case("location") {
            let moved = v.replace(
                &format!("//{}", upstream_to.addr),
                &format!("//{}", upstream_to.front),
            );
            match upstream_to.location_base {
                Some(base) => moved.replace(&format!("http://{}", upstream_to.front), base),
                None => moved,
            }
        } else {
            v.clone()
        };
        write!(client_writer, "{k}: {v}\r\n")?;
    }
    write!(client_writer, "Connection: close\r\n\r\n")?;
    // We asked for Connection: close, so the registry ends the body by closing: copy to EOF.
    match cut {
        None => io::copy(&mut up_reader, client_writer)?,
        Some(Cut::Close(limit) | Cut::Stall(limit)) => {
            io::copy(&mut (&mut up_reader).take(limit), client_writer)?
        }
    };
    client_writer.flush()?;
    match cut {
        None => client_writer.get_ref().shutdown(std::net::Shutdown::Write),
        Some(Cut::Close(_)) => client_writer.get_ref().shutdown(std::net::Shutdown::Both),
        Some(Cut::Stall(_)) => hold_until_client_leaves(client_reader.get_ref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(kind: &str, name: &str, action: &str) -> Access {
        Access {
            kind: kind.into(),
            name: name.into(),
            action: action.into(),
        }
    }

    #[test]
    fn scopes_follow_method_and_path() {
        assert_eq!(required_access("GET", "/v2/", ""), []);
        assert_eq!(
            required_access("HEAD", "/v2/a/b/manifests/latest", ""),
            [access("repository", "a/b", "pull")]
        );
        assert_eq!(
            required_access("PATCH", "/v2/x/blobs/uploads/1234", "_state=abc"),
            [
                access("repository", "x", "pull"),
                access("repository", "x", "push")
            ]
        );
        assert_eq!(
            required_access("GET", "/v2/a/blobs/b/manifests/m", ""),
            [access("repository", "a/blobs/b", "pull")]
        );
        assert_eq!(
            required_access("GET", "/v2/t/tags/list", ""),
            [access("repository", "t", "pull")]
        );
        assert_eq!(
            required_access("DELETE", "/v2/t/manifests/sha256:00", ""),
            [access("repository", "t", "delete")]
        );
        let mount = required_access(
            "POST",
            "/v2/to/blobs/uploads/",
            "mount=sha256%3A00&from=from%2Frepo",
        );
        assert_eq!(
            scope_string(&mount),
            "repository:to:pull,push repository:from/repo:pull"
        );
    }

    #[test]
    fn granted_scopes_parse() {
        let granted = parse_scopes(
            [
                "repository:a/b:pull,push",
                "repository:c:pull junk registry:catalog:*",
            ]
            .into_iter(),
        );
        assert!(covers(&granted, &access("repository", "a/b", "push")));
        assert!(covers(&granted, &access("repository", "c", "pull")));
        assert!(!covers(&granted, &access("repository", "c", "push")));
        assert!(covers(&granted, &access("registry", "catalog", "*")));
    }

    #[test]
    fn chunked_bodies_relay_byte_for_byte() {
        let wire = b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let mut reader = io::BufReader::new(&wire[..]);
        let mut out = Vec::new();
        relay_body(&mut reader, &mut out, Body::Chunked).unwrap();
        assert_eq!(out, &wire[..wire.len() - 4]);
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT");
    }
}
