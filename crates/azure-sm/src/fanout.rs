//! Bounded fan-out for fleet operations: many calls in flight at once, never more than a limit,
//! all through one [`crate::Arm`] so that they share its view of ARM's rate limits and slow
//! down together before ARM has to answer 429.

use std::future::Future;

use futures_util::StreamExt as _;

/// The default number of calls in flight, as az uses for its own parallel operations.
pub const DEFAULT_PARALLELISM: usize = 16;

/// Runs `task` over every item with at most `limit` running at once (at least one), and
/// returns the results in the order of the items. A slot frees as soon as its task ends,
/// whichever it is: one slow VM holds one slot, not the fleet behind it.
pub async fn fan_out<T, R, Fut>(
    items: impl IntoIterator<Item = T>,
    limit: usize,
    mut task: impl FnMut(T) -> Fut,
) -> Vec<R>
where
    Fut: Future<Output = R>,
{
    let runs = items.into_iter().enumerate().map(|(i, item)| {
        let run = task(item);
        async move { (i, run.await) }
    });
    let mut done: Vec<(usize, R)> = futures_util::stream::iter(runs).buffer_unordered(limit.max(1)).collect().await;
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
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

    #[tokio::test]
    async fn one_slow_item_does_not_hold_back_the_others() {
        // The first of 100 ends only once the 99 others have: an ordered window would wait on it
        // forever with `limit - 1` slots idle. Bounded by a timeout so a regression fails.
        let finished = AtomicUsize::new(0);
        let all_others = tokio::sync::Notify::new();
        let run = fan_out(0..100usize, 8, |i| {
            let (finished, all_others) = (&finished, &all_others);
            async move {
                if i == 0 {
                    all_others.notified().await;
                } else {
                    tokio::task::yield_now().await;
                    if finished.fetch_add(1, Ordering::SeqCst) + 1 == 99 {
                        all_others.notify_one();
                    }
                }
                i
            }
        });
        let out = tokio::time::timeout(Duration::from_secs(10), run).await.expect("the slow item held the rest back");
        assert_eq!(out, (0..100).collect::<Vec<_>>());
    }
}
