//! The `/predict` decoder against the baseline it replaced, natively, in one process:
//!
//! ```sh
//! cargo run --release -p pfd-core --example decode_bench            # wall time
//! valgrind --tool=callgrind target/release/examples/decode_bench fast   # exact instruction counts
//! valgrind --tool=callgrind target/release/examples/decode_bench serde  # (subtract `none`)
//! ```
//!
//! The body is what LSTM_PFD clients send: 102400 six-decimal floats (~1.06 MB). "serde" is the
//! decode every request took before the fast path: serde_json straight into `Vec<f32>`.

use pfd_core::predict::{parse_predict, Limits};
use std::time::Instant;

#[derive(serde::Deserialize)]
struct SerdeOnly {
    #[allow(dead_code)]
    signal: Vec<f32>,
}

fn body() -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let samples: Vec<String> = (0..102_400)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{:.6}", (x % 2_000_000) as f64 / 1e6 - 1.0)
        })
        .collect();
    format!("{{\"signal\": [{}]}}", samples.join(", "))
}

fn main() {
    // `DECODE_BENCH_BODY=path`: time that body instead (e.g. the bench's reference-vector body).
    let body = match std::env::var("DECODE_BENCH_BODY") {
        Ok(path) => std::fs::read_to_string(&path).expect("reading DECODE_BENCH_BODY"),
        Err(_) => body(),
    };
    let limits = Limits {
        signal_length: 102_400,
        classes: 11,
        max_batch_size: 128,
    };
    let fast = || std::hint::black_box(parse_predict(body.as_bytes(), &limits).unwrap());
    let serde = || {
        std::hint::black_box(serde_json::from_slice::<SerdeOnly>(body.as_bytes()).unwrap());
    };
    match std::env::args().nth(1).as_deref() {
        Some("fast") => (0..5).for_each(|_| drop(fast())),
        Some("serde") => (0..5).for_each(|_| serde()),
        Some("none") => {}
        _ => {
            let time = |f: &dyn Fn()| {
                let t = Instant::now();
                for _ in 0..50 {
                    f();
                }
                t.elapsed().as_secs_f64() * 1000.0 / 50.0
            };
            println!("body: {} bytes", body.len());
            for round in 1..=3 {
                let (a, b) = (time(&|| drop(fast())), time(&serde));
                println!(
                    "round {round}: fast {a:.3} ms, serde {b:.3} ms, serde/fast {:.2}x",
                    b / a
                );
            }
        }
    }
}
