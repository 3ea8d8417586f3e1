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
//! | [`resample`] | band-limited resampling to the model card's rate |
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
pub mod resample;
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

/// Σx in f64, as eight interleaved partial sums. Why: a single running sum waits on its own
/// previous addition at every sample, and inside the guest every loop turn is also an epoch
/// check; eight partial sums per turn vectorise (f64x2) and overlap. `/diagnose` sums ~3 M
/// samples this way (segment and envelope means). Differs from the serial sum only in rounding.
pub(crate) fn sum(x: &[f32]) -> f64 {
    const LANES: usize = 8;
    let mut partial = [0.0f64; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (p, &v) in partial.iter_mut().zip(chunk) {
            *p += v as f64;
        }
    }
    let rest: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    partial.iter().sum::<f64>() + rest
}
