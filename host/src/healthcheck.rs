//! `pfd-host healthcheck`: a dependency-free probe for container `HEALTHCHECK`s.
//!
//! Distroless and scratch images have no curl or wget, and a shell probe would need one; the
//! server's own binary already links an HTTP client (hyper), so it probes itself. One plain-HTTP
//! GET with a hard overall timeout; exit status 0 on `200 OK`, 1 on anything else (another status,
//! a refused connection, a timeout, a malformed URL), with one line on stderr saying why.

use anyhow::{anyhow, bail, Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::time::Duration;

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
