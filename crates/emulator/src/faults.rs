//! Fault injection: for requests matching a method and a path fragment, answer with an error
//! status, drop the connection, add latency, or fail or slow down the long-running operation — at a rate or
//! in an exact sequence, deterministically under a seed.

use serde::{Deserialize, Serialize};

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum FaultKind {
    /// Answer with this status (500, 503, 429, 408, …) and ARM's error body.
    Status { status: u16 },
    /// Close the connection without an answer.
    Drop,
    /// Answer normally after this delay.
    Latency { millis: u64 },
    /// Accept the request, then fail its long-running operation with this error code.
    LroFail { code: String, message: String },
    /// Answer normally, but with `Retry-After: seconds` (ARM and its test proxies send 0 while
    /// an operation is still running).
    RetryAfter { seconds: u64 },
    /// Accept the request, and let its long-running operation take this long instead of the
    /// configured duration (one slow VM in a fleet).
    OperationTime { millis: u64 },
    /// Nothing: a placeholder in a sequence (`[drop, none, status 503]`).
    None,
}

/// A fault rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// HTTP method to match; any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// A case-insensitive fragment the request path must contain; any when absent.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Apply `fault` to this fraction of matching requests (0.0–1.0).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Or: apply these faults in order to the next matching requests, then stop.
    #[serde(default)]
    pub sequence: Vec<FaultKind>,
    /// The fault applied at `rate`.
    #[serde(default)]
    pub fault: Option<FaultKind>,
    /// How many sequence entries were used (state, not configuration).
    #[serde(default)]
    pub used: usize,
}

impl FaultRule {
    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path_contains.as_ref().is_none_or(|p| path.to_ascii_lowercase().contains(&p.to_ascii_lowercase()))
    }
}

/// The configured rules and the seeded random source that makes rates repeatable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Faults {
    pub seed: u64,
    pub rules: Vec<FaultRule>,
    #[serde(skip)]
    rng: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self::new(0x00c0_ffee)
    }
}

impl Faults {
    pub fn new(seed: u64) -> Self {
        Self { seed, rules: Vec::new(), rng: seed }
    }

    /// Replaces the rules and restarts the random sequence from the seed.
    pub fn set(&mut self, seed: u64, rules: Vec<FaultRule>) {
        self.seed = seed;
        self.rng = seed;
        self.rules = rules;
    }

    /// splitmix64: tiny, fast and the same everywhere, which is all determinism needs.
    fn next_f64(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // 53 random bits as a fraction in [0, 1).
        #[allow(clippy::cast_precision_loss)]
        let fraction = (z >> 11) as f64 / (1u64 << 53) as f64;
        fraction
    }

    /// The fault for this request, if any. Matching rules are tried in order: a sequence with
    /// entries left applies its next one; a rate rule rolls its dice. The first that fires wins,
    /// so rules at 7% each for 429, 503 and drops fault about a fifth of requests.
    pub fn decide(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        for index in 0..self.rules.len() {
            if !self.rules[index].matches(method, path) {
                continue;
            }
            if !self.rules[index].sequence.is_empty() {
                let rule = &mut self.rules[index];
                let Some(fault) = rule.sequence.get(rule.used).cloned() else { continue };
                rule.used += 1;
                return Some(fault).filter(|f| *f != FaultKind::None);
            }
            let rate = self.rules[index].rate.unwrap_or(1.0);
            if self.next_f64() < rate {
                return self.rules[index].fault.clone();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(rate: f64) -> FaultRule {
        FaultRule {
            method: Some("GET".into()),
            path_contains: Some("/virtualMachines".into()),
            rate: Some(rate),
            sequence: vec![],
            fault: Some(FaultKind::Status { status: 503 }),
            used: 0,
        }
    }

    #[test]
    fn rates_are_deterministic_under_a_seed() {
        let run = |seed| {
            let mut f = Faults::new(seed);
            f.set(seed, vec![rule(0.2)]);
            (0..1000).map(|_| f.decide("GET", "/subscriptions/s/x/virtualmachines/vm").is_some()).collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let hits = a.iter().filter(|h| **h).count();
        assert!((150..250).contains(&hits), "{hits}");
    }

    #[test]
    fn sequences_apply_in_order_then_stop_and_only_to_matches() {
        let mut f = Faults::new(1);
        let mut r = rule(1.0);
        r.sequence = vec![FaultKind::Drop, FaultKind::None, FaultKind::Status { status: 429 }];
        f.set(1, vec![r]);
        assert_eq!(f.decide("PUT", "/virtualMachines/x"), None);
        assert_eq!(f.decide("GET", "/virtualMachines/x"), Some(FaultKind::Drop));
        assert_eq!(f.decide("GET", "/virtualMachines/x"), None);
        assert_eq!(f.decide("GET", "/virtualMachines/x"), Some(FaultKind::Status { status: 429 }));
        assert_eq!(f.decide("GET", "/virtualMachines/x"), None);
    }
}
