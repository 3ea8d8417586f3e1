//! A `pfd-host serve` child process on a free loopback port, with the host's own wasi-nn compute
//! times read from its debug log.

use anyhow::{anyhow, Context as _, Result};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// A `pfd-host serve` child process.
pub(super) struct Server {
    child: tokio::process::Child,
    pub(super) addr: SocketAddr,
    /// The host's own time per wasi-nn `compute` (ms), from its debug log, in order.
    computes: Arc<std::sync::Mutex<Vec<f64>>>,
}

impl Server {
    pub(super) async fn start(
        manifest: &Path,
        component: &Path,
        flags: &[String],
        log: &Path,
    ) -> Result<Server> {
        let exe = std::env::current_exe().context("locating pfd-host")?;
        let mut child = tokio::process::Command::new(exe)
            .arg("serve")
            .arg("--manifest")
            .arg(manifest)
            .arg("--component")
            .arg(component)
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            .env("PFD_LOG_FORMAT", "json")
            // The host logs each wasi-nn compute (validation + ONNX Runtime + output) at debug:
            // the table splits the guest's model time into the host's part and the rest.
            .env("RUST_LOG", "info,pfd_host::nn::ort_backend=debug")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting pfd-host serve")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut file = tokio::fs::File::create(log)
            .await
            .with_context(|| format!("creating {}", log.display()))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let computes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = computes.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
                if line.contains("\"wasi-nn compute\"") {
                    if let Some(us) = serde_json::from_str::<Value>(&line)
                        .ok()
                        .and_then(|v| v.get("us").and_then(Value::as_f64))
                    {
                        sink.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(us / 1e3);
                    }
                    continue;
                }
                let _ = tx.send(line);
            }
            let _ = file.flush().await;
        });
        // A cold compile of the component takes a while; a cache hit well under a second.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        let addr = loop {
            let line = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .map_err(|_| {
                    anyhow!(
                        "pfd-host did not start listening within 600 s (see {})",
                        log.display()
                    )
                })?
                .ok_or_else(|| anyhow!("pfd-host exited during startup (see {})", log.display()))?;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(listen) = v.get("listen").and_then(Value::as_str) {
                if v.get("message")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.starts_with("listening on"))
                {
                    break listen.parse::<SocketAddr>()?;
                }
            }
        };
        // Keep draining the log.
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        Ok(Server {
            child,
            addr,
            computes,
        })
    }

    /// How many computes the host has logged so far.
    pub(super) fn computes_seen(&self) -> usize {
        self.computes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The host compute times logged since `from`, sorted (waits briefly for the log to catch up).
    pub(super) async fn computes_since(&self, from: usize, expected: usize) -> Vec<f64> {
        for _ in 0..50 {
            if self.computes_seen() >= from + expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let all = self.computes.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = all.get(from..).unwrap_or_default().to_vec();
        v.sort_by(f64::total_cmp);
        v
    }

    pub(super) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
