//! Integration tests: the real `cargo-stevedore` binary against the real test bed
//! (a distribution registry, the distroless stand-in, skopeo, umoci, docker).

mod audit;
mod bases;
mod bounded;
mod build;
mod config;
mod crash;
mod debuginfo;
mod deploy;
mod errors;
mod faults;
mod fleet;
mod glibc;
mod golden;
mod hermetic;
mod init;
mod install;
mod library;
mod login;
mod pull;
mod push;
mod quiet;
mod rebase;
mod reproducible;
mod resolve;
mod rootless;
mod secrets;
mod sign;
mod trust;
mod util;
mod xtask;
mod zig;
