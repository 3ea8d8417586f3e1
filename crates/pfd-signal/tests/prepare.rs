//! `prepare::for_model` makes everything a diagnosis at a prepared rate plans: after it, such a
//! diagnosis adds nothing to the caches. A binary of its own, so the caches start empty.

use pfd_signal::prepare::{for_model, PREPARED_RATES};
use pfd_signal::{plans, resample, spectrum, unknown};

const RATE: u32 = 20_480;
const WINDOW: usize = 102_400;

/// What `/diagnose` plans for a recording of `seconds` at `fs_in` Hz: resampling, the unknown
/// score's features and the spectra (pfd-core's diagnose route, in the same order).
fn diagnose_stages(fs_in: usize, seconds: f64) {
    let n = (fs_in as f64 * seconds) as usize;
    let x: Vec<f32> = (0..n)
        .map(|i| (2.0 * std::f64::consts::PI * 157.0 * i as f64 / fs_in as f64).sin() as f32)
        .collect();
    let signal = resample::resample(x.into(), fs_in as f64, RATE).unwrap();
    assert!(signal.len() >= WINDOW, "{fs_in}: {}", signal.len());
    let windows = [&signal[..WINDOW]];
    unknown::features(&windows, &[vec![0.0; 11]], RATE as f64);
    let nyquist_hz = (fs_in as f64 / 2.0).min(RATE as f64 / 2.0);
    spectrum::analyse(&signal, RATE as f64, nyquist_hz);
}

#[test]
fn a_diagnosis_at_a_prepared_rate_plans_nothing_more() {
    assert!(plans::cached_lengths().iter().all(Vec::is_empty));
    for_model(RATE, WINDOW);
    let lengths = plans::cached_lengths();
    let rates = resample::cached_rates();
    assert!(lengths.iter().all(|l| !l.is_empty()), "{lengths:?}");
    assert_eq!(
        rates,
        [12_800, 25_600, 44_100, 48_000].map(|r| (r, RATE as usize)),
        "a resampler per prepared rate, none for the model's own"
    );
    for fs_in in PREPARED_RATES.into_iter().chain([RATE as usize]) {
        diagnose_stages(fs_in, 6.0);
        assert_eq!(plans::cached_lengths(), lengths, "{fs_in} Hz planned more");
        assert_eq!(resample::cached_rates(), rates, "{fs_in} Hz planned more");
    }
    // A rate not prepared is planned on its request (and kept: there is room).
    diagnose_stages(16_000, 6.0);
    assert!(resample::cached_rates().contains(&(16_000, RATE as usize)));
}
