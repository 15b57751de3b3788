//! What each row of a picture shows, as `index.json` says it: the target in words and, for a
//! unit, the position of the unit's output its reconstruction is taken at and whether the unit
//! fired in the image at all. A unit that never fired is 0 everywhere, so its "largest" position
//! is the first one and its reconstruction shows nothing the image made it do: the caption says
//! "unit inactive" instead of letting such a picture pass for a finding.

use allconv_models::{Target, UnitPeak};
use serde_json::{json, Value};

/// What the target is, in words (`names`: the data set's class names), with what its peak in
/// one image says (`peak`: for a unit target).
pub fn describe(target: Target, names: &[String], peak: Option<&UnitPeak>) -> String {
    match (target, peak) {
        (Target::Class(k), _) => {
            format!("class {k} ({})", names.get(k).map_or("?", String::as_str))
        }
        (Target::Unit { conv, unit }, Some(p)) if !p.fired() => format!(
            "conv{conv} unit {unit}: unit inactive (it never fired in this image; the \
             reconstruction is taken at row {}, column {}, the first position)",
            p.row, p.col
        ),
        (Target::Unit { conv, unit }, Some(p)) => format!(
            "conv{conv} unit {unit} at its largest activation (row {}, column {})",
            p.row, p.col
        ),
        (Target::Unit { conv, unit }, None) => {
            format!("conv{conv} unit {unit} at its largest activation")
        }
    }
}

/// The `index.json` fields of a unit's peak in one image: `position` ([row, column] of the
/// convolution's output), `activation` there and `fired`.
pub fn peak_fields(peak: &UnitPeak) -> Value {
    json!({
        "position": [peak.row, peak.col],
        "activation": peak.activation,
        "fired": peak.fired(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_that_never_fired_is_called_inactive() {
        let target = Target::Unit { conv: 2, unit: 5 };
        let silent = UnitPeak {
            row: 0,
            col: 0,
            activation: 0.0,
        };
        let caption = describe(target, &[], Some(&silent));
        assert!(caption.contains("unit inactive"), "{caption}");
        let fields = peak_fields(&silent);
        assert_eq!(fields["fired"], false);
        assert_eq!(fields["position"], json!([0, 0]));

        let active = UnitPeak {
            row: 3,
            col: 7,
            activation: 1.5,
        };
        let caption = describe(target, &[], Some(&active));
        assert_eq!(
            caption,
            "conv2 unit 5 at its largest activation (row 3, column 7)"
        );
        assert_eq!(peak_fields(&active)["fired"], true);
        let names = vec!["airplane".to_string()];
        assert_eq!(
            describe(Target::Class(0), &names, None),
            "class 0 (airplane)"
        );
    }
}
