//! Cutting a recording into model windows, and the diagnosis of all of them together.
//!
//! Windows have the model card's length, start every `hop` samples, and never run past the end
//! (a tail shorter than a hop beyond the last window is not classified; `covered_s` says so).
//! The diagnosis is the class of the mean of the windows' probabilities — a soft vote, so one
//! confident window outweighs two hesitant ones — and `agreement` is the share of windows whose
//! own top class is the diagnosis: 1.0 for a condition that held for the whole recording.

/// The most windows one request may ask for. Why: a tiny `hop_s` on a long recording would ask
/// the model for hundreds of thousands of windows (minutes of CPU); 2048 covers a 600 s
/// recording at a 0.3 s hop.
pub const MAX_WINDOWS: usize = 2048;

/// Start offsets of the windows of `length` samples at `hop` over `n` samples (`n ≥ length`).
pub fn starts(n: usize, length: usize, hop: usize) -> Vec<usize> {
    debug_assert!(hop > 0 && length > 0);
    if n < length {
        return Vec::new();
    }
    (0..=(n - length) / hop).map(|i| i * hop).collect()
}

/// The aggregate of per-window class probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub class: usize,
    /// The mean probability of `class`.
    pub confidence: f32,
    /// Share of windows whose top class is `class`.
    pub agreement: f32,
    /// Mean probability of every class.
    pub mean_probabilities: Vec<f32>,
}

/// Index of the largest value: the first of equals, NaNs never chosen, 0 when nothing
/// qualifies (an empty slice, or only NaNs).
pub fn argmax<T: PartialOrd + Copy>(values: &[T]) -> usize {
    let mut best: Option<(usize, T)> = None;
    for (i, &v) in values.iter().enumerate() {
        // A NaN compares with nothing, itself included.
        let is_number = v.partial_cmp(&v).is_some();
        if is_number && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map_or(0, |(i, _)| i)
}

/// Soft vote over windows' probabilities (each a row of `classes` values; at least one row).
pub fn aggregate(probabilities: &[Vec<f32>]) -> Aggregate {
    let classes = probabilities[0].len();
    let mut mean = vec![0.0f64; classes];
    for row in probabilities {
        for (m, &p) in mean.iter_mut().zip(row) {
            *m += p as f64;
        }
    }
    let n = probabilities.len() as f64;
    let mean: Vec<f32> = mean.iter().map(|m| (m / n) as f32).collect();
    let class = argmax(&mean);
    let agreeing = probabilities.iter().filter(|p| argmax(p) == class).count();
    Aggregate {
        class,
        confidence: mean[class],
        agreement: (agreeing as f64 / n) as f32,
        mean_probabilities: mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_fit_inside_the_recording() {
        assert_eq!(starts(10, 4, 2), vec![0, 2, 4, 6]);
        assert_eq!(starts(4, 4, 2), vec![0]);
        assert_eq!(starts(11, 4, 4), vec![0, 4]);
        assert!(starts(3, 4, 2).is_empty());
    }

    #[test]
    fn argmax_takes_the_first_largest_number() {
        assert_eq!(argmax(&[1.0f32, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0, 0.5]), 1);
        assert_eq!(argmax(&[f64::NEG_INFINITY, -1.0]), 1);
        assert_eq!(argmax::<f32>(&[]), 0);
    }

    #[test]
    fn soft_vote_and_agreement() {
        let a = aggregate(&[
            vec![0.9, 0.1, 0.0],
            vec![0.4, 0.6, 0.0],
            vec![0.45, 0.55, 0.0],
        ]);
        // Mean: 0.583 / 0.417: class 0 wins although 2 of 3 windows voted 1.
        assert_eq!(a.class, 0);
        assert!((a.confidence - 0.5833).abs() < 1e-3);
        assert!((a.agreement - 1.0 / 3.0).abs() < 1e-6);
    }
}
