//! Physics evidence, independent of the network: what a vibration analyst reads off a recording.
//!
//! - **Indicators** (time domain, mean removed): RMS, peak (largest |x|), crest factor
//!   (peak / RMS: ~1.4 for a sine, ~3–4 for Gaussian noise, higher for impacts) and kurtosis
//!   (m4 / m2²: 1.5 for a sine, 3 for Gaussian noise, > 3 for impulsive signals such as bearing
//!   defects and cavitation).
//! - **Shaft lines** (amplitude spectrum; needs `rpm`): the 1x, 2x and 3x harmonics, each
//!   searched within ±[`SHAFT_TOLERANCE`] of its order, and the sub-synchronous band
//!   [`SUBSYNCHRONOUS_BAND`] (0.38–0.48x, where oil whirl lives); `dominant` names the largest
//!   of the four. A dominant 1x points at imbalance, a strong 2x at misalignment, a
//!   sub-synchronous line above the 1x at oil whirl.
//! - **Defect lines** (envelope spectrum; needs `rpm` and a bearing): BPFO, BPFI, BSF and FTF
//!   ([`crate::bearings`]) and their second harmonics, each searched within
//!   ±[`DEFECT_TOLERANCE`] (bearings slip 1–2 %).
//!
//! A 2x line whose fundamental is absent, with its peak nearer a harmonic of a present defect,
//! is reported as explained by that harmonic and not present ([`explain_harmonics`]).
//!
//! Every line reports its measured frequency, amplitude (the recording's units) and prominence
//! over the local median ([`crate::spectrum::measure`]); it is `present` when the prominence is
//! at least [`PRESENT_DB`]. Why 10 dB: a noise-only bin of a Welch average of two segments
//! exceeds its neighbourhood's median by more than 6 dB now and then; 10 dB keeps healthy
//! recordings free of false lines (tested on generated records: tests/test_diagnose.py).

use serde::Serialize;

use crate::bearings::{defect_orders, DefectOrders, Geometry};
use crate::samples::Samples;
use crate::spectrum::{measure, Spectra};
use crate::{BLOCK, LANES};

/// Search half-width of shaft harmonics, as a share of their frequency. Why 2 %: a nameplate or
/// tachometer rpm is good to a percent or two under load.
pub const SHAFT_TOLERANCE: f64 = 0.02;
/// Search half-width of defect lines: slip puts them 1–2 % off their kinematic frequency.
pub const DEFECT_TOLERANCE: f64 = 0.02;
/// The sub-synchronous band, in orders of the shaft speed.
pub const SUBSYNCHRONOUS_BAND: (f64, f64) = (0.38, 0.48);
/// The prominence from which a line counts as present, dB.
pub const PRESENT_DB: f64 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Indicators {
    pub rms: f64,
    pub peak: f64,
    pub crest_factor: f64,
    pub kurtosis: f64,
}

/// Indicators of `x` (mean removed); a flat signal reads 0 for crest factor and kurtosis.
pub fn indicators(x: &[f32]) -> Indicators {
    survey(&x.into()).indicators
}

/// What two passes over a recording measure: its indicators, and what the input checks
/// ([`crate::unknown::checks`]) read — extremes and how many samples sit on them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Survey {
    pub indicators: Indicators,
    pub mean: f64,
    /// The smallest and largest sample (`inf` and `-inf` for none).
    pub min: f32,
    pub max: f32,
    /// Samples equal to `min`, to `max`.
    pub at_min: usize,
    pub at_max: usize,
    pub samples: usize,
}

/// The first pass's sums: Σx and the running extremes of each lane.
#[derive(Clone, Copy)]
struct Extent {
    total: f64,
    lo: [f32; LANES],
    hi: [f32; LANES],
}

/// `acc` with the samples of `x` added (the survey's first pass over one block).
fn extent(x: &[f32], mut acc: Extent) -> Extent {
    let mut blocks = x.chunks_exact(BLOCK);
    for block in &mut blocks {
        let mut sum = [0.0f32; LANES];
        for chunk in block.chunks_exact(LANES) {
            for j in 0..LANES {
                let v = chunk[j];
                sum[j] += v;
                acc.lo[j] = if v < acc.lo[j] { v } else { acc.lo[j] };
                acc.hi[j] = if v > acc.hi[j] { v } else { acc.hi[j] };
            }
        }
        acc.total += sum.iter().map(|&v| v as f64).sum::<f64>();
    }
    for &v in blocks.remainder() {
        acc.total += v as f64;
        acc.lo[0] = if v < acc.lo[0] { v } else { acc.lo[0] };
        acc.hi[0] = if v > acc.hi[0] { v } else { acc.hi[0] };
    }
    acc
}

/// The second pass's sums: Σd², Σd⁴ (d = x − mean) and the samples on either extreme.
#[derive(Clone, Copy, Default)]
struct Moments {
    m2: f64,
    m4: f64,
    at_min: usize,
    at_max: usize,
}

/// `acc` with the samples of `x` added (the survey's second pass over one block).
fn moments(x: &[f32], mean: f32, min: f32, max: f32, mut acc: Moments) -> Moments {
    let mut blocks = x.chunks_exact(BLOCK);
    for block in &mut blocks {
        let (mut s2, mut s4) = ([0.0f32; LANES], [0.0f32; LANES]);
        for chunk in block.chunks_exact(LANES) {
            for j in 0..LANES {
                let d = chunk[j] - mean;
                let d2 = d * d;
                s2[j] += d2;
                s4[j] += d2 * d2;
            }
        }
        acc.m2 += s2.iter().map(|&v| v as f64).sum::<f64>();
        acc.m4 += s4.iter().map(|&v| v as f64).sum::<f64>();
    }
    for &v in blocks.remainder() {
        let d = (v - mean) as f64;
        acc.m2 += d * d;
        acc.m4 += d * d * d * d;
    }
    // Counted in a loop of its own over the block while it is in cache: plain compares and adds
    // are the fastest form measured in wasm (60 s at 48 kHz: 0.4 ms alone; as f32 lanes of
    // `1.0`/`0.0` selects, 5.5 ms; as i32 lanes inside the moments' loop, the pass took 4.07
    // against 3.63 ms with epoch interruption on, best of 15).
    for &v in x {
        acc.at_min += usize::from(v == min);
        acc.at_max += usize::from(v == max);
    }
    acc
}

/// The [`Survey`] of `x`, in two passes of f32 lanes like [`crate::sum`]'s (16-bit PCM converted
/// block by block, [`Samples::for_each_block`]): the sum and extremes, then the moments about the mean
/// and the samples on the extremes.
///
/// Precision: the deviations are taken from the f64 mean rounded to f32 (within 6e-8 of it
/// relatively); the moments then differ from all-f64 ones by ~1e-6 relatively — measured in the
/// unit test below — far below any threshold or feature spread. The peak |x − mean| is that of
/// an extreme (`x − m` rounds monotonically in `x`), so it needs no pass of its own.
///
/// Why `<`/`>` selects, not `f32::min`/`max`: those are NaN-aware, several scalar instructions
/// each in wasm, where selects compile to SIMD `pmin`/`pmax` (the input checks of a 60 s,
/// 48 kHz recording took 6.3 ms with folds of `f32::min`/`max` in wasm, 1.0 ms with selects:
/// `scripts/wasm-example.sh pfd-signal stage_bench`). Samples are finite here: decoding
/// refuses NaN and ±inf.
pub fn survey(x: &Samples) -> Survey {
    // Blocks come in order, and only the last may leave a remainder (`READ_BLOCK` is a multiple
    // of `BLOCK`). The passes take their accumulators by value and hand them back: captured by
    // reference in the closure, they stayed in memory in the wasm build (10 ms for a 60 s,
    // 48 kHz survey against 3.8 ms).
    let mut first = Extent {
        total: 0.0,
        lo: [f32::INFINITY; LANES],
        hi: [f32::NEG_INFINITY; LANES],
    };
    x.for_each_block(|block| first = extent(block, first));
    let min = first
        .lo
        .iter()
        .fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
    let max = first
        .hi
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let n = x.len();
    let mean = if n == 0 { 0.0 } else { first.total / n as f64 };

    let m = mean as f32;
    let mut second = Moments::default();
    x.for_each_block(|block| second = moments(block, m, min, max, second));
    let Moments {
        m2,
        m4,
        at_min,
        at_max,
    } = second;
    let peak = if n == 0 {
        0.0
    } else {
        (max - m).max(m - min) as f64
    };
    let (m2, m4) = (m2 / n.max(1) as f64, m4 / n.max(1) as f64);
    let rms = m2.sqrt();
    Survey {
        indicators: Indicators {
            rms,
            peak,
            crest_factor: if rms > 0.0 { peak / rms } else { 0.0 },
            kurtosis: if m2 > 0.0 { m4 / (m2 * m2) } else { 0.0 },
        },
        mean,
        min,
        max,
        at_min,
        at_max,
        samples: n,
    }
}

/// One line the evidence looked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineEvidence {
    pub name: String,
    /// Where it should be, Hz.
    pub expected_hz: f64,
    /// Where the largest peak near it is, Hz.
    pub frequency_hz: f64,
    pub amplitude: f64,
    pub prominence_db: f64,
    pub present: bool,
    /// For a harmonic whose own fundamental is absent: the harmonic of a present defect its peak
    /// lies nearer to (see [`explain_harmonics`]); the line is then not `present`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explained_by: Option<String>,
}

fn line(
    spectrum: &[f32],
    resolution_hz: f64,
    name: &str,
    expected_hz: f64,
    tolerance: f64,
) -> Option<LineEvidence> {
    let l = measure(spectrum, resolution_hz, expected_hz, tolerance)?;
    Some(LineEvidence {
        name: name.to_string(),
        expected_hz,
        frequency_hz: l.frequency_hz,
        amplitude: l.amplitude,
        prominence_db: l.prominence_db,
        present: l.prominence_db >= PRESENT_DB,
        explained_by: None,
    })
}

/// Harmonics of a present defect up to this order are candidates for explaining another
/// defect's harmonic. Why 4: a defect's impulse train shows harmonics well past its 2x, and the
/// defect orders of common bearings put 3x or 4x of one within 2 % of 2x of another.
pub const EXPLAINING_HARMONICS: u32 = 4;

/// Refuses harmonics that are another defect's in disguise. A 2x line whose own fundamental is
/// absent, and whose peak lies nearer to `k`× a present fundamental (k ≤ [`EXPLAINING_HARMONICS`],
/// within [`DEFECT_TOLERANCE`]) than to its own frequency, is that harmonic: a 6205's 3×BPFO is
/// 0.7 % from its 2×BPFI, so an outer-race defect would otherwise also "show" 2×BPFI.
/// `fundamentals` are each defect's label and kinematic frequency (Hz).
fn explain_harmonics(lines: &mut [LineEvidence], present: &[String], fundamentals: &[(&str, f64)]) {
    for l in lines.iter_mut().filter(|l| l.present) {
        let Some(own) = l.name.strip_prefix("2x") else {
            continue;
        };
        if present.iter().any(|p| p == own) {
            continue;
        }
        let own_distance = (l.frequency_hz - l.expected_hz).abs();
        let nearest = fundamentals
            .iter()
            .filter(|(label, _)| *label != own && present.iter().any(|p| p == label))
            .flat_map(|&(label, hz)| {
                (1..=EXPLAINING_HARMONICS).map(move |k| (label, k, k as f64 * hz))
            })
            .map(|(label, k, hz)| (label, k, hz, (l.frequency_hz - hz).abs()))
            .filter(|&(_, _, hz, d)| d <= DEFECT_TOLERANCE * hz && d < own_distance)
            .min_by(|a, b| a.3.total_cmp(&b.3));
        if let Some((label, k, _, _)) = nearest {
            l.present = false;
            l.explained_by = Some(if k == 1 {
                label.to_string()
            } else {
                format!("{k}x{label}")
            });
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShaftEvidence {
    pub rpm: f64,
    pub frequency_hz: f64,
    /// 1x, 2x, 3x.
    pub harmonics: Vec<LineEvidence>,
    pub subsynchronous: Option<LineEvidence>,
    /// The largest of the sub-synchronous line and the harmonics: "1x", "2x", "3x" or
    /// "subsynchronous".
    pub dominant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BearingEvidence {
    pub bearing: String,
    pub geometry: GeometryOut,
    /// Defect frequencies as orders of the shaft speed.
    pub orders: OrdersOut,
    /// FTF, BPFO, BPFI, BSF and their 2x, in the envelope spectrum.
    pub lines: Vec<LineEvidence>,
    /// The defects whose fundamental line is present.
    pub present: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GeometryOut {
    pub balls: u32,
    pub ball_diameter_mm: f64,
    pub pitch_diameter_mm: f64,
    pub contact_angle_deg: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OrdersOut {
    pub ftf: f64,
    pub bpfo: f64,
    pub bpfi: f64,
    pub bsf: f64,
}

impl From<&Geometry> for GeometryOut {
    fn from(g: &Geometry) -> Self {
        GeometryOut {
            balls: g.balls,
            ball_diameter_mm: g.ball_diameter_mm,
            pitch_diameter_mm: g.pitch_diameter_mm,
            contact_angle_deg: g.contact_angle_deg,
        }
    }
}

impl From<DefectOrders> for OrdersOut {
    fn from(o: DefectOrders) -> Self {
        OrdersOut {
            ftf: o.ftf,
            bpfo: o.bpfo,
            bpfi: o.bpfi,
            bsf: o.bsf,
        }
    }
}

/// A row of the bearing table as `GET /bearings` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BearingRow {
    pub name: &'static str,
    #[serde(flatten)]
    pub geometry: GeometryOut,
    /// Defect frequencies as orders of the shaft speed.
    pub orders: OrdersOut,
}

/// The bearing table with each bearing's defect orders.
pub fn bearing_table() -> Vec<BearingRow> {
    crate::bearings::TABLE
        .iter()
        .map(|(name, g)| BearingRow {
            name,
            geometry: GeometryOut::from(g),
            orders: OrdersOut::from(defect_orders(g)),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpectrumInfo {
    pub resolution_hz: f64,
    pub segments: usize,
    pub envelope_band_hz: [f64; 2],
    pub present_threshold_db: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub indicators: Indicators,
    pub spectrum: SpectrumInfo,
    pub shaft: Option<ShaftEvidence>,
    pub bearing: Option<BearingEvidence>,
    /// The envelope spectrum itself, when the request asks for it (`spectrum_max_hz=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope_spectrum: Option<crate::spectrum::Excerpt>,
}

/// The evidence of a recording from its indicators and spectra, given what is known of the
/// machine.
pub fn evidence(
    indicators: Indicators,
    spectra: &Spectra,
    rpm: Option<f64>,
    bearing: Option<&(String, Geometry)>,
) -> Evidence {
    let res = spectra.resolution_hz;
    let shaft = rpm.map(|rpm| {
        let f = rpm / 60.0;
        let harmonics: Vec<LineEvidence> = (1..=3)
            .filter_map(|k| {
                line(
                    &spectra.amplitude,
                    res,
                    &format!("{k}x"),
                    k as f64 * f,
                    SHAFT_TOLERANCE,
                )
            })
            .collect();
        let (lo, hi) = SUBSYNCHRONOUS_BAND;
        let center = (lo + hi) / 2.0;
        let subsynchronous = line(
            &spectra.amplitude,
            res,
            "subsynchronous",
            center * f,
            (hi - lo) / 2.0 / center,
        );
        let dominant = subsynchronous
            .iter()
            .chain(&harmonics)
            .filter(|l| l.present)
            .max_by(|a, b| a.amplitude.total_cmp(&b.amplitude))
            .map(|l| l.name.clone());
        ShaftEvidence {
            rpm,
            frequency_hz: f,
            harmonics,
            subsynchronous,
            dominant,
        }
    });
    let bearing = match (rpm, bearing) {
        (Some(rpm), Some((name, g))) => {
            let f = rpm / 60.0;
            let o = defect_orders(g);
            let mut lines = Vec::new();
            let mut present = Vec::new();
            let defects = [
                ("FTF", o.ftf),
                ("BPFO", o.bpfo),
                ("BPFI", o.bpfi),
                ("BSF", o.bsf),
            ];
            for (label, order) in defects {
                for h in 1..=2 {
                    let name = if h == 1 {
                        label.to_string()
                    } else {
                        format!("{h}x{label}")
                    };
                    if let Some(l) = line(
                        &spectra.envelope,
                        res,
                        &name,
                        h as f64 * order * f,
                        DEFECT_TOLERANCE,
                    ) {
                        if h == 1 && l.present {
                            present.push(label.to_string());
                        }
                        lines.push(l);
                    }
                }
            }
            let fundamentals: Vec<(&str, f64)> = defects
                .iter()
                .map(|&(label, order)| (label, order * f))
                .collect();
            explain_harmonics(&mut lines, &present, &fundamentals);
            Some(BearingEvidence {
                bearing: name.clone(),
                geometry: GeometryOut::from(g),
                orders: OrdersOut::from(o),
                lines,
                present,
            })
        }
        _ => None,
    };
    Evidence {
        indicators,
        spectrum: SpectrumInfo {
            resolution_hz: res,
            segments: spectra.segments,
            envelope_band_hz: [spectra.envelope_band_hz.0, spectra.envelope_band_hz.1],
            present_threshold_db: PRESENT_DB,
        },
        shaft,
        bearing,
        envelope_spectrum: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spectrum::analyse;

    #[test]
    fn indicators_match_all_f64_moments() {
        // Impacts on noise with an offset, an odd length (a partial last block).
        let mut state = 5u32;
        let x: Vec<f32> = (0..1_000_003)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                let impact = if i % 997 < 5 { 6.0 } else { 0.0 };
                3.0 + noise + impact
            })
            .collect();
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let m2 = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let m4 = x.iter().map(|&v| (v as f64 - mean).powi(4)).sum::<f64>() / n;
        let peak = x
            .iter()
            .map(|&v| (v as f64 - mean).abs())
            .fold(0.0, f64::max);
        let i = indicators(&x);
        let close = |a: f64, b: f64| (a / b - 1.0).abs() < 1e-5;
        assert!(close(i.rms, m2.sqrt()), "{i:?} {}", m2.sqrt());
        assert!(
            close(i.kurtosis, m4 / (m2 * m2)),
            "{i:?} {}",
            m4 / (m2 * m2)
        );
        assert!(close(i.peak, peak), "{i:?} {peak}");
        assert!(close(crate::mean(&x), mean), "{} {mean}", crate::mean(&x));
    }

    #[test]
    fn a_pcm_survey_is_that_of_its_floats() {
        // Several PCM blocks and a remainder; clipped at both ends so the counts matter.
        let n = 3 * crate::samples::READ_BLOCK + 77;
        let pcm: Vec<u8> = (0..n)
            .map(|i| ((i as f64 * 0.013).sin() * 40_000.0).clamp(-32_768.0, 32_767.0) as i16)
            .flat_map(i16::to_le_bytes)
            .collect();
        let samples = Samples::mono_pcm16(&pcm);
        let floats = samples.clone().into_vec();
        let (a, b) = (survey(&samples), survey(&floats[..].into()));
        assert_eq!((a.min, a.max, a.samples), (-1.0, 32_767.0 / 32_768.0, n));
        assert!(a.at_min > 100 && a.at_max > 100, "{a:?}");
        assert_eq!(
            (a.min, a.max, a.at_min, a.at_max),
            (b.min, b.max, b.at_min, b.at_max)
        );
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-6 * y.abs().max(1e-12);
        assert!(
            close(a.mean, b.mean) && close(a.indicators.rms, b.indicators.rms),
            "{a:?} {b:?}"
        );
        assert!(
            close(a.indicators.kurtosis, b.indicators.kurtosis),
            "{a:?} {b:?}"
        );
    }

    #[test]
    fn indicators_of_a_sine_and_of_silence() {
        let x: Vec<f32> = (0..20_480)
            .map(|i| (i as f32 * 0.05).sin() * 2.0 + 1.0)
            .collect();
        let i = indicators(&x);
        assert!((i.rms - 2.0f64.sqrt()).abs() < 0.01, "{i:?}");
        assert!((i.crest_factor - 2.0f64.sqrt()).abs() < 0.01, "{i:?}");
        assert!((i.kurtosis - 1.5).abs() < 0.01, "{i:?}");
        let flat = indicators(&[3.0; 100]);
        assert_eq!(
            (flat.rms, flat.crest_factor, flat.kurtosis),
            (0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn imbalance_like_signal_has_a_dominant_1x() {
        let rate = 20_480.0;
        let x: Vec<f32> = (0..102_400)
            .map(|i| {
                let t = i as f64 / rate;
                (3.0 * (2.0 * std::f64::consts::PI * 29.5 * t).sin()
                    + 0.1 * (2.0 * std::f64::consts::PI * 59.0 * t).sin()
                    + 0.01 * ((i * 7919 % 1000) as f64 / 500.0 - 1.0)) as f32
            })
            .collect();
        let s = analyse(&x, rate, rate / 2.0);
        let e = evidence(indicators(&x), &s, Some(29.5 * 60.0), None);
        let shaft = e.shaft.unwrap();
        assert_eq!(shaft.dominant.as_deref(), Some("1x"));
        assert!((shaft.harmonics[0].amplitude - 3.0).abs() < 0.1);
        assert!(!shaft.subsynchronous.unwrap().present);
    }

    /// An outer-race defect on a 6205 at 1770 rpm: envelope lines at 1x, 2x and 3x BPFO. Its
    /// 3xBPFO (317.3 Hz) lies in 2xBPFI's window (319.5 Hz ± 2 %); that line is BPFO's, not an
    /// inner-race harmonic.
    #[test]
    fn a_harmonic_of_a_present_defect_is_not_another_defects_line() {
        let (name, g) = crate::bearings::resolve(&crate::bearings::BearingQuery {
            name: Some("6205".into()),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        let rpm = 1770.0;
        let bpfo_hz = defect_orders(&g).bpfo * rpm / 60.0;
        let res = 0.25;
        let mut envelope: Vec<f32> = (0..8000)
            .map(|i| 1.0 + ((i * 7919) % 100) as f32 / 400.0)
            .collect();
        for k in 1..=3 {
            let bin = (k as f64 * bpfo_hz / res).round() as usize;
            envelope[bin] = 100.0;
        }
        let spectra = Spectra {
            resolution_hz: res,
            amplitude: vec![1.0; 8000],
            envelope,
            envelope_band_hz: (500.0, 5000.0),
            segments: 2,
        };
        let x = [0.0f32; 64];
        let e = evidence(indicators(&x), &spectra, Some(rpm), Some(&(name, g)));
        let b = e.bearing.unwrap();
        let by = |n: &str| b.lines.iter().find(|l| l.name == n).unwrap().clone();
        assert_eq!(b.present, ["BPFO"]);
        assert!(by("BPFO").present && by("2xBPFO").present);
        let inner = by("2xBPFI");
        assert!(!inner.present, "{inner:?}");
        assert_eq!(inner.explained_by.as_deref(), Some("3xBPFO"));
        assert!(
            inner.prominence_db >= PRESENT_DB,
            "the peak is there: {inner:?}"
        );
        assert_eq!(by("2xBPFO").explained_by, None);
    }
}
