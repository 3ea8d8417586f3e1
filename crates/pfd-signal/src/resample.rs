//! Resampling a whole recording to the model card's rate.
//!
//! An **overlap-save FFT resampler** for the rational ratio `L/M` of the two rates (reduced by
//! their gcd: 48 kHz → 20.48 kHz is 32/75):
//!
//! 1. the recording is cut into blocks of `n_in = k·M` samples that overlap by the filter's
//!    length;
//! 2. each block is transformed (`n_in`-point real FFT), multiplied by the anti-aliasing
//!    filter's spectrum, cut to `n_out/2+1` bins (down) or zero-extended (up), and transformed
//!    back with `n_out = k·L` points — which *is* the filtered block sampled at the new rate,
//!    since the filter leaves nothing above the smaller Nyquist frequency;
//! 3. the samples the circular convolution wrapped around (the filter's half-length at each
//!    end) are dropped, the rest appended.
//!
//! The filter is a zero-phase Kaiser-windowed sinc: pass band up to [`PASS_BAND`] of the smaller
//! Nyquist frequency, stop band from that Nyquist frequency on, [`STOP_BAND_DB`] down. Zero
//! phase means no delay: output sample `k` is at time `k / rate_out` exactly, like input sample
//! `k` at `k / rate_in`, and the output holds `round(n · rate_out / rate_in)` samples. The
//! recording is taken as zero before its start and after its end.
//!
//! Why not rubato (used before): its synchronous FFT resampler overlap-*adds* with a filter as
//! long as its chunk (4800 taps at 48 kHz), so every chunk is zero-padded to twice its length
//! and each sample goes through two forward and two inverse FFT points. This filter is ~270 taps,
//! so a block is ~97 % new samples. A 60 s, 48 kHz recording: 39.2 → 20.6 ms alone in a wasm
//! guest (`stage_bench` under wasmtime), 49.4 → 25.0 ms in pfd-host's `/diagnose`
//! (`scripts/diagnose_bench.py`, same session). The pass band is flat to 0.9 of Nyquist (the
//! envelope band's upper edge, [`crate::spectrum::ENVELOPE_BAND_HZ`]), more than the model needs: it
//! was trained with 35 % of its crops low-passed at 5.5–9 kHz.
//!
//! Rates are rounded to whole Hz (a CSV time column can give 12799.97 Hz); the error is below
//! 1e-4 of any frequency.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealToComplex};

use crate::plans::{self, Cache};
use crate::samples::Samples;
use crate::{invalid, SignalError};

/// The pass band's edge as a share of the smaller Nyquist frequency. Why 0.9: the envelope
/// spectrum reads up to 0.9 of the recording's Nyquist frequency, and a transition band of a
/// tenth keeps the filter short (~270 taps at 48 kHz → 20.48 kHz).
pub const PASS_BAND: f64 = 0.9;

/// The stop band's attenuation, dB. Why 90: below a 16-bit recording's quantisation floor
/// (~96 dB under full scale is the best an ADC gives; real ones sit at 80–90 dB), so nothing
/// that aliases is above what the recorder itself added.
pub const STOP_BAND_DB: f64 = 90.0;

/// Input samples per block, at least. Why 8192: blocks must be long against the filter (the
/// wrapped-around share is `taps / n_in`, 3 % here) and short enough to stay in cache; the block
/// is the ratio's smallest input block `M` times a power of two, so that for the recorders'
/// rates both FFTs are of small factors (48 kHz: 9600 = 2⁷·3·5² and 4096 points), which rustfft
/// runs with its SIMD butterflies (a factor 11 in a length cost rubato 66 → 36 ms before).
const MIN_BLOCK: usize = 8192;

/// A resampler from `rate_in` to `rate_out` whole Hz, planned once ([`RESAMPLERS`] keeps it).
struct Plan {
    /// Samples in per block (out per block: the inverse FFT's length).
    n_in: usize,
    /// Input samples the blocks advance by, and the output samples each block gives.
    advance_in: usize,
    advance_out: usize,
    /// Zeros before the recording (a whole number of `M`, at least the filter's half-length),
    /// and the first output sample of a block that the wrap-around leaves intact.
    lead: usize,
    first_out: usize,
    /// The filter's spectrum over the bins that are kept, scaled by `1/n_in` (the FFTs are
    /// unnormalised). Real: the filter is symmetric about sample 0.
    filter: Vec<f32>,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The zeroth-order modified Bessel function of the first kind (its power series, for the
/// Kaiser window; converges in < 40 terms for the β used here).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term) = (1.0, 1.0);
    let q = x * x / 4.0;
    for k in 1..100 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// The half-length `D` and taps `h[0..=D]` (h[−j] = h[j]) of the low-pass at `rate_in` with its
/// pass band to `pass_hz` and stop band from `stop_hz` (Kaiser's design formulas).
fn kaiser_low_pass(rate_in: f64, pass_hz: f64, stop_hz: f64) -> Vec<f64> {
    let a = STOP_BAND_DB;
    let beta = 0.1102 * (a - 8.7);
    let transition = 2.0 * std::f64::consts::PI * (stop_hz - pass_hz) / rate_in;
    let half = ((a - 8.0) / (2.285 * transition) / 2.0).ceil() as usize;
    let cutoff = (pass_hz + stop_hz) / 2.0 / rate_in; // cycles per sample
    let norm = bessel_i0(beta);
    let mut taps: Vec<f64> = (0..=half)
        .map(|j| {
            let t = j as f64;
            let sinc = if j == 0 {
                2.0 * cutoff
            } else {
                (2.0 * std::f64::consts::PI * cutoff * t).sin() / (std::f64::consts::PI * t)
            };
            let r = t / half as f64;
            sinc * bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / norm
        })
        .collect();
    // Unit gain at 0 Hz.
    let dc: f64 = taps[0] + 2.0 * taps[1..].iter().sum::<f64>();
    taps.iter_mut().for_each(|t| *t /= dc);
    taps
}

impl Plan {
    fn new(fs_in: usize, fs_out: usize) -> Plan {
        let g = gcd(fs_in, fs_out);
        let (m, l) = (fs_in / g, fs_out / g);
        let nyquist = fs_in.min(fs_out) as f64 / 2.0;
        let taps = kaiser_low_pass(fs_in as f64, PASS_BAND * nyquist, nyquist);
        let half = taps.len() - 1;
        let lead = half.div_ceil(m) * m;
        let mut k = MIN_BLOCK.div_ceil(m).next_power_of_two();
        // Blocks at least twice the filter and the lead: most of each block is new samples.
        while k * m < 2 * (lead + half + m) {
            k *= 2;
        }
        let (n_in, n_out) = (k * m, k * l);
        // Output sample `j` of a block is at input position `j·M/L` of it; those kept start at
        // `lead` (where the wrap-around of the block's start ends) and end at least `half`
        // before the block's end (where that of its end begins).
        let first_out = lead * l / m;
        // Kept positions run from `lead` to before `n_in − half − 1`, in steps of M/L.
        let usable_in = n_in - half - lead - 1;
        let advance_out = (usable_in * l / m) / l * l;
        let advance_in = advance_out / l * m;
        let forward = plans::real_forward(n_in);
        let inverse = plans::real_inverse(n_out);
        // The zero-phase filter laid out circularly, and its spectrum over the kept bins.
        let mut layout = vec![0.0f32; n_in];
        layout[0] = taps[0] as f32;
        for (j, &t) in taps.iter().enumerate().skip(1) {
            layout[j] = t as f32;
            layout[n_in - j] = t as f32;
        }
        let mut spectrum = forward.make_output_vec();
        forward
            .process(&mut layout, &mut spectrum)
            .expect("sizes match the plan");
        let kept = n_in.min(n_out) / 2 + 1;
        let filter = spectrum[..kept]
            .iter()
            .map(|c| c.re / n_in as f32)
            .collect();
        Plan {
            n_in,
            advance_in,
            advance_out,
            lead,
            first_out,
            filter,
            forward,
            inverse,
        }
    }

    /// `wanted` output samples of `samples` (taken as zero outside it).
    fn run(&self, samples: &Samples, wanted: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(wanted);
        let mut block = self.forward.make_input_vec();
        let mut spectrum = self.forward.make_output_vec();
        let mut resampled = self.inverse.make_output_vec();
        let mut bins = self.inverse.make_input_vec();
        let kept = self.filter.len();
        // Block `b` starts at input position `b·advance_in − lead`.
        let mut start = -(self.lead as isize);
        while out.len() < wanted {
            // The block, zero where it lies outside the recording.
            let from = start.max(0) as usize;
            let to = ((start + self.n_in as isize).max(0) as usize).min(samples.len());
            let at = (from as isize - start) as usize;
            block[..at].fill(0.0);
            let copied = to.saturating_sub(from);
            samples.read(from, &mut block[at..at + copied]);
            block[at + copied..].fill(0.0);
            self.forward
                .process(&mut block, &mut spectrum)
                .expect("sizes match the plan");
            for ((b, &s), &f) in bins.iter_mut().zip(&spectrum[..kept]).zip(&self.filter) {
                *b = s * f;
            }
            bins[kept..].fill(Complex::new(0.0, 0.0));
            // DC and Nyquist bins of a real signal are real (the filter has ~nothing at the
            // Nyquist bin anyway); realfft checks it.
            bins[0].im = 0.0;
            if let Some(last) = bins.last_mut() {
                last.im = 0.0;
            }
            self.inverse
                .process(&mut bins, &mut resampled)
                .expect("sizes match the plan");
            let take = self.advance_out.min(wanted - out.len());
            out.extend_from_slice(&resampled[self.first_out..self.first_out + take]);
            start += self.advance_in as isize;
        }
        out
    }
}

/// `samples` at `rate_in` Hz, resampled to `rate_out` Hz. When the rates match, the samples
/// themselves (owned f32 samples are moved, not copied).
pub fn resample(
    samples: Samples<'_>,
    rate_in: f64,
    rate_out: u32,
) -> Result<Vec<f32>, SignalError> {
    let fs_in = rate_in.round() as usize;
    let fs_out = rate_out as usize;
    if fs_in == 0 {
        return Err(invalid(format!("sample_rate {rate_in} Hz is below 1 Hz")));
    }
    if fs_in == fs_out {
        return Ok(samples.into_vec());
    }
    let wanted = (samples.len() as f64 * fs_out as f64 / fs_in as f64).round() as usize;
    Ok(plan(fs_in, fs_out).run(&samples, wanted))
}

/// Resamplers by `(rate in, rate out)`, whole Hz: a plan holds its FFTs and the filter's
/// spectrum (270 Kaiser taps and one FFT of the block's length to make), bounded like the FFT
/// plans of [`crate::plans`].
static RESAMPLERS: Cache<(usize, usize), Arc<Plan>> = Cache::new();

fn plan(fs_in: usize, fs_out: usize) -> Arc<Plan> {
    RESAMPLERS.get_or((fs_in, fs_out), || Arc::new(Plan::new(fs_in, fs_out)))
}

/// Makes the resampler from `fs_in` to `fs_out` whole Hz ahead of its first recording
/// ([`crate::prepare`]); nothing for equal rates, which need none.
pub fn prepare(fs_in: usize, fs_out: usize) {
    if fs_in != fs_out && fs_in > 0 {
        plan(fs_in, fs_out);
    }
}

/// The `(rate in, rate out)` pairs whose resamplers are held, sorted.
pub fn cached_rates() -> Vec<(usize, usize)> {
    RESAMPLERS.keys()
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
        for rate in [12_800.0f64, 25_600.0, 48_000.0, 44_100.0] {
            let n = (rate * 2.0) as usize;
            // A low tone and one near the pass band's edge (0.9 of the smaller Nyquist).
            for freq in [440.0, 0.85 * rate.min(20_480.0) / 2.0] {
                let x = sine(freq, rate, n);
                let y = resample(x[..].into(), rate, 20_480).unwrap();
                assert_eq!(y.len(), 40_960, "{rate}");
                let want = sine(freq, 20_480.0, y.len());
                // Away from the edges the resampled tone is the tone at the new rate, in phase
                // (zero-phase filter: no delay at all; a sample's delay at 440 Hz would be an
                // error of 0.13).
                let err = y[2000..38_000]
                    .iter()
                    .zip(&want[2000..38_000])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(err < 2e-3, "{rate} Hz, {freq} Hz tone: max error {err}");
            }
        }
    }

    #[test]
    fn removes_what_the_new_rate_cannot_hold() {
        // Above 20.48 kHz's Nyquist frequency: it must not alias into the band.
        for freq in [10_300.0, 15_000.0, 23_000.0] {
            let x = sine(freq, 48_000.0, 96_000);
            let y = resample(x[..].into(), 48_000.0, 20_480).unwrap();
            let rms = (y[2000..38_000].iter().map(|v| v * v).sum::<f32>() / 36_000.0).sqrt();
            assert!(rms < 1e-4, "{freq} Hz: aliased energy {rms}");
        }
    }

    #[test]
    fn the_edges_are_the_recording_and_zeros_beyond() {
        // A constant recording resamples to the constant, up to its first and last samples
        // (the filter sees zeros beyond them: a step's ringing at the edges, not garbage).
        let x = vec![1.0f32; 48_000];
        let y = resample(x[..].into(), 48_000.0, 20_480).unwrap();
        assert_eq!(y.len(), 20_480);
        for (i, &v) in y.iter().enumerate().skip(100).take(20_280) {
            assert!((v - 1.0).abs() < 1e-4, "sample {i}: {v}");
        }
        for v in [y[0], y[20_479]] {
            assert!((0.4..1.1).contains(&v), "edges {} {}", y[0], y[20_479]);
        }
    }

    #[test]
    fn owned_recordings_are_kept_and_pcm_resamples_like_its_floats() {
        let x = sine(100.0, 20_480.0, 1000);
        let at = x.as_ptr();
        let same = resample(x.into(), 20_480.0, 20_480).unwrap();
        assert_eq!(
            same.as_ptr(),
            at,
            "same rate: the recording itself, not a copy"
        );
        // 16-bit PCM read block by block gives what its f32 values give, bit for bit.
        let pcm: Vec<u8> = sine(100.0, 48_000.0, 48_003)
            .iter()
            .flat_map(|v| ((v * 32_000.0) as i16).to_le_bytes())
            .collect();
        let samples = Samples::mono_pcm16(&pcm);
        let floats = samples.clone().into_vec();
        assert_eq!(
            resample(samples, 48_000.0, 20_480).unwrap(),
            resample(floats.into(), 48_000.0, 20_480).unwrap()
        );
    }

    #[test]
    fn blocks_give_ffts_of_small_factors_and_keep_most_samples() {
        // (rate in, n_in, n_out, advance_in): 48 kHz is 32/75, blocks of 128·75 → 128·32.
        for (fs_in, n_in, n_out, advance_in) in [
            (48_000, 9_600, 4_096, 9_300),
            (12_800, 10_240, 16_384, 10_120),
            (25_600, 10_240, 8_192, 10_090),
        ] {
            let plan = Plan::new(fs_in, 20_480);
            assert_eq!(
                (plan.n_in, plan.inverse.len(), plan.advance_in),
                (n_in, n_out, advance_in),
                "{fs_in}"
            );
        }
        // A rate with no common factor still plans (larger blocks, fewer kept).
        let odd = Plan::new(12_799, 20_480);
        assert!(
            odd.advance_in >= odd.n_in / 3,
            "{} of {}",
            odd.advance_in,
            odd.n_in
        );
    }

    #[test]
    fn the_filter_passes_its_band_and_stops_above_nyquist() {
        let plan = Plan::new(48_000, 20_480);
        let hz_per_bin = 48_000.0 / plan.n_in as f64;
        let gain = |hz: f64| plan.filter[(hz / hz_per_bin).round() as usize] * plan.n_in as f32;
        for hz in [0.0, 100.0, 3_000.0, 9_000.0, 9_216.0] {
            assert!((gain(hz) - 1.0).abs() < 1e-3, "{hz} Hz: {}", gain(hz));
        }
        // The stop band starts at the output's Nyquist frequency, the last bin kept (what lies
        // above it is cut with the bins).
        let stop = gain(10_240.0).abs();
        assert!(stop < 10f32.powf(-85.0 / 20.0), "10240 Hz: {stop}");
    }
}
