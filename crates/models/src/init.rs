//! [`Init`], the weight initialisation, and its one spelling in every configuration format.
//!
//! The unit choices are plain names (`xavier`, `he`); the Gaussian one is a map with one key,
//! `{gaussian: {sigma: 0.01}}`, as docs/configuration.md writes it. Serde's default for such an
//! enum would be format-specific (a `!gaussian` YAML tag, a map in JSON), so a config file and
//! `--set` (which goes through JSON) would need different spellings. Written here by hand, both
//! read the map form and both write it; the YAML tag form that older `config.yaml` files hold is
//! still read.

use std::fmt;

use serde::de::{self, Deserializer, EnumAccess, MapAccess, VariantAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Weight initialisation of the convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Init {
    /// Caffe's "xavier" filler: uniform in `+-sqrt(3 / fan_in)`, `fan_in = in * kh * kw`.
    #[default]
    Xavier,
    /// He et al.: normal with standard deviation `sqrt(2 / fan_in)`.
    He,
    /// Normal with a fixed standard deviation.
    Gaussian {
        /// Standard deviation.
        sigma: f64,
    },
}

/// The parameters of `gaussian`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Gaussian {
    sigma: f64,
}

const EXPECTED: &str = "`xavier`, `he` or `{gaussian: {sigma: S}}`";

impl Serialize for Init {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Init::Xavier => serializer.serialize_str("xavier"),
            Init::He => serializer.serialize_str("he"),
            Init::Gaussian { sigma } => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("gaussian", &Gaussian { sigma })?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Init {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(InitVisitor)
    }
}

struct InitVisitor;

/// The choice named `name` with its parameters read by `gaussian` (only `gaussian` has any).
fn choice<E: de::Error>(
    name: &str,
    gaussian: impl FnOnce() -> Result<Gaussian, E>,
) -> Result<Init, E> {
    match name {
        "xavier" => Ok(Init::Xavier),
        "he" => Ok(Init::He),
        "gaussian" => Ok(Init::Gaussian {
            sigma: gaussian()?.sigma,
        }),
        other => Err(E::custom(format!(
            "unknown initialisation `{other}`, expected {EXPECTED}"
        ))),
    }
}

impl<'de> Visitor<'de> for InitVisitor {
    type Value = Init;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Init, E> {
        choice(name, || {
            Err(E::custom(
                "`gaussian` needs its sigma: write `{gaussian: {sigma: S}}`",
            ))
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Init, A::Error> {
        let Some(name) = map.next_key::<String>()? else {
            return Err(de::Error::custom(format!(
                "an empty map, expected {EXPECTED}"
            )));
        };
        let init = match name.as_str() {
            "gaussian" => choice(&name, || map.next_value::<Gaussian>())?,
            _ => {
                // `{xavier: null}` is the map form of a choice without parameters.
                map.next_value::<de::IgnoredAny>()?;
                choice(&name, unreachable_gaussian)?
            }
        };
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom(format!(
                "more than one initialisation, expected {EXPECTED}"
            )));
        }
        Ok(init)
    }

    /// The YAML tag form (`!gaussian {sigma: S}`) of `config.yaml` files written before the
    /// map form was the only one written.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Init, A::Error> {
        let (name, variant) = data.variant::<String>()?;
        match name.as_str() {
            "gaussian" => choice(&name, || variant.newtype_variant::<Gaussian>()),
            _ => {
                variant.unit_variant()?;
                choice(&name, unreachable_gaussian)
            }
        }
    }
}

/// For names other than `gaussian`, whose parameters are never asked for.
fn unreachable_gaussian<E: de::Error>() -> Result<Gaussian, E> {
    Err(E::custom("only `gaussian` has parameters"))
}
