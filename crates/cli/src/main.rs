//! The `azdock` binary: everything lives in the `azdock_cli` library so xtask can reach the
//! command tree for completions and man pages.

fn main() -> std::process::ExitCode {
    azdock_cli::main()
}
