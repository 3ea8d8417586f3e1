//! `pfd-host healthcheck`: a dependency-free probe for container `HEALTHCHECK`s.
//!
//! Distroless and scratch images have no curl or wget, and a shell probe would need one; the
//! server's own binary already links an HTTP client (hyper), so it probes itself. One plain-HTTP
//! GET with a hard overall timeout; exit status 0 on `200 OK`, 1 on anything else (another status,
//! a refused connection, a timeout, a malformed URL), with one line on stderr saying why.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::DEFAULT_LISTEN;

/// `pfd-host healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// URL to GET (http only). Default: `/health/ready` on the port of PFD_LISTEN (or 3000), via
    /// loopback.
    #[arg(long, env = "PFD_HEALTHCHECK_URL")]
    pub url: Option<String>,

    /// Give up after this long (connect + response).
    #[arg(long, env = "PFD_HEALTHCHECK_TIMEOUT_MS", default_value_t = 3_000)]
    pub timeout_ms: u64,
}

impl HealthcheckArgs {
    /// The URL to probe: `--url`, else derived from `PFD_LISTEN`, so a container that moves the
    /// port needs no second setting.
    pub fn effective_url(&self) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let listen = std::env::var("PFD_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.to_string());
        default_health_url(&listen)
    }
}

/// `http://<loopback>:<port>/health/ready` for a listen address; an unspecified address
/// (0.0.0.0 / ::) is probed on loopback.
pub fn default_health_url(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(addr) => {
            let host = match addr {
                SocketAddr::V4(a) if a.ip().is_unspecified() => "127.0.0.1".to_string(),
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) if a.ip().is_unspecified() => "[::1]".to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            format!("http://{host}:{}/health/ready", addr.port())
        }
        Err(_) => "http://127.0.0.1:3000/health/ready".to_string(),
    }
}

/// `pfd-host healthcheck`.
pub async fn run(args: &HealthcheckArgs) -> Result<()> {
    probe(
        &args.effective_url(),
        Duration::from_millis(args.timeout_ms),
    )
    .await
}

/// Probes `url`; `Ok(())` only for HTTP 200.
pub async fn probe(url: &str, timeout: Duration) -> Result<()> {
    tokio::time::timeout(timeout, get(url))
        .await
        .map_err(|_| anyhow!("no answer from {url} within {} ms", timeout.as_millis()))?
}

async fn get(url: &str) -> Result<()> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("invalid URL {url:?}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("only http:// URLs are supported, got {url:?}");
    }
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow!("URL {url:?} has no host"))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let req = http::Request::get(path)
        .header(http::header::HOST, authority.as_str())
        .header(
            http::header::USER_AGENT,
            concat!("pfd-host-healthcheck/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    // Drain (bounded by the overall timeout) so the server sees a clean request.
    let _ = resp.into_body().collect().await;
    if status != http::StatusCode::OK {
        bail!("{url} answered {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_url_defaults() {
        assert_eq!(
            default_health_url("0.0.0.0:8080"),
            "http://127.0.0.1:8080/health/ready"
        );
        assert_eq!(
            default_health_url("[::]:8080"),
            "http://[::1]:8080/health/ready"
        );
        assert_eq!(
            default_health_url("10.0.0.5:3000"),
            "http://10.0.0.5:3000/health/ready"
        );
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn one_shot_server(reply: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply.as_bytes()).await;
        });
        format!("http://{addr}/health/ready")
    }

    #[tokio::test]
    async fn ok_only_on_200() {
        let url = one_shot_server("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        probe(&url, Duration::from_secs(2)).await.unwrap();
        let url =
            one_shot_server("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        let err = probe(&url, Duration::from_secs(2)).await.unwrap_err();
        assert!(err.to_string().contains("503"), "{err}");
    }

    #[tokio::test]
    async fn refused_timeout_and_bad_urls_fail() {
        // A port nobody listens on (bind, learn, close).
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        assert!(
            probe(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2))
                .await
                .is_err()
        );
        // A server that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _keep = listener.accept().await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let err = probe(&format!("http://{addr}/"), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("within"), "{err}");
        for bad in ["https://127.0.0.1/", "not a url", "http:///x"] {
            assert!(probe(bad, Duration::from_secs(1)).await.is_err(), "{bad}");
        }
    }
}
