//! The commands: each turns parsed arguments into a JSON result for `output::print`.

pub(crate) mod account;
pub(crate) mod certs;
pub(crate) mod cloud;
pub(crate) mod create;
pub(crate) mod docker;
pub(crate) mod ext;
pub(crate) mod local;
pub(crate) mod login;
pub(crate) mod plugin;
pub(crate) mod vm;
pub(crate) mod vmaccess;

use std::io::IsTerminal as _;

use crate::output::Format;

/// What every command needs from the global flags.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub format: Format,
    pub query: Option<String>,
    pub only_show_errors: bool,
    /// Where progress and messages go on stderr.
    pub progress: crate::progress::Progress,
}

impl Ctx {
    /// Prints a warning on stderr, unless `--only-show-errors`.
    pub(crate) fn warn(&self, message: &str) {
        if !self.only_show_errors {
            self.progress.line(&format!("WARNING: {message}"));
        }
    }

    /// Prints progress or guidance on stderr, unless `--only-show-errors`; stdout stays the
    /// result alone, for scripts.
    pub(crate) fn info(&self, message: &str) {
        if !self.only_show_errors {
            self.progress.line(message);
        }
    }

    /// Prints the result in the chosen format.
    pub(crate) fn print(&self, value: &serde_json::Value, columns: crate::output::Columns) -> anyhow::Result<()> {
        crate::output::print(value, self.format, self.query.as_deref(), columns)
    }
}

/// The host's events, rendered as the CLI renders everything else on stderr.
impl azdock_host::Events for Ctx {
    fn emit(&self, event: azdock_host::Event) {
        match event {
            azdock_host::Event::Warning(message) => self.warn(&message),
            azdock_host::Event::Info(message) => self.info(&message),
            azdock_host::Event::VmDone { vm, action, error } => {
                if !self.only_show_errors {
                    self.progress.vm_done(&vm, &action, error.as_deref());
                }
            }
            azdock_host::Event::StepStarted { step } => self.progress.started(&step),
            azdock_host::Event::StepDone { step, outcome, elapsed } => self.progress.done(&step, &outcome, elapsed),
        }
    }
}

/// Whether a person is at the keyboard to answer a prompt.
pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}
