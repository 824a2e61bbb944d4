//! Another origin on 127.0.0.1 (its own port), where a hostile or careless registry sends its
//! clients: a redirect target, an upload `Location`. It records every request with the
//! `Authorization` header it carried, so a test can show that no credential of the registry
//! ever reached it. It either relays to a real registry (a CDN, a proxy that forgot
//! `X-Forwarded-Proto`) or asks for credentials of its own (a realm a stranger controls).

use std::io::{self, BufReader, BufWriter};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::registry::Registry;
use crate::token::{forward, read_head, record, relay_body, respond, Seen, Upstream};

const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// What the other origin does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    /// Relay it to the registry, as it is.
    Relay,
    /// Answer `401` with a bearer challenge whose realm is this origin's `/token`.
    Challenge,
}

/// Another origin on 127.0.0.1, recording what it is sent; stopped on drop.
pub struct Elsewhere {
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

struct State {
    addr: String,
    upstream: Option<String>,
    behaviour: Behaviour,
    seen: Mutex<Vec<Seen>>,
    shutdown: AtomicBool,
}

impl Elsewhere {
    /// An origin that relays every request to `registry` (plain HTTP, no auth of its own), so
    /// what is sent there without credentials still succeeds.
    pub fn relaying_to(registry: &Registry) -> Elsewhere {
        Elsewhere::start(Some(registry.addr()), Behaviour::Relay)
    }

    /// An origin that asks for credentials of its own: every `/v2/` request gets `401` with
    /// `Bearer realm="http://ADDR/token"`, and `/token` hands out a token to anyone.
    pub fn challenging() -> Elsewhere {
        Elsewhere::start(None, Behaviour::Challenge)
    }

    fn start(upstream: Option<String>, behaviour: Behaviour) -> Elsewhere {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind another origin on 127.0.0.1");
        let state = Arc::new(State {
            addr: listener.local_addr().expect("local address").to_string(),
            upstream,
            behaviour,
            seen: Mutex::new(Vec::new()),
            shutdown: AtomicBool::new(false),
        });
        let accept_state = Arc::clone(&state);
        let accept = std::thread::Builder::new()
            .name("elsewhere".into())
            .spawn(move || accept_loop(listener, accept_state))
            .expect("spawn the other origin's accept thread");
        Elsewhere {
            state,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.state.addr)
    }

    /// Every request received so far, with its `Authorization` header.
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Elsewhere {
    fn drop(&mut self) {
        self.state.shutdown.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.state.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for conn in listener.incoming() {
        if state.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let state = Arc::clone(&state);
        // One thread per connection; tests send a handful of requests.
        let _ = std::thread::Builder::new()
            .name("elsewhere-conn".into())
            .spawn(move || {
                if let Err(e) = handle(conn, &state) {
                    eprintln!("elsewhere: connection ended with an error: {e}");
                }
            });
    }
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
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    record(&state.seen, &method, &path, &head);
    match (state.behaviour, &state.upstream) {
        (Behaviour::Relay, Some(upstream)) => {
            let upstream = Upstream {
                addr: upstream,
                front: &state.addr,
                location_base: None,
            };
            forward(
                &upstream,
                &head,
                &method,
                &target,
                &mut reader,
                &mut writer,
                None,
            )
        }
        _ if path == "/token" => {
            relay_body(&mut reader, &mut io::sink(), head.body()?)?;
            let headers = [("Content-Type", "application/json")];
            respond(&mut writer, "200 OK", &headers, r#"{"token":"elsewhere"}"#)
        }
        _ => {
            relay_body(&mut reader, &mut io::sink(), head.body()?)?;
            let challenge = format!(
                "Bearer realm=\"http://{}/token\",service=\"elsewhere\"",
                state.addr
            );
            respond(
                &mut writer,
                "401 Unauthorized",
                &[("WWW-Authenticate", &challenge)],
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )
        }
    }
}
