//! End-to-end tests of the built `azdock` binary: real files, the real openssl and docker CLIs,
//! and a real dockerd. One test binary for the package, to keep link times down.

// In tests a panic is the failure report, helpers included.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod classic;
mod cli;
mod cloud;
mod docker;
mod identity;
mod interop;
mod local;
mod plugins;
mod secrets;
mod tls;
mod vmaccess;
