//! What the host tells the user while it works, as events: the host never prints; the CLI
//! renders them (warnings and notes on stderr today, progress lines later).

/// One thing worth telling the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Something the user should know and may act on (`WARNING: …`).
    Warning(String),
    /// Guidance or progress (`connect with: …`).
    Info(String),
    /// One VM of a fleet run finished.
    VmDone { vm: String, action: String, error: Option<String> },
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
}
