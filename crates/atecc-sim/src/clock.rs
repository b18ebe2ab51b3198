//! Time sources for the timing model and the watchdog, and matching `DelayNs` implementations.
//!
//! The chip reads time only through [`Clock`], so tests can run the ~1.3 s watchdog and every busy
//! window on a [`VirtualClock`] without sleeping; [`VirtualDelay`] advances that clock when a
//! driver waits, so driver and chip move through virtual time together.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic time source.
pub trait Clock: Send + Sync {
    /// Time elapsed since the clock's own origin.
    fn now(&self) -> Duration;
}

/// Real time from `std::time::Instant`.
#[derive(Clone, Copy, Debug)]
pub struct StdClock {
    origin: Instant,
}

impl StdClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for StdClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for StdClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// Manual time for tests: it moves only when told to. Clones share the same time.
#[derive(Clone, Debug, Default)]
pub struct VirtualClock {
    nanos: Arc<AtomicU64>,
}

impl VirtualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let add = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(add, Ordering::SeqCst);
    }

    /// A delay that advances this clock instead of sleeping.
    pub fn delay(&self) -> VirtualDelay {
        VirtualDelay {
            clock: self.clone(),
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// `embedded_hal::delay::DelayNs` that sleeps the thread; for host-side drivers on a
/// [`StdClock`].
#[derive(Clone, Copy, Debug, Default)]
pub struct StdDelay;

impl embedded_hal::delay::DelayNs for StdDelay {
    fn delay_ns(&mut self, ns: u32) {
        std::thread::sleep(Duration::from_nanos(u64::from(ns)));
    }
}

/// `embedded_hal::delay::DelayNs` that advances a [`VirtualClock`]; obtain one with
/// [`VirtualClock::delay`].
#[derive(Clone, Debug)]
pub struct VirtualDelay {
    clock: VirtualClock,
}

impl embedded_hal::delay::DelayNs for VirtualDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.clock.advance(Duration::from_nanos(u64::from(ns)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::delay::DelayNs;

    #[test]
    fn virtual_delay_moves_shared_clock() {
        let clock = VirtualClock::new();
        let mut delay = clock.delay();
        delay.delay_ms(3);
        delay.delay_us(500);
        assert_eq!(clock.now(), Duration::from_micros(3500));
        let other = clock.clone();
        other.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), Duration::from_micros(1_003_500));
    }
}
