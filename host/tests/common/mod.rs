//! Shared by the integration tests: where the workspace is, a `pfd-host serve` child process, and
//! a raw HTTP/1.1 client.
// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
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

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the body arrived whole (its last chunk, or all its Content-Length).
    pub complete: bool,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A minimal HTTP/1.1 client (one request per connection): the tests speak HTTP byte by byte so
/// that they can also send what no client library would (malformed heads, stalled bodies).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (e.g. 413) before reading the body; a failed write is then fine.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_reply(&raw)
}

pub fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let complete;
    if chunked {
        (body, complete) = dechunk(&body);
    } else {
        let length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok());
        complete = length.is_none_or(|n| n == body.len());
    }
    Reply {
        status,
        headers,
        body,
        complete,
    }
}

/// The chunked body's data, and whether its last (zero-size) chunk arrived.
pub fn dechunk(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_str = String::from_utf8_lossy(&data[..eol]);
        let Ok(size) = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16) else {
            break;
        };
        if size == 0 {
            return (out, true);
        }
        let Some(chunk) = data.get(eol + 2..eol + 2 + size) else {
            out.extend_from_slice(&data[eol + 2..]);
            break;
        };
        out.extend_from_slice(chunk);
        data = data.get(eol + 2 + size + 2..).unwrap_or_default();
    }
    (out, false)
}
