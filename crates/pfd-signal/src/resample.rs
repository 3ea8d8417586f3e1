//! Resampling a whole recording to the model card's rate.
//!
//! rubato's synchronous FFT resampler: each chunk is transformed, its spectrum cut (down) or
//! zero-extended (up) with an anti-aliasing low-pass, and transformed back. For the fixed,
//! rational ratios of recorders (12.8, 25.6, 48 kHz → 20.48 kHz) it is both the fastest and the
//! cleanest of rubato's resamplers. Rates are rounded to whole Hz for it (a CSV time column can
//! give 12799.97 Hz); the error is below 1e-4 of any frequency.
//!
//! The resampler's own delay is trimmed and its tail flushed, so output sample `k` is at time
//! `k / rate_out` (to within half an output sample: rubato counts its delay in whole samples)
//! like input sample `k` at `k / rate_in`, and the output holds
//! `round(n · rate_out / rate_in)` samples.

use std::borrow::Cow;

use rubato::{FftFixedIn, Resampler};

use crate::{invalid, SignalError};

/// Input frames per FFT chunk. Why 4096: long enough for a steep anti-aliasing filter at every
/// supported ratio, short enough that a 5 s record is many chunks (bounded scratch memory).
const CHUNK: usize = 4096;

/// `samples` at `rate_in` Hz, resampled to `rate_out` Hz (borrowed as they are when the rates
/// match: a recording at the model's rate is not copied).
pub fn resample(
    samples: &[f32],
    rate_in: f64,
    rate_out: u32,
) -> Result<Cow<'_, [f32]>, SignalError> {
    let fs_in = rate_in.round() as usize;
    let fs_out = rate_out as usize;
    if fs_in == 0 {
        return Err(invalid(format!("sample_rate {rate_in} Hz is below 1 Hz")));
    }
    if fs_in == fs_out {
        return Ok(Cow::Borrowed(samples));
    }
    let wanted = (samples.len() as f64 * fs_out as f64 / fs_in as f64).round() as usize;
    let mut resampler = FftFixedIn::<f32>::new(fs_in, fs_out, CHUNK, 1, 1)
        .map_err(|e| invalid(format!("cannot resample {fs_in} Hz to {fs_out} Hz: {e}")))?;
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(wanted + delay + CHUNK);
    let failed = |e: rubato::ResampleError| invalid(format!("resampling failed: {e}"));
    let mut rest = samples;
    while rest.len() >= resampler.input_frames_next() {
        let (chunk, tail) = rest.split_at(resampler.input_frames_next());
        let produced = resampler.process(&[chunk], None).map_err(failed)?;
        out.extend_from_slice(&produced[0]);
        rest = tail;
    }
    if !rest.is_empty() {
        let produced = resampler
            .process_partial(Some(&[rest]), None)
            .map_err(failed)?;
        out.extend_from_slice(&produced[0]);
    }
    // Flush what the delay holds back.
    while out.len() < wanted + delay {
        let produced = resampler
            .process_partial::<&[f32]>(None, None)
            .map_err(failed)?;
        if produced[0].is_empty() {
            break;
        }
        out.extend_from_slice(&produced[0]);
    }
    let end = (delay + wanted).min(out.len());
    out.truncate(end);
    out.drain(..delay.min(end));
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin() as f32)
            .collect()
    }

    #[test]
    fn keeps_a_tone_and_its_timing_at_every_supported_rate() {
        for rate in [12_800.0, 25_600.0, 48_000.0, 44_100.0] {
            let n = (rate * 2.0) as usize;
            let x = sine(440.0, rate, n);
            let y = resample(&x, rate, 20_480).unwrap();
            assert_eq!(y.len(), 40_960, "{rate}");
            let want = sine(440.0, 20_480.0, y.len());
            // Away from the edges the resampled tone is the tone at the new rate, in phase.
            let err = y[2000..38_000]
                .iter()
                .zip(&want[2000..38_000])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            // rubato reports its delay in whole output samples; for 48 kHz (75:32) the true delay
            // is ~0.2 samples off that: at 440 Hz, half a sample would be an error of 0.067.
            assert!(err < 0.05, "{rate}: max error {err}");
        }
    }

    #[test]
    fn removes_what_the_new_rate_cannot_hold() {
        // 15 kHz is above 20.48 kHz's Nyquist frequency: it must not alias into the band.
        let x = sine(15_000.0, 48_000.0, 96_000);
        let y = resample(&x, 48_000.0, 20_480).unwrap();
        let rms = (y[2000..38_000].iter().map(|v| v * v).sum::<f32>() / 36_000.0).sqrt();
        assert!(rms < 0.01, "aliased energy {rms}");
    }

    #[test]
    fn same_rate_is_a_copy() {
        let x = sine(100.0, 20_480.0, 1000);
        assert!(
            matches!(resample(&x, 20_480.0, 20_480).unwrap(), Cow::Borrowed(b) if b == x.as_slice())
        );
    }
}
