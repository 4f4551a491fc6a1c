//! What the host tells the user while it works, as events: the host never prints; the CLI
//! renders them (warnings and notes on stderr, each step of long work as it starts and ends).

use std::time::{Duration, Instant};

/// One thing worth telling the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Something the user should know and may act on (`WARNING: …`).
    Warning(String),
    /// Guidance or progress (`connect with: …`).
    Info(String),
    /// One VM of a fleet run finished.
    VmDone { vm: String, action: String, error: Option<String> },
    /// A step of long work began (`virtual network web1VNET`, `waiting for dockerd on …`).
    StepStarted { step: String },
    /// A step ended, after `elapsed`.
    StepDone { step: String, outcome: StepOutcome, elapsed: Duration },
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// It made something.
    Created,
    /// What it would have made was there.
    Reused,
    /// It did its work.
    Done,
    /// Azure accepted it and it goes on without us (`--no-wait`).
    Accepted,
    /// It failed, for this reason.
    Failed(String),
}

impl StepOutcome {
    /// The outcome as a step's last line says it.
    pub fn word(&self) -> &str {
        match self {
            Self::Created => "created",
            Self::Reused => "reused",
            Self::Done => "done",
            Self::Accepted => "accepted, not waited for (--no-wait)",
            Self::Failed(_) => "failed",
        }
    }
}

/// A step under way: reports its start when made and its end through [`Step::end`]; a step
/// dropped without an end (its work failed with `?`) reports a failure.
pub struct Step<'a> {
    events: &'a dyn Events,
    name: String,
    started: Instant,
    ended: bool,
}

impl<'a> Step<'a> {
    pub fn start(events: &'a dyn Events, name: impl Into<String>) -> Self {
        let name = name.into();
        events.emit(Event::StepStarted { step: name.clone() });
        Self { events, name, started: Instant::now(), ended: false }
    }

    pub fn end(mut self, outcome: StepOutcome) {
        self.finish(outcome);
    }

    /// Ends the step with `result`'s outcome (a failure's message), passing the result on.
    pub fn ended<T, E: std::fmt::Display>(self, result: Result<T, E>, ok: StepOutcome) -> Result<T, E> {
        match &result {
            Ok(_) => self.end(ok),
            Err(e) => self.end(StepOutcome::Failed(e.to_string())),
        }
        result
    }

    fn finish(&mut self, outcome: StepOutcome) {
        self.ended = true;
        let elapsed = self.started.elapsed();
        self.events.emit(Event::StepDone { step: std::mem::take(&mut self.name), outcome, elapsed });
    }
}

impl std::fmt::Debug for Step<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step").field("name", &self.name).field("started", &self.started).finish_non_exhaustive()
    }
}

impl Drop for Step<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.finish(StepOutcome::Failed("stopped".into()));
        }
    }
}

/// Where the host sends its events.
pub trait Events: Send + Sync {
    fn emit(&self, event: Event);

    /// A warning.
    fn warn(&self, message: &str) {
        self.emit(Event::Warning(message.to_owned()));
    }

    /// Guidance or progress.
    fn info(&self, message: &str) {
        self.emit(Event::Info(message.to_owned()));
    }
}

/// Drops every event (library callers that report nothing).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Events for Silent {
    fn emit(&self, _event: Event) {}
}

/// Keeps every event, in order (tests, and callers that render at the end).
#[derive(Debug, Default)]
pub struct Recorded(std::sync::Mutex<Vec<Event>>);

impl Recorded {
    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Events for Recorded {
    fn emit(&self, event: Event) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_events_keep_their_kind_and_order() {
        let events = Recorded::default();
        events.warn("w");
        events.info("i");
        events.emit(Event::VmDone { vm: "vm1".into(), action: "a".into(), error: None });
        Silent.warn("dropped");
        assert_eq!(
            events.events(),
            [
                Event::Warning("w".into()),
                Event::Info("i".into()),
                Event::VmDone { vm: "vm1".into(), action: "a".into(), error: None }
            ]
        );
    }

    #[test]
    fn a_step_reports_its_start_and_its_end_once_even_when_dropped_by_a_failure() {
        let events = Recorded::default();
        let ok: Result<u8, String> = Step::start(&events, "a").ended(Ok(1), StepOutcome::Created);
        assert_eq!(ok, Ok(1));
        let err: Result<u8, String> = Step::start(&events, "b").ended(Err("refused".into()), StepOutcome::Created);
        assert!(err.is_err());
        drop(Step::start(&events, "c"));
        let told: Vec<(String, Option<StepOutcome>)> = events
            .events()
            .into_iter()
            .map(|e| match e {
                Event::StepStarted { step } => (step, None),
                Event::StepDone { step, outcome, elapsed } => {
                    assert!(elapsed < Duration::from_secs(5));
                    (step, Some(outcome))
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            told,
            [
                ("a".into(), None),
                ("a".into(), Some(StepOutcome::Created)),
                ("b".into(), None),
                ("b".into(), Some(StepOutcome::Failed("refused".into()))),
                ("c".into(), None),
                ("c".into(), Some(StepOutcome::Failed("stopped".into()))),
            ]
        );
        assert_eq!(StepOutcome::Reused.word(), "reused");
        assert_eq!(StepOutcome::Done.word(), "done");
        assert_eq!(StepOutcome::Accepted.word(), "accepted, not waited for (--no-wait)");
        assert_eq!(StepOutcome::Failed(String::new()).word(), "failed");
    }
}
