//! Request bodies are received completely, by the host, before an instance slot is taken.
//!
//! Why: the guest reads its body through `wasi:http`, so a body read inside the guest holds an
//! instance slot — and the instance's memory — for as long as the client takes to send it: 140
//! connections trickling 1 MB bodies held all 128 slots, and good requests got 503 after the
//! queue timeout. Received first, under `--body-timeout-ms` (408 when it runs out), a slow body
//! costs only its connection and the bytes it has sent; slots go to complete requests only.
//!
//! The bytes held by bodies being received or waiting for a slot are bounded
//! (`--max-inflight-body-bytes`, gauge `body_bytes_in_flight`): each chunk takes its size from a
//! budget as it arrives — an announced `Content-Length` is the client's word and reserves
//! nothing — and the budget comes back when the body is dropped, i.e. when the guest has read it
//! and the request is over. A body that cannot get budget before its timeout is refused with
//! 503. Bodies are held once: up to [`JOIN_FROM`] the received chunks are handed to the guest as
//! they came; a larger body with a `Content-Length` is copied, as it arrives, into [`BLOCK`]-sized
//! anonymous mappings of its own, each unmapped as soon as the guest has read it.
//!
//! Why blocks of their own mappings: ~137 MB of hyper's read-buffer-sized chunks stayed in the
//! heap after a batch (glibc serves them from its arenas, and a request's worth of fragments
//! never coalesces back to the OS), and one buffer of the whole body (a single mapping) is held
//! until the guest has read its last byte, beside the guest's own copy. Blocks go back to the OS
//! one by one while the guest reads (glibc would serve 4 MiB `Vec`s from its heap again once its
//! dynamic mmap threshold has risen, hence explicit mappings). Measured, one full 128-record
//! batch (138 MB) on a fresh pfd-host, two runs each: peak RSS 422–427 MiB and 226–230 MiB 10 s
//! later with chunks; 363–365 MiB (2.8x the body) and 166–168 MiB with one buffer. With blocks,
//! the RSS while the guest reads the body (RSS sampled every 10 ms, from ~89 MiB at rest) tops out
//! at 221–227 MiB instead of 316–352 MiB; the request's peak comes later, while the model runs
//! (the guest then holds the body and its floats), so it moved less (see the README).
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's unit: 1 KiB, so a `u32`-sized semaphore covers terabytes.
const UNIT: u64 = 1024;

/// Bodies announcing at least this many bytes are received into one buffer (see the module
/// docs). Why 4 MiB: above a 1 MB `/predict` record, whose chunks go to the guest uncopied, and
/// far below a batch, where one copy (~30 ms per 137 MB) buys the memory back after the request.
const JOIN_FROM: u64 = 4 << 20;

/// The size of the mappings a large body is received into. Why 4 MiB: a mapping and its unmap
/// are a few µs, ~35 per 138 MB batch; at most one block is partly filled, and a block is
/// returned within the guest's next few 64 KiB reads once it has been read.
const BLOCK: usize = 4 << 20;

/// A large body being received: filled blocks, and the one being filled.
struct Blocks {
    full: VecDeque<Bytes>,
    filling: Option<(memmap2::MmapMut, usize)>,
    /// Bytes the client announced and has not sent yet: the next block's size when below
    /// [`BLOCK`], so the last block is no larger than the body's end.
    announced_left: u64,
}

impl Blocks {
    fn new(announced: u64) -> Self {
        Blocks {
            full: VecDeque::new(),
            filling: None,
            announced_left: announced,
        }
    }

    /// Copies `data` into the blocks, mapping new ones as needed.
    fn extend(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        self.announced_left = self.announced_left.saturating_sub(data.len() as u64);
        while !data.is_empty() {
            let (block, filled) = match &mut self.filling {
                Some(f) => f,
                None => {
                    let left = usize::try_from(self.announced_left).unwrap_or(usize::MAX);
                    let size = BLOCK.min(data.len().saturating_add(left));
                    // Reserved, not touched: pages become resident only as bytes are copied in,
                    // so a Content-Length that lies costs address space, not memory.
                    let block = memmap2::MmapOptions::new().len(size).map_anon()?;
                    self.filling.insert((block, 0))
                }
            };
            let n = data.len().min(block.len() - *filled);
            block[*filled..*filled + n].copy_from_slice(&data[..n]);
            *filled += n;
            data = &data[n..];
            if *filled == block.len() {
                self.seal();
            }
        }
        Ok(())
    }

    /// Moves the block being filled (if any) to the filled ones, cut to what it holds.
    fn seal(&mut self) {
        if let Some((block, filled)) = self.filling.take() {
            self.full
                .push_back(Bytes::from_owner(block).slice(..filled));
        }
    }
}

/// The in-flight body budget, shared by all connections.
pub struct BodyBudget {
    units: Arc<Semaphore>,
    bytes: Gauge,
}

impl BodyBudget {
    /// A budget of `max_bytes`, reporting the bytes held in `gauge`.
    pub fn new(max_bytes: u64, gauge: Gauge) -> Self {
        let units = (max_bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64) as usize;
        BodyBudget {
            units: Arc::new(Semaphore::new(units)),
            bytes: gauge,
        }
    }
}

/// Why a body was not received.
pub enum BodyError<B> {
    /// Over `limit` bytes; the rest of the body, to drain (so the client sees the 413).
    TooLarge(B),
    /// The framing was broken (a chunk size that is not hex, a body shorter than its
    /// Content-Length) or the connection failed.
    Malformed(String),
    /// Not complete before the deadline.
    TimedOut,
    /// The in-flight budget stayed exhausted until the deadline.
    NoBudget,
}

impl<B> std::fmt::Debug for BodyError<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(_) => f.write_str("TooLarge"),
            BodyError::Malformed(why) => write!(f, "Malformed({why})"),
            BodyError::TimedOut => f.write_str("TimedOut"),
            BodyError::NoBudget => f.write_str("NoBudget"),
        }
    }
}

/// A completely received body: its chunks, and the budget they hold until dropped.
pub struct ReceivedBody {
    chunks: VecDeque<Bytes>,
    len: u64,
    _held: Option<OwnedSemaphorePermit>,
    gauge: Gauge,
}

impl Drop for ReceivedBody {
    fn drop(&mut self) {
        self.gauge.dec_by(self.len as i64);
    }
}

/// Receives all of `body` (at most `limit` bytes) before `deadline`, taking each chunk's size
/// from `budget` as it arrives.
pub async fn receive<B>(
    mut body: B,
    limit: u64,
    budget: &BodyBudget,
    deadline: Instant,
) -> Result<ReceivedBody, BodyError<B>>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let announced = body
        .size_hint()
        .exact()
        .filter(|&n| (JOIN_FROM..=limit).contains(&n));
    // The budget counts what arrives, not what was announced.
    let mut joined = announced.map(Blocks::new);
    let mut received = ReceivedBody {
        chunks: VecDeque::new(),
        len: 0,
        _held: None,
        gauge: budget.bytes.clone(),
    };
    /// Why the loop below stopped early.
    enum Stop {
        Malformed(String),
        NoBudget,
        OverLimit,
    }
    // Whether the loop is waiting for budget (rather than for bytes) when the deadline hits.
    let waiting_for_budget = AtomicBool::new(false);
    let work = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Stop::Malformed(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers: not used by either API
            };
            if data.is_empty() {
                continue;
            }
            let len = data.len() as u64;
            if received.len + len > limit {
                return Err(Stop::OverLimit);
            }
            let units = u32::try_from(len.div_ceil(UNIT)).unwrap_or(u32::MAX);
            waiting_for_budget.store(true, Ordering::Relaxed);
            let permit = budget
                .units
                .clone()
                .acquire_many_owned(units)
                .await
                .map_err(|_| Stop::NoBudget)?;
            waiting_for_budget.store(false, Ordering::Relaxed);
            match &mut received._held {
                Some(held) => held.merge(permit),
                None => received._held = Some(permit),
            }
            received.len += len;
            received.gauge.inc_by(len as i64);
            match &mut joined {
                Some(blocks) => blocks
                    .extend(&data)
                    .map_err(|e| Stop::Malformed(format!("no memory for the body: {e}")))?,
                None => received.chunks.push_back(data),
            }
        }
        if let Some(mut blocks) = joined.take() {
            blocks.seal();
            received.chunks = blocks.full;
        }
        Ok(())
    };
    match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(Ok(())) => Ok(received),
        Ok(Err(Stop::Malformed(why))) => Err(BodyError::Malformed(why)),
        Ok(Err(Stop::NoBudget)) => Err(BodyError::NoBudget),
        Ok(Err(Stop::OverLimit)) => Err(BodyError::TooLarge(body)),
        Err(_) if waiting_for_budget.load(Ordering::Relaxed) => Err(BodyError::NoBudget),
        Err(_) => Err(BodyError::TimedOut),
    }
}

impl Body for ReceivedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        let left: u64 = self.chunks.iter().map(|c| c.len() as u64).sum();
        SizeHint::with_exact(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A client's body: these chunks, then the end — or, with `stall`, nothing more ever.
    struct Client {
        chunks: VecDeque<Bytes>,
        stall: bool,
        /// Announce the total, as a Content-Length does.
        announce: bool,
    }

    impl Client {
        fn sends(sizes: &[usize], stall: bool) -> Self {
            Client {
                chunks: sizes.iter().map(|&n| Bytes::from(vec![b'x'; n])).collect(),
                stall,
                announce: false,
            }
        }
    }

    impl Body for Client {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.chunks.pop_front() {
                Some(c) => Poll::Ready(Some(Ok(Frame::data(c)))),
                None if self.stall => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
        fn size_hint(&self) -> SizeHint {
            match self.announce {
                true => SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum()),
                false => SizeHint::default(),
            }
        }
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn bodies_hold_their_bytes_of_the_budget_until_dropped() {
        let gauge = Gauge::default();
        let budget = BodyBudget::new(8 << 10, gauge.clone());
        let first = receive(
            Client::sends(&[3000, 3000], false),
            1 << 20,
            &budget,
            soon(500),
        )
        .await
        .expect("fits");
        assert_eq!(gauge.get(), 6000);
        // 6000 bytes hold 6 KiB (3 + 3 units) of 8: a 4 KiB body waits, then is refused.
        let second = receive(Client::sends(&[4096], false), 1 << 20, &budget, soon(200)).await;
        assert!(matches!(second, Err(BodyError::NoBudget)));
        assert_eq!(gauge.get(), 6000, "a refused body holds nothing");
        drop(first);
        assert_eq!(gauge.get(), 0);
        let third = receive(Client::sends(&[4096], false), 1 << 20, &budget, soon(200)).await;
        let third = third.expect("room again");
        assert_eq!(third.chunks.len(), 1);
    }

    #[tokio::test]
    async fn limit_timeout_and_chunks_are_kept() {
        let budget = BodyBudget::new(1 << 20, Gauge::default());
        let over = receive(Client::sends(&[600, 600], false), 1000, &budget, soon(500)).await;
        assert!(matches!(over, Err(BodyError::TooLarge(_))));
        let stalled = receive(Client::sends(&[10], true), 1000, &budget, soon(100)).await;
        assert!(matches!(stalled, Err(BodyError::TimedOut)));
        let mut whole = receive(Client::sends(&[1, 2, 3], false), 1000, &budget, soon(500))
            .await
            .unwrap();
        assert_eq!(whole.size_hint().exact(), Some(6));
        let mut lens = Vec::new();
        while let Some(Ok(frame)) = whole.frame().await {
            lens.push(frame.into_data().unwrap().len());
        }
        assert_eq!(lens, [1, 2, 3], "handed on as received, not concatenated");
    }

    #[tokio::test]
    async fn a_large_announced_body_arrives_in_blocks() {
        let budget = BodyBudget::new(64 << 20, Gauge::default());
        let sizes = [3 << 20, 2 << 20, 1, 3 << 20];
        let mut announced = Client::sends(&sizes, false);
        announced.announce = true;
        // Distinct bytes, so a block boundary in the wrong place shows.
        for (i, c) in announced.chunks.iter_mut().enumerate() {
            *c = Bytes::from(vec![b'a' + i as u8; c.len()]);
        }
        let sent: Vec<u8> = announced.chunks.iter().flatten().copied().collect();
        let whole = receive(announced, 16 << 20, &budget, soon(2000))
            .await
            .unwrap();
        let lens: Vec<usize> = whole.chunks.iter().map(Bytes::len).collect();
        assert_eq!(lens, [BLOCK, BLOCK, 1]);
        let got: Vec<u8> = whole.chunks.iter().flatten().copied().collect();
        assert!(got == sent, "the blocks hold the body, in order");
        // Without a length (chunked transfer) it stays in pieces.
        let pieces = receive(Client::sends(&sizes, false), 16 << 20, &budget, soon(2000)).await;
        assert_eq!(pieces.unwrap().chunks.len(), sizes.len());
    }
}
