//! Averaged spectra of a recording, and measuring a spectral line.
//!
//! Both spectra are Welch averages: Hann-windowed segments of [`SEGMENT`] samples at half
//! overlap (at most [`MAX_SEGMENTS`], spread evenly over the recording), amplitudes averaged.
//!
//! - **Amplitude spectrum**: `2·|X_k| / Σw` per bin, so a sine of amplitude A reads A at its
//!   frequency (in the recording's units).
//! - **Envelope spectrum** (the classic bearing-diagnosis tool): each segment is band-passed to
//!   [`ENVELOPE_BAND_HZ`] in the frequency domain and made analytic (negative frequencies
//!   zeroed, positive ones doubled, inverse FFT: the Hilbert transform), its magnitude is the
//!   envelope; the envelope's own amplitude spectrum shows the *repetition rate* of impacts that
//!   ring the structure's resonances — a defect's BPFO/BPFI/BSF/FTF — which the plain spectrum
//!   buries under shaft harmonics. The band starts at 2 kHz, above the harmonic floor of shafts
//!   up to 60 Hz (1x…20x ≤ 1.2 kHz), and ends below the recording's own Nyquist frequency.
//!   The envelope is computed at a lower rate than the segment's (the band shifted to 0 Hz,
//!   `EnvelopePlan`), and its spectrum is returned up to at least [`ENVELOPE_CLEAN_HZ`]
//!   (~3 kHz for a 2–9.2 kHz band): every defect line the evidence reads is below that.
//!
//! [`measure`] reads a line: the largest bin within ±tolerance of the expected frequency,
//! refined by parabolic interpolation of the log amplitude (a Hann peak is a parabola in dB to
//! within a few hundredths of a bin), and its **prominence**: the peak over the median of the
//! bins from 0.8x to 1.2x of the frequency, outside the search band, in dB.

use realfft::num_complex::Complex;
use realfft::RealToComplex;

use crate::plans;

/// Samples per Welch segment. Why 65536: at 20.48 kHz that is 3.2 s and 0.3125 Hz per bin —
/// a BPFO near 50 Hz is then located to well under 1 %, and a 5 s record still gives two
/// half-overlapping segments. A power of two keeps the FFTs at their fastest.
pub const SEGMENT: usize = 65_536;

/// At most this many segments are averaged. Why 12: the detection tests (defect lines found in
/// ≥ 90 % of records, none in ≥ 90 % of healthy ones) pass on 10 s records, 5 segments; 12 are
/// more than twice that (~20 s at 20.48 kHz, spread over the whole recording) and bring a noise
/// bin's variance down ~12x. 24 cost twice the time (the spectra are about a quarter of a 60 s
/// request) for a floor that was already steady.
pub const MAX_SEGMENTS: usize = 12;

/// The envelope band's lower edge and its upper edge as a share of the usable Nyquist frequency.
pub const ENVELOPE_BAND_HZ: (f64, f64) = (2_000.0, 0.9);

/// Averaged amplitude and envelope spectra, `resolution_hz` per bin from 0 Hz.
#[derive(Debug, Clone)]
pub struct Spectra {
    pub resolution_hz: f64,
    pub amplitude: Vec<f32>,
    pub envelope: Vec<f32>,
    /// The envelope band actually used, Hz.
    pub envelope_band_hz: (f64, f64),
    pub segments: usize,
}

/// The spectra of `x` sampled at `rate` Hz; `nyquist_hz` is the highest frequency the original
/// recording holds (below `rate / 2` when it was upsampled). `x` must hold at least 64 samples.
pub fn analyse(x: &[f32], rate: f64, nyquist_hz: f64) -> Spectra {
    let segment = SEGMENT.min(x.len()) & !1;
    let hop = segment / 2;
    let count = ((x.len() - segment) / hop + 1).max(1);
    let picked: Vec<usize> = if count <= MAX_SEGMENTS {
        (0..count).map(|i| i * hop).collect()
    } else {
        (0..MAX_SEGMENTS)
            .map(|i| i * (count - 1) / (MAX_SEGMENTS - 1) * hop)
            .collect()
    };
    let forward = plans::real_forward(segment);
    let window = plans::hann(segment);
    let gain = 2.0 / window.iter().map(|&w| w as f64).sum::<f64>();
    let resolution_hz = rate / segment as f64;
    let bins = segment / 2 + 1;
    let band = EnvelopeBand::new(segment, rate, nyquist_hz);
    let (band_bins, band_count) = (band.bins, band.count);
    let envelope_plan = EnvelopePlan::new(segment, band_count, resolution_hz);
    let m = envelope_plan.points;
    let inverse = plans::complex_inverse(m);
    let envelope_forward = plans::real_forward(m);
    let envelope_window = plans::hann(m);
    let envelope_gain = 2.0 / envelope_window.iter().map(|&w| w as f64).sum::<f64>();
    let mut amplitude = vec![0.0f64; bins];
    let mut envelope = vec![0.0f64; m / 2 + 1];
    let mut buffer = vec![0.0f32; segment];
    let mut spectrum = forward.make_output_vec();
    let mut envelope_spectrum = envelope_forward.make_output_vec();
    let mut analytic = vec![Complex::new(0.0f32, 0.0); m];
    for &start in &picked {
        let seg = &x[start..start + segment];
        let mean = crate::mean(seg) as f32;
        // One forward FFT of the mean-free segment serves both spectra.
        for (b, &v) in buffer.iter_mut().zip(seg) {
            *b = v - mean;
        }
        forward
            .process(&mut buffer, &mut spectrum)
            .expect("buffer sizes match the plan");
        // Amplitude spectrum of the Hann-windowed segment, from the plain one: the periodic
        // Hann window is 0.5 − ¼e^{+i2πn/N} − ¼e^{−i2πn/N}, so windowing is the three-tap
        // convolution X_w[k] = ½X[k] − ¼(X[k−1] + X[k+1]) (X[−1] = X̄[1] and
        // X[N/2+1] = X̄[N/2−1] for a real signal). Exact, and one FFT per segment fewer.
        for (k, sum) in amplitude.iter_mut().enumerate() {
            let prev = if k == 0 {
                spectrum[1].conj()
            } else {
                spectrum[k - 1]
            };
            let next = if k + 1 == bins {
                spectrum[bins - 2].conj()
            } else {
                spectrum[k + 1]
            };
            *sum += magnitude(spectrum[k] * 0.5 - (prev + next) * 0.25) as f64;
        }
        // Envelope: the band's bins, doubled, shifted down to 0 Hz (see [`EnvelopePlan`]) and
        // transformed back: the analytic signal of the band-passed segment, at `m` points.
        analytic[..band_count]
            .iter_mut()
            .zip(&spectrum[band_bins.0..band_bins.0 + band_count])
            .for_each(|(a, &s)| *a = s * 2.0);
        analytic[band_count..].fill(Complex::new(0.0, 0.0));
        inverse.process(&mut analytic);
        let scale = 1.0 / segment as f32;
        // The envelope |analytic|, computed once: its mean, then mean-free and windowed.
        let envelope_samples = &mut buffer[..m];
        for (b, &c) in envelope_samples.iter_mut().zip(&analytic) {
            *b = magnitude(c);
        }
        let env_mean = crate::sum(envelope_samples) as f32 * scale / m as f32;
        for (b, &w) in envelope_samples.iter_mut().zip(envelope_window.iter()) {
            *b = (*b * scale - env_mean) * w;
        }
        add_magnitudes(
            &*envelope_forward,
            envelope_samples,
            &mut envelope_spectrum,
            &mut envelope,
        );
    }
    let count = picked.len() as f64;
    Spectra {
        resolution_hz,
        amplitude: amplitude
            .iter()
            .map(|&a| (a * gain / count) as f32)
            .collect(),
        envelope: envelope[..envelope_plan.clean_bins]
            .iter()
            .map(|&a| (a * envelope_gain / count) as f32)
            .collect(),
        envelope_band_hz: band.hz,
        segments: picked.len(),
    }
}

/// The envelope band of segments of `segment` samples at `rate` Hz, from a recording holding
/// up to `nyquist_hz` ([`ENVELOPE_BAND_HZ`]).
struct EnvelopeBand {
    /// Its edges, Hz.
    hz: (f64, f64),
    /// Its first and last bin of the segment's spectrum.
    bins: (usize, usize),
    /// Bins from the first to the last.
    count: usize,
}

impl EnvelopeBand {
    fn new(segment: usize, rate: f64, nyquist_hz: f64) -> EnvelopeBand {
        let resolution_hz = rate / segment as f64;
        let hz = (
            ENVELOPE_BAND_HZ.0,
            (ENVELOPE_BAND_HZ.1 * nyquist_hz.min(rate / 2.0)).max(ENVELOPE_BAND_HZ.0),
        );
        let bins = (
            (hz.0 / resolution_hz).ceil() as usize,
            ((hz.1 / resolution_hz).floor() as usize).min(segment / 2),
        );
        let count = (bins.1 + 1).saturating_sub(bins.0);
        EnvelopeBand { hz, bins, count }
    }
}

/// Makes the FFT plans and windows [`analyse`] uses for recordings of at least one
/// [`SEGMENT`] at `rate` Hz holding up to `nyquist_hz` ([`crate::plans`]).
pub fn prepare(rate: f64, nyquist_hz: f64) {
    plans::real_forward(SEGMENT);
    plans::hann(SEGMENT);
    let band = EnvelopeBand::new(SEGMENT, rate, nyquist_hz);
    let m = EnvelopePlan::new(SEGMENT, band.count, rate / SEGMENT as f64).points;
    plans::complex_inverse(m);
    plans::real_forward(m);
    plans::hann(m);
}

/// The envelope spectrum is returned up to at least this frequency, Hz (see [`EnvelopePlan`]).
/// Why 2.5 kHz:
/// the defect lines read are at most 2x BPFI, ~12x the shaft speed (6208: BPFI = 5.4x): 2.5 kHz
/// covers shafts to 12 000 rpm with their local floor (±20 %).
pub const ENVELOPE_CLEAN_HZ: f64 = 2_500.0;

/// How the envelope of a segment is computed: an inverse FFT of `points`, not of the segment.
///
/// The magnitude of an analytic signal does not change when its spectrum is shifted (that
/// multiplies it by `e^{iωt}`), so the band's bins are moved down to start at 0 Hz and
/// transformed with a power of two `m` that holds them: the envelope at `f_s = m · resolution`
/// samples per second instead of the segment's rate (a 2–9.2 kHz band of a 65 536-point segment
/// at 20.48 kHz: 32 768 points at 10.24 kHz, halving both FFTs of the envelope). The analytic
/// signal itself is exact (all the band's bins are kept). Its squared magnitude holds
/// frequencies up to the band's width `B`, which at `f_s` fold back onto `f_s − B … f_s / 2`;
/// so `m` is the smallest that keeps `f_s − B ≥` [`ENVELOPE_CLEAN_HZ`], and the envelope
/// spectrum is returned only below `f_s − B` (`clean_bins`). The magnitude (not squared) has a
/// weak tail beyond `B` that folds too, at any rate; at 10.24 kHz a little more of it than at
/// 20.48 kHz (a unit test compares both ways: impact lines within 1 % in amplitude and 0.5 dB
/// in prominence, the 50–2000 Hz floor within 2 %).
struct EnvelopePlan {
    points: usize,
    clean_bins: usize,
}

impl EnvelopePlan {
    fn new(segment: usize, band_count: usize, resolution_hz: f64) -> EnvelopePlan {
        let mut points = band_count.max(2).next_power_of_two().min(segment);
        let clean = |points: usize| (points - band_count) as f64 * resolution_hz;
        while points < segment && clean(points) < ENVELOPE_CLEAN_HZ {
            points *= 2;
        }
        let clean_bins = if points == segment {
            // The segment's own rate: what the full-rate envelope always held (|z|² of the
            // band reaches B, below the segment's Nyquist frequency for every band used here).
            points / 2 + 1
        } else {
            ((clean(points) / resolution_hz) as usize + 1).min(points / 2 + 1)
        };
        EnvelopePlan { points, clean_bins }
    }
}

fn add_magnitudes(
    fft: &dyn RealToComplex<f32>,
    input: &mut [f32],
    output: &mut [Complex<f32>],
    sum: &mut [f64],
) {
    fft.process(input, output)
        .expect("buffer sizes match the plan");
    for (s, &c) in sum.iter_mut().zip(output.iter()) {
        *s += magnitude(c) as f64;
    }
}

/// |c|. Why not `Complex::norm`: that is `hypot`, which guards against overflow in software
/// (libm's `hypotf` was 5 % of a `/diagnose` request in the guest); spectra of f32 samples
/// are nowhere near f32's range, so the square root of the squared norm is as exact.
#[inline]
fn magnitude(c: Complex<f32>) -> f32 {
    c.norm_sqr().sqrt()
}

/// One measured spectral line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Where the peak is (interpolated), Hz.
    pub frequency_hz: f64,
    pub amplitude: f64,
    /// The peak over the local median, dB.
    pub prominence_db: f64,
}

/// The line nearest `target_hz` in `spectrum` (`resolution_hz` per bin): the largest bin
/// within ±`tolerance` (a share of the target, at least 1.5 bins), and its prominence.
/// `None` when the target is outside the spectrum.
pub fn measure(
    spectrum: &[f32],
    resolution_hz: f64,
    target_hz: f64,
    tolerance: f64,
) -> Option<Line> {
    let half_width = (target_hz * tolerance / resolution_hz).max(1.5);
    let center = target_hz / resolution_hz;
    let lo = (center - half_width).ceil().max(1.0) as usize;
    let hi = (center + half_width).floor() as usize;
    if hi + 1 >= spectrum.len() || lo > hi {
        return None;
    }
    let k = (lo..=hi).max_by(|&a, &b| spectrum[a].total_cmp(&spectrum[b]))?;
    let (a, b, c) = (
        (spectrum[k - 1].max(1e-30) as f64).ln(),
        (spectrum[k].max(1e-30) as f64).ln(),
        (spectrum[k + 1].max(1e-30) as f64).ln(),
    );
    let denom = a - 2.0 * b + c;
    let offset = if denom < 0.0 {
        (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    let amplitude = (b - 0.25 * (a - c) * offset).exp();
    // Local floor: 0.8x..1.2x of the target (at least 8 bins each side), the search band left out.
    let reach = (0.2 * center).max(half_width + 8.0);
    let from = (center - reach).max(1.0) as usize;
    let to = ((center + reach) as usize).min(spectrum.len() - 1);
    let mut floor: Vec<f32> = (from..=to)
        .filter(|&i| i < lo.saturating_sub(1) || i > hi + 1)
        .map(|i| spectrum[i])
        .collect();
    let median = if floor.is_empty() {
        f32::MIN_POSITIVE
    } else {
        let mid = floor.len() / 2;
        *floor.select_nth_unstable_by(mid, f32::total_cmp).1
    };
    Some(Line {
        frequency_hz: (k as f64 + offset) * resolution_hz,
        amplitude,
        prominence_db: 20.0 * (amplitude / (median.max(1e-30) as f64)).log10(),
    })
}

/// At most this many points of a spectrum are returned to a client (`spectrum_max_hz=`). Why
/// 1024: a plot is a few hundred pixels wide, and 1024 f32s are ~10 kB of JSON — the whole
/// 32 769-bin spectrum would be ~300 kB per diagnosis.
pub const MAX_EXCERPT_POINTS: usize = 1024;

/// A spectrum from 0 Hz up to a frequency, for a client to plot.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Excerpt {
    /// Hz between points (a multiple of the spectrum's resolution).
    pub step_hz: f64,
    /// The frequency of the last point, Hz.
    pub max_hz: f64,
    /// Point `i` is the largest bin of `[i·step, (i+1)·step)`: pooling by the maximum keeps
    /// every line at its height, where averaging would flatten the narrow ones.
    pub amplitude: Vec<f32>,
}

/// `spectrum` (`resolution_hz` per bin) from 0 Hz to `max_hz`, pooled down to at most
/// [`MAX_EXCERPT_POINTS`] points.
pub fn excerpt(spectrum: &[f32], resolution_hz: f64, max_hz: f64) -> Excerpt {
    let bins = ((max_hz / resolution_hz).floor() as usize + 1).min(spectrum.len());
    let pool = bins.div_ceil(MAX_EXCERPT_POINTS).max(1);
    let amplitude: Vec<f32> = spectrum[..bins]
        .chunks(pool)
        .map(|c| c.iter().copied().fold(0.0f32, f32::max))
        .collect();
    let step_hz = pool as f64 * resolution_hz;
    Excerpt {
        step_hz,
        max_hz: amplitude.len().saturating_sub(1) as f64 * step_hz,
        amplitude,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use realfft::RealFftPlanner;
    use rustfft::FftPlanner;

    #[test]
    fn the_amplitude_spectrum_is_that_of_the_windowed_segment() {
        // analyse() windows in the frequency domain; this is the FFT of the windowed samples.
        let rate = 20_480.0;
        let n = 4096;
        let mut state = 7u32;
        let x: Vec<f32> = (0..n)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                (2.0 * std::f64::consts::PI * 300.0 * i as f64 / rate).sin() as f32 + noise + 0.3
            })
            .collect();
        let s = analyse(&x, rate, rate / 2.0);
        assert_eq!(s.segments, 1);
        let mean = crate::mean(&x) as f32;
        let window = plans::hann_window(n);
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        let mut input: Vec<f32> = x
            .iter()
            .zip(&window)
            .map(|(&v, &w)| (v - mean) * w)
            .collect();
        let mut output = fft.make_output_vec();
        fft.process(&mut input, &mut output).unwrap();
        let gain = 2.0 / window.iter().map(|&w| w as f64).sum::<f64>();
        let peak = s.amplitude.iter().fold(0.0f32, |m, &a| m.max(a));
        for (k, (c, &a)) in output.iter().zip(&s.amplitude).enumerate() {
            let direct = (c.norm() as f64 * gain) as f32;
            assert!(
                (direct - a).abs() <= 1e-5 * peak,
                "bin {k}: {a} vs {direct}"
            );
        }
    }

    #[test]
    fn a_sine_reads_its_amplitude_and_frequency() {
        let rate = 20_480.0;
        let x: Vec<f32> = (0..102_400)
            .map(|i| 0.7 * (2.0 * std::f64::consts::PI * 123.4 * i as f64 / rate).sin() as f32)
            .collect();
        let s = analyse(&x, rate, rate / 2.0);
        assert_eq!(s.segments, 2);
        let line = measure(&s.amplitude, s.resolution_hz, 123.0, 0.02).unwrap();
        assert!((line.frequency_hz - 123.4).abs() < 0.05, "{line:?}");
        assert!((line.amplitude - 0.7).abs() < 0.02, "{line:?}");
        assert!(line.prominence_db > 40.0, "{line:?}");
    }

    #[test]
    fn an_impact_train_shows_its_rate_in_the_envelope() {
        // 3 kHz bursts repeating at 87 Hz, buried in a big 25 Hz shaft tone.
        let rate = 20_480.0;
        let x: Vec<f32> = (0..102_400)
            .map(|i| {
                let t = i as f64 / rate;
                let since = t % (1.0 / 87.0);
                let ring = (-since * 800.0).exp() * (2.0 * std::f64::consts::PI * 3000.0 * t).sin();
                (2.0 * (2.0 * std::f64::consts::PI * 25.0 * t).sin() + ring) as f32
            })
            .collect();
        let s = analyse(&x, rate, rate / 2.0);
        let line = measure(&s.envelope, s.resolution_hz, 87.0, 0.01).unwrap();
        assert!((line.frequency_hz - 87.0).abs() < 0.87, "{line:?}");
        assert!(line.prominence_db > 20.0, "{line:?}");
        // The shaft tone is outside the envelope band: no line at 25 Hz.
        let shaft = measure(&s.envelope, s.resolution_hz, 25.0, 0.01).unwrap();
        assert!(shaft.prominence_db < 6.0, "{shaft:?}");
    }

    #[test]
    fn the_shifted_envelope_is_the_full_rate_envelope_below_its_clean_limit() {
        // The envelope of one segment computed the direct way — band-pass, Hilbert transform
        // and envelope spectrum all at the segment's rate — against analyse()'s.
        let rate = 20_480.0;
        let n = SEGMENT;
        let mut state = 11u32;
        let x: Vec<f32> = (0..n)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                let t = i as f64 / rate;
                let ring = (-(t % (1.0 / 97.0)) * 600.0).exp()
                    * (2.0 * std::f64::consts::PI * 4_000.0 * t).sin();
                (ring + 0.5 * (2.0 * std::f64::consts::PI * 30.0 * t).sin()) as f32 + noise
            })
            .collect();
        let s = analyse(&x, rate, rate / 2.0);
        assert_eq!(s.segments, 1);
        let mean = crate::mean(&x) as f32;
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(n);
        let mut input: Vec<f32> = x.iter().map(|&v| v - mean).collect();
        let mut spectrum = fft.make_output_vec();
        fft.process(&mut input, &mut spectrum).unwrap();
        let (lo, hi) = (
            (s.envelope_band_hz.0 / s.resolution_hz).ceil() as usize,
            (s.envelope_band_hz.1 / s.resolution_hz).floor() as usize,
        );
        let mut analytic = vec![Complex::new(0.0f32, 0.0); n];
        for k in lo..=hi {
            analytic[k] = spectrum[k] * 2.0;
        }
        FftPlanner::new().plan_fft_inverse(n).process(&mut analytic);
        let window = plans::hann_window(n);
        let env: Vec<f32> = analytic.iter().map(|c| c.norm() / n as f32).collect();
        let env_mean = crate::mean(&env) as f32;
        let mut windowed: Vec<f32> = env
            .iter()
            .zip(&window)
            .map(|(&e, &w)| (e - env_mean) * w)
            .collect();
        fft.process(&mut windowed, &mut spectrum).unwrap();
        let gain = 2.0 / window.iter().map(|&w| w as f64).sum::<f64>();
        let direct: Vec<f32> = spectrum
            .iter()
            .map(|c| (c.norm() as f64 * gain) as f32)
            .collect();
        // Computed at 10.24 kHz here, returned up to its clean limit (≥ ENVELOPE_CLEAN_HZ).
        let clean_hz = (s.envelope.len() - 1) as f64 * s.resolution_hz;
        assert!(
            clean_hz >= ENVELOPE_CLEAN_HZ && s.envelope.len() < direct.len() / 2,
            "{clean_hz}"
        );
        // |z| is not band-limited (|z|² is, to the band's width): at 10.24 kHz more of its
        // tail folds back than at 20.48 kHz. What the evidence reads must not move: the lines
        // (the impact rate and its harmonics) and the floor they are measured against.
        for k in 1..=4 {
            let hz = 97.0 * k as f64;
            let a = measure(&s.envelope, s.resolution_hz, hz, 0.01).unwrap();
            let b = measure(&direct, s.resolution_hz, hz, 0.01).unwrap();
            assert!(
                (a.frequency_hz - b.frequency_hz).abs() < 0.01,
                "{a:?} {b:?}"
            );
            assert!(
                (a.amplitude / b.amplitude - 1.0).abs() < 0.01,
                "{a:?} {b:?}"
            );
            assert!(
                (a.prominence_db - b.prominence_db).abs() < 0.5,
                "{a:?} {b:?}"
            );
            assert!(a.prominence_db > 10.0, "{a:?}");
        }
        let band = (50.0 / s.resolution_hz) as usize..(2_000.0 / s.resolution_hz) as usize;
        let floor = |e: &[f32]| e[band.clone()].iter().map(|&v| v as f64).sum::<f64>();
        let ratio = floor(&s.envelope) / floor(&direct);
        assert!((ratio - 1.0).abs() < 0.02, "floor ratio {ratio}");
    }

    #[test]
    fn an_excerpt_keeps_its_lines_and_its_size() {
        let mut spectrum = vec![0.01f32; 32_769];
        spectrum[300] = 5.0; // 93.75 Hz at 0.3125 Hz per bin
        let e = excerpt(&spectrum, 0.3125, 500.0);
        assert_eq!((e.step_hz, e.amplitude.len()), (0.625, 801));
        assert_eq!(
            e.amplitude[150], 5.0,
            "the line survives pooling, at its frequency"
        );
        assert_eq!(e.max_hz, 500.0);
        let whole = excerpt(&spectrum, 0.3125, 1e9);
        assert!(
            whole.amplitude.len() <= MAX_EXCERPT_POINTS,
            "{}",
            whole.amplitude.len()
        );
        let small = excerpt(&spectrum, 0.3125, 100.0);
        assert_eq!((small.step_hz, small.amplitude.len()), (0.3125, 321));
    }
}
