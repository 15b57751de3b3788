//! Comparing a tested result with its reference, and the test-only perturbation.

use std::fmt;

use crate::ops::ConvEngine;

/// What a case must meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// Every element has the reference's bits (equal infinities included).
    Bits,
    /// The largest difference is at most this fraction of the largest reference magnitude.
    Relative(f64),
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bits => f.write_str("bit-exact"),
            Self::Relative(r) => write!(f, "{r:.0e} rel"),
        }
    }
}

/// `(max_abs, max_rel, pass)` of `tested` against `reference`. A NaN difference, a length
/// mismatch or a differing infinity counts as infinitely wrong.
pub(crate) fn compare(tested: &[f64], reference: &[f64], tolerance: Tolerance) -> (f64, f64, bool) {
    if tested.len() != reference.len() {
        return (f64::INFINITY, f64::INFINITY, false);
    }
    let mut max_abs = 0f64;
    let mut bits_equal = true;
    for (&a, &b) in tested.iter().zip(reference) {
        bits_equal &= a.to_bits() == b.to_bits();
        let d = if a == b { 0.0 } else { (a - b).abs() };
        max_abs = max_abs.max(if d.is_nan() { f64::INFINITY } else { d });
    }
    let scale = reference
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    let max_rel = max_abs / scale;
    let pass = match tolerance {
        Tolerance::Bits => bits_equal,
        Tolerance::Relative(r) => max_rel <= r,
    };
    (max_abs, max_rel, pass)
}

/// Moves the first finite element of `values` by the largest magnitude (at least 1) when
/// `target` ([`super::CheckOptions::perturb`]) names `op`, either alone (every engine) or as
/// `<op>@<engine>` (only the cases run on that convolution engine): a wrong result that every
/// tolerance catches.
pub(crate) fn perturb(
    target: Option<&str>,
    op: &str,
    engine: Option<ConvEngine>,
    values: &mut [f64],
) {
    let Some(target) = target else {
        return;
    };
    let hit = match target.split_once('@') {
        Some((name, on)) => name == op && engine.is_some_and(|e| e.name() == on),
        None => target == op,
    };
    if hit {
        let scale = values
            .iter()
            .filter(|v| v.is_finite())
            .fold(1f64, |m, v| m.max(v.abs()));
        if let Some(v) = values.iter_mut().find(|v| v.is_finite()) {
            *v += scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_is_against_the_largest_reference_magnitude() {
        // |2.1 - 2| = 0.1 (to rounding), largest |reference| = 4 -> 0.025.
        let (abs, rel, pass) = compare(&[2.1, -4.0], &[2.0, -4.0], Tolerance::Relative(0.03));
        assert!((abs - 0.1).abs() < 1e-12 && (rel - 0.025).abs() < 1e-12 && pass);
        let (_, _, pass) = compare(&[2.1, -4.0], &[2.0, -4.0], Tolerance::Relative(0.02));
        assert!(!pass);
    }

    #[test]
    fn bits_accept_equal_infinities_and_reject_nan_and_signed_zero() {
        let inf = f64::NEG_INFINITY;
        assert!(compare(&[inf, 1.0], &[inf, 1.0], Tolerance::Bits).2);
        let (abs, _, pass) = compare(&[f64::NAN], &[1.0], Tolerance::Bits);
        assert!(!pass && abs.is_infinite());
        // -0 == +0 numerically, but not bit for bit.
        assert!(!compare(&[-0.0], &[0.0], Tolerance::Bits).2);
        assert!(!compare(&[1.0], &[1.0, 2.0], Tolerance::Relative(1.0)).2);
    }
}
