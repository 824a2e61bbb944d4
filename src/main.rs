//! `cargo stevedore`: the command line over the `stevedore` library's public API. It owns
//! what only a terminal needs: clap's flags, `init`, `resolve`/`apply` over YAML files and
//! kubectl, logs and progress bars, and the one error report with its exit code.

// The library's errors carry the context a user needs; they are built once, on the way out.
#![allow(clippy::result_large_err)]
// Doc comments here are clap's help text, where `host[:port]` is usage syntax, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

mod cli;
mod init;

fn main() -> std::process::ExitCode {
    cli::main()
}
