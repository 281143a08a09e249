//! Apache Kafka: the broker the test command started, a private broker a test can freeze,
//! kill and restart, and reading events from a topic.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{free_port, repo_root, send_signal, unique};

/// Kafka bootstrap servers used by tests (the broker `make test` starts).
pub fn kafka_brokers() -> String {
    std::env::var("TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned())
}

/// A private Apache Kafka broker (deploy/local/kafka/broker.sh) for tests that freeze, kill or
/// restart it; other tests share the one the test command started ([`kafka_brokers`]).
/// Needs `KAFKA_LIBS` (exported by `make test`).
pub struct KafkaBroker {
    port: u16,
    controller_port: u16,
    dir: PathBuf,
    child: Option<tokio::process::Child>,
}

impl KafkaBroker {
    /// Starts a fresh broker on free ports and waits until it serves.
    pub async fn start() -> anyhow::Result<Self> {
        let mut broker = Self {
            port: free_port(),
            controller_port: free_port(),
            dir: std::env::temp_dir().join(unique("kafka")),
            child: None,
        };
        broker.restart().await?;
        Ok(broker)
    }

    /// Bootstrap servers of this broker.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self
            .child
            .as_ref()
            .and_then(tokio::process::Child::id)
            .context("the broker is not running")?;
        send_signal(pid, signal)
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is answered, as with a
    /// broker stuck in a long pause.
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal("STOP")
    }

    /// Lets a frozen broker run again (SIGCONT).
    pub fn thaw(&self) -> anyhow::Result<()> {
        self.signal("CONT")
    }

    /// Kills the broker without a clean shutdown (SIGKILL) and waits for it to be gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Starts the broker (again) on the same ports and storage; waits until it serves.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        let libs = std::env::var("KAFKA_LIBS")
            .context("KAFKA_LIBS is not set (run the tests with `make test`)")?;
        std::fs::create_dir_all(&self.dir)?;
        let log_path = self.dir.join(format!("broker-{}.log", unique("run")));
        let log = std::fs::File::create(&log_path)?;
        let child = tokio::process::Command::new(repo_root().join("deploy/local/kafka/broker.sh"))
            .arg(self.port.to_string())
            .arg(&self.dir)
            .arg(self.controller_port.to_string())
            .env("KAFKA_LIBS", libs)
            .env("KAFKA_HEAP", "256m")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting deploy/local/kafka/broker.sh")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains("Kafka Server started") {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!("Kafka exited during start-up ({status}): {text}");
            }
            anyhow::ensure!(Instant::now() < deadline, "Kafka did not start within 90 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        // SIGKILL ends the JVM even while it is frozen.
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads JSON events from `topic` from the beginning, in a fresh consumer group.
pub fn topic_reader(topic: &str) -> anyhow::Result<rdkafka::consumer::StreamConsumer> {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// Waits for the first JSON message on `consumer` for which `pick` returns a value.
pub async fn next_matching<T>(
    consumer: &rdkafka::consumer::StreamConsumer,
    timeout: Duration,
    mut pick: impl FnMut(&serde_json::Value) -> Option<T>,
) -> anyhow::Result<T> {
    use rdkafka::Message;
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline
            .checked_duration_since(Instant::now())
            .context("timed out waiting for a matching Kafka message")?;
        let message = tokio::time::timeout(remaining, consumer.recv())
            .await
            .context("timed out waiting for a matching Kafka message")??;
        if let Some(found) = message
            .payload()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            .and_then(|value| pick(&value))
        {
            return Ok(found);
        }
    }
}
