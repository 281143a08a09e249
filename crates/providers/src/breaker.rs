//! A circuit breaker per provider. *Closed*: calls go through; `failures` failed calls in a
//! row open it. *Open*: calls fail at once (no request is sent) for `open_for`. Then
//! *half-open*: exactly one call (the probe) goes through; its success closes the breaker,
//! its failure opens it again for another `open_for`.
//!
//! Only availability failures count ([`crate::ErrorClass::NotTaken`] and `Unknown`): a
//! decline or a rejected request is the provider working. The state is exported as
//! `provider_circuit_state{provider}` (0 closed, 1 half-open, 2 open) and
//! `provider_circuit_opened_total{provider}`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When a breaker opens and for how long.
#[derive(Clone, Copy, Debug)]
pub struct BreakerConfig {
    /// Failed calls in a row that open it.
    pub failures: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

/// A breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// A probe may go (or is under way).
    HalfOpen,
    Open,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }

    fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

#[derive(Debug)]
struct Inner {
    failures_in_a_row: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

/// One provider's breaker.
#[derive(Debug)]
pub struct Breaker {
    provider: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Permission to call, from [`Breaker::admit`]; report the call's result with it.
#[derive(Debug)]
#[must_use]
pub struct Admission {
    probe: bool,
}

impl Breaker {
    pub fn new(provider: &str, config: BreakerConfig) -> Self {
        let breaker = Self {
            provider: provider.to_owned(),
            config,
            inner: Mutex::new(Inner {
                failures_in_a_row: 0,
                opened_at: None,
                probe_in_flight: false,
            }),
        };
        breaker.export(BreakerState::Closed);
        breaker
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave it inconsistent (plain counters).
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn state_of(&self, inner: &Inner) -> BreakerState {
        match inner.opened_at {
            None => BreakerState::Closed,
            Some(at) if at.elapsed() >= self.config.open_for => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    fn export(&self, state: BreakerState) {
        metrics::gauge!("provider_circuit_state", "provider" => self.provider.clone())
            .set(state.gauge());
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        let inner = self.lock();
        self.state_of(&inner)
    }

    /// Whether a call may go now: always when closed, never when open, one probe at a time
    /// when half-open.
    pub fn admit(&self) -> Option<Admission> {
        let mut inner = self.lock();
        let state = self.state_of(&inner);
        self.export(state);
        match state {
            BreakerState::Closed => Some(Admission { probe: false }),
            BreakerState::Open => None,
            BreakerState::HalfOpen if inner.probe_in_flight => None,
            BreakerState::HalfOpen => {
                inner.probe_in_flight = true;
                tracing::info!(provider = %self.provider, "circuit half-open: probing");
                Some(Admission { probe: true })
            }
        }
    }

    /// The provider answered (whatever it said): closes the breaker.
    pub fn succeeded(&self, admission: Admission) {
        let mut inner = self.lock();
        if admission.probe || inner.opened_at.is_some() {
            tracing::info!(provider = %self.provider, "circuit closed");
        }
        inner.failures_in_a_row = 0;
        inner.opened_at = None;
        inner.probe_in_flight = false;
        self.export(BreakerState::Closed);
    }

    /// The provider was unavailable: counts towards opening, and a failed probe reopens.
    pub fn failed(&self, admission: Admission) {
        let mut inner = self.lock();
        inner.failures_in_a_row = inner.failures_in_a_row.saturating_add(1);
        let opens = admission.probe
            || (inner.opened_at.is_none() && inner.failures_in_a_row >= self.config.failures);
        if admission.probe {
            inner.probe_in_flight = false;
        }
        if opens {
            inner.opened_at = Some(Instant::now());
            metrics::counter!("provider_circuit_opened_total", "provider" => self.provider.clone())
                .increment(1);
            tracing::warn!(provider = %self.provider, failures = inner.failures_in_a_row,
                open_for = ?self.config.open_for, "circuit open: calls fail fast");
            self.export(BreakerState::Open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_for: Duration) -> Breaker {
        Breaker::new(
            "test",
            BreakerConfig {
                failures: 3,
                open_for,
            },
        )
    }

    #[test]
    fn opens_after_the_threshold_and_fails_fast() {
        let b = breaker(Duration::from_secs(60));
        for _ in 0..2 {
            let a = b.admit().unwrap();
            b.failed(a);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let a = b.admit().unwrap();
        b.failed(a);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.admit().is_none(), "open: no call goes");
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = breaker(Duration::from_secs(60));
        for _ in 0..2 {
            let a = b.admit().unwrap();
            b.failed(a);
        }
        let a = b.admit().unwrap();
        b.succeeded(a);
        for _ in 0..2 {
            let a = b.admit().unwrap();
            b.failed(a);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_result_decides() {
        let b = breaker(Duration::from_millis(20));
        for _ in 0..3 {
            let a = b.admit().unwrap();
            b.failed(a);
        }
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.admit().unwrap();
        assert!(b.admit().is_none(), "one probe at a time");
        b.failed(probe);
        assert_eq!(b.state(), BreakerState::Open, "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(30));
        let probe = b.admit().unwrap();
        b.succeeded(probe);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit().is_some());
    }
}
