//! Shared by the integration tests: where the workspace is, and a `pfd-host serve` child process.
// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The workspace root, from the `CARGO_MANIFEST_DIR` that `cargo test` sets when it *runs* the
/// test, not the one baked in when it was compiled: a shared target directory (CI caches one
/// outside the clone) reuses test binaries built from another checkout, and those must test this
/// checkout's files.
pub fn workspace() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .join("..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// A running `pfd-host serve` (killed when dropped).
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Its stderr (JSON log lines) after the "listening" line.
    pub logs: mpsc::Receiver<String>,
    /// The log lines up to and including "listening".
    pub startup: Vec<String>,
}

/// How a start ended.
pub enum Started {
    Listening(Server),
    /// Exited, or killed after the timeout; with every log line it wrote.
    Exited(ExitStatus, Vec<String>),
}

/// Server starts are serialised: the first one may compile the component (minutes in a debug
/// build), and the others should find it in the compiled-artifact cache instead of all compiling
/// it at once.
static START_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts `pfd-host serve` with the workspace's `spin.toml`, a free loopback port, JSON logs and
/// `args`, and waits up to `timeout` for the log line that says where it listens.
pub fn start(args: &[&str], timeout: Duration) -> Started {
    let _one_at_a_time = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(env!("CARGO_BIN_EXE_pfd-host"))
        .arg("serve")
        .arg("--manifest")
        .arg(workspace().join("spin.toml"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("PFD_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        // No drain delay unless a test asks for one (`--drain-delay-ms` beats the variable):
        // every test stops its server, and 5 s each would add up.
        .env("PFD_DRAIN_DELAY_MS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pfd-host");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut startup = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let listen = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("listen")?.as_str()?.parse::<SocketAddr>().ok());
        startup.push(line);
        if let Some(addr) = listen {
            return Started::Listening(Server {
                child,
                addr,
                logs: rx,
                startup,
            });
        }
    }
    // Exited (stderr closed) or timed out.
    let status = match child.try_wait().unwrap() {
        Some(s) => s,
        None => {
            let _ = child.kill();
            child.wait().unwrap()
        }
    };
    Started::Exited(status, startup)
}

/// [`start`], which must reach "listening".
pub fn serve(args: &[&str], timeout: Duration) -> Server {
    match start(args, timeout) {
        Started::Listening(s) => s,
        Started::Exited(status, lines) => {
            panic!("pfd-host exited ({status}):\n{}", lines.join("\n"))
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
