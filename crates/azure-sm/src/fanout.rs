//! Bounded fan-out for fleet operations: many calls in flight at once, never more than a limit,
//! all through one [`crate::Arm`] so that they share its view of ARM's rate limits and slow
//! down together before ARM has to answer 429.

use std::future::Future;

use futures_util::StreamExt as _;

/// The default number of calls in flight, as az uses for its own parallel operations.
pub const DEFAULT_PARALLELISM: usize = 16;

/// Runs `task` over every item with at most `limit` running at once (at least one), and
/// returns the results in the order of the items.
pub async fn fan_out<T, R, Fut>(items: impl IntoIterator<Item = T>, limit: usize, task: impl FnMut(T) -> Fut) -> Vec<R>
where
    Fut: Future<Output = R>,
{
    futures_util::stream::iter(items.into_iter().map(task)).buffered(limit.max(1)).collect().await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn keeps_order_and_never_exceeds_the_limit() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = fan_out(0..40u64, 4, |i| {
            let (running, peak) = (&running, &peak);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Later items finish first, so order comes from fan_out, not from timing.
                tokio::time::sleep(Duration::from_millis(40 - i)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(out, (0..40).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 4);
    }
}
