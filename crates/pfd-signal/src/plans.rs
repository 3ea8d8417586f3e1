//! FFT plans and windows, made once per process — and, in the component, once per *build*.
//!
//! A plan holds its twiddle factors: one `sin`/`cos` pair per point of every stage, computed in
//! f64 with libm's software trigonometry inside a wasm guest. Every request is a fresh instance
//! of the component, so without a cache each `/diagnose` paid for planning every FFT it runs
//! (65 536 and 32 768 points for the spectra, 102 400 for the features, 9600 and 4096 for a
//! 48 kHz resampler) and for its Hann windows: ~1.5 % of a 60 s request's CPU went to `sin`,
//! `cos` and their argument reduction alone in a profile of pfd-host, a larger share of a short
//! request's. [`prepare`] makes the plans and windows a model card's `/diagnose` uses; the
//! component calls it while it is pre-initialised (`src/preinit.rs`), so every instance *starts*
//! with them in its memory snapshot, shared copy-on-write and only read.
//!
//! The caches are bounded ([`MAX_CACHED`] lengths of each kind, [`MAX_CACHED`] resamplers):
//! lengths follow the requests (a recording shorter than a Welch segment has its own), and a
//! long-running native process must not grow with them. Beyond the bound, plans are made and
//! dropped as before the cache.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, LazyLock, Mutex};

use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

/// Lengths (or rate pairs) kept per cache. Why 16: one model card needs ~6 lengths and a
/// resampler per recorder rate; 16 leave room for a few cards and the odd rates of CSV exports.
pub const MAX_CACHED: usize = 16;

/// A bounded map: kept while there is room, made fresh (and not kept) beyond it.
struct Cache<K, V> {
    entries: Mutex<HashMap<K, V>>,
}

impl<K: Eq + Hash + Copy, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Cache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get_or(&self, key: K, make: impl FnOnce() -> V) -> V {
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

    #[cfg(test)]
    fn contains(&self, key: &K) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(key)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

type Planned<T> = Cache<usize, Arc<T>>;

/// Every cache, one set per process ([`PLANS`]; tests make their own).
struct Plans {
    real_forward: Planned<dyn RealToComplex<f32>>,
    real_inverse: Planned<dyn ComplexToReal<f32>>,
    complex_inverse: Planned<dyn Fft<f32>>,
    hann: Planned<[f32]>,
    resamplers: Cache<(usize, usize), Arc<crate::resample::Plan>>,
}

static PLANS: LazyLock<Plans> = LazyLock::new(Plans::new);

impl Plans {
    fn new() -> Plans {
        Plans {
            real_forward: Cache::new(),
            real_inverse: Cache::new(),
            complex_inverse: Cache::new(),
            hann: Cache::new(),
            resamplers: Cache::new(),
        }
    }

    fn real_forward(&self, n: usize) -> Arc<dyn RealToComplex<f32>> {
        self.real_forward
            .get_or(n, || RealFftPlanner::new().plan_fft_forward(n))
    }

    fn real_inverse(&self, n: usize) -> Arc<dyn ComplexToReal<f32>> {
        self.real_inverse
            .get_or(n, || RealFftPlanner::new().plan_fft_inverse(n))
    }

    fn complex_inverse(&self, n: usize) -> Arc<dyn Fft<f32>> {
        self.complex_inverse
            .get_or(n, || FftPlanner::new().plan_fft_inverse(n))
    }

    fn hann(&self, n: usize) -> Arc<[f32]> {
        self.hann.get_or(n, || crate::spectrum::hann(n).into())
    }

    fn resampler(&self, fs_in: usize, fs_out: usize) -> Arc<crate::resample::Plan> {
        self.resamplers.get_or((fs_in, fs_out), || {
            Arc::new(crate::resample::Plan::new(fs_in, fs_out))
        })
    }

    fn prepare(&self, rate: u32, window: usize) {
        let segment = crate::spectrum::SEGMENT;
        let rate_hz = rate as f64;
        for n in [segment, window] {
            self.real_forward(n);
            self.hann(n);
        }
        // The envelope's points depend on the band a recording holds: one per prepared rate
        // (they coincide for the usual ones).
        for fs_in in PREPARED_RATES.into_iter().chain([rate as usize]) {
            let nyquist = (fs_in as f64 / 2.0).min(rate_hz / 2.0);
            let m = crate::spectrum::envelope_points(segment, rate_hz, nyquist);
            self.real_forward(m);
            self.complex_inverse(m);
            self.hann(m);
            if fs_in != rate as usize {
                self.resampler(fs_in, rate as usize);
            }
        }
    }
}

/// The forward real FFT of `n` points.
pub fn real_forward(n: usize) -> Arc<dyn RealToComplex<f32>> {
    PLANS.real_forward(n)
}

/// The inverse real FFT of `n` points.
pub fn real_inverse(n: usize) -> Arc<dyn ComplexToReal<f32>> {
    PLANS.real_inverse(n)
}

/// The inverse complex FFT of `n` points.
pub fn complex_inverse(n: usize) -> Arc<dyn Fft<f32>> {
    PLANS.complex_inverse(n)
}

/// The periodic Hann window of `n` samples ([`crate::spectrum::hann`]).
pub fn hann(n: usize) -> Arc<[f32]> {
    PLANS.hann(n)
}

/// The resampler from `fs_in` to `fs_out` whole Hz.
pub(crate) fn resampler(fs_in: usize, fs_out: usize) -> Arc<crate::resample::Plan> {
    PLANS.resampler(fs_in, fs_out)
}

/// Recorders' rates a resampler is prepared for: the rates the tests and the documentation
/// name (12.8, 25.6, 48 kHz) and CD audio's 44.1 kHz.
pub const PREPARED_RATES: [usize; 4] = [12_800, 25_600, 44_100, 48_000];

/// Makes the plans and windows `/diagnose` uses for a model of `rate` Hz and `window` samples:
/// the spectra's and the envelope's, the features', and the resamplers from
/// [`PREPARED_RATES`].
pub fn prepare(rate: u32, window: usize) {
    PLANS.prepare(rate, window);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_made_once_and_the_cache_is_bounded() {
        let a = real_forward(1_000);
        let b = real_forward(1_000);
        assert!(Arc::ptr_eq(&a, &b), "the second call reuses the plan");
        assert!(Arc::ptr_eq(&hann(64), &hann(64)));
        assert_eq!(&*hann(64), crate::spectrum::hann(64).as_slice());
        // Many keys: a cache stops growing at its bound, values still come.
        let cache: Cache<usize, usize> = Cache::new();
        for n in 0..2 * MAX_CACHED {
            assert_eq!(cache.get_or(n, || n * 2), n * 2);
        }
        assert_eq!(cache.len(), MAX_CACHED);
        assert_eq!(cache.get_or(0, || 7), 0, "kept: made once");
        assert_eq!(
            cache.get_or(2 * MAX_CACHED - 1, || 7),
            7,
            "not kept: made again"
        );
    }

    #[test]
    fn prepare_plans_what_a_diagnosis_of_each_prepared_rate_uses() {
        let plans = Plans::new();
        plans.prepare(20_480, 102_400);
        let segment = crate::spectrum::SEGMENT;
        for fs_in in PREPARED_RATES {
            // What analyse() plans for a recording at this rate, resampled to 20.48 kHz.
            let nyquist = (fs_in as f64 / 2.0).min(10_240.0);
            let m = crate::spectrum::envelope_points(segment, 20_480.0, nyquist);
            assert!(
                plans.real_forward.contains(&m)
                    && plans.complex_inverse.contains(&m)
                    && plans.hann.contains(&m),
                "{fs_in}: {m}"
            );
            assert!(plans.resamplers.contains(&(fs_in, 20_480)), "{fs_in}");
        }
        for n in [segment, 102_400] {
            assert!(
                plans.real_forward.contains(&n) && plans.hann.contains(&n),
                "{n}"
            );
        }
        assert!(
            !plans.resamplers.contains(&(20_480, 20_480)),
            "the model's rate needs none"
        );
    }
}
