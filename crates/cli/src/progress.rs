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
    Live { multi: MultiProgress, running: Mutex<Vec<(String, ProgressBar)>>, fleet: Mutex<Option<Fleet>> },
}

/// A fleet run's bar: VMs done of the total, how many failed, rate and ETA.
struct Fleet {
    bar: ProgressBar,
    action: String,
    failed: usize,
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
                fleet: Mutex::new(None),
            }
        } else {
            Mode::Plain
        };
        Self { mode }
    }

    fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fleet run of `action` over `total` VMs begins: on a terminal, one bar for all of them
    /// instead of a line per VM.
    pub(crate) fn fleet_start(&self, action: &str, total: usize) {
        if let Mode::Live { multi, fleet, .. } = &self.mode
            && total > 1
        {
            let style = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} · {per_sec} · ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar =
                multi.add(ProgressBar::new(total as u64).with_style(style).with_message(format!("{action}: 0 failed")));
            bar.enable_steady_tick(Duration::from_millis(200));
            *Self::locked(fleet) = Some(Fleet { bar, action: action.to_owned(), failed: 0 });
        }
    }

    /// One VM of the fleet ended; whether it failed.
    pub(crate) fn fleet_tick(&self, failed: bool) -> bool {
        let Mode::Live { fleet, .. } = &self.mode else { return false };
        let mut fleet = Self::locked(fleet);
        let Some(f) = fleet.as_mut() else { return false };
        if failed {
            f.failed += 1;
            f.bar.set_message(format!("{}: {} failed", f.action, f.failed));
        }
        f.bar.inc(1);
        true
    }

    /// The fleet run is over: its bar goes (the result table follows).
    pub(crate) fn fleet_end(&self) {
        if let Mode::Live { multi, fleet, .. } = &self.mode
            && let Some(f) = Self::locked(fleet).take()
        {
            f.bar.finish_and_clear();
            multi.remove(&f.bar);
        }
    }

    /// A VM of a fleet ended: the bar counts it, else a line says so.
    pub(crate) fn vm_done(&self, vm: &str, action: &str, error: Option<&str>) {
        if self.fleet_tick(error.is_some()) {
            return;
        }
        match error {
            None => self.line(&format!("{vm}: {action} succeeded")),
            Some(e) => self.line(&format!("{vm}: {action} failed: {e}")),
        }
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
        if let Mode::Live { multi, running, .. } = &self.mode {
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
            Mode::Live { multi, running, .. } => {
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
