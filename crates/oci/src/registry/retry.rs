//! The one retry policy of the registry client: which failures can get better by waiting, and
//! how long to wait. Failures are classified by their type (io error kind, reqwest's kind, the
//! TLS library's error, HTTP status, registry error code), never by their message.
//!
//! Never retried: TLS handshake and certificate failures, name resolution failures, 4xx other
//! than 408 and 429, local disk errors. Everything else that is transient gets exponential
//! backoff with jitter (backon's policy) inside a total time budget per operation; a server's
//! `Retry-After`, in seconds or as an HTTP date, replaces the computed wait.

use std::error::Error as StdError;
use std::io;
use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use reqwest::StatusCode;

/// How hard one operation (a request, a blob transfer) tries before it gives up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Tries in all, the first included.
    pub attempts: usize,
    /// Time from the first try after which no new try starts.
    pub budget: Duration,
    pub min_wait: Duration,
    pub max_wait: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            attempts: 5,
            budget: Duration::from_secs(120),
            min_wait: Duration::from_millis(200),
            max_wait: Duration::from_secs(8),
        }
    }
}

impl Policy {
    /// The tries of one operation, started now.
    pub(crate) fn start(&self) -> Attempts {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_wait)
            .with_max_delay(self.max_wait)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1))
            .build();
        Attempts {
            backoff,
            started: Instant::now(),
            budget: self.budget,
            max_server_wait: self.budget.min(Duration::from_secs(60)),
        }
    }
}

/// The state of one operation's tries.
#[derive(Debug)]
pub(crate) struct Attempts {
    backoff: ExponentialBackoff,
    started: Instant,
    budget: Duration,
    max_server_wait: Duration,
}

impl Attempts {
    /// Waits before the next try and returns `true`, or returns `false` at once when the tries
    /// or the time budget are spent (a `Retry-After` beyond the budget spends it).
    pub(crate) fn wait(&mut self, server_says: Option<Duration>, what: &str) -> bool {
        let Some(computed) = self.backoff.next() else {
            return false;
        };
        let wait = server_says.map_or(computed, |s| s.min(self.max_server_wait));
        if self.started.elapsed() + wait > self.budget {
            return false;
        }
        tracing::info!("{what}; trying again in {:.1} s", wait.as_secs_f64());
        std::thread::sleep(wait);
        true
    }
}

/// Whether a failure to send a request or read its response may clear up on another try.
pub(crate) fn transient(e: &reqwest::Error) -> bool {
    if tls_failure(e).is_some() {
        return false;
    }
    if let Some(kind) = io_kind(e) {
        return transient_io(kind);
    }
    e.is_timeout() || e.is_connect() || e.is_body() || e.is_decode() || e.is_request()
}

/// Whether an error from a response body being read (reqwest wraps its own error in an
/// `io::Error`) may clear up on another try. Other io errors are local and final.
pub(crate) fn transient_read(e: &io::Error) -> bool {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
    {
        Some(inner) => transient(inner),
        None => transient_io(e.kind()) && e.get_ref().is_none(),
    }
}

fn transient_io(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | TimedOut
            | UnexpectedEof
            | Interrupted
            | WouldBlock
    )
}

/// The first io error kind in an error's causes.
fn io_kind(e: &(dyn StdError + 'static)) -> Option<io::ErrorKind> {
    causes(e).find_map(|c| c.downcast_ref::<io::Error>().map(io::Error::kind))
}

/// The TLS library's error behind a failure, if the failure is one of TLS.
pub(crate) fn tls_failure<'e>(e: &'e (dyn StdError + 'static)) -> Option<&'e rustls::Error> {
    causes(e).find_map(rustls_in)
}

/// The rustls error an error is, or wraps in (possibly nested) `io::Error`s: the TLS stack
/// wraps it twice, and `io::Error::source` skips what it wraps, so the chain alone misses it.
fn rustls_in<'e>(e: &'e (dyn StdError + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner: &(dyn StdError + 'static) = e.downcast_ref::<io::Error>()?.get_ref()?;
    rustls_in(inner)
}

/// An error and every error under it.
fn causes<'e>(
    e: &'e (dyn StdError + 'static),
) -> impl Iterator<Item = &'e (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |e: &&'e (dyn StdError + 'static)| (*e).source())
}

/// Statuses worth another try: the server is busy, overloaded or timed out.
pub(crate) fn transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// The wait a `Retry-After` header asks for, given as seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn after(value: &str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        retry_after(&headers)
    }

    #[test]
    fn retry_after_in_seconds_and_as_an_http_date() {
        assert_eq!(after("3"), Some(Duration::from_secs(3)));
        let in_ten = SystemTime::now() + Duration::from_secs(10);
        let waited = after(&httpdate::fmt_http_date(in_ten)).unwrap();
        assert!(
            (Duration::from_secs(8)..=Duration::from_secs(10)).contains(&waited),
            "{waited:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(after(&past), Some(Duration::ZERO));
        assert_eq!(after("soon"), None);
    }

    #[test]
    fn only_busy_and_failing_servers_are_retried() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(
                transient_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 405, 409, 416, 501, 505] {
            assert!(
                !transient_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
    }

    #[test]
    fn local_io_errors_are_final_network_ones_are_not() {
        let disk_full = io::Error::from(io::ErrorKind::StorageFull);
        assert!(!transient_read(&disk_full));
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(!transient_read(&denied));
        // A digest check failing is an io error carrying a typed error: final here too.
        let mismatch = io::Error::new(io::ErrorKind::InvalidData, "digest");
        assert!(!transient_read(&mismatch));
        assert!(transient_read(&io::Error::from(
            io::ErrorKind::ConnectionReset
        )));
    }

    #[test]
    fn tls_failures_are_found_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, tls);
        // As reqwest's stack hands it over: an io::Error around an io::Error around it.
        let twice = io::Error::new(io::ErrorKind::InvalidData, wrapped);
        assert!(matches!(
            tls_failure(&twice),
            Some(rustls::Error::InvalidCertificate(_))
        ));
        assert!(tls_failure(&io::Error::from(io::ErrorKind::InvalidData)).is_none());
    }

    #[test]
    fn the_budget_ends_the_tries() {
        let policy = Policy {
            attempts: 10,
            budget: Duration::from_millis(50),
            min_wait: Duration::from_millis(20),
            max_wait: Duration::from_millis(20),
        };
        let mut tries = policy.start();
        let mut waited = 0;
        while tries.wait(None, "test") {
            waited += 1;
        }
        assert!(
            waited <= 3,
            "{waited} waits in a 50 ms budget of 20–40 ms waits"
        );
        let mut tries = policy.start();
        assert!(
            !tries.wait(Some(Duration::from_secs(5)), "test"),
            "Retry-After past the budget"
        );
        let mut tries = Policy {
            attempts: 2,
            ..Policy::default()
        }
        .start();
        assert!(tries.wait(Some(Duration::ZERO), "test"));
        assert!(
            !tries.wait(Some(Duration::ZERO), "test"),
            "two tries in all"
        );
    }
}
