//! Jittered exponential back-off, and the one retry policy every exchange request of a live run goes through:
//! transient failures (see [`BinanceError::is_transient`]) are retried after a jittered back-off that is never
//! shorter than what the exchange asked for (`Retry-After`, a ban); anything else ends the retrying at once.
//! One log line per change of state (failing, failing differently, recovered), never one per attempt.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::BinanceError;

/// Delays of `min·2ⁿ` capped at `max`, each drawn uniformly from its upper half (so many clients do not reconnect
/// in lockstep).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
            rng: fastrand::Rng::new(),
        }
    }

    /// The next delay to wait; grows until [`Backoff::reset`].
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        let full = self.min.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = full / 2;
        let span = (full - half).as_nanos() as u64;
        half + Duration::from_nanos(if span == 0 { 0 } else { self.rng.u64(0..=span) })
    }

    /// Back to the shortest delay (after a connection proved healthy).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// How requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First back-off delay (doubled per failure, jittered).
    pub min: Duration,
    /// Longest back-off delay (an exchange's `Retry-After` or ban may be longer; it is honoured).
    pub max: Duration,
    /// Give up with [`RetryError::Deadline`] when the next attempt would start after this instant.
    pub deadline: Option<Instant>,
    /// How often a still-failing request says so (the status line), however long its back-off.
    pub status_every: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
            deadline: None,
            status_every: Duration::from_secs(5),
        }
    }
}

/// Why [`retry`] stopped without a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetryError {
    /// A failure waiting cannot fix (bad keys, permissions, a wrong URL, a rejected request).
    #[error(transparent)]
    Fatal(BinanceError),
    /// The deadline passed while the exchange kept failing; the last failure.
    #[error("gave up after {attempts} attempts: {last}")]
    Deadline { attempts: u32, last: BinanceError },
    /// Shutdown was asked for meanwhile.
    #[error("stopped while waiting for the exchange")]
    Cancelled,
}

/// Runs `op` until it succeeds, retrying transient failures per `policy`. `what` names the request in log lines.
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    cancel: &CancellationToken,
    mut op: F,
) -> Result<T, RetryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BinanceError>>,
{
    let mut backoff = Backoff::new(policy.min, policy.max);
    let mut attempts = 0u32;
    let mut failing: Option<(&'static str, Instant)> = None;
    let mut last_status = Instant::now();
    loop {
        attempts += 1;
        let e = match op().await {
            Ok(v) => {
                if let Some((_, since)) = failing {
                    tracing::info!(
                        what,
                        attempts,
                        waited_s = since.elapsed().as_secs(),
                        "exchange answering again"
                    );
                }
                return Ok(v);
            }
            Err(e) if !e.is_transient() => return Err(RetryError::Fatal(e)),
            Err(e) => e,
        };
        let wait = backoff
            .next_delay()
            .max(e.retry_after().unwrap_or_default());
        if failing.is_none_or(|(kind, _)| kind != e.kind()) {
            let since = failing.map_or_else(Instant::now, |(_, t)| t);
            failing = Some((e.kind(), since));
            tracing::warn!(what, state = e.kind(), error = %e, "exchange request failing; retrying with back-off (logged again when this changes)");
        } else if last_status.elapsed() >= policy.status_every {
            last_status = Instant::now();
            tracing::info!(state = "WAITING", waiting_for = what, attempts, next_try_s = wait.as_secs(), last_error = %e, "status");
        }
        let mut wait = wait;
        if let Some(deadline) = policy.deadline {
            let now = Instant::now();
            // Never inside the exchange's own window: if it outlasts the deadline, there is no last try to make.
            let window = e.retry_after().unwrap_or_default();
            if now >= deadline || now + window > deadline {
                return Err(RetryError::Deadline { attempts, last: e });
            }
            // A last try at the deadline itself rather than giving up early.
            wait = wait.min(deadline - now);
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(RetryError::Cancelled),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_jittered_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let mut expected_full = Duration::from_millis(100);
        for _ in 0..12 {
            let d = b.next_delay();
            assert!(
                d >= expected_full / 2 && d <= expected_full,
                "{d:?} vs {expected_full:?}"
            );
            expected_full = (expected_full * 2).min(Duration::from_secs(30));
        }
        assert!(b.next_delay() <= Duration::from_secs(30));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    fn unknown() -> BinanceError {
        BinanceError::NoAnswer {
            reason: "HTTP 503".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_and_retry_after_is_honoured() {
        let started = Instant::now();
        let mut n = 0;
        let r = retry(
            &RetryPolicy::default(),
            "test",
            &CancellationToken::new(),
            || {
                n += 1;
                let k = n;
                async move {
                    match k {
                        1 => Err(BinanceError::RateLimited {
                            retry_after: Some(Duration::from_secs(7)),
                        }),
                        2 => Err(unknown()),
                        3 => Err(BinanceError::Transport {
                            reason: "connection refused".into(),
                        }),
                        _ => Ok(k),
                    }
                }
            },
        )
        .await;
        assert_eq!(r, Ok(4));
        assert!(
            started.elapsed() >= Duration::from_secs(7),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_stop_at_once_and_deadlines_bound_the_wait() {
        let fatal = retry(
            &RetryPolicy::default(),
            "t",
            &CancellationToken::new(),
            || async { Err::<(), _>(BinanceError::Signature { msg: "bad".into() }) },
        )
        .await;
        assert!(matches!(
            fatal,
            Err(RetryError::Fatal(BinanceError::Signature { .. }))
        ));
        let policy = RetryPolicy {
            deadline: Some(Instant::now() + Duration::from_secs(10)),
            ..RetryPolicy::default()
        };
        let r = retry(&policy, "t", &CancellationToken::new(), || async {
            Err::<(), _>(unknown())
        })
        .await;
        match r {
            Err(RetryError::Deadline { attempts, last }) => {
                assert!(attempts > 2, "{attempts}");
                assert_eq!(last, unknown());
            }
            other => panic!("{other:?}"),
        }
        let cancel = CancellationToken::new();
        cancel.cancel();
        let r = retry(&RetryPolicy::default(), "t", &cancel, || async {
            Err::<(), _>(unknown())
        })
        .await;
        assert_eq!(r, Err(RetryError::Cancelled));
    }
}
