//! Progress on stderr while the host works: on a terminal a spinner with its elapsed time for
//! each running step and a line for each finished one (indicatif); elsewhere one plain line per
//! finished step with its seconds and no control characters; nothing with `--only-show-errors`.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::Duration;

use azdock_host::StepOutcome;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) struct Progress {
    mode: Mode,
}

enum Mode {
    Quiet,
    Plain,
    Live { multi: MultiProgress, running: Mutex<Vec<(String, ProgressBar)>> },
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Quiet => "quiet",
            Mode::Plain => "plain",
            Mode::Live { .. } => "live",
        };
        f.debug_struct("Progress").field("mode", &mode).finish()
    }
}

/// A finished step's line: `virtual network web1VNET: created (2.1 s)`.
pub(crate) fn step_line(step: &str, outcome: &StepOutcome, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    match outcome {
        StepOutcome::Failed(why) => format!("{step}: failed ({secs:.1} s): {why}"),
        other => format!("{step}: {} ({secs:.1} s)", other.word()),
    }
}

impl Progress {
    /// Live spinners only where a person watches: stderr a terminal that can redraw.
    pub(crate) fn new(only_show_errors: bool) -> Self {
        let mode = if only_show_errors {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() && std::env::var("TERM").is_ok_and(|t| t != "dumb") {
            Mode::Live {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                running: Mutex::new(Vec::new()),
            }
        } else {
            Mode::Plain
        };
        Self { mode }
    }

    fn running(running: &Mutex<Vec<(String, ProgressBar)>>) -> std::sync::MutexGuard<'_, Vec<(String, ProgressBar)>> {
        running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A line of its own (a warning, a note), above any spinners.
    pub(crate) fn line(&self, text: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Plain => eprintln!("{text}"),
            Mode::Live { multi, .. } => {
                if multi.println(text).is_err() {
                    eprintln!("{text}");
                }
            }
        }
    }

    pub(crate) fn started(&self, step: &str) {
        if let Mode::Live { multi, running } = &self.mode {
            let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bar = multi.add(ProgressBar::new_spinner().with_style(style).with_message(step.to_owned()));
            bar.enable_steady_tick(Duration::from_millis(100));
            Self::running(running).push((step.to_owned(), bar));
        }
    }

    pub(crate) fn done(&self, step: &str, outcome: &StepOutcome, elapsed: Duration) {
        let line = step_line(step, outcome, elapsed);
        match &self.mode {
            Mode::Quiet => {}
            Mode::Plain => eprintln!("{line}"),
            Mode::Live { multi, running } => {
                let bar = {
                    let mut running = Self::running(running);
                    running.iter().position(|(s, _)| s == step).map(|i| running.remove(i).1)
                };
                let mark = if matches!(outcome, StepOutcome::Failed(_)) { "✗" } else { "✓" };
                if multi.println(format!("{mark} {line}")).is_err() {
                    eprintln!("{line}");
                }
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_step_says_what_happened_and_how_long_it_took() {
        let d = Duration::from_millis(2140);
        assert_eq!(
            step_line("virtual network aVNET", &StepOutcome::Created, d),
            "virtual network aVNET: created (2.1 s)"
        );
        assert_eq!(step_line("NIC aVMNic", &StepOutcome::Reused, d), "NIC aVMNic: reused (2.1 s)");
        assert_eq!(
            step_line("VM a", &StepOutcome::Failed("QuotaExceeded".into()), d),
            "VM a: failed (2.1 s): QuotaExceeded"
        );
    }
}
