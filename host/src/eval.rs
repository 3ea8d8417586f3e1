//! The numerical helpers of the tools (`model validate|compare|calibrate-unknown`, `nn-check`,
//! `bench`), one of each: closeness in numpy's terms, nearest-rank percentiles, a file digest.
//! Argmax and softmax are the component's own ([`pfd_core::postprocess`]), so the tools judge
//! logits exactly as the served API turns them into classes and confidences.

use sha2::{Digest, Sha256};

pub use pfd_core::postprocess::{argmax, softmax};

/// Closeness of `got` to the reference `want`, element-wise, in numpy's `allclose` terms:
/// `|got - want| <= atol + rtol·|want|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Closeness {
    /// Elements outside the tolerance (a NaN difference is outside; a length mismatch counts
    /// every element as outside).
    pub outside: usize,
    /// The largest |Δ| (infinite for a NaN difference or a length mismatch).
    pub max_abs_diff: f64,
    /// Where the largest |Δ| is.
    pub at: usize,
}

impl Closeness {
    /// Whether every element is within the tolerance.
    pub fn ok(&self) -> bool {
        self.outside == 0
    }
}

/// See [`Closeness`].
pub fn closeness(got: &[f32], want: &[f32], rtol: f64, atol: f64) -> Closeness {
    if got.len() != want.len() {
        return Closeness {
            outside: want.len().max(got.len()),
            max_abs_diff: f64::INFINITY,
            at: 0,
        };
    }
    let mut c = Closeness {
        outside: 0,
        max_abs_diff: 0.0,
        at: 0,
    };
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (f64::from(g) - f64::from(w)).abs();
        if d.is_nan() || d > atol + rtol * f64::from(w).abs() {
            c.outside += 1;
        }
        if d > c.max_abs_diff || d.is_nan() {
            c.max_abs_diff = if d.is_nan() { f64::INFINITY } else { d };
            c.at = i;
        }
    }
    c
}

/// Nearest-rank percentile `p` (0–100) of an ascending slice; `None` when it is empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn closeness_is_numpy_allclose() {
        let c = closeness(&[1.0, 2.0005, 3.0], &[1.0, 2.0, 3.1], 1e-3, 1e-5);
        assert_eq!(c.outside, 1);
        assert!(!c.ok());
        assert!((c.max_abs_diff - 0.1).abs() < 1e-6);
        assert_eq!(c.at, 2);
        assert!(closeness(&[1.0, 2.0], &[1.0, 2.0], 0.0, 0.0).ok());
        assert_eq!(closeness(&[1.0], &[1.0, 2.0], 0.0, 0.0).outside, 2);
        let nan = closeness(&[f32::NAN], &[1.0], 1.0, 1.0);
        assert_eq!(nan.outside, 1);
        assert_eq!(nan.max_abs_diff, f64::INFINITY);
        assert!(closeness(&[1.0, 2.0], &[1.0005, 2.0], 1e-3, 1e-5).ok());
        assert!(!closeness(&[1.0, 2.0], &[1.01, 2.0], 1e-3, 1e-5).ok());
        assert!(!closeness(&[0.0], &[f32::NAN], 1e-3, 1e-5).ok());
        assert!(!closeness(&[0.0], &[0.0, 1.0], 1e-3, 1e-5).ok());
    }

    #[test]
    fn argmax_and_percentiles() {
        assert_eq!(argmax(&[0.0, 3.0, 3.0, 1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
        assert_eq!(argmax(&[0.1, 3.0, -1.0]), 1);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v[..1], 99.0), Some(1.0));
        assert_eq!(percentile::<f64>(&[], 50.0), None);
        let d: Vec<Duration> = (1..=4).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 50.0), Some(Duration::from_millis(2)));
        assert_eq!(percentile(&d, 100.0), Some(Duration::from_millis(4)));
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&v[..1], 99.0), Some(Duration::from_millis(1)));
    }

    #[test]
    fn digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
