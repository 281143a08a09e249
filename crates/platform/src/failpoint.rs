//! Crash points for recovery tests. `PAYMENTS_FAILPOINTS=transfer.after_pending` (a comma
//! list) makes the process abort — no unwinding, no cleanup, like `kill -9` — when it reaches
//! a point of that name. Unset (always, in production) it costs one load of a cached value.
//!
//! This exists so that tests can kill a real process between two durable steps of a money
//! movement and prove the recovery path, instead of simulating the state a crash leaves.

use std::sync::OnceLock;

/// Environment variable naming the armed points.
pub const ENV: &str = "PAYMENTS_FAILPOINTS";

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| crate::config::split_list(&std::env::var(ENV).unwrap_or_default()))
}

/// Aborts the process if `name` is armed.
pub fn hit(name: &str) {
    if armed().iter().any(|armed| armed == name) {
        tracing::error!(failpoint = name, "failpoint hit: aborting the process");
        eprintln!("failpoint {name} hit: aborting");
        std::process::abort();
    }
}
