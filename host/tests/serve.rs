//! Host-level end-to-end tests: the real `pfd-host` binary serving the real component, checking
//! what the host (not the guest) is responsible for — request ids, body limit, deadline,
//! admission control, failure isolation, graceful shutdown.
//!
//! They need the built component (`build/pfd-edge.wasm`, or `PFD_TEST_COMPONENT`); without it they
//! print a note and pass, so `cargo test` works before the first wasm build. The route-level API
//! tests live in the workspace's `tests/`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{workspace, Server};

fn component() -> Option<PathBuf> {
    let path = std::env::var_os("PFD_TEST_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("build/pfd-edge.wasm"));
    if path.is_file() {
        Some(path)
    } else if std::env::var_os("PFD_REQUIRE_COMPONENT").is_some() {
        // scripts/test.sh builds the component first: there, a missing one is a failure.
        panic!(
            "{} not built (PFD_REQUIRE_COMPONENT is set)",
            path.display()
        );
    } else {
        eprintln!(
            "note: {} not built; skipping pfd-host end-to-end test",
            path.display()
        );
        None
    }
}

impl Server {
    /// `pfd-host serve --component <component> <extra>`, listening.
    fn start(component: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--component", component.to_str().expect("a UTF-8 path")];
        args.extend_from_slice(extra);
        // A cold compile of the component can take a while; a cache hit is well under a second.
        common::serve(&args, Duration::from_secs(300))
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        request(self.addr, method, path, headers, body)
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pfd-host did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_lines(&self) -> Vec<String> {
        self.logs.try_iter().collect()
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A minimal HTTP/1.1 client (one request per connection).
fn request(
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

fn parse_reply(raw: &[u8]) -> Reply {
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
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_str = String::from_utf8_lossy(&data[..eol]);
        let size =
            usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

/// A `/predict` body with a full-length synthetic record.
fn predict_body() -> Vec<u8> {
    let signal: Vec<String> = (0..102_400)
        .map(|i| format!("{:.5}", (i as f64 * 0.07).sin() * 0.5))
        .collect();
    format!("{{\"signal\":[{}]}}", signal.join(",")).into_bytes()
}

fn assert_host_error(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let msg = v["error"].as_str().expect("error field");
    assert_eq!(v["detail"], format!("{status}: {msg}"));
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(r.header("x-request-id").is_some());
}

#[test]
fn serves_health_with_request_ids_and_shuts_down_cleanly() {
    let Some(component) = component() else { return };
    let server = Server::start(&component, &[]);

    let r = server.request("GET", "/health", &[], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json().get("status").is_some());
    let generated = r.header("x-request-id").expect("x-request-id").to_string();
    let r = server.request("GET", "/health", &[("X-Request-Id", "trace-abc.123")], b"");
    assert_eq!(r.header("x-request-id"), Some("trace-abc.123"));
    assert_ne!(generated, "trace-abc.123");

    // The access log has one line per request, with the id.
    std::thread::sleep(Duration::from_millis(100));
    let logs = server.log_lines();
    assert!(
        logs.iter()
            .any(|l| l.contains("trace-abc.123") && l.contains("\"status\":200")),
        "{logs:#?}"
    );

    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn oversize_bodies_get_413_and_the_server_keeps_serving() {
    let Some(component) = component() else { return };
    let server = Server::start(&component, &["--max-body-bytes", "4KiB"]);

    // Announced by Content-Length: refused before any instance exists.
    let r = server.request(
        "POST",
        "/predict",
        &[("Content-Type", "application/json")],
        &vec![b' '; 64 * 1024],
    );
    assert_host_error(&r, 413);

    // Streamed (chunked): counted while the guest reads, cut at the limit.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b' '; 1024];
    for _ in 0..16 {
        if write!(s, "{:x}\r\n", chunk.len()).is_err()
            || s.write_all(&chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert_host_error(&parse_reply(&raw), 413);

    let r = server.request("GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn deadline_gives_504_and_the_server_keeps_serving() {
    let Some(component) = component() else { return };
    let server = Server::start(&component, &["--request-timeout-ms", "1"]);
    let r = server.request(
        "POST",
        "/predict",
        &[("Content-Type", "application/json")],
        &predict_body(),
    );
    assert_host_error(&r, 504);
    assert_eq!(r.json()["error"], "Request timed out");
    drop(server);

    // With a normal deadline the same request is answered.
    let server = Server::start(&component, &[]);
    let r = server.request(
        "POST",
        "/predict",
        &[("Content-Type", "application/json")],
        &predict_body(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn admission_control_answers_503_when_all_slots_are_busy() {
    let Some(component) = component() else { return };
    let server = Server::start(
        &component,
        &["--max-concurrency", "1", "--queue-timeout-ms", "200"],
    );
    // Hold the only slot: a request whose body never finishes arriving.
    let mut hog = TcpStream::connect(server.addr).unwrap();
    write!(
        hog,
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"signal\":["
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = server.request("GET", "/health", &[], b"");
    assert_host_error(&r, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    drop(hog);
    // The slot comes back once the hog's connection is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = server.request("GET", "/health", &[], b"");
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never released");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_guest_trap_is_a_500_and_the_server_keeps_serving() {
    let Some(component) = component() else { return };
    // 64 MiB per instance: plenty for the small routes, too little to hold an 80 MB body, so the
    // guest's allocation fails (an abort, i.e. a trap) while reading it.
    let server = Server::start(&component, &["--max-instance-memory-bytes", "64MiB"]);
    let mut body = b"{\"signal\": [0.0]".to_vec();
    body.resize(80 << 20, b' ');
    body.push(b'}');
    let r = server.request(
        "POST",
        "/predict",
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_host_error(&r, 500);
    for _ in 0..3 {
        let r = server.request("GET", "/", &[], b"");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_component_that_cannot_fit_the_limits_fails_at_start_naming_the_setting() {
    let Some(component) = component() else { return };
    let started = common::start(
        &[
            "--component",
            component.to_str().expect("a UTF-8 path"),
            "--max-instance-memory-bytes",
            "64KiB",
        ],
        Duration::from_secs(300),
    );
    let common::Started::Exited(status, lines) = started else {
        panic!("pfd-host started with 64 KiB of instance memory");
    };
    assert!(!status.success());
    let stderr = lines.join("\n");
    assert!(stderr.contains("max-instance-memory-bytes"), "{stderr}");
}
