//! ARM's 2024 throttling: token buckets per subscription and region for reads, writes and
//! deletes, reported in `x-ms-ratelimit-remaining-subscription-*` on every response.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Bucket sizes and refill rates (tokens per second).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleConfig {
    pub read_burst: f64,
    pub read_per_sec: f64,
    pub write_burst: f64,
    pub write_per_sec: f64,
    pub delete_burst: f64,
    pub delete_per_sec: f64,
}

impl Default for ThrottleConfig {
    /// ARM's published limits since 2024.
    fn default() -> Self {
        Self {
            read_burst: 250.0,
            read_per_sec: 25.0,
            write_burst: 200.0,
            write_per_sec: 10.0,
            delete_burst: 200.0,
            delete_per_sec: 10.0,
        }
    }
}

impl ThrottleConfig {
    /// Buckets no client can empty, for load tests.
    pub fn unlimited() -> Self {
        let big = 1e12;
        Self {
            read_burst: big,
            read_per_sec: big,
            write_burst: big,
            write_per_sec: big,
            delete_burst: big,
            delete_per_sec: big,
        }
    }
}

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum OpClass {
    Read,
    Write,
    Delete,
}

impl OpClass {
    pub(crate) fn from_method(method: &str) -> Self {
        match method {
            "GET" | "HEAD" => OpClass::Read,
            "DELETE" => OpClass::Delete,
            _ => OpClass::Write,
        }
    }

    pub(crate) fn header(self) -> &'static str {
        match self {
            OpClass::Read => "x-ms-ratelimit-remaining-subscription-reads",
            OpClass::Write => "x-ms-ratelimit-remaining-subscription-writes",
            OpClass::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }

    fn name(self) -> &'static str {
        match self {
            OpClass::Read => "Read",
            OpClass::Write => "Write",
            OpClass::Delete => "Delete",
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets, keyed by (subscription, region, class).
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    config: ThrottleConfig,
    buckets: HashMap<(String, String, OpClass), Bucket>,
}

/// The outcome of taking a token.
#[derive(Debug)]
pub(crate) enum Take {
    /// Allowed; this many whole tokens remain.
    Allowed(u64),
    /// Throttled; retry after this long. The message names the operation type as ARM does.
    Throttled { retry_after: Duration, message: String },
}

impl Throttle {
    pub(crate) fn new(config: ThrottleConfig) -> Self {
        Self { config, buckets: HashMap::new() }
    }

    fn limits(&self, class: OpClass) -> (f64, f64) {
        let c = &self.config;
        match class {
            OpClass::Read => (c.read_burst, c.read_per_sec),
            OpClass::Write => (c.write_burst, c.write_per_sec),
            OpClass::Delete => (c.delete_burst, c.delete_per_sec),
        }
    }

    pub(crate) fn take(&mut self, subscription: &str, region: &str, class: OpClass, now: Instant) -> Take {
        let (burst, rate) = self.limits(class);
        let bucket = self
            .buckets
            .entry((subscription.to_ascii_lowercase(), region.to_owned(), class))
            .or_insert(Bucket { tokens: burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            // Whole tokens left; the bucket never exceeds its burst, so this fits.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Take::Allowed(bucket.tokens.floor() as u64)
        } else {
            let wait = if rate > 0.0 { (1.0 - bucket.tokens) / rate } else { 60.0 };
            Take::Throttled {
                retry_after: Duration::from_secs_f64(wait),
                message: format!(
                    "The request is being throttled as the limit has been reached for operation type - {}_ObservationWindow. \
                     For more information, see - https://aka.ms/srpthrottlinglimits",
                    class.name()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_drains_refills_and_reports_retry_after() {
        let config = ThrottleConfig { write_burst: 3.0, write_per_sec: 10.0, ..ThrottleConfig::default() };
        let mut t = Throttle::new(config);
        let start = Instant::now();
        assert!(matches!(t.take("s", "r", OpClass::Write, start), Take::Allowed(2)));
        assert!(matches!(t.take("s", "r", OpClass::Write, start), Take::Allowed(1)));
        assert!(matches!(t.take("s", "r", OpClass::Write, start), Take::Allowed(0)));
        match t.take("s", "r", OpClass::Write, start) {
            Take::Throttled { retry_after, message } => {
                assert!((retry_after.as_secs_f64() - 0.1).abs() < 1e-6);
                assert!(message.contains("Write_ObservationWindow"));
            }
            Take::Allowed(_) => panic!("should be throttled"),
        }
        // Reads are a separate bucket; another subscription too.
        assert!(matches!(t.take("s", "r", OpClass::Read, start), Take::Allowed(249)));
        assert!(matches!(t.take("other", "r", OpClass::Write, start), Take::Allowed(2)));
        // 100 ms later one token is back.
        assert!(matches!(t.take("s", "r", OpClass::Write, start + Duration::from_millis(100)), Take::Allowed(0)));
    }
}
