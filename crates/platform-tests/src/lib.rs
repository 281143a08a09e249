//! Whole-platform tests live in `tests/platform` (one binary, a module per area: identity,
//! money, merchants, emails, statistics, seed, attacks) with the harness that boots a
//! platform per test in `tests/platform/harness`. This crate has no library code: it exists
//! so that no service (the gateway included) has to depend on every other one for its tests.
