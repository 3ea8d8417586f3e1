//! FFT plans and Hann windows, made once per process — and, in the component, once per *build*.
//!
//! A plan holds its twiddle factors: one `sin`/`cos` pair per point of every stage, computed in
//! f64 with libm's software trigonometry inside a wasm guest. Every request is a fresh instance
//! of the component, so without a cache each `/diagnose` paid for planning every FFT it runs
//! (65 536 and 32 768 points for the spectra, 102 400 for the features, 9600 and 4096 for a
//! 48 kHz resampler) and for its Hann windows. [`crate::prepare::for_model`] makes what a model card's
//! `/diagnose` uses; the component calls it while it is pre-initialised (`src/preinit.rs`), so
//! every instance *starts* with them in its memory snapshot, shared copy-on-write and only read.
//!
//! The caches are bounded ([`MAX_CACHED`] entries each): lengths follow the requests (a
//! recording shorter than a Welch segment has its own), and a long-running native process must
//! not grow with them. Beyond the bound, plans are made and dropped as they were before the
//! cache. This module is a leaf: the resampler keeps its own plans in a [`Cache`] of its own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

/// Entries kept per cache. Why 16: one model card needs ~6 lengths and a resampler per recorder
/// rate; 16 leave room for a few cards and the odd rates of CSV exports.
pub const MAX_CACHED: usize = 16;

/// A bounded map: values are kept while there is room, made fresh (and not kept) beyond it.
pub(crate) struct Cache<K, V> {
    entries: Mutex<BTreeMap<K, V>>,
}

impl<K: Ord + Copy, V: Clone> Cache<K, V> {
    pub(crate) const fn new() -> Self {
        Cache {
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// The value of `key`, made by `make` the first time (and kept while there is room).
    pub(crate) fn get_or(&self, key: K, make: impl FnOnce() -> V) -> V {
        // A panic while the lock was held cannot leave the map half-written (insert is the only
        // write), so a poisoned lock is used as it is.
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = entries.get(&key) {
            return v.clone();
        }
        let v = make();
        if entries.len() < MAX_CACHED {
            entries.insert(key, v.clone());
        }
        v
    }

    /// The keys held, sorted.
    pub(crate) fn keys(&self) -> Vec<K> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.keys().copied().collect()
    }
}

static REAL_FORWARD: Cache<usize, Arc<dyn RealToComplex<f32>>> = Cache::new();
static REAL_INVERSE: Cache<usize, Arc<dyn ComplexToReal<f32>>> = Cache::new();
static COMPLEX_INVERSE: Cache<usize, Arc<dyn Fft<f32>>> = Cache::new();
static HANN: Cache<usize, Arc<[f32]>> = Cache::new();

/// The forward real FFT of `n` points.
pub fn real_forward(n: usize) -> Arc<dyn RealToComplex<f32>> {
    REAL_FORWARD.get_or(n, || RealFftPlanner::new().plan_fft_forward(n))
}

/// The inverse real FFT of `n` points.
pub fn real_inverse(n: usize) -> Arc<dyn ComplexToReal<f32>> {
    REAL_INVERSE.get_or(n, || RealFftPlanner::new().plan_fft_inverse(n))
}

/// The inverse complex FFT of `n` points.
pub fn complex_inverse(n: usize) -> Arc<dyn Fft<f32>> {
    COMPLEX_INVERSE.get_or(n, || FftPlanner::new().plan_fft_inverse(n))
}

/// The periodic Hann window of `n` samples ([`hann_window`]), made once.
pub fn hann(n: usize) -> Arc<[f32]> {
    HANN.get_or(n, || hann_window(n).into())
}

/// The FFT lengths and Hann windows held, each sorted: `(real forward, real inverse, complex
/// inverse, hann)` (what the test of [`crate::prepare`] checks).
pub fn cached_lengths() -> [Vec<usize>; 4] {
    [
        REAL_FORWARD.keys(),
        REAL_INVERSE.keys(),
        COMPLEX_INVERSE.keys(),
        HANN.keys(),
    ]
}

/// The periodic Hann window of `n` samples (every windowed FFT of this crate uses it):
/// `0.5 − 0.5·cos(2πi/n)`.
///
/// Why not one `cos` per sample: libm's `cos` is software in wasm, and one `/diagnose` makes
/// windows of 65536 and 102400 samples. With this, the stage bench's features and spectra took
/// ~0.8 ms less in wasm (9.31 → 8.74 and 22.74 → 22.49 ms, one run each; a 102400-sample window
/// then cost 0.25 ms). Here `cos` runs once per [`HANN_BLOCK`] samples and once per offset
/// within a block; each sample is `cos(a + b) = cos a·cos b − sin a·sin b` in f64, within
/// ~1e-16 of the direct cosine — far below the f32 the window is stored in.
pub fn hann_window(n: usize) -> Vec<f32> {
    let step = 2.0 * std::f64::consts::PI / n as f64;
    let offsets: Vec<(f64, f64)> = (0..HANN_BLOCK.min(n))
        .map(|j| (j as f64 * step).sin_cos())
        .collect();
    let mut window = Vec::with_capacity(n);
    for start in (0..n).step_by(HANN_BLOCK) {
        let (sin_a, cos_a) = (start as f64 * step).sin_cos();
        for &(sin_b, cos_b) in &offsets[..HANN_BLOCK.min(n - start)] {
            window.push(0.5 - 0.5 * (cos_a * cos_b - sin_a * sin_b) as f32);
        }
    }
    window
}

/// Samples per block of [`hann_window`] (a block's first sample gets its own `cos`).
const HANN_BLOCK: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_made_once_and_a_cache_is_bounded() {
        let a = real_forward(1_000);
        let b = real_forward(1_000);
        assert!(Arc::ptr_eq(&a, &b), "the second call reuses the plan");
        assert!(Arc::ptr_eq(&hann(64), &hann(64)));
        assert_eq!(&*hann(64), hann_window(64).as_slice());
        // Many keys: a cache stops growing at its bound, values still come.
        let cache: Cache<usize, usize> = Cache::new();
        for n in 0..2 * MAX_CACHED {
            assert_eq!(cache.get_or(n, || n * 2), n * 2);
        }
        assert_eq!(cache.keys(), (0..MAX_CACHED).collect::<Vec<_>>());
        assert_eq!(cache.get_or(0, || 7), 0, "kept: made once");
        assert_eq!(
            cache.get_or(2 * MAX_CACHED - 1, || 7),
            7,
            "not kept: made again"
        );
    }

    #[test]
    fn hann_matches_the_direct_cosine() {
        for n in [64, 1000, 1025, 65_536, 102_400] {
            let w = hann_window(n);
            assert_eq!(w.len(), n);
            for (i, &v) in w.iter().enumerate() {
                let direct =
                    0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos() as f32;
                assert!(
                    (v - direct).abs() <= f32::EPSILON,
                    "n={n} i={i}: {v} vs {direct}"
                );
            }
        }
    }
}
