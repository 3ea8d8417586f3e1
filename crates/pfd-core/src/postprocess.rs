//! Logits → the answer: softmax, the winning class, top-k.

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Index of the largest value (the first one on ties); one implementation for every route.
pub use pfd_signal::windows::argmax;

/// Class-name → probability, serialised as a JSON object in insertion order (class order, or
/// most likely first for top-k).
#[derive(Debug, Clone, PartialEq)]
pub struct Probabilities(pub Vec<(String, f32)>);

impl Serialize for Probabilities {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, p) in &self.0 {
            map.serialize_entry(name, p)?;
        }
        map.end()
    }
}

/// The decoded output for one signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub class: usize,
    pub confidence: f32,
    pub probabilities: Vec<f32>,
}

pub fn decide(logits: &[f32]) -> Decision {
    let probabilities = softmax(logits);
    let class = argmax(&probabilities);
    Decision {
        class,
        confidence: probabilities[class],
        probabilities,
    }
}

impl Decision {
    /// All classes in index order, or the `k` most likely, highest first.
    pub fn named(&self, names: &[String], top_k: Option<usize>) -> Probabilities {
        let mut pairs: Vec<(usize, f32)> = self.probabilities.iter().copied().enumerate().collect();
        if let Some(k) = top_k {
            // Stable sort: equal probabilities keep class order.
            pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
            pairs.truncate(k);
        }
        Probabilities(
            pairs
                .into_iter()
                .map(|(i, p)| (names[i].clone(), p))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_is_stable() {
        let p = softmax(&[1000.0, 1001.0, 999.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p.iter().all(|x| x.is_finite()));
        assert_eq!(argmax(&p), 1);
    }

    #[test]
    fn top_k_orders_and_truncates() {
        let d = decide(&[0.0, 3.0, 1.0, 2.0]);
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let top = d.named(&names, Some(2));
        assert_eq!(
            top.0.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["b", "d"]
        );
        let json = serde_json::to_string(&d.named(&names, None)).unwrap();
        assert!(json.starts_with("{\"a\":"), "{json}");
        assert_eq!(d.class, 1);
        assert_eq!(d.confidence, d.probabilities[1]);
    }
}
