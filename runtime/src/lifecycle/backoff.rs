//! The kubelet's crash-loop back-off for one container (kubelet `doBackOff` over client-go's
//! `flowcontrol.Backoff`): the first restart is immediate, then the delay starts at `base`
//! and doubles up to `cap`; a container that ran for more than twice `cap` (ten minutes with
//! the defaults) since its last restart starts over.

use std::time::{Duration, Instant};

/// Kubernetes' initial back-off.
pub const DEFAULT_BASE: Duration = Duration::from_secs(10);
/// Kubernetes' `MaxContainerBackOff`.
pub const DEFAULT_CAP: Duration = Duration::from_secs(300);

/// The delays of the back-off; lowered for tests and impatient users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            base: DEFAULT_BASE,
            cap: DEFAULT_CAP,
        }
    }
}

/// The back-off state of one container.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    policy: BackoffPolicy,
    /// The delay the next restart waits, and when the last restart was granted.
    entry: Option<(Duration, Instant)>,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            entry: None,
        }
    }

    /// The container exited at `finished`: how long after that it restarts. Granting the
    /// restart doubles the next delay.
    pub fn next_delay(&mut self, finished: Instant) -> Duration {
        let expired =
            |last: Instant| finished.saturating_duration_since(last) > 2 * self.policy.cap;
        match self.entry {
            Some((delay, last)) if !expired(last) => {
                let doubled = (delay * 2).min(self.policy.cap);
                self.entry = Some((doubled, finished + delay));
                delay
            }
            _ => {
                self.entry = Some((self.policy.base.min(self.policy.cap), finished));
                Duration::ZERO
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_restart_is_immediate_then_doubles_to_the_cap() {
        let mut b = Backoff::new(BackoffPolicy::default());
        let mut now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..9 {
            let d = b.next_delay(now);
            delays.push(d.as_secs());
            // Crashes at once after each restart.
            now += d + Duration::from_millis(100);
        }
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn resets_after_running_for_twice_the_cap() {
        let mut b = Backoff::new(BackoffPolicy::default());
        let start = Instant::now();
        assert_eq!(b.next_delay(start), Duration::ZERO);
        assert_eq!(b.next_delay(start + Duration::from_secs(1)).as_secs(), 10);
        // Ran for nine minutes after that restart: still counts as one crash loop.
        let later = start + Duration::from_secs(11 + 540);
        assert_eq!(b.next_delay(later).as_secs(), 20);
        // Ran for more than ten minutes: starts over.
        let much_later = later + Duration::from_secs(20 + 601);
        assert_eq!(b.next_delay(much_later), Duration::ZERO);
        assert_eq!(b.next_delay(much_later).as_secs(), 10);
    }

    #[test]
    fn lowered_policy_keeps_the_shape() {
        let mut b = Backoff::new(BackoffPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(300),
        });
        let t = Instant::now();
        let delays: Vec<u128> = (0..5)
            .map(|i| b.next_delay(t + Duration::from_millis(i)).as_millis())
            .collect();
        assert_eq!(delays, [0, 100, 200, 300, 300]);
    }
}
