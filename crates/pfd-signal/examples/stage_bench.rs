//! `/diagnose`'s signal stages on a 60 s, 48 kHz recording, one at a time — to see where the
//! time goes natively and inside a wasm guest (same code, same input):
//!
//! ```sh
//! cargo run --release -p pfd-signal --example stage_bench
//! scripts/wasm-example.sh pfd-signal stage_bench      # the same, wasm32 under wasmtime
//! ```
//!
//! The recording is noise plus shaft harmonics and a ringing impulse train (a stand-in for a
//! Wear record: the stages' cost does not depend on what is in it).

use pfd_signal::samples::Samples;
use pfd_signal::{evidence, plans, prepare, resample, spectrum, unknown};
use std::time::Instant;

const RATE_IN: u32 = 48_000;
const RATE: u32 = 20_480;
const LENGTH: usize = 102_400;

fn recording(seconds: usize) -> Vec<f32> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let n = seconds * RATE_IN as usize;
    let dt = 1.0 / RATE_IN as f64;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = (x % 65_536) as f64 / 65_536.0 - 0.5;
            let t = i as f64 * dt;
            let shaft = (2.0 * std::f64::consts::PI * 29.5 * t).sin();
            let phase = (t * 105.7).fract();
            let ring = (-phase * 400.0).exp() * (2.0 * std::f64::consts::PI * 3_500.0 * t).sin();
            ((0.3 * noise + 0.5 * shaft + ring) * 0.25) as f32
        })
        .collect()
}

/// `count` forward real FFTs of `n` points (planned ahead, as in the stages).
fn real_ffts(n: usize, count: usize) {
    let fft = plans::real_forward(n);
    let mut input = fft.make_input_vec();
    let mut output = fft.make_output_vec();
    for _ in 0..count {
        fft.process(&mut input, &mut output).unwrap();
    }
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(f());
    }
    t.elapsed().as_secs_f64() * 1000.0 / runs as f64
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    // What the component does while it is pre-initialised: the stages below then find their
    // plans made, as in a request.
    let prepared_ms = time(1, || prepare::for_model(RATE, LENGTH));
    let samples = recording(60);
    let signal = resample::resample(samples[..].into(), RATE_IN as f64, RATE).unwrap();
    let starts: Vec<usize> = (0..=(signal.len() - LENGTH) / (LENGTH / 2))
        .map(|i| i * LENGTH / 2)
        .collect();
    let windows: Vec<&[f32]> = starts.iter().map(|&s| &signal[s..s + LENGTH]).collect();
    let logits = vec![vec![0.0f32; 11]; windows.len()];
    println!(
        "60 s at {RATE_IN} Hz: {} samples, {} at {RATE} Hz, {} windows; ms per call, {runs} runs",
        samples.len(),
        signal.len(),
        windows.len()
    );
    // The same recording as a 16-bit WAV's data chunk: what `/diagnose` reads from a body.
    let pcm: Vec<u8> = samples
        .iter()
        .flat_map(|&v| ((v * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16).to_le_bytes())
        .collect();
    let rows: [(&str, f64); 7] = [
        ("prepare (once)", prepared_ms),
        (
            "resample",
            time(runs, || {
                resample::resample(samples[..].into(), RATE_IN as f64, RATE)
            }),
        ),
        (
            "survey",
            time(runs, || evidence::survey(&samples[..].into())),
        ),
        (
            "survey (pcm16)",
            time(runs, || evidence::survey(&Samples::mono_pcm16(&pcm))),
        ),
        (
            "resample (pcm16)",
            time(runs, || {
                resample::resample(Samples::mono_pcm16(&pcm), RATE_IN as f64, RATE)
            }),
        ),
        (
            "unknown features",
            time(runs, || unknown::features(&windows, &logits, RATE as f64)),
        ),
        (
            "spectra",
            time(runs, || {
                spectrum::analyse(&signal, RATE as f64, RATE as f64 / 2.0)
            }),
        ),
    ];
    // The FFTs inside those stages, alone: what no change outside rustfft makes cheaper.
    let (w, seg) = (unknown::MAX_FEATURE_WINDOWS, spectrum::MAX_SEGMENTS);
    let extra = [
        (
            format!("features: {w} rfft {LENGTH}"),
            time(runs, || real_ffts(LENGTH, w)),
        ),
        (
            format!("spectra: {seg} rfft 65536"),
            time(runs, || real_ffts(65_536, seg)),
        ),
        (
            format!("spectra: {seg} cfft + rfft 32768"),
            time(runs, || {
                let fft = plans::complex_inverse(32_768);
                let mut i = vec![realfft::num_complex::Complex::new(0.0f32, 0.0); 32_768];
                for _ in 0..seg {
                    fft.process(&mut i);
                }
                real_ffts(32_768, seg)
            }),
        ),
    ];
    let rows = rows.into_iter().map(|(n, ms)| (n.to_string(), ms));
    for (name, ms) in rows.chain(extra) {
        println!("{name:>26} {ms:8.2}");
    }
}
