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
    /// Whether the process can be considered ready as far as this component is concerned.
    pub ready: bool,
    /// Why not, when not ready (shown by `/readyz`).
    pub reason: Option<String>,
    /// Anything worth showing (`/status`).
    pub detail: Value,
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
