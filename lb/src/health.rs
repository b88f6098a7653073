//! One webserver's health as a pure state machine: active checks move it down after
//! `fall` failures and up after `rise` successes; passive failures eject it for a
//! back-off. Time is passed in, so every rule is testable without sockets or clocks.

use std::time::{Duration, Instant};

use crate::config::{EjectionConfig, HealthConfig};

/// What a health check result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    WentUp,
    WentDown,
}

/// Health of one webserver.
#[derive(Debug, Clone)]
pub struct HealthState {
    up: bool,
    /// Consecutive passing checks while down.
    passes: u32,
    /// Consecutive failing checks while up.
    failures: u32,
    /// When the current ejection started and ends.
    ejected: Option<(Instant, Instant)>,
    /// Consecutive ejections without a successful request in between (back-off exponent).
    ejections_in_a_row: u32,
}

impl HealthState {
    /// A webserver from the startup list: trusted until checks say otherwise, so the
    /// balancer serves from its first request.
    pub fn initially_up() -> Self {
        Self {
            up: true,
            passes: 0,
            failures: 0,
            ejected: None,
            ejections_in_a_row: 0,
        }
    }

    /// A webserver added by a reload: it joins after one passing check.
    pub fn joining(config: &HealthConfig) -> Self {
        Self {
            up: false,
            passes: config.rise.saturating_sub(1),
            ..Self::initially_up()
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Whether an ejection is in force at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected.is_some_and(|(_, until)| now < until)
    }

    /// Time left on the ejection at `now`.
    pub fn ejected_for(&self, now: Instant) -> Option<Duration> {
        self.ejected
            .map(|(_, until)| until.saturating_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Whether new requests may go to this webserver at `now`.
    pub fn is_available(&self, now: Instant) -> bool {
        self.up && !self.is_ejected(now)
    }

    /// Records an active check that started at `started`.
    pub fn record_check(
        &mut self,
        ok: bool,
        started: Instant,
        config: &HealthConfig,
    ) -> Transition {
        if ok {
            self.failures = 0;
            // A pass that began after the ejection proves the webserver is back.
            if self.ejected.is_some_and(|(since, _)| started >= since) {
                self.ejected = None;
            }
            if self.up {
                return Transition::None;
            }
            self.passes += 1;
            if self.passes >= config.rise {
                self.up = true;
                self.passes = 0;
                return Transition::WentUp;
            }
            Transition::None
        } else {
            self.passes = 0;
            if !self.up {
                return Transition::None;
            }
            self.failures += 1;
            if self.failures >= config.fall {
                self.up = false;
                self.failures = 0;
                return Transition::WentDown;
            }
            Transition::None
        }
    }

    /// Takes the webserver out of rotation at `now` after a refused connection or a
    /// reset. Never after a timeout: a webserver that answers its health checks but
    /// is slow to answer a request is waiting on something behind it (a hung store),
    /// and ejecting it would take a healthy tier out for a store's fault. Returns the back-off chosen, or `None` if it was already ejected (many
    /// requests failing at once count as one ejection).
    pub fn eject(&mut self, now: Instant, config: &EjectionConfig) -> Option<Duration> {
        if self.is_ejected(now) {
            return None;
        }
        let factor = 1u32 << self.ejections_in_a_row.min(16);
        let backoff = config.base.saturating_mul(factor).min(config.max);
        self.ejected = Some((now, now + backoff));
        self.ejections_in_a_row = self.ejections_in_a_row.saturating_add(1);
        Some(backoff)
    }

    /// A request was answered: the back-off starts again from `base` next time.
    pub fn record_success(&mut self) {
        self.ejections_in_a_row = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(fall: u32, rise: u32) -> HealthConfig {
        HealthConfig {
            fall,
            rise,
            ..HealthConfig::default()
        }
    }

    #[test]
    fn falls_after_fall_failures_and_rises_after_rise_passes() {
        let config = health(3, 2);
        let now = Instant::now();
        let mut state = HealthState::initially_up();
        assert_eq!(state.record_check(false, now, &config), Transition::None);
        assert_eq!(state.record_check(false, now, &config), Transition::None);
        assert!(state.is_up());
        assert_eq!(
            state.record_check(false, now, &config),
            Transition::WentDown
        );
        assert!(!state.is_available(now));
        assert_eq!(state.record_check(true, now, &config), Transition::None);
        assert!(!state.is_up());
        assert_eq!(state.record_check(true, now, &config), Transition::WentUp);
        assert!(state.is_available(now));
    }

    #[test]
    fn a_pass_resets_the_failure_count() {
        let config = health(2, 2);
        let now = Instant::now();
        let mut state = HealthState::initially_up();
        state.record_check(false, now, &config);
        state.record_check(true, now, &config);
        assert_eq!(state.record_check(false, now, &config), Transition::None);
        assert!(state.is_up());
        // ... and a failure resets the pass count while down.
        state.record_check(false, now, &config);
        assert!(!state.is_up());
        state.record_check(true, now, &config);
        state.record_check(false, now, &config);
        assert_eq!(state.record_check(true, now, &config), Transition::None);
        assert_eq!(state.record_check(true, now, &config), Transition::WentUp);
    }

    #[test]
    fn joining_backends_need_one_pass() {
        let config = health(3, 2);
        let now = Instant::now();
        let mut state = HealthState::joining(&config);
        assert!(!state.is_available(now));
        assert_eq!(state.record_check(true, now, &config), Transition::WentUp);
        let mut state = HealthState::joining(&config);
        state.record_check(false, now, &config);
        assert_eq!(state.record_check(true, now, &config), Transition::None);
    }

    #[test]
    fn ejection_backs_off_exponentially_up_to_max() {
        let config = EjectionConfig {
            base: Duration::from_secs(1),
            max: Duration::from_secs(5),
        };
        let mut now = Instant::now();
        let mut state = HealthState::initially_up();
        let mut backoffs = vec![];
        for _ in 0..5 {
            let backoff = state.eject(now, &config).unwrap();
            assert!(!state.is_available(now));
            // Failures during the ejection do not extend it.
            assert!(state.eject(now + backoff / 2, &config).is_none());
            now += backoff;
            assert!(state.is_available(now));
            backoffs.push(backoff.as_secs());
        }
        assert_eq!(backoffs, [1, 2, 4, 5, 5]);
        state.record_success();
        assert_eq!(state.eject(now, &config), Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_check_started_after_the_ejection_ends_it() {
        let config = EjectionConfig::default();
        let health = health(3, 2);
        let t0 = Instant::now();
        let mut state = HealthState::initially_up();
        state.eject(t0, &config);
        // A check already running when the ejection began proves nothing.
        state.record_check(true, t0 - Duration::from_millis(1), &health);
        assert!(state.is_ejected(t0));
        state.record_check(true, t0 + Duration::from_millis(1), &health);
        assert!(state.is_available(t0 + Duration::from_millis(2)));
    }
}
