//! Measuring a served path over HTTP: a keep-alive client, correctness on the reference vectors,
//! sequential latency, concurrent throughput.

use super::args::BenchArgs;
use super::child::Server;
use super::results::{PathResult, Series};
use crate::eval::softmax;
use crate::reference::Reference;
use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use indicatif::ProgressBar;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A keep-alive HTTP/1.1 connection.
pub(super) struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Client> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client {
            sender,
            host: addr.to_string(),
        })
    }

    async fn send(
        &mut self,
        method: http::Method,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes)> {
        self.sender.ready().await?;
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.host)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// POSTs `body` and returns (client latency ms, the model time the guest reports, ms).
    async fn predict(&mut self, path: &str, body: Bytes) -> Result<(f64, f64, Value)> {
        let t = Instant::now();
        let (status, bytes) = self.send(http::Method::POST, path, body).await?;
        let e2e = t.elapsed().as_secs_f64() * 1e3;
        if status != 200 {
            bail!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
            );
        }
        let v: Value = serde_json::from_slice(&bytes)?;
        let model = v
            .get("total_inference_time_ms")
            .or_else(|| v.get("inference_time_ms"))
            .and_then(Value::as_f64)
            .ok_or_else(|| anyhow!("{path}: no inference time in the response"))?;
        Ok((e2e, model, v))
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn measure_server(
    server: &Server,
    key: &'static str,
    label: String,
    refs: &Reference,
    single_bodies: &[Bytes],
    batch_bodies: &[Bytes],
    args: &BenchArgs,
    concurrency: u32,
    bar: &ProgressBar,
) -> Result<PathResult> {
    let mut client = Client::connect(server.addr).await?;
    let (_, health) = client
        .send(http::Method::GET, "/health", Bytes::new())
        .await?;
    let health: Value = serde_json::from_slice(&health).unwrap_or(Value::Null);
    let backend = health
        .get("device")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();

    // Correctness on every reference vector.
    bar.set_message(format!("{key}: reference vectors"));
    let mut classes_ok = 0;
    let mut max_err = 0f64;
    for (i, x) in refs.records().into_iter().enumerate() {
        let body = Bytes::from(json!({ "signal": x, "return_probabilities": true }).to_string());
        let (_, _, v) = client.predict("/predict", body).await?;
        let class = v
            .get("predicted_class")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX) as usize;
        let confidence = v
            .get("confidence")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        let want = softmax(&refs.logits[i]);
        let want_conf = f64::from(want[refs.predicted[i]]);
        let err = (confidence - want_conf).abs();
        max_err = max_err.max(err);
        if class == refs.predicted[i] && err <= refs.atol + refs.rtol * want_conf.abs() {
            classes_ok += 1;
        }
        bar.inc(1);
    }

    let mut measure =
        async |route: &str, bodies: &[Bytes], n: u32, signals: usize| -> Result<Series> {
            bar.set_message(format!("{key}: {route} warm-up"));
            for i in 0..args.warmup as usize {
                client
                    .predict(route, bodies[i % bodies.len()].clone())
                    .await?;
                bar.inc(1);
            }
            bar.set_message(format!("{key}: {route} latency"));
            let mut s = Series {
                signals,
                ..Default::default()
            };
            let seen = server.computes_seen();
            for i in 0..n as usize {
                let (e2e, model, _) = client
                    .predict(route, bodies[i % bodies.len()].clone())
                    .await?;
                s.e2e_ms.push(e2e);
                s.model_ms.push(model);
                bar.inc(1);
            }
            s.e2e_ms.sort_by(f64::total_cmp);
            s.model_ms.sort_by(f64::total_cmp);
            if key == "wasi-nn" {
                s.host_compute_ms = server.computes_since(seen, n as usize).await;
            }
            bar.set_message(format!("{key}: {route} throughput ({concurrency} clients)"));
            s.throughput_rps = throughput(server.addr, route, bodies, n, concurrency, bar).await?;
            Ok(s)
        };
    let single = measure("/predict", single_bodies, args.requests, 1).await?;
    let batch = measure(
        "/predict/batch",
        batch_bodies,
        args.batch_requests,
        args.batch as usize,
    )
    .await?;
    Ok(PathResult {
        key,
        label,
        backend,
        single,
        batch,
        classes_ok,
        classes_total: refs.count,
        max_confidence_err: max_err,
        correct: classes_ok == refs.count,
    })
}

/// `n` requests from `concurrency` clients; requests per second.
pub(super) async fn throughput(
    addr: SocketAddr,
    route: &str,
    bodies: &[Bytes],
    n: u32,
    concurrency: u32,
    bar: &ProgressBar,
) -> Result<f64> {
    let left = Arc::new(AtomicU32::new(n));
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        clients.push(Client::connect(addr).await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, mut client) in clients.into_iter().enumerate() {
        let left = left.clone();
        let bodies = bodies.to_vec();
        let route = route.to_string();
        let bar = bar.clone();
        tasks.spawn(async move {
            let mut i = c;
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
                .is_ok()
            {
                client
                    .predict(&route, bodies[i % bodies.len()].clone())
                    .await?;
                i += 1;
                bar.inc(1);
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(f64::from(n) / started.elapsed().as_secs_f64())
}
