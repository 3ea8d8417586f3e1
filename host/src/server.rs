//! The HTTP server: accept loop, admission limits, per-request deadline, graceful shutdown.
//!
//! Each request goes through the same short pipeline, cheapest checks first so that a request
//! that will be refused costs no instance:
//!
//! 1. **request id** — the client's `X-Request-Id` (if sane) or a generated one; returned in the
//!    response and attached to every log line of the request, guest output included;
//! 2. **host routes** — `GET /metrics` is answered here ([`crate::metrics`]);
//! 3. **route** — the manifest's `[[trigger.http]] route`; anything else is 404 without touching the
//!    guest;
//! 4. **API key** — when the component has keys configured (its `PFD_API_KEY`), a protected route
//!    without a valid key is 401 before the body is read ([`pfd_core::auth`], the same check the
//!    component makes again inside);
//! 5. **rate limit** — the client's token bucket ([`crate::ratelimit`]), off by default; an empty
//!    bucket is 429 with `Retry-After`;
//! 6. **body** — a `Content-Length` over the limit is 413 before anything is read; otherwise the
//!    host receives the whole body before any instance is taken ([`crate::body`]): over the limit
//!    413, broken framing 400, not complete within `--body-timeout-ms` 408, in-flight body budget
//!    exhausted 503;
//! 7. **admission** — a semaphore with one permit per instance slot (= `--max-concurrency`); a
//!    request waits for a permit at most `--queue-timeout-ms`, then gets 503 with `Retry-After`;
//! 8. **the guest** — a fresh instance in a fresh store, run on its own task, raced against the
//!    request deadline. The deadline is enforced twice: inside the guest by epoch interruption (a
//!    busy guest traps) and around it by a timer (a guest waiting on I/O is dropped). Either way
//!    the client gets 504; a trap of any other kind gets 500, and the server carries on — one
//!    instance's failure cannot affect another's memory.
//!
//! Errors produced by the host come from the component's own error constructor
//! ([`pfd_core::router::error_for`]): the LSTM_PFD shape (`{"error", "detail", "timestamp"}`) on
//! its routes, Triton's `{"error"}` on `/v2`, so each API's clients need one error decoder.
//!
//! Every response is counted in the metrics by route template and status, and the component's
//! inference record ([`pfd_core::telemetry`]) is taken off the response and recorded.
//!
//! **Shutdown** (SIGTERM/SIGINT), so that no request is lost on a rolling update: first the
//! drain delay ([`ServerConfig::drain_delay`]) — readiness routes answer 503 at once, everything
//! else is still served, each answer with `Connection: close`; then stop accepting, ask every
//! connection to finish its current request and close (no new keep-alive requests); wait up to
//! the grace period for connections and for every guest task (by reacquiring all instance
//! permits); then return so `main` exits 0.
//!
//! `model_loaded{model}` is kept by asking the component itself: at start and every
//! [`ServerConfig::model_probe_interval`], an internal `GET /v2/models/{name}/ready` per model
//! folder — which also checks that the model's files are still there and intact.

use crate::body::BodyError;
use crate::manifest::Route;
use crate::metrics::{self, Metrics};
use crate::ratelimit::{Decision, RateLimiter};
use crate::runtime::Runtime;
use anyhow::Result;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn, Instrument};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// Response body type: the guest's streaming body, or a host-made JSON error.
pub type Body = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// Limits and timeouts of the server (from `pfd-host serve` flags).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted.
    pub max_body_bytes: u64,
    /// Largest response body a guest may send (see [`cap_response`]).
    pub max_response_bytes: u64,
    /// Most open connections per client address; 0 = no cap (see [`ConnectionsPerClient`]).
    pub max_connections_per_client: u32,
    /// Deadline per request, from arrival.
    pub request_timeout: Duration,
    /// Longest time to receive a body, from arrival (408 after it; see [`crate::body`]).
    pub body_timeout: Duration,
    /// Most body bytes held at once by requests not yet answered.
    pub max_inflight_body_bytes: u64,
    /// Longest wait for a free instance slot.
    pub queue_timeout: Duration,
    /// Instance slots (must equal the runtime's pool size).
    pub max_concurrency: u32,
    /// After SIGTERM, how long the server keeps serving (readiness 503, `Connection: close` on
    /// every answer) before it stops accepting connections. Why: Kubernetes removes a
    /// terminating pod from its Service endpoints asynchronously — kube-proxies and ingresses
    /// keep sending to it for a few seconds — so a server that stops at once refuses or drops
    /// that traffic on every rolling update.
    pub drain_delay: Duration,
    /// Grace period for in-flight requests at shutdown, after the drain delay.
    pub shutdown_grace: Duration,
    /// The component's API keys (its `PFD_API_KEY`), checked before bodies are read; empty: none.
    pub api_keys: Vec<String>,
    /// Per-client rate limiting; `None`: off.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Answer `GET /metrics`.
    pub serve_metrics: bool,
    /// The model folders whose readiness `model_loaded{model}` reports.
    pub models: Vec<String>,
    /// How often `model_loaded` is refreshed (see the flag's docs).
    pub model_probe_interval: Duration,
}

/// Where Prometheus scrapes.
pub const METRICS_PATH: &str = "/metrics";

/// Why 30 s: a client must send its request head within this time (slow-loris protection); idle
/// keep-alive connections are closed after it too, which clients handle by reconnecting.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The most bytes a request head (request line and headers) may take; more is a 431.
/// Why: without it hyper's only bound is its read buffer (~400 kB), checked after each read — a
/// large head that arrives in one read can slip past it (seen on CI: a 500 kB header answered
/// 200). hyper checks this one on the parsed head, so the bound holds however the bytes arrive.
/// 128 KiB leaves room for hyper's own 64 KiB URI limit (414) to apply first; real heads are a
/// few hundred bytes.
const MAX_HEAD_BYTES: usize = 128 * 1024;

/// Why 1 s: a client that has just connected sends its request head within a round trip or
/// two; a connection silent for a second after the drain is an idle keep-alive, safe to close.
const CONNECTION_SETTLE: Duration = Duration::from_secs(1);

/// Why 1 024: the kernel's accept queue only needs to absorb bursts between two `accept` calls;
/// admission control happens per request, after accept.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds the listening socket (separately from [`serve`], so a caller can bind port 0 and learn
/// the port, and so bind errors surface before the component is compiled).
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // Why: a restarted server can rebind while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    Ok(socket.listen(LISTEN_BACKLOG)?)
}

struct Shared {
    runtime: Arc<Runtime>,
    route: Route,
    cfg: ServerConfig,
    slots: Arc<Semaphore>,
    ids: RequestIds,
    local_addr: SocketAddr,
    metrics: Arc<Metrics>,
    /// Set when shutdown was requested (see [`ServerConfig::drain_delay`]).
    draining: AtomicBool,
    /// Requests admitted to a slot so far (for [`trim_when_idle`]).
    admitted: AtomicU64,
    body_budget: crate::body::BodyBudget,
}

/// Serves until `shutdown` resolves, then drains (see the module docs).
pub async fn serve(
    listener: TcpListener,
    runtime: Arc<Runtime>,
    route: Route,
    cfg: ServerConfig,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let local_addr = listener.local_addr()?;
    if let Some(limiter) = &cfg.rate_limiter {
        limiter.spawn_janitor();
    }
    let body_budget =
        crate::body::BodyBudget::new(cfg.max_inflight_body_bytes, metrics.body_bytes());
    let shared = Arc::new(Shared {
        runtime,
        route,
        slots: Arc::new(Semaphore::new(cfg.max_concurrency as usize)),
        cfg,
        ids: RequestIds::new(),
        local_addr,
        body_budget,
        metrics,
        draining: AtomicBool::new(false),
        admitted: AtomicU64::new(0),
    });
    let prober = tokio::spawn(probe_models_periodically(
        Arc::downgrade(&shared),
        shared.cfg.model_probe_interval,
    ));
    let trimmer = tokio::spawn(trim_when_idle(Arc::downgrade(&shared)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEAD_BYTES)
        .keep_alive(true)
        // Why: a client that sends its whole request and then shuts down its write side
        // (HTTP/1.0 tools, `nc -N`, some embedded clients) still waits for the answer; by
        // default hyper takes the EOF as the end of the connection and never answers.
        .half_close(true);

    let per_client = Arc::new(ConnectionsPerClient::new(
        shared.cfg.max_connections_per_client,
    ));
    let serve_connection = |stream: tokio::net::TcpStream, client: SocketAddr| {
        // Why: responses are written in few, small chunks; Nagle's algorithm would hold the last
        // one back for up to 40 ms waiting for an ACK.
        let _ = stream.set_nodelay(true);
        let Some(open) = per_client.admit(client.ip()) else {
            shared.metrics.connection_refused();
            tracing::debug!(client = %client, "connection refused: --max-connections-per-client reached");
            tokio::spawn(refuse_connection(stream));
            return;
        };
        let shared = shared.clone();
        let service = hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(shared, req, client).await) }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _open = open;
            if let Err(e) = conn.await {
                tracing::debug!(client = %client, error = %e, "connection ended with an error");
            }
        });
    };

    tokio::pin!(shutdown);
    // Armed by the shutdown request: the end of the drain delay, when accepting stops.
    let drain_end = tokio::time::sleep(Duration::MAX);
    tokio::pin!(drain_end);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown, if !shared.draining.load(Ordering::Relaxed) => {
                shared.draining.store(true, Ordering::Relaxed);
                info!(
                    drain_ms = shared.cfg.drain_delay.as_millis() as u64,
                    "shutdown requested: readiness answers 503; still serving for the drain delay"
                );
                drain_end.as_mut().reset((Instant::now() + shared.cfg.drain_delay).into());
            }
            _ = &mut drain_end => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => serve_connection(stream, client),
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    // The connections already in the kernel's accept queue are still taken (up to one backlog's
    // worth): closing the listener would reset them, and their clients may have sent a request.
    for _ in 0..LISTEN_BACKLOG {
        tokio::select! {
            biased;
            Ok((stream, client)) = listener.accept() => serve_connection(stream, client),
            _ = std::future::ready(()) => break,
        }
    }

    drop(listener);
    prober.abort();
    trimmer.abort();
    let deadline = Instant::now() + shared.cfg.shutdown_grace;
    // The connections accepted last may not have delivered their request head yet, and hyper's
    // graceful shutdown takes such a connection as idle and closes it unanswered. While draining
    // every answer closes its connection, so these end on their own once served: give them
    // CONNECTION_SETTLE before the connections still open (idle keep-alives) are asked to close.
    let settle = (Instant::now() + CONNECTION_SETTLE).min(deadline);
    while graceful.count() > 0 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    info!(
        grace_ms = shared.cfg.shutdown_grace.as_millis() as u64,
        "shutting down: no new connections; finishing in-flight requests"
    );
    if tokio::time::timeout_at(deadline.into(), graceful.shutdown())
        .await
        .is_err()
    {
        warn!("grace period over with connections still open; closing them");
    }
    // Guest tasks can outlive their connection (a client that hung up); wait for them too.
    let all = shared.cfg.max_concurrency;
    match tokio::time::timeout_at(deadline.into(), shared.slots.acquire_many(all)).await {
        Ok(_) => info!("all requests finished"),
        Err(_) => warn!(
            in_flight = all as usize - shared.slots.available_permits(),
            "grace period over with guest instances still running; abandoning them"
        ),
    }
    Ok(())
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>, client: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let _in_flight = shared.metrics.in_flight();
    let request_id = shared.ids.for_request(req.headers());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = dispatch(&shared, req, client, &request_id, started)
        .instrument(span.clone())
        .await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    if shared.draining.load(Ordering::Relaxed) {
        // While draining every answer ends its connection, so keep-alive clients reconnect (to
        // another pod, once endpoints are updated) instead of being cut off when this one stops.
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = response.status().as_u16();
    shared
        .metrics
        .observe_request(route_label(&shared, &path), status, started.elapsed());
    // Microsecond resolution, as a number (so JSON logs can be aggregated without parsing).
    let duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    span.in_scope(|| {
        info!(target: "pfd_host::access", %request_id, %method, %path, status, duration_ms, %client, "request");
    });
    response
}

/// The `route` label of a request path (see [`crate::metrics`]).
fn route_label(shared: &Shared, path: &str) -> &'static str {
    if shared.cfg.serve_metrics && path == METRICS_PATH {
        return METRICS_PATH;
    }
    match shared.route.path_info(path) {
        Some(info) => pfd_core::router::route_label(info),
        None => pfd_core::router::UNMATCHED,
    }
}

async fn dispatch(
    shared: &Shared,
    req: Request<Incoming>,
    client: SocketAddr,
    request_id: &str,
    started: Instant,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    if shared.cfg.serve_metrics && path == METRICS_PATH {
        return serve_metrics(&shared.metrics, req.method());
    }
    let Some(path_info) = shared.route.path_info(&path).map(str::to_string) else {
        return core_response(pfd_core::errors::not_found());
    };
    if shared.draining.load(Ordering::Relaxed) && pfd_core::router::is_readiness(&path_info) {
        let message = "Shutting down: not accepting new traffic";
        return core_response(pfd_core::router::error_for(&path_info, 503, message));
    }

    // The API key, before any byte of the body is read.
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let api_key = pfd_core::auth::presented(header)
        .and_then(|key| pfd_core::auth::matching_key(&shared.cfg.api_keys, key));
    if !shared.cfg.api_keys.is_empty()
        && api_key.is_none()
        && pfd_core::router::requires_api_key(req.method().as_str(), &path_info)
    {
        return refuse(
            shared,
            req,
            &path_info,
            401,
            pfd_core::router::UNAUTHORIZED,
            &[],
        );
    }

    let mut limit_headers = Vec::new();
    if let Some(limiter) = shared
        .cfg
        .rate_limiter
        .as_ref()
        .filter(|_| !pfd_core::router::is_probe(&path_info))
    {
        let key = limiter.client_key(api_key, client.ip(), header("x-forwarded-for"));
        let decision = limiter.check(&key);
        limit_headers = decision.headers();
        if let Decision::Limited { .. } = decision {
            let message = "Rate limit exceeded: too many requests from this client, retry later";
            return refuse(shared, req, &path_info, 429, message, &limit_headers);
        }
    }

    let mut response = forward(shared, req, client, &path_info, request_id, started).await;
    for (name, value) in limit_headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

/// A refusal made before the body is read: the error, with `headers`; the body is drained in the
/// background (see [`drain_in_background`]).
fn refuse(
    shared: &Shared,
    req: Request<Incoming>,
    path_info: &str,
    status: u16,
    message: &str,
    headers: &[(&'static str, String)],
) -> Response<Body> {
    drain_in_background(
        req.into_body(),
        shared.cfg.max_body_bytes,
        shared.cfg.request_timeout,
    );
    let mut response = core_response(pfd_core::router::error_for(path_info, status, message));
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, v);
        }
    }
    response
}

/// `GET /metrics`.
fn serve_metrics(metrics: &Metrics, method: &http::Method) -> Response<Body> {
    if method != http::Method::GET && method != http::Method::HEAD {
        return core_response(pfd_core::errors::method_not_allowed());
    }
    let mut r = Response::new(full(Bytes::from(metrics.encode())));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    r
}

/// Body size, admission, the guest.
async fn forward(
    shared: &Shared,
    req: Request<Incoming>,
    client: SocketAddr,
    path_info: &str,
    request_id: &str,
    started: Instant,
) -> Response<Body> {
    let deadline = started + shared.cfg.request_timeout;
    let error = |status: u16, message: &str| {
        core_response(pfd_core::router::error_for(path_info, status, message))
    };
    // Overload: 503 with `Retry-After`, so clients and load balancers retry instead of failing.
    let busy = |message: &str| {
        let mut r = error(503, message);
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        r
    };

    let limit = shared.cfg.max_body_bytes;
    if let Some(len) = content_length(req.headers()) {
        if len > limit {
            drain_in_background(
                req.into_body(),
                len.min(limit.saturating_mul(4)),
                shared.cfg.request_timeout,
            );
            return error(413, &too_large(limit));
        }
    }

    // The whole body first, then an instance (see [`crate::body`]).
    let (parts, incoming) = req.into_parts();
    let body_deadline = deadline.min(started + shared.cfg.body_timeout);
    let body = match crate::body::receive(incoming, limit, &shared.body_budget, body_deadline).await
    {
        Ok(body) => body,
        Err(BodyError::TooLarge(rest)) => {
            drain_in_background(rest, limit.saturating_mul(4), shared.cfg.request_timeout);
            return error(413, &too_large(limit));
        }
        Err(BodyError::Malformed(why)) => {
            tracing::debug!(error = %why, "malformed request body");
            return error(
                400,
                "Malformed request body: invalid chunked encoding or a body shorter than its Content-Length",
            );
        }
        Err(BodyError::TimedOut) => {
            let mut r = error(
                408,
                &format!(
                    "Request body not received within {} ms",
                    body_deadline.saturating_duration_since(started).as_millis()
                ),
            );
            r.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        Err(BodyError::NoBudget) => {
            return busy("Server busy: too many request bodies in flight, retry later")
        }
    };
    let mut req = Request::from_parts(parts, body);

    shared.admitted.fetch_add(1, Ordering::Relaxed);
    let queued = shared.metrics.queued();
    let permit = match tokio::time::timeout(
        shared
            .cfg
            .queue_timeout
            .min(deadline.saturating_duration_since(Instant::now())),
        shared.slots.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(p)) => p,
        Ok(Err(_closed)) => return error(503, "Server is shutting down"),
        Err(_) => return busy("Server busy: too many requests in flight, retry later"),
    };
    drop(queued);

    add_spin_headers(
        &mut req,
        &shared.route,
        path_info,
        client,
        shared.local_addr,
    );
    // Ask the component for its inference record (a client-sent copy was just dropped with the
    // other internal headers).
    req.headers_mut().insert(
        pfd_core::telemetry::REQUEST_HEADER,
        HeaderValue::from_static("1"),
    );

    let outcome = run_guest(shared, req, request_id, deadline, permit).await;
    match outcome {
        GuestOutcome::Response(mut r) => {
            take_inference_record(&shared.metrics, &mut r);
            match cap_response(r, shared.cfg.max_response_bytes, request_id) {
                Ok(r) => r,
                Err(announced) => {
                    warn!(
                        announced,
                        limit = shared.cfg.max_response_bytes,
                        "guest response announces more than --max-response-bytes"
                    );
                    error(500, "Internal server error")
                }
            }
        }
        GuestOutcome::TimedOut => error(504, "Request timed out"),
        GuestOutcome::Failed(msg) => {
            warn!(error = %msg, "guest failed");
            error(500, "Internal server error")
        }
    }
}

/// Open connections per client address, for `--max-connections-per-client`: a slot is taken at
/// accept and given back when the connection ends.
struct ConnectionsPerClient {
    limit: u32,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>,
}

struct ConnectionSlot {
    owner: Arc<ConnectionsPerClient>,
    ip: std::net::IpAddr,
}

impl ConnectionsPerClient {
    fn new(limit: u32) -> Self {
        ConnectionsPerClient {
            limit,
            open: Default::default(),
        }
    }

    /// A slot for one more connection from `ip`, or `None` at the cap. With no cap, `Some`
    /// without counting.
    fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<Option<ConnectionSlot>> {
        if self.limit == 0 {
            return Some(None);
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Some(ConnectionSlot {
            owner: self.clone(),
            ip,
        }))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Answers a connection over the per-client cap with a 503 (LSTM_PFD's error shape: no route is
/// known yet) and closes it. The client's request is read (up to 64 KiB, for at most a second)
/// after the answer: closing a socket with unread data sends a reset, which would destroy the
/// 503 before the client reads it.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = pfd_core::errors::http_error(
        503,
        "Too many connections from this client address, retry later",
    );
    let mut raw = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        r.body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&r.body);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&raw).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = 64 << 10;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left -= n.min(left),
            }
        }
        std::io::Result::Ok(())
    })
    .await;
}

/// Holds a guest's response to `limit` body bytes: one that announces more is refused
/// (`Err(announced)`, before its head is sent); a streamed one that grows past the limit ends in
/// a body error, which makes hyper abort the connection — the client sees an incomplete message,
/// and the guest's next write fails, so it stops (or meets its deadline).
fn cap_response(
    response: Response<Body>,
    limit: u64,
    request_id: &str,
) -> Result<Response<Body>, u64> {
    if let Some(announced) = content_length(response.headers()).filter(|&n| n > limit) {
        return Err(announced);
    }
    let request_id = request_id.to_string();
    Ok(response.map(|body| {
        http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .map_err(move |e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    warn!(request_id = %request_id, limit, "guest response exceeds --max-response-bytes; connection aborted");
                }
                wasmtime_wasi_http::Error::InternalError(Some(e.to_string()))
            })
            .boxed_unsync()
    }))
}

/// Removes the component's inference record from `response` and records it.
fn take_inference_record<B>(metrics: &Metrics, response: &mut Response<B>) {
    let Some(value) = response
        .headers_mut()
        .remove(pfd_core::telemetry::RESPONSE_HEADER)
    else {
        return;
    };
    match value.to_str().map_err(|e| e.to_string()).and_then(|v| {
        pfd_core::telemetry::InferenceRecord::from_header(v).map_err(|e| e.to_string())
    }) {
        Ok(record) => metrics.record_inference(&record),
        Err(e) => warn!(error = %e, "unreadable inference record from the component"),
    }
}

/// How long the server must have been idle (no request admitted, every slot free) before the
/// allocator's free memory is handed back. Why 5 s: long enough that steady traffic, even a
/// request every few seconds, never pays for a trim; short enough that memory freed by a burst
/// is back with the OS well within the 10 s an operator (or the RSS target) looks at.
const IDLE_TRIM_AFTER: Duration = Duration::from_secs(5);

/// Returns memory freed after a burst of requests to the OS, once the server is idle.
///
/// Why: glibc keeps freed memory in its arenas at their high-water mark, so after 64 concurrent
/// `/predict` clients pfd-host stayed at its peak RSS (235 MiB) indefinitely. One
/// [`crate::allocator::release_free_heap`] per idle period (not per request: a trim costs
/// milliseconds and takes the allocator's locks) brings it back down; see the README's
/// performance section for the measured figures.
async fn trim_when_idle(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(IDLE_TRIM_AFTER);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut seen, mut trimmed) = (0u64, 0u64);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            break;
        };
        let admitted = shared.admitted.load(Ordering::Relaxed);
        let all_free = shared.slots.available_permits() == shared.cfg.max_concurrency as usize;
        // Idle for a whole period, and something ran since the last trim.
        if admitted == seen && admitted != trimmed && all_free {
            trimmed = admitted;
            drop(shared);
            let _ = tokio::task::spawn_blocking(crate::allocator::release_free_heap).await;
        }
        seen = admitted;
    }
}

/// Keeps `model_loaded{model}` current: asks the component whether each model is ready, now and
/// every [`ServerConfig::model_probe_interval`], until the server is gone.
async fn probe_models_periodically(shared: std::sync::Weak<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            break;
        };
        for model in &shared.cfg.models {
            let ready = probe_model(&shared, model).await;
            shared.metrics.set_model_loaded(model, ready);
        }
    }
}

/// `GET /v2/models/{model}/ready` through the component, as an internal request (a real instance
/// slot, the first API key): true on 200.
async fn probe_model(shared: &Shared, model: &str) -> bool {
    let path_info = format!("/v2/models/{model}/ready");
    let mut builder = Request::get(format!("{}{path_info}", shared.route.base()));
    if let Some(key) = shared.cfg.api_keys.first() {
        builder = builder.header("x-api-key", key.as_str());
    }
    let Ok(mut req) = builder
        .body(http_body_util::Empty::<Bytes>::new().map_err(|never: Infallible| match never {}))
    else {
        return false;
    };
    let deadline = Instant::now() + shared.cfg.request_timeout;
    let Ok(Ok(permit)) = tokio::time::timeout(
        shared.cfg.queue_timeout,
        shared.slots.clone().acquire_owned(),
    )
    .await
    else {
        return false;
    };
    add_spin_headers(
        &mut req,
        &shared.route,
        &path_info,
        shared.local_addr,
        shared.local_addr,
    );
    let id = format!("probe-{model}");
    let span = tracing::debug_span!("model probe", model);
    let outcome = run_guest(shared, req, &id, deadline, permit)
        .instrument(span)
        .await;
    match outcome {
        GuestOutcome::Response(r) => {
            // The answer is read to its end, as a client would: dropping the body while the
            // guest still writes it closes the stream under the guest, which then logs
            // "Could not set ResponseOutparam: StreamError::Closed" and ends with an error.
            let status = r.status();
            let body = tokio::time::timeout_at(deadline.into(), r.into_body().collect()).await;
            match body {
                Ok(Ok(_)) if status == StatusCode::OK => true,
                Ok(Ok(body)) => {
                    let body = body.to_bytes();
                    warn!(model, status = status.as_u16(), body = %String::from_utf8_lossy(&body), "model is not ready");
                    false
                }
                Ok(Err(e)) => {
                    warn!(model, error = %e, "model readiness probe: unreadable answer");
                    false
                }
                Err(_) => {
                    warn!(model, "model readiness probe timed out reading the answer");
                    false
                }
            }
        }
        GuestOutcome::TimedOut => {
            warn!(model, "model readiness probe timed out");
            false
        }
        GuestOutcome::Failed(e) => {
            warn!(model, error = %e, "model readiness probe failed");
            false
        }
    }
}

enum GuestOutcome {
    Response(Response<Body>),
    TimedOut,
    Failed(String),
}

async fn run_guest<B>(
    shared: &Shared,
    req: Request<B>,
    request_id: &str,
    deadline: Instant,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> GuestOutcome
where
    B: hyper::body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static,
{
    let runtime = shared.runtime.clone();
    let mut store = match runtime.new_store(request_id, deadline) {
        Ok(s) => s,
        Err(e) => return GuestOutcome::Failed(format!("{e:#}")),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let resources = (|| -> wasmtime::Result<_> {
        let mut http = wasmtime_wasi_http::WasiHttpView::http(store.data_mut());
        let req = http.new_incoming_request(Scheme::Http, req)?;
        let out = http.new_response_outparam(tx)?;
        Ok((req, out))
    })();
    let (guest_req, out) = match resources {
        Ok(r) => r,
        Err(e) => return GuestOutcome::Failed(format!("{e:#}")),
    };

    // The guest runs on its own task: after it hands over the response head it keeps running to
    // stream the body, and the instance permit is held until it is completely done.
    let pre = runtime.pre().clone();
    let task = tokio::spawn(async move {
        let _runtime = runtime;
        let mut slot = Slot {
            store,
            _permit: permit,
        };
        let run = async {
            let proxy = pre.instantiate_async(&mut slot.store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut slot.store, guest_req, out)
                .await
        };
        match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(result) => result.map_err(GuestError::classify),
            Err(_) => Err(GuestError::Deadline),
        }
    });
    let abort = task.abort_handle();

    match tokio::time::timeout_at(deadline.into(), rx).await {
        Ok(Ok(Ok(response))) => GuestOutcome::Response(response),
        Ok(Ok(Err(code))) => {
            GuestOutcome::Failed(format!("guest answered with error code {code:?}"))
        }
        // The guest ended without setting a response: a trap, or it returned without answering.
        Ok(Err(_)) => match task.await {
            Ok(Err(GuestError::Deadline)) => GuestOutcome::TimedOut,
            Ok(Err(GuestError::Trap(msg))) => GuestOutcome::Failed(msg),
            Ok(Ok(())) => GuestOutcome::Failed("guest returned without setting a response".into()),
            Err(join) => GuestOutcome::Failed(format!("guest task failed: {join}")),
        },
        Err(_) => {
            abort.abort();
            GuestOutcome::TimedOut
        }
    }
}

/// A request's store and its admission permit, dropped in that order (fields drop in
/// declaration order) — whether the guest finishes or its task is aborted.
///
/// Why the order matters: the store owns the instance's pooling-allocator slot, freed when the
/// store drops. Dropping the permit first let the next admitted request instantiate while the
/// old slot was still taken; with every slot busy the allocator refused it ("maximum concurrent
/// limit … reached", a 500 to the client — 3 of 180 requests with 2 slots and 12 clients).
struct Slot {
    store: wasmtime::Store<crate::runtime::HostState>,
    /// Held, never read: released when the slot drops.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

enum GuestError {
    Deadline,
    Trap(String),
}

impl GuestError {
    fn classify(e: wasmtime::Error) -> Self {
        if matches!(
            e.downcast_ref::<wasmtime::Trap>(),
            Some(wasmtime::Trap::Interrupt)
        ) {
            GuestError::Deadline
        } else {
            // `{:#}`: the error chain, including wasmtime's wasm backtrace, without the host's
            // own Rust backtrace (noise for a guest failure).
            GuestError::Trap(format!("{e:#}"))
        }
    }
}

/// Reads and discards a refused request's body in the background (bounded by `max_bytes` and
/// `timeout`). Why: a client that sends its whole body before reading (most HTTP libraries without
/// `Expect: 100-continue`) would otherwise hit a connection reset — the kernel answers unread data
/// on a closed socket with RST — and never see the 413; draining also keeps the connection usable.
fn drain_in_background(body: Incoming, max_bytes: u64, timeout: Duration) {
    tokio::spawn(async move {
        let drain = async {
            let mut body = body;
            let mut seen = 0u64;
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    seen += data.len() as u64;
                    if seen > max_bytes {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(timeout, drain).await;
    });
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Adds the request headers Spin's HTTP trigger gives a component (`spin-full-url`,
/// `spin-path-info`, …; spin-sdk's router uses `spin-path-info`), so the component sees the same
/// request under pfd-host as under `spin up`. Client-sent `spin-*` headers are dropped first: they
/// would let a client spoof, say, its address.
fn add_spin_headers<B>(
    req: &mut Request<B>,
    route: &Route,
    path_info: &str,
    client: SocketAddr,
    local: SocketAddr,
) {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| local.to_string());
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let headers = req.headers_mut();
    let spoofed: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for k in spoofed {
        headers.remove(k);
    }
    if !headers.contains_key(http::header::HOST) {
        if let Ok(v) = HeaderValue::from_str(&host) {
            headers.insert(http::header::HOST, v);
        }
    }
    let route_str = route.as_manifest_str();
    let base = if route.base().is_empty() {
        "/"
    } else {
        route.base()
    };
    for (name, value) in [
        ("spin-full-url", format!("http://{host}{path_and_query}")),
        ("spin-path-info", path_info.to_string()),
        ("spin-matched-route", route_str.clone()),
        ("spin-raw-component-route", route_str),
        ("spin-component-route", base.to_string()),
        ("spin-base-path", "/".to_string()),
        ("spin-client-addr", client.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

fn too_large(limit: u64) -> String {
    format!("Request body too large (limit {limit} bytes)")
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A response made by `pfd-core` (the component's own constructors) as a hyper response.
fn core_response(r: pfd_core::http::Response) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(r.body)));
    *response.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

/// Request ids: the client's `X-Request-Id` when it is short and printable (so ids propagate
/// across services), else `<process prefix>-<counter>` (unique per process, cheap, sortable).
struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        RequestIds {
            prefix: format!("{:08x}", h.finish() as u32),
            next: AtomicU64::new(1),
        }
    }

    fn for_request(&self, headers: &http::HeaderMap) -> String {
        if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
            if is_acceptable_id(id) {
                return id.to_string();
            }
        }
        format!(
            "{}-{:06}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

fn is_acceptable_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_use_the_shape_of_the_route_s_api() {
        let r = core_response(pfd_core::router::error_for(
            "/predict",
            504,
            "Request timed out",
        ));
        assert_eq!(r.status(), 504);
        assert_eq!(r.headers()[http::header::CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_slice(&futures_body(r)).unwrap();
        assert_eq!(v["error"], "Request timed out");
        assert_eq!(v["detail"], "504: Request timed out");
        let ts = v["timestamp"].as_str().unwrap();
        assert!(
            ts.ends_with('Z') && ts.len() == "2024-01-01T00:00:00.000000Z".len(),
            "{ts}"
        );
        let r = core_response(pfd_core::router::error_for(
            "/v2/models/m/infer",
            429,
            "slow",
        ));
        let v: serde_json::Value = serde_json::from_slice(&futures_body(r)).unwrap();
        assert_eq!(v, serde_json::json!({"error": "slow"}));
    }

    fn futures_body(r: Response<Body>) -> Bytes {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { r.into_body().collect().await.ok().unwrap().to_bytes() })
    }

    #[test]
    fn request_ids() {
        let ids = RequestIds::new();
        let mut h = http::HeaderMap::new();
        let a = ids.for_request(&h);
        let b = ids.for_request(&h);
        assert_ne!(a, b);
        h.insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(ids.for_request(&h), "abc-123");
        h.insert("x-request-id", HeaderValue::from_static("has space"));
        assert_ne!(ids.for_request(&h), "has space");
        let long = "x".repeat(200);
        h.insert("x-request-id", HeaderValue::from_str(&long).unwrap());
        assert_ne!(ids.for_request(&h), long);
    }

    #[test]
    fn spin_headers_replace_spoofed_ones() {
        let mut req = Request::builder()
            .uri("/predict?x=1")
            .header("host", "example:3000")
            .header("spin-client-addr", "6.6.6.6:1")
            .body(())
            .unwrap();
        let route = Route::parse("/...").unwrap();
        add_spin_headers(
            &mut req,
            &route,
            "/predict",
            "10.0.0.1:5555".parse().unwrap(),
            "127.0.0.1:3000".parse().unwrap(),
        );
        let h = req.headers();
        assert_eq!(h["spin-client-addr"], "10.0.0.1:5555");
        assert_eq!(h["spin-full-url"], "http://example:3000/predict?x=1");
        assert_eq!(h["spin-path-info"], "/predict");
        assert_eq!(h["spin-matched-route"], "/...");
        assert_eq!(h["spin-component-route"], "/");
    }
}
