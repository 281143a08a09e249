//! What long-running parts of a process (Kafka consumers, relays) report about themselves, for
//! the admin endpoints: `/status` lists every component with its detail, and `/readyz` fails
//! while any component reports itself not ready (a stalled consumer, say).
//!
//! The registry is process-wide: a component reports under a name unique in the process
//! (e.g. `consumer:email-service`) and withdraws the report when it stops.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// One component's latest report.
#[derive(Clone, Debug)]
pub struct Report {
    /// Why the process is not ready as far as this component is concerned (shown by
    /// `/readyz`); `None` when it is.
    pub reason: Option<String>,
    /// Anything worth showing (`/status`).
    pub detail: Value,
}

impl Report {
    /// Whether the component lets the process count as ready.
    pub fn ready(&self) -> bool {
        self.reason.is_none()
    }
}

fn registry() -> &'static Mutex<BTreeMap<String, Report>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<String, Report>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Records `report` as the current state of `component`.
pub fn set(component: &str, report: Report) {
    registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(component.to_owned(), report);
}

/// Forgets `component` (it stopped).
pub fn remove(component: &str) {
    registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(component);
}

/// Every component's report, by name.
pub fn snapshot() -> BTreeMap<String, Report> {
    registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}
