//! The one retry loop of canary: a capped exponential backoff and [`retry`], which runs an
//! attempt until it succeeds, fails for good, or the retries run out.
//!
//! It is a small module rather than a crate (`backon`, `tokio-retry`): the loops canary needs
//! are one shape — a few attempts, a doubling pause, no jitter (a single client per rollout,
//! so no thundering herd to spread) — and a dependency would add build time on two-core
//! machines for nothing else. The pause is the caller's (`tokio::time::sleep` in the
//! adapters), which keeps the core free of a runtime.

use std::future::Future;
use std::time::Duration;

/// How often to retry and how long to pause before each retry: `first`, doubling, at most
/// `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The pause before the first retry.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
    /// How many times a failed attempt is retried (so `retries + 1` attempts in all).
    pub retries: u32,
}

impl Backoff {
    /// `retries` retries, pausing `first`, `2·first`, … and never more than `max`.
    pub const fn new(first: Duration, max: Duration, retries: u32) -> Backoff {
        Backoff {
            first,
            max,
            retries,
        }
    }

    /// Attempts in all: the first one and every retry.
    pub const fn attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// The pause before retry `retry` (1 for the first retry): `first · 2^(retry−1)`, at most
    /// `max`; saturates rather than overflowing.
    pub fn pause(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }

    /// Every pause together: how much of a call's time the retries may spend waiting.
    pub fn total_pause(&self) -> Duration {
        (1..=self.retries).map(|r| self.pause(r)).sum()
    }
}

/// Why an attempt did not succeed, and whether trying again could help.
#[derive(Debug)]
pub enum Failure<E> {
    /// Worth another attempt (a conflict, a timeout, a 5xx). If none is left, [`retry`]
    /// returns this error.
    Retryable(E),
    /// Worth another attempt after `wait` rather than the backoff's pause: the server said
    /// how long to wait (HTTP's `Retry-After`). If no attempt is left, [`retry`] returns
    /// this error.
    RetryAfter(E, Duration),
    /// The same attempt would fail the same way (a 4xx, a refused permission): stop now.
    Final(E),
}

/// An error converts into a [`Failure::Final`], so `?` in an attempt stops the loop; say
/// [`Failure::Retryable`] explicitly for what deserves another attempt.
impl<E> From<E> for Failure<E> {
    fn from(error: E) -> Self {
        Failure::Final(error)
    }
}

/// Runs `attempt` (given its number, from 1) until it succeeds or fails with
/// [`Failure::Final`], pausing with `sleep` as `backoff` says between attempts; after
/// `backoff.attempts()` retryable failures, returns the last one's error. No pause follows
/// the last attempt. A [`Failure::RetryAfter`] pauses for its own wait instead of the
/// backoff's (an attempt that finds the wait too long says [`Failure::Final`]).
pub async fn retry<T, E, Attempt, AttemptFuture, Sleep, SleepFuture>(
    backoff: Backoff,
    mut sleep: Sleep,
    mut attempt: Attempt,
) -> Result<T, E>
where
    Attempt: FnMut(u32) -> AttemptFuture,
    AttemptFuture: Future<Output = Result<T, Failure<E>>>,
    Sleep: FnMut(Duration) -> SleepFuture,
    SleepFuture: Future<Output = ()>,
{
    let mut number = 1;
    loop {
        match attempt(number).await {
            Ok(value) => return Ok(value),
            Err(Failure::Final(error)) => return Err(error),
            Err(Failure::Retryable(error) | Failure::RetryAfter(error, _))
                if number >= backoff.attempts() =>
            {
                return Err(error);
            }
            Err(Failure::Retryable(_)) => {
                sleep(backoff.pause(number)).await;
                number += 1;
            }
            Err(Failure::RetryAfter(_, wait)) => {
                sleep(wait).await;
                number += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::future::ready;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Runs a future that never waits (every sleep and attempt here is ready at once).
    fn run<F: Future>(future: F) -> F::Output {
        use std::pin::pin;
        use std::task::{Context, Poll, Waker};
        let mut future = pin!(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("the test's futures are all ready"),
        }
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        let backoff = Backoff::new(100 * MS, 800 * MS, 6);
        let pauses: Vec<_> = (1..=6).map(|r| backoff.pause(r)).collect();
        assert_eq!(
            pauses,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 800 * MS, 800 * MS]
        );
        assert_eq!(backoff.total_pause(), 3100 * MS);
        assert_eq!(backoff.attempts(), 7);
        let huge = Backoff::new(Duration::MAX, Duration::MAX, u32::MAX);
        assert_eq!(huge.pause(u32::MAX), Duration::MAX);
    }

    #[test]
    fn retryable_failures_are_retried_with_the_pauses_then_the_last_error_returned() {
        let slept = RefCell::new(Vec::new());
        let result: Result<(), String> = run(retry(
            Backoff::new(10 * MS, 25 * MS, 3),
            |pause| {
                slept.borrow_mut().push(pause);
                ready(())
            },
            |n| ready(Err(Failure::Retryable(format!("attempt {n}")))),
        ));
        assert_eq!(result, Err("attempt 4".to_owned()));
        // No pause after the last attempt.
        assert_eq!(*slept.borrow(), [10 * MS, 20 * MS, 25 * MS]);
    }

    #[test]
    fn a_final_failure_stops_at_once_and_success_ends_the_loop() {
        let attempts = RefCell::new(0);
        let result: Result<(), &str> = run(retry(
            Backoff::new(MS, MS, 5),
            |_| ready(()),
            |_| {
                *attempts.borrow_mut() += 1;
                ready(Err(Failure::Final("forbidden")))
            },
        ));
        assert_eq!((result, *attempts.borrow()), (Err("forbidden"), 1));

        let result: Result<u32, &str> = run(retry(
            Backoff::new(MS, MS, 5),
            |_| ready(()),
            |n| {
                ready(if n < 3 {
                    Err(Failure::Retryable("conflict"))
                } else {
                    Ok(n)
                })
            },
        ));
        assert_eq!(result, Ok(3));
    }

    #[test]
    fn a_wait_the_server_names_replaces_the_backoffs_pause_but_not_the_attempt_count() {
        let slept = RefCell::new(Vec::new());
        let result: Result<(), u32> = run(retry(
            Backoff::new(10 * MS, 10 * MS, 2),
            |pause| {
                slept.borrow_mut().push(pause);
                ready(())
            },
            |n| {
                ready(Err(if n == 1 {
                    Failure::RetryAfter(n, 2000 * MS)
                } else {
                    Failure::RetryAfter(n, 3000 * MS)
                }))
            },
        ));
        assert_eq!(result, Err(3), "three attempts, the last one's error");
        assert_eq!(*slept.borrow(), [2000 * MS, 3000 * MS]);
    }

    #[test]
    fn no_retries_means_one_attempt() {
        let result: Result<(), u8> = run(retry(
            Backoff::new(MS, MS, 0),
            |_| -> std::future::Ready<()> { panic!("no pause without a retry") },
            |_| ready(Err(Failure::Retryable(7))),
        ));
        assert_eq!(result, Err(7));
    }
}
