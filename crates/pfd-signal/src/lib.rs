//! pfd-edge's signal processing for real recordings (`POST /diagnose`).
//!
//! The LSTM_PFD routes take exactly one model window of floats at the model's rate. Recordings
//! from the plant floor come as WAV, CSV, NumPy or raw sample streams, at 12.8–48 kHz, 2–60 s
//! long. This crate turns them into what the model and a maintenance engineer need, as plain
//! functions that run natively (tests in milliseconds) and in the wasm component alike:
//!
//! | module | job |
//! |---|---|
//! | [`formats`] | body + `Content-Type` + query options → one channel of f32 samples and its rate |
//! | [`samples`] | a channel's samples: f32, or 16-bit PCM converted in blocks as it is read |
//! | [`resample`] | band-limited resampling to the model card's rate |
//! | [`plans`] | FFT plans and Hann windows, made once per process (bounded caches) |
//! | [`prepare`] | what a model card's `/diagnose` plans, made ahead (the component's pre-initialisation) |
//! | [`windows`] | window starts at a hop, and the aggregate of the windows' probabilities |
//! | [`spectrum`] | averaged amplitude and envelope (Hilbert) spectra, peak measurement |
//! | [`bearings`] | the bearing table and the defect frequencies BPFO/BPFI/BSF/FTF |
//! | [`evidence`] | time-domain indicators, shaft harmonics, defect lines: physics, no network |
//! | [`unknown`] | the "unknown condition" score, calibrated on held-out records |
//!
//! Nothing here knows HTTP or the model: `pfd-core`'s `diagnose` route adapts it to the API.
//! Dependencies go one way: pfd-core → pfd-signal.

pub mod bearings;
pub mod evidence;
pub mod formats;
pub mod plans;
pub mod prepare;
pub mod resample;
pub mod samples;
pub mod spectrum;
pub mod unknown;
pub mod windows;

/// Why a recording cannot be diagnosed; [`SignalError::status`] is the HTTP status to answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    /// A format, codec or sample type this service does not read (415).
    #[error("{0}")]
    Unsupported(String),
    /// The body or a parameter is malformed or out of range (422).
    #[error("{0}")]
    Invalid(String),
    /// The recording is longer than the configured maximum (413).
    #[error("{0}")]
    TooLong(String),
}

impl SignalError {
    pub fn status(&self) -> u16 {
        match self {
            SignalError::Unsupported(_) => 415,
            SignalError::Invalid(_) => 422,
            SignalError::TooLong(_) => 413,
        }
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> SignalError {
    SignalError::Invalid(message.into())
}

/// Mean of `x`, accumulated in f64.
pub(crate) fn mean(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    sum(x) / x.len() as f64
}

/// Σx in f64: blocks of [`BLOCK`] samples summed in eight f32 lanes, each block's sum added
/// in f64. Why: a single running sum waits on its own previous addition at every sample, and
/// inside the guest every loop turn is also an epoch check; f32 lanes vectorise four to a
/// simd128 register (f64 only two) and a block is one turn of the outer loop. A lane adds 8
/// samples in f32 (relative rounding ≤ 8·2⁻²⁴ ≈ 5e-7 of the block's magnitude) before f64
/// takes over. `/diagnose` sums ~3 M samples this way (segment and envelope means), and the
/// survey of a recording (`evidence::survey`) has its passes in this shape.
///
/// Why plain loops and not one generic fold with closures over a lane state: that form kept
/// its lanes in memory in the wasm build — a survey of 60 s at 48 kHz took 10 ms with it
/// against 3.8 ms written out (`scripts/wasm-example.sh pfd-signal stage_bench`).
pub(crate) fn sum(x: &[f32]) -> f64 {
    let mut total = 0.0f64;
    let mut blocks = x.chunks_exact(BLOCK);
    for block in &mut blocks {
        let mut lanes = [0.0f32; LANES];
        for chunk in block.chunks_exact(LANES) {
            for (l, &v) in lanes.iter_mut().zip(chunk) {
                *l += v;
            }
        }
        total += lanes.iter().map(|&l| l as f64).sum::<f64>();
    }
    total + blocks.remainder().iter().map(|&v| v as f64).sum::<f64>()
}

/// Samples per block of the f32-then-f64 sums ([`sum`], the survey's passes).
pub(crate) const BLOCK: usize = 64;
/// f32 lanes of those sums (two simd128 registers).
pub(crate) const LANES: usize = 8;
