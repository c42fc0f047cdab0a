//! Polling and backoff: the loop every "wait until the rollout settled" is built on.
//!
//! [`poll_until`] calls a probe until it reports [`Poll::Ready`], fails, or the overall timeout
//! runs out; each call is bounded by its own timeout, and the interval between calls grows
//! geometrically up to a ceiling. On timeout the error carries the last state the probe
//! observed, so "timed out" always says *where* it was stuck.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout};

use crate::DeployError;

/// How often and how long to poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollPolicy {
    /// Delay before the second probe.
    pub interval: Duration,
    /// Ceiling for the delay between probes.
    pub max_interval: Duration,
    /// Give up after this long in total.
    pub timeout: Duration,
    /// Give up on a single probe after this long (the next probe still runs).
    pub call_timeout: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(15),
            timeout: Duration::from_secs(15 * 60),
            call_timeout: Duration::from_secs(30),
        }
    }
}

impl PollPolicy {
    /// This policy with another overall timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The delay after `delay`: ×1.5, capped at `max_interval`.
    fn next_delay(&self, delay: Duration) -> Duration {
        (delay + delay / 2)
            .min(self.max_interval)
            .max(Duration::from_millis(1))
    }
}

/// What one probe observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll<T> {
    /// Settled: stop polling with this value.
    Ready(T),
    /// Not yet: the current state, in one line (kept for the timeout message).
    Pending(String),
}

/// Why [`poll_until`] stopped without a ready value.
#[derive(Debug, thiserror::Error)]
pub enum PollError<E> {
    /// The overall timeout ran out.
    #[error("timed out after {} waiting for {what}; last state: {last_state}", humantime::format_duration(*after))]
    Timeout {
        /// What was waited for.
        what: String,
        /// The timeout that ran out.
        after: Duration,
        /// The last state a probe reported (or the last probe failure).
        last_state: String,
    },
    /// The probe returned an error: polling stops at once.
    #[error(transparent)]
    Failed(E),
}

impl PollError<DeployError> {
    /// The [`DeployError`] a wait ends with: a timeout becomes [`DeployError::Timeout`] with
    /// `events` (newest last); a [`DeployError::RolloutFailed`] the probe returned without
    /// events of its own gets `events`; any other error is returned as it is.
    pub fn into_deploy_error(self, events: Vec<String>) -> DeployError {
        match self {
            PollError::Timeout {
                what,
                after,
                last_state,
            } => DeployError::Timeout {
                what,
                after,
                last_state,
                events,
            },
            PollError::Failed(DeployError::RolloutFailed {
                reason,
                events: own,
            }) => DeployError::RolloutFailed {
                reason,
                events: if own.is_empty() { events } else { own },
            },
            PollError::Failed(error) => error,
        }
    }
}

/// The states a wait went through, for its progress events and for the error that ends it.
///
/// [`StateLog::note`] takes the state each poll observed and says whether it is new (not the
/// same as the last one noted), so that a caller reports each change once however often it
/// polls; the last [`capacity`](StateLog::new) distinct states are kept, oldest first, for
/// [`PollError::into_deploy_error`].
#[derive(Debug)]
pub struct StateLog {
    capacity: usize,
    states: Mutex<VecDeque<String>>,
}

impl Default for StateLog {
    /// Keeps the last [`StateLog::CAPACITY`] states.
    fn default() -> Self {
        StateLog::new(StateLog::CAPACITY)
    }
}

impl StateLog {
    /// How many states [`StateLog::default`] keeps.
    pub const CAPACITY: usize = 20;

    /// A log that keeps the last `capacity` states (at least the last one, to tell a change).
    pub fn new(capacity: usize) -> Self {
        StateLog {
            capacity: capacity.max(1),
            states: Mutex::new(VecDeque::new()),
        }
    }

    /// Records `state`; `true` when it differs from the last state noted (report it), `false`
    /// for a repeat.
    pub fn note(&self, state: &str) -> bool {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        if states.back().is_some_and(|last| last == state) {
            return false;
        }
        if states.len() == self.capacity {
            states.pop_front();
        }
        states.push_back(state.to_owned());
        true
    }

    /// The states kept, oldest first.
    pub fn states(&self) -> Vec<String> {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states.iter().cloned().collect()
    }
}

/// Calls `probe` until it is ready, fails, or `policy.timeout` runs out.
///
/// The first probe runs at once. A probe that exceeds `policy.call_timeout` counts as a pending
/// state ("no answer within …") and is retried after the next delay.
pub async fn poll_until<T, E, F, Fut>(
    what: &str,
    policy: &PollPolicy,
    mut probe: F,
) -> Result<T, PollError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, E>>,
{
    let deadline = Instant::now() + policy.timeout;
    let mut delay = policy.interval;
    let mut last_state = String::from("no answer yet");
    let mut first = true;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() && !first {
            // The sleep ended at the deadline: a probe with no time left could only fail and
            // bury the last state under "no answer within 0s".
            return Err(PollError::Timeout {
                what: what.to_owned(),
                after: policy.timeout,
                last_state,
            });
        }
        first = false;
        match timeout(policy.call_timeout.min(remaining), probe()).await {
            Ok(Ok(Poll::Ready(value))) => return Ok(value),
            Ok(Ok(Poll::Pending(state))) => last_state = state,
            Ok(Err(error)) => return Err(PollError::Failed(error)),
            Err(_) => {
                last_state = format!(
                    "{last_state} (the last probe had no answer within {})",
                    humantime::format_duration(policy.call_timeout.min(remaining))
                );
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(PollError::Timeout {
                what: what.to_owned(),
                after: policy.timeout,
                last_state,
            });
        }
        sleep(delay.min(deadline - now)).await;
        delay = policy.next_delay(delay);
    }
}

/// Runs `op` until it succeeds, returns an error `retryable` rejects, or `policy.timeout` runs
/// out (then the last error is returned). For conflicts such as "an update is already in
/// progress" that the SDK's own retry does not cover.
pub async fn retry<T, E, F, Fut>(
    policy: &PollPolicy,
    retryable: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + policy.timeout;
    let mut delay = policy.interval;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(error) if retryable(&error) && Instant::now() + delay < deadline => {
                sleep(delay).await;
                delay = policy.next_delay(delay);
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn policy() -> PollPolicy {
        PollPolicy {
            interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(4),
            timeout: Duration::from_secs(60),
            call_timeout: Duration::from_secs(10),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ready_after_pending() {
        let calls = Cell::new(0);
        let value = poll_until("x", &policy(), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                Ok::<_, ()>(if n < 3 {
                    Poll::Pending(format!("n={n}"))
                } else {
                    Poll::Ready(n)
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_reports_last_state() {
        let start = Instant::now();
        let error = poll_until::<(), (), _, _>("the rollout", &policy(), || async {
            Ok(Poll::Pending("IN_PROGRESS 1/2".into()))
        })
        .await
        .unwrap_err();
        match error {
            PollError::Timeout {
                last_state, what, ..
            } => {
                assert_eq!(last_state, "IN_PROGRESS 1/2");
                assert_eq!(what, "the rollout");
            }
            PollError::Failed(()) => panic!("expected a timeout"),
        }
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_secs(60) && waited < Duration::from_secs(61),
            "{waited:?}"
        );
    }

    /// A wait whose sleep ends at the deadline reports the last state a probe saw, not a probe
    /// that had no time left.
    #[tokio::test(start_paused = true)]
    async fn the_deadline_after_a_sleep_keeps_the_last_state_clean() {
        let policy = PollPolicy {
            interval: Duration::from_millis(4500),
            max_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
        };
        let calls = Cell::new(0);
        let error = poll_until::<(), (), _, _>("the rollout", &policy, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                sleep(Duration::from_secs(1)).await;
                Ok(Poll::Pending(format!("IN_PROGRESS, poll {n}")))
            }
        })
        .await
        .unwrap_err();
        match error {
            PollError::Timeout { last_state, .. } => assert_eq!(last_state, "IN_PROGRESS, poll 2"),
            PollError::Failed(()) => panic!("expected a timeout"),
        }
        assert_eq!(calls.get(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn hung_probe_is_bounded_by_call_timeout() {
        let calls = Cell::new(0);
        let value = poll_until("x", &policy(), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n == 1 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, ()>(Poll::Ready(n))
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn error_stops_at_once() {
        let calls = Cell::new(0);
        let error = poll_until::<(), _, _, _>("x", &policy(), || {
            calls.set(calls.get() + 1);
            async { Err("boom") }
        })
        .await
        .unwrap_err();
        assert!(matches!(error, PollError::Failed("boom")));
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_retries_only_retryable() {
        let calls = Cell::new(0);
        let result: Result<u32, &str> = retry(
            &policy(),
            |e| *e == "conflict",
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { if n < 3 { Err("conflict") } else { Ok(n) } }
            },
        )
        .await;
        assert_eq!(result, Ok(3));
        calls.set(0);
        let result: Result<u32, &str> = retry(
            &policy(),
            |e| *e == "conflict",
            || {
                calls.set(calls.get() + 1);
                async { Err("fatal") }
            },
        )
        .await;
        assert_eq!(result, Err("fatal"));
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn the_state_log_reports_changes_once_and_keeps_the_last_ones() {
        let log = StateLog::new(3);
        let noted: Vec<bool> = ["a", "a", "b", "a", "c", "c", "d"]
            .iter()
            .map(|state| log.note(state))
            .collect();
        assert_eq!(noted, [true, false, true, true, true, false, true]);
        assert_eq!(log.states(), ["a", "c", "d"]);
        assert_eq!(StateLog::default().capacity, StateLog::CAPACITY);
    }

    #[test]
    fn a_poll_error_becomes_the_deploy_error_with_the_states_seen() {
        let seen = vec!["UPDATING".to_owned(), "FAILED".to_owned()];
        let timeout = PollError::<DeployError>::Timeout {
            what: "the rollout".into(),
            after: Duration::from_secs(60),
            last_state: "UPDATING".into(),
        };
        match timeout.into_deploy_error(seen.clone()) {
            DeployError::Timeout {
                what,
                last_state,
                events,
                ..
            } => {
                assert_eq!(
                    (what.as_str(), last_state.as_str()),
                    ("the rollout", "UPDATING")
                );
                assert_eq!(events, seen);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        let bare = PollError::Failed(DeployError::RolloutFailed {
            reason: "rolled back".into(),
            events: Vec::new(),
        });
        assert!(matches!(
            bare.into_deploy_error(seen.clone()),
            DeployError::RolloutFailed { events, .. } if events == seen
        ));
        let own = PollError::Failed(DeployError::RolloutFailed {
            reason: "rolled back".into(),
            events: vec!["service event".into()],
        });
        assert!(matches!(
            own.into_deploy_error(seen.clone()),
            DeployError::RolloutFailed { events, .. } if events == ["service event"]
        ));
        let other = PollError::Failed(DeployError::Cancelled);
        assert!(matches!(
            other.into_deploy_error(seen),
            DeployError::Cancelled
        ));
    }

    #[test]
    fn delay_grows_to_ceiling() {
        let p = policy();
        let mut d = p.interval;
        for _ in 0..10 {
            d = p.next_delay(d);
        }
        assert_eq!(d, Duration::from_secs(4));
    }
}
