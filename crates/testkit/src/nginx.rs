//! NGINX rendered from the project's own template, in a private prefix directory.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{free_port, render_template, repo_root, send_signal, unique};

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
        Self::start_on(free_port(), gateway, grpc_upstreams).await
    }

    /// [`Self::start`] with the HTTP port chosen beforehand (from [`free_port`]): for
    /// processes that must know the platform's public URL before NGINX runs (a payment
    /// provider's callback URL).
    pub async fn start_on(
        http_port: u16,
        gateway: &str,
        grpc_upstreams: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(unique("nginx"));
        std::fs::create_dir_all(dir.join("logs"))?;
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
