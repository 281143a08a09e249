//! Graceful shutdown: a cloneable signal that fires on SIGTERM/SIGINT or when triggered by
//! code (tests stop an application this way).

use std::time::Duration;

use tokio::sync::watch;

/// How long a stopping process may take after SIGTERM before it exits anyway.
pub const GRACE: Duration = Duration::from_secs(20);

/// A cloneable shutdown signal.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: std::sync::Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that fires only when [`Shutdown::trigger`] is called.
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Self {
            tx: std::sync::Arc::new(tx),
            rx,
        }
    }

    /// A signal that also fires on SIGTERM or Ctrl-C.
    ///
    /// Stopping is bounded: if the process has not exited [`GRACE`] after the signal (a call
    /// stuck on an unreachable broker or database), or a second signal arrives, it exits at
    /// once with status 1 — before Kubernetes' own 30 s grace period ends in a SIGKILL. What
    /// was not finished is safe to drop: unsent outbox rows stay unsent and unacknowledged
    /// events are redelivered.
    pub fn on_os_signals() -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            os_signal().await;
            tracing::info!("shutdown signal received");
            trigger.trigger();
            // A plain thread: it must fire even if every runtime worker is blocked.
            std::thread::spawn(|| {
                std::thread::sleep(GRACE);
                tracing::error!(grace = ?GRACE, "still stopping after the grace period; exiting now");
                std::process::exit(1);
            });
            os_signal().await;
            tracing::error!("second shutdown signal; exiting now");
            std::process::exit(1);
        });
        shutdown
    }

    /// Fires the signal.
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes once the signal fires.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|fired| *fired).await;
    }
}

async fn os_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
