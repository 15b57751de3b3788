//! Mean and sample standard deviation of one number over seeds.

/// Mean (and sample standard deviation with several values) of one number over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// How many values.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1), `None` for a single value.
    pub std: Option<f64>,
}

impl Stats {
    /// Statistics of a non-empty list; `None` for an empty one.
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| {
            let sum_sq: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
            (sum_sq / (n - 1) as f64).sqrt()
        });
        Some(Stats { n, mean, std })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_three_values() {
        // mean (10 + 12 + 14) / 3 = 12; sample variance (4 + 0 + 4) / 2 = 4, std 2.
        let s = Stats::of(&[10.0, 12.0, 14.0]).unwrap();
        assert_eq!(s.n, 3);
        assert!((s.mean - 12.0).abs() < 1e-12);
        assert!((s.std.unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(Stats::of(&[5.0]).unwrap().std, None);
        assert_eq!(Stats::of(&[]), None);
    }
}
