//! Test harness shared by the integration tests: a fresh PostgreSQL database per test, the
//! Redis and Kafka-compatible broker the test command started, NGINX rendered from the
//! project's own template in front of a gateway, free ports and polling with a deadline.
//!
//! Environment: `TEST_DATABASE_URL` (server admin URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), `TEST_REDIS_URL`, `TEST_KAFKA_BROKERS`,
//! `NGINX_BIN`.

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::Connection;

/// Admin URL of the PostgreSQL server used by tests.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Redis URL used by tests.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// Kafka bootstrap servers used by tests (the broker `make test` starts).
pub fn kafka_brokers() -> String {
    std::env::var("TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned())
}

/// A name no other test uses (`prefix-<uuid>`).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A JWT secret for tests.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

/// Creates a fresh, empty database and returns its URL. Databases are named `pt_<uuid>`; the
/// test command drops leftovers before each run.
pub async fn fresh_database() -> anyhow::Result<String> {
    let admin = postgres_admin_url();
    let name = format!("pt_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .context("connecting to the test PostgreSQL server (TEST_DATABASE_URL)")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base.to_owned())
        .context("TEST_DATABASE_URL has no database path")?;
    Ok(format!("{base}/{name}"))
}

/// Polls `check` every 50 ms until it yields a value or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free TCP port on loopback for a server a test starts later, reserved for this process.
///
/// Ports come from 20000..32000, below Linux's ephemeral range (32768..61000): a port the OS
/// hands out for `:0` binds or for outgoing connections (to PostgreSQL, Redis, Kafka) can be
/// taken by another connection between this check and the server's bind. Below the range
/// only another test's pick can collide, and picks by the parallel test processes did
/// collide (two platforms of nine services each). So every pick is also reserved: an
/// exclusive lock on a per-port file, held until the process exits (the OS drops it even
/// on a crash), and a port locked by another process — or already picked by this one — is
/// skipped.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    static HELD: Mutex<Vec<(u16, std::fs::File)>> = Mutex::new(Vec::new());
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let _ = STATE.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
    let lock_dir = std::env::temp_dir().join("payments-testkit-ports");
    let _ = std::fs::create_dir_all(&lock_dir);
    let mut held = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..5000 {
        // xorshift64: cheap, good enough to spread picks.
        let mut x = STATE.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        STATE.store(x, Ordering::Relaxed);
        let port = 20_000 + (x % 12_000) as u16;
        if held.iter().any(|(p, _)| *p == port) {
            continue;
        }
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_dir.join(format!("{port}.lock")))
        else {
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            held.push((port, file));
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// Replaces `${NAME}` in `template` with values from `vars`; fails on unknown names, like
/// `envsubst` with a fixed variable list.
pub fn render_template(template: &str, vars: &[(&str, String)]) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').context("unterminated ${ in template")?;
        let name = &after[..end];
        let value = vars
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .with_context(|| format!("template variable {name} has no value"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// NGINX running the project's `nginx/nginx.conf.template` in a private prefix directory.
pub struct Nginx {
    /// HTTP port (the public API).
    pub http_port: u16,
    /// gRPC port (HTTP/2, `grpc_pass` to the services).
    pub grpc_port: u16,
    /// The HTTP API over TLS.
    pub https_port: u16,
    /// gRPC over TLS.
    pub grpcs_port: u16,
    dir: PathBuf,
    child: tokio::process::Child,
}

impl Nginx {
    /// Starts NGINX in front of `gateway` (`host:port`) and the given gRPC upstreams
    /// (`(template variable, host:port)`), and waits until it accepts connections.
    pub async fn start(gateway: &str, grpc_upstreams: &[(&str, String)]) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(unique("nginx"));
        std::fs::create_dir_all(dir.join("logs"))?;
        let http_port = free_port();
        let grpc_port = free_port();
        let https_port = free_port();
        let grpcs_port = free_port();
        // A certificate of its own, from the script `make run` uses.
        let status = std::process::Command::new("bash")
            .arg(repo_root().join("deploy/local/tls-cert.sh"))
            .arg(dir.join("tls"))
            .status()
            .context("running deploy/local/tls-cert.sh")?;
        anyhow::ensure!(status.success(), "deploy/local/tls-cert.sh failed");
        let template = std::fs::read_to_string(repo_root().join("nginx/nginx.conf.template"))?;
        let mut vars = vec![
            ("NGINX_HTTP_PORT", http_port.to_string()),
            ("NGINX_GRPC_PORT", grpc_port.to_string()),
            ("NGINX_HTTPS_PORT", https_port.to_string()),
            ("NGINX_GRPCS_PORT", grpcs_port.to_string()),
            (
                "NGINX_TLS_CERT",
                dir.join("tls/tls.crt").display().to_string(),
            ),
            (
                "NGINX_TLS_KEY",
                dir.join("tls/tls.key").display().to_string(),
            ),
            ("NGINX_WORKER_PROCESSES", "1".to_owned()),
            (
                "NGINX_ERROR_LOG",
                dir.join("logs/error.log").display().to_string(),
            ),
            (
                "NGINX_ACCESS_LOG",
                dir.join("logs/access.log").display().to_string(),
            ),
            (
                "NGINX_PID_FILE",
                dir.join("nginx.pid").display().to_string(),
            ),
            ("NGINX_RATE_PER_SECOND", "1000".to_owned()),
            ("NGINX_RATE_BURST", "2000".to_owned()),
            ("GATEWAY_UPSTREAM", gateway.to_owned()),
        ];
        for (name, addr) in grpc_upstreams {
            vars.push((name, addr.clone()));
        }
        let config = render_template(&template, &vars)?;
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let bin = std::env::var("NGINX_BIN").unwrap_or_else(|_| {
            if std::path::Path::new("/usr/sbin/nginx").exists() {
                "/usr/sbin/nginx".to_owned()
            } else {
                "nginx".to_owned()
            }
        });
        let child = tokio::process::Command::new(bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&config_path)
            .arg("-g")
            .arg("daemon off;")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting nginx (set NGINX_BIN or install nginx)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", http_port))
            .await
            .is_err()
        {
            anyhow::ensure!(Instant::now() < deadline, "nginx did not start listening");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            http_port,
            grpc_port,
            https_port,
            grpcs_port,
            dir,
            child,
        })
    }

    /// Base URL of the public HTTP API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The PEM of the local CA that signed NGINX's certificate (for `localhost`, 127.0.0.1).
    pub fn ca_certificate(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("tls/ca.crt")).unwrap_or_default()
    }

    /// Everything NGINX has written to its access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// Fast shutdown: SIGTERM makes the master stop its workers too. (SIGKILL, what
    /// `kill_on_drop` sends, killed only the master and left its workers running, holding the
    /// listening ports, one set per test.)
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = send_signal(pid, "TERM");
        }
    }
}

/// `kill -SIGNAL pid`.
fn send_signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
    Ok(())
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

/// A real SMTP server for tests: aiosmtpd (PyPI) writing every message into a Maildir.
/// It can be stopped and started again on the same port, to test delivery retries.
pub struct Smtp {
    port: u16,
    maildir: PathBuf,
    child: Option<tokio::process::Child>,
}

impl Smtp {
    /// Starts aiosmtpd on a free loopback port (`PAYMENTS_PYTHON` or `python3`).
    pub async fn start() -> anyhow::Result<Self> {
        // aiosmtpd's Mailbox handler creates the Maildir itself (it must not exist yet).
        let maildir = std::env::temp_dir().join(unique("maildir"));
        let mut smtp = Self {
            port: free_port(),
            maildir,
            child: None,
        };
        smtp.resume().await?;
        Ok(smtp)
    }

    /// The port emails go to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (connections are refused until [`Self::resume`]).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let python = std::env::var("PAYMENTS_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let child = tokio::process::Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&self.maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting aiosmtpd (pip install aiosmtpd)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "aiosmtpd did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Every message received so far (headers and body, quoted-printable soft line breaks
    /// and `=XX` escapes undone so assertions can search the text), oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<(std::time::SystemTime, String)> =
            std::fs::read_dir(self.maildir.join("new"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| {
                    let modified = entry.metadata().ok()?.modified().ok()?;
                    let text = std::fs::read_to_string(entry.path()).ok()?;
                    Some((modified, decode_quoted_printable(&text)))
                })
                .collect();
        files.sort_by_key(|(modified, _)| *modified);
        files.into_iter().map(|(_, text)| text).collect()
    }

    /// Removes the Maildir.
    fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.maildir);
    }

    /// Messages to `recipient` whose raw text contains `needle`.
    pub fn find(&self, recipient: &str, needle: &str) -> Vec<String> {
        let to = format!("To: {recipient}");
        self.messages()
            .into_iter()
            .filter(|m| m.contains(&to) && m.contains(needle))
            .collect()
    }

    /// Waits until a message to `recipient` contains `needle`; returns it.
    pub async fn wait_for(
        &self,
        recipient: &str,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.find(recipient, needle).into_iter().next() {
                return Ok(found);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no email to {recipient} containing {needle:?} within {timeout:?}; received: {:#?}",
                self.messages()
                    .iter()
                    .map(|m| m
                        .lines()
                        .filter(|l| l.starts_with("Subject:") || l.starts_with("To:"))
                        .collect::<Vec<_>>()
                        .join(" | "))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Undoes quoted-printable soft line breaks (`=` at a line end) and `=XX` escapes.
fn decode_quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| {
            (b as char)
                .to_digit(16)
                .filter(|_| b.is_ascii_uppercase() || b.is_ascii_digit())
        };
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Drop for Smtp {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        self.cleanup();
    }
}
