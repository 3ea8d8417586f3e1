//! The "unknown condition" flag: is this recording like anything the model was trained on?
//!
//! A closed-set classifier names one of its classes for *any* input — white noise comes out as
//! "Wear + Lubrication" at 95 % confidence, a pure sine as "Oil Whirl". The network's own
//! confidence (maximum softmax, logit energy) barely moves on such inputs (measured on this
//! model: white noise scores like an in-distribution record), so the score combines it with
//! features of the input itself, and compares both with held-out records of the class the
//! model chose:
//!
//! | feature | what it catches |
//! |---|---|
//! | `energy` = −logsumexp(logits) | inputs the network is unsure about |
//! | `log_kurtosis` | a sine (1.5) or a chirp where impacts or noise were expected |
//! | `log_tonal_share` = ln(share of power in the strongest 0.2 % of bins) | white noise and chirps (no lines at all; measured: −4.2 against −0.8 ± 0.4 for the class they are taken for) |
//! | `log_spectral_flatness` (20 Hz – 5 kHz) | white noise (flat) or a bare tone (no floor at all) |
//! | `log_non_tonal_share` = ln(1 − share of power in the largest line) | a single pure tone |
//!
//! Features are averaged over (at most [`MAX_FEATURE_WINDOWS`] of) the model's windows, so a
//! 60 s recording is measured like the 5 s records of the calibration. The **score** is the
//! largest |z| of the features against the mean and spread of held-out records the model gave
//! the same class (`ModelCard.unknown`, written by `pfd-host model calibrate-unknown`); the flag
//! is raised when it exceeds the calibrated threshold, chosen so that at most 1 % of the
//! calibration records are flagged (the held-out share is in the card).
//!
//! Two input checks flag a recording whatever the score, with their own reasons:
//! - **flat line**: no variation at all (a disconnected or saturated-off sensor);
//! - **clipping**: at least [`CLIPPED_SHARE`] of the samples sit exactly on the recording's
//!   maximum or minimum (an overdriven analyser input). A full-scale sine quantised to 16 bits
//!   has well under 0.3 % of its samples on its top code, so real signals do not trip it.
//!
//! The absolute level is deliberately not a feature: the model normalises every window by its
//! RMS, and recorders report in g, m/s², volts or full scale alike.

use serde::{Deserialize, Serialize};

use crate::evidence::{survey, Survey};
use crate::plans;

/// Features are computed on at most this many windows, evenly spread. Why 4: each costs an FFT
/// of a full window, and the calibration's records are one window each (5 s): the flag's
/// threshold is set on single windows, and the tests (in-distribution records of 1–2 windows
/// and one of 23 per cell, out-of-distribution ones of 1) hold with it. Averaging more windows
/// only narrows a long recording's features further than the calibration's.
pub const MAX_FEATURE_WINDOWS: usize = 4;
/// Share of samples on the extreme value from which a recording counts as clipped.
pub const CLIPPED_SHARE: f64 = 0.01;
/// The spectral features' band, Hz (below 12.8 kHz recordings' Nyquist frequency).
pub const FEATURE_BAND_HZ: (f64, f64) = (20.0, 5_000.0);

/// Feature names, in the order of [`Features::values`] and of the calibration's vectors.
pub const FEATURE_NAMES: [&str; 5] = [
    "energy",
    "log_kurtosis",
    "log_tonal_share",
    "log_spectral_flatness",
    "log_non_tonal_share",
];

/// What the message of a feature's reason calls it.
const FEATURE_WORDS: [&str; 5] = [
    "the network's logit energy",
    "kurtosis",
    "the share of power in the strongest spectral lines",
    "spectral flatness",
    "the share of power outside the strongest line",
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    pub values: [f64; 5],
}

/// −logsumexp of one window's logits.
pub fn energy(logits: &[f32]) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
    -(max + sum.ln())
}

/// `Σ ln(v + offset)` over `values` (each sum positive and normal), with one `ln` per
/// [`LN_BLOCK`] values: `ln Π m_i + ln 2 · Σ e_i` for `v + offset = m_i · 2^{e_i}`, `m_i ∈ [1, 2)`.
///
/// Why: libm's `ln` is software in the guest, and the spectral flatness takes one per bin —
/// ~25 000 per feature window. The product of 64 mantissas stays below 2⁶⁴ and is exact to
/// ~64 roundings (relative 1e-14), far below the features' spread.
fn sum_ln(values: &[f64], offset: f64) -> f64 {
    const MANTISSA: u64 = (1 << 52) - 1;
    const ONE: u64 = 1023 << 52;
    let mut exponents: i64 = 0;
    let mut logs = 0.0;
    for block in values.chunks(LN_BLOCK) {
        let mut product = 1.0f64;
        for &v in block {
            let bits = (v + offset).to_bits();
            debug_assert!(f64::from_bits(bits).is_normal() && bits >> 63 == 0);
            exponents += (bits >> 52) as i64 - 1023;
            product *= f64::from_bits((bits & MANTISSA) | ONE);
        }
        logs += product.ln();
    }
    logs + exponents as f64 * std::f64::consts::LN_2
}

/// Values per `ln` of [`sum_ln`].
const LN_BLOCK: usize = 64;

/// Makes the FFT plan and Hann window [`features`] uses for model windows of `length`
/// samples ([`crate::plans`]).
pub fn prepare(length: usize) {
    plans::real_forward(length);
    plans::hann(length);
}

/// The features of a recording from its model windows (at `rate` Hz) and their logits.
pub fn features(windows: &[&[f32]], logits: &[Vec<f32>], rate: f64) -> Features {
    let picked: Vec<usize> = if windows.len() <= MAX_FEATURE_WINDOWS {
        (0..windows.len()).collect()
    } else {
        (0..MAX_FEATURE_WINDOWS)
            .map(|i| i * (windows.len() - 1) / (MAX_FEATURE_WINDOWS - 1))
            .collect()
    };
    let length = windows[0].len();
    let fft = plans::real_forward(length);
    let mut input = fft.make_input_vec();
    let mut output = fft.make_output_vec();
    let resolution = rate / length as f64;
    let lo = ((FEATURE_BAND_HZ.0 / resolution).ceil() as usize).max(1);
    let hi =
        ((FEATURE_BAND_HZ.1.min(rate * 0.45) / resolution).floor() as usize).min(output.len() - 1);
    let window = plans::hann(length);
    let mut sums = [0.0f64; 5];
    for &w in &picked {
        let x = windows[w];
        let survey = survey(&x.into());
        let ind = survey.indicators;
        let mean = survey.mean as f32;
        for ((v, &s), &h) in input.iter_mut().zip(x).zip(window.iter()) {
            *v = (s - mean) * h;
        }
        fft.process(&mut input, &mut output)
            .expect("sizes match the plan");
        let power: Vec<f64> = output[lo..=hi]
            .iter()
            .map(|c| c.norm_sqr() as f64)
            .collect();
        let total: f64 = power.iter().sum();
        let (flatness, non_tonal, tonal) = if total > 0.0 {
            let tiny = 1e-12 * power.iter().fold(0.0f64, |m, &p| m.max(p));
            let log_mean = sum_ln(&power, tiny) / power.len() as f64;
            let k = crate::windows::argmax(&power);
            let line: f64 = power[k.saturating_sub(3)..(k + 4).min(power.len())]
                .iter()
                .sum();
            // The strongest 0.2 %, summed largest first. Why select then sort: only those
            // few need ordering (a full sort of ~25 000 bins per window was a tenth of the
            // features' time); the sum is the same, term for term.
            let top = (power.len() / 500).max(1);
            let mut strongest = power.clone();
            strongest.select_nth_unstable_by(top - 1, |a, b| b.total_cmp(a));
            strongest.truncate(top);
            strongest.sort_by(|a, b| b.total_cmp(a));
            let strongest: f64 = strongest.iter().sum();
            (
                log_mean - (total / power.len() as f64).ln(),
                (1.0 - line / total).max(1e-9).ln(),
                (strongest / total).max(1e-9).ln(),
            )
        } else {
            (0.0, 0.0, 0.0)
        };
        sums[0] += energy(&logits[w]);
        sums[1] += ind.kurtosis.max(1e-9).ln();
        sums[2] += tonal;
        sums[3] += flatness;
        sums[4] += non_tonal;
    }
    let k = picked.len() as f64;
    Features {
        values: sums.map(|s| s / k),
    }
}

/// One class's calibration: the features of held-out records the model gave this class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    pub count: usize,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// The calibration stored in the model card (`"unknown"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub features: Vec<String>,
    /// Per predicted class (the card's class order).
    pub classes: Vec<ClassStats>,
    /// All calibration records together: used for a class with fewer than [`MIN_CLASS_COUNT`].
    pub pooled: ClassStats,
    pub threshold: f64,
    /// How the numbers were made and what they measured (free-form, for the card's readers).
    #[serde(default)]
    pub provenance: serde_json::Value,
}

/// Fewer calibration records than this for a class, and its statistics are not trusted.
pub const MIN_CLASS_COUNT: usize = 10;

impl Calibration {
    /// Whether it fits these features and a model of `classes` classes.
    pub fn check(&self, classes: usize) -> Result<(), String> {
        if self.features != FEATURE_NAMES {
            return Err(format!(
                "unknown.features is {:?}, this build computes {:?}: recalibrate",
                self.features, FEATURE_NAMES
            ));
        }
        if self.classes.len() != classes {
            return Err(format!(
                "unknown.classes has {} entries for a model of {classes} classes",
                self.classes.len()
            ));
        }
        let ok = |s: &ClassStats| s.mean.len() == 5 && s.std.len() == 5;
        if !self.classes.iter().all(ok) || !ok(&self.pooled) {
            return Err("unknown: every mean and std needs 5 values".into());
        }
        Ok(())
    }

    /// The statistics a record of predicted class `class` is compared with.
    fn stats(&self, class: usize) -> &ClassStats {
        self.classes
            .get(class)
            .filter(|s| s.count >= MIN_CLASS_COUNT)
            .unwrap_or(&self.pooled)
    }

    /// Each feature's z against class `class` (spreads floored so a feature that hardly varies
    /// in calibration cannot make every new record an outlier).
    pub fn z_scores(&self, features: &Features, class: usize) -> [f64; 5] {
        let s = self.stats(class);
        std::array::from_fn(|i| {
            let spread = s.std[i].max(0.05 * self.pooled.std[i]).max(1e-6);
            (features.values[i] - s.mean[i]) / spread
        })
    }

    pub fn score(&self, features: &Features, class: usize) -> f64 {
        self.z_scores(features, class)
            .iter()
            .fold(0.0f64, |m, z| m.max(z.abs()))
    }
}

/// Mean and (population) standard deviation of feature vectors.
pub fn stats(rows: &[[f64; 5]]) -> ClassStats {
    let n = rows.len().max(1) as f64;
    let mean: Vec<f64> = (0..5)
        .map(|i| rows.iter().map(|r| r[i]).sum::<f64>() / n)
        .collect();
    let std = (0..5)
        .map(|i| (rows.iter().map(|r| (r[i] - mean[i]).powi(2)).sum::<f64>() / n).sqrt())
        .collect();
    ClassStats {
        count: rows.len(),
        mean,
        std,
    }
}

/// The input checks of a recording from its [`Survey`]: reasons that flag it whatever the score.
pub fn checks(survey: &Survey) -> Vec<String> {
    let Survey {
        min,
        max,
        at_min,
        at_max,
        samples,
        ..
    } = *survey;
    if max <= min {
        return vec![format!(
            "flat line: every sample is {min}; is the sensor connected?"
        )];
    }
    let share = at_max.max(at_min) as f64 / samples as f64;
    if share >= CLIPPED_SHARE {
        vec![format!(
            "clipped: {:.1} % of the samples sit on the extreme value {}; lower the input gain",
            share * 100.0,
            if at_max >= at_min { max } else { min }
        )]
    } else {
        Vec::new()
    }
}

/// The verdict reported in a diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub flag: bool,
    /// `None` without a calibration.
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    pub calibrated: bool,
    pub reasons: Vec<String>,
    /// The features, by name, as measured.
    pub features: serde_json::Map<String, serde_json::Value>,
}

/// The verdict for a recording: its input checks, and its score against `calibration` for the
/// diagnosed `class` (named `class_name` in reasons).
pub fn verdict(
    calibration: Option<&Calibration>,
    features: &Features,
    class: usize,
    class_name: &str,
    checks: Vec<String>,
) -> Verdict {
    let mut reasons = checks;
    let (score, threshold) = match calibration {
        Some(c) => {
            let z = c.z_scores(features, class);
            let score = z.iter().fold(0.0f64, |m, z| m.max(z.abs()));
            if score > c.threshold {
                let mut order: Vec<usize> = (0..5).filter(|&i| z[i].abs() > c.threshold).collect();
                order.sort_by(|&a, &b| z[b].abs().total_cmp(&z[a].abs()));
                for i in order {
                    reasons.push(format!(
                        "{} is {:.1} standard deviations {} what {class_name} records show",
                        FEATURE_WORDS[i],
                        z[i].abs(),
                        if z[i] > 0.0 { "above" } else { "below" }
                    ));
                }
            }
            (Some(score), Some(c.threshold))
        }
        None => (None, None),
    };
    let flag = !reasons.is_empty();
    Verdict {
        flag,
        score,
        threshold,
        calibrated: calibration.is_some(),
        reasons,
        features: FEATURE_NAMES
            .iter()
            .zip(features.values)
            .map(|(n, v)| (n.to_string(), serde_json::json!(v)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sum_of_logs_is_the_logs_summed() {
        let mut state = 3u64;
        let values: Vec<f64> = (0..25_001)
            .map(|i| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                // Powers over 30 decades, and exact zeros (the offset keeps them finite).
                if i % 97 == 0 {
                    0.0
                } else {
                    10f64.powf((state >> 11) as f64 / (1u64 << 53) as f64 * 30.0 - 20.0)
                }
            })
            .collect();
        let offset = 1e-12;
        let direct: f64 = values.iter().map(|&v| (v + offset).ln()).sum();
        let blocked = sum_ln(&values, offset);
        assert!(
            (blocked - direct).abs() <= 1e-12 * direct.abs().max(1.0),
            "{blocked} vs {direct}"
        );
    }

    fn input_checks(x: &[f32]) -> Vec<String> {
        checks(&survey(&x.into()))
    }

    #[test]
    fn input_checks_find_flat_and_clipped_but_not_a_quantised_sine() {
        assert!(input_checks(&[0.5; 1000])[0].starts_with("flat line"));
        let sine: Vec<f32> = (0..102_400)
            .map(|i| ((i as f32 * 0.0191).sin() * 32767.0).round() / 32768.0)
            .collect();
        assert!(input_checks(&sine).is_empty(), "{:?}", input_checks(&sine));
        let clipped: Vec<f32> = sine.iter().map(|v| (v * 3.0).clamp(-1.0, 1.0)).collect();
        assert!(input_checks(&clipped)[0].starts_with("clipped"));
    }

    #[test]
    fn extremes_and_clipping_at_any_length_and_either_end() {
        for n in [1usize, 7, 8, 9, 1003] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
            let want = (
                x.iter().copied().fold(f32::INFINITY, f32::min),
                x.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            );
            let s = survey(&x[..].into());
            assert_eq!((s.min, s.max), want, "n={n}");
            let count = |v: f32| x.iter().filter(|&&y| y == v).count();
            assert_eq!(
                (s.at_min, s.at_max),
                (count(want.0), count(want.1)),
                "n={n}"
            );
        }
        // The extreme sits in the remainder past the last group of eight.
        let mut x = vec![0.25f32; 1003];
        x[1002] = -3.0;
        x[500] = 2.0;
        let s = survey(&x[..].into());
        assert_eq!((s.min, s.max, s.at_min, s.at_max), (-3.0, 2.0, 1, 1));
        // Clipped at the negative end: the message names that end.
        let clipped: Vec<f32> = (0..10_000)
            .map(|i| ((i as f32 * 0.0191).sin() * 3.0).max(-1.0))
            .collect();
        let reasons = input_checks(&clipped);
        assert!(reasons[0].contains("extreme value -1"), "{reasons:?}");
        assert!(input_checks(&[])
            .first()
            .is_some_and(|r| r.starts_with("flat line")));
    }

    #[test]
    fn scores_name_the_feature_that_is_off() {
        let calm = ClassStats {
            count: 50,
            mean: vec![-5.0, 1.0, 1.5, -3.0, -1.0],
            std: vec![0.5; 5],
        };
        let c = Calibration {
            features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            classes: vec![calm.clone(), calm.clone()],
            pooled: calm,
            threshold: 4.0,
            provenance: serde_json::Value::Null,
        };
        c.check(2).unwrap();
        let near = Features {
            values: [-5.2, 1.1, 1.4, -3.1, -1.0],
        };
        let v = verdict(Some(&c), &near, 0, "Healthy", Vec::new());
        assert!(!v.flag && v.score.unwrap() < 1.0, "{v:?}");
        let flat = Features {
            values: [-5.0, 1.0, 1.5, -0.5, -1.0],
        };
        let v = verdict(Some(&c), &flat, 1, "Wear", Vec::new());
        assert!(v.flag);
        assert_eq!(
            v.reasons,
            vec!["spectral flatness is 5.0 standard deviations above what Wear records show"]
        );
        assert!(c.check(3).is_err());
    }

    #[test]
    fn energy_is_minus_logsumexp() {
        let e = energy(&[0.0, 0.0]);
        assert!((e + 2.0f64.ln()).abs() < 1e-9);
    }
}
