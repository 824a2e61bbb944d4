//! What the user sees besides results: the error report, the exit code, logs and transfer
//! bars on stderr.

use std::process::ExitCode;

use super::error::Error;
use stevedore::error::RebaseError;
use stevedore::progress::Progress;
use stevedore::verify::VerifyError;
use stevedore::Digest;
use stevedore::ErrorKind;

/// The process's exit status. Scripts branch on these numbers: they never change meaning, and
/// README's "Exit codes" table lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    /// Done (for `verify`: the rebuilt image is the published one).
    Success = 0,
    /// Stopped by an error; the message says what and how to fix it.
    Failure = 1,
    /// The command line was wrong (unknown flag, missing or malformed value); nothing ran.
    Usage = 2,
    /// `verify` rebuilt an image that differs from the published one.
    Differs = 3,
    /// `debuginfo`: the image carries no debug symbols (it was built without
    /// `--split-debuginfo`).
    NoDebuginfo = 4,
    /// `rebase` refused the image: not stevedore's, not on the base it records, or not what
    /// this checkout builds; nothing was written.
    Refused = 5,
    /// `outdated`: some image is on a base whose tag has moved.
    Outdated = 6,
}

impl Exit {
    pub(super) fn of(error: &Error) -> Exit {
        match error {
            Error::Mismatch { .. } | Error::Unsigned { .. } => Exit::Differs,
            Error::Outdated { .. } => Exit::Outdated,
            Error::Library(e) => Exit::of_library(e.kind()),
            _ => Exit::Failure,
        }
    }

    /// Several images (`rebase --workspace`, `rebase -f`): refused when every one that failed
    /// was refused, so a fleet job can tell "not ours" from a broken registry.
    fn of_library(kind: &ErrorKind) -> Exit {
        match kind {
            ErrorKind::Verify(VerifyError::NoDebuginfo { .. }) => Exit::NoDebuginfo,
            ErrorKind::Rebase(
                RebaseError::NotOurs { .. }
                | RebaseError::BaseLayers { .. }
                | RebaseError::NoApplication { .. }
                | RebaseError::OtherCheckout { .. },
            ) => Exit::Refused,
            ErrorKind::Images { failures, .. }
                if failures
                    .iter()
                    .all(|(_, e)| Exit::of_library(e.kind()) == Exit::Refused) =>
            {
                Exit::Refused
            }
            _ => Exit::Failure,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// When to colour what goes to stderr (`--color`, `CARGO_TERM_COLOR`), as cargo decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Color {
    /// When stderr is a terminal and `NO_COLOR` is unset or empty (no-color.org).
    Auto,
    /// Always, as for a CI log that renders escape sequences.
    Always,
    /// Never.
    Never,
}

impl Color {
    /// Whether this process's stderr gets colour.
    pub(super) fn on_stderr(self) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
                !no_color && std::io::IsTerminal::is_terminal(&std::io::stderr())
            }
        }
    }
}

/// Logs to stderr at the level `-v` or `-q` asks for, unless `STEVEDORE_LOG` sets a filter.
pub(super) fn init_logging(verbose: u8, quiet: bool, colored: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("STEVEDORE_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!(
                "stevedore={level},stevedore_oci={level},cargo_stevedore={level}"
            ))
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| AboveBars)
        .without_time()
        .with_target(false)
        .with_ansi(colored)
        .init();
}

/// The one set of bars of the process, shared by [`Bars`] and the log's writer.
fn multi() -> &'static indicatif::MultiProgress {
    static MULTI: std::sync::OnceLock<indicatif::MultiProgress> = std::sync::OnceLock::new();
    MULTI.get_or_init(indicatif::MultiProgress::new)
}

/// Stderr for log lines, each written with the bars taken away and drawn again below it, so a
/// line never lands inside a bar (indicatif's `suspend`; without bars it is plain stderr).
struct AboveBars;

impl std::io::Write for AboveBars {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        multi().suspend(|| std::io::stderr().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        multi().suspend(|| std::io::stderr().write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Transfer bars on the terminal, one per blob in flight.
pub(super) struct Bars {
    bars: std::sync::Mutex<std::collections::HashMap<Digest, indicatif::ProgressBar>>,
}

impl Bars {
    /// Bars when a person watches stderr, where they are drawn (as cargo decides), and has
    /// not asked for quiet or for JSON; otherwise the log's one line per blob is enough.
    pub(super) fn for_terminal(json: bool, quiet: bool) -> Option<std::sync::Arc<dyn Progress>> {
        let watched = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !json && !quiet;
        watched.then(|| {
            std::sync::Arc::new(Bars {
                bars: Default::default(),
            }) as std::sync::Arc<dyn Progress>
        })
    }
}

impl Progress for Bars {
    fn start(&self, verb: &'static str, digest: &Digest, total: u64) {
        let bar = multi().add(indicatif::ProgressBar::new(total));
        let style = indicatif::ProgressStyle::with_template(
            "{prefix} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(format!("{verb} {}", &digest.hex()[..12]));
        self.bars
            .lock()
            .expect("bars lock")
            .insert(digest.clone(), bar);
    }

    fn advance(&self, digest: &Digest, bytes: u64) {
        if let Some(bar) = self.bars.lock().expect("bars lock").get(digest) {
            bar.inc(bytes);
        }
    }

    fn finish(&self, digest: &Digest) {
        if let Some(bar) = self.bars.lock().expect("bars lock").remove(digest) {
            bar.finish_and_clear();
        }
    }
}

/// Prints an error and its causes once, the way the user reads them.
pub(super) fn report(error: &Error) {
    eprintln!("{}", error.report());
}
