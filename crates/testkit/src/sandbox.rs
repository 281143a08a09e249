//! The sandbox payment provider (`sandbox/`) as its own process, on a port of its own, with
//! the scripting calls tests use (`/_sandbox/…`). Killed when dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running sandbox provider.
pub struct SandboxProvider {
    pub name: String,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    pub api_key: String,
    pub webhook_secret: String,
    /// The API it speaks (`SANDBOX_DIALECT`): `sandbox` or `orders`.
    pub dialect: String,
    state_file: PathBuf,
    binary: PathBuf,
    decide_after_ms: u64,
    child: Option<tokio::process::Child>,
    http: reqwest::Client,
}

/// The built binary: `SANDBOX_PROVIDER_BIN`, else `<target>/debug/sandbox-provider` (built
/// by `cargo test --workspace`, since the sandbox crate has tests of its own).
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("SANDBOX_PROVIDER_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate::repo_root().join("target"));
    target.join("debug").join("sandbox-provider")
}

impl SandboxProvider {
    /// Starts `binary` as provider `name` (decisions after `decide_after_ms`).
    pub async fn start_with(
        binary: PathBuf,
        name: &str,
        decide_after_ms: u64,
    ) -> anyhow::Result<Self> {
        Self::start_speaking(binary, name, "sandbox", decide_after_ms).await
    }

    /// Starts `binary` as provider `name` speaking `dialect` (`sandbox` or `orders`).
    pub async fn start_speaking(
        binary: PathBuf,
        name: &str,
        dialect: &str,
        decide_after_ms: u64,
    ) -> anyhow::Result<Self> {
        let state_file = std::env::temp_dir().join(format!("{}.jsonl", crate::unique(name)));
        let mut provider = Self {
            name: name.to_owned(),
            base_url: String::new(),
            api_key: format!("sk_test_{}", uuid::Uuid::new_v4().simple()),
            webhook_secret: format!("whsec_{}", uuid::Uuid::new_v4().simple()),
            dialect: dialect.to_owned(),
            state_file,
            binary,
            decide_after_ms,
            child: None,
            http: reqwest::Client::new(),
        };
        provider.spawn("127.0.0.1:0").await?;
        Ok(provider)
    }

    /// Starts the workspace's binary (see [`binary`]).
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        Self::start_with(binary(), name, 100).await
    }

    async fn spawn(&mut self, listen: &str) -> anyhow::Result<()> {
        let mut child = tokio::process::Command::new(&self.binary)
            .env("SANDBOX_NAME", &self.name)
            .env("SANDBOX_LISTEN", listen)
            .env("SANDBOX_API_KEY", &self.api_key)
            .env("SANDBOX_WEBHOOK_SECRET", &self.webhook_secret)
            .env("SANDBOX_STATE_FILE", &self.state_file)
            .env("SANDBOX_DECIDE_AFTER_MS", self.decide_after_ms.to_string())
            .env("SANDBOX_DIALECT", &self.dialect)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .context("the sandbox provider did not start in 20 s")??
            .context("the sandbox provider exited")?;
        let addr = first
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line {first:?}"))?;
        self.base_url = format!("http://{addr}");
        self.child = Some(child);
        Ok(())
    }

    /// Kills it (SIGKILL) and starts it again on the same port and state file.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        let listen = self.base_url.trim_start_matches("http://").to_owned();
        self.spawn(&listen).await
    }

    /// `POST /_sandbox/<path>` with `body`.
    pub async fn control(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let answer = self
            .http
            .post(format!("{}/_sandbox/{path}", self.base_url))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await?;
        read(answer).await
    }

    /// Adds a scripted rule (`{"match": {…}, "scenario": {…}, "times": n}`).
    pub async fn script(&self, rule: serde_json::Value) -> anyhow::Result<()> {
        self.control("rules", rule).await.map(|_| ())
    }

    /// Takes it down (every API call answers 503) or brings it back.
    pub async fn set_down(&self, down: bool) -> anyhow::Result<()> {
        self.control("down", serde_json::json!({ "down": down }))
            .await
            .map(|_| ())
    }

    /// Every operation it knows.
    pub async fn operations(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let answer = self
            .http
            .get(format!("{}/_sandbox/operations", self.base_url))
            .bearer_auth(&self.api_key)
            .send()
            .await?;
        let all = read(answer).await?;
        Ok(all["operations"].as_array().cloned().unwrap_or_default())
    }
}

/// A control call's JSON answer (`null` for an empty one); an error for a non-2xx status.
async fn read(answer: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = answer.status();
    let text = answer.text().await?;
    anyhow::ensure!(
        status.is_success(),
        "sandbox control call: HTTP {status} {text}"
    );
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

impl Drop for SandboxProvider {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.state_file);
    }
}
