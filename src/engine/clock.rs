//! Where the writer gets `now` from: the system clock in production, a manual
//! clock (moved only forwards by `Clock.SetTime`) for tests and demos.
//!
//! The domain never reads a clock; the writer stamps `at` from [`Clock::now`]
//! and the domain clamps it to the log's last `at` (spec §3).

use std::sync::atomic::{AtomicI64, Ordering};

/// A source of "now" in Unix seconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, Unix seconds (UTC, whole seconds).
    fn now(&self) -> i64;
    /// The manual clock behind this one, if any (only it accepts `SetTime`).
    fn as_manual(&self) -> Option<&ManualClock> {
        None
    }
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }
}

/// Why a manual clock refused to move.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the clock cannot go backwards: it reads {current_s} and {requested_s} was asked")]
pub struct ClockBackwards {
    /// What the clock reads now.
    pub current_s: i64,
    /// The refused instant.
    pub requested_s: i64,
}

/// A clock that only moves when told to, and never backwards (spec §10).
#[derive(Debug)]
pub struct ManualClock {
    now_s: AtomicI64,
}

impl ManualClock {
    /// A manual clock reading `start_s`.
    pub fn new(start_s: i64) -> Self {
        Self {
            now_s: AtomicI64::new(start_s),
        }
    }

    /// Moves the clock to `t_s`; the same instant is accepted (a no-op).
    pub fn set(&self, t_s: i64) -> Result<(), ClockBackwards> {
        self.now_s
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                (t_s >= cur).then_some(t_s)
            })
            .map(|_| ())
            .map_err(|cur| ClockBackwards {
                current_s: cur,
                requested_s: t_s,
            })
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.now_s.load(Ordering::SeqCst)
    }
    fn as_manual(&self) -> Option<&ManualClock> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_forward_only() {
        let c = ManualClock::new(10);
        assert_eq!(c.now(), 10);
        c.set(10).unwrap();
        c.set(50).unwrap();
        assert_eq!(c.now(), 50);
        let err = c.set(49).unwrap_err();
        assert_eq!(err.current_s, 50);
        assert_eq!(c.now(), 50);
    }

    #[test]
    fn system_clock_is_recent() {
        assert!(SystemClock.now() > 1_700_000_000);
    }
}
