//! azdock's command-line interface: parses the command line, runs the command, prints the
//! result on stdout in the chosen format and messages on stderr, and maps errors to exit codes.

// A command-line tool's job is to print; libraries in the workspace keep these lints.
#![allow(clippy::print_stderr, clippy::print_stdout)]

pub mod cli;
mod commands;
mod config;
mod error;
mod lazy;
mod output;
mod plugins;
mod progress;
mod session;
mod targets;

use std::process::ExitCode;

// Built-in extensions register themselves; naming the crates keeps the linker from dropping them.
use azdock_ext_docker as _;
use azdock_ext_vmaccess as _;

use clap::{CommandFactory, FromArgMatches as _};

use crate::cli::{Cli, Command};
use crate::commands::Ctx;
use crate::output::Format;

/// The full clap command tree, for completions and man pages.
pub fn command() -> clap::Command {
    lazy::whole_tree()
}

/// Runs azdock with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    // The plugin process (see `plugin_process`): no clap, no config, just the pipe.
    if std::env::args_os().nth(1).is_some_and(|a| a == azdock_host::plugins::ARG) {
        return match plugins::plugin_dir() {
            Ok(dir) => azdock_host::plugins::serve(&dir),
            Err(_) => ExitCode::FAILURE,
        };
    }
    let cli = match Cli::command().try_get_matches_from(std::env::args_os()) {
        Ok(matches) => match Cli::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        },
        // `azdock ext --help` lists the plugins beside the built-ins: they are loaded only then.
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) && asks_ext_help() =>
        {
            // The whole tree, so that the plugins join `ext` after its built-ins.
            let with_plugins = command().mut_subcommand("ext", plugins::with_plugin_commands);
            match with_plugins.try_get_matches_from(std::env::args_os()) {
                Err(e) => e.exit(),
                Ok(_) => e.exit(),
            }
        }
        Err(e) => e.exit(),
    };
    init_logging(&cli.global);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` joins the chain of causes with `: `, one line a user can paste.
            eprintln!("ERROR: {err:#}");
            ExitCode::from(error::exit_code(&err))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = config::load()?;
    let ctx = Ctx {
        format: cli.global.output.or(config.defaults.output).unwrap_or(Format::Json),
        query: cli.global.query.clone(),
        only_show_errors: cli.global.only_show_errors,
        progress: crate::progress::Progress::new(cli.global.only_show_errors),
    };
    if let Some(what) = cli.command.destructive() {
        session::refuse_implicit_local(&cli.global, &config, what)?;
    }
    match cli.command {
        Command::Certs(cli::Lazy(args)) => commands::certs::run(&ctx, args, config.defaults.docker_cert_dir.as_deref()),
        Command::Cloud(command) => commands::cloud::run(&ctx, &cli.global, &config, &command),
        Command::Ext(command) => commands::ext::run(&ctx, &cli.global, &config, &command),
        Command::Local(command) => commands::local::run(&ctx, &command),
        Command::Docker(command) => commands::docker::run_client(&ctx, &command),
        Command::Login(args) => commands::login::login(&ctx, &cli.global, &config, &args),
        Command::Logout => commands::login::logout(&ctx, &cli.global, &config),
        Command::Account(command) => commands::account::run(&ctx, &cli.global, &config, &command),
        Command::Vm(cli::Lazy(cli::VmCommand::Docker(cli::VmDockerCommand::Create(args)))) => {
            commands::create::run_docker(&ctx, &cli.global, &config, &args)
        }
        Command::Vm(cli::Lazy(cli::VmCommand::Create(args))) => {
            commands::create::run_vm(&ctx, &cli.global, &config, &args)
        }
        Command::Vm(command) => commands::vm::run(&ctx, &cli.global, &config, &command),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "azdock", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Whether the command line asks for the help of `ext` itself (`azdock [options] ext --help`).
fn asks_ext_help() -> bool {
    let words: Vec<String> = std::env::args().skip(1).collect();
    // Global options (and their values) may come before `ext`; only options after it.
    words.iter().position(|w| w == "ext").is_some_and(|i| words[i + 1..].iter().all(|w| w.starts_with('-')))
}

/// Logs go to stderr: warnings by default, info with `--verbose`, debug with `--debug`. Only
/// azdock's own crates log below warning level: they redact secrets before formatting, and
/// libraries' debug output (connection pools, TLS) would drown them.
fn init_logging(global: &cli::GlobalArgs) {
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let level = if global.debug {
        LevelFilter::DEBUG
    } else if global.verbose {
        LevelFilter::INFO
    } else if global.only_show_errors {
        LevelFilter::ERROR
    } else {
        LevelFilter::WARN
    };
    let libraries = if global.only_show_errors { LevelFilter::ERROR } else { LevelFilter::WARN };
    let filter = Targets::new()
        .with_default(libraries)
        .with_target("azdock", level)
        .with_target("azdock_cli", level)
        .with_target("azdock_azure_sm", level)
        .with_target("azdock_emulator", level)
        .with_target("azdock_certs", level);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(global.debug)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time();
    tracing_subscriber::registry().with(layer).with(filter).init();
}

#[cfg(test)]
mod tests {
    /// This crate's build script links GCC's unwinder statically (as into the binary, and into
    /// this test binary alike): panics must still unwind, to be caught, and stacks be walked.
    #[test]
    fn the_statically_linked_unwinder_catches_panics_and_walks_stacks() {
        let caught = std::panic::catch_unwind(|| panic!("unwound"));
        let message = caught.expect_err("the panic was caught").downcast::<&str>().expect("its message");
        assert_eq!(*message, "unwound");
        let trace = std::backtrace::Backtrace::force_capture();
        assert_eq!(trace.status(), std::backtrace::BacktraceStatus::Captured);
        assert!(trace.to_string().contains("the_statically_linked_unwinder"), "{trace}");
    }
}
