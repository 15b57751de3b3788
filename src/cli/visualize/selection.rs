//! What the flags of `allconv visualize` select, read from their text: the layer (`--layer`), the
//! class (`--class`) and the test images (`--images`); an error names the flag and what it
//! expected.

use anyhow::{bail, Context};

/// `conv6` -> 6.
pub fn parse_layer(s: &str) -> anyhow::Result<usize> {
    s.strip_prefix("conv")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("--layer {s:?}: expected convK, e.g. conv6"))
}

/// `3` or `cat` -> 3, for a data set with these class names.
pub fn parse_class(s: &str, names: &[String]) -> anyhow::Result<usize> {
    let expected = || {
        let listed = if names.len() <= 20 {
            names.join(", ")
        } else {
            format!(
                "{}, ... (see the data set's label names)",
                names[..5].join(", ")
            )
        };
        format!(
            "--class {s:?}: expected 0-{} or one of {listed}",
            names.len() - 1
        )
    };
    if let Ok(k) = s.parse::<usize>() {
        if k < names.len() {
            return Ok(k);
        }
        bail!("{}", expected());
    }
    names.iter().position(|c| c == s).with_context(expected)
}

/// `test:A..B` or `test:I,J` -> test indices, each below `len`.
pub fn parse_images(s: &str, len: usize) -> anyhow::Result<Vec<usize>> {
    let bad = || format!("--images {s:?}: expected test:A..B or test:I,J,... (indices 0..{len})");
    let spec = s.strip_prefix("test:").with_context(bad)?;
    let indices: Vec<usize> = if let Some((a, b)) = spec.split_once("..") {
        let (a, b): (usize, usize) = (a.parse().with_context(bad)?, b.parse().with_context(bad)?);
        // Checked before the range becomes a list: its size is the user's to choose.
        if b > len {
            bail!(
                "--images {s:?}: test image {} does not exist (the test set has {len})",
                b - 1
            );
        }
        (a..b).collect()
    } else {
        spec.split(',')
            .map(|i| i.trim().parse().with_context(bad))
            .collect::<anyhow::Result<_>>()?
    };
    if indices.is_empty() {
        bail!("--images {s:?} selects no image");
    }
    if let Some(i) = indices.iter().find(|&&i| i >= len) {
        bail!("--images {s:?}: test image {i} does not exist (the test set has {len})");
    }
    Ok(indices)
}
