//! A real SMTP server (aiosmtpd) writing every message into a Maildir.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{free_port, unique};

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
