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

/// Input frames per FFT chunk, at least. Why 4096: long enough for a steep anti-aliasing filter
/// at every supported ratio, short enough that a 5 s record is many chunks (bounded scratch
/// memory). The chunk used is the next whole number of the ratio's smallest input block that
/// keeps the FFTs fast, see [`chunk_frames`].
const CHUNK: usize = 4096;

/// Input frames per chunk for `fs_in → fs_out`: the ratio's smallest input block
/// (`fs_in / gcd`) times the power of two that reaches [`CHUNK`].
///
/// Why a power of two: rubato's FFT lengths are twice the chunk's block count times
/// `fs_in / gcd` and `fs_out / gcd`. Asking for exactly 4096 frames at 48 kHz gave 55 blocks,
/// FFTs of 8250 and 3520 points (a factor 11), which rustfft runs with its scalar mixed-radix
/// algorithms; 64 blocks give 9600 and 4096 points (factors 2, 3, 5), run by its SIMD
/// butterflies. Measured in the guest (pfd-host, `scripts/diagnose_bench.py`) on a 60 s,
/// 48 kHz recording: 66 → 36 ms.
fn chunk_frames(fs_in: usize, fs_out: usize) -> usize {
    let (mut a, mut b) = (fs_in, fs_out);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    let block = fs_in / a;
    block * CHUNK.div_ceil(block).next_power_of_two()
}

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
    let chunk = chunk_frames(fs_in, fs_out);
    let mut resampler = FftFixedIn::<f32>::new(fs_in, fs_out, chunk, 1, 1)
        .map_err(|e| invalid(format!("cannot resample {fs_in} Hz to {fs_out} Hz: {e}")))?;
    let failed = |e: rubato::ResampleError| invalid(format!("resampling failed: {e}"));
    // Each chunk is resampled into one reused buffer and appended with the resampler's delay
    // cut off on the way. Why: a fresh output vector per chunk and a final `drain` of the delay
    // (moving the whole output down) were allocations and a copy the size of the result.
    let mut buffer = resampler.output_buffer_allocate(true);
    let mut out = Vec::with_capacity(wanted);
    let mut skip = resampler.output_delay();
    let append = |out: &mut Vec<f32>, skip: &mut usize, produced: &[f32]| {
        let from = (*skip).min(produced.len());
        *skip -= from;
        let take = (wanted - out.len()).min(produced.len() - from);
        out.extend_from_slice(&produced[from..from + take]);
    };
    let mut rest = samples;
    while rest.len() >= resampler.input_frames_next() {
        let (chunk, tail) = rest.split_at(resampler.input_frames_next());
        let (_, n) = resampler
            .process_into_buffer(&[chunk], &mut buffer, None)
            .map_err(failed)?;
        append(&mut out, &mut skip, &buffer[0][..n]);
        rest = tail;
    }
    if !rest.is_empty() {
        let (_, n) = resampler
            .process_partial_into_buffer(Some(&[rest]), &mut buffer, None)
            .map_err(failed)?;
        append(&mut out, &mut skip, &buffer[0][..n]);
    }
    // Flush what the delay holds back.
    while out.len() < wanted {
        let (_, n) = resampler
            .process_partial_into_buffer::<&[f32], _>(None, &mut buffer, None)
            .map_err(failed)?;
        if n == 0 {
            break;
        }
        append(&mut out, &mut skip, &buffer[0][..n]);
    }
    Ok(Cow::Owned(out))
}

/// [`resample`] of an owned recording: the recording itself when the rates match, otherwise
/// the resampled copy (the original is freed on return, so its memory can be reused).
pub fn resample_vec(
    samples: Vec<f32>,
    rate_in: f64,
    rate_out: u32,
) -> Result<Vec<f32>, SignalError> {
    let resampled = match resample(&samples, rate_in, rate_out)? {
        Cow::Owned(v) => Some(v),
        Cow::Borrowed(_) => None,
    };
    Ok(resampled.unwrap_or(samples))
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
    fn owned_recordings_are_kept_or_replaced() {
        let x = sine(100.0, 20_480.0, 1000);
        let at = x.as_ptr();
        let same = resample_vec(x, 20_480.0, 20_480).unwrap();
        assert_eq!(
            same.as_ptr(),
            at,
            "same rate: the recording itself, not a copy"
        );
        let y = resample_vec(sine(100.0, 48_000.0, 48_000), 48_000.0, 20_480).unwrap();
        let x = sine(100.0, 48_000.0, 48_000);
        assert_eq!(y, *resample(&x, 48_000.0, 20_480).unwrap());
    }

    #[test]
    fn chunks_give_ffts_of_small_factors() {
        // 48 kHz: 64 blocks of 75 (FFTs of 9600 and 4096 points), not 55 (8250 = 2·3·5³·11).
        assert_eq!(chunk_frames(48_000, 20_480), 4_800);
        assert_eq!(chunk_frames(12_800, 20_480), 5_120);
        assert_eq!(chunk_frames(25_600, 20_480), 5_120);
        // A ratio whose smallest block is already longer than CHUNK is used as it is.
        assert_eq!(chunk_frames(12_799, 20_480), 12_799);
        for (fs_in, fs_out) in [(48_000, 20_480), (44_100, 20_480), (12_800, 20_480)] {
            assert!(chunk_frames(fs_in, fs_out) >= CHUNK);
        }
    }

    #[test]
    fn same_rate_is_a_copy() {
        let x = sine(100.0, 20_480.0, 1000);
        assert!(
            matches!(resample(&x, 20_480.0, 20_480).unwrap(), Cow::Borrowed(b) if b == x.as_slice())
        );
    }
}
