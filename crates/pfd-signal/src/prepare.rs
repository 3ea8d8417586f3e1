//! Making ahead what a model card's `/diagnose` plans: its FFTs, Hann windows and resamplers
//! ([`crate::plans`], [`crate::resample`]).
//!
//! The component calls [`for_model`] while it is pre-initialised (`src/preinit.rs`), so every
//! instance starts with them in its memory snapshot instead of computing twiddle factors with
//! software `sin`/`cos` on each request. What a recording needs beyond them (another recorder
//! rate, a recording shorter than a Welch segment) is planned on its request as before.

/// Recorders' rates a resampler is prepared for: the rates the tests and the documentation name
/// (12.8, 25.6, 48 kHz) and CD audio's 44.1 kHz.
pub const PREPARED_RATES: [usize; 4] = [12_800, 25_600, 44_100, 48_000];

/// Makes the plans `/diagnose` uses for a model of `window` samples at `rate` Hz, for
/// recordings at `rate` and at each of [`PREPARED_RATES`] at least one Welch segment long.
pub fn for_model(rate: u32, window: usize) {
    crate::unknown::prepare(window);
    for fs_in in PREPARED_RATES.into_iter().chain([rate as usize]) {
        // The envelope band ends below the recording's own Nyquist frequency: one envelope
        // length per band (they coincide for the usual rates).
        let nyquist_hz = (fs_in as f64).min(rate as f64) / 2.0;
        crate::spectrum::prepare(rate as f64, nyquist_hz);
        crate::resample::prepare(fs_in, rate as usize);
    }
}
